//! The two stores side by side (issue #25): the same sync on SQLite and on PostgreSQL, each against a fresh
//! sandbox of 1,500 students, at 0 ms and at 100 ms added latency — the first full sync step by step (the
//! cumulative `run step done` times of `RUST_LOG=zmsync=info`), the no-change run, and adopting an already
//! synced Moodle with a new store; then the 5,000-student first sync at 100 ms on both stores, step by step.
//!
//! PostgreSQL: `ZMSYNC_BENCH_DATABASE_URL`, else `ZMSYNC_TEST_DATABASE_URL`; each run gets a schema of its own,
//! dropped afterwards. Without either, only SQLite is measured. `ZMSYNC_BENCH_ONLY=stores` runs only this
//! section; `ZMSYNC_BENCH_LATENCIES=0,100` picks the latencies; `ZMSYNC_BENCH_ROUNDS=N` measures each latency
//! N times (default 3), the stores taking turns to go first, and prints medians; `ZMSYNC_BENCH_BIN=PATH`
//! measures another build of the zmsync binary (e.g. the one before a change).

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Instant;

use zmsync::sandbox::generator::{GenOptions, State};
use zmsync::sandbox::{Sandbox, SandboxOptions};

/// The steps of a run, in the order `run step done` logs them.
const STEPS: [&str; 6] = ["snapshot", "plan", "journal", "apply", "refresh", "baseline"];

/// A fresh, empty store of one dialect, removed on drop.
enum FreshStore {
    Sqlite(tempfile::TempDir),
    Postgres { base: String, schema: String },
}

impl FreshStore {
    fn url(&self) -> String {
        match self {
            FreshStore::Sqlite(dir) => format!("sqlite://{}", dir.path().join("zmsync.db").display()),
            FreshStore::Postgres { base, schema } => {
                let sep = if base.contains('?') { '&' } else { '?' };
                format!("{base}{sep}options=-csearch_path%3D{schema}")
            }
        }
    }
}

impl Drop for FreshStore {
    fn drop(&mut self) {
        if let FreshStore::Postgres { base, schema } = self {
            if let Ok(mut c) = postgres::Client::connect(base, postgres::NoTls) {
                let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"));
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "SQLite",
            Dialect::Postgres => "PostgreSQL",
        }
    }
}

fn pg_base() -> Option<String> {
    ["ZMSYNC_BENCH_DATABASE_URL", "ZMSYNC_TEST_DATABASE_URL"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
}

fn fresh(dialect: Dialect) -> FreshStore {
    match dialect {
        Dialect::Sqlite => FreshStore::Sqlite(tempfile::tempdir().expect("tempdir")),
        Dialect::Postgres => {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let base = pg_base().expect("a PostgreSQL URL");
            let schema =
                format!("zmsync_bench_{}_{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
            let mut c = postgres::Client::connect(&base, postgres::NoTls).expect("connect to the bench database");
            c.batch_execute(&format!("CREATE SCHEMA {schema}")).expect("create schema");
            FreshStore::Postgres { base, schema }
        }
    }
}

fn sandbox(students: usize, state: State, latency_ms: u64) -> Sandbox {
    let sb = Sandbox::start(SandboxOptions {
        generate: GenOptions { students, state, ..GenOptions::default() },
        latency_ms,
        ..SandboxOptions::default()
    })
    .expect("sandbox");
    sb.zoho().set_concurrency_cap(Some(10));
    sb
}

/// One run: its wall time and the cumulative milliseconds of each step it logged.
struct Timed {
    secs: f64,
    steps: BTreeMap<String, u64>,
    /// The apply phases in the order they ended, with the ms since the phases began (`apply phase done`).
    phases: Vec<(String, u64)>,
    /// API calls during apply: (Zoho, Moodle), from the run's JSON summary.
    apply_calls: (u64, u64),
    ok: bool,
}

/// `zmsync sync --all` against `sb` on `store`, logging at info.
fn sync(sb: &Sandbox, store: &FreshStore) -> Timed {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::var_os("ZMSYNC_BENCH_BIN").map(std::path::PathBuf::from).unwrap_or_else(super::bin);
    let mut c = Command::new(exe);
    c.current_dir(dir.path()).env("DATABASE_URL", store.url()).env("RUST_LOG", "zmsync=info");
    for (k, v) in sb.env() {
        c.env(k, v);
    }
    c.args(["--json", "sync", "--all"]);
    let t = Instant::now();
    let out = c.output().expect("run zmsync");
    let secs = t.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        eprintln!("zmsync sync --all exited {:?}:\n{stderr}", out.status.code());
    }
    let field = |l: &str, name: &str| -> Option<String> {
        let rest = &l[l.find(&format!("{name}="))? + name.len() + 1..];
        Some(rest.split_whitespace().next()?.trim_matches('"').to_string())
    };
    let plain = strip_ansi(&stderr);
    let steps = plain
        .lines()
        .filter(|l| l.contains("run step done"))
        .filter_map(|l| Some((field(l, "step")?, field(l, "elapsed_ms")?.parse().ok()?)))
        .collect();
    let phases = plain
        .lines()
        .filter(|l| l.contains("apply phase done"))
        .filter_map(|l| Some((field(l, "phase")?, field(l, "elapsed_ms")?.parse().ok()?)))
        .collect();
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let calls = |side: &str| summary["phase_calls"]["apply"][side].as_u64().unwrap_or(0);
    Timed { secs, steps, phases, apply_calls: (calls("zoho"), calls("moodle")), ok: out.status.success() }
}

/// `text` without terminal colour codes (the log colours its field names even into a pipe).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// What one store did at one latency.
struct Measured {
    first: Timed,
    no_change: Timed,
    adopt: Timed,
}

fn measure(dialect: Dialect, latency_ms: u64, synced: &Sandbox) -> Measured {
    let sb = sandbox(1500, State::Empty, latency_ms);
    let store = fresh(dialect);
    let first = sync(&sb, &store);
    let no_change = sync(&sb, &store);
    drop(sb);
    let adopt = sync(synced, &fresh(dialect));
    Measured { first, no_change, adopt }
}

/// Each figure of `rounds` (wall time, every step) at its median; the phases and call counts of the median
/// first sync.
fn median(rounds: Vec<Measured>) -> Measured {
    fn mid<T: Copy + PartialOrd>(mut v: Vec<T>) -> T {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        v[v.len() / 2]
    }
    fn of(runs: Vec<Timed>) -> Timed {
        let secs = mid(runs.iter().map(|t| t.secs).collect());
        let steps = STEPS
            .iter()
            .filter_map(|s| {
                let v: Vec<u64> = runs.iter().filter_map(|t| t.steps.get(*s).copied()).collect();
                (!v.is_empty()).then(|| (s.to_string(), mid(v)))
            })
            .collect();
        let ok = runs.iter().all(|t| t.ok);
        let typical = runs.into_iter().min_by(|a, b| (a.secs - secs).abs().total_cmp(&(b.secs - secs).abs()));
        let typical = typical.expect("at least one round");
        Timed { secs, steps, ok, ..typical }
    }
    let (mut first, mut no_change, mut adopt) = (Vec::new(), Vec::new(), Vec::new());
    for m in rounds {
        first.push(m.first);
        no_change.push(m.no_change);
        adopt.push(m.adopt);
    }
    Measured { first: of(first), no_change: of(no_change), adopt: of(adopt) }
}

fn ms(t: &Timed, step: &str) -> String {
    t.steps.get(step).map(|v| format!("{v}")).unwrap_or_else(|| "—".into())
}

fn ratio(a: f64, b: f64) -> String {
    if a > 0.0 {
        format!("{:.2}×", b / a)
    } else {
        "—".into()
    }
}

fn print(latency_ms: u64, rounds: usize, got: &[(Dialect, Measured)]) {
    let names: Vec<&str> = got.iter().map(|(d, _)| d.name()).collect();
    println!(
        "\nstores side by side: first sync of 1,500 students, latency {latency_ms} ms (cumulative ms per step; \
         median of {rounds} round{})",
        if rounds == 1 { "" } else { "s" }
    );
    println!("  {:<44} {:>10} {:>11} {:>7}", "", names[0], names.get(1).copied().unwrap_or(""), "PG/SQL");
    let row = |what: &str, f: &dyn Fn(&Measured) -> String, r: &dyn Fn(&Measured) -> f64| {
        let cells: Vec<String> = got.iter().map(|(_, m)| f(m)).collect();
        let rat = if got.len() == 2 { ratio(r(&got[0].1), r(&got[1].1)) } else { String::new() };
        println!("  {what:<44} {:>10} {:>11} {rat:>7}", cells[0], cells.get(1).cloned().unwrap_or_default());
    };
    for step in STEPS {
        let num = |m: &Measured| m.first.steps.get(step).copied().unwrap_or(0) as f64;
        row(&format!("  {step}"), &|m| ms(&m.first, step), &num);
    }
    let secs = |t: &Timed| if t.ok { format!("{:.2} s", t.secs) } else { "FAILED".into() };
    row("whole first sync (wall, with process start)", &|m| secs(&m.first), &|m| m.first.secs);
    row("no-change run (wall)", &|m| secs(&m.no_change), &|m| m.no_change.secs);
    row("adopting a synced Moodle, new store (wall)", &|m| secs(&m.adopt), &|m| m.adopt.secs);
    row("  of which plan (ms)", &|m| ms(&m.adopt, "plan"), &|m| m.adopt.steps.get("plan").copied().unwrap_or(0) as f64);
    println!("  target: PostgreSQL within 1.3× of SQLite for the whole first sync, the no-change run and adopting");
}

/// The section: both stores at each latency, then 5,000 students on both at 100 ms.
pub fn side_by_side() {
    let pg = pg_base().is_some();
    if !pg {
        println!(
            "\nstores side by side: PostgreSQL skipped (set ZMSYNC_BENCH_DATABASE_URL or ZMSYNC_TEST_DATABASE_URL)"
        );
    }
    let dialects: Vec<Dialect> =
        [Dialect::Sqlite, Dialect::Postgres].into_iter().filter(|d| *d == Dialect::Sqlite || pg).collect();
    let latencies: Vec<u64> = std::env::var("ZMSYNC_BENCH_LATENCIES")
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![0, 100]);
    let rounds: usize = std::env::var("ZMSYNC_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(1);
    for latency in latencies {
        let synced = sandbox(1500, State::Synced, latency);
        // Rounds alternate which store goes first, so a machine that slows down or speeds up over the minutes
        // of a bench weighs on both; each figure printed is the median of its rounds.
        let mut all: Vec<(Dialect, Vec<Measured>)> = dialects.iter().map(|d| (*d, Vec::new())).collect();
        for round in 0..rounds {
            let mut order: Vec<usize> = (0..all.len()).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for i in order {
                let m = measure(all[i].0, latency, &synced);
                all[i].1.push(m);
            }
        }
        let got: Vec<(Dialect, Measured)> = all.into_iter().map(|(d, ms)| (d, median(ms))).collect();
        print(latency, rounds, &got);
    }
    if pg && std::env::var("ZMSYNC_BENCH_QUICK").is_err() {
        five_thousand(&dialects);
    }
}

/// The first sync of 5,000 students at 100 ms on each store, one after the other, each against a fresh
/// sandbox: per step the cumulative ms and the step's own ms, and PostgreSQL's step over SQLite's.
/// `ZMSYNC_BENCH_5000_STORES=postgres` measures PostgreSQL alone.
fn five_thousand(dialects: &[Dialect]) {
    let only_pg = std::env::var("ZMSYNC_BENCH_5000_STORES").is_ok_and(|v| v.eq_ignore_ascii_case("postgres"));
    let got: Vec<(Dialect, Timed)> = dialects
        .iter()
        .filter(|d| !only_pg || **d == Dialect::Postgres)
        .map(|d| {
            let sb = sandbox(5000, State::Empty, 100);
            (*d, sync(&sb, &fresh(*d)))
        })
        .collect();
    println!("\nfirst full sync, 5,000 students, 100 ms (target: PostgreSQL < 35 s); ms per step (cumulative)");
    let names: Vec<&str> = got.iter().map(|(d, _)| d.name()).collect();
    println!("  {:<12} {:>18} {:>18} {:>7}", "", names[0], names.get(1).copied().unwrap_or(""), "PG/SQL");
    let own = |t: &Timed, i: usize| -> Option<u64> {
        let at = |s: &str| t.steps.get(s).copied();
        Some(at(STEPS[i])?.saturating_sub(if i == 0 { 0 } else { at(STEPS[i - 1])? }))
    };
    for (i, step) in STEPS.iter().enumerate() {
        let cells: Vec<String> = got
            .iter()
            .map(|(_, t)| format!("{} ({})", own(t, i).map_or("—".into(), |v| v.to_string()), ms(t, step)))
            .collect();
        let rat = match got.as_slice() {
            [(_, a), (_, b)] => ratio(own(a, i).unwrap_or(0) as f64, own(b, i).unwrap_or(0) as f64),
            _ => String::new(),
        };
        println!("  {step:<12} {:>18} {:>18} {rat:>7}", cells[0], cells.get(1).cloned().unwrap_or_default());
    }
    let secs = |t: &Timed| if t.ok { format!("{:.2} s", t.secs) } else { "FAILED".into() };
    let cells: Vec<String> = got.iter().map(|(_, t)| secs(t)).collect();
    let rat = match got.as_slice() {
        [(_, a), (_, b)] => ratio(a.secs, b.secs),
        _ => String::new(),
    };
    println!("  {:<12} {:>18} {:>18} {rat:>7}", "whole (wall)", cells[0], cells.get(1).cloned().unwrap_or_default());
    for (d, t) in &got {
        let phases: Vec<String> = t.phases.iter().map(|(p, ms)| format!("{p} {ms}")).collect();
        println!("  {} apply phases ended at (ms into apply): {}", d.name(), phases.join(", "));
        // Round trips alone, at 100 ms each, with Moodle 4 and Zoho 10 calls in flight: a floor of apply.
        let (z, m) = t.apply_calls;
        println!(
            "  {} apply calls: Moodle {m}, Zoho {z}; their round trips alone take ≥ {:.1} s (Moodle 4, Zoho 10 in flight)",
            d.name(),
            (m as f64 / 4.0).max(z as f64 / 10.0) * 0.1
        );
    }
}
