//! What the CLI prints for every error a user can cause (issue #21): the real binary's exit code, stdout and
//! stderr, compared whole with hand-reviewed snapshots in tests/it/snapshots/errors/NAME.txt. Temp paths,
//! ports and pids are normalized. Every error prints `error: …` once and each hint once, after it: a
//! duplicated line fails here even before the snapshot is compared.
//!
//! To update after a deliberate change: `ZMSYNC_BLESS=1 cargo nextest run -E 'test(/errors::/)'`, then review
//! the diff of the .txt files before committing them.

use std::path::PathBuf;

use zmsync::sandbox::moodle::{FakeMoodle, MoodleOptions};
use zmsync::sandbox::zoho::{FakeZoho, ZohoOptions};

use crate::fakes::scratch;
use crate::snapshot::college;
use crate::support::{Run, Scratch};

/// A loopback port nobody listens on: bound, then released.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn fakes() -> (FakeZoho, FakeMoodle) {
    let c = college(20);
    (
        FakeZoho::start(c.zoho, ZohoOptions::default()).unwrap(),
        FakeMoodle::start(c.moodle, MoodleOptions::default()).unwrap(),
    )
}

/// The run as one text: exit code, stdout, stderr; temp dirs, loopback ports and pids made stable.
fn shown(s: &Scratch, r: &Run) -> String {
    let text = format!("exit: {}\n--- stdout ---\n{}--- stderr ---\n{}", r.code, r.stdout, r.stderr);
    let text = text.replace(&s.path().display().to_string(), "[TMP]");
    let text =
        regex_replace(&text, "127.0.0.1:", |rest| rest.chars().take_while(char::is_ascii_digit).count(), "[PORT]");
    regex_replace(&text, "pid ", |rest| rest.chars().take_while(char::is_ascii_digit).count(), "[PID]")
}

/// Replaces the `len(rest)` characters after each `marker` with `with` (a tiny stand-in for a regex).
fn regex_replace(text: &str, marker: &str, len: impl Fn(&str) -> usize, with: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        out.push_str(&rest[..at + marker.len()]);
        rest = &rest[at + marker.len()..];
        let n = len(rest);
        if n > 0 {
            out.push_str(with);
        }
        rest = &rest[n..];
    }
    out.push_str(rest);
    out
}

/// The invariants of every error's output, then the snapshot.
#[track_caller]
fn check(name: &str, s: &Scratch, r: &Run) {
    let errors = r.stderr.lines().filter(|l| l.starts_with("error: ")).count();
    assert!(errors <= 1, "{name}: `error:` printed {errors} times:\n{}", r.stderr);
    let mut seen = std::collections::BTreeSet::new();
    for line in r.stderr.lines().filter(|l| !l.trim().is_empty()) {
        assert!(seen.insert(line), "{name}: a line printed twice: {line:?}\n{}", r.stderr);
    }
    let lines: Vec<&str> = r.stderr.lines().collect();
    if let Some(first_hint) = lines.iter().position(|l| l.starts_with("hint: ")) {
        assert!(
            lines[first_hint..].iter().all(|l| l.starts_with("hint: ")),
            "{name}: hints come last, each on its own line:\n{}",
            r.stderr
        );
    }
    for l in &lines {
        assert!(!l.contains("  hint:"), "{name}: a hint inside the message:\n{}", r.stderr);
    }
    let got = shown(s, r);
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/snapshots/errors").join(format!("{name}.txt"));
    if std::env::var_os("ZMSYNC_BLESS").is_some() {
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{name}: no snapshot at {} ({e}); got:\n{got}", file.display()));
    assert_eq!(got, want, "{name}: the output changed (snapshot {})", file.display());
}

#[test]
fn configuration_mistakes() {
    let s = Scratch::new();
    check("missing_config", &s, &s.run(&["sync", "--all"]).code(2));
    check("bad_flag_value", &s, &s.run(&["sync", "--all", "--lock-wait", "soon"]).code(2));
    check("bad_database_url", &s, &s.run(&["--database-url", "mysql://db/zmsync", "init"]).code(2));
    check(
        "unwritable_database_path",
        &s,
        &s.run(&["--database-url", "sqlite:///nonexistent-dir-zmsync/sub/z.db", "init"]).code(2),
    );
    std::fs::write(s.path().join("z.toml"), "[zoho]\nrefresh_token = \"do-not-print\"\n").unwrap();
    check("secret_in_config_file", &s, &s.run(&["--config", "z.toml", "init"]).code(2));
    check("missing_config_file", &s, &s.run(&["--config", "nope.toml", "init"]).code(2));
    std::fs::write(s.path().join(".env"), "ZOHO_REGION=eu\nthis is not an assignment\n").unwrap();
    check("malformed_dotenv", &s, &s.run(&["init"]).code(2));
}

#[test]
fn settings_and_lookup_mistakes() {
    let s = Scratch::new();
    s.run(&["init"]).ok();
    check("unknown_setting", &s, &s.run(&["settings", "set", "retry.polcy", "{}"]).code(2));
    check("setting_not_json", &s, &s.run(&["settings", "set", "retry.policy", "{max_retries: 3"]).code(2));
    check(
        "setting_wrong_shape",
        &s,
        &s.run(&[
            "settings",
            "set",
            "retry.policy",
            r#"{"max_retries":-1,"backoff_factor":2,"initial_delay_seconds":1}"#,
        ])
        .code(2),
    );
    check("no_runs_yet", &s, &s.run(&["report"]).code(2));
    check("no_such_run_report", &s, &s.run(&["report", "42"]).code(2));
    check("no_such_run_revert", &s, &s.run(&["revert", "42", "--cached"]).code(2));
    check("no_such_run_show", &s, &s.run(&["runs", "show", "42"]).code(2));
    check("no_such_record", &s, &s.run(&["history", "nobody@example.com"]).code(2));
    check("no_such_plan_file", &s, &s.run(&["plan", "show", "nope.json"]).code(2));
    check("unknown_module", &s, &s.run(&["snapshot", "--module", "BTEC_Nope"]).code(2));
    check("unknown_entity", &s, &s.run(&["diff", "--cached", "--module", "nope"]).code(2));
}

#[test]
fn guard_refusal_and_lock_held() {
    let (zoho, moodle) = fakes();
    let s = scratch(&zoho, &moodle);
    s.run(&["init"]).ok();
    s.run(&["snapshot", "--module", "student"]).ok();
    // Moodle suddenly answers no users: the empty-side guard refuses the snapshot.
    moodle.set_zero_records(true);
    check("guard_refusal", &s, &s.run(&["snapshot", "--module", "student"]).code(4));
    moodle.set_zero_records(false);
    // This test process holds the run lock as a live run would.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(s.path().join("zmsync.db.lock"))
        .unwrap();
    lock.try_lock().unwrap();
    check("lock_held", &s, &s.run(&["sync", "--all"]).code(5));
    drop(lock);
}

#[test]
fn unreachable_and_refused_services() {
    let (zoho, moodle) = fakes();
    let closed = format!("http://127.0.0.1:{}", closed_port());
    let s = scratch(&zoho, &moodle).env("ZOHO_ACCOUNTS_URL", &closed).env("ZOHO_API_DOMAIN", &closed);
    s.run(&["init"]).ok();
    s.run(&["settings", "set", "retry.policy", r#"{"max_retries":0,"backoff_factor":1,"initial_delay_seconds":0}"#])
        .ok();
    check("zoho_unreachable", &s, &s.run(&["snapshot", "--module", "student"]));

    let s = scratch(&zoho, &moodle).env("MOODLE_URL", &closed);
    s.run(&["init"]).ok();
    s.run(&["settings", "set", "retry.policy", r#"{"max_retries":0,"backoff_factor":1,"initial_delay_seconds":0}"#])
        .ok();
    check("moodle_unreachable", &s, &s.run(&["snapshot", "--module", "student"]));

    let s = scratch(&zoho, &moodle).env("ZOHO_REFRESH_TOKEN", "1000.not-the-token");
    s.run(&["init"]).ok();
    check("zoho_bad_refresh_token", &s, &s.run(&["snapshot", "--module", "student"]));

    let s = scratch(&zoho, &moodle).env("MOODLE_TOKEN", "not-the-token");
    s.run(&["init"]).ok();
    check("moodle_bad_token", &s, &s.run(&["snapshot", "--module", "student"]));
}

#[test]
fn unwritable_report_dir() {
    let (zoho, moodle) = fakes();
    let s = scratch(&zoho, &moodle);
    s.run(&["init"]).ok();
    std::fs::write(s.path().join("not-a-dir"), "x").unwrap();
    check("unwritable_report_dir", &s, &s.run(&["sync", "--all", "--report-dir", "not-a-dir/reports"]).code(1));
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let s = Scratch::new();
    // The reader is gone before zmsync writes a byte, as with `zmsync runs | head -0`.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = s.cmd(&["init"]).stdout(writer).stderr(std::process::Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stderr, "", "nothing on stderr: no panic, no error");
}
