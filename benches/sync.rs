//! Sync benchmark (harness = false: prints figures, asserts nothing). Both fakes with `--latency-ms 100`,
//! Zoho capped at 10 calls in flight: first full sync of 1,500 students, a no-change run, an incremental run of
//! one dirty student, a first sync of 5,000 students; peak memory of the child; API calls per run.
//!
//! Run: `cargo bench --bench sync` (release). `ZMSYNC_BENCH_QUICK=1` skips the 5,000-student case.

use std::process::Command;
use std::time::Instant;

use serde_json::Value;
use zmsync::sandbox::generator::{GenOptions, State};
use zmsync::sandbox::{Sandbox, SandboxOptions};
use zmsync::store::events::NewEvent;

fn bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("bench exe");
    let dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
    dir.join("zmsync")
}

struct Env {
    sb: Sandbox,
    dir: tempfile::TempDir,
}

impl Env {
    fn new(students: usize) -> Env {
        let sb = Sandbox::start(SandboxOptions {
            generate: GenOptions { students, state: State::Empty, ..GenOptions::default() },
            latency_ms: 100,
            ..SandboxOptions::default()
        })
        .expect("sandbox");
        sb.zoho().set_concurrency_cap(Some(10));
        Env { sb, dir: tempfile::tempdir().expect("tempdir") }
    }

    fn db(&self) -> String {
        format!("sqlite://{}", self.dir.path().join("zmsync.db").display())
    }

    /// Runs `zmsync --json <args>` under /usr/bin/time when present; returns (seconds, JSON, peak RSS in MB).
    fn run(&self, args: &[&str]) -> (f64, Value, Option<f64>) {
        let timer = std::path::Path::new("/usr/bin/time").exists();
        let mut c = if timer {
            let mut c = Command::new("/usr/bin/time");
            c.arg("-f").arg("MAXRSS_KB=%M").arg(bin());
            c
        } else {
            Command::new(bin())
        };
        c.current_dir(self.dir.path()).env("DATABASE_URL", self.db()).env_remove("RUST_LOG");
        for (k, v) in self.sb.env() {
            c.env(k, v);
        }
        c.arg("--json").args(args);
        let t = Instant::now();
        let out = c.output().expect("run zmsync");
        let secs = t.elapsed().as_secs_f64();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let rss = stderr
            .lines()
            .find_map(|l| l.strip_prefix("MAXRSS_KB="))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|kb| kb / 1024.0);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            eprintln!("zmsync {:?} exited {:?}:\n{stderr}", args, out.status.code());
            Value::Null
        });
        (secs, v, rss)
    }

    fn writes(&self) -> u64 {
        self.sb.moodle().stats().records_written.values().sum::<u64>()
            + self.sb.zoho().stats().records_written.values().sum::<u64>()
    }
}

fn line(what: &str, secs: f64, v: &Value, rss: Option<f64>, target: &str) {
    println!(
        "{what:<38} {secs:>7.2} s  (target {target})  ops {:>6}  applied {:>6}  API calls: Zoho {:>4} ({} credits), Moodle {:>4}  peak RSS {}",
        v["planned_ops"],
        v["applied"],
        v["zoho_calls"],
        v["zoho_credits"],
        v["moodle_calls"],
        rss.map(|r| format!("{r:.0} MB")).unwrap_or_else(|| "n/a".into())
    );
}

/// The fewest calls the batch limits allow for a first sync: Zoho reads of 200 per page, writes of 100; Moodle
/// creates of 50 users/courses, enrolments of 200, plugin rows per max_input_vars batch.
fn minimum(v: &Value, students: usize) -> String {
    let ops = v["planned_ops"].as_u64().unwrap_or(0);
    format!("(≈{} ops for {students} students; Zoho write-backs need ≥ ⌈writes/100⌉ calls, reads ≥ ⌈records/200⌉)", ops)
}

fn main() {
    if !bin().exists() {
        eprintln!("build the binary first: cargo build --release");
        return;
    }
    println!("zmsync sync benchmark: latency 100 ms on both fakes, Zoho cap 10 in flight");
    let e = Env::new(1500);
    let (s, v, rss) = e.run(&["sync", "--all"]);
    line("first full sync, 1,500 students", s, &v, rss, "< 15 s");
    println!("  {}", minimum(&v, 1500));
    let w0 = e.writes();
    let (s, v, rss) = e.run(&["sync", "--all"]);
    line("no-change run", s, &v, rss, "< 5 s");
    println!("  writes during the no-change run: {}", e.writes() - w0);

    // One dirty student: a changed phone in Zoho and its dirty mark, as the receiver would record it.
    let student = e.sb.zoho().records("BTEC_Students").into_iter().next().expect("a student");
    let id = student["id"].as_str().unwrap_or_default().to_string();
    e.sb.zoho().update_record("BTEC_Students", &id, serde_json::json!({"Phone": "+44 20 0000 0001"})).ok();
    let store = zmsync::store::open(&e.db()).expect("store");
    store
        .insert_events(&[NewEvent {
            event_id: "bench-1".into(),
            source: "zoho".into(),
            event_type: "updated".into(),
            module: Some("BTEC_Students".into()),
            entity_type: "student".into(),
            record_id: id,
            payload: serde_json::json!({}),
        }])
        .expect("event");
    drop(store);
    let (s, v, rss) = e.run(&["sync", "--incremental"]);
    line("incremental run, one dirty student", s, &v, rss, "< 1 s");
    drop(e);

    if std::env::var("ZMSYNC_BENCH_QUICK").is_ok() {
        return;
    }
    let e = Env::new(5000);
    let (s, v, rss) = e.run(&["sync", "--all"]);
    line("first full sync, 5,000 students", s, &v, rss, "< 45 s");
    println!("  {}", minimum(&v, 5000));
}
