//! Generator benchmark: wall time and peak memory (VmHWM) to generate colleges of 1,500 and 50,000 students.
//! Run with `cargo bench --bench generate`. Each size runs in a child process so the peak of one size does
//! not hide the other's.

use std::process::Command;
use std::time::Instant;

use zmsync::sandbox::generator::{College, GenOptions, State};

fn peak_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn run_one(students: usize, state: State) {
    let start = Instant::now();
    let college = College::generate(GenOptions { students, seed: 1, state, drift_count: 30 });
    let took = start.elapsed();
    let records: usize = college.zoho.modules.values().map(Vec::len).sum();
    println!(
        "generate {students:>6} students, {:<7}: {:>7.3} s, peak {:>6} MiB, {records} Zoho records, {} Moodle users, {} drift",
        state.name(),
        took.as_secs_f64(),
        peak_kib().map(|k| (k / 1024).to_string()).unwrap_or_else(|| "?".into()),
        college.moodle.users.len(),
        college.drift.len(),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        let students: usize = args[pos + 1].parse().expect("students");
        let state = match args[pos + 2].as_str() {
            "empty" => State::Empty,
            "synced" => State::Synced,
            _ => State::Drifted,
        };
        run_one(students, state);
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    for (students, state) in [(1_500, "empty"), (1_500, "drifted"), (50_000, "empty"), (50_000, "drifted")] {
        let status = Command::new(&exe).args(["--child", &students.to_string(), state]).status().expect("child");
        assert!(status.success(), "child failed for {students} {state}");
    }
}
