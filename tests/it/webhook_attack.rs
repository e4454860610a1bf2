//! `zmsync serve` attacked as the internet would (issue #20), the real binary on an ephemeral port: requests
//! that killed or stalled the tiny_http receiver, replays and forged identities. Every attack gets a 4xx (or a
//! closed connection), nothing of it is stored, the server stays up with its memory bounded, and good events
//! sent meanwhile are all answered 202 and stored.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use zmsync::store;
use zmsync::webhook::signature::sign;

use crate::support::{PgSchema, Scratch};
use crate::webhook::{event_total, full_env, request, student, Server, MS, NT, ZS};

/// The receiver's resident memory in KiB, from /proc.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The memory bound asserted after each attack: far above the receiver's ~10–30 MiB, far below what a
/// 99,999,999,999-byte allocation or a buffer per stalled byte would take.
const RSS_BOUND_KIB: u64 = 200 * 1024;

#[track_caller]
fn assert_alive_and_bounded(srv: &mut Server) {
    assert!(srv.child.try_wait().unwrap().is_none(), "the receiver died: {}", srv.stderr());
    let r = srv.get("/v1/events/health");
    assert_eq!(r.status, 200, "health after the attack: {r:?}");
    let rss = rss_kib(srv.child.id());
    assert!(rss > 0 && rss < RSS_BOUND_KIB, "resident memory {rss} KiB");
}

/// Reads one answer from `reader`: its status (0 when the connection closed first) and body. No body is
/// read after a HEAD request.
fn read_answer(reader: &mut impl BufRead, head_request: bool) -> (u16, String) {
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return (0, String::new());
    }
    let status = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut len = 0;
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; if head_request { 0 } else { len }];
    let _ = reader.read_exact(&mut body);
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Sends `bytes` on a fresh connection and reads one answer.
fn raw(addr: &str, bytes: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = stream.write_all(bytes);
    read_answer(&mut BufReader::new(stream), bytes.starts_with(b"HEAD "))
}

fn signed_zoho(route: &str, addr: &str, body: &[u8], extra: &str) -> Vec<u8> {
    let mut out = format!(
        "POST {route} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nX-Zoho-Signature: sha256={}\r\n{extra}\r\n",
        sign(ZS, body)
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

const ROUTES: &[(&str, &str, &[u16])] = &[
    ("GET", "/v1/events/health", &[200]),
    ("HEAD", "/v1/events/health", &[200]),
    ("GET", "/api/v1/events/stats", &[200]),
    ("POST", "/v1/events/nowhere", &[404]),
    ("GET", "/", &[404]),
    ("GET", "/v1/events/zoho/student", &[405]),
    ("POST", "/v1/events/health", &[405]),
    ("POST", "/v1/events/zoho/student", &[413]),
    ("POST", "/v1/events/zoho/teacher", &[413]),
    ("POST", "/v1/events/zoho/registration", &[413]),
    ("POST", "/v1/events/zoho/class", &[413]),
    ("POST", "/v1/events/zoho/enrollment", &[413]),
    ("POST", "/v1/events/zoho/payment", &[413]),
    ("POST", "/v1/events/zoho/grade", &[413]),
    ("POST", "/api/v1/events/zoho/unit", &[413]),
    ("POST", "/v1/events/zoho/notify", &[413]),
    ("POST", "/v1/events/moodle/enrollment", &[413]),
    ("POST", "/v1/events/moodle/grade", &[413]),
];

/// `Content-Length: 99999999999` and no body aborted the tiny_http receiver (`memory allocation of
/// 99999999999 bytes failed`) on any route. Now: an answer on every route, the event routes a 413 before
/// anything is read, and the process lives on.
#[test]
fn webhook_attack_huge_content_length_on_every_route() {
    let s = full_env(Scratch::new());
    let url = s.db_url();
    let mut srv = Server::start(&s, &url);
    for (method, path, want) in ROUTES {
        for ctype in ["", "Content-Type: application/json\r\n"] {
            let req = format!(
                "{method} {path} HTTP/1.1\r\nHost: {}\r\n{ctype}X-Zoho-Signature: sha256={}\r\nContent-Length: 99999999999\r\n\r\n",
                srv.addr,
                "0".repeat(64)
            );
            let (status, body) = raw(&srv.addr, req.as_bytes());
            assert!(want.contains(&status), "{method} {path} ({ctype:?}): {status} {body}");
            assert!(srv.child.try_wait().unwrap().is_none(), "{method} {path} killed the receiver: {}", srv.stderr());
        }
    }
    // The same on a keep-alive connection that then goes on with a good event: answered, or closed and
    // the next connection served.
    let good = student("after-huge", "5847596000012345").to_string();
    let req = signed_zoho(
        "/v1/events/zoho/student",
        &srv.addr,
        good.as_bytes(),
        &format!("Content-Length: {}\r\n", good.len()),
    );
    assert_eq!(raw(&srv.addr, &req).0, 202);
    assert_eq!(event_total(store::open(&url).unwrap().as_ref()), 1, "only the good event is stored");
    assert_alive_and_bounded(&mut srv);
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// 64 connections that promise a body and stall, 300 that drip their headers a line a second (slowloris),
/// all held open while 4 clients send 240 good events: every good event is answered 202 and stored (p99
/// printed; a 1 s bound asserted only to catch a hang: the tiny_http receiver made them wait 20 s). Then the
/// attackers are shed: the stalled bodies get 408, the slowloris connections are closed, within the
/// receiver's timeouts.
#[test]
fn webhook_attack_slow_clients_do_not_stall_good_events() {
    let s = full_env(Scratch::new());
    let url = s.db_url();
    let mut srv = Server::start(&s, &url);
    let addr = srv.addr.clone();
    let attack_start = Instant::now();
    let stalled: Vec<TcpStream> = (0..64)
        .map(|i| {
            let mut c = TcpStream::connect(&addr).unwrap();
            let body = student(&format!("stall-{i}"), "1").to_string();
            let head = format!(
                "POST /v1/events/zoho/student HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nX-Zoho-Signature: sha256={}\r\nContent-Length: 2048\r\n\r\n",
                sign(ZS, body.as_bytes())
            );
            c.write_all(head.as_bytes()).unwrap();
            c.write_all(&body.as_bytes()[..20]).unwrap();
            c
        })
        .collect();
    let slowloris: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut c = TcpStream::connect(&addr).unwrap();
            c.write_all(format!("POST /v1/events/zoho/student HTTP/1.1\r\nHost: {addr}\r\n").as_bytes()).unwrap();
            c
        })
        .collect();
    // Drip a header line a second into every slowloris connection while the good events run.
    let dripping = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let dripper = {
        let mut conns: Vec<TcpStream> = slowloris.iter().map(|c| c.try_clone().unwrap()).collect();
        let dripping = Arc::clone(&dripping);
        std::thread::spawn(move || {
            let mut n = 0;
            while dripping.load(std::sync::atomic::Ordering::SeqCst) {
                for c in &mut conns {
                    let _ = c.write_all(format!("X-Drip-{n}: 1\r\n").as_bytes());
                }
                n += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };

    let clients = 4;
    let barrier = Arc::new(Barrier::new(clients));
    let good: Vec<_> = (0..clients)
        .map(|t| {
            let (addr, barrier) = (addr.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                (0..60)
                    .map(|i| {
                        let body = student(&format!("good-{t}-{i}"), &format!("58475960000{t}{i:04}")).to_string();
                        let h = [
                            ("X-Zoho-Signature", format!("sha256={}", sign(ZS, body.as_bytes()))),
                            ("Content-Type", "application/json".to_string()),
                        ];
                        let start = Instant::now();
                        let r = request(&addr, "POST", "/v1/events/zoho/student", &h, body.as_bytes());
                        (start.elapsed(), r.status, r.body["event_id"].as_str().unwrap_or("").to_string())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut lat = Vec::new();
    let mut ids = Vec::new();
    for g in good {
        for (d, status, id) in g.join().unwrap() {
            assert_eq!(status, 202, "a good event under attack");
            lat.push(d);
            ids.push(id);
        }
    }
    lat.sort();
    let (p50, p99, max) = (pct(&lat, 0.5), pct(&lat, 0.99), lat[lat.len() - 1]);
    println!(
        "good events under 64 stalled bodies + 300 slowloris: {} events, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target p99 < 50 ms)",
        lat.len(),
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        max.as_secs_f64() * 1e3
    );
    assert!(p99 < Duration::from_secs(1), "good events waited on the attackers: p99 {p99:?}");
    let store = store::open(&url).unwrap();
    for id in &ids {
        assert!(store.event(id).unwrap().is_some(), "{id} was answered 202 but is not stored");
    }
    assert_eq!(event_total(store.as_ref()), ids.len() as i64, "only the good events are stored");
    assert_alive_and_bounded(&mut srv);

    // Shed: each stalled body is answered 408 within the body timeout, each slowloris connection closed
    // within the head timeout (10 s each; the dripping goes on meanwhile, so only a deadline can end them).
    for mut c in stalled {
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let (status, body) = read_answer(&mut BufReader::new(&mut c), false);
        assert_eq!(status, 408, "a stalled body: {body}");
    }
    for mut c in slowloris {
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 512];
        // Closed: end of stream, or a reset; never a request served, never left hanging.
        let closed = match c.read(&mut buf) {
            Ok(0) | Err(_) => true,
            Ok(n) => !String::from_utf8_lossy(&buf[..n]).contains(" 202 "),
        };
        assert!(closed, "a slowloris connection was served");
    }
    let shed_after = attack_start.elapsed();
    println!("attackers shed after {:.1} s", shed_after.as_secs_f64());
    assert!(shed_after < Duration::from_secs(40), "the attackers were held for {shed_after:?}");
    dripping.store(false, std::sync::atomic::Ordering::SeqCst);
    dripper.join().unwrap();
    assert_eq!(event_total(store.as_ref()), ids.len() as i64);
    assert_alive_and_bounded(&mut srv);
}

/// Oversize (declared and chunked), stalled-chunk-free malformed input, non-UTF-8 bodies, headers and paths,
/// header floods: each a 4xx, nothing stored, the server alive and bounded.
#[test]
fn webhook_attack_malformed_requests_are_4xx_and_store_nothing() {
    let s = full_env(Scratch::new());
    let url = s.db_url();
    let mut srv = Server::start(&s, &url);
    let addr = srv.addr.clone();
    let big = format!("{{\"event_id\":\"big\",\"record_id\":\"1\",\"pad\":\"{}\"}}", "x".repeat(70 * 1024));
    let chunked_big = {
        let mut b = Vec::new();
        for chunk in big.as_bytes().chunks(4096) {
            b.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            b.extend_from_slice(chunk);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"0\r\n\r\n");
        b
    };
    let mut non_utf8 = b"{\"event_id\":\"\xff\xfe\",\"record_id\":\"1\"}".to_vec();
    non_utf8.push(0xc0);
    let cases: Vec<(&str, Vec<u8>, &[u16])> = vec![
        ("declared oversize", signed_zoho("/v1/events/zoho/student", &addr, big.as_bytes(), &format!("Content-Length: {}\r\n", big.len())), &[413]),
        ("chunked oversize", {
            let mut r = format!(
                "POST /v1/events/zoho/student HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nX-Zoho-Signature: sha256={}\r\nTransfer-Encoding: chunked\r\n\r\n",
                sign(ZS, big.as_bytes())
            )
            .into_bytes();
            r.extend_from_slice(&chunked_big);
            r
        }, &[413]),
        ("chunked with a bad chunk size", format!(
            "POST /v1/events/zoho/student HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{{}}\r\n0\r\n\r\n"
        ).into_bytes(), &[400]),
        ("both Content-Length and chunked", format!(
            "POST /v1/events/zoho/student HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n"
        ).into_bytes(), &[400, 401]),
        ("non-UTF-8 JSON body, signed", signed_zoho("/v1/events/zoho/student", &addr, &non_utf8, &format!("Content-Length: {}\r\n", non_utf8.len())), &[400]),
        ("non-UTF-8 form body, signed", {
            let b = b"record_id=1&event_id=\xff\xfe".to_vec();
            let mut r = format!(
                "POST /v1/events/zoho/student HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nX-Zoho-Signature: sha256={}\r\nContent-Length: {}\r\n\r\n",
                sign(ZS, &b), b.len()
            ).into_bytes();
            r.extend_from_slice(&b);
            r
        }, &[400]),
        ("non-UTF-8 signature header", {
            let b = student("e-sig", "1").to_string();
            let mut r = format!("POST /v1/events/zoho/student HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Zoho-Signature: ", b.len()).into_bytes();
            r.extend_from_slice(b"\xff\xfe\xfd\r\n\r\n");
            r.extend_from_slice(b.as_bytes());
            r
        }, &[400, 401]),
        ("non-UTF-8 path", b"POST /v1/events/zoho/\xff\xfe HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".to_vec(), &[400, 404]),
        ("a 20 KiB header", format!("GET /v1/events/health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(20 * 1024)).into_bytes(), &[431, 400, 0]),
        ("200 headers", {
            let mut r = "GET /v1/events/health HTTP/1.1\r\nHost: x\r\n".to_string();
            for i in 0..200 {
                r.push_str(&format!("X-H{i}: 1\r\n"));
            }
            r.push_str("\r\n");
            r.into_bytes()
        }, &[431, 400, 0]),
        ("garbage request line", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n".to_vec(), &[400, 0]),
    ];
    for (what, bytes, want) in &cases {
        let (status, body) = raw(&addr, bytes);
        assert!(want.contains(&status), "{what}: {status} {body}");
        assert!(srv.child.try_wait().unwrap().is_none(), "{what} killed the receiver");
    }
    assert_eq!(event_total(store::open(&url).unwrap().as_ref()), 0, "nothing is stored for a refused request");
    // A small chunked event is fine.
    let good = student("chunked-ok", "5847596000012345").to_string();
    let mut req = format!(
        "POST /v1/events/zoho/student HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nX-Zoho-Signature: sha256={}\r\nTransfer-Encoding: chunked\r\n\r\n",
        sign(ZS, good.as_bytes())
    )
    .into_bytes();
    req.extend_from_slice(format!("{:x}\r\n{good}\r\n0\r\n\r\n", good.len()).as_bytes());
    assert_eq!(raw(&addr, &req).0, 202);
    assert_alive_and_bounded(&mut srv);
}

fn zoho_raw(srv: &Server, route: &str, body: &str) -> (u16, Value) {
    let r =
        srv.post(route, Some("application/json"), &[("X-Zoho-Signature", sign(ZS, body.as_bytes()))], body.as_bytes());
    (r.status, r.body)
}

fn moodle_raw(srv: &Server, route: &str, body: &str) -> (u16, Value) {
    let r = srv.post(
        route,
        Some("application/json"),
        &[("X-Moodle-Signature", sign(MS, body.as_bytes()))],
        body.as_bytes(),
    );
    (r.status, r.body)
}

/// Replays, forged identities, stale and future timestamps, record ids that are not ids.
#[test]
fn webhook_attack_replays_identities_times_and_record_ids() {
    let s = full_env(Scratch::new());
    let url = s.db_url();
    let mut srv = Server::start(&s, &url);
    let store = store::open(&url).unwrap();
    let now_s = chrono::Utc::now().timestamp();

    // A signed body without an id or a time, captured and replayed: the same event, stored once.
    let bare = json!({"zoho_id":"5847596000012345","module":"BTEC_Students"}).to_string();
    let (st, first) = zoho_raw(&srv, "/v1/events/zoho/student", &bare);
    assert_eq!(st, 202, "{first}");
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(5));
        let (st, again) = zoho_raw(&srv, "/v1/events/zoho/student", &bare);
        assert_eq!((st, again["status"].as_str(), &again["event_id"]), (200, Some("duplicate"), &first["event_id"]));
    }
    let moodle_bare =
        json!({"eventname":"\\core\\event\\user_enrolment_created","courseid":12,"userid":34}).to_string();
    let (st, m) = moodle_raw(&srv, "/v1/events/moodle/enrollment", &moodle_bare);
    assert_eq!(st, 202, "{m}");
    assert_eq!(moodle_raw(&srv, "/v1/events/moodle/enrollment", &moodle_bare).0, 200, "a Moodle replay is a duplicate");
    assert_eq!(event_total(store.as_ref()), 2);

    // A Zoho-signed "moodle:777" does not shadow Moodle's event 777: both are stored, each under its source.
    let forged = json!({"event_id":"moodle:777","module":"BTEC_Students","record_id":"5847596000012346"}).to_string();
    let (st, z) = zoho_raw(&srv, "/v1/events/zoho/student", &forged);
    assert_eq!((st, z["event_id"].as_str()), (202, Some("zoho:moodle:777")), "{z}");
    let real =
        json!({"eventid":"777","eventname":"\\core\\event\\user_graded","courseid":3,"userid":4,"timecreated":now_s})
            .to_string();
    let (st, m) = moodle_raw(&srv, "/v1/events/moodle/grade", &real);
    assert_eq!((st, m["event_id"].as_str(), m["status"].as_str()), (202, Some("moodle:777"), Some("queued")), "{m}");
    assert_eq!(store.event("moodle:777").unwrap().unwrap().source, "moodle");
    assert_eq!(store.event("zoho:moodle:777").unwrap().unwrap().source, "zoho");
    let stored = event_total(store.as_ref());
    assert_eq!(stored, 4);

    // Refused, each with its status; nothing of them stored.
    let day = 86_400;
    let notify = |t: i64, ids: Value| {
        json!({"server_time":t,"module":"BTEC_Students","ids":ids,"operation":"update","channel_id":"42","token":NT})
            .to_string()
    };
    let zoho_at = |ts: Value| {
        json!({"event_id":format!("t-{ts}"),"module":"BTEC_Students","record_id":"5847596000012345","timestamp":ts})
            .to_string()
    };
    let refused: Vec<(&str, u16, (u16, Value))> = vec![
        (
            "timestamp from 2001",
            422,
            zoho_raw(&srv, "/v1/events/zoho/student", &zoho_at(json!("2001-01-01T00:00:00Z"))),
        ),
        (
            "timestamp from 2099",
            422,
            zoho_raw(&srv, "/v1/events/zoho/student", &zoho_at(json!("2099-01-01T00:00:00Z"))),
        ),
        (
            "timestamp 2 days old",
            422,
            zoho_raw(&srv, "/v1/events/zoho/student", &zoho_at(json!((now_s - 2 * day) * 1000))),
        ),
        ("timestamp an hour ahead", 422, zoho_raw(&srv, "/v1/events/zoho/student", &zoho_at(json!(now_s + 3600)))),
        ("unreadable timestamp", 422, zoho_raw(&srv, "/v1/events/zoho/student", &zoho_at(json!("last tuesday")))),
        ("stale Notification API server_time", 422, {
            let b = notify((now_s - 2 * day) * 1000, json!(["5847596000012345"]));
            let r = srv.post("/v1/events/zoho/notify", Some("application/json"), &[], b.as_bytes());
            (r.status, r.body)
        }),
        ("future Notification API server_time", 422, {
            let b = notify((now_s + day) * 1000, json!(["5847596000012345"]));
            let r = srv.post("/v1/events/zoho/notify", Some("application/json"), &[], b.as_bytes());
            (r.status, r.body)
        }),
        (
            "stale Moodle timecreated",
            422,
            moodle_raw(
                &srv,
                "/v1/events/moodle/enrollment",
                &json!({"eventid":"900","eventname":"x","courseid":1,"userid":2,"timecreated":now_s - 2 * day})
                    .to_string(),
            ),
        ),
        (
            "record id ../../x",
            400,
            zoho_raw(
                &srv,
                "/v1/events/zoho/student",
                &json!({"event_id":"r1","module":"BTEC_Students","record_id":"../../x"}).to_string(),
            ),
        ),
        (
            "record id of 30 KB",
            400,
            zoho_raw(
                &srv,
                "/v1/events/zoho/student",
                &json!({"event_id":"r2","module":"BTEC_Students","record_id":"7".repeat(30_000)}).to_string(),
            ),
        ),
        (
            "record id with letters",
            400,
            zoho_raw(&srv, "/v1/events/zoho/student", &json!({"event_id":"r3","zoho_id":"58475960000abc"}).to_string()),
        ),
        ("Notification API id ../x", 400, {
            let b = notify(now_s * 1000, json!(["5847596000012345", "../x"]));
            let r = srv.post("/v1/events/zoho/notify", Some("application/json"), &[], b.as_bytes());
            (r.status, r.body)
        }),
        (
            "Moodle user id x",
            400,
            moodle_raw(
                &srv,
                "/v1/events/moodle/enrollment",
                &json!({"eventid":"901","eventname":"x","courseid":1,"userid":"x"}).to_string(),
            ),
        ),
        (
            "Moodle course id 0",
            400,
            moodle_raw(
                &srv,
                "/v1/events/moodle/enrollment",
                &json!({"eventid":"902","eventname":"x","courseid":0,"userid":5}).to_string(),
            ),
        ),
        (
            "Moodle entity id -3",
            400,
            moodle_raw(
                &srv,
                "/v1/events/moodle/grade",
                &json!({"event_id":"903","event_type":"g","entity_type":"grade","entity_id":"-3"}).to_string(),
            ),
        ),
    ];
    for (what, want, (status, body)) in &refused {
        assert_eq!(status, want, "{what}: {body}");
        assert_eq!(body["success"], false, "{what}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty() && e.len() < 400),
            "{what}: a short, clear error: {body}"
        );
    }
    assert_eq!(event_total(store.as_ref()), stored, "nothing refused was stored");
    assert_alive_and_bounded(&mut srv);
}

/// docs/scaling.md's scale-out: two receivers on one PostgreSQL database take the same stream, every event
/// delivered to both (and some twice to one): each event is stored exactly once, each delivery answered 202
/// (the first to commit) or 200 (duplicate), and nothing deadlocks (every request answered, none 5xx).
#[test]
fn webhook_two_receivers_on_one_postgres_store_each_event_once() {
    let Some(schema) = PgSchema::create() else { return };
    let s = full_env(Scratch::new());
    s.run(&["--database-url", &schema.url, "init"]).ok();
    let a = Server::start(&s, &schema.url);
    let b = Server::start(&s, &schema.url);
    let threads = 6;
    let per_thread = 60;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let addrs = [a.addr.clone(), b.addr.clone()];
            std::thread::spawn(move || {
                let mut out = Vec::new();
                for i in 0..per_thread {
                    // Few record ids, so both receivers' batches mark the same keys (the deadlock risk).
                    let body =
                        student(&format!("two-{t}-{i}"), &format!("58475960000{:04}", (t * 7 + i) % 11)).to_string();
                    let h = [
                        ("X-Zoho-Signature", format!("sha256={}", sign(ZS, body.as_bytes()))),
                        ("Content-Type", "application/json".to_string()),
                    ];
                    // Both receivers at once, then the first again (a redelivery).
                    let (x, y) = std::thread::scope(|sc| {
                        let x = sc.spawn(|| {
                            request(&addrs[(t + i) % 2], "POST", "/v1/events/zoho/student", &h, body.as_bytes())
                        });
                        let y = sc.spawn(|| {
                            request(&addrs[(t + i + 1) % 2], "POST", "/v1/events/zoho/student", &h, body.as_bytes())
                        });
                        (x.join().unwrap(), y.join().unwrap())
                    });
                    let z = if i % 5 == 0 {
                        Some(request(&addrs[i % 2], "POST", "/v1/events/zoho/student", &h, body.as_bytes()).status)
                    } else {
                        None
                    };
                    out.push((format!("zoho:two-{t}-{i}"), x.status, y.status, z));
                }
                out
            })
        })
        .collect();
    let store = store::open(&schema.url).unwrap();
    let mut n = 0;
    for h in handles {
        for (id, x, y, z) in h.join().unwrap() {
            let mut statuses = vec![x, y];
            statuses.extend(z);
            assert!(statuses.iter().all(|s| *s == 202 || *s == 200), "{id}: {statuses:?}");
            assert_eq!(statuses.iter().filter(|s| **s == 202).count(), 1, "{id}: exactly one 202: {statuses:?}");
            assert!(store.event(&id).unwrap().is_some(), "{id} answered 202 but not stored");
            n += 1;
        }
    }
    assert_eq!(event_total(store.as_ref()), n, "every event stored exactly once");
    let mut c = schema.client();
    let dup: i64 = c
        .query_one("SELECT COUNT(*) FROM (SELECT event_id FROM integration_events_log GROUP BY event_id HAVING COUNT(*) > 1) d", &[])
        .unwrap()
        .get(0);
    assert_eq!(dup, 0);
    for srv in [&a, &b] {
        assert!(!srv.stderr().contains("deadlock"), "{}", srv.stderr());
    }
}
