//! No secret in any output (issue #20): every command at trace level (`-vvv`), on SQLite and on PostgreSQL
//! with a role whose password holds `#`, `/` and `@`, against the sandbox; stdout, stderr and every file
//! written are searched for every secret: the Zoho client secret and refresh token, the access token cached
//! in the store, the Moodle token, the webhook secrets and the database password (raw and percent-encoded).
//! The store itself is not searched: it holds the cached access token by design (`zoho_tokens`).

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use zmsync::sandbox::generator::{GenOptions, State};
use zmsync::sandbox::{Sandbox, SandboxOptions};
use zmsync::webhook::signature::sign;

use crate::support::{files_below, Scratch, PG_ENV};
use crate::webhook::{student, MS, NT, ZS};

/// A password a URL parser cannot read (raw `#` and `/`); its `@` is percent-encoded in the URL, as the
/// driver needs.
const DB_PASSWORD: &str = "Zq#9/x@Lk2";

fn commands() -> Vec<Vec<&'static str>> {
    [
        &["init"][..],
        &["db", "status"],
        &["settings", "list"],
        &["doctor"],
        &["snapshot"],
        &["plan", "--out", "plan.json"],
        &["plan", "show", "plan.json"],
        &["diff", "--cached"],
        &["diff", "--format", "json", "--out", "diff.json"],
        &["sync", "--all"],
        &["sync", "--incremental"],
        &["apply", "plan.json"],
        &["sync", "--all", "--dry-run"],
        &["events", "status"],
        &["events", "retry"],
        &["events", "cleanup"],
        &["completions", "bash"],
        &["man"],
    ]
    .iter()
    .map(|c| c.to_vec())
    .collect()
}

/// Runs every command and the receiver with `-vvv` against `db_url`; returns everything they printed, with
/// the secrets to look for (the access token read from the store after the runs).
fn run_everything(s: &Scratch, db_url: &str, access_token: impl Fn() -> Option<String>) -> (String, Vec<String>) {
    let mut printed = String::new();
    for args in commands() {
        let mut all = vec!["-vvv", "--database-url", db_url];
        all.extend(args.iter().copied());
        let out = s.cmd(&all).output().expect("run zmsync");
        printed.push_str(&format!(
            "$ zmsync {}\n{}\n{}\n",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // The receiver: an event of each source, then SIGTERM.
    let log = s.path().join("serve.log");
    let mut child = s
        .cmd(&["-vvv", "--database-url", db_url, "serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start zmsync serve");
    let mut addr = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut addr).unwrap();
    let addr = addr.trim().to_string();
    if !addr.is_empty() {
        let body = student("leak-1", "5847596000012345").to_string();
        let h = [
            ("X-Zoho-Signature", format!("sha256={}", sign(ZS, body.as_bytes()))),
            ("Content-Type", "application/json".to_string()),
        ];
        let r = crate::webhook::request(&addr, "POST", "/v1/events/zoho/student", &h, body.as_bytes());
        printed.push_str(&format!("{r:?}\n"));
        let n = serde_json::json!({"server_time": chrono::Utc::now().timestamp_millis(), "module":"BTEC_Students",
            "ids":["5847596000012346"], "operation":"update", "channel_id":"7", "token": NT})
        .to_string();
        let r = crate::webhook::request(
            &addr,
            "POST",
            "/v1/events/zoho/notify",
            &[("Content-Type", "application/json".into())],
            n.as_bytes(),
        );
        printed.push_str(&format!("{r:?}\n"));
        let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    }
    let _ = child.wait();
    let mut secrets: Vec<String> = [ZS, MS, NT].iter().map(|s| s.to_string()).collect();
    for (k, v) in &s.env {
        if ["ZOHO_CLIENT_SECRET", "ZOHO_REFRESH_TOKEN", "MOODLE_TOKEN"].contains(&k.as_str()) {
            secrets.push(v.clone());
        }
    }
    let token = access_token();
    assert!(token.is_some(), "the runs cached an access token (the test must be able to look for it)");
    secrets.extend(token);
    (printed, secrets)
}

/// Every file written below the scratch directory, except the SQLite store itself.
fn written(s: &Scratch) -> String {
    let mut all = String::new();
    for f in files_below(s.path()) {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with("zmsync.db") {
            continue;
        }
        all.push_str(&format!(
            "== {}\n{}\n",
            f.display(),
            String::from_utf8_lossy(&std::fs::read(&f).unwrap_or_default())
        ));
    }
    all
}

#[track_caller]
fn assert_clean(haystack: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(secret.len() >= 6, "a secret too short to search for: {secret:?}");
        if let Some(at) = haystack.find(secret.as_str()) {
            let from = haystack[..at].rfind("$ zmsync").or_else(|| haystack[..at].rfind("== ")).unwrap_or(0);
            panic!(
                "a secret ({}…) was printed or written, in:\n{}",
                &secret[..3],
                &haystack[from..(at + 200).min(haystack.len())].replace(secret.as_str(), "<SECRET>")
            );
        }
    }
}

fn sandbox() -> Sandbox {
    Sandbox::start(SandboxOptions {
        generate: GenOptions { students: 30, state: State::Drifted, seed: 5, ..GenOptions::default() },
        ..SandboxOptions::default()
    })
    .expect("sandbox")
}

fn scratch(sb: &Sandbox) -> Scratch {
    let mut s = Scratch::new()
        .env("ZOHO_WEBHOOK_HMAC_SECRET", ZS)
        .env("MOODLE_WEBHOOK_HMAC_SECRET", MS)
        .env("ZOHO_NOTIFY_TOKEN", NT);
    for (k, v) in sb.env() {
        s = s.env(k, &v);
    }
    s
}

#[test]
fn secrets_never_printed_or_written_sqlite() {
    let sb = sandbox();
    let s = scratch(&sb);
    let url = s.db_url();
    let db = s.path().join("zmsync.db");
    let (printed, secrets) = run_everything(&s, &url, || {
        let c = rusqlite::Connection::open(&db).ok()?;
        c.query_row("SELECT access_token FROM zoho_tokens LIMIT 1", [], |r| r.get(0)).ok()
    });
    assert!(printed.contains("DEBUG"), "the commands ran at -vvv (zmsync debug and trace lines)");
    assert_clean(&printed, &secrets);
    assert_clean(&written(&s), &secrets);
}

#[test]
fn secrets_never_printed_or_written_postgres() {
    let Some(base) = std::env::var(PG_ENV).ok().filter(|s| !s.is_empty()) else { return };
    let sb = sandbox();
    let s = scratch(&sb);
    // A role of its own whose password holds `#`, `/` and `@`, owning a schema of its own.
    let role = format!("zt_leak_{}_{}", std::process::id(), chrono::Utc::now().timestamp_subsec_micros());
    let mut admin = postgres::Client::connect(&base, postgres::NoTls).expect("connect");
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD '{DB_PASSWORD}'; CREATE SCHEMA {role} AUTHORIZATION {role};"
        ))
        .unwrap();
    let rest = base.split_once('@').map(|(_, r)| r).expect("user@host in ZMSYNC_TEST_DATABASE_URL");
    let rest = rest.split('?').next().unwrap_or(rest);
    let encoded = DB_PASSWORD.replace('@', "%40");
    let url = format!("postgres://{role}:{encoded}@{rest}?options=-csearch_path%3D{role}");
    let (mut printed, mut secrets) = run_everything(&s, &url, || {
        let mut c = postgres::Client::connect(&base, postgres::NoTls).ok()?;
        c.query_one(&format!("SELECT access_token FROM {role}.zoho_tokens LIMIT 1"), &[]).ok().map(|r| r.get(0))
    });
    // A URL no parser reads (a bad port): its error, and doctor's, must not show the password either.
    let bad = format!("postgres://{role}:{encoded}@{}:notaport/x", rest.split(':').next().unwrap_or("127.0.0.1"));
    for args in [&["-vvv", "--database-url", &bad, "db", "status"][..], &["-vvv", "--database-url", &bad, "doctor"]] {
        let out = s.cmd(args).output().unwrap();
        printed.push_str(&format!(
            "$ zmsync {}\n{}{}",
            args[3..].join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    secrets.extend([DB_PASSWORD.to_string(), encoded.clone(), "Zq#9/x".to_string()]);
    assert!(printed.contains("DEBUG"), "the commands ran at -vvv (zmsync debug and trace lines)");
    assert!(printed.contains(":***@"), "the URL is shown, its password cut: {printed}");
    let result = std::panic::catch_unwind(|| {
        assert_clean(&printed, &secrets);
        assert_clean(&written(&s), &secrets);
    });
    let _ = admin.batch_execute(&format!("DROP SCHEMA IF EXISTS {role} CASCADE; DROP ROLE IF EXISTS {role};"));
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
