//! The layer on its own, over real sockets: what both fakes rely on.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use super::*;

const LIMITS: Limits = Limits {
    name: "test-http",
    max_body: 1024,
    idle: Duration::from_secs(5),
    read: Duration::from_secs(5),
    server_header: Some("Test"),
    malformed: |bad| HttpResponse::typed(bad.status, "text/plain", bad.why.as_bytes().to_vec()),
};

/// Echoes method, path, query and body; `/drop`, `/reset` and `/hold` end the call as their names say.
fn server() -> HttpServer {
    let handler: Handler = Arc::new(|req: &HttpRequest| match req.path.as_str() {
        "/drop" => Action::Drop,
        "/reset" => Action::Reset,
        "/hold" => Action::Hold(Duration::from_millis(50)),
        _ => {
            let mut body = format!("{} {} {} ", req.method, req.path, req.query).into_bytes();
            body.extend_from_slice(&req.body);
            Action::Respond(HttpResponse::typed(200, "text/plain", body))
        }
    });
    HttpServer::bind(0, LIMITS, handler).expect("bind")
}

fn exchange(s: &HttpServer, raw: &[u8]) -> std::io::Result<String> {
    let mut c = TcpStream::connect(s.addr)?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    c.write_all(raw)?;
    let mut out = Vec::new();
    c.read_to_end(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn bodies(answer: &str) -> Vec<&str> {
    answer.split("HTTP/1.1 ").skip(1).map(|a| a.split("\r\n\r\n").nth(1).unwrap_or_default()).collect()
}

#[test]
fn length_and_chunked_bodies_read_the_same_and_keep_alive_pipelines() {
    let s = server();
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    use rand::{Rng, SeedableRng};
    for _ in 0..20 {
        let body: String = (0..rng.gen_range(0..200)).map(|_| rng.gen_range(b'a'..=b'z') as char).collect();
        let cut = rng.gen_range(0..=body.len());
        // Two chunks where the body allows (a zero-size chunk ends the body).
        let chunks: String = [&body[..cut], &body[cut..]]
            .iter()
            .filter(|c| !c.is_empty())
            .map(|c| format!("{:x};ext=1\r\n{c}\r\n", c.len()))
            .collect();
        // The stray CRLF after the first body is allowed between requests (RFC 9112).
        let raw = format!(
            "post /x?q=1 HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}\r\n\
             POST /x?q=1 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}0\r\nTrailer: x\r\n\r\n\
             GET /end HTTP/1.1\r\nConnection: close\r\n\r\n",
            body.len(),
        );
        let answer = exchange(&s, raw.as_bytes()).expect("exchange");
        let got = bodies(&answer);
        let want = format!("POST /x q=1 {body}");
        assert_eq!(got, vec![want.as_str(), want.as_str(), "GET /end  "], "{answer}");
        assert!(answer.contains("Server: Test\r\n") && answer.contains("Date: "), "{answer}");
    }
}

#[test]
fn unreadable_requests_get_the_fakes_own_answer_with_the_right_status() {
    let s = server();
    let big = format!("POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n", LIMITS.max_body + 1);
    assert!(exchange(&s, big.as_bytes()).expect("413").starts_with("HTTP/1.1 413 "));
    assert!(exchange(&s, b"GET / HTTP/1.1\r\nno colon here\r\n\r\n").expect("400").starts_with("HTTP/1.1 400 "));
    let head = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(70 * 1024));
    assert!(exchange(&s, head.as_bytes()).expect("431").starts_with("HTTP/1.1 431 "));
}

#[test]
fn drop_closes_unanswered_reset_aborts_and_hold_closes_late() {
    let s = server();
    assert_eq!(exchange(&s, b"GET /drop HTTP/1.1\r\n\r\n").expect("a clean close"), "");
    assert_eq!(exchange(&s, b"GET /hold HTTP/1.1\r\n\r\n").expect("a clean close"), "");
    match exchange(&s, b"GET /reset HTTP/1.1\r\n\r\n") {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset),
        Ok(a) => panic!("a reset expected, got {a:?}"),
    }
}

#[test]
fn a_stop_wakes_idle_keep_alive_connections() {
    let s = server();
    let mut c = TcpStream::connect(s.addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    c.write_all(b"GET /a HTTP/1.1\r\n\r\n").expect("write");
    let mut first = [0u8; 12];
    c.read_exact(&mut first).expect("the first answer");
    assert_eq!(&first, b"HTTP/1.1 200");
    drop(s);
    let mut rest = Vec::new();
    // The server closed the idle connection (end of stream), rather than the 30 s read timeout firing.
    c.read_to_end(&mut rest).expect("closed by the stop");
}
