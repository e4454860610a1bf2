//! The receiver's previous HTTP side, tiny_http worker threads, kept for one purpose: the webhook benchmark
//! (`cargo bench --bench webhook`) runs it beside the hyper server, so the figures of both are printed in the
//! same run. `zmsync serve` never uses it. It has the flaws issue #20 describes (a huge declared body length
//! aborts it, each slow body holds a worker): never put it in front of a network.
//!
//! The routes, checks and answers are the server's own ([`super::server`]): only reading the request and
//! writing the answer are here.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tiny_http::{Header, Request, Response};

use super::server::{self, Answer, EventHeaders, Receiver, Shared, Stages, Step, MAX_BODY};
use super::{ServeError, ServeOptions};

/// How many tiny_http servers share the listening socket at most (each with its own accept thread, connection
/// pool and request queue; the workers are spread over them). See [`nudge_connections`] for why.
const SERVERS: usize = 4;

/// Serves with `opts.workers` tiny_http worker threads until `stop`, then drains. Benchmark only.
#[doc(hidden)]
pub fn run(receiver: Receiver, opts: ServeOptions, stop: Arc<AtomicBool>) -> Result<(), ServeError> {
    let shared = server::start(&opts, &stop)?;
    let addr = receiver.addr;
    let mut servers = Vec::new();
    for _ in 0..opts.workers.clamp(1, SERVERS) {
        let bind_err = |message: String| ServeError::Bind { bind: addr.to_string(), message };
        let listener = receiver.listener.try_clone().map_err(|e| bind_err(e.to_string()))?;
        let server = tiny_http::Server::from_listener(listener, None).map_err(|e| bind_err(e.to_string()))?;
        servers.push(Arc::new(server));
    }
    let spawn_err = |e: std::io::Error| ServeError::Bind { bind: addr.to_string(), message: e.to_string() };
    let mut workers = Vec::new();
    for i in 0..opts.workers.max(1) {
        let server = Arc::clone(&servers[i % servers.len()]);
        let (shared, stop) = (Arc::clone(&shared), Arc::clone(&stop));
        workers.push(
            std::thread::Builder::new()
                .name(format!("webhook-{i}"))
                .spawn(move || worker(&server, &shared, &stop))
                .map_err(spawn_err)?,
        );
    }
    let nudger = {
        let (stop, n) = (Arc::clone(&stop), servers.len());
        std::thread::Builder::new()
            .name("accept-nudge".into())
            .spawn(move || nudge_connections(addr, n, &stop))
            .map_err(spawn_err)?
    };
    let reloader = {
        let (shared, stop, reload) = (Arc::clone(&shared), Arc::clone(&stop), Arc::clone(&opts.reload));
        std::thread::Builder::new()
            .name("settings-reload".into())
            .spawn(move || server::reload_settings(&shared, &stop, &reload))
            .map_err(spawn_err)?
    };
    for w in workers {
        let _ = w.join();
    }
    let _ = reloader.join();
    let _ = nudger.join();
    server::finish(shared);
    Ok(())
}

/// tiny_http hands each new connection to a thread of its pool (which keeps it for the connection's life),
/// but the pool counts a thread that was just woken for one connection as still idle until it runs, so a
/// second connection accepted at that moment is queued with no thread to take it; it waits until some pool
/// thread finishes a connection. [`SERVERS`] servers share the listening socket, and `servers` empty
/// connections to ourselves every [`NUDGE_EVERY`] end a wait that happens anyway.
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
    let start = Instant::now();
    let mut stages = Stages::default();
    let answer = handle(shared, &mut req, &mut stages);
    let accepted = matches!(answer.status, 200 | 202) && stages.write.commit > Duration::ZERO;
    let mut resp =
        Response::from_data(serde_json::to_vec(&answer.body).unwrap_or_default()).with_status_code(answer.status);
    if let Ok(h) = Header::from_bytes("Content-Type", "application/json") {
        resp.add_header(h);
    }
    for (name, value) in answer.headers {
        if let Ok(h) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            resp.add_header(h);
        }
    }
    let responding = Instant::now();
    if let Err(e) = req.respond(resp) {
        tracing::debug!(error = %e, "client went away before the answer");
    }
    if let (Some(b), true) = (&shared.breakdown, accepted) {
        b.record(&stages, responding.elapsed(), start.elapsed());
    }
}

fn handle(shared: &Shared, req: &mut Request, stages: &mut Stages) -> Answer {
    let route = match server::step(shared, req.method().as_str(), req.url()) {
        Step::Answer(a) => return a,
        Step::Health => return server::health(shared),
        Step::Stats => return server::stats(shared),
        Step::Event(route) => route,
    };
    let reading = Instant::now();
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
    let headers = EventHeaders::from_lookup(route, |name| {
        req.headers().iter().find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name)).map(|h| h.value.as_str())
    });
    server::handle_event(shared, route, &headers, &body, stages)
}

fn too_large(req: &mut Request) -> Answer {
    // Read (and drop) a bounded amount of what the client is still sending, so it sees the answer rather
    // than a reset connection; then close.
    let _ = std::io::copy(&mut req.as_reader().take(1 << 20), &mut std::io::sink());
    server::too_large()
}
