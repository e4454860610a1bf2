//! A one-shot HTTP/1.1 POST on std sockets, for the fakes' outbound callbacks (off the request path).

use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

/// POSTs one body to an `http://` URL and returns the status. Used for callbacks and webhooks, off the
/// request path; `extra` headers follow the fixed ones.
pub fn post(
    url: &str,
    user_agent: Option<&str>,
    content_type: &str,
    extra: &[(String, String)],
    body: &[u8],
) -> io::Result<u16> {
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
        "POST {target} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(ua) = user_agent {
        head.push_str(&format!("User-Agent: {ua}\r\n"));
    }
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
