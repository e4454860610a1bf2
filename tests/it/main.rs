//! Integration tests: one binary (faster to link), one module per area. They run the real `zmsync` binary
//! or the library against real stores and the sandbox servers on loopback.

mod cli;
mod clients;
mod deletions;
mod docs;
mod doctor;
mod fakes;
mod follow;
mod ops;
mod reconcile;
mod reconcile_e2e;
mod sandbox_cli;
mod sandbox_moodle;
mod sandbox_zoho;
mod snapshot;
mod store;
mod support;
mod sync;
mod webhook;
mod zoho_watch;
