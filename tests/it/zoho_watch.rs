//! `zmsync zoho watch` against the sandbox (issue #24): subscribe, rerun (the same channel), renew near expiry
//! and not before, status, remove; a lapsed channel reported by `doctor` and by `--renew`'s exit code; and an
//! edit in the fake Zoho's UI reaching a running `zmsync serve` through the subscribed channel, synced by
//! `sync --incremental`. SQLite and PostgreSQL.

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{json, Value};
use zmsync::sandbox::generator::{GenOptions, State};
use zmsync::sandbox::{Sandbox, SandboxOptions};

use crate::follow::{converged, moodle_email, serve, Children};
use crate::support::{PgSchema, Run, Scratch};

const TOKEN: &str = "watch-test-channel-token-0123456789";
const NEW_EMAIL: &str = "Watched.Change@student.example.edu";

fn sandbox(students: usize) -> Sandbox {
    Sandbox::start(SandboxOptions {
        generate: GenOptions { students, state: State::Empty, seed: 5, ..GenOptions::default() },
        ..SandboxOptions::default()
    })
    .expect("sandbox starts")
}

fn scratch(sb: &Sandbox, db: Option<&str>) -> Scratch {
    let mut s = Scratch::new();
    for (k, v) in sb.env() {
        s = s.env(k, &v);
    }
    let url = db.map(str::to_string).unwrap_or_else(|| s.db_url());
    s.env("DATABASE_URL", &url).env("ZOHO_NOTIFY_TOKEN", TOKEN)
}

/// Runs zmsync and checks that the channel token never shows.
#[track_caller]
fn run(s: &Scratch, args: &[&str]) -> Run {
    let r = s.run(args);
    assert!(
        !r.stdout.contains(TOKEN) && !r.stderr.contains(TOKEN),
        "the channel token leaked:\n{}{}",
        r.stdout,
        r.stderr
    );
    r
}

fn live(sb: &Sandbox) -> Vec<zmsync::sandbox::zoho::ChannelView> {
    sb.zoho().watch_channels().into_iter().filter(|c| c.live).collect()
}

fn days_left(c: &zmsync::sandbox::zoho::ChannelView) -> f64 {
    (c.expiry.to_utc() - Utc::now()).num_minutes() as f64 / 1440.0
}

fn in_hours(h: i64) -> chrono::DateTime<chrono::FixedOffset> {
    (Utc::now() + chrono::Duration::hours(h)).fixed_offset()
}

fn lifecycle(db: Option<&str>) {
    let sb = sandbox(20);
    let s = scratch(&sb, db);
    run(&s, &["init"]).ok();
    // Unreachable on purpose: Zoho accepts any http(s) URL; deliveries would fail, which is not this test's point.
    let base = "http://127.0.0.1:9";
    let r = run(&s, &["zoho", "watch", "--url", base, "--dry-run"]).ok();
    assert!(r.stdout.contains("would subscribe") && r.stdout.contains("24 events"), "{}", r.stdout);
    assert!(sb.zoho().watch_channels().is_empty(), "a dry run subscribes nothing");

    let r = run(&s, &["zoho", "watch", "--url", base]).ok();
    assert!(r.stdout.contains("subscribed channel"), "{}", r.stdout);
    let ch = live(&sb);
    assert_eq!(ch.len(), 1);
    let id = ch[0].channel_id.clone();
    assert_eq!(ch[0].notify_url, format!("{base}/v1/events/zoho/notify"));
    assert_eq!(ch[0].events.len(), 24, "8 modules × create, edit, delete: {:?}", ch[0].events);
    assert!(ch[0].events.contains(&"BTEC_Grades.delete".to_string()));
    assert!(days_left(&ch[0]) > 6.9, "Zoho's maximum, a week: {}", days_left(&ch[0]));
    let store = zmsync::store::open(db.unwrap_or(&s.db_url())).unwrap();
    let row = store.zoho_channel().unwrap().expect("remembered");
    assert_eq!((row.channel_id.as_str(), row.events.len()), (id.as_str(), 24));
    assert_eq!(row.expiry.timestamp(), ch[0].expiry.timestamp());

    // Rerun: the same channel, amended; the URL comes from the setting now.
    let r = run(&s, &["zoho", "watch"]).ok();
    assert!(r.stdout.contains(&format!("amended channel {id}")), "{}", r.stdout);
    assert_eq!(sb.zoho().watch_channels().len(), 1, "never a second channel");

    // Renew: not before two days remain...
    let before = live(&sb)[0].expiry;
    let r = run(&s, &["zoho", "watch", "--renew"]).ok();
    assert!(r.stdout.contains("not renewed yet"), "{}", r.stdout);
    assert_eq!(live(&sb)[0].expiry, before);
    // ...then yes (quiet under -q).
    assert!(sb.zoho().set_channel_expiry(&id, in_hours(40)));
    let r = run(&s, &["-q", "zoho", "watch", "--renew"]).ok();
    assert_eq!((r.stdout.as_str(), r.stderr.as_str()), ("", ""));
    let ch = live(&sb);
    assert!(ch.len() == 1 && ch[0].channel_id == id && days_left(&ch[0]) > 6.9, "{ch:?}");
    assert_eq!(store.zoho_channel().unwrap().unwrap().expiry.timestamp(), ch[0].expiry.timestamp());

    // Status: what Zoho reports beside what the store expects.
    let r = run(&s, &["zoho", "watch", "--status"]).ok();
    assert!(r.stdout.contains(&format!("channel {id}")) && r.stdout.contains("OK:"), "{}", r.stdout);
    // A module switched off: settings set says the channel needs `zoho watch`, status shows the difference.
    let mut modules: Value =
        serde_json::from_str(&run(&s, &["settings", "get", "modules.enabled"]).ok().stdout).unwrap();
    modules["BTEC_Payments"] = json!(false);
    let r = run(&s, &["settings", "set", "modules.enabled", &modules.to_string()]).ok();
    assert!(r.stderr.contains("zmsync zoho watch"), "{}", r.stderr);
    let r = run(&s, &["zoho", "watch", "--status"]).code(1);
    assert!(r.stdout.contains("BTEC_Payments.create"), "{}", r.stdout);
    run(&s, &["zoho", "watch"]).ok();
    assert_eq!(live(&sb)[0].events.len(), 21);
    run(&s, &["zoho", "watch", "--status"]).ok();

    // Remove: gone from Zoho and from the store.
    let r = run(&s, &["zoho", "watch", "--remove"]).ok();
    assert!(r.stdout.contains(&format!("removed channel {id}")), "{}", r.stdout);
    assert!(sb.zoho().watch_channels().is_empty());
    assert!(store.zoho_channel().unwrap().is_none());
    let r = run(&s, &["zoho", "watch", "--status"]).ok();
    assert!(r.stdout.contains("no channel subscribed"), "{}", r.stdout);
}

#[test]
fn zoho_watch_subscribe_rerun_renew_status_remove() {
    lifecycle(None);
}

#[test]
fn zoho_watch_subscribe_rerun_renew_status_remove_postgres() {
    let Some(schema) = PgSchema::create() else { return };
    lifecycle(Some(&schema.url));
}

/// Doctor's line for one check name (exactly one).
#[track_caller]
fn doctor_line(s: &Scratch, name: &str) -> String {
    let r = run(s, &["doctor"]);
    let found: Vec<&str> = r.stdout.lines().filter(|l| l.split_whitespace().nth(1) == Some(name)).collect();
    assert_eq!(found.len(), 1, "one `{name}` line in:\n{}", r.stdout);
    found[0].to_string()
}

#[test]
fn zoho_watch_lapsed_channel_fails_doctor_and_renew() {
    let sb = sandbox(20);
    let s = scratch(&sb, None);
    run(&s, &["init"]).ok();
    let l = doctor_line(&s, "zoho.watch");
    assert!(l.starts_with("SKIP"), "no channel, no failure (the Deluge route is fine): {l}");
    // Subscribed while BTEC_Payments is off.
    let mut modules: Value =
        serde_json::from_str(&run(&s, &["settings", "get", "modules.enabled"]).ok().stdout).unwrap();
    modules["BTEC_Payments"] = json!(false);
    run(&s, &["settings", "set", "modules.enabled", &modules.to_string()]).ok();
    run(&s, &["zoho", "watch", "--url", "http://127.0.0.1:9"]).ok();
    let id = live(&sb)[0].channel_id.clone();
    for name in ["zoho.watch", "zoho.watch.events", "zoho.watch.url", "zoho.watch.expiry"] {
        assert!(doctor_line(&s, name).starts_with("PASS"), "{name}");
    }
    // Less than a day left.
    sb.zoho().set_channel_expiry(&id, in_hours(12));
    let l = doctor_line(&s, "zoho.watch.expiry");
    assert!(l.starts_with("FAIL") && l.contains("--renew"), "{l}");
    // A module more than the channel covers: switched on after the subscription.
    modules["BTEC_Payments"] = json!(true);
    run(&s, &["settings", "set", "modules.enabled", &modules.to_string()]).ok();
    let l = doctor_line(&s, "zoho.watch.events");
    assert!(l.starts_with("FAIL") && l.contains("BTEC_Payments.edit") && l.contains("zmsync zoho watch"), "{l}");
    modules["BTEC_Payments"] = json!(false);
    run(&s, &["settings", "set", "modules.enabled", &modules.to_string()]).ok();
    assert!(doctor_line(&s, "zoho.watch.events").starts_with("PASS"));
    // Another configured URL.
    run(&s, &["settings", "set", "zoho.notify_url", "\"https://sync.example.edu/v1/events/zoho/notify\""]).ok();
    let l = doctor_line(&s, "zoho.watch.url");
    assert!(l.starts_with("FAIL") && l.contains("https://sync.example.edu"), "{l}");
    run(&s, &["settings", "set", "zoho.notify_url", "\"http://127.0.0.1:9/v1/events/zoho/notify\""]).ok();

    // Lapsed: doctor fails, and so does the renewal (exit 1), which subscribes it again.
    sb.zoho().set_channel_expiry(&id, in_hours(-1));
    let r = run(&s, &["doctor"]).code(1);
    let l = r.stdout.lines().find(|l| l.starts_with("FAIL zoho.watch ")).unwrap_or_else(|| panic!("{}", r.stdout));
    assert!(l.contains(&id) && l.contains("zmsync zoho watch"), "{l}");
    let r = run(&s, &["-q", "zoho", "watch", "--renew"]).code(1);
    assert!(r.stderr.contains(&id) && r.stderr.contains("sync --all"), "{}", r.stderr);
    let ch = live(&sb);
    assert!(ch.len() == 1 && ch[0].channel_id == id && days_left(&ch[0]) > 6.9, "subscribed again: {ch:?}");
    assert!(doctor_line(&s, "zoho.watch").starts_with("PASS"));
}

/// A renewal Zoho cannot answer fails with exit 1 (cron mails it).
#[test]
fn zoho_watch_renewal_that_fails_exits_1() {
    let sb = sandbox(20);
    let s = scratch(&sb, None);
    run(&s, &["init"]).ok();
    let r = run(&s, &["zoho", "watch", "--renew"]).code(1);
    assert!(r.stderr.contains("no Zoho channel to renew"), "{}", r.stderr);
    run(&s, &["zoho", "watch", "--url", "http://127.0.0.1:9"]).ok();
    let id = live(&sb)[0].channel_id.clone();
    sb.zoho().set_channel_expiry(&id, in_hours(5));
    // Zoho answers 500 to everything (quickly: no held connections).
    sb.zoho().set_fault_kinds(&[zmsync::sandbox::zoho::FaultKind::InternalError]);
    sb.zoho().set_fault_rate(1.0);
    let r = run(&s, &["zoho", "watch", "--renew"]);
    sb.zoho().set_fault_rate(0.0);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    // Without ZOHO_NOTIFY_TOKEN: a configuration error that says what to do.
    let r = Scratch {
        dir: tempfile::tempdir().unwrap(),
        env: s.env.iter().filter(|(k, _)| k != "ZOHO_NOTIFY_TOKEN").cloned().collect(),
    }
    .run(&["zoho", "watch", "--renew"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("ZOHO_NOTIFY_TOKEN is not set"), "{}", r.stderr);
}

/// End to end: subscribe the channel to a running receiver, edit a student in the fake Zoho's UI, the
/// notification reaches `zmsync serve`, and `sync --incremental` brings the change to Moodle.
fn edit_reaches_moodle_through_the_channel(db: Option<&str>) {
    let sb = sandbox(40);
    let s = scratch(&sb, db);
    let (id, num) = converged(&sb, &s);
    let mut kids = Children::default();
    let addr = serve(&s, &mut kids);
    run(&s, &["zoho", "watch", "--url", &format!("http://{addr}")]).ok();
    let before = sb.zoho().stats().notifications_sent;
    sb.zoho().update_record("BTEC_Students", &id, json!({"Academic_Email": NEW_EMAIL})).unwrap();
    assert!(sb.zoho().wait_for_deliveries(Duration::from_secs(30)));
    let stats = sb.zoho().stats();
    assert!(stats.notifications_sent > before, "the channel notified");
    assert_eq!(stats.delivery_failures, 0, "the receiver took it");
    // The receiver commits before it answers: the mark is there.
    let t = Instant::now();
    let want = NEW_EMAIL.to_lowercase();
    let r = run(&s, &["--json", "sync", "--incremental"]).ok();
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert!(v["dirty_taken"].as_u64().unwrap_or(0) >= 1, "the incremental run took the channel's mark: {v}");
    assert_eq!(moodle_email(&sb, &num), want, "synced to Moodle in {:?}", t.elapsed());
}

#[test]
fn zoho_watch_edit_reaches_moodle_through_the_channel() {
    edit_reaches_moodle_through_the_channel(None);
}

#[test]
fn zoho_watch_edit_reaches_moodle_through_the_channel_postgres() {
    let Some(schema) = PgSchema::create() else { return };
    edit_reaches_moodle_through_the_channel(Some(&schema.url));
}
