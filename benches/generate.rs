//! Generator and sandbox start-up benchmark. Run with `cargo bench --bench generate`. Prints, per line, wall
//! time and peak memory (VmHWM, in MiB and in MB) of:
//! - `generate`: `College::generate` of 1,500 and 50,000 students (empty and drifted);
//! - `start`: `Sandbox::start`, i.e. generate and both fakes loaded and listening, 1,500 drifted and 50,000
//!   empty and drifted;
//! - `cli`: the release `zmsync sandbox --students 1500 --state drifted`, from exec to its seven `KEY=VALUE`
//!   lines on stdout (issue #4's "under 2 s").
//!
//! `--child hash STUDENTS STATE SEED` prints MD5s of a generated college instead (each Zoho module's records, each
//! plugin table's rows, and the whole `College` JSON): run it before and after a generator change to show that a
//! seed still gives the same bytes.
//!
//! Each measurement runs in its own process so that the peak of one does not hide another's. Next to wall
//! time, the process's CPU time (user + system), which a loaded machine inflates less.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

use zmsync::sandbox::generator::{College, GenOptions, State};
use zmsync::sandbox::{Sandbox, SandboxOptions};

/// Peak resident memory (VmHWM) in MiB and in MB (10^6 bytes: issue #4's "under 500 MB"), e.g. `466 MiB = 489 MB`.
fn peak() -> String {
    zmsync::sandbox::memory::resident_kib()
        .map(|(_, k)| format!("{:>4} MiB = {:>3} MB", k / 1024, k * 1024 / 1_000_000))
        .unwrap_or_else(|| "?".into())
}

/// CPU time (user + system) this process has used, in seconds: on a loaded machine, steadier than wall time.
fn cpu_s() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

fn opts(students: usize, state: State) -> GenOptions {
    GenOptions { students, seed: 1, state, drift_count: 30 }
}

fn generate(students: usize, state: State) {
    let start = Instant::now();
    let college = College::generate(opts(students, state));
    let took = start.elapsed();
    let records: usize = college.zoho.modules.values().map(Vec::len).sum();
    println!(
        "generate {students:>6} students, {:<7}: {:>7.3} s (cpu {:.3} s), peak {}, {records} Zoho records, {} Moodle users, {} drift",
        state.name(),
        took.as_secs_f64(),
        cpu_s(),
        peak(),
        college.moodle.users.len(),
        college.drift.len(),
    );
}

fn start(students: usize, state: State) {
    let t = Instant::now();
    let sandbox = Sandbox::start(SandboxOptions { generate: opts(students, state), ..SandboxOptions::default() })
        .expect("sandbox starts");
    let took = t.elapsed();
    println!(
        "start    {students:>6} students, {:<7}: {:>7.3} s (cpu {:.3} s), peak {} (generate + both fakes loaded), {} drift",
        state.name(),
        took.as_secs_f64(),
        cpu_s(),
        peak(),
        sandbox.seeded_drift().len(),
    );
}

/// Exec of the release binary to its seven settings lines.
fn cli(students: usize, state: &str) {
    let t = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_zmsync"))
        .args(["sandbox", "--students", &students.to_string(), "--state", state])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("zmsync sandbox runs");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let got = lines.by_ref().take(7).map_while(Result::ok).filter(|l| l.contains('=')).count();
    let took = t.elapsed();
    // SAFETY: signalling our own child by its pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    assert_eq!(got, 7, "zmsync sandbox printed {got} settings lines");
    println!(
        "cli      {students:>6} students, {state:<7}: {:>7.3} s from exec to the 7 KEY=VALUE lines",
        took.as_secs_f64()
    );
}

/// MD5s of a generated college: per Zoho module, per plugin table, and of the whole `College` JSON.
fn hash(students: usize, state: State, seed: u64) {
    use md5::{Digest, Md5};
    let college = College::generate(GenOptions { students, seed, state, drift_count: 30 });
    let md5 = |parts: &mut dyn Iterator<Item = &str>| {
        let mut h = Md5::new();
        for p in parts {
            h.update(p.as_bytes());
            h.update(b"\n");
        }
        hex::encode(h.finalize())
    };
    for (module, records) in &college.zoho.modules {
        println!("{module:<20} {:>7} {}", records.len(), md5(&mut records.iter().map(|r| r.as_str())));
    }
    let plugin = &college.moodle.plugin;
    for (table, rows) in
        [("units", &plugin.units), ("registrations", &plugin.registrations), ("payments", &plugin.payments)]
    {
        println!("plugin {table:<13} {:>7} {}", rows.len(), md5(&mut rows.iter().map(|r| r.as_str())));
    }
    let whole = serde_json::to_string(&college).expect("a college serializes");
    println!("college {:>20} {}", whole.len(), md5(&mut std::iter::once(whole.as_str())));
}

fn state(s: &str) -> State {
    match s {
        "empty" => State::Empty,
        "synced" => State::Synced,
        _ => State::Drifted,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        // `RUST_LOG=zmsync=debug` shows the generator's phases (milliseconds from its start) on stderr.
        if std::env::var_os("RUST_LOG").is_some() {
            let filter = tracing_subscriber::EnvFilter::from_default_env();
            tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
        }
        let students: usize = args[pos + 2].parse().expect("students");
        match args[pos + 1].as_str() {
            "generate" => generate(students, state(&args[pos + 3])),
            "start" => start(students, state(&args[pos + 3])),
            "hash" => hash(students, state(&args[pos + 3]), args[pos + 4].parse().expect("seed")),
            _ => cli(students, &args[pos + 3]),
        }
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let runs = [
        ("generate", 1_500, "empty"),
        ("generate", 1_500, "drifted"),
        ("generate", 50_000, "empty"),
        ("generate", 50_000, "drifted"),
        ("cli", 1_500, "drifted"),
        ("start", 1_500, "drifted"),
        ("start", 50_000, "empty"),
        ("start", 50_000, "drifted"),
    ];
    for (what, students, state) in runs {
        let status =
            Command::new(&exe).args(["--child", what, &students.to_string(), state]).status().expect("child runs");
        assert!(status.success(), "child failed: {what} {students} {state}");
    }
}
