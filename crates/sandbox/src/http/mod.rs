//! The one HTTP/1.1 layer both fakes run on: listener, request parsing, keep-alive, connection registry,
//! stop on drop, and the three ways a handler can end a call (answer, hold then drop, drop at once).
//!
//! Why not tiny_http: a fake must be able to drop a connection without answering (a reset) and to hold one
//! open and then drop it (a timeout). tiny_http answers 500 when a request is dropped and never lets go of the
//! socket, so neither fault could be reproduced faithfully. One thread per connection: latency injection on
//! concurrent calls then never serialises, and idle keep-alive connections cannot starve a fixed pool.
//! What differs between the fakes is in [`Limits`] and in the handler each one plugs in.

mod client;
mod wire;

use std::collections::HashMap;
use std::io::{self, BufReader};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

pub use client::post;
pub use wire::{http_date, Malformed};

#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn query_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.query.as_bytes()).into_owned().collect()
    }

    fn wants_close(&self) -> bool {
        self.header("connection").is_some_and(|v| v.to_ascii_lowercase().contains("close"))
    }
}

#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// An answer with a `Content-Type` (none when `content_type` is empty).
    pub fn typed(status: u16, content_type: &str, body: Vec<u8>) -> HttpResponse {
        let headers =
            if content_type.is_empty() { Vec::new() } else { vec![("Content-Type".into(), content_type.into())] };
        HttpResponse { status, headers, body }
    }

    pub fn json(status: u16, value: &serde_json::Value) -> HttpResponse {
        HttpResponse::typed(status, "application/json;charset=UTF-8", value.to_string().into_bytes())
    }

    /// 204 and 304 carry no body at all (not even `{}`); clients that parse them break, which is the point.
    pub fn empty(status: u16) -> HttpResponse {
        HttpResponse { status, headers: Vec::new(), body: Vec::new() }
    }

    pub fn with_header(mut self, name: &str, value: String) -> HttpResponse {
        self.headers.push((name.into(), value));
        self
    }
}

/// What to do with a request.
#[derive(Debug)]
pub enum Action {
    Respond(HttpResponse),
    /// Say nothing for this long (or until the server stops), then drop the connection (a client times out).
    Hold(Duration),
    /// Drop the connection at once without a word (FIN): the client sees the connection close unanswered.
    Drop,
    /// Abort the connection with a TCP RST (SO_LINGER 0): the client sees "connection reset by peer".
    Reset,
}

pub type Handler = Arc<dyn Fn(&HttpRequest) -> Action + Send + Sync>;

/// What differs between the fakes at the HTTP level.
#[derive(Clone, Copy)]
pub struct Limits {
    /// Thread names: `{name}-accept`, `{name}-conn`; also the log prefix.
    pub name: &'static str,
    pub max_body: usize,
    /// How long a keep-alive connection may wait for its next request before the server closes it.
    pub idle: Duration,
    /// How long a request, once begun, may pause between bytes.
    pub read: Duration,
    /// Sent as `Server:` on every answer.
    pub server_header: Option<&'static str>,
    /// The answer to a request that cannot be read.
    pub malformed: fn(Malformed) -> HttpResponse,
}

/// Live connections, so a stop can wake their threads.
#[derive(Default)]
struct Conns {
    streams: Mutex<HashMap<u64, TcpStream>>,
    next: AtomicU64,
    stopping: AtomicBool,
}

/// A running server on `127.0.0.1`. Dropping it stops accepting and wakes every connection.
pub struct HttpServer {
    pub addr: SocketAddr,
    conns: Arc<Conns>,
    accept: Option<JoinHandle<()>>,
}

impl HttpServer {
    pub fn bind(port: u16, limits: Limits, handler: Handler) -> io::Result<HttpServer> {
        HttpServer::start(TcpListener::bind(("127.0.0.1", port))?, limits, handler)
    }

    /// Serves on a listener already bound (when the handler needs the address first).
    pub fn start(listener: TcpListener, limits: Limits, handler: Handler) -> io::Result<HttpServer> {
        let addr = listener.local_addr()?;
        let conns = Arc::new(Conns::default());
        let c = conns.clone();
        let accept = thread::Builder::new()
            .name(format!("{}-accept", limits.name))
            .spawn(move || serve(listener, limits, handler, c))?;
        Ok(HttpServer { addr, conns, accept: Some(accept) })
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.conns.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag, and every connection thread blocked in a read.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Ok(m) = self.conns.streams.lock() {
            for s in m.values() {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn serve(listener: TcpListener, limits: Limits, handler: Handler, conns: Arc<Conns>) {
    for stream in listener.incoming() {
        if conns.stopping.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let (h, c) = (handler.clone(), conns.clone());
        let spawned = thread::Builder::new()
            .name(format!("{}-conn", limits.name))
            .spawn(move || connection(stream, limits, h, c));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "{}: cannot spawn a connection thread", limits.name);
        }
    }
}

fn connection(stream: TcpStream, limits: Limits, handler: Handler, conns: Arc<Conns>) {
    let id = conns.next.fetch_add(1, Ordering::SeqCst);
    if let Ok(clone) = stream.try_clone() {
        if let Ok(mut m) = conns.streams.lock() {
            m.insert(id, clone);
        }
    }
    // Checked after registering: a stop that began earlier has set the flag, a later one will shut us down.
    if !conns.stopping.load(Ordering::SeqCst) {
        serve_connection(stream, &limits, &handler, &conns.stopping);
    }
    // Drop every descriptor of the socket (the registry holds one too) so the close really happens.
    if let Ok(mut m) = conns.streams.lock() {
        m.remove(&id);
    }
}

fn serve_connection(stream: TcpStream, limits: &Limits, handler: &Handler, stopping: &AtomicBool) {
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    while wire::await_request(&mut reader, limits) {
        let req = match wire::read_request(&mut reader, &mut writer, limits) {
            Ok(req) => req,
            Err(bad) => {
                tracing::debug!(why = bad.why, "{}: unreadable request", limits.name);
                let _ = wire::write_response(&mut writer, limits.server_header, &(limits.malformed)(bad), true);
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
        };
        let close = req.wants_close();
        match handler(&req) {
            Action::Respond(resp) => {
                if wire::write_response(&mut writer, limits.server_header, &resp, close).is_err() || close {
                    let _ = writer.shutdown(Shutdown::Both);
                    return;
                }
            }
            Action::Hold(d) => {
                wire::hold(d, stopping);
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
            Action::Drop => {
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
            Action::Reset => {
                // SO_LINGER 0: closing the last descriptor sends RST instead of FIN.
                let _ = socket2::SockRef::from(&writer).set_linger(Some(Duration::ZERO));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;
