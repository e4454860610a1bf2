//! A minimal HTTP/1.1 server (and a one-shot client for callbacks) on std sockets.
//!
//! Why not tiny_http: the fake must be able to drop a connection without answering (a reset) and to hold one
//! open and then drop it (a timeout). tiny_http answers 500 when a request is dropped and never lets go of the
//! socket, so neither fault could be reproduced faithfully. One thread per connection: latency injection on
//! concurrent calls then never serialises, and idle keep-alive connections cannot starve a fixed pool.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 64 * 1024 * 1024;
const IDLE_POLL: Duration = Duration::from_millis(200);
const IDLE_CLOSE: Duration = Duration::from_secs(90);
const READ_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
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
    pub fn json(status: u16, value: &serde_json::Value) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("Content-Type".into(), "application/json;charset=UTF-8".into())],
            body: value.to_string().into_bytes(),
        }
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
    /// Drop the connection without a word.
    Reset,
    /// Say nothing for this long, then drop the connection.
    Hold(Duration),
}

pub type Handler = Arc<dyn Fn(HttpRequest) -> Action + Send + Sync>;

pub struct HttpServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl HttpServer {
    pub fn bind(port: u16, handler: Handler) -> io::Result<HttpServer> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let accept = thread::Builder::new().name("fake-zoho-accept".into()).spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let handler = handler.clone();
                let stop = stop2.clone();
                let spawned = thread::Builder::new()
                    .name("fake-zoho-conn".into())
                    .spawn(move || connection(stream, handler, stop));
                if let Err(e) = spawned {
                    tracing::warn!(error = %e, "fake zoho: cannot spawn a connection thread");
                }
            }
        })?;
        Ok(HttpServer { addr, stop, accept: Some(accept) })
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn connection(stream: TcpStream, handler: Handler, stop: Arc<AtomicBool>) {
    let _ = stream.set_nodelay(true);
    let Ok(read_half) = stream.try_clone() else { return };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        let req = match read_request(&mut reader, &stop) {
            Ok(Some(req)) => req,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "fake zoho: unreadable request");
                let resp = HttpResponse::json(
                    400,
                    &serde_json::json!({"code":"INVALID_REQUEST","details":{},"message":"malformed HTTP request","status":"error"}),
                );
                let _ = write_response(&mut writer, &resp, true);
                return;
            }
        };
        let close = req.wants_close();
        match handler(req) {
            Action::Respond(resp) => {
                if write_response(&mut writer, &resp, close).is_err() || close {
                    let _ = writer.shutdown(Shutdown::Both);
                    return;
                }
            }
            Action::Reset => {
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
            Action::Hold(d) => {
                thread::sleep(d);
                let _ = writer.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

/// `Ok(None)`: the peer closed, went idle for too long, or the server is stopping.
fn read_request(reader: &mut BufReader<TcpStream>, stop: &AtomicBool) -> io::Result<Option<HttpRequest>> {
    reader.get_ref().set_read_timeout(Some(IDLE_POLL))?;
    let idle_since = Instant::now();
    loop {
        if stop.load(Ordering::SeqCst) || idle_since.elapsed() > IDLE_CLOSE {
            return Ok(None);
        }
        match reader.fill_buf() {
            Ok([]) => return Ok(None),
            Ok(_) => break,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return Ok(None),
        }
    }
    reader.get_ref().set_read_timeout(Some(READ_TIMEOUT))?;

    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed mid-request"));
        }
        if head.len() + line.len() > MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "request head too large"));
        }
        let blank = line == b"\r\n" || line == b"\n";
        head.extend_from_slice(&line);
        if blank && head.len() > line.len() {
            break;
        }
        if blank {
            head.clear(); // tolerate stray CRLF between pipelined requests
        }
    }
    let head = String::from_utf8(head).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "non-UTF-8 head"))?;
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "bad request line"));
    };
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "bad header line"));
        };
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.to_string(), String::new()),
    };
    let mut req = HttpRequest { method: method.to_ascii_uppercase(), path, query, headers, body: Vec::new() };
    if req.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        req.body = read_chunked(reader)?;
    } else if let Some(len) = req.header("content-length") {
        let len: usize = len.parse().map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad content-length"))?;
        if len > MAX_BODY {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "body too large"));
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        req.body = body;
    }
    Ok(Some(req))
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let size_hex = line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "bad chunk size"))?;
        if body.len() + size > MAX_BODY {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "body too large"));
        }
        if size == 0 {
            // trailers, up to the blank line
            loop {
                let mut t = String::new();
                if reader.read_line(&mut t)? == 0 || t.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        207 => "Multi-Status",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        _ => "Status",
    }
}

fn write_response(w: &mut TcpStream, resp: &HttpResponse, close: bool) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    // Like every real HTTP server (RFC 9110 §6.6.1); `zmsync doctor` reads it to measure clock skew.
    out.push_str(&format!("Date: {}\r\n", http_date(chrono::Utc::now())));
    for (k, v) in &resp.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    let bodiless = resp.status == 204 || resp.status == 304;
    if !bodiless {
        out.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    }
    if close {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !bodiless {
        bytes.extend_from_slice(&resp.body);
    }
    w.write_all(&bytes)?;
    w.flush()
}

/// POSTs one body to an `http://` URL and returns the status. Used for callbacks, off the request path.
pub fn post(url: &str, content_type: &str, extra: &[(String, String)], body: &[u8]) -> io::Result<u16> {
    let parsed = url::Url::parse(url).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
    if parsed.scheme() != "http" {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "only http:// callbacks are supported"));
    }
    let host = parsed.host_str().unwrap_or("127.0.0.1").to_string();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "callback host did not resolve"))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    let target = match parsed.query() {
        Some(q) => format!("{}?{}", parsed.path(), q),
        None => parsed.path().to_string(),
    };
    let mut head = format!(
        "POST {target} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: ZohoCRM-fake\r\n",
        body.len()
    );
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no HTTP status in the callback answer"))
}

/// An HTTP `Date` value (IMF-fixdate), e.g. `Sun, 25 Jan 2026 10:00:00 GMT`.
pub fn http_date(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}
