//! The faithful fake Moodle 5.1 : the REST web-service server with Moodle's form
//! parsing, strict parameter validation, HTTP-200 exceptions, the core functions the sync calls and the
//! `local_student_dashboard` plugin's functions (docs/plugin-contract.md), plus latency and fault injection
//! and an inspection API so tests can see exactly what a client did.
//!
//! ```no_run
//! use zmsync::sandbox::moodle::{FakeMoodle, MoodleOptions};
//! let fake = FakeMoodle::start(Default::default(), MoodleOptions::default()).unwrap();
//! println!("{} {}", fake.url(), fake.token());
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::seed::MoodleSeed;

pub mod cost;
pub mod errors;
pub mod form;
pub mod functions;
mod login;
mod options;
pub mod params;
mod people;
mod server;
pub mod state;
pub mod webhook;

pub use cost::CostModel;
pub use errors::WsError;
pub use options::{FaultKind, MoodleOptions, ALL_FAULTS};
pub use state::{Category, Course, Enrolment, Event, Grade, User};
pub use webhook::Delivery;

/// Counters since start (or the last `reset_stats`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Stats {
    /// Requests per `wsfunction` (as sent, including failed calls).
    pub requests: BTreeMap<String, u64>,
    /// Records written per function.
    pub records_written: BTreeMap<String, u64>,
    /// The largest number of form variables received in one request (query or body).
    pub max_form_vars: usize,
    /// Whether any request lost variables to `max_input_vars`.
    pub truncated: bool,
    pub max_concurrent: usize,
    /// The most PHP workers of the cost model busy at once (0 without a cost model).
    pub max_workers_busy: usize,
    /// Server time the cost model charged, in ms, per function (empty without a cost model).
    pub server_ms: BTreeMap<String, f64>,
    /// Exceptions returned, by errorcode as the client saw it.
    pub errors: BTreeMap<String, u64>,
    /// Injected faults by kind.
    pub faults: BTreeMap<String, u64>,
}

/// One REST call as the fake decoded it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LoggedRequest {
    pub function: String,
    /// The arguments after PHP form decoding (reserved `ws*`/`moodlews*` parameters removed).
    pub params: Value,
    pub errorcode: Option<String>,
    pub written: usize,
}

pub(crate) struct Shared {
    pub state: Mutex<State>,
    opts: RwLock<MoodleOptions>,
    token: Mutex<Option<String>>,
    token_expired: std::sync::atomic::AtomicBool,
    pub admin_password: String,
    stats: Mutex<Stats>,
    log: Mutex<VecDeque<LoggedRequest>>,
    pub rng: Mutex<StdRng>,
    pub inflight: AtomicUsize,
    pub max_concurrent: AtomicUsize,
    pub outbox: webhook::Outbox,
    pub url: String,
    /// The PHP workers of the cost model.
    pub workers: cost::Workers,
}

use state::State;

impl Shared {
    pub fn opts(&self) -> MoodleOptions {
        self.opts.read().map(|o| o.clone()).unwrap_or_default()
    }

    pub fn current_token(&self) -> Option<String> {
        self.token.lock().ok().and_then(|t| t.clone())
    }

    /// `invalidtoken` for an unknown token; an expired one answers `accessexception` once and is forgotten.
    pub fn check_token(&self, given: Option<&str>) -> Result<(), WsError> {
        let mut t = self.token.lock().map_err(|_| WsError::invalid_token())?;
        match (t.as_deref(), given) {
            (Some(known), Some(g)) if known == g => {
                if self.token_expired.swap(false, Ordering::SeqCst) {
                    *t = None;
                    return Err(WsError::access("Invalid token - token expired - check validuntil time for the token"));
                }
                Ok(())
            }
            _ => Err(WsError::invalid_token()),
        }
    }

    pub fn count_vars(&self, n: usize, truncated: bool) {
        if let Ok(mut s) = self.stats.lock() {
            s.max_form_vars = s.max_form_vars.max(n);
            s.truncated |= truncated;
        }
    }

    pub fn count_server_time(&self, function: &str, d: std::time::Duration) {
        if let Ok(mut s) = self.stats.lock() {
            *s.server_ms.entry(function.to_string()).or_default() += d.as_secs_f64() * 1000.0;
        }
    }

    pub fn count_fault(&self, kind: FaultKind) {
        if let Ok(mut s) = self.stats.lock() {
            *s.faults.entry(format!("{kind:?}")).or_default() += 1;
        }
    }

    pub fn record(&self, r: LoggedRequest) {
        if let Ok(mut s) = self.stats.lock() {
            *s.requests.entry(r.function.clone()).or_default() += 1;
            if r.written > 0 {
                *s.records_written.entry(r.function.clone()).or_default() += r.written as u64;
            }
            if let Some(code) = &r.errorcode {
                *s.errors.entry(code.clone()).or_default() += 1;
            }
        }
        let cap = self.opts.read().map(|o| o.request_log_cap).unwrap_or(10_000);
        if let Ok(mut l) = self.log.lock() {
            l.push_back(r);
            while l.len() > cap {
                l.pop_front();
            }
        }
    }
}

/// A running fake Moodle. Dropping it stops the server.
pub struct FakeMoodle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    /// `None` once stopped: the server stops before the webhook outbox closes.
    http: Option<crate::http::HttpServer>,
}

/// Random hex, for the token and the admin password (never literals in the repository).
fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::thread_rng().fill(&mut b[..]);
    hex::encode(b)
}

impl FakeMoodle {
    /// Binds `127.0.0.1:<port>` and serves in the background; returns at once.
    pub fn start(seed: MoodleSeed, opts: MoodleOptions) -> std::io::Result<FakeMoodle> {
        let listener = TcpListener::bind(("127.0.0.1", opts.port))?;
        let addr = listener.local_addr()?;
        let now = chrono::Utc::now().timestamp();
        let outbox = webhook::Outbox::start(opts.webhook_url.clone(), opts.webhook_hmac_secret.clone());
        let shared = Arc::new(Shared {
            state: Mutex::new(State::from_seed(seed, now)),
            rng: Mutex::new(StdRng::seed_from_u64(opts.fault_seed)),
            opts: RwLock::new(opts),
            token: Mutex::new(Some(random_hex(16))),
            token_expired: Default::default(),
            admin_password: format!("Aa1!{}", random_hex(8)),
            stats: Mutex::new(Stats::default()),
            log: Mutex::new(VecDeque::new()),
            inflight: AtomicUsize::new(0),
            max_concurrent: AtomicUsize::new(0),
            outbox,
            url: format!("http://{addr}"),
            workers: cost::Workers::default(),
        });
        let handler_shared = shared.clone();
        let handler: crate::http::Handler = Arc::new(move |req| server::handle(&handler_shared, req));
        let http = crate::http::HttpServer::start(listener, server::LIMITS, handler)?;
        tracing::debug!(%addr, "fake Moodle listening");
        Ok(FakeMoodle { shared, addr, http: Some(http) })
    }

    /// The site's wwwroot, e.g. `http://127.0.0.1:40123`.
    pub fn url(&self) -> String {
        self.shared.url.clone()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The REST endpoint (`{url}/webservice/rest/server.php`).
    pub fn endpoint(&self) -> String {
        format!("{}/webservice/rest/server.php", self.shared.url)
    }

    /// The token of the `zmsync` service (random per start); empty once an expired token was forgotten.
    pub fn token(&self) -> String {
        self.shared.current_token().unwrap_or_default()
    }

    /// The password of `admin` for `/login/token.php` (random per start).
    pub fn admin_password(&self) -> String {
        self.shared.admin_password.clone()
    }

    // ---- runtime switches ----

    /// Changes any option at runtime (the port and webhook settings are fixed at start).
    pub fn update_options(&self, f: impl FnOnce(&mut MoodleOptions)) {
        if let Ok(mut o) = self.shared.opts.write() {
            f(&mut o);
            if let Ok(mut rng) = self.shared.rng.lock() {
                *rng = StdRng::seed_from_u64(o.fault_seed);
            }
        }
    }

    pub fn options(&self) -> MoodleOptions {
        self.shared.opts()
    }

    pub fn set_latency_ms(&self, ms: u64) {
        self.update_options(|o| o.latency_ms = ms);
    }
    pub fn set_per_record_ms(&self, ms: u64) {
        self.update_options(|o| o.per_record_ms = ms);
    }
    pub fn set_fault_rate(&self, rate: f64) {
        self.update_options(|o| o.fault_rate = rate);
    }
    pub fn set_fault_kinds(&self, kinds: &[FaultKind]) {
        self.update_options(|o| o.fault_kinds = kinds.to_vec());
    }
    pub fn set_fault_after_apply(&self, rate: f64) {
        self.update_options(|o| o.fault_after_apply = rate);
    }
    pub fn set_protocol_disabled(&self, on: bool) {
        self.update_options(|o| o.protocol_disabled = on);
    }
    pub fn set_maintenance(&self, on: bool) {
        self.update_options(|o| o.maintenance = on);
    }
    pub fn set_debug(&self, on: bool) {
        self.update_options(|o| o.debug = on);
    }
    pub fn set_zero_records(&self, on: bool) {
        self.update_options(|o| o.zero_records = on);
    }
    pub fn set_max_input_vars(&self, n: usize) {
        self.update_options(|o| o.max_input_vars = n);
    }
    /// *Show user identity*, e.g. `["email", "phone1"]`.
    pub fn set_show_identity(&self, fields: &[&str]) {
        self.update_options(|o| o.show_identity = fields.iter().map(|f| f.to_string()).collect());
    }
    pub fn set_mail_configured(&self, on: bool) {
        self.update_options(|o| o.mail_configured = on);
    }
    pub fn set_welcome_message(&self, on: bool) {
        self.update_options(|o| o.welcome_message = on);
    }
    /// The token's next use answers `accessexception` (expired), after which it is unknown.
    pub fn expire_token(&self) {
        self.shared.token_expired.store(true, Ordering::SeqCst);
    }

    // ---- inspection ----

    pub fn stats(&self) -> Stats {
        let mut s = self.shared.stats.lock().map(|s| s.clone()).unwrap_or_default();
        s.max_concurrent = self.shared.max_concurrent.load(Ordering::SeqCst);
        s.max_workers_busy = self.shared.workers.peak.load(Ordering::SeqCst);
        s
    }

    pub fn reset_stats(&self) {
        if let Ok(mut s) = self.shared.stats.lock() {
            *s = Stats::default();
        }
        self.shared.max_concurrent.store(0, Ordering::SeqCst);
        self.shared.workers.peak.store(0, Ordering::SeqCst);
        if let Ok(mut l) = self.shared.log.lock() {
            l.clear();
        }
    }

    /// The most recent requests (oldest first), capped at `request_log_cap`.
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.shared.log.lock().map(|l| l.iter().cloned().collect()).unwrap_or_default()
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> Option<T> {
        self.shared.state.lock().ok().map(|mut s| f(&mut s))
    }

    /// Every user row, deleted ones included (`deleted` set), by id.
    pub fn users(&self) -> Vec<User> {
        self.with_state(|s| s.users.values().cloned().collect()).unwrap_or_default()
    }

    /// Every course, the site course (id 1) included.
    pub fn courses(&self) -> Vec<Course> {
        self.with_state(|s| s.courses.values().cloned().collect()).unwrap_or_default()
    }

    pub fn categories(&self) -> Vec<Category> {
        self.with_state(|s| s.categories.values().cloned().collect()).unwrap_or_default()
    }

    /// Manual enrolments with the roles held in the course.
    pub fn enrolments(&self) -> Vec<(Enrolment, Vec<i64>)> {
        self.with_state(|s| {
            s.enrolments
                .values()
                .map(|e| {
                    (
                        e.clone(),
                        s.roles.get(&(e.courseid, e.userid)).map(|r| r.iter().copied().collect()).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
    }

    pub fn grades(&self) -> Vec<Grade> {
        self.with_state(|s| s.grades.values().cloned().collect()).unwrap_or_default()
    }

    /// Rows of a plugin table (`registrations`, `payments`, `units`, `grades`) in the `get_*` form.
    pub fn plugin_rows(&self, table: &str) -> Vec<Map<String, Value>> {
        self.with_state(|s| {
            s.plugin
                .iter()
                .find(|(k, _)| **k == table)
                .map(|(_, t)| t.rows.values().cloned().collect())
                .unwrap_or_default()
        })
        .unwrap_or_default()
    }

    /// Everything a plugin observer saw (web-service writes and simulated people alike).
    pub fn events(&self) -> Vec<Event> {
        self.with_state(|s| s.events.clone()).unwrap_or_default()
    }

    /// Outbound webhook posts made so far.
    pub fn webhook_deliveries(&self) -> Vec<Delivery> {
        self.shared.outbox.deliveries.lock().map(|d| d.clone()).unwrap_or_default()
    }
}

impl Drop for FakeMoodle {
    fn drop(&mut self) {
        drop(self.http.take());
        self.shared.outbox.close();
    }
}
