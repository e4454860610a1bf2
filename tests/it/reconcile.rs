//! Reconcile against real stores (both dialects) and through the binary: baseline, drift, stale ops, the
//! guards' refusals and the reports.

use serde_json::{json, Value};
use zmsync::mapping::map_record;
use zmsync::model::{Entity, Kind, Record};
use zmsync::reconcile::{self, Action, Options, Plan};
use zmsync::settings::Settings;
use zmsync::store::{self, Store};

use crate::support::{PgSchema, Scratch};

macro_rules! both_stores {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let store = store::open(&format!("sqlite://{}", dir.path().join("s.db").display())).unwrap();
                ($body)(store.as_ref());
            }

            #[test]
            fn postgres() {
                let Some(schema) = PgSchema::create() else { return };
                let store = store::open(&schema.url).unwrap();
                ($body)(store.as_ref());
            }
        }
    };
}

fn rec(kind: Kind, raw: Value) -> Record {
    map_record(kind, &raw, &Settings::defaults()).expect("maps")
}

/// `n` students in agreement with their Moodle users, one class, each student enrolled and paying once.
pub fn college(n: usize) -> Vec<(Kind, Vec<Record>)> {
    let mut students = Vec::new();
    let mut users = Vec::new();
    let mut enrollments = Vec::new();
    let mut enrolments = Vec::new();
    let mut payments = Vec::new();
    let mut rows = Vec::new();
    for i in 0..n {
        let (zid, uid) = (format!("58475960000{:05}", i), 100 + i as i64);
        let email = format!("stu{i}@college.edu");
        students.push(rec(
            Kind::Student,
            json!({"id": zid, "First_Name": "Zoë", "Last_Name": format!("O'Brien {i}"), "Academic_Email": email,
                   "Student_ID_Number": format!("STU-{i}"), "Phone": "+44 1", "Status": "Active",
                   "Student_Moodle_ID": uid.to_string()}),
        ));
        users.push(rec(
            Kind::MoodleUser,
            json!({"id": uid, "username": format!("stu-{i}"), "firstname": "Zoë", "lastname": format!("O'Brien {i}"),
                   "email": email, "idnumber": format!("STU-{i}"), "auth": "manual", "suspended": 0, "phone1": "+44 1"}),
        ));
        enrollments.push(rec(
            Kind::Enrollment,
            json!({"id": format!("700{i}"), "Student": {"id": zid}, "Class": {"id": "9001"}, "Status": "Active",
                   "Start_Date": "2026-01-05"}),
        ));
        enrolments.push(rec(
            Kind::MoodleEnrolment,
            json!({"courseid": 7, "userid": uid, "roleids": [5], "status": 0, "timestart": 1767571200, "timeend": 0}),
        ));
        payments.push(rec(
            Kind::Payment,
            json!({"id": format!("800{i}"), "Student": {"id": zid}, "Amount": "2000", "Method": "=SUM(A1)", "Status": "Paid"}),
        ));
        rows.push(rec(
            Kind::DashboardPayment,
            json!({"zoho_id": format!("800{i}"), "userid": uid, "student_zoho_id": zid, "amount": "2000",
                   "method": "=SUM(A1)", "status": "Paid"}),
        ));
    }
    let class = rec(
        Kind::Class,
        json!({"id": "9001", "Class_Name": "Networking, \"Level 5\"", "Class_Short_Name": "NET5", "Status": "Active",
               "Moodle_Course_ID": "7"}),
    );
    let course = rec(
        Kind::MoodleCourse,
        json!({"id": 7, "fullname": "Networking, \"Level 5\"", "shortname": "NET5", "idnumber": "9001", "visible": 1}),
    );
    vec![
        (Kind::Student, students),
        (Kind::MoodleUser, users),
        (Kind::Class, vec![class]),
        (Kind::MoodleCourse, vec![course]),
        (Kind::Enrollment, enrollments),
        (Kind::MoodleEnrolment, enrolments),
        (Kind::Payment, payments),
        (Kind::DashboardPayment, rows),
    ]
}

fn load(s: &dyn Store, data: &[(Kind, Vec<Record>)]) {
    for (k, v) in data {
        s.replace_records(*k, v).unwrap();
    }
}

fn plan(s: &dyn Store) -> Plan {
    reconcile::reconcile(s, &Settings::defaults(), &Options::default()).unwrap()
}

// What a run records: only the links and bases that are new or changed.
both_stores!(reconcile_store_baseline_changes_writes_only_what_changed, |s: &dyn Store| {
    let data = college(30);
    load(s, &data);
    let all = vec![Entity::Student, Entity::Enrollment];
    let first = reconcile::baseline_of(s, &Settings::defaults(), all.clone(), Some(1)).unwrap();
    assert_eq!((first.links, first.states), (60, 60), "nothing stored yet: every link and base of both");
    let again = reconcile::baseline_of(s, &Settings::defaults(), all.clone(), Some(2)).unwrap();
    assert_eq!((again.links, again.states), (0, 0), "nothing changed: nothing written");
    // One enrolment is suspended in Moodle: it no longer agrees.
    let mut enrolments = data[5].1.clone();
    enrolments[4] = rec(
        Kind::MoodleEnrolment,
        json!({"courseid": 7, "userid": 104, "roleids": [5], "status": 1, "timestart": 1767571200, "timeend": 0}),
    );
    s.replace_records(Kind::MoodleEnrolment, &enrolments).unwrap();
    let changed = reconcile::baseline_of(s, &Settings::defaults(), all.clone(), Some(3)).unwrap();
    assert_eq!((changed.links, changed.states), (0, 0), "a pair that no longer agrees keeps its old base");
    assert_eq!(s.sync_states(Entity::Enrollment).unwrap().len(), 30, "and the others keep theirs");
});

both_stores!(reconcile_store_baseline_then_drift, |s: &dyn Store| {
    let data = college(30);
    load(s, &data);
    // Before any base: everything is paired by the Moodle ids Zoho holds and agrees: nothing to plan.
    let p = plan(s);
    assert!(p.ops.is_empty(), "{:#?}", p.ops);
    let b = reconcile::baseline(s, &Settings::defaults(), Some(1)).unwrap();
    assert_eq!(b.states, 30 + 1 + 30 + 30);
    assert_eq!(s.links(Entity::Student).unwrap().len(), 30);
    assert_eq!(s.sync_states(Entity::Enrollment).unwrap()[0].key, "5847596000000000|9001");
    assert!(plan(s).ops.is_empty());

    // Drift: one student leaves Zoho, one enrolment is suspended in Moodle.
    let mut students = data[0].1.clone();
    students.remove(3);
    s.replace_records(Kind::Student, &students).unwrap();
    let mut enrolments = data[5].1.clone();
    enrolments[4] = rec(
        Kind::MoodleEnrolment,
        json!({"courseid": 7, "userid": 104, "roleids": [5], "status": 1, "timestart": 1767571200, "timeend": 0}),
    );
    s.replace_records(Kind::MoodleEnrolment, &enrolments).unwrap();
    let p = plan(s);
    let got: Vec<(Entity, Action, Option<&str>, Option<&str>)> =
        p.ops.iter().map(|o| (o.entity, o.action, o.zoho_id.as_deref(), o.moodle_id.as_deref())).collect();
    assert_eq!(
        got,
        vec![
            (Entity::Student, Action::Suspend, Some("5847596000000003"), Some("103")),
            (Entity::Enrollment, Action::Update, Some("7004"), Some("7:104")),
        ]
    );
    assert!(p.stale_ops(s).unwrap().is_empty());
    // Moodle changes again before apply: the enrolment op is stale, the suspension is not.
    enrolments[4] = rec(
        Kind::MoodleEnrolment,
        json!({"courseid": 7, "userid": 104, "roleids": [5], "status": 1, "timestart": 1767657600, "timeend": 0}),
    );
    s.replace_records(Kind::MoodleEnrolment, &enrolments).unwrap();
    assert_eq!(p.stale_ops(s).unwrap(), vec![p.ops[1].seq]);
});

// ---- through the binary --------------------------------------------------------------------------------

fn scratch_with(data: &[(Kind, Vec<Record>)], baseline: bool) -> Scratch {
    let sc = Scratch::new()
        .env("MOODLE_TOKEN", "moodle-token-SECRET-1")
        .env("ZOHO_CLIENT_SECRET", "zoho-secret-SECRET-2")
        .env("ZOHO_REFRESH_TOKEN", "zoho-refresh-SECRET-3");
    let s = store::open(&sc.db_url()).unwrap();
    load(s.as_ref(), data);
    if baseline {
        reconcile::baseline(s.as_ref(), &Settings::defaults(), None).unwrap();
    }
    sc
}

fn drop_students(data: &mut [(Kind, Vec<Record>)], n: usize) {
    let v = &mut data[0].1;
    v.truncate(v.len() - n);
}

#[test]
fn reconcile_cli_mass_change_is_refused_then_allowed() {
    let mut data = college(40);
    let sc = scratch_with(&data, true);
    drop_students(&mut data, 26);
    let s = store::open(&sc.db_url()).unwrap();
    s.replace_records(Kind::Student, &data[0].1).unwrap();
    let url = sc.db_url();
    let r = sc.run(&["--database-url", &url, "plan", "--cached", "--out", "plan.json"]).code(4);
    assert!(
        r.stderr.contains("26") && r.stderr.contains("25") && r.stderr.contains("--allow-mass-change"),
        "{}",
        r.stderr
    );
    assert!(!sc.path().join("plan.json").exists(), "a refused plan must not be written");

    let r = sc.run(&["--database-url", &url, "plan", "--cached", "--out", "plan.json", "--allow-mass-change"]).ok();
    assert!(r.stdout.contains("allowed"), "{}", r.stdout);
    let text = std::fs::read_to_string(sc.path().join("plan.json")).unwrap();
    let p = Plan::from_json(&text).unwrap();
    assert_eq!(p.ops.iter().filter(|o| o.action == Action::Suspend).count(), 26);
    assert_eq!(p.guards.len(), 1);
    let r = sc.run(&["--database-url", &url, "plan", "show", "plan.json"]).ok();
    assert!(r.stdout.contains("suspend") && r.stdout.contains("student"), "{}", r.stdout);
    // Nothing was written to the store by planning.
    assert_eq!(s.record_count(Kind::MoodleUser).unwrap(), 40);
    assert!(s.links(Entity::Student).unwrap().len() == 40);
}

#[test]
fn reconcile_cli_empty_side_is_refused_even_when_allowed() {
    let mut data = college(5);
    let sc = scratch_with(&data, true);
    drop_students(&mut data, 5);
    store::open(&sc.db_url()).unwrap().replace_records(Kind::Student, &[]).unwrap();
    let url = sc.db_url();
    let r = sc.run(&["--database-url", &url, "plan", "--cached", "--out", "p.json", "--allow-mass-change"]).code(4);
    assert!(r.stderr.contains("holds no student records"), "{}", r.stderr);
    assert!(!sc.path().join("p.json").exists());
    sc.run(&["--database-url", &url, "diff", "--cached", "--out", "d.csv"]).code(4);
    assert!(!sc.path().join("d.csv").exists());
}

#[test]
fn reconcile_cli_diff_csv_is_safe_for_spreadsheets() {
    let mut data = college(3);
    let sc = scratch_with(&data, true);
    // Zoho renames a class with a comma, quotes and a newline; a payment amount turns into a formula.
    data[2].1[0] = rec(
        Kind::Class,
        json!({"id": "9001", "Class_Name": "Net, \"L5\"\nnew", "Class_Short_Name": "NET5", "Status": "Active",
               "Moodle_Course_ID": "7"}),
    );
    data[6].1[1] = rec(
        Kind::Payment,
        json!({"id": "8001", "Student": {"id": "5847596000000001"}, "Amount": "-5", "Method": "+cmd", "Status": "@Paid"}),
    );
    let s = store::open(&sc.db_url()).unwrap();
    s.replace_records(Kind::Class, &data[2].1).unwrap();
    s.replace_records(Kind::Payment, &data[6].1).unwrap();
    let url = sc.db_url();
    let r = sc.run(&["--database-url", &url, "diff", "--cached", "--out", "d.csv"]).ok();
    assert!(r.stderr.contains("entity") && r.stderr.contains("payment"), "summary on stderr: {}", r.stderr);
    let bytes = std::fs::read(sc.path().join("d.csv")).unwrap();
    assert!(bytes.starts_with("\u{feff}".as_bytes()), "a BOM for Excel");
    let mut rd = csv::Reader::from_reader(&bytes[3..]);
    assert_eq!(
        rd.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "run_id",
            "entity",
            "key",
            "zoho_id",
            "moodle_id",
            "field",
            "zoho_value",
            "moodle_value",
            "base_value",
            "action",
            "reason"
        ]
    );
    let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
    let class = rows.iter().find(|r| &r[1] == "class").expect("class row");
    assert_eq!(
        (&class[5], &class[6], &class[7], &class[9]),
        ("name", "Net, \"L5\"\nnew", "Networking, \"Level 5\"", "update")
    );
    let amount = rows.iter().find(|r| &r[1] == "payment" && &r[5] == "amount").expect("amount row");
    assert_eq!((&amount[6], &amount[7], &amount[8]), ("'-5.00", "2000.00", "2000.00"));
    let method = rows.iter().find(|r| &r[1] == "payment" && &r[5] == "method").expect("method row");
    assert_eq!((&method[6], &method[7], &method[8]), ("'+cmd", "'=SUM(A1)", "'=SUM(A1)"));
    let status = rows.iter().find(|r| &r[1] == "payment" && &r[5] == "status").unwrap();
    assert_eq!(&status[6], "'@Paid");

    // stdout: no BOM; JSON parses; nothing secret anywhere.
    let csv_out = sc.run(&["--database-url", &url, "diff", "--cached", "--format", "csv"]).ok();
    assert!(csv_out.stdout.starts_with("run_id,"));
    let json_out = sc.run(&["--database-url", &url, "diff", "--cached", "--format", "json"]).ok();
    let doc: Value = serde_json::from_str(&json_out.stdout).unwrap();
    assert_eq!(doc["rows"].as_array().unwrap().len(), rows.len());
    let table = sc.run(&["--database-url", &url, "diff", "--cached", "--format", "table"]).ok();
    assert!(table.stdout.contains("[-working, \"Level 5\"-]") || table.stdout.contains("{+"), "{}", table.stdout);
    let plan = sc.run(&["--database-url", &url, "plan", "--cached", "--out", "p.json"]).ok();
    let everything = [
        String::from_utf8_lossy(&bytes).into_owned(),
        csv_out.stdout,
        csv_out.stderr,
        json_out.stdout,
        table.stdout,
        plan.stdout,
        std::fs::read_to_string(sc.path().join("p.json")).unwrap(),
    ]
    .join("\n");
    for secret in ["SECRET-1", "SECRET-2", "SECRET-3"] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
}

#[test]
fn reconcile_cli_takes_a_fresh_snapshot_unless_cached() {
    let sc = scratch_with(&college(2), true);
    let url = sc.db_url();
    // No Zoho or Moodle configured: the snapshot cannot run, and the error says how to use the store as is.
    let r = sc.run(&["--database-url", &url, "plan"]).code(2);
    assert!(r.stderr.contains("--cached"), "{}", r.stderr);
    sc.run(&["--database-url", &url, "plan", "--cached"]).ok();
}
