//! A stock Moodle 5.0 (issue #18; docs/moodle-setup.md), which is what the fake answers as by default: phones the token
//! cannot read, enrolments saved before "Message was not sent.", grades recorded in Zoho on the dashboard, the
//! doctor's checks, and events that come back for the sync's own writes.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;
use zmsync::sandbox::generator::{GenOptions, State};
use zmsync::sandbox::{Sandbox, SandboxOptions};
use zmsync::store::events::NewEvent;

use crate::support::{Run, Scratch};

fn stock(students: usize, state: State) -> Sandbox {
    Sandbox::start(SandboxOptions {
        generate: GenOptions { students, state, seed: 11, ..GenOptions::default() },
        ..SandboxOptions::default()
    })
    .expect("sandbox starts")
}

fn scratch(sb: &Sandbox) -> Scratch {
    let mut s = Scratch::new();
    for (k, v) in sb.env() {
        s = s.env(k, &v);
    }
    let url = s.db_url();
    s.env("DATABASE_URL", &url)
}

fn json(r: &Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", r.stdout, r.stderr))
}

fn sync(s: &Scratch) -> Value {
    let r = s.run(&["--json", "sync", "--all"]);
    let v = json(&r);
    assert_eq!(r.code, 0, "{v}\n{}", r.stderr);
    assert_eq!((v["rejected"].as_u64(), v["failed"].as_u64()), (Some(0), Some(0)), "{v}");
    v
}

/// A list argument as the fake logged it (PHP decodes `a[0][k]` into a map keyed by index).
fn list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        Value::Object(m) => m.values().collect(),
        _ => Vec::new(),
    }
}

fn moodle_writes(sb: &Sandbox) -> u64 {
    sb.moodle().stats().records_written.values().sum()
}

/// Zoho student id → Moodle user id, from the students' `Student_Moodle_ID`.
fn linked_students(sb: &Sandbox) -> HashMap<String, i64> {
    sb.zoho()
        .records("BTEC_Students")
        .iter()
        .filter_map(|s| {
            let mid = s["Student_Moodle_ID"].as_str()?.parse().ok()?;
            Some((s["id"].as_str()?.to_string(), mid))
        })
        .collect()
}

// ---- 1. a field the token cannot read is unknown --------------------------------------------------------------

#[test]
fn stock_moodle_phones_the_token_cannot_read_are_never_compared_nor_written_empty() {
    let sb = stock(40, State::Synced);
    let s = scratch(&sb);
    let phones_before: HashMap<i64, String> = sb.moodle().users().into_iter().map(|u| (u.id, u.phone1)).collect();
    assert!(phones_before.values().filter(|p| !p.is_empty()).count() > 10, "the college has phones in Moodle");
    // A synced college: nothing to do, although Moodle hides every phone from the token.
    let v = sync(&s);
    assert_eq!(v["planned_ops"], 0, "{v}");
    assert_eq!(sb.moodle().stats().records_written.get("core_user_update_users"), None);
    // Drift on another field of a student is repaired without writing the phone.
    let student = sb.moodle().users().into_iter().find(|u| u.idnumber.starts_with("STU") && !u.phone1.is_empty());
    let student = student.expect("a student with a phone");
    sb.moodle().set_user_email(student.id, "someone.else@example.org");
    let v = sync(&s);
    assert_eq!(v["planned_ops"], 1, "{v}");
    let log = sb.moodle().request_log();
    let update = log.iter().find(|r| r.function == "core_user_update_users").expect("an update");
    assert!(list(&update.params["users"]).iter().all(|u| u.get("phone1").is_none()), "phone sent: {}", update.params);
    let after = sb.moodle().users().into_iter().find(|u| u.id == student.id).unwrap();
    assert_ne!(after.email, "someone.else@example.org");
    let phones_after: HashMap<i64, String> = sb.moodle().users().into_iter().map(|u| (u.id, u.phone1)).collect();
    assert_eq!(phones_before, phones_after, "no phone was touched");
    assert_eq!(sync(&s)["planned_ops"], 0);
}

#[test]
fn stock_moodle_first_sync_then_a_no_change_run_with_phones_hidden() {
    let sb = stock(30, State::Empty);
    let s = scratch(&sb);
    sync(&s);
    // New users got their phones on creation …
    let phones = sb.moodle().users().iter().filter(|u| !u.phone1.is_empty()).count();
    assert!(phones > 10, "{phones}");
    // … and the next run has nothing to do, though it cannot read them back.
    let w = moodle_writes(&sb);
    assert_eq!(sync(&s)["planned_ops"], 0);
    assert_eq!(moodle_writes(&sb), w);
}

// ---- 2. an error Moodle raises after committing is not a rejection -------------------------------------------

#[test]
fn stock_moodle_enrolments_saved_before_message_not_sent_are_applied_with_a_warning() {
    let sb = stock(40, State::Empty);
    let s = scratch(&sb);
    let v = sync(&s);
    let enrolled = sb.moodle().enrolments().len();
    assert!(enrolled > 40, "{enrolled}");
    assert!(sb.moodle().stats().errors.get("Message was not sent.").copied().unwrap_or(0) > 0, "the site did raise it");
    // Never bisected: every enrolment was sent once.
    let mut sent = HashSet::new();
    let mut rows = 0;
    for r in sb.moodle().request_log().iter().filter(|r| r.function == "enrol_manual_enrol_users") {
        for e in list(&r.params["enrolments"]) {
            rows += 1;
            sent.insert((e["courseid"].to_string(), e["userid"].to_string()));
        }
    }
    assert_eq!(rows, sent.len(), "an enrolment was sent more than once (bisected)");
    assert_eq!(sent.len(), enrolled);
    // The report says what happened, as a warning on applied rows.
    let csv = std::fs::read_to_string(v["report"].as_str().unwrap()).unwrap();
    let warned: Vec<&str> = csv.lines().filter(|l| l.contains("Message was not sent")).collect();
    assert!(!warned.is_empty(), "{csv}");
    assert!(warned.iter().all(|l| l.contains(",applied,")), "{warned:?}");
    assert!(v["warnings"].as_u64().unwrap_or(0) > 0 || csv.contains("welcome"), "{v}");
    assert_eq!(sync(&s)["planned_ops"], 0);
}

// ---- 4. grades recorded in Zoho reach the dashboard -----------------------------------------------------------

#[track_caller]
fn assert_grade_rows(sb: &Sandbox) {
    let linked = linked_students(sb);
    let rows: HashMap<String, serde_json::Map<String, Value>> = sb
        .moodle()
        .plugin_rows("grades")
        .into_iter()
        .map(|r| (r["zoho_id"].as_str().unwrap().to_string(), r))
        .collect();
    let mut checked = 0;
    for g in sb.zoho().records("BTEC_Grades") {
        let Some(student) = g["Student"]["id"].as_str() else { continue };
        let Some(uid) = linked.get(student) else { continue };
        let id = g["id"].as_str().unwrap();
        let row = rows.get(id).unwrap_or_else(|| panic!("no dashboard grade row for Zoho grade {id}"));
        assert_eq!(row["userid"], *uid);
        assert_eq!(row["grade"], g["Grade"]);
        assert_eq!(row["student_zoho_id"], student);
        checked += 1;
    }
    assert!(checked > 0, "no Zoho grade of a linked student");
    let zoho: HashSet<String> =
        sb.zoho().records("BTEC_Grades").iter().filter_map(|g| g["id"].as_str().map(String::from)).collect();
    assert!(rows.keys().all(|k| zoho.contains(k)), "a dashboard grade row whose Zoho grade is gone");
}

#[test]
fn stock_moodle_grades_recorded_in_zoho_reach_the_dashboard_with_removals() {
    let sb = stock(40, State::Synced);
    let s = scratch(&sb);
    sync(&s);
    assert_grade_rows(&sb);
    assert_eq!(sync(&s)["planned_ops"], 0);
    // A grade deleted in Zoho leaves the dashboard; a new one recorded in Zoho arrives.
    let grades = sb.zoho().records("BTEC_Grades");
    let gone = grades[0]["id"].as_str().unwrap().to_string();
    sb.zoho().delete_record("BTEC_Grades", &gone).unwrap();
    let changed = grades[1]["id"].as_str().unwrap().to_string();
    let level = if grades[1]["Grade"] == "Pass" { "Merit" } else { "Pass" };
    sb.zoho().update_record("BTEC_Grades", &changed, serde_json::json!({"Grade": level})).unwrap();
    let r = s.run(&["--json", "sync", "--all", "--allow-mass-change"]);
    assert!(r.code == 0, "{}\n{}", r.stdout, r.stderr);
    let rows = sb.moodle().plugin_rows("grades");
    assert!(!rows.iter().any(|r| r["zoho_id"] == gone.as_str()), "the removed grade's row is gone");
    assert_grade_rows(&sb);
}

#[test]
fn stock_moodle_drifted_converges_with_grade_rows() {
    let sb = stock(60, State::Drifted);
    let s = scratch(&sb);
    let r = s.run(&["--json", "sync", "--all", "--allow-mass-change"]);
    assert!(r.code == 0, "{}\n{}", r.stdout, r.stderr);
    let v = sync(&s);
    assert_eq!(v["planned_ops"], 0, "{v}");
    assert_grade_rows(&sb);
}

// ---- 3, 5. doctor ----------------------------------------------------------------------------------------------

fn doctor(sb: &Sandbox) -> (Scratch, Run) {
    let s = scratch(sb);
    s.run(&["init"]).ok();
    let r = s.run(&["doctor"]);
    (s, r)
}

#[test]
fn stock_moodle_doctor_names_unreadable_fields_and_unsent_welcome_messages() {
    let sb = stock(20, State::Synced);
    let (_s, r) = doctor(&sb);
    let out = &r.stdout;
    let identity = out.lines().find(|l| l.contains("moodle.identity")).unwrap_or_else(|| panic!("{out}"));
    assert!(
        identity.starts_with("WARN") && identity.contains("phone1") && identity.contains("showuseridentity"),
        "{identity}"
    );
    let mail = out.lines().find(|l| l.contains("moodle.mail")).unwrap_or_else(|| panic!("{out}"));
    assert!(mail.starts_with("WARN") && mail.contains("welcome"), "{mail}");
    // Fixed on the site: both pass.
    sb.moodle().set_show_identity(&["email", "phone1"]);
    sb.moodle().set_mail_configured(true);
    let (_s, r) = doctor(&sb);
    let out = &r.stdout;
    assert!(out.lines().any(|l| l.starts_with("PASS moodle.identity")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("PASS moodle.mail")), "{out}");
}

#[test]
fn stock_moodle_doctor_clock_probe_makes_no_tokenless_call() {
    let sb = stock(10, State::Empty);
    let (_s, r) = doctor(&sb);
    assert!(r.stdout.lines().any(|l| l.starts_with("PASS clock.moodle")), "{}", r.stdout);
    let stats = sb.moodle().stats();
    assert_eq!(stats.errors.get("invalidtoken"), None, "Moodle would log an invalidtoken exception: {stats:?}");
}

// ---- 6. an event that comes back for the sync's own write -----------------------------------------------------

#[test]
fn stock_moodle_an_echoed_enrolment_event_costs_a_read_of_it_and_its_user_and_changes_nothing() {
    let sb = stock(20, State::Empty);
    let s = scratch(&sb);
    sync(&s);
    // The plugin's observer saw the sync's enrolments; one of them comes back as an event.
    let (e, _) = sb.moodle().enrolments().into_iter().next().expect("an enrolment");
    let store = zmsync::store::open(&s.db_url()).unwrap();
    store
        .insert_events(&[NewEvent {
            event_id: "moodle:echo-1".into(),
            source: "moodle".into(),
            event_type: "\\core\\event\\user_enrolment_created".into(),
            module: None,
            entity_type: "enrollment".into(),
            record_id: format!("{}:{}", e.courseid, e.userid),
            payload: serde_json::json!({}),
        }])
        .unwrap();
    drop(store);
    sb.moodle().reset_stats();
    let zoho_writes: u64 = sb.zoho().stats().records_written.values().sum();
    let r = s.run(&["--json", "sync", "--incremental"]);
    let v = json(&r);
    assert_eq!(r.code, 0, "{v}");
    assert_eq!(v["planned_ops"], 0, "{v}");
    let stats = sb.moodle().stats();
    assert_eq!(stats.records_written.values().sum::<u64>(), 0, "{stats:?}");
    assert_eq!(sb.zoho().stats().records_written.values().sum::<u64>(), zoho_writes);
    // One read of the enrolment, and one of its user (an unenrolment event may be a user deleted in Moodle,
    // which fires no event of its own): nothing else.
    let reads: BTreeMap<&str, u64> = stats
        .requests
        .iter()
        .filter(|(f, _)| f.as_str() != "core_webservice_get_site_info" && !f.ends_with("_get_info"))
        .map(|(f, n)| (f.as_str(), *n))
        .collect();
    let expected = BTreeMap::from([("local_student_dashboard_get_enrolments", 1), ("core_user_get_users_by_field", 1)]);
    assert_eq!(reads, expected, "one read of the enrolment and one of its user: {:?}", stats.requests);
}
