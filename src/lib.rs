//! zmsync: keeps Zoho CRM and Moodle in agreement. This package is the binary: the command line, a run's steps,
//! the webhook receiver, the operator's views. The layers below it are crates of their own (docs/ARCHITECTURE-NOTES.md).

// Error types carry the API's whole answer (code, message, details) for reports; boxing them buys nothing.
#![allow(clippy::result_large_err)]

pub mod apply;
pub mod bridge;
pub mod cli;
pub mod commands;
pub mod config;
pub mod doctor;
pub mod error;
pub mod operator;
pub mod process;
pub mod progress;
pub mod run;
pub mod snapshot;
pub mod webhook;

// The lower crates, under the paths the binary, the tests and the benches use.
pub use zmsync_clients::{credentials, moodle, retry, transport, zoho};
pub use zmsync_core::{mapping, model, reconcile, secret, settings};
pub use zmsync_sandbox as sandbox;
pub use zmsync_store as store;
