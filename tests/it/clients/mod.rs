//! The clients against the sandbox fakes on loopback: every path the snapshot and apply rely on.

mod moodle;
mod zoho;
