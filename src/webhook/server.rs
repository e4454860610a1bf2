//! The HTTP side: hyper 1.x (HTTP/1.1) on a tokio runtime, answering JSON.
//!
//! Per request: route (404/405) → source enabled (503 naming the variable) → body: its declared length
//! checked before reading (413), read within [`BODY_TIMEOUT`] (408) and capped while reading (413, chunked
//! too) → content type (415) → signature or token (401) → rate limit (429) → payload (400/422) → group commit
//! (202/200, or 503 with Retry-After when the store is unavailable). A client's input never causes a 5xx.
//!
//! Limits that no request can pass (docs/webhooks.md "Limits"): a request head (request line and headers)
//! of at most [`MAX_HEAD`] bytes and [`MAX_HEADERS`] headers (431), sent within [`HEAD_TIMEOUT`] of the
//! connection's opening or of its previous answer (an idle keep-alive connection is closed then too); a body
//! of at most [`MAX_BODY`] within [`BODY_TIMEOUT`]; at most [`MAX_CONNECTIONS`] connections open (more are
//! answered 503 and closed at once). A slow client holds only its own connection: reading and waiting are
//! async, and only a request whose body has fully arrived takes one of the `--workers` store slots, the
//! blocking threads that verify, commit and wait for the commit (the store is blocking; it never runs on the
//! async threads).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body as _, Incoming};
use hyper::header::{HeaderMap, CONTENT_TYPE};
use hyper::{Request, Response};
use serde_json::{json, Map, Value};
use tokio::sync::Semaphore;

use super::payloads::{self, PayloadError};
use super::routes::{self, Route, RouteError};
use super::signature;
use super::{Secrets, ServeError, ServeOptions};
use crate::secret::Secret;
use crate::store::events::{InsertOutcome, NewEvent};

pub use super::startup::RELOAD_EVERY;
pub(super) use super::startup::{finish, reload_settings, start, Shared};
pub(super) use super::timing::Stages;
pub use super::timing::{TIMING_TARGET, TIMING_VAR};

/// The largest body accepted (413 above it, checked on the declared length before reading and while reading).
pub const MAX_BODY: usize = 64 * 1024;
/// The largest request head (request line and headers) accepted, in bytes (431 above it).
pub const MAX_HEAD: usize = 16 * 1024;
/// The most headers a request may carry (431 above it).
pub const MAX_HEADERS: usize = 64;
/// How long a client has to send a request's head, from the connection's opening or its previous answer: a
/// slowloris client, or a keep-alive connection idle for this long, is closed.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client has to send a request's body once its head is in (408 after it, and the connection is
/// closed).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections at most; one more is answered 503 and closed at once.
pub const MAX_CONNECTIONS: usize = 1024;

/// An answer: status, JSON body, extra headers.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) body: Value,
    pub(super) headers: Vec<(&'static str, String)>,
}

impl Answer {
    pub(super) fn new(status: u16, body: Value) -> Answer {
        Answer { status, body, headers: Vec::new() }
    }

    pub(super) fn error(status: u16, message: impl Into<String>) -> Answer {
        Answer::new(status, json!({"success": false, "status": status, "error": message.into()}))
    }

    pub(super) fn header(mut self, name: &'static str, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }
}

/// A bound receiver, not yet serving.
pub struct Receiver {
    pub(super) listener: std::net::TcpListener,
    pub(super) addr: SocketAddr,
}

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
        let shared = start(&opts, &stop)?;
        let slots = usize::from(opts.workers.clamp(1, 1024) as u16);
        tracing::info!(addr = %self.addr, workers = slots, store = shared.reader.dialect().name(), "webhook receiver listening");
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 8);
        let bind_err = |message: String| ServeError::Bind { bind: self.addr.to_string(), message };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .max_blocking_threads(slots + 4)
            .thread_name("webhook")
            .enable_all()
            .build()
            .map_err(|e| bind_err(format!("cannot start the receiver's runtime: {e}")))?;
        self.listener.set_nonblocking(true).map_err(|e| bind_err(e.to_string()))?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(self.listener).map_err(|e| bind_err(e.to_string()))?
        };
        let reloader = {
            let (shared, stop, reload) = (Arc::clone(&shared), Arc::clone(&stop), Arc::clone(&opts.reload));
            std::thread::Builder::new()
                .name("settings-reload".into())
                .spawn(move || reload_settings(&shared, &stop, &reload))
                .map_err(|e| bind_err(format!("cannot start the settings reload thread: {e}")))?
        };
        runtime.block_on(serve(listener, Arc::clone(&shared), slots, Arc::clone(&stop)));
        runtime.shutdown_timeout(Duration::from_secs(1));
        let _ = reloader.join();
        finish(shared);
        Ok(())
    }
}

/// How long a stopping receiver waits for its connections to finish their requests.
const DRAIN_FOR: Duration = Duration::from_secs(15);

/// Accepts connections until `stop`, each served on a task of its own; then stops accepting, lets every
/// connection finish the request it is in (idle ones close at once), and returns.
async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>, slots: usize, stop: Arc<AtomicBool>) {
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let slots = Arc::new(Semaphore::new(slots));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(MAX_HEAD.max(8192))
        .max_header_size(MAX_HEAD)
        .max_headers(MAX_HEADERS);
    let mut refused_logged = Instant::now() - Duration::from_secs(60);
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, most likely: wait a little rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&stop) => break,
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            // Full: tell the client (if its socket takes the bytes now) and close; never wait on it.
            let _ = stream.try_write(BUSY.as_bytes());
            if refused_logged.elapsed() > Duration::from_secs(10) {
                tracing::warn!(limit = MAX_CONNECTIONS, "too many open connections; refusing new ones");
                refused_logged = Instant::now();
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (shared, slots) = (Arc::clone(&shared), Arc::clone(&slots));
        let service = hyper::service::service_fn(move |req| respond(Arc::clone(&shared), Arc::clone(&slots), req));
        let conn = graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_FOR, graceful.shutdown()).await.is_err() {
        tracing::warn!(seconds = DRAIN_FOR.as_secs(), "some connections were still open after draining; closing them");
    }
}

/// The answer to a connection beyond [`MAX_CONNECTIONS`].
const BUSY: &str = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 83\r\n\r\n{\"success\":false,\"status\":503,\"error\":\"too many open connections; retry in a second\"}";

/// Resolves once `stop` is set (checked every 50 ms).
async fn stopped(stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One request: its answer, the body read here (async), the checks and the commit on a store slot.
async fn respond(
    shared: Arc<Shared>,
    slots: Arc<Semaphore>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let start = Instant::now();
    let mut stages = Stages::default();
    let url = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    let answer = match step(&shared, req.method().as_str(), &url) {
        Step::Answer(a) => a,
        Step::Health => on_slot(&slots, Arc::clone(&shared), health).await,
        Step::Stats => on_slot(&slots, Arc::clone(&shared), stats).await,
        Step::Event(route) => {
            let headers = EventHeaders::of(req.headers(), route);
            let reading = Instant::now();
            match read_body(req.into_body()).await {
                Err(a) => a,
                Ok(body) => {
                    stages.body = reading.elapsed();
                    let done: Result<(Answer, Stages), Answer> = on_slot(&slots, Arc::clone(&shared), move |sh| {
                        let a = handle_event(sh, route, &headers, &body, &mut stages);
                        (a, stages)
                    })
                    .await;
                    let (a, s) = done.unwrap_or_else(|a| (a, Stages::default()));
                    stages = s;
                    a
                }
            }
        }
    };
    let accepted = matches!(answer.status, 200 | 202) && stages.write.commit > Duration::ZERO;
    if let (Some(b), true) = (&shared.breakdown, accepted) {
        b.record(&stages, Duration::ZERO, start.elapsed());
    }
    Ok(answer.into_response())
}

/// Runs `f` on a blocking thread once one of the store slots (`--workers`) is free.
async fn on_slot<T: Send + 'static, R: OnSlot<T>>(
    slots: &Arc<Semaphore>,
    shared: Arc<Shared>,
    f: impl FnOnce(&Shared) -> T + Send + 'static,
) -> R {
    let Ok(permit) = Arc::clone(slots).acquire_owned().await else {
        return R::failed();
    };
    match tokio::task::spawn_blocking(move || {
        let out = f(&shared);
        drop(permit);
        out
    })
    .await
    {
        Ok(out) => R::done(out),
        Err(_) => {
            tracing::error!("a webhook request handler panicked; the receiver goes on");
            R::failed()
        }
    }
}

/// What [`on_slot`] gives back: the closure's value, or an answer when it could not run (a 500).
trait OnSlot<T> {
    fn done(t: T) -> Self;
    fn failed() -> Self;
}

impl OnSlot<Answer> for Answer {
    fn done(t: Answer) -> Answer {
        t
    }
    fn failed() -> Answer {
        Answer::error(500, "internal error: the request was not handled (nothing was recorded); retry")
    }
}

impl<T> OnSlot<T> for Result<T, Answer> {
    fn done(t: T) -> Self {
        Ok(t)
    }
    fn failed() -> Self {
        Err(Answer::failed())
    }
}

/// The body, whole: refused (413) when its declared length is over [`MAX_BODY`] before anything is read, or
/// as soon as what arrives (chunked included) passes it; 408 when it is not all in within [`BODY_TIMEOUT`].
/// Every refusal closes the connection (what is left of the body is never read).
async fn read_body(body: Incoming) -> Result<Bytes, Answer> {
    if body.size_hint().lower() > MAX_BODY as u64 {
        return Err(too_large());
    }
    match tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(e)) => {
            Err(Answer::error(400, format!("cannot read the request body: {e}")).header("Connection", "close"))
        }
        Err(_) => Err(Answer::error(
            408,
            format!("the body did not arrive within {} s; send the whole request at once", BODY_TIMEOUT.as_secs()),
        )
        .header("Connection", "close")),
    }
}

/// The headers an event route reads, copied out of the request.
pub(super) struct EventHeaders {
    content_type: Option<String>,
    signature: Option<String>,
}

impl EventHeaders {
    fn of(headers: &HeaderMap, route: Route) -> EventHeaders {
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        EventHeaders {
            content_type: headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string),
            signature: signature_header(route).and_then(get),
        }
    }

    /// From any header lookup (the legacy server's).
    pub(super) fn from_lookup<'a>(route: Route, get: impl Fn(&str) -> Option<&'a str>) -> EventHeaders {
        EventHeaders {
            content_type: get("Content-Type").map(str::to_string),
            signature: signature_header(route).and_then(&get).map(str::to_string),
        }
    }
}

/// The header that carries a route's signature (none on the Notification API route: its token is in the body).
fn signature_header(route: Route) -> Option<&'static str> {
    match route {
        Route::Zoho { .. } => Some("X-Zoho-Signature"),
        Route::Moodle { .. } => Some("X-Moodle-Signature"),
        _ => None,
    }
}

/// What a request's method and URL lead to, before its body is read.
pub(super) enum Step {
    Answer(Answer),
    Health,
    Stats,
    Event(Route),
}

/// The route's secret and the variable that sets it.
fn secret_of(secrets: &Secrets, route: Route) -> (Option<&Secret>, &'static str) {
    match route {
        Route::ZohoNotify => (secrets.zoho_notify.as_ref(), "ZOHO_NOTIFY_TOKEN"),
        Route::Zoho { .. } => (secrets.zoho.as_ref(), "ZOHO_WEBHOOK_HMAC_SECRET"),
        _ => (secrets.moodle.as_ref(), "MOODLE_WEBHOOK_HMAC_SECRET"),
    }
}

/// Route (404/405) and source enabled (503): everything decided before the body is read.
pub(super) fn step(shared: &Shared, method: &str, url: &str) -> Step {
    let route = match routes::resolve(method, url) {
        Ok(r) => r,
        Err(RouteError::NotFound) => {
            let path: String = url.split('?').next().unwrap_or("").chars().take(200).collect();
            return Step::Answer(Answer::error(404, format!("no such route: {path}")));
        }
        Err(RouteError::MethodNotAllowed { allow }) => {
            let method: String = method.chars().take(20).collect();
            return Step::Answer(
                Answer::error(405, format!("method {method} is not allowed here; use {allow}")).header("Allow", allow),
            );
        }
    };
    match route {
        Route::Health => return Step::Health,
        Route::Stats => return Step::Stats,
        _ => {}
    }
    // A route whose secret is not set is disabled.
    if let (None, var) = secret_of(&shared.secrets, route) {
        return Step::Answer(
            Answer::error(503, format!("this route is disabled: {var} is not set"))
                .header("Retry-After", "3600")
                .with_hint(format!("set {var} in the receiver's environment (or .env) and restart zmsync serve")),
        );
    }
    Step::Event(route)
}

/// An event route's request with its whole body: content type, signature, payload, rate limit, commit.
/// Blocking (it waits for the commit).
pub(super) fn handle_event(
    shared: &Shared,
    route: Route,
    headers: &EventHeaders,
    body: &[u8],
    stages: &mut Stages,
) -> Answer {
    let checking = Instant::now();
    let (Some(secret), _) = secret_of(&shared.secrets, route) else {
        return Answer::error(503, "this route is disabled");
    };
    let Some(source) = route.source() else {
        return Answer::error(404, "no such route");
    };
    let format = match payloads::body_format(headers.content_type.as_deref()) {
        Ok(f) => f,
        Err(e) => return payload_error(&e),
    };
    let signature = headers.signature.as_deref();
    let receipt =
        payloads::Receipt { body, now_ms: chrono::Utc::now().timestamp_millis(), window: shared.replay_window };
    let events = match route {
        Route::ZohoNotify => {
            // Zoho signs nothing here: the channel's token is the check, compared in constant time.
            let map = match payloads::object(format, body) {
                Ok(m) => m,
                Err(e) => return payload_error(&e),
            };
            match payloads::notification_token(&map) {
                Some(t) if signature::token_matches(secret, t) => {}
                Some(_) => return Answer::error(401, "the channel token does not match ZOHO_NOTIFY_TOKEN"),
                None => return Answer::error(401, "the callback carries no channel `token`"),
            }
            payloads::zoho_notification(map, &receipt)
        }
        Route::Zoho { entity, module } => {
            if let Err(e) = signature::verify(secret, body, signature) {
                return signature_error(e, "X-Zoho-Signature");
            }
            payloads::object(format, body).and_then(|m| payloads::zoho_workflow(entity, module, m, &receipt))
        }
        Route::Moodle { entity } => {
            if let Err(e) = signature::verify(secret, body, signature) {
                return signature_error(e, "X-Moodle-Signature");
            }
            payloads::object(format, body).and_then(|m| payloads::moodle(entity, m, &receipt).map(|e| vec![e]))
        }
        Route::Health | Route::Stats => return Answer::error(404, "no such route"),
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

pub(super) fn accept(shared: &Shared, events: Vec<NewEvent>, stages: &mut Stages) -> Answer {
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

impl Answer {
    /// The hyper response: the JSON body, its headers.
    fn into_response(self) -> Response<Full<Bytes>> {
        let body = Bytes::from(serde_json::to_vec(&self.body).unwrap_or_default());
        let mut builder = Response::builder().status(self.status).header(CONTENT_TYPE, "application/json");
        for (name, value) in &self.headers {
            builder = builder.header(*name, value.as_str());
        }
        builder.body(Full::new(body.clone())).unwrap_or_else(|_| {
            let mut r = Response::new(Full::new(body));
            *r.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
            r
        })
    }

    fn failed() -> Answer {
        <Answer as OnSlot<Answer>>::failed()
    }
}

pub(super) fn too_large() -> Answer {
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

pub(super) fn health(shared: &Shared) -> Answer {
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

pub(super) fn stats(shared: &Shared) -> Answer {
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
