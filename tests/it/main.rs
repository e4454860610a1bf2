//! Integration tests: one binary (faster to link), one module per area. They run the real `zmsync` binary
//! or the library against real stores and, later, the sandbox servers on loopback.

mod cli;
mod reconcile;
// Switched off until the sandbox generator and snapshot::run are on main: then delete the next line.
#[cfg(any())]
mod reconcile_e2e;
mod sandbox_moodle;
mod store;
mod support;
