//! A small HTTP/1.1 server on std::net. The fake needs what tiny_http cannot give: a real connection reset
//! (SO_LINGER 0, after a write was applied: the duplicate hazard) and "hold, then drop without answering"
//! (a timeout). One thread per connection, so keep-alive clients and injected latency never serialise.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One parsed request.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// What to do with the connection.
pub enum Reply {
    Send {
        status: u16,
        content_type: &'static str,
        body: Vec<u8>,
    },
    /// Keep the connection silent for this long, then close it (a client sees a timeout).
    Hold(Duration),
    /// Abort the connection with a TCP RST.
    Reset,
}

pub type Handler = Arc<dyn Fn(&Request) -> Reply + Send + Sync>;

/// Live connections, so shutdown can unblock their threads.
#[derive(Default)]
pub struct Conns {
    pub streams: Mutex<HashMap<u64, TcpStream>>,
    next: AtomicU64,
    pub stopping: AtomicBool,
}

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 256 * 1024 * 1024;
/// Longer than any client's pool idle timeout, so the server is never the side closing an idle connection.
const IDLE: Duration = Duration::from_secs(300);

pub fn serve(listener: TcpListener, handler: Handler, conns: Arc<Conns>) {
    for stream in listener.incoming() {
        if conns.stopping.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        let (h, c) = (handler.clone(), conns.clone());
        let spawned =
            std::thread::Builder::new().name("fake-moodle-conn".into()).spawn(move || connection(stream, h, c));
        if let Err(e) = spawned {
            tracing::warn!("fake Moodle: cannot spawn a connection thread: {e}");
        }
    }
}

fn connection(stream: TcpStream, handler: Handler, conns: Arc<Conns>) {
    let id = conns.next.fetch_add(1, Ordering::SeqCst);
    if let Ok(clone) = stream.try_clone() {
        if let Ok(mut m) = conns.streams.lock() {
            m.insert(id, clone);
        }
    }
    let _ = stream.set_read_timeout(Some(IDLE));
    let _ = stream.set_nodelay(true);
    let mut reader = match stream.try_clone() {
        Ok(s) => BufReader::new(s),
        Err(_) => return,
    };
    let mut writer = stream;
    loop {
        let req = match read_request(&mut reader, &mut writer) {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(status) => {
                let _ = write_response(
                    &mut writer,
                    status,
                    "text/html; charset=utf-8",
                    b"<html><body>Bad request</body></html>",
                    true,
                );
                break;
            }
        };
        let close = wants_close(&req);
        match handler(&req) {
            Reply::Send { status, content_type, body } => {
                if write_response(&mut writer, status, content_type, &body, close).is_err() || close {
                    break;
                }
            }
            Reply::Hold(d) => {
                let until = Instant::now() + d;
                while Instant::now() < until && !conns.stopping.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(20).min(until.saturating_duration_since(Instant::now())));
                }
                let _ = writer.shutdown(Shutdown::Both);
                break;
            }
            Reply::Reset => {
                // SO_LINGER 0: closing the last descriptor sends RST instead of FIN.
                let _ = socket2::SockRef::from(&writer).set_linger(Some(Duration::ZERO));
                break;
            }
        }
    }
    // Drop every descriptor of the socket (the registry holds one too) so the close really happens.
    if let Ok(mut m) = conns.streams.lock() {
        m.remove(&id);
    }
}

fn wants_close(req: &Request) -> bool {
    req.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"))
}

/// Reads one request; `Ok(None)` at a clean end of the connection, `Err(status)` on a malformed request.
fn read_request(reader: &mut BufReader<TcpStream>, writer: &mut TcpStream) -> Result<Option<Request>, u16> {
    let mut line = String::new();
    let mut head = 0usize;
    // Skip empty lines between requests (allowed by RFC 9112).
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return Ok(None),
            Ok(n) => head += n,
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(_version)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(400);
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut req = Request { method: method.into(), path: path.into(), query: query.into(), ..Request::default() };
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return Ok(None),
            Ok(n) => head += n,
        }
        if head > MAX_HEAD {
            return Err(431);
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            req.headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    if req.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        let _ = writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    if req.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        req.body = read_chunked(reader)?;
    } else if let Some(len) = req.header("content-length") {
        let len: usize = len.parse().map_err(|_| 400u16)?;
        if len > MAX_BODY {
            return Err(413);
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body).map_err(|_| 400u16)?;
        req.body = body;
    }
    Ok(Some(req))
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> Result<Vec<u8>, u16> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line).map_err(|_| 400u16)?;
        let size_hex = line.trim().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| 400u16)?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                line.clear();
                if reader.read_line(&mut line).map_err(|_| 400u16)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(413);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).map_err(|_| 400u16)?;
        line.clear();
        reader.read_line(&mut line).map_err(|_| 400u16)?;
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

fn write_response(w: &mut TcpStream, status: u16, content_type: &str, body: &[u8], close: bool) -> std::io::Result<()> {
    let mut head =
        format!("HTTP/1.1 {status} {}\r\nServer: Apache\r\nContent-Length: {}\r\n", reason(status), body.len());
    // Apache sends one on every answer; `zmsync doctor` reads it to measure clock skew.
    head.push_str(&format!("Date: {}\r\n", crate::zoho::http_date(chrono::Utc::now())));
    if !content_type.is_empty() {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut buf = head.into_bytes();
    buf.extend_from_slice(body);
    w.write_all(&buf)?;
    w.flush()
}
