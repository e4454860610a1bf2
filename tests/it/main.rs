//! Integration tests: one binary (faster to link), one module per area. They run the real `zmsync` binary
//! or the library against real stores and the sandbox servers on loopback.

mod cli;
mod clients;
mod converge;
mod deletions;
mod docs;
mod doctor;
mod errors;
mod fakes;
mod follow;
mod operator;
mod ops;
mod reconcile;
mod reconcile_e2e;
mod report_io;
mod sandbox_cli;
mod sandbox_moodle;
mod sandbox_zoho;
mod secrets;
mod snapshot;
mod stock_moodle;
mod store;
mod support;
mod sync;
mod webhook;
mod webhook_attack;
mod zoho_watch;
