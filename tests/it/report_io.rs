//! The run's report and its I/O errors (issue #20): a report directory that cannot take a file fails the run
//! before anything is read or written, naming the directory and the fix; a report that cannot be written
//! after the ops were applied does not fail the run: it exits 3 with the path and `zmsync report RUN`.

use zmsync::sandbox::generator::{GenOptions, State};
use zmsync::sandbox::{Sandbox, SandboxOptions};

use crate::support::Scratch;

fn sandbox() -> Sandbox {
    Sandbox::start(SandboxOptions {
        generate: GenOptions { students: 40, state: State::Empty, seed: 3, ..GenOptions::default() },
        ..SandboxOptions::default()
    })
    .expect("sandbox")
}

fn scratch(sb: &Sandbox) -> Scratch {
    let mut s = Scratch::new();
    for (k, v) in sb.env() {
        s = s.env(k, &v);
    }
    s
}

fn writes(sb: &Sandbox) -> u64 {
    sb.moodle().stats().records_written.values().sum::<u64>() + sb.zoho().stats().records_written.values().sum::<u64>()
}

#[test]
fn report_dir_that_cannot_take_a_file_fails_before_anything_is_written() {
    let sb = sandbox();
    let s = scratch(&sb);
    s.run(&["init"]).ok();
    // A path below a regular file: no directory can be made there.
    std::fs::write(s.path().join("not-a-dir"), "x").unwrap();
    let dir = s.path().join("not-a-dir").join("reports");
    let r = s.run(&["sync", "--all", "--report-dir", dir.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains(&dir.display().to_string()), "the directory is named: {}", r.stderr);
    assert!(r.stderr.contains("hint:"), "with the fix: {}", r.stderr);
    assert!(r.stderr.contains("nothing was read or written"), "{}", r.stderr);
    assert_eq!(writes(&sb), 0, "nothing was written to Zoho or Moodle");
    assert_eq!(sb.moodle().stats().requests.values().sum::<u64>(), 0, "nothing was even read");
}

/// The report's file is /dev/full (a symlink where the run's CSV goes): every write to it fails with "no space
/// left on device", after the ops were applied.
#[test]
fn report_that_fails_after_apply_exits_3_with_the_path_and_the_command() {
    let sb = sandbox();
    let s = scratch(&sb);
    s.run(&["init"]).ok();
    let dir = s.path().join("reports");
    std::fs::create_dir_all(&dir).unwrap();
    for id in 1..=20 {
        std::os::unix::fs::symlink("/dev/full", dir.join(format!("run-{id}.csv"))).unwrap();
    }
    let r = s.run(&["sync", "--all", "--report-dir", dir.to_str().unwrap()]);
    assert_eq!(r.code, 3, "stdout:\n{}\nstderr:\n{}", r.stdout, r.stderr);
    assert!(writes(&sb) > 0, "the ops were applied");
    let all = format!("{}{}", r.stdout, r.stderr);
    let run_id = all
        .split("zmsync report ")
        .nth(1)
        .and_then(|t| t.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or_else(|| panic!("the command to rerun is printed: {all}"));
    let csv = dir.join(format!("run-{run_id}.csv"));
    assert!(all.contains(&csv.display().to_string()), "the path is printed: {all}");
    assert!(all.contains("No space left on device") || all.contains("os error 28"), "{all}");
    assert_eq!(all.matches("No space left on device").count(), 1, "said once, not repeated: {all}");
    // The journal has the ops: the next run finds nothing left to do.
    let again = s.run(&["--json", "sync", "--all", "--report-dir", s.path().join("r2").to_str().unwrap()]).ok();
    let v: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(v["applied"], 0, "{v}");
}
