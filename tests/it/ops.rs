//! Running unattended (issue #23): `-q` is silent unless something needs the operator, a run that finds the
//! lock held by a live run has its own outcome (exit 5, or 0 with `--if-free`), and `doctor` warns when the
//! last successful full sync is too old.

use std::time::{Duration, Instant};

use zmsync::sandbox::generator::{GenOptions, State};
use zmsync::sandbox::{Sandbox, SandboxOptions};

use crate::support::Scratch;

fn sandbox(students: usize, per_record_ms: u64) -> Sandbox {
    Sandbox::start(SandboxOptions {
        generate: GenOptions { students, state: State::Empty, seed: 11, ..GenOptions::default() },
        per_record_ms,
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

#[test]
fn quiet_run_prints_nothing_on_success_and_the_summary_on_exit_3() {
    let sb = sandbox(30, 0);
    let student_role = 5;
    sb.moodle().update_options(|o| o.wsusercannotassign = vec![student_role]);
    let s = scratch(&sb);
    let r = s.run(&["-q", "sync", "--all"]).code(3);
    assert!(r.stdout.contains("(full): partial") || r.stdout.contains("(full):"), "the summary: {}", r.stdout);
    assert!(r.stdout.contains("rejected") && r.stdout.contains("report: "), "summary with its report: {}", r.stdout);
    // Fixed in Moodle: the next run succeeds, and says nothing at all.
    sb.moodle().update_options(|o| o.wsusercannotassign = vec![]);
    let r = s.run(&["-q", "sync", "--all"]).ok();
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("", ""), "a successful -q run is silent");
    let r = s.run(&["-q", "sync", "--incremental"]).ok();
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("", ""), "a successful -q incremental run is silent");
    // Without -q the same run prints its summary.
    let r = s.run(&["sync", "--incremental"]).ok();
    assert!(r.stdout.contains("(incremental)"), "{}", r.stdout);
    // The weekly clean-up is quiet too.
    let r = s.run(&["-q", "events", "cleanup", "--days", "30"]).ok();
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("", ""));
}

#[test]
fn incremental_run_during_a_full_run_is_lock_held_not_refused() {
    let sb = sandbox(60, 20);
    let s = scratch(&sb);
    let mut full = s.cmd(&["-q", "sync", "--all"]).spawn().expect("spawn the full run");
    let t = Instant::now();
    // The lock is taken before any network call: once Moodle sees writes, the full run holds it.
    while sb.moodle().stats().records_written.values().sum::<u64>() == 0 && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = s.run(&["-q", "sync", "--incremental"]);
    assert_eq!(r.code, 5, "lock held is exit 5, not 4 (a guard):\n{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("run 1") && r.stderr.contains("holds the run lock"), "names the holder: {}", r.stderr);
    // --if-free: not an alarm at all, and silent under -q.
    let r = s.run(&["-q", "sync", "--incremental", "--if-free"]).ok();
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("", ""), "--if-free -q says nothing");
    let r = s.run(&["sync", "--incremental", "--if-free"]).ok();
    assert!(r.stderr.contains("skipped (--if-free)"), "logged without -q: {}", r.stderr);
    // --lock-wait: waits for the full run to finish, then runs.
    let r = s.run(&["-q", "sync", "--incremental", "--lock-wait", "300"]).ok();
    assert_eq!(r.stdout, "", "{}", r.stderr);
    assert!(full.wait().expect("full run").success());
    let store = zmsync::store::open(&s.db_url()).expect("store");
    let kinds: Vec<String> = store.recent_runs(10).expect("runs").into_iter().map(|r| r.kind).collect();
    assert_eq!(kinds, ["incremental", "full"], "the skipped runs left no row");
}

#[test]
fn doctor_warns_when_the_last_full_sync_is_too_old() {
    let sb = sandbox(20, 0);
    let s = scratch(&sb);
    s.run(&["init"]).ok();
    let line = |s: &Scratch| {
        let r = s.run(&["doctor"]);
        let out = r.stdout;
        let found: Vec<String> = out.lines().filter(|l| l.contains(" runs.full ")).map(String::from).collect();
        assert_eq!(found.len(), 1, "one runs.full line in:\n{out}");
        found[0].clone()
    };
    let l = line(&s);
    assert!(l.starts_with("WARN") && l.contains("no successful full sync yet"), "{l}");
    s.run(&["-q", "sync", "--all"]).ok();
    let l = line(&s);
    assert!(l.starts_with("PASS") && l.contains("run 1") && l.contains("limit 36 h"), "{l}");
    // The nightly timer stopped 40 hours ago.
    let db = s.path().join("zmsync.db");
    let conn = rusqlite::Connection::open(&db).expect("open the store");
    let then = (chrono::Utc::now() - chrono::Duration::hours(40)).to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    conn.execute("UPDATE runs SET started_at = ?1, finished_at = ?1 WHERE id = 1", [&then]).expect("age the run");
    let l = line(&s);
    assert!(l.starts_with("WARN") && l.contains("40 h ago") && l.contains("more than 36 h"), "{l}");
    assert!(l.contains("zmsync-nightly.timer") && l.contains("doctor.max_full_run_age_hours"), "the fix: {l}");
    // A warning, not a failure: doctor's exit is decided by failures.
    // The limit is a setting.
    s.run(&["settings", "set", "doctor.max_full_run_age_hours", "48"]).ok();
    let l = line(&s);
    assert!(l.starts_with("PASS") && l.contains("limit 48 h"), "{l}");
    // A dry run or a failed run does not count as a successful full sync.
    s.run(&["settings", "set", "doctor.max_full_run_age_hours", "12"]).ok();
    s.run(&["-q", "sync", "--all", "--dry-run"]).ok();
    assert!(line(&s).starts_with("WARN"), "a dry run is not a sync");
}
