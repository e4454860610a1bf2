//! The HTTP side: tiny_http worker threads, one request at a time each, answering JSON.
//!
//! Per request: route (404/405) → source enabled (503 naming the variable) → body capped (413) → content
//! type (415) → signature or token (401) → rate limit (429) → payload (400/422) → group commit (202/200, or
//! 503 with Retry-After when the store is unavailable). A client's input never causes a 5xx.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tiny_http::{Header, Request, Response};

use super::payloads::{self, PayloadError};
use super::ratelimit::RateLimiter;
use super::routes::{self, Route, RouteError};
use super::signature;
use super::writer::{self, WriterHandle};
use super::{Secrets, ServeError, ServeOptions};
use crate::store::events::{InsertOutcome, NewEvent};
use crate::store::{self, Store};

/// The largest body accepted.
pub const MAX_BODY: usize = 64 * 1024;

struct Shared {
    secrets: Secrets,
    limiter: RateLimiter,
    writer: WriterHandle,
    reader: Box<dyn Store>,
    breakdown: Option<Breakdown>,
}

/// The environment variable that turns on the per-request breakdown: set (to anything but `0`), the receiver
/// times each accepted request's stages and logs p50 / p99 / max of each when it stops.
pub const TIMING_VAR: &str = "ZMSYNC_WEBHOOK_TIMING";

/// The log target of the breakdown's lines.
pub const TIMING_TARGET: &str = "zmsync::webhook::timing";

/// The stages of [`Breakdown`], in order.
const STAGES: [&str; 7] = ["body", "check", "queued", "commit", "wake", "respond", "total"];

/// Where one request's time went, from the worker taking it from tiny_http: reading the body; content type,
/// signature, payload and rate limit; waiting for the commit before its own; its batch's commit; from the
/// commit to its worker running again; writing the answer; and all of it. What it does not see: the time
/// from the request's arrival to a worker taking it (tiny_http's connection thread and queue).
#[derive(Default)]
struct Stages {
    body: Duration,
    check: Duration,
    write: writer::WriteTiming,
}

/// The per-request breakdown of accepted events, kept when [`TIMING_VAR`] is set.
#[derive(Default)]
struct Breakdown {
    rows: std::sync::Mutex<Vec<[Duration; STAGES.len()]>>,
}

impl Breakdown {
    fn from_env() -> Option<Breakdown> {
        std::env::var(TIMING_VAR).ok().filter(|v| !v.is_empty() && v != "0").map(|_| Breakdown::default())
    }

    fn record(&self, s: &Stages, respond: Duration, total: Duration) {
        let row = [s.body, s.check, s.write.queued, s.write.commit, s.write.wake, respond, total];
        self.rows.lock().unwrap_or_else(|p| p.into_inner()).push(row);
    }

    /// Logs p50 / p99 / max of each stage.
    fn log(&self) {
        let rows = std::mem::take(&mut *self.rows.lock().unwrap_or_else(|p| p.into_inner()));
        for (i, stage) in STAGES.iter().enumerate() {
            let mut v: Vec<Duration> = rows.iter().map(|r| r[i]).collect();
            v.sort();
            let at = |p: f64| v.get(((v.len().max(1) - 1) as f64 * p).round() as usize).copied().unwrap_or_default();
            let us = |d: Duration| d.as_micros() as u64;
            tracing::info!(
                target: TIMING_TARGET,
                stage,
                requests = v.len(),
                p50_us = us(at(0.50)),
                p99_us = us(at(0.99)),
                max_us = us(at(1.0)),
                "webhook timing"
            );
        }
    }
}

/// An answer: status, JSON body, extra headers.
struct Answer {
    status: u16,
    body: Value,
    headers: Vec<(&'static str, String)>,
}

impl Answer {
    fn new(status: u16, body: Value) -> Answer {
        Answer { status, body, headers: Vec::new() }
    }

    fn error(status: u16, message: impl Into<String>) -> Answer {
        Answer::new(status, json!({"success": false, "status": status, "error": message.into()}))
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }
}

/// A bound receiver, not yet serving.
pub struct Receiver {
    listener: std::net::TcpListener,
    addr: SocketAddr,
}

/// How many tiny_http servers share the listening socket at most (each with its own accept thread, connection
/// pool and request queue; the workers are spread over them). See [`nudge_connections`] for why.
const SERVERS: usize = 4;

impl Receiver {
    pub fn bind(bind: &str) -> Result<Receiver, ServeError> {
        let err = |e: std::io::Error| ServeError::Bind { bind: bind.to_string(), message: e.to_string() };
        let listener = std::net::TcpListener::bind(bind).map_err(err)?;
        let addr = listener.local_addr().map_err(err)?;
        Ok(Receiver { listener, addr })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `stop` is set, then drains: requests already received are answered (each after its
    /// commit), and the call returns.
    pub fn run(self, opts: ServeOptions, stop: Arc<AtomicBool>) -> Result<(), ServeError> {
        let (writer_store, retry_for) = open_writer_store(&opts.database_url, &stop)?;
        let reader = open_store(&opts.database_url)?;
        let settings = crate::settings::Settings::from_rows(&reader.settings_map()?)?;
        warn_disabled(&opts.secrets);
        let writer = writer::new(writer_store, retry_for);
        let shared = Arc::new(Shared {
            secrets: opts.secrets,
            limiter: RateLimiter::new(&settings.webhook_limits),
            writer,
            reader,
            breakdown: Breakdown::from_env(),
        });
        tracing::info!(addr = %self.addr, workers = opts.workers, store = shared.reader.dialect().name(), "webhook receiver listening");
        let mut servers = Vec::new();
        for _ in 0..opts.workers.clamp(1, SERVERS) {
            let bind_err = |message: String| ServeError::Bind { bind: self.addr.to_string(), message };
            let listener = self.listener.try_clone().map_err(|e| bind_err(e.to_string()))?;
            let server = tiny_http::Server::from_listener(listener, None).map_err(|e| bind_err(e.to_string()))?;
            servers.push(Arc::new(server));
        }
        let mut workers = Vec::new();
        for i in 0..opts.workers.max(1) {
            let server = Arc::clone(&servers[i % servers.len()]);
            let shared = Arc::clone(&shared);
            let stop = Arc::clone(&stop);
            workers.push(
                std::thread::Builder::new()
                    .name(format!("webhook-{i}"))
                    .spawn(move || worker(&server, &shared, &stop))
                    .expect("spawn a webhook worker"),
            );
        }
        let nudger = {
            let (addr, stop, n) = (self.addr, Arc::clone(&stop), servers.len());
            std::thread::Builder::new()
                .name("accept-nudge".into())
                .spawn(move || nudge_connections(addr, n, &stop))
                .expect("spawn the connection nudge thread")
        };
        let reloader = {
            let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("settings-reload".into())
                .spawn(move || reload_settings(&shared, &stop, &opts.reload))
                .expect("spawn the settings reload thread")
        };
        for w in workers {
            let _ = w.join();
        }
        let _ = reloader.join();
        let _ = nudger.join();
        tracing::info!("webhook receiver draining");
        if let Some(b) = &shared.breakdown {
            b.log();
        }
        drop(shared);
        tracing::info!("webhook receiver stopped");
        Ok(())
    }
}

/// How long one SQLite write attempt waits for another process's write lock.
const WRITER_BUSY_TIMEOUT: Duration = Duration::from_secs(1);

/// The writer's own connection. On SQLite its automatic WAL checkpoints are moved to a thread of their own
/// (a passive checkpoint every 250 ms), so the fsync of a checkpoint never sits between a commit and its 202.
///
/// On PostgreSQL a connection is waited for at most [`PG_WAIT`], and a failing batch retried for as long: a
/// server that is gone is answered 503 within about a second, not after the pool's usual 10 s. Returns the
/// store and how long the writer retries a failing batch.
fn open_writer_store(url: &str, stop: &Arc<AtomicBool>) -> Result<(Box<dyn Store>, Duration), ServeError> {
    let Some(path) = url.strip_prefix("sqlite://") else {
        let retry_for = if is_postgres(url) { PG_WAIT } else { writer::RETRY_FOR };
        return Ok((open_store(url)?, retry_for));
    };
    let writer = store::sqlite::SqliteStore::open(path)?;
    writer.conn().pragma_update(None, "wal_autocheckpoint", 0).map_err(store::StoreError::from)?;
    // Another process holding the write lock is waited for a second per attempt (the writer retries for a few
    // seconds more), not the store's usual 30 s: a client is answered 503 rather than kept waiting.
    writer.conn().busy_timeout(WRITER_BUSY_TIMEOUT).map_err(store::StoreError::from)?;
    let checkpointer = store::sqlite::SqliteStore::open(path)?;
    let stop = Arc::clone(stop);
    std::thread::Builder::new()
        .name("wal-checkpoint".into())
        .spawn(move || loop {
            let done = stop.load(Ordering::SeqCst);
            if let Err(e) = checkpointer.conn().query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::debug!(error = %e, "WAL checkpoint skipped");
            }
            if done {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        })
        .expect("spawn the WAL checkpoint thread");
    Ok((Box::new(writer), writer::RETRY_FOR))
}

/// How long the receiver waits for a PostgreSQL connection, and its writer retries a failing batch.
const PG_WAIT: Duration = Duration::from_secs(1);

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The store, on PostgreSQL with a pool that waits at most [`PG_WAIT`] for a connection.
fn open_store(url: &str) -> Result<Box<dyn Store>, store::StoreError> {
    if is_postgres(url) {
        return Ok(Box::new(store::postgres::PgStore::open_waiting(url, PG_WAIT)?));
    }
    store::open(url)
}

/// tiny_http hands each new connection to a thread of its pool (which keeps it for the connection's life),
/// but the pool counts a thread that was just woken for one connection as still idle until it runs, so a
/// second connection accepted at that moment is queued with no thread to take it; it waits until some pool
/// thread finishes a connection. Behind a proxy that keeps its upstream connections open, that can be seconds
/// (the webhook benchmark saw one wait 9.9 s). Two things bound it: [`SERVERS`] servers share the listening
/// socket, so a burst of connections is spread over as many pools (each starts with 4 idle threads) and rarely
/// exhausts one; and `servers` empty connections to ourselves every [`NUDGE_EVERY`] (each starting a pool
/// thread where none is idle, which then takes the queued connection) end a wait that happens anyway.
fn nudge_connections(addr: SocketAddr, servers: usize, stop: &AtomicBool) {
    let target = if addr.ip().is_unspecified() {
        SocketAddr::new(
            if addr.is_ipv4() { std::net::Ipv4Addr::LOCALHOST.into() } else { std::net::Ipv6Addr::LOCALHOST.into() },
            addr.port(),
        )
    } else {
        addr
    };
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(NUDGE_EVERY);
        for _ in 0..servers {
            if let Ok(c) = std::net::TcpStream::connect_timeout(&target, Duration::from_secs(1)) {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// How often [`nudge_connections`] connects.
const NUDGE_EVERY: Duration = Duration::from_millis(100);

/// How often the receiver re-reads its settings (`webhook.rate_limit`) without being asked.
pub const RELOAD_EVERY: Duration = Duration::from_secs(5);

/// Re-reads `webhook.rate_limit` every [`RELOAD_EVERY`], and at once when `reload` is set (SIGHUP), until
/// `stop`. A value that cannot be read leaves the limits as they are.
fn reload_settings(shared: &Shared, stop: &AtomicBool, reload: &AtomicBool) {
    let mut last = std::time::Instant::now();
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
        let asked = reload.swap(false, Ordering::SeqCst);
        if !asked && last.elapsed() < RELOAD_EVERY {
            continue;
        }
        last = std::time::Instant::now();
        let limits = shared
            .reader
            .settings_map()
            .map_err(|e| e.to_string())
            .and_then(|rows| crate::settings::Settings::from_rows(&rows).map_err(|e| e.to_string()));
        match limits {
            Ok(settings) => {
                let l = &settings.webhook_limits;
                if shared.limiter.set_limits(l) {
                    tracing::info!(
                        per_source_per_second = l.per_source_per_second,
                        burst = l.burst,
                        "webhook.rate_limit changed"
                    );
                } else if asked {
                    tracing::info!(
                        per_source_per_second = l.per_source_per_second,
                        burst = l.burst,
                        "webhook.rate_limit re-read: unchanged"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot re-read the settings; the rate limit stays as it was"),
        }
    }
}

fn warn_disabled(secrets: &Secrets) {
    if secrets.zoho.is_none() {
        tracing::warn!(
            "ZOHO_WEBHOOK_HMAC_SECRET is not set: the Zoho webhook routes (/v1/events/zoho/<entity>) are DISABLED and answer 503; set it and restart"
        );
    }
    if secrets.zoho_notify.is_none() {
        tracing::warn!(
            "ZOHO_NOTIFY_TOKEN is not set: the Zoho Notification API route (/v1/events/zoho/notify) is DISABLED and answers 503; set it and restart"
        );
    }
    if secrets.moodle.is_none() {
        tracing::warn!(
            "MOODLE_WEBHOOK_HMAC_SECRET is not set: the Moodle webhook routes (/v1/events/moodle/<entity>) are DISABLED and answer 503; set it and restart"
        );
    }
}

fn worker(server: &tiny_http::Server, shared: &Shared, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        match server.recv_timeout(Duration::from_millis(100)) {
            Ok(Some(req)) => serve_one(shared, req),
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "webhook receiver cannot accept requests");
                return;
            }
        }
    }
    // Drain what was already received.
    while let Ok(Some(req)) = server.try_recv() {
        serve_one(shared, req);
    }
}

fn serve_one(shared: &Shared, req: Request) {
    // A bug must not take a worker down with it: the request is answered 500 by tiny_http when dropped
    // unanswered, and the worker goes on.
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| answer_one(shared, req))).is_err() {
        tracing::error!("a webhook request handler panicked; the worker goes on");
    }
}

fn answer_one(shared: &Shared, mut req: Request) {
    let start = std::time::Instant::now();
    let mut stages = Stages::default();
    let answer = handle(shared, &mut req, &mut stages);
    let accepted = matches!(answer.status, 200 | 202) && stages.write.commit > Duration::ZERO;
    let mut resp = Response::from_data(serde_json::to_vec(&answer.body).unwrap_or_default())
        .with_status_code(answer.status)
        .with_header(Header::from_bytes("Content-Type", "application/json").expect("static header"));
    for (name, value) in answer.headers {
        if let Ok(h) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            resp.add_header(h);
        }
    }
    let responding = std::time::Instant::now();
    if let Err(e) = req.respond(resp) {
        tracing::debug!(error = %e, "client went away before the answer");
    }
    if let (Some(b), true) = (&shared.breakdown, accepted) {
        b.record(&stages, responding.elapsed(), start.elapsed());
    }
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers().iter().find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
}

fn handle(shared: &Shared, req: &mut Request, stages: &mut Stages) -> Answer {
    let route = match routes::resolve(req.method().as_str(), req.url()) {
        Ok(r) => r,
        Err(RouteError::NotFound) => {
            return Answer::error(404, format!("no such route: {}", req.url().split('?').next().unwrap_or("")))
        }
        Err(RouteError::MethodNotAllowed { allow }) => {
            return Answer::error(405, format!("method {} is not allowed here; use {allow}", req.method()))
                .header("Allow", allow)
        }
    };
    match route {
        Route::Health => return health(shared),
        Route::Stats => return stats(shared),
        _ => {}
    }
    let source = route.source().expect("event routes have a source");
    // Which secret authenticates this route; a route whose secret is not set is disabled.
    let (secret, var) = match route {
        Route::ZohoNotify => (shared.secrets.zoho_notify.as_ref(), "ZOHO_NOTIFY_TOKEN"),
        Route::Zoho { .. } => (shared.secrets.zoho.as_ref(), "ZOHO_WEBHOOK_HMAC_SECRET"),
        _ => (shared.secrets.moodle.as_ref(), "MOODLE_WEBHOOK_HMAC_SECRET"),
    };
    let Some(secret) = secret else {
        return Answer::error(503, format!("this route is disabled: {var} is not set"))
            .header("Retry-After", "3600")
            .with_hint(format!("set {var} in the receiver's environment (or .env) and restart zmsync serve"));
    };

    // Body, capped.
    let reading = std::time::Instant::now();
    if req.body_length().is_some_and(|n| n > MAX_BODY) {
        return too_large(req);
    }
    let mut body = Vec::with_capacity(req.body_length().unwrap_or(1024).min(MAX_BODY));
    if let Err(e) = req.as_reader().take(MAX_BODY as u64 + 1).read_to_end(&mut body) {
        return Answer::error(400, format!("cannot read the request body: {e}"));
    }
    if body.len() > MAX_BODY {
        return too_large(req);
    }
    stages.body = reading.elapsed();
    let checking = std::time::Instant::now();

    let format = match payloads::body_format(header(req, "Content-Type")) {
        Ok(f) => f,
        Err(e) => return payload_error(&e),
    };

    let received_ms = chrono::Utc::now().timestamp_millis();
    let events = match route {
        Route::ZohoNotify => {
            // Zoho signs nothing here: the channel's token is the check, compared in constant time.
            let map = match payloads::object(format, &body) {
                Ok(m) => m,
                Err(e) => return payload_error(&e),
            };
            match payloads::notification_token(&map) {
                Some(t) if signature::token_matches(secret, t) => {}
                Some(_) => return Answer::error(401, "the channel token does not match ZOHO_NOTIFY_TOKEN"),
                None => return Answer::error(401, "the callback carries no channel `token`"),
            }
            payloads::zoho_notification(map)
        }
        Route::Zoho { entity, module } => {
            if let Err(e) = signature::verify(secret, &body, header(req, "X-Zoho-Signature")) {
                return signature_error(e, "X-Zoho-Signature");
            }
            payloads::object(format, &body).and_then(|m| payloads::zoho_workflow(entity, module, m, received_ms))
        }
        Route::Moodle { entity } => {
            if let Err(e) = signature::verify(secret, &body, header(req, "X-Moodle-Signature")) {
                return signature_error(e, "X-Moodle-Signature");
            }
            payloads::object(format, &body).and_then(|m| payloads::moodle(entity, m).map(|e| vec![e]))
        }
        Route::Health | Route::Stats => unreachable!("answered above"),
    };
    let events = match events {
        Ok(e) => e,
        Err(e) => return payload_error(&e),
    };

    if let Err(wait) = shared.limiter.take(source, events.len()) {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
        return Answer::error(429, format!("too many {} events; retry after {secs} s", source.name()))
            .header("Retry-After", secs.to_string());
    }
    stages.check = checking.elapsed();
    accept(shared, events, stages)
}

fn accept(shared: &Shared, events: Vec<NewEvent>, stages: &mut Stages) -> Answer {
    let ids: Vec<String> = events.iter().map(|e| e.event_id.clone()).collect();
    let keys: Vec<(String, String, String)> =
        events.iter().map(|e| (e.source.clone(), e.entity_type.clone(), e.record_id.clone())).collect();
    let (outcome, timing) = shared.writer.submit_timed(events);
    stages.write = timing;
    let outcomes = match outcome {
        Ok(o) => o,
        Err(e) => {
            return Answer::error(503, format!("{e}; retry later")).header("Retry-After", "5");
        }
    };
    for ((id, (source, entity, key)), outcome) in ids.iter().zip(&keys).zip(&outcomes) {
        tracing::info!(event_id = %id, source = %source, entity = %entity, record_id = %key, outcome = ?outcome, "event");
    }
    let any_new = outcomes.contains(&InsertOutcome::Inserted);
    let (status, message, word) = if any_new {
        (202, "Event accepted for processing", "queued")
    } else {
        (200, "Duplicate event: already accepted, nothing done", "duplicate")
    };
    let mut body = json!({"success": true, "message": message, "event_id": ids[0], "status": word});
    if ids.len() > 1 {
        body["events"] = Value::Array(
            ids.iter()
                .zip(&outcomes)
                .map(|(id, o)| {
                    json!({"event_id": id, "status": if *o == InsertOutcome::Inserted { "queued" } else { "duplicate" }})
                })
                .collect(),
        );
    }
    Answer::new(status, body)
}

fn too_large(req: &mut Request) -> Answer {
    // Read (and drop) a bounded amount of what the client is still sending, so it sees the answer rather
    // than a reset connection; then close.
    let _ = std::io::copy(&mut req.as_reader().take(1 << 20), &mut std::io::sink());
    Answer::error(
        413,
        format!("the body is larger than {} KiB; webhook payloads are tiny: send the record id only", MAX_BODY / 1024),
    )
    .header("Connection", "close")
}

fn payload_error(e: &PayloadError) -> Answer {
    Answer::error(e.status(), e.to_string())
}

fn signature_error(e: signature::SignatureError, header: &str) -> Answer {
    Answer::error(401, format!("{e} ({header}: HMAC-SHA256 of the exact body with the shared secret, hex)"))
}

fn health(shared: &Shared) -> Answer {
    match shared.reader.schema_version() {
        Ok(v) => Answer::new(
            200,
            json!({"success": true, "status": "ok", "store": shared.reader.dialect().name(), "schema_version": v,
                   "sources": {"zoho": shared.secrets.zoho.is_some(), "zoho_notify": shared.secrets.zoho_notify.is_some(),
                               "moodle": shared.secrets.moodle.is_some()}}),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "health: store unreachable");
            Answer::error(503, "the event store is unreachable").header("Retry-After", "5")
        }
    }
}

fn stats(shared: &Shared) -> Answer {
    match shared.reader.event_counts() {
        Ok(counts) => {
            let mut by_source = Map::new();
            let mut total = 0;
            for c in counts {
                total += c.count;
                by_source
                    .entry(c.source)
                    .or_insert_with(|| Value::Object(Map::new()))
                    .as_object_mut()
                    .expect("object")
                    .insert(c.status, json!(c.count));
            }
            Answer::new(200, json!({"success": true, "counts": by_source, "total": total}))
        }
        Err(e) => {
            tracing::warn!(error = %e, "stats: store unreachable");
            Answer::error(503, "the event store is unreachable").header("Retry-After", "5")
        }
    }
}

trait WithHint {
    fn with_hint(self, hint: String) -> Self;
}

impl WithHint for Answer {
    fn with_hint(mut self, hint: String) -> Answer {
        self.body["hint"] = Value::String(hint);
        self
    }
}
