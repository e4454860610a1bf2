//! The webhook receiver (`zmsync serve`): verifies signed events from Zoho and Moodle, records them in the
//! event log with their dirty marks (one group-committed transaction per batch) and answers at once. It never
//! calls Zoho or Moodle. See docs/webhooks.md.
//!
//! - [`routes`]: paths → source and entity;
//! - [`signature`]: HMAC-SHA256 and token checks, constant time;
//! - [`payloads`]: every accepted payload shape → events;
//! - [`ratelimit`]: per-source token buckets;
//! - [`writer`]: group commit, led by whichever worker finds the store idle;
//! - [`server`]: hyper on tokio: limits, timeouts, answers, draining on shutdown;
//! - [`legacy`]: the previous tiny_http server, for the webhook benchmark's side-by-side figures only.

#[doc(hidden)]
pub mod legacy;
pub mod payloads;
pub mod ratelimit;
pub mod routes;
pub mod server;
pub mod signature;
mod startup;
mod timing;
pub mod writer;

use crate::config::Config;
use crate::secret::Secret;
use crate::settings::SettingsError;
use crate::store::StoreError;

/// The secrets that authenticate each source. A missing one disables that source's routes (503).
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    pub zoho: Option<Secret>,
    pub zoho_notify: Option<Secret>,
    pub moodle: Option<Secret>,
}

impl Secrets {
    pub fn from_config(config: &Config) -> Secrets {
        Secrets {
            zoho: config.webhook.zoho.clone(),
            zoho_notify: config.webhook.zoho_notify.clone(),
            moodle: config.webhook.moodle.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub database_url: String,
    pub workers: usize,
    pub secrets: Secrets,
    /// How old an event's timestamp may be ([`payloads::DEFAULT_WINDOW`] by default).
    pub replay_window: std::time::Duration,
    /// Set (by SIGHUP) to make the receiver re-read its settings now rather than within [`server::RELOAD_EVERY`].
    pub reload: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {bind}: {message}\n  hint: pick a free port or another address with --bind HOST:PORT")]
    Bind { bind: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Settings(#[from] SettingsError),
}
