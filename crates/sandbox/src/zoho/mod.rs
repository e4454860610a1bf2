//! The faithful fake Zoho CRM server , for tests, benchmarks,
//! `zmsync sandbox` and `zmsync demo`.
//!
//! One base URL serves both the accounts host (`/oauth/v2/token`) and the API domain (`/crm/v8/...`).
//! Credentials are random per start; read them from the handle.
//!
//! Decisions other code relies on:
//! - `Name` is mandatory on every module. Real Zoho generates `Name` only when an admin turns the module's
//!   primary field into an auto-number; the BTEC_* modules use a plain text `Name`, so a write without it gets
//!   `MANDATORY_NOT_FOUND` (`api_name: "Name"`).
//! - API writes are made by the integration user ([`INTEGRATION_USER_ID`]); the UI helpers on [`FakeZoho`]
//!   by a human ([`HUMAN_USER_ID`]). The loop guard can tell them apart by `Modified_By.id`.
//! - `sort_by` defaults to `id` and `sort_order` to `asc` when not given (Zoho's default is not documented).
//! - Unknown field names in `fields=` come back as `null`, and unknown keys in write bodies are ignored.
//! - `webhook_url` may contain `{entity}`, replaced by the receiver's path segment of the module
//!   (`student`, `teacher`, `class`, ...), so one setting serves every module.
//! - Faults can be switched on mid-run: [`FakeZoho::set_fault_rate`], [`FakeZoho::expire_all_tokens`],
//!   [`FakeZoho::configure`] for anything else.

mod auth;
mod coql;
mod envelope;
mod faults;
mod notify;
mod pages;
mod read;
mod server;
mod shared;
mod store;
mod tokens;
mod validate;
mod watch;
mod write;

pub mod schema;
pub use notify::ChannelView;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde::Serialize;
use serde_json::Value;

use crate::seed::ZohoSeed;
use zmsync_core::secret::Secret;

pub use crate::http::http_date;
pub use faults::FaultKind;
pub use store::{HUMAN_USER_ID, HUMAN_USER_NAME, INTEGRATION_USER_ID, INTEGRATION_USER_NAME};

/// Body encoding of the emulated workflow webhook (§8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WebhookFormat {
    #[default]
    Json,
    Form,
}

/// How the fake behaves. `Default` is a realistic, fault-free Zoho.
#[derive(Debug, Clone)]
pub struct ZohoOptions {
    /// 0 = an ephemeral port.
    pub port: u16,
    /// Added to every API call (inside the in-flight window, so it interacts with `concurrency_cap`).
    pub latency_ms: u64,
    /// Added per record written.
    pub per_record_ms: u64,
    /// Probability that an API call (never the token endpoint) answers with one of `fault_kinds`.
    pub fault_rate: f64,
    pub fault_kinds: Vec<FaultKind>,
    pub fault_seed: u64,
    /// Probability that a write is applied and then its connection dropped unanswered.
    pub fault_after_apply: f64,
    /// How long a `Timeout` fault holds the connection before dropping it.
    pub timeout_hold: Duration,
    pub token_ttl: Duration,
    /// Report an expired token as `AUTHENTICATION_FAILURE` instead of `INVALID_TOKEN` (seen in the wild).
    pub expiry_as_auth_failure: bool,
    /// Active access tokens per refresh token; minting one more evicts the oldest (§1.1).
    pub max_active_tokens: usize,
    pub page_token_ttl: Duration,
    /// Records reachable through `page_token` (Zoho: 100,000).
    pub page_token_record_limit: usize,
    /// Calls in flight at once; one more gets 429.
    pub concurrency_cap: Option<usize>,
    /// Credits available (1 per call, COQL 1–3); once spent every call gets 429.
    pub credit_budget: Option<u64>,
    /// Every Nth authenticated API call gets 429.
    pub every_nth_429: Option<u64>,
    /// Seconds for a `Retry-After` header on 429s. Zoho documents none, so off by default.
    pub retry_after: Option<u64>,
    /// Enforce 10 token refreshes per 10 minutes with the "Access Denied" body.
    pub refresh_throttle: bool,
    /// Status for an `If-Modified-Since` read that matches nothing: 304 (default) or 204.
    pub not_modified_status: u16,
    /// This module's field metadata answers 204 (some clients break on it).
    pub metadata_204_module: Option<String>,
    /// Every module reads as empty (the mass-deletion guard's case).
    pub zero_records: bool,
    /// These modules read as empty.
    pub zero_records_modules: BTreeSet<String>,
    /// Where the emulated workflow rule POSTs after a write whose `trigger` allows workflows.
    pub webhook_url: Option<String>,
    pub webhook_format: WebhookFormat,
    /// Sign webhook bodies with `X-Zoho-Signature: sha256=<hex>` (the Deluge variant, §8.1).
    pub webhook_hmac_secret: Option<Secret>,
}

impl Default for ZohoOptions {
    fn default() -> Self {
        ZohoOptions {
            port: 0,
            latency_ms: 0,
            per_record_ms: 0,
            fault_rate: 0.0,
            fault_kinds: FaultKind::ALL.to_vec(),
            fault_seed: 1,
            fault_after_apply: 0.0,
            timeout_hold: Duration::from_secs(30),
            token_ttl: Duration::from_secs(3600),
            expiry_as_auth_failure: false,
            max_active_tokens: 15,
            page_token_ttl: Duration::from_secs(24 * 3600),
            page_token_record_limit: 100_000,
            concurrency_cap: None,
            credit_budget: None,
            every_nth_429: None,
            retry_after: None,
            refresh_throttle: false,
            not_modified_status: 304,
            metadata_204_module: None,
            zero_records: false,
            zero_records_modules: BTreeSet::new(),
            webhook_url: None,
            webhook_format: WebhookFormat::Json,
            webhook_hmac_secret: None,
        }
    }
}

/// One write call as received, for asserting that the sync sends `trigger: []` / `wf_trigger=false`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WriteCall {
    pub module: String,
    /// `insert`, `update`, `upsert` or `delete`.
    pub operation: String,
    pub records: usize,
    /// The body's `trigger` array; `None` when the key was omitted (all automation runs).
    pub trigger: Option<Vec<String>>,
    /// The `wf_trigger` query parameter of a DELETE, as sent.
    pub wf_trigger: Option<String>,
}

/// What the fake saw. Counters only grow until [`FakeZoho::reset_stats`].
#[derive(Debug, Clone, Default, Serialize)]
pub struct ZohoStats {
    /// Requests by normalised endpoint, e.g. `GET /crm/v8/{module}`.
    pub requests: BTreeMap<String, u64>,
    pub token_refreshes: u64,
    pub token_refresh_failures: u64,
    pub unauthorized: u64,
    pub throttled: u64,
    /// Injected faults by kind (`after_apply` counts the apply-then-reset hazard).
    pub faults: BTreeMap<String, u64>,
    pub records_read: BTreeMap<String, u64>,
    /// List calls that continued a listing with a valid `page_token`.
    pub page_token_reads: u64,
    pub write_calls: BTreeMap<String, u64>,
    pub records_written: BTreeMap<String, u64>,
    pub max_write_batch: usize,
    pub max_fields_requested: usize,
    pub max_in_flight: usize,
    pub credits_used: u64,
    pub writes: Vec<WriteCall>,
    pub webhooks_sent: u64,
    pub notifications_sent: u64,
    pub delivery_failures: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum FakeZohoError {
    #[error("unknown module {0}")]
    UnknownModule(String),
    #[error("no record {id} in {module}")]
    UnknownRecord { module: String, id: String },
    #[error("Zoho would refuse this record: {code} {details}")]
    Rejected { code: String, details: Value },
}

/// A running fake. Dropping it stops the server.
pub struct FakeZoho {
    shared: Arc<shared::Shared>,
    _http: crate::http::HttpServer,
}

fn random_token(len: usize) -> String {
    rand::thread_rng().sample_iter(&Alphanumeric).take(len).map(char::from).collect()
}

impl FakeZoho {
    pub fn start(seed: ZohoSeed, opts: ZohoOptions) -> std::io::Result<FakeZoho> {
        let creds = tokens::Credentials {
            client_id: format!("1000.{}", random_token(30).to_uppercase()),
            client_secret: random_token(42).to_lowercase(),
            refresh_token: format!("1000.{}.{}", random_token(32).to_lowercase(), random_token(32).to_lowercase()),
        };
        let port = opts.port;
        let shared = Arc::new_cyclic(|_| shared::Shared::new(seed, opts, creds));
        let handler_shared = shared.clone();
        let http = crate::http::HttpServer::bind(
            port,
            server::LIMITS,
            Arc::new(move |req| server::handle(&handler_shared, req)),
        )?;
        shared.set_base_url(format!("http://{}", http.addr));
        tracing::info!(url = %shared.base_url(), "fake Zoho CRM listening");
        Ok(FakeZoho { shared, _http: http })
    }

    /// Base URL of both the accounts host and the API domain, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        self.shared.base_url()
    }
    pub fn client_id(&self) -> String {
        self.shared.creds.client_id.clone()
    }
    pub fn client_secret(&self) -> Secret {
        Secret::new(self.shared.creds.client_secret.clone())
    }
    pub fn refresh_token(&self) -> Secret {
        Secret::new(self.shared.creds.refresh_token.clone())
    }

    pub fn stats(&self) -> ZohoStats {
        self.shared.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
    pub fn reset_stats(&self) {
        *self.shared.stats.lock().unwrap_or_else(|e| e.into_inner()) = ZohoStats::default();
    }

    /// Current records of a module as Zoho returns them (all fields, lookups with names), in id order.
    pub fn records(&self, module: &str) -> Vec<Value> {
        self.shared.data().all_rendered(module)
    }
    pub fn record(&self, module: &str, id: &str) -> Option<Value> {
        self.shared.data().rendered(module, id)
    }
    /// Stubs under `/deleted` for a module.
    pub fn deleted(&self, module: &str) -> Vec<Value> {
        self.shared.data().deleted_rendered(module)
    }

    /// The registry office edits a record in the Zoho UI: validated like an API write, stamped with a human
    /// `Modified_By`, and firing workflows and watch notifications (UI edits always run workflows).
    pub fn update_record(&self, module: &str, id: &str, fields: Value) -> Result<(), FakeZohoError> {
        write::ui_update(&self.shared, module, id, fields)
    }
    pub fn insert_record(&self, module: &str, fields: Value) -> Result<String, FakeZohoError> {
        write::ui_insert(&self.shared, module, fields)
    }
    pub fn delete_record(&self, module: &str, id: &str) -> Result<(), FakeZohoError> {
        write::ui_delete(&self.shared, module, id)
    }

    /// Changes any option at runtime, e.g. `fake.configure(|o| o.latency_ms = 100)`.
    pub fn configure(&self, f: impl FnOnce(&mut ZohoOptions)) {
        let mut o = self.shared.opts.write().unwrap_or_else(|e| e.into_inner());
        f(&mut o);
    }
    pub fn options(&self) -> ZohoOptions {
        self.shared.opts().clone()
    }
    pub fn set_fault_rate(&self, rate: f64) {
        self.configure(|o| o.fault_rate = rate);
    }
    pub fn set_fault_kinds(&self, kinds: &[FaultKind]) {
        self.configure(|o| o.fault_kinds = kinds.to_vec());
    }
    pub fn set_fault_after_apply(&self, rate: f64) {
        self.configure(|o| o.fault_after_apply = rate);
    }
    pub fn set_latency_ms(&self, ms: u64) {
        self.configure(|o| o.latency_ms = ms);
    }
    pub fn set_zero_records(&self, on: bool) {
        self.configure(|o| o.zero_records = on);
    }
    pub fn set_zero_records_for(&self, module: &str, on: bool) {
        self.configure(|o| {
            if on {
                o.zero_records_modules.insert(module.to_string());
            } else {
                o.zero_records_modules.remove(module);
            }
        });
    }
    pub fn set_concurrency_cap(&self, cap: Option<usize>) {
        self.configure(|o| o.concurrency_cap = cap);
    }
    pub fn set_every_nth_429(&self, n: Option<u64>) {
        self.configure(|o| o.every_nth_429 = n);
    }
    pub fn set_webhook_url(&self, url: Option<String>) {
        self.configure(|o| o.webhook_url = url);
    }
    /// Every access token handed out so far becomes expired; the next call with one gets 401.
    pub fn expire_all_tokens(&self) {
        self.shared.auth().expire_all();
    }

    /// The Notification API channels the fake holds, live or lapsed.
    pub fn watch_channels(&self) -> Vec<ChannelView> {
        self.shared.notifier.channels()
    }
    /// Moves a channel's expiry, e.g. into the past to make it lapse. `false` when there is no such channel.
    pub fn set_channel_expiry(&self, channel_id: &str, expiry: chrono::DateTime<chrono::FixedOffset>) -> bool {
        self.shared.notifier.set_expiry(channel_id, expiry)
    }

    /// Waits until every queued webhook and notification has been attempted. `false` on timeout.
    pub fn wait_for_deliveries(&self, timeout: Duration) -> bool {
        self.shared.notifier.wait_idle(timeout)
    }
}
