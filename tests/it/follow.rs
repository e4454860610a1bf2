//! Incremental sync end to end: a Zoho edit marked dirty through the webhook receiver (`zmsync serve`), then
//! picked up by `sync --incremental` (one run) or by `sync --incremental --follow` fed by the fake Zoho's
//! workflow-webhook emulation.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use zmsync::sandbox::generator::{GenOptions, State};
use zmsync::sandbox::{Sandbox, SandboxOptions};
use zmsync::secret::Secret;

use crate::support::{PgSchema, Run, Scratch};

const SECRET: &str = "follow-test-secret";
const NEW_EMAIL: &str = "New.Address@student.example.edu";

fn sandbox(students: usize) -> Sandbox {
    Sandbox::start(SandboxOptions {
        generate: GenOptions { students, state: State::Empty, seed: 7, ..GenOptions::default() },
        ..SandboxOptions::default()
    })
    .expect("sandbox starts")
}

fn scratch(sb: &Sandbox) -> Scratch {
    let mut s = Scratch::new();
    for (k, v) in sb.env() {
        s = s.env(k, &v);
    }
    s.env("ZOHO_WEBHOOK_HMAC_SECRET", SECRET)
}

fn json_of(r: &Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", r.stdout, r.stderr))
}

/// Children killed (SIGTERM, then SIGKILL if they linger) however the test ends.
#[derive(Default)]
pub(crate) struct Children(Vec<Child>);

impl Children {
    fn push(&mut self, c: Child) -> &mut Child {
        self.0.push(c);
        self.0.last_mut().unwrap()
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = std::process::Command::new("kill").arg(c.id().to_string()).status();
        }
        for c in &mut self.0 {
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(10) {
                if !matches!(c.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `zmsync serve` on an ephemeral port; returns its address.
pub(crate) fn serve(s: &Scratch, kids: &mut Children) -> String {
    let log = s.path().join("serve.log");
    let child = kids.push(
        s.cmd(&["serve", "--bind", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start zmsync serve"),
    );
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().to_string();
    assert!(
        addr.starts_with("127.0.0.1:"),
        "first stdout line must be the address, got {line:?}; stderr: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    addr
}

fn sign(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// One signed POST on a fresh connection; the status code.
fn post(addr: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nX-Zoho-Signature: sha256={}\r\n\r\n",
        body.len(),
        sign(body)
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read the answer");
    let status = raw.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, raw)
}

/// A converged college, and one student (Zoho id, Student_ID_Number) with its Moodle user.
pub(crate) fn converged(sb: &Sandbox, s: &Scratch) -> (String, String) {
    s.run(&["--json", "sync", "--all"]).ok();
    let v = json_of(&s.run(&["--json", "sync", "--all"]).ok());
    assert_eq!(v["planned_ops"], 0, "converged: {v}");
    let users = sb.moodle().users();
    let rec = sb
        .zoho()
        .records("BTEC_Students")
        .into_iter()
        .find(|r| {
            let num = r["Student_ID_Number"].as_str().unwrap_or("");
            !num.is_empty() && users.iter().any(|u| u.idnumber == num)
        })
        .expect("a synced student");
    (rec["id"].as_str().unwrap().to_string(), rec["Student_ID_Number"].as_str().unwrap().to_string())
}

pub(crate) fn moodle_email(sb: &Sandbox, idnumber: &str) -> String {
    sb.moodle().users().into_iter().find(|u| u.idnumber == idnumber).expect("the Moodle user").email
}

#[test]
fn follow_incremental_sync_picks_up_a_webhook_marked_edit() {
    let sb = sandbox(40);
    let s = scratch(&sb);
    let (id, num) = converged(&sb, &s);
    assert_ne!(moodle_email(&sb, &num), NEW_EMAIL.to_lowercase());

    let mut kids = Children::default();
    let addr = serve(&s, &mut kids);
    sb.zoho().update_record("BTEC_Students", &id, json!({"Academic_Email": NEW_EMAIL})).unwrap();
    let body = json!({"event_id":"evt_1","event_type":"updated","module":"BTEC_Students","record_id":id,
                      "changed_fields":["Academic_Email"],"timestamp":chrono::Utc::now().to_rfc3339()})
    .to_string();
    let (status, raw) = post(&addr, "/v1/events/zoho/student", body.as_bytes());
    assert_eq!(status, 202, "{raw}");

    // Accepted means stored: the event is pending and the student's key is marked dirty.
    let v = json_of(&s.run(&["--json", "events", "status"]).ok());
    assert_eq!(v["counts"], json!([{"source": "zoho", "status": "pending", "count": 1}]), "{v}");
    assert_eq!(v["oldest_pending"]["event_id"], "zoho:evt_1", "{v}");
    assert_eq!(v["oldest_pending"]["record_id"], id.as_str(), "{v}");
    assert_eq!(v["dirty"]["marked"], 1, "{v}");

    let r = s.run(&["--json", "sync", "--incremental"]).ok();
    let run = json_of(&r);
    assert_eq!(run["dirty_taken"], 1, "{run}");
    assert_eq!(run["dirty_failed"], 0, "{run}");
    assert_eq!(moodle_email(&sb, &num), NEW_EMAIL.to_lowercase(), "{run}");

    let v = json_of(&s.run(&["--json", "events", "status"]).ok());
    assert_eq!(v["counts"], json!([{"source": "zoho", "status": "completed", "count": 1}]), "{v}");
    assert!(v["oldest_pending"].is_null(), "{v}");
    assert_eq!(v["dirty"], json!({"marked": 0, "claimed": 0, "failing": []}), "{v}");
}

#[test]
fn follow_webhook_to_moodle() {
    webhook_to_moodle(None);
}

/// The same on PostgreSQL: the follower is woken by the receiver's NOTIFY instead of polling.
#[test]
fn follow_webhook_to_moodle_postgres() {
    let Some(schema) = PgSchema::create() else { return };
    webhook_to_moodle(Some(&schema.url));
}

fn webhook_to_moodle(database_url: Option<&str>) {
    let sb = sandbox(40);
    let mut s = scratch(&sb);
    if let Some(url) = database_url {
        s = s.env("DATABASE_URL", url);
    }
    let (id, num) = converged(&sb, &s);

    let mut kids = Children::default();
    let addr = serve(&s, &mut kids);
    sb.zoho().configure(|o| o.webhook_hmac_secret = Some(Secret::new(SECRET)));
    sb.zoho().set_webhook_url(Some(format!("http://{addr}/v1/events/zoho/{{entity}}")));
    let log = s.path().join("follow.log");
    kids.push(
        s.cmd(&["sync", "--incremental", "--follow"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start follow"),
    );

    let t = Instant::now();
    sb.zoho().update_record("BTEC_Students", &id, json!({"Academic_Email": NEW_EMAIL})).unwrap();
    let want = NEW_EMAIL.to_lowercase();
    while moodle_email(&sb, &num) != want {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "Moodle never got the new email; follow stderr:\n{}\nserve stderr:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default(),
            std::fs::read_to_string(s.path().join("serve.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("webhook → Moodle: {:?}", t.elapsed());
    assert_eq!(sb.zoho().stats().delivery_failures, 0);
}

/// Issue #7: a key whose Moodle write is rejected stays dirty with its error; a run before its retry time does
/// not take it; once due, a run retries it, and when the write succeeds the mark and its events clear.
#[test]
fn incremental_failing_key_stays_dirty_until_it_syncs() {
    use zmsync::store::events::NewEvent;
    let sb = sandbox(40);
    let s = scratch(&sb);
    let (id, num) = converged(&sb, &s);
    let store = zmsync::store::open(&s.db_url()).unwrap();
    let mark = |event_id: &str| {
        let ev = NewEvent {
            event_id: event_id.into(),
            source: "zoho".into(),
            event_type: "updated".into(),
            module: Some("BTEC_Students".into()),
            entity_type: "student".into(),
            record_id: id.clone(),
            payload: json!({}),
        };
        store.insert_events(&[ev]).unwrap();
    };
    // Moodle refuses the address another user already has (useremailduplicate).
    let taken = sb.moodle().users().into_iter().find(|u| u.idnumber != num && !u.idnumber.is_empty()).unwrap().email;
    sb.zoho().update_record("BTEC_Students", &id, json!({"Academic_Email": taken})).unwrap();
    mark("evt_bad");
    let run = json_of(&s.run(&["--json", "sync", "--incremental"]).code(3));
    assert_eq!((run["dirty_taken"].as_u64(), run["dirty_failed"].as_u64()), (Some(1), Some(1)), "{run}");

    let v = json_of(&s.run(&["--json", "events", "status"]).ok());
    assert_eq!(v["counts"], json!([{"source": "zoho", "status": "failed", "count": 1}]), "{v}");
    let failing = &v["dirty"]["failing"];
    assert_eq!((v["dirty"]["marked"].as_u64(), failing.as_array().map(Vec::len)), (Some(1), Some(1)), "{v}");
    assert_eq!((failing[0]["key"]["key"].as_str(), failing[0]["attempts"].as_i64()), (Some(id.as_str()), Some(1)));
    let error = failing[0]["last_error"].as_str().unwrap_or_default().to_string();
    assert!(!error.is_empty(), "{v}");
    assert_eq!(v["recent_failures"][0]["error_message"], error.as_str(), "the event carries the same error");

    // Not due (retry.policy: 60 s first): the next run leaves it alone.
    let run = json_of(&s.run(&["--json", "sync", "--incremental"]).ok());
    assert_eq!(run["dirty_taken"], 0, "{run}");
    assert_eq!(json_of(&s.run(&["--json", "events", "status"]).ok())["dirty"]["marked"], 1);

    // Fixed in Zoho (no new event); once its retry time has passed, a run retries it and it clears.
    sb.zoho().update_record("BTEC_Students", &id, json!({"Academic_Email": NEW_EMAIL})).unwrap();
    let conn = rusqlite::Connection::open(s.db_url().trim_start_matches("sqlite://")).unwrap();
    conn.execute("UPDATE dirty SET retry_after = '2000-01-01T00:00:00.000000Z'", []).unwrap();
    let run = json_of(&s.run(&["--json", "sync", "--incremental"]).ok());
    assert_eq!((run["dirty_taken"].as_u64(), run["dirty_failed"].as_u64()), (Some(1), Some(0)), "{run}");
    assert_eq!(moodle_email(&sb, &num), NEW_EMAIL.to_lowercase(), "{run}");
    let v = json_of(&s.run(&["--json", "events", "status"]).ok());
    assert_eq!(v["dirty"], json!({"marked": 0, "claimed": 0, "failing": []}), "{v}");
    assert_eq!(v["counts"], json!([{"source": "zoho", "status": "completed", "count": 1}]), "{v}");
}
