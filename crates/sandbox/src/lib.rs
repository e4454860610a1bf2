//! The sandbox: faithful fake Zoho CRM and fake Moodle servers on loopback, and the college data generator.
//! Tests, benchmarks and `zmsync demo` all run on it. The fakes answer as the real APIs do (docs/sandbox.md).

pub mod drift;
pub mod generator;
mod handle;
mod http;
pub mod memory;
pub mod moodle;
pub mod seed;
pub mod world;
pub mod zoho;

pub use handle::{Sandbox, SandboxOptions};
