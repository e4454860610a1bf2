//! The operator's commands at college scale (harness = false: prints figures, asserts nothing).
//!
//! A real first sync of 1,500 students into the sandbox's empty Moodle (13,896 ops journalled), then:
//! - revert planning of that first sync (target < 2 s);
//! - a store of 100 runs of 1,500 students (the first sync's journal copied into 99 more runs: every run
//!   touches every record, the worst case for a record's history) and `history` of one student in it
//!   (target < 50 ms), in-process and through the binary;
//! - `report --html` of such a run (target < 1 s), in-process and through the binary.
//!
//! Run: `cargo bench --bench operator` (release). `ZMSYNC_BENCH_RUNS=N` sets the runs in the store (default 100).

use std::process::Command;
use std::time::Instant;

use serde_json::Value;
use zmsync::model::Kind;
use zmsync::operator::{history, html, revert};
use zmsync::sandbox::generator::{GenOptions, State};
use zmsync::sandbox::{Sandbox, SandboxOptions};
use zmsync::settings::Settings;
use zmsync::store::{self, JournalEntry, NewRun};

fn bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("bench exe");
    let dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
    dir.join("zmsync")
}

fn zmsync(sb: &Sandbox, db: &str, dir: &std::path::Path, args: &[&str]) -> (f64, Value) {
    let mut c = Command::new(bin());
    c.current_dir(dir).env("DATABASE_URL", db).env_remove("RUST_LOG");
    for (k, v) in sb.env() {
        c.env(k, v);
    }
    let t = Instant::now();
    let out = c.arg("--json").args(args).output().expect("run zmsync");
    let secs = t.elapsed().as_secs_f64();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        eprintln!("zmsync {args:?} exited {:?}:\n{}", out.status.code(), String::from_utf8_lossy(&out.stderr));
        Value::Null
    });
    (secs, v)
}

/// The best of `n` timings of `f`, in milliseconds.
fn best<T>(n: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut out = None;
    let mut min = f64::MAX;
    for _ in 0..n {
        let t = Instant::now();
        let v = f();
        min = min.min(t.elapsed().as_secs_f64() * 1000.0);
        out = Some(v);
    }
    (min, out.expect("ran once"))
}

fn main() {
    let runs: i64 = std::env::var("ZMSYNC_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let sb = Sandbox::start(SandboxOptions {
        generate: GenOptions { students: 1500, state: State::Empty, ..GenOptions::default() },
        ..SandboxOptions::default()
    })
    .expect("sandbox");
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("zmsync.db").display());
    let (secs, first) = zmsync(&sb, &db, dir.path(), &["sync", "--all"]);
    let run_id = first["run_id"].as_i64().expect("a run");
    println!("first sync of 1,500 students: {secs:.1} s, {} ops applied", first["applied"]);

    let s = store::open(&db).expect("store");
    let settings = Settings::from_rows(&s.settings_map().expect("settings")).expect("settings");
    let (ms, r) = best(3, || revert::plan(s.as_ref(), &settings, run_id, true).expect("revert plan"));
    println!(
        "revert planning of the first sync ({} journalled ops → {} ops): {ms:.0} ms in-process (target < 2,000 ms)",
        r.applied,
        r.plan.ops.len()
    );
    let (secs, v) = zmsync(&sb, &db, dir.path(), &["revert", &run_id.to_string(), "--cached", "--allow-mass-change"]);
    println!(
        "  `zmsync revert {run_id} --cached` (process, store open, print): {:.0} ms, {} ops",
        secs * 1000.0,
        v["ops"]
    );

    // 100 runs: the first sync's journal and summary copied into runs 2..=N.
    let t = Instant::now();
    let rows = s.journal_rows(run_id).expect("journal");
    let summary = s.run(run_id).expect("run").and_then(|r| r.summary).unwrap_or(Value::Null);
    let (entries, details): (Vec<JournalEntry>, Vec<_>) = rows.into_iter().map(|r| (r.entry, r.detail)).unzip();
    for _ in 1..runs {
        let id = s
            .create_run(&NewRun { kind: "full", module: None, dry_run: false, allow_mass_change: false })
            .expect("run");
        for (chunk, d) in entries.chunks(2_000).zip(details.chunks(2_000)) {
            let c: Vec<JournalEntry> = chunk
                .iter()
                .cloned()
                .map(|mut e| {
                    e.run_id = id;
                    e
                })
                .collect();
            s.journal_planned_with(&c, d).expect("journal");
        }
        let mut sum = summary.clone();
        sum["run_id"] = Value::from(id);
        s.finish_run(id, "completed", &sum, None).expect("finish");
    }
    let last = s.recent_runs(1).expect("runs")[0].id;
    println!(
        "store of {runs} runs × {} ops built in {:.1} s ({} MB)",
        entries.len(),
        t.elapsed().as_secs_f64(),
        std::fs::metadata(dir.path().join("zmsync.db")).map(|m| m.len() / 1_000_000).unwrap_or(0)
    );

    let student = s
        .records(Kind::Student)
        .expect("students")
        .into_iter()
        .find(|r| r.field("suspended") == &Value::Bool(false) && r.field_str("email").is_some())
        .expect("a student");
    let email = student.field_str("email").unwrap_or_default().to_string();
    let (ms, h) = best(5, || history::history(s.as_ref(), &student.key, None, 500).expect("history").expect("found"));
    println!("history of one student by Zoho id: {ms:.1} ms in-process, {} ops (target < 50 ms)", h.events.len());
    let (ms, h) = best(5, || history::history(s.as_ref(), &email, None, 500).expect("history").expect("found"));
    println!("history of one student by email: {ms:.1} ms in-process, {} ops (target < 50 ms)", h.events.len());
    let (secs, _) = zmsync(&sb, &db, dir.path(), &["history", &email]);
    println!("  `zmsync history <email>` (process, store open, print): {:.0} ms", secs * 1000.0);

    let row = s.run(last).expect("run").expect("the last run");
    let (ms, page) = best(3, || html::render(s.as_ref(), &row, html::TREND_RUNS).expect("render"));
    println!(
        "report --html of a {}-op run with {} runs of trends: {ms:.0} ms in-process, {} KB (target < 1,000 ms)",
        entries.len(),
        html::TREND_RUNS,
        page.len() / 1024
    );
    let out = dir.path().join("report.html");
    let (secs, _) =
        zmsync(&sb, &db, dir.path(), &["report", &last.to_string(), "--html", out.to_str().unwrap_or("report.html")]);
    println!("  `zmsync report {last} --html FILE` (process, store open, write): {:.0} ms", secs * 1000.0);
}
