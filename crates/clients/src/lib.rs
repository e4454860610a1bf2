//! The two API clients, Zoho CRM and Moodle, and the retry/backoff policy they share.

// Error types carry the API's whole answer (code, message, details) for reports; boxing them buys nothing.
#![allow(clippy::result_large_err)]

pub mod credentials;
pub mod moodle;
pub mod retry;
pub mod transport;
pub mod zoho;
