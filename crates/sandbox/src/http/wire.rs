//! HTTP/1.1 on the wire: reading one request (head, Content-Length or chunked body) and writing one answer.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::{HttpRequest, HttpResponse, Limits};

const MAX_HEAD: usize = 64 * 1024;

/// A request that cannot be read: the status to answer (400, 413 or 431) and why, for the debug log.
#[derive(Debug, Clone, Copy)]
pub struct Malformed {
    pub status: u16,
    pub why: &'static str,
}

fn bad(why: &'static str) -> Malformed {
    Malformed { status: 400, why }
}

fn io_bad(_: io::Error) -> Malformed {
    bad("connection failed mid-request")
}

/// Waits up to `limits.idle` for the next request to begin. `false`: the peer closed, went idle for too
/// long, or the server shut the socket down to stop.
pub fn await_request(reader: &mut BufReader<TcpStream>, limits: &Limits) -> bool {
    if reader.get_ref().set_read_timeout(Some(limits.idle)).is_err() {
        return false;
    }
    loop {
        match reader.fill_buf() {
            Ok([]) => return false,
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
    reader.get_ref().set_read_timeout(Some(limits.read)).is_ok()
}

/// Reads one request whose first byte has arrived (see [`await_request`]). Answers `Expect: 100-continue`.
pub fn read_request(
    reader: &mut BufReader<TcpStream>,
    writer: &mut TcpStream,
    limits: &Limits,
) -> Result<HttpRequest, Malformed> {
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = reader.read_until(b'\n', &mut line).map_err(io_bad)?;
        if n == 0 {
            return Err(bad("connection closed mid-request"));
        }
        if head.len() + line.len() > MAX_HEAD {
            return Err(Malformed { status: 431, why: "request head too large" });
        }
        let blank = line == b"\r\n" || line == b"\n";
        head.extend_from_slice(&line);
        if blank && head.len() > line.len() {
            break;
        }
        if blank {
            head.clear(); // tolerate stray CRLF between pipelined requests (RFC 9112)
        }
    }
    let head = String::from_utf8(head).map_err(|_| bad("non-UTF-8 head"))?;
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err(bad("bad request line"));
    };
    let mut headers = Vec::new();
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            return Err(bad("bad header line"));
        };
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target.to_string(), String::new()),
    };
    let mut req = HttpRequest { method: method.to_ascii_uppercase(), path, query, headers, body: Vec::new() };
    if req.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        let _ = writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    if req.header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        req.body = read_chunked(reader, limits.max_body)?;
    } else if let Some(len) = req.header("content-length") {
        let len: usize = len.parse().map_err(|_| bad("bad content-length"))?;
        if len > limits.max_body {
            return Err(Malformed { status: 413, why: "body too large" });
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body).map_err(io_bad)?;
        req.body = body;
    }
    Ok(req)
}

fn read_chunked(reader: &mut BufReader<TcpStream>, max_body: usize) -> Result<Vec<u8>, Malformed> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line).map_err(io_bad)?;
        let size_hex = line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| bad("bad chunk size"))?;
        if body.len() + size > max_body {
            return Err(Malformed { status: 413, why: "body too large" });
        }
        if size == 0 {
            // Trailers, up to the blank line.
            loop {
                line.clear();
                if reader.read_line(&mut line).map_err(io_bad)? == 0 || line.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..]).map_err(io_bad)?;
        line.clear();
        reader.read_line(&mut line).map_err(io_bad)?;
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
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Writes one answer: the status line, `Date`, the server's own header (e.g. `Server: Apache`), the answer's
/// headers, and `Content-Length` (none on 204 and 304, which carry no body at all).
pub fn write_response(
    w: &mut TcpStream,
    server_header: Option<&str>,
    resp: &HttpResponse,
    close: bool,
) -> io::Result<()> {
    let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    // Like every real HTTP server (RFC 9110 §6.6.1); `zmsync doctor` reads it to measure clock skew.
    out.push_str(&format!("Date: {}\r\n", http_date(chrono::Utc::now())));
    if let Some(s) = server_header {
        out.push_str(&format!("Server: {s}\r\n"));
    }
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

/// An HTTP `Date` value (IMF-fixdate), e.g. `Sun, 25 Jan 2026 10:00:00 GMT`.
pub fn http_date(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Says nothing for `d` (or until the server stops), then the caller drops the connection.
pub fn hold(d: Duration, stopping: &std::sync::atomic::AtomicBool) {
    let until = std::time::Instant::now() + d;
    while std::time::Instant::now() < until && !stopping.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(20).min(until.saturating_duration_since(std::time::Instant::now())));
    }
}
