//! zmsync: keeps Zoho CRM and Moodle in agreement. See design.md for the shape of a run.

// Error types carry the API's whole answer (code, message, details) for reports; boxing them buys nothing.
#![allow(clippy::result_large_err)]

pub mod apply;
pub mod bridge;
pub mod cli;
pub mod commands;
pub mod config;
pub mod credentials;
pub mod doctor;
pub mod error;
pub mod mapping;
pub mod memory;
pub mod model;
pub mod moodle;
pub mod operator;
pub mod process;
pub mod progress;
pub mod reconcile;
pub mod retry;
pub mod run;
pub mod sandbox;
pub mod secret;
pub mod settings;
pub mod snapshot;
pub mod store;
pub mod transport;
pub mod webhook;
pub mod zoho;
