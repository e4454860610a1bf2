//! `zmsync sync` / `apply` end to end: the fakes run in this process (the sandbox), the real binary as a child.
//! End states are compared through the fakes' inspection APIs.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use serde_json::Value;
use zmsync::sandbox::generator::{GenOptions, State};
use zmsync::sandbox::{Sandbox, SandboxOptions};

use crate::support::{PgSchema, Run, Scratch};

fn sandbox(students: usize, state: State, per_record_ms: u64) -> Sandbox {
    Sandbox::start(SandboxOptions {
        generate: GenOptions { students, state, seed: 7, ..GenOptions::default() },
        per_record_ms,
        ..SandboxOptions::default()
    })
    .expect("sandbox starts")
}

fn scratch(sb: &Sandbox, db: Option<&str>) -> Scratch {
    let mut s = Scratch::new();
    for (k, v) in sb.env() {
        s = s.env(k, &v);
    }
    if let Some(url) = db {
        s = s.env("DATABASE_URL", url);
    }
    s
}

fn json(r: &Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{}\n{}", r.stdout, r.stderr))
}

fn moodle_writes(sb: &Sandbox) -> u64 {
    sb.moodle().stats().records_written.values().sum()
}

fn zoho_writes(sb: &Sandbox) -> u64 {
    sb.zoho().stats().records_written.values().sum()
}

/// No duplicate user, course, enrolment or Zoho write-back; every Student_Moodle_ID points at the right user.
#[track_caller]
fn assert_consistent(sb: &Sandbox) {
    let users = sb.moodle().users();
    let mut by_idnumber: HashMap<&str, i64> = HashMap::new();
    for u in &users {
        if u.idnumber.is_empty() {
            continue;
        }
        assert!(by_idnumber.insert(u.idnumber.as_str(), u.id).is_none(), "duplicate Moodle user {}", u.idnumber);
    }
    let courses = sb.moodle().courses();
    let mut seen = HashSet::new();
    for c in &courses {
        if !c.idnumber.is_empty() {
            assert!(seen.insert(c.idnumber.clone()), "duplicate course {}", c.idnumber);
        }
    }
    let mut pairs = HashSet::new();
    for (e, _) in sb.moodle().enrolments() {
        assert!(pairs.insert((e.courseid, e.userid)), "duplicate enrolment {}:{}", e.courseid, e.userid);
    }
    for s in sb.zoho().records("BTEC_Students") {
        let (Some(num), Some(mid)) = (s["Student_ID_Number"].as_str(), s["Student_Moodle_ID"].as_str()) else {
            continue;
        };
        if mid.is_empty() {
            continue;
        }
        assert_eq!(by_idnumber.get(num).map(|i| i.to_string()).as_deref(), Some(mid), "Student_Moodle_ID of {num}");
    }
    for module in ["BTEC_Enrollments", "BTEC_Grades"] {
        let mut names = HashSet::new();
        for r in sb.zoho().records(module) {
            if let Some(n) = r["Name"].as_str() {
                assert!(names.insert(n.to_string()), "duplicate {module} record {n}");
            }
        }
    }
}

fn converge(s: &Scratch) -> Value {
    let v = json(&s.run(&["--json", "sync", "--all"]).ok());
    assert_eq!(v["planned_ops"], 0, "a run after convergence plans nothing: {v}");
    v
}

fn full_cycle(db: Option<&str>) {
    let sb = sandbox(60, State::Empty, 0);
    let s = scratch(&sb, db);
    let v = json(&s.run(&["--json", "sync", "--all"]).ok());
    assert!(v["applied"].as_u64().unwrap() > 100, "{v}");
    let report = v["report"].as_str().unwrap().to_string();
    assert!(std::fs::read_to_string(&report).unwrap().contains(",applied,"));
    assert_consistent(&sb);
    assert!(sb.zoho().stats().writes.iter().all(|w| w.trigger.as_deref() == Some(&[][..])), "trigger: [] on writes");

    // No change: zero writes on both fakes.
    let (m0, z0) = (moodle_writes(&sb), zoho_writes(&sb));
    let v = converge(&s);
    assert_eq!((moodle_writes(&sb), zoho_writes(&sb)), (m0, z0), "a no-change run writes nothing: {v}");

    // Drift converges back to synced.
    let drift = sb.drift(12);
    assert!(!drift.is_empty());
    let r = s.run(&["--json", "sync", "--all", "--allow-mass-change"]);
    assert!(r.code == 0 || r.code == 3, "{}\n{}", r.stdout, r.stderr);
    converge(&s);
    assert_consistent(&sb);
}

#[test]
fn sync_first_full_then_no_change_then_drift_converges() {
    full_cycle(None);
}

#[test]
fn sync_first_full_on_postgres() {
    let Some(pg) = PgSchema::create() else { return };
    full_cycle(Some(&pg.url));
}

#[test]
fn sync_dry_run_module_and_stale_saved_plan() {
    let sb = sandbox(40, State::Empty, 0);
    let s = scratch(&sb, None);
    let v = json(&s.run(&["--json", "sync", "--all", "--dry-run"]).ok());
    assert!(v["planned_ops"].as_u64().unwrap() > 50);
    assert_eq!(moodle_writes(&sb) + zoho_writes(&sb), 0, "--dry-run writes nothing");

    // --module touches only its module.
    json(&s.run(&["--json", "sync", "--module", "teacher"]).ok());
    assert!(sb.moodle().courses().iter().all(|c| c.idnumber.is_empty()), "a teacher run creates no course");
    assert_eq!(sb.moodle().users().iter().filter(|u| u.idnumber.starts_with("STU")).count(), 0);
    assert!(sb.moodle().users().len() >= 10);

    // A saved plan applied after a change in between skips exactly the stale ops.
    json(&s.run(&["--json", "sync", "--all"]).ok());
    let _ = sb.drift(6);
    let plan = s.path().join("plan.json");
    let r =
        s.run(&["--json", "sync", "--all", "--dry-run", "--allow-mass-change", "--plan-out", plan.to_str().unwrap()]);
    let planned = json(&r.ok())["planned_ops"].as_u64().unwrap();
    assert!(planned > 0);
    // Change one student that the plan touches.
    let text = std::fs::read_to_string(&plan).unwrap();
    let p: Value = serde_json::from_str(&text).unwrap();
    let op = p["ops"].as_array().unwrap().iter().find(|o| o["entity"] == "student" && o["zoho_id"].is_string());
    let mut expect_stale = 0;
    if let Some(op) = op {
        let id = op["zoho_id"].as_str().unwrap();
        sb.zoho().update_record("BTEC_Students", id, serde_json::json!({"Phone": "+44 1 2345 6789"})).unwrap();
        expect_stale = p["ops"].as_array().unwrap().iter().filter(|o| o["zoho_id"] == op["zoho_id"]).count();
    }
    let v =
        json(&Run::from(s.cmd(&["--json", "apply", plan.to_str().unwrap(), "--allow-mass-change"]).output().unwrap()));
    assert_eq!(v["stale"].as_array().unwrap().len(), expect_stale, "{v}");
}

/// A run plans one entity group at a time; its plan (`--plan-out`) is the one `zmsync plan` makes whole: the
/// same ops in the same order and seqs, issues, conflicts, counts and guards — on a first sync (creates whose
/// dependants wait for them) and after drift.
#[test]
fn sync_plan_made_group_by_group_is_the_whole_plan() {
    let sb = sandbox(120, State::Empty, 0);
    let s = scratch(&sb, None);
    let same = |what: &str| {
        let (whole, grouped) = (s.path().join("whole.json"), s.path().join("grouped.json"));
        s.run(&["--json", "plan", "--allow-mass-change", "--out", whole.to_str().unwrap()]).ok();
        let args = ["--json", "sync", "--all", "--dry-run", "--allow-mass-change", "--plan-out"];
        s.run(&[&args[..], &[grouped.to_str().unwrap()]].concat()).ok();
        let read =
            |p: &std::path::Path| -> Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
        let (a, b) = (read(&whole), read(&grouped));
        assert!(a["ops"].as_array().unwrap().len() > 10, "{what}: a plan with ops");
        for part in ["entities", "ops", "issues", "conflicts", "counts", "guards"] {
            assert_eq!(a[part], b[part], "{what}: {part} differ");
        }
    };
    same("first sync");
    json(&s.run(&["--json", "sync", "--all"]).ok());
    let _ = sb.drift(12);
    same("after drift");
}

#[test]
fn sync_second_concurrent_run_exits_5_naming_the_holder() {
    let sb = sandbox(60, State::Empty, 20);
    let s = scratch(&sb, None);
    let mut first = s.cmd(&["sync", "--all"]).spawn().unwrap();
    let t = Instant::now();
    // Wait until the first run is writing (the lock is taken before any network call).
    while moodle_writes(&sb) == 0 && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = s.run(&["sync", "--all"]).code(5);
    assert!(r.stderr.contains("run 1"), "names the holder: {}", r.stderr);
    assert!(first.wait().unwrap().success());
}

#[test]
fn sync_with_no_writable_temp_dir_says_so_and_sends_nothing() {
    let sb = sandbox(20, State::Empty, 0);
    let s = scratch(&sb, None).env("TMPDIR", "/nonexistent/zmsync-tmp");
    let r = s.run(&["sync", "--all"]).code(1);
    assert!(r.stderr.contains("/nonexistent/zmsync-tmp") && r.stderr.contains("TMPDIR"), "{}", r.stderr);
    assert_eq!((moodle_writes(&sb), zoho_writes(&sb)), (0, 0), "nothing is applied without the plan's ops file");
    // With a temporary directory to write in, the same store converges.
    let s = scratch(&sb, Some(&s.db_url()));
    s.run(&["sync", "--all"]).ok();
    converge(&s);
}

#[test]
fn sync_rejected_records_exit_3_and_are_in_the_csv_and_journal() {
    let sb = sandbox(30, State::Empty, 0);
    let student_role = 5;
    sb.moodle().update_options(|o| o.wsusercannotassign = vec![student_role]);
    let s = scratch(&sb, None);
    let r = s.run(&["--json", "sync", "--all"]).code(3);
    let v = json(&r);
    assert!(v["rejected"].as_u64().unwrap() > 0, "{v}");
    let csv = std::fs::read_to_string(v["report"].as_str().unwrap()).unwrap();
    assert!(csv.lines().any(|l| l.contains("enrollment") && l.contains(",rejected,")), "{csv}");
    assert!(csv.lines().any(|l| l.contains("student") && l.contains(",applied,")), "the rest was applied");
    let store = zmsync::store::open(&s.db_url()).unwrap();
    let j = store.journal(v["run_id"].as_i64().unwrap()).unwrap();
    assert!(j
        .iter()
        .any(|e| e.outcome == "rejected" && e.message.as_deref().unwrap_or("").contains("wsusercannotassign")));
    // Fixed in Moodle: the next run applies them.
    sb.moodle().update_options(|o| o.wsusercannotassign = vec![]);
    s.run(&["sync", "--all"]).ok();
    converge(&s);
}

#[test]
fn sync_killed_at_random_points_converges_without_duplicates() {
    killed_at_random_points(None);
}

/// The same on PostgreSQL, whose journal, outcomes, links and base are written as sets.
#[test]
fn sync_killed_at_random_points_converges_on_postgres() {
    let Some(pg) = PgSchema::create() else { return };
    killed_at_random_points(Some(&pg.url));
}

/// SIGKILLs inside apply, then the end state is the truth (issue #19): no duplicates, every linked record's
/// Moodle id field in Zoho equals its link (a kill between a create and its write-back no longer loses it),
/// every expected Moodle object exists once; a killed run is marked interrupted by the run after it.
fn killed_at_random_points(db: Option<&str>) {
    let sb = sandbox(60, State::Empty, 3);
    let s = scratch(&sb, db);
    let url = db.map(str::to_string).unwrap_or_else(|| s.db_url());
    let mut rng = rand::rngs::SmallRng::seed_from_u64(42);
    let mut kills = 0;
    let mut fresh = 0;
    // Kill at a random point measured in writes (not time), so the kill lands inside apply however fast the
    // machine is; when a run gets to finish, new students in Zoho give the next one work to be killed in.
    for _ in 0..40 {
        if kills >= 12 {
            break;
        }
        let before = moodle_writes(&sb) + zoho_writes(&sb);
        let kill_after = before + rng.gen_range(1..12);
        let mut child = s
            .cmd(&["sync", "--all"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while moodle_writes(&sb) + zoho_writes(&sb) < kill_after && t.elapsed() < Duration::from_secs(60) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        } else {
            for _ in 0..8 {
                fresh += 1;
                let id = format!("KILL-{fresh:03}");
                sb.zoho()
                    .insert_record(
                        "BTEC_Students",
                        serde_json::json!({"Name": id, "First_Name": "Kill", "Last_Name": format!("Test {fresh}"),
                            "Academic_Email": format!("kill.{fresh}@student.example.edu"),
                            "Student_ID_Number": id, "Status": "Active"}),
                    )
                    .expect("insert a student");
            }
        }
        let _ = child.wait();
        assert_consistent(&sb);
    }
    assert!(kills >= 10, "killed {kills} times inside apply");
    // With 10% injected faults the run converges; token expiry mid-run is invisible.
    sb.moodle().set_fault_rate(0.1);
    sb.zoho().set_fault_rate(0.1);
    sb.zoho().expire_all_tokens();
    for _ in 0..5 {
        let r = s.run(&["--json", "sync", "--all"]);
        if r.code == 0 && json(&r)["planned_ops"] == 0 {
            break;
        }
    }
    sb.moodle().set_fault_rate(0.0);
    sb.zoho().set_fault_rate(0.0);
    s.run(&["sync", "--all"]).ok();
    converge(&s);
    assert_consistent(&sb);
    crate::converge::assert_truth(&sb, &url);
    let store = zmsync::store::open(&url).unwrap();
    assert!(store.running_runs().unwrap().is_empty(), "no run is left marked running");
    // A kill can land after a run recorded its end (the writes that trigger it were its last): those are not
    // interrupted. Every other killed run was found and marked by the run after it.
    let interrupted = store.interrupted_runs(100).unwrap().len();
    assert!(interrupted > 0 && interrupted <= kills, "killed runs found and marked: {interrupted} of {kills}");
}
