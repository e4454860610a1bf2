//! zmsync's core: the records (model), how they map between Zoho and Moodle (mapping), the settings that
//! steer both, and the reconciliation that turns two snapshots into a plan. Pure: no I/O, no clients, no store.

// Error types carry the API's whole answer (code, message, details) for reports; boxing them buys nothing.
#![allow(clippy::result_large_err)]

pub mod mapping;
pub mod model;
pub mod reconcile;
pub mod secret;
pub mod settings;
