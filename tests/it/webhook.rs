//! The webhook receiver, run as the real binary on an ephemeral port, and the `events` commands.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use zmsync::store::{self, Store};
use zmsync::webhook::signature::sign;

use crate::support::{PgSchema, Scratch};

pub(crate) const ZS: &str = "zoho-test-secret";
pub(crate) const MS: &str = "moodle-test-secret";
pub(crate) const NT: &str = "notify-test-token";

pub(crate) struct Server {
    pub(crate) child: Child,
    pub(crate) addr: String,
    stderr_path: std::path::PathBuf,
}

impl Server {
    pub(crate) fn start(s: &Scratch, db_url: &str) -> Server {
        let stderr_path = s.path().join(format!("serve-{}.log", rand_id()));
        let mut child = s
            .cmd(&["--database-url", db_url, "-v", "serve", "--bind", "127.0.0.1:0", "--workers", "4"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .expect("start zmsync serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().to_string();
        assert!(
            addr.starts_with("127.0.0.1:"),
            "first stdout line must be the address, got {line:?}; stderr: {}",
            std::fs::read_to_string(&stderr_path).unwrap_or_default()
        );
        Server { child, addr, stderr_path }
    }

    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub(crate) fn post(&self, path: &str, ctype: Option<&str>, headers: &[(&str, String)], body: &[u8]) -> Reply {
        let mut h: Vec<(&str, String)> = headers.to_vec();
        if let Some(c) = ctype {
            h.push(("Content-Type", c.into()));
        }
        request(&self.addr, "POST", path, &h, body)
    }

    pub(crate) fn zoho(&self, route: &str, body: &Value) -> Reply {
        let raw = body.to_string();
        self.post(
            route,
            Some("application/json"),
            &[("X-Zoho-Signature", format!("sha256={}", sign(ZS, raw.as_bytes())))],
            raw.as_bytes(),
        )
    }

    pub(crate) fn get(&self, path: &str) -> Reply {
        request(&self.addr, "GET", path, &[], b"")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn full_env(s: Scratch) -> Scratch {
    s.env("ZOHO_WEBHOOK_HMAC_SECRET", ZS).env("MOODLE_WEBHOOK_HMAC_SECRET", MS).env("ZOHO_NOTIFY_TOKEN", NT)
}

fn rand_id() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64 % 1_000_000_007
}

#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: String,
    pub(crate) body: Value,
}

/// One HTTP/1.1 request on a fresh connection (Connection: close).
pub(crate) fn request(addr: &str, method: &str, path: &str, headers: &[(&str, String)], body: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the answer");
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = serde_json::from_str(body).unwrap_or_else(|_| json!({"raw": body}));
    // Header names are case-insensitive: compared in lower case.
    Reply { status, headers: head.to_ascii_lowercase(), body }
}

pub(crate) fn event_total(s: &dyn Store) -> i64 {
    s.event_counts().unwrap().iter().map(|c| c.count).sum()
}

/// Now, in RFC 3339 (an event's timestamp must be within the replay window).
pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub(crate) fn student(id: &str, record: &str) -> Value {
    json!({"event_id": id, "event_type": "created", "module": "BTEC_Students", "record_id": record,
           "changed_fields": ["all"], "timestamp": now_rfc3339()})
}

#[test]
fn webhook_every_shape_is_accepted_and_duplicates_change_nothing() {
    let s = full_env(Scratch::new());
    let url = s.db_url();
    let srv = Server::start(&s, &url);
    // Zoho, first shape, `sha256=` header.
    let r = srv.zoho("/v1/events/zoho/student", &student("evt_1", "5847596000012345"));
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(
        r.body,
        json!({"success":true,"message":"Event accepted for processing","event_id":"zoho:evt_1","status":"queued"})
    );
    // Zoho, second shape, bare hex, /api prefix.
    let body = json!({"notification_id":"event_12345","timestamp":now_rfc3339(),"module":"BTEC_Students",
                      "operation":"update","record_id":"5398830000123893227","data":{"Name":"John Doe"}})
    .to_string();
    let r = srv.post(
        "/api/v1/events/zoho/student",
        Some("application/json; charset=utf-8"),
        &[("X-Zoho-Signature", sign(ZS, body.as_bytes()))],
        body.as_bytes(),
    );
    assert_eq!((r.status, r.body["event_id"].as_str()), (202, Some("zoho:event_12345")), "{r:?}");
    // Zoho, form-encoded.
    let form = "event_id=evt_form&event_type=edited&module=BTEC_Classes&record_id=777";
    let r = srv.post(
        "/v1/events/zoho/class",
        Some("application/x-www-form-urlencoded"),
        &[("X-Zoho-Signature", format!("sha256={}", sign(ZS, form.as_bytes())))],
        form.as_bytes(),
    );
    assert_eq!((r.status, r.body["event_id"].as_str()), (202, Some("zoho:evt_form")), "{r:?}");
    // Zoho Notification API: one event per id, the token checked and never stored.
    let server_time = chrono::Utc::now().timestamp_millis();
    let notify = json!({"server_time":server_time,"query_params":{"src":"watch"},"module":"BTEC_Students",
        "resource_uri":"https://www.zohoapis.eu/crm/v8/BTEC_Students","ids":["501","502"],"affected_fields":[],
        "operation":"update","channel_id":"1000000068001","token":NT})
    .to_string();
    let r = srv.post("/v1/events/zoho/notify?src=watch", Some("application/json"), &[], notify.as_bytes());
    assert_eq!(r.status, 202, "{r:?}");
    assert_eq!(r.body["event_id"], format!("zoho:1000000068001:501:update:{server_time}"));
    assert_eq!(r.body["events"].as_array().unwrap().len(), 2);
    // Moodle, first shape, bare hex; second shape, `sha256=`.
    let m1 =
        json!({"eventname":"\\core\\event\\user_enrolment_created","courseid":12,"userid":34,"timecreated":chrono::Utc::now().timestamp()})
            .to_string();
    let r = srv.post(
        "/v1/events/moodle/enrollment",
        Some("application/json"),
        &[("X-Moodle-Signature", sign(MS, m1.as_bytes()))],
        m1.as_bytes(),
    );
    assert_eq!(r.status, 202, "{r:?}");
    let m1_id = r.body["event_id"].as_str().unwrap().to_string();
    let m2 =
        json!({"event_id":"moodle_evt_789","event_type":"grade_submitted","entity_type":"grade","entity_id":"12345",
                    "student_id":1234,"course_id":567,"grade":85.5})
        .to_string();
    let r = srv.post(
        "/api/v1/events/moodle/grade",
        Some("application/json"),
        &[("X-Moodle-Signature", format!("sha256={}", sign(MS, m2.as_bytes())))],
        m2.as_bytes(),
    );
    assert_eq!((r.status, r.body["event_id"].as_str()), (202, Some("moodle:moodle_evt_789")), "{r:?}");

    // Duplicates: answered as accepted-duplicate, nothing changes.
    let store = store::open(&url).unwrap();
    let before = (event_total(store.as_ref()), store.dirty_marks().unwrap().len());
    assert_eq!(before, (7, 7));
    let r = srv.zoho("/v1/events/zoho/student", &student("evt_1", "5847596000012345"));
    assert_eq!(
        (r.status, r.body["status"].as_str(), r.body["success"].as_bool()),
        (200, Some("duplicate"), Some(true)),
        "{r:?}"
    );
    let r = srv.post(
        "/v1/events/moodle/enrollment",
        Some("application/json"),
        &[("X-Moodle-Signature", sign(MS, m1.as_bytes()))],
        m1.as_bytes(),
    );
    assert_eq!((r.status, r.body["event_id"].as_str()), (200, Some(m1_id.as_str())), "{r:?}");
    let r = srv.post("/v1/events/zoho/notify", Some("application/json"), &[], notify.as_bytes());
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("duplicate")), "{r:?}");
    assert_eq!((event_total(store.as_ref()), store.dirty_marks().unwrap().len()), before);

    // What was stored.
    let e = store.event(&format!("zoho:1000000068001:502:update:{server_time}")).unwrap().unwrap();
    assert_eq!(
        (e.source.as_str(), e.module.as_deref(), e.record_id.as_deref()),
        ("zoho", Some("BTEC_Students"), Some("502"))
    );
    let g = store.event("moodle:moodle_evt_789").unwrap().unwrap();
    assert_eq!(
        (g.entity_type.as_deref(), g.record_id.as_deref(), g.status.as_str()),
        (Some("grade"), Some("567:1234"), "pending")
    );
    let db = std::fs::read(s.path().join("zmsync.db")).unwrap_or_default();
    let wal = std::fs::read(s.path().join("zmsync.db-wal")).unwrap_or_default();
    for secret in [ZS, MS, NT] {
        for bytes in [&db, &wal] {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{secret} reached the database");
        }
        assert!(!srv.stderr().contains(secret), "{secret} reached the log");
    }

    // Monitoring.
    let r = srv.get("/v1/events/health");
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("ok")), "{r:?}");
    let r = srv.get("/v1/events/stats");
    assert_eq!(r.status, 200);
    assert_eq!(r.body["counts"], json!({"moodle": {"pending": 2}, "zoho": {"pending": 5}}), "{r:?}");
}

#[test]
fn webhook_bad_input_gets_a_clear_4xx_and_stores_nothing() {
    let s = full_env(Scratch::new());
    let url = s.db_url();
    let srv = Server::start(&s, &url);
    let good = student("evt_x", "1").to_string();
    let sig = |b: &str| vec![("X-Zoho-Signature", format!("sha256={}", sign(ZS, b.as_bytes())))];
    let big = format!("{{\"event_id\":\"big\",\"record_id\":\"1\",\"pad\":\"{}\"}}", "x".repeat(70 * 1024));
    let malformed = "{\"event_id\": \"e\", \"record_id\": ";
    let unknown_module = json!({"event_id":"e2","module":"Leads","record_id":"1"}).to_string();
    let mismatch = json!({"event_id":"e3","module":"BTEC_Teachers","record_id":"1"}).to_string();
    let no_record = json!({"event_id":"e4","module":"BTEC_Students"}).to_string();
    let placeholder = json!({"zoho_id":"${!BTEC_Students.Id}","module":"BTEC_Students"}).to_string();
    let array = "[1,2]";
    let json_ct = Some("application/json");
    let cases: Vec<(&str, u16, Reply)> = vec![
        ("malformed JSON", 400, srv.post("/v1/events/zoho/student", json_ct, &sig(malformed), malformed.as_bytes())),
        ("not an object", 400, srv.post("/v1/events/zoho/student", json_ct, &sig(array), array.as_bytes())),
        (
            "wrong signature",
            401,
            srv.post(
                "/v1/events/zoho/student",
                json_ct,
                &[("X-Zoho-Signature", format!("sha256={}", sign("nope", good.as_bytes())))],
                good.as_bytes(),
            ),
        ),
        ("absent signature", 401, srv.post("/v1/events/zoho/student", json_ct, &[], good.as_bytes())),
        (
            "garbage signature",
            401,
            srv.post("/v1/events/zoho/student", json_ct, &[("X-Zoho-Signature", "sha256=xyz".into())], good.as_bytes()),
        ),
        (
            "moodle secret on zoho",
            401,
            srv.post(
                "/v1/events/zoho/student",
                json_ct,
                &[("X-Zoho-Signature", sign(MS, good.as_bytes()))],
                good.as_bytes(),
            ),
        ),
        ("zoho header on moodle", 401, srv.post("/v1/events/moodle/grade", json_ct, &sig(&good), good.as_bytes())),
        ("oversized", 413, srv.post("/v1/events/zoho/student", json_ct, &sig(&big), big.as_bytes())),
        (
            "wrong content type",
            415,
            srv.post("/v1/events/zoho/student", Some("application/xml"), &sig(&good), good.as_bytes()),
        ),
        ("no content type", 415, srv.post("/v1/events/zoho/student", None, &sig(&good), good.as_bytes())),
        ("unknown route", 404, srv.post("/v1/events/zoho/students", json_ct, &sig(&good), good.as_bytes())),
        ("unknown root", 404, srv.get("/")),
        ("wrong method", 405, srv.get("/v1/events/zoho/student")),
        ("wrong method on stats", 405, srv.post("/v1/events/stats", json_ct, &[], b"{}")),
        (
            "unknown module",
            422,
            srv.post("/v1/events/zoho/student", json_ct, &sig(&unknown_module), unknown_module.as_bytes()),
        ),
        ("module mismatch", 422, srv.post("/v1/events/zoho/student", json_ct, &sig(&mismatch), mismatch.as_bytes())),
        (
            "missing record_id",
            422,
            srv.post("/v1/events/zoho/student", json_ct, &sig(&no_record), no_record.as_bytes()),
        ),
        ("placeholder", 422, srv.post("/v1/events/zoho/student", json_ct, &sig(&placeholder), placeholder.as_bytes())),
        ("wrong notify token", 401, {
            let b = json!({"server_time":1,"module":"BTEC_Students","ids":["1"],"operation":"insert","channel_id":"9","token":"guess"}).to_string();
            srv.post("/v1/events/zoho/notify", json_ct, &[], b.as_bytes())
        }),
        ("no notify token", 401, {
            let b = json!({"server_time":1,"module":"BTEC_Students","ids":["1"],"operation":"insert","channel_id":"9"})
                .to_string();
            srv.post("/v1/events/zoho/notify", json_ct, &[], b.as_bytes())
        }),
        ("moodle missing ids", 422, {
            let b = json!({"eventname":"\\core\\event\\user_graded","courseid":3}).to_string();
            srv.post(
                "/v1/events/moodle/grade",
                json_ct,
                &[("X-Moodle-Signature", sign(MS, b.as_bytes()))],
                b.as_bytes(),
            )
        }),
    ];
    for (what, want, r) in &cases {
        assert_eq!(r.status, *want, "{what}: {r:?}");
        assert_eq!(r.body["success"], false, "{what}: {r:?}");
        assert!(r.body["error"].as_str().is_some_and(|e| !e.is_empty()), "{what}: a clear error message: {r:?}");
        assert!(r.headers.contains("content-type: application/json"), "{what}: {}", r.headers);
    }
    assert!(cases.iter().any(|(w, _, r)| *w == "wrong method" && r.headers.contains("allow: post")));
    let store = store::open(&url).unwrap();
    assert_eq!(event_total(store.as_ref()), 0, "nothing is stored for a rejected request");
    assert!(store.dirty_marks().unwrap().is_empty());
    // Still alive and well.
    assert_eq!(srv.zoho("/v1/events/zoho/student", &student("evt_after", "1")).status, 202);
}

#[test]
fn webhook_missing_secret_disables_routes_loudly() {
    let s = Scratch::new().env("ZOHO_WEBHOOK_HMAC_SECRET", ZS);
    let url = s.db_url();
    let srv = Server::start(&s, &url);
    let b = json!({"event_id":"m","event_type":"x","entity_type":"grade","entity_id":"1"}).to_string();
    // Even a "signed" event is refused: nothing can verify it.
    let r = srv.post(
        "/v1/events/moodle/grade",
        Some("application/json"),
        &[("X-Moodle-Signature", sign("", b.as_bytes()))],
        b.as_bytes(),
    );
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.body["error"].as_str().unwrap().contains("MOODLE_WEBHOOK_HMAC_SECRET"), "{r:?}");
    assert!(r.headers.contains("retry-after"), "{}", r.headers);
    let r = srv.post("/v1/events/zoho/notify", Some("application/json"), &[], b"{}");
    assert!(r.status == 503 && r.body["error"].as_str().unwrap().contains("ZOHO_NOTIFY_TOKEN"), "{r:?}");
    assert_eq!(srv.zoho("/v1/events/zoho/student", &student("z", "1")).status, 202);
    let log = srv.stderr();
    assert!(
        log.contains("WARN") && log.contains("MOODLE_WEBHOOK_HMAC_SECRET") && log.contains("ZOHO_NOTIFY_TOKEN"),
        "{log}"
    );
    assert!(!log.contains(ZS));
    assert_eq!(event_total(store::open(&url).unwrap().as_ref()), 1);
}

#[test]
fn webhook_rate_limit_answers_429_with_retry_after() {
    let s = full_env(Scratch::new());
    s.run(&["settings", "set", "webhook.rate_limit", r#"{"per_source_per_second":1,"burst":2}"#]).ok();
    let url = s.db_url();
    let srv = Server::start(&s, &url);
    let replies: Vec<Reply> =
        (0..8).map(|i| srv.zoho("/v1/events/zoho/student", &student(&format!("r{i}"), "1"))).collect();
    let accepted = replies.iter().filter(|r| r.status == 202).count();
    let limited: Vec<&Reply> = replies.iter().filter(|r| r.status == 429).collect();
    assert_eq!(accepted + limited.len(), 8, "{replies:?}");
    assert!(!limited.is_empty(), "8 quick events against a limit of 1/s with burst 2: {replies:?}");
    assert!(limited.iter().all(|r| r.headers.contains("retry-after: ")), "{limited:?}");
    assert_eq!(event_total(store::open(&url).unwrap().as_ref()), accepted as i64);
    // Moodle has its own bucket.
    let b = json!({"event_id":"m1","event_type":"x","entity_type":"grade","entity_id":"1"}).to_string();
    let r = srv.post(
        "/v1/events/moodle/grade",
        Some("application/json"),
        &[("X-Moodle-Signature", sign(MS, b.as_bytes()))],
        b.as_bytes(),
    );
    assert_eq!(r.status, 202, "{r:?}");
}

/// Waits (bounded, only so that a broken receiver fails the test instead of hanging it) until the receiver's
/// log holds `needle` at least `times` times.
fn wait_for_log(srv: &Server, needle: &str, times: usize) {
    let t = std::time::Instant::now();
    while srv.stderr().matches(needle).count() < times {
        assert!(t.elapsed() < Duration::from_secs(60), "never logged {needle:?} x{times}:\n{}", srv.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stores a new `webhook.rate_limit` in the receiver's store (the running receiver is not told).
fn set_rate_limit(s: &Scratch, url: &str, value: &str) {
    s.run(&["--database-url", url, "settings", "set", "webhook.rate_limit", value]).ok();
}

#[test]
fn webhook_rate_limit_change_takes_effect_without_restart() {
    let s = full_env(Scratch::new());
    let url = s.db_url();
    let srv = Server::start(&s, &url);
    // Unlimited by default.
    for i in 0..6 {
        assert_eq!(srv.zoho("/v1/events/zoho/student", &student(&format!("u{i}"), "1")).status, 202);
    }
    // SIGHUP: the new limit holds at once.
    set_rate_limit(&s, &url, r#"{"per_source_per_second":1,"burst":1}"#);
    let pid = srv.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    wait_for_log(&srv, "webhook.rate_limit changed", 1);
    let replies: Vec<Reply> =
        (0..4).map(|i| srv.zoho("/v1/events/zoho/student", &student(&format!("l{i}"), "1"))).collect();
    assert!(replies.iter().any(|r| r.status == 429), "4 quick events against 1/s, burst 1: {replies:?}");
    // No signal: the periodic re-read lifts it.
    set_rate_limit(&s, &url, r#"{"per_source_per_second":0,"burst":0}"#);
    wait_for_log(&srv, "webhook.rate_limit changed", 2);
    for i in 0..6 {
        assert_eq!(srv.zoho("/v1/events/zoho/student", &student(&format!("v{i}"), "1")).status, 202);
    }
    assert!(!srv.stderr().contains("panicked"), "{}", srv.stderr());
}

/// Many keep-alive connections opened at once are all answered while every one of them stays open (none
/// waits for another to close, as with tiny_http: see `nudge_connections` in src/webhook/legacy.rs).
#[test]
fn webhook_keep_alive_connections_opened_together_are_all_answered() {
    let s = full_env(Scratch::new());
    let url = s.db_url();
    let srv = Server::start(&s, &url);
    for round in 0..3 {
        let streams: Vec<TcpStream> = (0..12).map(|_| TcpStream::connect(&srv.addr).unwrap()).collect();
        let barrier = Arc::new(std::sync::Barrier::new(streams.len()));
        let threads: Vec<_> = streams
            .into_iter()
            .enumerate()
            .map(|(i, mut stream)| {
                let (addr, barrier) = (srv.addr.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                    let body = student(&format!("ka-{round}-{i}"), "1").to_string();
                    let head = format!(
                        "POST /v1/events/zoho/student HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
                         X-Zoho-Signature: sha256={}\r\nContent-Length: {}\r\n\r\n",
                        sign(ZS, body.as_bytes()),
                        body.len()
                    );
                    stream.write_all(head.as_bytes()).unwrap();
                    stream.write_all(body.as_bytes()).unwrap();
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    let answered = reader.read_line(&mut line).is_ok() && line.contains(" 202 ");
                    // Stay open until every connection has its answer.
                    barrier.wait();
                    drop(stream);
                    (answered, line)
                })
            })
            .collect();
        for t in threads {
            let (answered, line) = t.join().unwrap();
            assert!(answered, "a keep-alive connection was not answered while the others stayed open: {line:?}");
        }
    }
    assert_eq!(event_total(store::open(&url).unwrap().as_ref()), 36);
}

/// The receiver cannot commit: each event is answered 503 with Retry-After (never 202, never a crash), and
/// once the store is back the same event is accepted.
fn unavailable_then_back(srv: &Server, url: &str, cut: impl FnOnce(), restore: impl FnOnce()) {
    assert_eq!(srv.zoho("/v1/events/zoho/student", &student("before", "1")).status, 202);
    cut();
    for _ in 0..2 {
        let r = srv.zoho("/v1/events/zoho/student", &student("during", "2"));
        assert_eq!(r.status, 503, "{r:?}\n{}", srv.stderr());
        assert!(r.headers.contains("retry-after: "), "{}", r.headers);
        assert!(r.body["error"].as_str().unwrap().contains("unavailable"), "{r:?}");
    }
    restore();
    let r = srv.zoho("/v1/events/zoho/student", &student("during", "2"));
    assert_eq!(r.status, 202, "{r:?}\n{}", srv.stderr());
    let log = srv.stderr();
    assert!(!log.contains("panicked"), "{log}");
    let store = store::open(url).unwrap();
    assert_eq!(event_total(store.as_ref()), 2);
}

#[test]
fn webhook_store_unavailable_answers_503_sqlite() {
    let s = full_env(Scratch::new());
    let url = s.db_url();
    let srv = Server::start(&s, &url);
    // Another process holds SQLite's write lock for longer than the receiver waits for it.
    let locker = rusqlite::Connection::open(s.path().join("zmsync.db")).unwrap();
    unavailable_then_back(
        &srv,
        &url,
        || locker.execute_batch("BEGIN IMMEDIATE").unwrap(),
        || locker.execute_batch("ROLLBACK").unwrap(),
    );
}

#[test]
fn webhook_store_unavailable_answers_503_postgres() {
    let Some(schema) = PgSchema::create() else { return };
    let s = full_env(Scratch::new());
    let proxy = PgProxy::start(&schema.url);
    let srv = Server::start(&s, &proxy.url);
    unavailable_then_back(&srv, &schema.url, || proxy.cut(), || proxy.restore());
}

/// A TCP forwarder in front of PostgreSQL that can be cut, as if the database server went down: every
/// connection through it is closed, and new ones are closed as soon as they are accepted.
struct PgProxy {
    url: String,
    down: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl PgProxy {
    fn start(pg_url: &str) -> PgProxy {
        let parsed = url::Url::parse(pg_url).unwrap();
        let target = format!("{}:{}", parsed.host_str().unwrap(), parsed.port().unwrap_or(5432));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut proxied = parsed.clone();
        proxied.set_host(Some("127.0.0.1")).unwrap();
        proxied.set_port(Some(listener.local_addr().unwrap().port())).unwrap();
        let down = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (d, o) = (Arc::clone(&down), Arc::clone(&open));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if d.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let Ok(server) = TcpStream::connect(&target) else { continue };
                let mut o = o.lock().unwrap();
                o.push(client.try_clone().unwrap());
                o.push(server.try_clone().unwrap());
                for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        PgProxy { url: proxied.to_string(), down, open }
    }

    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for s in self.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

#[test]
fn webhook_sigterm_drains_and_exits_0() {
    let s = full_env(Scratch::new());
    let url = s.db_url();
    let mut srv = Server::start(&s, &url);
    assert_eq!(srv.zoho("/v1/events/zoho/student", &student("t1", "1")).status, 202);
    let pid = srv.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = srv.child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{}", srv.stderr());
    assert_eq!(event_total(store::open(&url).unwrap().as_ref()), 1);
}

/// Signed events from several threads until `stop`; returns the ids answered 202.
fn load(
    addr: String,
    threads: usize,
    stop: Arc<AtomicBool>,
    prefix: &str,
) -> Vec<std::thread::JoinHandle<(Vec<String>, Vec<Reply>)>> {
    (0..threads)
        .map(|t| {
            let (addr, stop, prefix) = (addr.clone(), Arc::clone(&stop), prefix.to_string());
            std::thread::spawn(move || {
                let mut ok = Vec::new();
                let mut odd = Vec::new();
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let id = format!("{prefix}-{t}-{i}");
                    i += 1;
                    let raw = student(&id, &format!("{}", 1000 + i % 50)).to_string();
                    let sig = vec![
                        ("X-Zoho-Signature", format!("sha256={}", sign(ZS, raw.as_bytes()))),
                        ("Content-Type", "application/json".to_string()),
                    ];
                    let r = std::panic::catch_unwind(|| {
                        request(&addr, "POST", "/v1/events/zoho/student", &sig, raw.as_bytes())
                    });
                    match r {
                        // The stored id, as answered (`zoho:` + the sender's).
                        Ok(r) if r.status == 202 => ok.push(r.body["event_id"].as_str().unwrap_or(&id).to_string()),
                        Ok(r) if r.status == 0 => break, // the server is gone
                        Ok(r) => odd.push(r),
                        Err(_) => break,
                    }
                }
                (ok, odd)
            })
        })
        .collect()
}

fn kill9_then_restart(s: &Scratch, url: &str) {
    let mut srv = Server::start(s, url);
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(srv.addr.clone(), 4, Arc::clone(&stop), "k9");
    // Let some events through, then kill -9 mid-load.
    let store = store::open(url).unwrap();
    for _ in 0..200 {
        if event_total(store.as_ref()) >= 100 {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    srv.child.kill().unwrap(); // SIGKILL
    srv.child.wait().unwrap();
    stop.store(true, Ordering::SeqCst);
    let mut accepted = Vec::new();
    for c in clients {
        let (ok, odd) = c.join().unwrap();
        assert!(odd.is_empty(), "only 202s before the kill: {odd:?}");
        accepted.extend(ok);
    }
    assert!(!accepted.is_empty());
    // Restart: the store opens, and every event answered 202 is there.
    let srv2 = Server::start(s, url);
    assert_eq!(srv2.get("/v1/events/health").status, 200);
    let store = store::open(url).unwrap();
    for id in &accepted {
        assert!(store.event(id).unwrap().is_some(), "event {id} was answered 202 but is not in the log");
    }
    assert!(event_total(store.as_ref()) >= accepted.len() as i64);
}

#[test]
fn webhook_kill_9_loses_no_accepted_event_sqlite() {
    let s = full_env(Scratch::new());
    let url = s.db_url();
    kill9_then_restart(&s, &url);
}

#[test]
fn webhook_kill_9_loses_no_accepted_event_postgres() {
    let Some(schema) = PgSchema::create() else { return };
    let s = full_env(Scratch::new());
    kill9_then_restart(&s, &schema.url);
}

#[test]
fn webhook_sqlite_with_a_second_writer_never_reports_locked() {
    let s = full_env(Scratch::new());
    let url = s.db_url();
    s.run(&["init"]).ok();
    let srv = Server::start(&s, &url);
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(srv.addr.clone(), 3, Arc::clone(&stop), "lk");
    let sets = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::new()));
    for n in 0..15 {
        let r = s.run(&[
            "settings",
            "set",
            "retry.policy",
            &format!(r#"{{"max_retries":{n},"backoff_factor":2,"initial_delay_seconds":1}}"#),
        ]);
        if r.code == 0 {
            sets.fetch_add(1, Ordering::SeqCst);
        } else {
            failures.lock().unwrap().push(r.stderr);
        }
    }
    stop.store(true, Ordering::SeqCst);
    let mut accepted = 0;
    for c in clients {
        let (ok, odd) = c.join().unwrap();
        assert!(odd.is_empty(), "every event must be accepted while another process writes: {odd:?}");
        accepted += ok.len();
    }
    assert!(accepted > 0);
    assert_eq!(sets.load(Ordering::SeqCst), 15, "{:?}", failures.lock().unwrap());
    assert!(!srv.stderr().contains("locked"), "{}", srv.stderr());
    assert_eq!(event_total(store::open(&url).unwrap().as_ref()), accepted as i64);
}

// ---- zmsync events status | retry | cleanup -----------------------------------------------------------

fn events_commands(s: &Scratch, url: &str) {
    use zmsync::store::events::NewEvent;
    let store = store::open(url).unwrap();
    let ev = |id: &str, rec: &str| NewEvent {
        event_id: id.into(),
        source: "zoho".into(),
        event_type: "update".into(),
        module: Some("BTEC_Students".into()),
        entity_type: "student".into(),
        record_id: rec.into(),
        payload: json!({}),
    };
    for (id, rec) in [("a", "1"), ("b", "2"), ("c", "3")] {
        store.insert_events(&[ev(id, rec)]).unwrap();
        std::thread::sleep(Duration::from_millis(3)); // distinct marked_at: a, b, c are claimed in that order
    }
    let marks = store.claim_dirty(2).unwrap();
    store.complete_dirty(&marks[..1]).unwrap();
    store.fail_dirty(&marks[1], "Moodle refused: invalid email", Duration::from_secs(3600)).unwrap();
    let run = |args: &[&str]| {
        let mut all = vec!["--database-url", url];
        all.extend_from_slice(args);
        s.run(&all).ok()
    };

    let v: Value = serde_json::from_str(&run(&["--json", "events", "status"]).stdout).unwrap();
    let counts: Vec<(String, i64)> = v["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["status"].as_str().unwrap().to_string(), c["count"].as_i64().unwrap()))
        .collect();
    assert_eq!(counts, vec![("completed".into(), 1), ("failed".into(), 1), ("pending".into(), 1)], "{v}");
    assert_eq!(v["oldest_pending"]["event_id"], "c");
    assert_eq!(v["recent_failures"][0]["error_message"], "Moodle refused: invalid email");
    // The failed key stays dirty with its error and attempt count, due again in an hour (issue #7).
    let failing = &v["dirty"]["failing"];
    assert_eq!((v["dirty"]["marked"].as_u64(), failing.as_array().map(Vec::len)), (Some(2), Some(1)), "{v}");
    assert_eq!((failing[0]["key"]["key"].as_str(), failing[0]["attempts"].as_i64()), (Some("2"), Some(1)), "{v}");
    assert_eq!(failing[0]["last_error"], "Moodle refused: invalid email");
    assert!(failing[0]["retry_after"].is_string(), "{v}");
    let text = run(&["events", "status"]).stdout;
    assert!(text.contains("Moodle refused: invalid email") && text.contains("oldest pending: c"), "{text}");
    assert!(text.contains("attempts 1  retry after"), "{text}");

    // Retry within max_retries (setting), then exhausted.
    run(&["settings", "set", "retry.policy", r#"{"max_retries":1,"backoff_factor":2,"initial_delay_seconds":1}"#]);
    let failed_id = store.recent_failed_events(1).unwrap()[0].event_id.clone();
    let v: Value = serde_json::from_str(&run(&["--json", "events", "retry", "--hours", "1"]).stdout).unwrap();
    assert_eq!((v["retried"].as_u64(), v["exhausted"].as_u64()), (Some(1), Some(0)), "{v}");
    assert_eq!(store.event(&failed_id).unwrap().unwrap().status, "pending");
    let again = store.claim_dirty(10).unwrap();
    for m in &again {
        if m.key.key == "2" {
            store.fail_dirty(m, "still broken", Duration::from_secs(3600)).unwrap();
        }
    }
    let out = run(&["events", "retry"]).stdout;
    assert!(out.contains("retried 0") && out.contains("max_retries = 1"), "{out}");

    // Cleanup: --days 0 covers everything created so far; --dry-run writes nothing.
    let before = run(&["--json", "events", "status"]).stdout;
    let out = run(&["events", "cleanup", "--days", "0", "--dry-run", "--include-failed"]).stdout;
    assert!(out.contains("would delete") && out.contains("nothing was deleted"), "{out}");
    assert_eq!(run(&["--json", "events", "status"]).stdout, before, "--dry-run must write nothing");
    let v: Value = serde_json::from_str(&run(&["--json", "events", "cleanup", "--days", "0"]).stdout).unwrap();
    let completed = store.event_counts().unwrap();
    assert_eq!(v["deleted"].as_u64(), Some(1), "{v} {completed:?}");
    let v: Value =
        serde_json::from_str(&run(&["--json", "events", "cleanup", "--days", "30", "--include-failed"]).stdout)
            .unwrap();
    assert_eq!(v["deleted"].as_u64(), Some(0), "nothing is 30 days old: {v}");
    let v: Value =
        serde_json::from_str(&run(&["--json", "events", "cleanup", "--days", "0", "--include-failed"]).stdout).unwrap();
    assert!(v["deleted"].as_u64().unwrap() >= 1, "{v}");
    assert!(store.recent_failed_events(10).unwrap().is_empty());
}

#[test]
fn webhook_events_commands_sqlite() {
    let s = Scratch::new();
    let url = s.db_url();
    events_commands(&s, &url);
}

#[test]
fn webhook_events_commands_postgres() {
    let Some(schema) = PgSchema::create() else { return };
    let s = Scratch::new();
    events_commands(&s, &schema.url);
}
