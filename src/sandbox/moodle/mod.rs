//! The faithful fake Moodle 5.1 (reference/moodle.md §8): the REST web-service server with Moodle's form
//! parsing, strict parameter validation, HTTP-200 exceptions, the core functions the sync calls and the
//! `local_student_dashboard` plugin's functions (docs/plugin-contract.md), plus latency and fault injection
//! and an inspection API so tests can see exactly what a client did.
//!
//! ```no_run
//! use zmsync::sandbox::moodle::{FakeMoodle, MoodleOptions};
//! let fake = FakeMoodle::start(Default::default(), MoodleOptions::default()).unwrap();
//! println!("{} {}", fake.url(), fake.token());
//! ```

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::sandbox::seed::MoodleSeed;
use crate::secret::Secret;

pub mod cost;
pub mod errors;
pub mod form;
pub mod functions;
mod http;
mod login;
pub mod params;
mod server;
pub mod state;
pub mod webhook;

pub use cost::CostModel;
pub use errors::WsError;
pub use state::{Category, Course, Enrolment, Event, Grade, User};
pub use webhook::Delivery;

/// The transport faults the fake can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum FaultKind {
    /// HTTP 503 with an HTML body (maintenance page, overloaded proxy).
    Http503,
    /// HTTP 500 with a PHP fatal error as HTML.
    Http500,
    /// No answer for `fault_hold_ms`, then the connection is closed.
    Timeout,
    /// TCP reset.
    Reset,
}

pub const ALL_FAULTS: &[FaultKind] = &[FaultKind::Http503, FaultKind::Http500, FaultKind::Timeout, FaultKind::Reset];

/// How the fake site behaves. `Default` is a realistic, healthy site.
#[derive(Debug, Clone)]
pub struct MoodleOptions {
    /// 0 = an ephemeral port.
    pub port: u16,
    /// Added to every request.
    pub latency_ms: u64,
    /// Added per record written (reference §9: a real site spends ≈ 12 ms per created user).
    pub per_record_ms: u64,
    /// Probability (0–1) that a REST request fails with one of `fault_kinds` before anything is applied.
    pub fault_rate: f64,
    pub fault_seed: u64,
    pub fault_kinds: Vec<FaultKind>,
    /// How long a `Timeout` fault holds the connection before dropping it.
    pub fault_hold_ms: u64,
    /// Probability (0–1) that a write function is applied and then the connection reset: the duplicate hazard.
    pub fault_after_apply: f64,
    /// PHP's `max_input_vars` (per query string and per body); 0 = unlimited.
    pub max_input_vars: usize,
    /// Site debugging: `debuginfo` present and table-specific missing-record codes.
    pub debug: bool,
    /// REST protocol disabled: 403 with an empty body.
    pub protocol_disabled: bool,
    /// CLI maintenance mode: 503 with an HTML page.
    pub maintenance: bool,
    /// `$CFG->allowaccountssameemail`.
    pub allow_accounts_same_email: bool,
    /// Every read returns zero records (the mass-deletion guard's test case).
    pub zero_records: bool,
    /// Functions missing from the token's service (`accessexception`).
    pub missing_functions: Vec<String>,
    /// Capabilities the token's user lacks (`nopermissions`), e.g. `moodle/user:create`.
    pub nopermissions: Vec<String>,
    /// Role ids the token's user may not assign (`wsusercannotassign`).
    pub wsusercannotassign: Vec<i64>,
    /// `local_student_dashboard` installed; when false its functions are unknown.
    pub plugin_installed: bool,
    /// The receiver base for the plugin's outbound events, e.g. `http://127.0.0.1:8080/v1/events/moodle`.
    pub webhook_url: Option<String>,
    pub webhook_hmac_secret: Option<Secret>,
    /// Also post events for changes made through the web service (the real plugin's observers do: echo).
    pub webhook_on_ws_writes: bool,
    /// Custom user profile fields defined on the site (others are silently ignored on create/update).
    pub profile_fields: Vec<String>,
    /// Most recent requests kept by the request log.
    pub request_log_cap: usize,
    /// *Show user identity* (`$CFG->showuseridentity`): the identity fields a token that is not a site admin
    /// reads. Stock: `email`, so `phone1` is left out of `core_user_get_users*` answers (reference §10).
    pub show_identity: Vec<String>,
    /// The token's user is a site admin (reads every field whatever `show_identity` says).
    pub token_is_admin: bool,
    /// Manual enrolment instances send the course welcome message (`customint1`; on by default since 4.4).
    pub welcome_message: bool,
    /// Outgoing mail works. Stock: not set up, so `enrol_manual_enrol_users` commits its enrolments and then
    /// raises `Message was not sent.` whenever it made a new one while `welcome_message` is on.
    pub mail_configured: bool,
    /// Server time per call on a fixed pool of PHP workers ([`CostModel`]); `None` (the default) costs nothing.
    pub cost: Option<CostModel>,
}

impl MoodleOptions {
    /// A stock site's answers turned off: `phone1` shown, mail working. What tests of other behaviour use.
    pub fn permissive() -> MoodleOptions {
        MoodleOptions {
            show_identity: vec!["email".into(), "phone1".into()],
            mail_configured: true,
            ..MoodleOptions::default()
        }
    }

    /// Whether a token reads `field` of other users (`user_get_user_details`: identity fields or a site admin).
    pub fn shows(&self, field: &str) -> bool {
        self.token_is_admin || self.show_identity.iter().any(|f| f == field)
    }

    /// Whether a new manual enrolment ends in `Message was not sent.` after its commit.
    pub fn welcome_fails(&self) -> bool {
        self.welcome_message && !self.mail_configured
    }
}

impl Default for MoodleOptions {
    fn default() -> Self {
        MoodleOptions {
            port: 0,
            latency_ms: 0,
            per_record_ms: 0,
            fault_rate: 0.0,
            fault_seed: 0,
            fault_kinds: ALL_FAULTS.to_vec(),
            fault_hold_ms: 60_000,
            fault_after_apply: 0.0,
            max_input_vars: 1000,
            debug: false,
            protocol_disabled: false,
            maintenance: false,
            allow_accounts_same_email: false,
            zero_records: false,
            missing_functions: Vec::new(),
            nopermissions: Vec::new(),
            wsusercannotassign: Vec::new(),
            plugin_installed: true,
            webhook_url: None,
            webhook_hmac_secret: None,
            webhook_on_ws_writes: false,
            profile_fields: Vec::new(),
            request_log_cap: 10_000,
            show_identity: vec!["email".into()],
            token_is_admin: false,
            welcome_message: true,
            mail_configured: false,
            cost: None,
        }
    }
}

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
    conns: Arc<http::Conns>,
    accept: Option<JoinHandle<()>>,
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
        let conns = Arc::new(http::Conns::default());
        let handler_shared = shared.clone();
        let handler: http::Handler = Arc::new(move |req| server::handle(&handler_shared, req));
        let c = conns.clone();
        let accept = std::thread::Builder::new()
            .name("fake-moodle-accept".into())
            .spawn(move || http::serve(listener, handler, c))?;
        tracing::debug!(%addr, "fake Moodle listening");
        Ok(FakeMoodle { shared, addr, conns, accept: Some(accept) })
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

    // ---- people working in Moodle (these fire the plugin's webhooks) ----

    fn fire(&self, e: Option<Event>) -> bool {
        let Some(e) = e else { return false };
        self.with_state(|s| s.events.push(e.clone()));
        self.shared.outbox.send(&e);
        true
    }

    /// A teacher sets a course-total grade (`None` removes it). Returns false for an unknown course.
    pub fn set_grade(&self, courseid: i64, userid: i64, finalgrade: Option<f64>) -> bool {
        let now = chrono::Utc::now().timestamp();
        let ev = self
            .with_state(|s| {
                s.courses.get(&courseid)?;
                let id = match s.grades.get_mut(&(courseid, userid)) {
                    Some(g) => {
                        g.finalgrade = finalgrade;
                        g.timemodified = now;
                        g.id
                    }
                    None => {
                        let id = s.next_grade_id();
                        s.grades
                            .insert((courseid, userid), Grade { id, courseid, userid, finalgrade, timemodified: now });
                        id
                    }
                };
                Some(Event {
                    eventname: "\\core\\event\\user_graded".into(),
                    courseid,
                    userid,
                    timecreated: now,
                    grade_id: Some(id),
                    grade: finalgrade,
                })
            })
            .flatten();
        self.fire(ev)
    }

    /// A teacher suspends or reactivates an enrolment. Returns false when there is no such enrolment.
    pub fn set_enrolment_status(&self, courseid: i64, userid: i64, suspended: bool) -> bool {
        let now = chrono::Utc::now().timestamp();
        let ev = self
            .with_state(|s| {
                let e = s.enrolments.get_mut(&(courseid, userid))?;
                e.status = i64::from(suspended);
                e.timemodified = now;
                Some(Event {
                    eventname: functions::enrol::UPDATED.into(),
                    courseid,
                    userid,
                    timecreated: now,
                    grade_id: None,
                    grade: None,
                })
            })
            .flatten();
        self.fire(ev)
    }

    /// A teacher edits an enrolment's dates (Unix seconds, 0 = none). Returns false when there is no such
    /// enrolment. Fires `user_enrolment_updated`, as Moodle does.
    pub fn set_enrolment_dates(&self, courseid: i64, userid: i64, timestart: i64, timeend: i64) -> bool {
        let now = chrono::Utc::now().timestamp();
        let ev = self
            .with_state(|s| {
                let e = s.enrolments.get_mut(&(courseid, userid))?;
                e.timestart = timestart;
                e.timeend = timeend;
                e.timemodified = now;
                Some(Event {
                    eventname: functions::enrol::UPDATED.into(),
                    courseid,
                    userid,
                    timecreated: now,
                    grade_id: None,
                    grade: None,
                })
            })
            .flatten();
        self.fire(ev)
    }

    /// A teacher enrols a user manually with a role (upsert, like the web service).
    pub fn enrol(&self, courseid: i64, userid: i64, roleid: i64) -> bool {
        let now = chrono::Utc::now().timestamp();
        let spec = functions::enrol::EnrolSpec { courseid, userid, roleid, timestart: 0, timeend: 0, status: 0 };
        let ev = self.with_state(|s| functions::enrol::upsert(s, spec, now)).flatten();
        self.fire(ev)
    }

    /// A teacher unenrols a user. Returns false when the user was not enrolled.
    pub fn unenrol(&self, courseid: i64, userid: i64) -> bool {
        let now = chrono::Utc::now().timestamp();
        let ev = self
            .with_state(|s| {
                s.unenrol(courseid, userid).map(|_| Event {
                    eventname: functions::enrol::DELETED.into(),
                    courseid,
                    userid,
                    timecreated: now,
                    grade_id: None,
                    grade: None,
                })
            })
            .flatten();
        self.fire(ev)
    }

    /// An admin deletes a user: as Moodle does, the user is unenrolled from every course (each firing
    /// `user_enrolment_deleted`, which the plugin posts) and soft-deleted (username and email mangled, id number
    /// cleared). Returns false for an unknown or already deleted user.
    pub fn delete_user(&self, id: i64) -> bool {
        use md5::Digest;
        let now = chrono::Utc::now().timestamp();
        let events = self
            .with_state(|s| {
                s.live_user(id)?;
                let courses: Vec<i64> = s.enrolments.keys().filter(|(_, u)| *u == id).map(|(c, _)| *c).collect();
                let events: Vec<Event> = courses
                    .into_iter()
                    .filter_map(|c| s.unenrol(c, id).map(|_| c))
                    .map(|courseid| Event {
                        eventname: functions::enrol::DELETED.into(),
                        courseid,
                        userid: id,
                        timecreated: now,
                        grade_id: None,
                        grade: None,
                    })
                    .collect();
                let taken: HashSet<String> = s.users.values().map(|u| u.username.clone()).collect();
                let u = s.users.get_mut(&id)?;
                let mut name = format!("{}.{now}", u.email.to_lowercase());
                while taken.contains(&name) {
                    name.push('1');
                }
                u.email = format!("{:x}", md5::Md5::digest(u.username.as_bytes()));
                u.username = name;
                u.idnumber.clear();
                u.deleted = true;
                u.timemodified = now;
                Some(events)
            })
            .flatten();
        let Some(events) = events else { return false };
        for e in events {
            self.fire(Some(e));
        }
        true
    }

    /// Someone removes a row of a plugin table (`payments`, `registrations`, `units`) by its Zoho id, outside
    /// zmsync and without an event (a database clean-up). Returns false when there is no such row.
    pub fn delete_plugin_row(&self, table: &str, zoho_id: &str) -> bool {
        self.with_state(|s| {
            let Some((_, t)) = s.plugin.iter_mut().find(|(k, _)| **k == table) else { return false };
            let Some(id) = t.find(zoho_id) else { return false };
            t.remove(id);
            true
        })
        .unwrap_or(false)
    }

    /// An admin edits a user. The plugin observes only enrolments and grades (contract §9), so user edits
    /// post no webhook: the sync finds them by reconciling.
    fn edit_user(&self, id: i64, f: impl FnOnce(&mut User)) -> bool {
        let now = chrono::Utc::now().timestamp();
        self.with_state(|s| match s.users.get_mut(&id).filter(|u| !u.deleted) {
            Some(u) => {
                f(u);
                u.timemodified = now;
                true
            }
            None => false,
        })
        .unwrap_or(false)
    }

    pub fn suspend_user(&self, id: i64) -> bool {
        self.edit_user(id, |u| u.suspended = true)
    }

    pub fn rename_user(&self, id: i64, first: &str, last: &str) -> bool {
        self.edit_user(id, |u| {
            u.firstname = first.into();
            u.lastname = last.into();
        })
    }

    pub fn set_user_email(&self, id: i64, email: &str) -> bool {
        self.edit_user(id, |u| u.email = email.into())
    }
}

impl Drop for FakeMoodle {
    fn drop(&mut self) {
        self.conns.stopping.store(true, Ordering::SeqCst);
        // Unblock accept() with a throwaway connection, and wake every connection thread.
        let _ = TcpStream::connect(self.addr);
        if let Ok(m) = self.conns.streams.lock() {
            for s in m.values() {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        self.shared.outbox.close();
    }
}
