//! Issue #19: every run converges to the truth. The invariants, on SQLite and PostgreSQL:
//! - self-heal: Moodle id fields cleared or corrupted in Zoho, a plugin row deleted, an unenrolment without an
//!   event — one full run restores all, the next plans nothing;
//! - one bad key: a dirty set with one key Zoho refuses — every other key syncs in the same run, the bad one fails
//!   alone and is parked after `retry.policy.max_retries`;
//! - a rerun after a kill says it is finishing the killed run's work, and the store shows the killed run
//!   `interrupted`;
//! - incremental equals full: seeded sequences of changes made the way people make them (the fakes' UI helpers, so
//!   the webhooks fire into `zmsync serve`), then `sync --incremental` from the events: a full run afterwards has
//!   nothing left to do, and its snapshot finds the store as the incremental run left it.
//!
//! The end-state checks ([`assert_truth`]) are shared with the SIGKILL test in `sync.rs`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use zmsync::model::{Entity, Kind};
use zmsync::sandbox::generator::{GenOptions, State};
use zmsync::sandbox::{Sandbox, SandboxOptions};
use zmsync::secret::Secret;
use zmsync::store::events::NewEvent;

use crate::support::{PgSchema, Run, Scratch};

const SECRET: &str = "converge-test-secret";

fn sandbox(students: usize, webhook_url: Option<String>) -> Sandbox {
    Sandbox::start(SandboxOptions {
        generate: GenOptions { students, state: State::Empty, seed: 7, ..GenOptions::default() },
        webhook_url,
        webhook_hmac_secret: Some(Secret::new(SECRET)),
        ..SandboxOptions::default()
    })
    .expect("sandbox starts")
}

/// A scratch directory for `sb` (when given), on `db` (SQLite in the directory when `None`), with the receiver's
/// secrets.
fn scratch(sb: Option<&Sandbox>, db: Option<&str>) -> Scratch {
    let mut s = Scratch::new().env("ZOHO_WEBHOOK_HMAC_SECRET", SECRET).env("MOODLE_WEBHOOK_HMAC_SECRET", SECRET);
    if let Some(sb) = sb {
        s = with_sandbox(s, sb);
    }
    if let Some(url) = db {
        s = s.env("DATABASE_URL", url);
    }
    s
}

fn with_sandbox(mut s: Scratch, sb: &Sandbox) -> Scratch {
    for (k, v) in sb.env() {
        s = s.env(k, &v);
    }
    s
}

/// The store's URL: `db`, or the scratch directory's SQLite file.
fn db_url(s: &Scratch, db: Option<&str>) -> String {
    db.map(str::to_string).unwrap_or_else(|| s.db_url())
}

fn json_of(r: &Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", r.stdout, r.stderr))
}

#[track_caller]
fn full(s: &Scratch) -> Value {
    let r = s.run(&["--json", "sync", "--all", "--allow-mass-change"]);
    assert!(r.code == 0 || r.code == 3, "sync --all: exit {}\n{}\n{}", r.code, r.stdout, r.stderr);
    json_of(&r)
}

#[track_caller]
fn converged(s: &Scratch) -> Value {
    let v = json_of(&s.run(&["--json", "sync", "--all"]).ok());
    assert_eq!(v["planned_ops"], 0, "a run after convergence plans nothing: {v}");
    v
}

/// (entity, Zoho module, the Moodle id field).
const ID_FIELDS: [(Entity, &str, &str); 3] = [
    (Entity::Student, "BTEC_Students", "Student_Moodle_ID"),
    (Entity::Teacher, "BTEC_Teachers", "Teacher_Moodle_ID"),
    (Entity::Class, "BTEC_Classes", "Moodle_Course_ID"),
];

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// The truth after a run that converged: every linked record's Moodle id field in Zoho equals its link; every
/// link points at a Moodle object that exists (a live user, a course; an inactive student's may be gone); no Moodle user, course or enrolment
/// exists twice; every active student and class with a link has exactly one Moodle object with its identity.
#[track_caller]
pub fn assert_truth(sb: &Sandbox, db_url: &str) {
    let store = zmsync::store::open(db_url).expect("open the store");
    let users: HashMap<String, zmsync::sandbox::moodle::User> =
        sb.moodle().users().into_iter().map(|u| (u.id.to_string(), u)).collect();
    let courses: HashSet<String> = sb.moodle().courses().into_iter().map(|c| c.id.to_string()).collect();
    for (entity, module, field) in ID_FIELDS {
        let zoho: HashMap<String, Value> = sb.zoho().records(module).into_iter().map(|r| (text(&r["id"]), r)).collect();
        for l in store.links(entity).expect("links") {
            let Some(rec) = zoho.get(&l.zoho_id) else { continue }; // deleted in Zoho: the link remembers it
            assert_eq!(
                text(&rec[field]),
                l.moodle_id,
                "{module} {}: {field} in Zoho must equal the stored link",
                l.zoho_id
            );
            // A student who is not active gets no account: a user deleted in Moodle is not made again for one.
            if entity == Entity::Student && rec["Status"] != "Active" {
                continue;
            }
            if entity == Entity::Class {
                assert!(
                    courses.contains(&l.moodle_id),
                    "class {} is linked to course {}, which is gone",
                    l.zoho_id,
                    l.moodle_id
                );
            } else {
                let u = users.get(&l.moodle_id);
                assert!(
                    u.is_some_and(|u| !u.deleted),
                    "{module} {} is linked to user {}, which is gone",
                    l.zoho_id,
                    l.moodle_id
                );
            }
        }
    }
    let mut idnumbers = HashMap::new();
    for u in users.values().filter(|u| !u.deleted && !u.idnumber.is_empty()) {
        assert!(idnumbers.insert(u.idnumber.clone(), u.id).is_none(), "Moodle user {} exists twice", u.idnumber);
    }
    let mut seen = HashSet::new();
    for c in sb.moodle().courses().iter().filter(|c| !c.idnumber.is_empty()) {
        assert!(seen.insert(c.idnumber.clone()), "course {} exists twice", c.idnumber);
    }
    let mut pairs = HashSet::new();
    for (e, _) in sb.moodle().enrolments() {
        assert!(pairs.insert((e.courseid, e.userid)), "enrolment {}:{} exists twice", e.courseid, e.userid);
    }
    for s in sb.zoho().records("BTEC_Students") {
        let (num, mid) = (text(&s["Student_ID_Number"]), text(&s["Student_Moodle_ID"]));
        if s["Status"] == "Active" && !mid.is_empty() && !num.is_empty() {
            assert_eq!(
                idnumbers.get(&num).map(i64::to_string),
                Some(mid),
                "student {num}: one Moodle user, its id in Zoho"
            );
        }
    }
    for c in sb.zoho().records("BTEC_Classes") {
        let mid = text(&c["Moodle_Course_ID"]);
        if !mid.is_empty() {
            assert!(seen.contains(&text(&c["id"])), "class {}: its course exists once", text(&c["id"]));
        }
    }
}

// ---- self-heal ------------------------------------------------------------------------------------------

fn self_heal(db: Option<&str>) {
    let sb = sandbox(40, None);
    let s = scratch(Some(&sb), db);
    full(&s);
    converged(&s);
    let students = sb.zoho().records("BTEC_Students");
    let linked: Vec<&Value> = students.iter().filter(|r| !text(&r["Student_Moodle_ID"]).is_empty()).collect();
    assert!(linked.len() >= 4);
    let id = |r: &Value| text(&r["id"]);
    // Cleared, wrong, another student's, and a field the run's write-back never reached (as after a kill).
    sb.zoho().update_record("BTEC_Students", &id(linked[0]), json!({"Student_Moodle_ID": null})).unwrap();
    sb.zoho().update_record("BTEC_Students", &id(linked[1]), json!({"Student_Moodle_ID": "987654"})).unwrap();
    let other = text(&linked[3]["Student_Moodle_ID"]);
    sb.zoho().update_record("BTEC_Students", &id(linked[2]), json!({"Student_Moodle_ID": other})).unwrap();
    let teacher = sb.zoho().records("BTEC_Teachers").into_iter().next().unwrap();
    sb.zoho().update_record("BTEC_Teachers", &id(&teacher), json!({"Teacher_Moodle_ID": ""})).unwrap();
    let class = sb.zoho().records("BTEC_Classes").into_iter().next().unwrap();
    sb.zoho().update_record("BTEC_Classes", &id(&class), json!({"Moodle_Course_ID": "1"})).unwrap();
    // A plugin row deleted, a student unenrolled in Moodle, neither announced.
    let payment = sb.moodle().plugin_rows("payments").into_iter().next().expect("a payment row");
    let pay_id = text(&payment["zoho_id"]);
    assert!(sb.moodle().delete_plugin_row("payments", &pay_id));
    let (enrolment, _) = sb
        .moodle()
        .enrolments()
        .into_iter()
        .find(|(e, roles)| roles.contains(&5) && e.status == 0)
        .expect("a student enrolment");
    assert!(sb.moodle().unenrol(enrolment.courseid, enrolment.userid));

    let v = full(&s);
    assert_eq!(v["failed"], 0, "{v}");
    assert!(v["applied"].as_u64().unwrap() >= 7, "every difference was planned and applied: {v}");
    converged(&s);
    assert_truth(&sb, &db_url(&s, db));
    assert!(
        sb.moodle().plugin_rows("payments").iter().any(|r| text(&r["zoho_id"]) == pay_id),
        "the deleted payment row is back"
    );
}

#[test]
fn converge_one_full_run_heals_cleared_and_corrupted_links_rows_and_enrolments() {
    self_heal(None);
}

#[test]
fn converge_self_heal_on_postgres() {
    let Some(pg) = PgSchema::create() else { return };
    self_heal(Some(&pg.url));
}

// ---- one bad key ----------------------------------------------------------------------------------------

fn mark(store: &dyn zmsync::store::Store, n: usize, record_id: &str) {
    let ev = NewEvent {
        event_id: format!("evt_{n}"),
        source: "zoho".into(),
        event_type: "updated".into(),
        module: Some("BTEC_Students".into()),
        entity_type: "student".into(),
        record_id: record_id.into(),
        payload: json!({}),
    };
    store.insert_events(&[ev]).unwrap();
}

fn one_bad_key(db: Option<&str>) {
    let sb = sandbox(40, None);
    let s = scratch(Some(&sb), db);
    full(&s);
    converged(&s);
    s.run(&["settings", "set", "retry.policy", r#"{"max_retries":2,"backoff_factor":1,"initial_delay_seconds":0}"#])
        .ok();
    let store = zmsync::store::open(&db_url(&s, db)).unwrap();
    // Five students edited in Zoho, marked dirty with one key that passes for an id but that Zoho refuses (too
    // long for a record id: 400 INVALID_DATA for the whole by-ids read).
    let bad = "58475960000123456789012345";
    let students: Vec<Value> = sb.zoho().records("BTEC_Students").into_iter().take(5).collect();
    let mut want = BTreeMap::new();
    for (n, r) in students.iter().enumerate() {
        let email = format!("one.bad.key.{n}@student.example.edu");
        sb.zoho().update_record("BTEC_Students", &text(&r["id"]), json!({"Academic_Email": email})).unwrap();
        want.insert(text(&r["Student_ID_Number"]), email);
        mark(store.as_ref(), n, &text(&r["id"]));
        if n == 2 {
            mark(store.as_ref(), 99, bad);
        }
    }
    let run = json_of(&s.run(&["--json", "sync", "--incremental"]).code(3));
    assert_eq!((run["dirty_taken"].as_u64(), run["dirty_failed"].as_u64()), (Some(6), Some(1)), "{run}");
    let users: HashMap<String, String> =
        sb.moodle().users().into_iter().map(|u| (u.idnumber.clone(), u.email.clone())).collect();
    for (num, email) in &want {
        assert_eq!(users.get(num), Some(email), "student {num} synced in the same run as the bad key: {run}");
    }
    let status = |s: &Scratch| json_of(&s.run(&["--json", "events", "status"]).ok());
    let v = status(&s);
    let failing = v["dirty"]["failing"].as_array().cloned().unwrap_or_default();
    assert_eq!(failing.len(), 1, "{v}");
    assert_eq!((failing[0]["key"]["key"].as_str(), failing[0]["attempts"].as_i64()), (Some(bad), Some(1)), "{v}");
    assert!(failing[0]["last_error"].as_str().unwrap_or("").contains("INVALID_DATA"), "{v}");
    assert_eq!(v["dirty"]["marked"], 1, "only the bad key stays dirty: {v}");

    // Retried once due; at max_retries (2) it is parked with its error, and runs stop taking it.
    std::thread::sleep(Duration::from_millis(1100));
    let run = json_of(&s.run(&["--json", "sync", "--incremental"]).code(3));
    assert_eq!((run["dirty_taken"].as_u64(), run["dirty_failed"].as_u64()), (Some(1), Some(1)), "{run}");
    let v = status(&s);
    let f = &v["dirty"]["failing"][0];
    assert_eq!(f["attempts"], 2, "{v}");
    let error = f["last_error"].as_str().unwrap_or("");
    assert!(error.starts_with("parked after 2 failed attempts") && error.contains("INVALID_DATA"), "{v}");
    std::thread::sleep(Duration::from_millis(1100));
    let run = json_of(&s.run(&["--json", "sync", "--incremental"]).ok());
    assert_eq!(run["dirty_taken"], 0, "a parked key is not retried run after run: {run}");
    // A full run is not blocked by it either.
    converged(&s);
}

#[test]
fn converge_one_bad_key_never_blocks_the_rest() {
    one_bad_key(None);
}

#[test]
fn converge_one_bad_key_on_postgres() {
    let Some(pg) = PgSchema::create() else { return };
    one_bad_key(Some(&pg.url));
}

// ---- a rerun after a kill ---------------------------------------------------------------------------------

fn resumes(db: Option<&str>) {
    let sb = sandbox(20, None);
    let s = scratch(Some(&sb), db);
    s.run(&["init"]).ok();
    // A run that died: its row says running, nobody holds the lock.
    let store = zmsync::store::open(&db_url(&s, db)).unwrap();
    let dead = store
        .create_run(&zmsync::store::NewRun { kind: "full", module: None, dry_run: false, allow_mass_change: false })
        .unwrap();
    let r = s.run(&["sync", "--all"]).ok();
    let first = r.stderr.lines().next().unwrap_or_default();
    assert!(first.contains(&format!("finishing the work of run {dead}")), "first line: {first:?}\n{}", r.stderr);
    let head = r.stdout.lines().next().unwrap_or_default();
    assert!(head.contains(&format!("finishing the work of run {dead} (interrupted)")), "{}", r.stdout);
    let row = store.run(dead).unwrap().unwrap();
    assert_eq!(row.status, "interrupted");
    assert!(row.finished_at.is_some() && row.error.as_deref().unwrap_or("").contains("run"), "{row:?}");
    let status = s.run(&["db", "status"]).ok().stdout;
    assert!(status.contains(&format!("interrupted:    run {dead} (full")), "{status}");
    let v = json_of(&s.run(&["--json", "db", "status"]).ok());
    assert_eq!(v["interrupted_runs"][0]["id"], dead, "{v}");
    // The next run has nothing to resume.
    let r = s.run(&["sync", "--all"]).ok();
    assert!(!r.stdout.contains("finishing the work"), "{}", r.stdout);
    assert!(store.running_runs().unwrap().is_empty());
}

#[test]
fn converge_a_rerun_marks_the_killed_run_interrupted_and_says_it_resumes() {
    resumes(None);
}

#[test]
fn converge_a_rerun_resumes_on_postgres() {
    let Some(pg) = PgSchema::create() else { return };
    resumes(Some(&pg.url));
}

// ---- incremental equals full ------------------------------------------------------------------------------

/// Children killed however the test ends.
#[derive(Default)]
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `zmsync serve` on an ephemeral port; returns its address.
fn serve(s: &Scratch, kids: &mut Children) -> String {
    let log = s.path().join("serve.log");
    let mut child = s
        .cmd(&["serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start zmsync serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    kids.0.push(child);
    let addr = line.trim().to_string();
    assert!(addr.starts_with("127.0.0.1:"), "serve: {line:?}; {}", std::fs::read_to_string(&log).unwrap_or_default());
    addr
}

/// What the store holds that a full snapshot and run decide: every record's fingerprint, and the links.
fn store_dump(db_url: &str) -> BTreeMap<String, String> {
    let store = zmsync::store::open(db_url).unwrap();
    let mut out = BTreeMap::new();
    for kind in Kind::ALL {
        for r in store.records(kind).unwrap() {
            out.insert(format!("record {} {}", kind.name(), r.key), r.fingerprint);
        }
    }
    for e in Entity::ALL {
        for l in store.links(e).unwrap() {
            out.insert(format!("link {} {}", e.name(), l.zoho_id), l.moodle_id);
        }
    }
    out
}

/// One change a person makes, picked by `rng` from what exists now. Returns a description, or `None` when
/// there was nothing to change of the kind picked.
fn change(sb: &Sandbox, rng: &mut SmallRng, n: usize) -> Option<String> {
    let z = sb.zoho();
    let m = sb.moodle();
    let pick = |rng: &mut SmallRng, v: &[Value]| -> Option<Value> {
        (!v.is_empty()).then(|| v[rng.gen_range(0..v.len())].clone())
    };
    let id = |r: &Value| text(&r["id"]);
    let active: Vec<Value> = z.records("BTEC_Students").into_iter().filter(|r| r["Status"] == "Active").collect();
    match rng.gen_range(0..13) {
        0 => {
            let r = pick(rng, &active)?;
            z.update_record("BTEC_Students", &id(&r), json!({"Last_Name": format!("Changed{n}")})).ok()?;
            Some(format!("zoho: renamed student {}", id(&r)))
        }
        1 => {
            let r = pick(rng, &active)?;
            let email = format!("moved.{n}.{}@student.example.edu", id(&r));
            z.update_record("BTEC_Students", &id(&r), json!({"Academic_Email": email})).ok()?;
            Some(format!("zoho: new email for student {}", id(&r)))
        }
        2 => {
            let num = format!("GEN-{n:04}");
            let new = z
                .insert_record(
                    "BTEC_Students",
                    json!({"Name": num, "First_Name": "Gen", "Last_Name": format!("Erated {n}"),
                           "Academic_Email": format!("gen.{n}@student.example.edu"), "Student_ID_Number": num,
                           "Status": "Active"}),
                )
                .ok()?;
            Some(format!("zoho: new student {new}"))
        }
        3 => {
            let r = pick(rng, &active)?;
            z.delete_record("BTEC_Students", &id(&r)).ok()?;
            Some(format!("zoho: deleted student {}", id(&r)))
        }
        4 => {
            let r = pick(rng, &active)?;
            z.update_record("BTEC_Students", &id(&r), json!({"Status": "Withdrawn"})).ok()?;
            Some(format!("zoho: withdrew student {}", id(&r)))
        }
        5 => {
            let e = pick(rng, &z.records("BTEC_Enrollments"))?;
            let to = if e["Status"] == "Active" { "Withdrawn" } else { "Active" };
            z.update_record("BTEC_Enrollments", &id(&e), json!({"Status": to})).ok()?;
            Some(format!("zoho: enrolment {} now {to}", id(&e)))
        }
        6 => {
            let e = pick(rng, &z.records("BTEC_Enrollments"))?;
            z.delete_record("BTEC_Enrollments", &id(&e)).ok()?;
            Some(format!("zoho: deleted enrolment {}", id(&e)))
        }
        7 => {
            let p = pick(rng, &z.records("BTEC_Payments"))?;
            if rng.gen_bool(0.5) {
                z.delete_record("BTEC_Payments", &id(&p)).ok()?;
                Some(format!("zoho: deleted payment {}", id(&p)))
            } else {
                z.update_record("BTEC_Payments", &id(&p), json!({"Amount": 100 + n as i64})).ok()?;
                Some(format!("zoho: payment {} changed", id(&p)))
            }
        }
        8 => {
            let c = pick(rng, &z.records("BTEC_Classes"))?;
            z.update_record("BTEC_Classes", &id(&c), json!({"Class_Name": format!("Renamed class {n}")})).ok()?;
            Some(format!("zoho: renamed class {}", id(&c)))
        }
        9 => {
            let students: Vec<(i64, i64)> = m
                .enrolments()
                .into_iter()
                .filter(|(e, roles)| roles.contains(&5) && e.status == 0)
                .map(|(e, _)| (e.courseid, e.userid))
                .collect();
            let (c, u) = *students.get(rng.gen_range(0..students.len().max(1)))?;
            m.unenrol(c, u).then(|| format!("moodle: unenrolled {c}:{u}"))
        }
        10 => {
            let all: Vec<(i64, i64, i64)> = m
                .enrolments()
                .into_iter()
                .filter(|(_, r)| r.contains(&5))
                .map(|(e, _)| (e.courseid, e.userid, e.status))
                .collect();
            let (c, u, st) = *all.get(rng.gen_range(0..all.len().max(1)))?;
            m.set_enrolment_status(c, u, st == 0).then(|| format!("moodle: enrolment {c}:{u} suspended={}", st == 0))
        }
        11 => {
            let all: Vec<(i64, i64)> = m
                .enrolments()
                .into_iter()
                .filter(|(_, r)| r.contains(&5))
                .map(|(e, _)| (e.courseid, e.userid))
                .collect();
            let (c, u) = *all.get(rng.gen_range(0..all.len().max(1)))?;
            let g = f64::from(rng.gen_range(0..=100));
            m.set_grade(c, u, Some(g)).then(|| format!("moodle: graded {c}:{u} {g}"))
        }
        _ => {
            let enrolled: HashSet<i64> =
                m.enrolments().into_iter().filter(|(_, r)| r.contains(&5)).map(|(e, _)| e.userid).collect();
            let users: Vec<i64> = m
                .users()
                .into_iter()
                .filter(|u| !u.deleted && enrolled.contains(&u.id) && !u.idnumber.is_empty())
                .map(|u| u.id)
                .collect();
            let u = *users.get(rng.gen_range(0..users.len().max(1)))?;
            m.delete_user(u).then(|| format!("moodle: deleted user {u}"))
        }
    }
}

/// Waits until both fakes delivered every webhook they queued and the receiver took each (202).
fn wait_delivered(sb: &Sandbox, moodle_deliveries: usize) {
    assert!(sb.zoho().wait_for_deliveries(Duration::from_secs(30)), "Zoho webhooks delivered");
    let t = Instant::now();
    while sb.moodle().webhook_deliveries().len() < moodle_deliveries {
        assert!(t.elapsed() < Duration::from_secs(30), "Moodle webhooks delivered");
        std::thread::sleep(Duration::from_millis(20));
    }
    for d in sb.moodle().webhook_deliveries() {
        assert_eq!(d.status, Some(202), "the receiver took the Moodle event {}", d.body);
    }
    assert_eq!(sb.zoho().stats().delivery_failures, 0, "the receiver took every Zoho event");
}

fn incremental_equals_full(seed: u64, steps: usize, db: Option<&str>) {
    let mut kids = Children::default();
    // The receiver first: the fakes post to it from their start.
    let s = scratch(None, db);
    s.run(&["init"]).ok();
    let addr = serve(&s, &mut kids);
    let sb = sandbox(24, Some(format!("http://{addr}")));
    let s = with_sandbox(s, &sb);
    let url = db_url(&s, db);
    full(&s);
    full(&s);
    converged(&s);
    // Our own writes fire nothing; an incremental run now has nothing to do.
    let run = json_of(&s.run(&["--json", "sync", "--incremental"]).ok());
    assert_eq!((run["dirty_taken"].as_u64(), run["planned_ops"].as_u64()), (Some(0), Some(0)), "{run}");

    let mut rng = SmallRng::seed_from_u64(seed);
    // Only people's changes post events (the fake's own web-service writes do not): count them.
    let (delivered, seen) = (sb.moodle().webhook_deliveries().len(), sb.moodle().events().len());
    let mut done = Vec::new();
    for n in 0..steps * 3 {
        if done.len() >= steps {
            break;
        }
        if let Some(what) = change(&sb, &mut rng, n) {
            done.push(what);
        }
    }
    wait_delivered(&sb, delivered + sb.moodle().events().len() - seen);
    let what = done.join("\n  ");

    let run = s.run(&["--json", "sync", "--incremental", "--allow-mass-change"]);
    assert!(run.code == 0 || run.code == 3, "seed {seed}: incremental exit {}\n  {what}\n{}", run.code, run.stderr);
    let inc = json_of(&run);
    let after_inc = store_dump(&url);
    let v = json_of(&s.run(&["--json", "sync", "--all", "--dry-run", "--allow-mass-change"]).ok());
    let plan_file = s.path().join("left.json");
    if v["planned_ops"] != 0 {
        s.run(&["plan", "--allow-mass-change", "--cached", "--out", plan_file.to_str().unwrap()]);
    }
    assert_eq!(
        v["planned_ops"],
        0,
        "seed {seed}: a full run after the incremental one still has work, so the incremental run was not the \
         full one.\nchanges:\n  {what}\nincremental: {inc}\nfull: {v}\nplan: {}",
        std::fs::read_to_string(&plan_file).unwrap_or_default()
    );
    let after_full = store_dump(&url);
    let diff: Vec<String> = after_full
        .iter()
        .filter(|(k, v)| after_inc.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: incremental {:?}, full {v:?}", after_inc.get(k)))
        .chain(
            after_inc.keys().filter(|k| !after_full.contains_key(*k)).map(|k| format!("{k}: only after incremental")),
        )
        .collect();
    assert!(
        diff.is_empty(),
        "seed {seed}: the store differs from a full snapshot:\n  {}\nchanges:\n  {what}",
        diff.join("\n  ")
    );
    assert_truth(&sb, &url);
}

/// The seeds CI runs (each a different mix of changes on both sides).
const SEEDS: [u64; 4] = [1, 2, 3, 4];

#[test]
fn converge_incremental_equals_full_seeded() {
    for seed in SEEDS {
        incremental_equals_full(seed, 8, None);
    }
}

#[test]
fn converge_incremental_equals_full_on_postgres() {
    let Some(pg) = PgSchema::create() else { return };
    incremental_equals_full(5, 8, Some(&pg.url));
}

/// More seeds, longer sequences: `cargo nextest run --run-ignored only -E 'test(/incremental_equals_full_many/)'`
/// (seeds 100–139; `ZMSYNC_CONVERGE_SEEDS=FROM-TO` for others, TO excluded).
#[test]
#[ignore]
fn converge_incremental_equals_full_many_seeds() {
    let range = std::env::var("ZMSYNC_CONVERGE_SEEDS").ok();
    let (from, to) = range
        .as_deref()
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .unwrap_or((100u64, 140u64));
    for seed in from..to {
        incremental_equals_full(seed, 16, None);
    }
}
