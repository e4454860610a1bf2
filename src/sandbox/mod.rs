//! The sandbox: faithful fake Zoho CRM and fake Moodle servers on loopback, and the college data generator.
//! Tests, benchmarks and `zmsync demo` all run on it. The fakes follow shared/reference/ to the letter.

pub mod drift;
pub mod generator;
mod handle;
pub mod moodle;
pub mod seed;
pub mod world;
pub mod zoho;

pub use handle::{Sandbox, SandboxOptions};
