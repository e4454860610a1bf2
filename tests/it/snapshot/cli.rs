//! `zmsync snapshot` end to end: the real binary against both fakes on loopback.

use zmsync::sandbox::moodle::{FakeMoodle, MoodleOptions};
use zmsync::sandbox::zoho::{FakeZoho, ZohoOptions};
use zmsync::store;

use super::college;
use crate::fakes::scratch;
use crate::support::{files_below, Scratch};

fn fakes(students: usize) -> (FakeZoho, FakeMoodle) {
    let c = college(students);
    (
        FakeZoho::start(c.zoho, ZohoOptions::default()).unwrap(),
        FakeMoodle::start(c.moodle, MoodleOptions::default()).unwrap(),
    )
}

fn json(s: &Scratch, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&s.run(args).ok().stdout).unwrap()
}

fn kind_of<'a>(v: &'a serde_json::Value, k: &str) -> &'a serde_json::Value {
    v["kinds"].as_array().unwrap().iter().find(|x| x["kind"] == k).unwrap()
}

#[test]
fn snapshot_stores_both_sides_and_the_empty_side_guard_refuses() {
    let (zoho, moodle) = fakes(150);
    let s = scratch(&zoho, &moodle);
    let v = json(&s, &["--json", "snapshot", "--module", "BTEC_Students"]);
    assert_eq!(kind_of(&v, "student")["stored"], zoho.records("BTEC_Students").len());
    let users = kind_of(&v, "moodle_user")["stored"].as_u64().unwrap();
    assert!(users > 100, "{v}");
    assert_eq!(v["zoho"]["token_refreshes"], 1);

    // A second process reuses the cached token.
    let v = json(&s, &["--json", "snapshot", "--module", "student"]);
    assert_eq!(v["zoho"]["token_refreshes"], 0, "{v}");

    // Moodle suddenly answers nothing: refused, exit 4, nothing written.
    moodle.set_zero_records(true);
    let r = s.run(&["snapshot", "--module", "student"]).code(4);
    assert!(r.stderr.contains("moodle_user") && r.stderr.contains("returned no records"), "{}", r.stderr);
    moodle.set_zero_records(false);
    // Zoho's module reads empty (a lost permission looks like this): refused too.
    zoho.set_zero_records_for("BTEC_Students", true);
    let r = s.run(&["snapshot", "--module", "student"]).code(4);
    assert!(r.stderr.contains("BTEC_Students") && r.stderr.contains("returned no records"), "{}", r.stderr);
    zoho.set_zero_records_for("BTEC_Students", false);
    let v = json(&s, &["--json", "snapshot", "--module", "student"]);
    assert_eq!(kind_of(&v, "moodle_user")["stored"], users);
}

#[test]
fn snapshot_names_unknown_modules_and_missing_credentials() {
    let s = Scratch::new();
    let r = s.run(&["snapshot", "--module", "BTEC_Nope"]).code(2);
    assert!(r.stderr.contains("BTEC_Students") && r.stderr.contains("student"), "{}", r.stderr);
    let r = s.run(&["snapshot", "--module", "student"]).code(2);
    assert!(r.stderr.contains("ZOHO_CLIENT_ID") || r.stderr.contains("MOODLE_URL"), "{}", r.stderr);
}

/// A whole `zmsync snapshot` at trace level: no credential and no access token in stdout, stderr or any file.
/// The access token is cached in the store's `zoho_tokens` by design (it is shared between runs), so the
/// database is the one file allowed to hold it; nothing else may.
#[test]
fn snapshot_never_leaks_secrets_at_trace_level() {
    let (zoho, moodle) = fakes(40);
    let s = scratch(&zoho, &moodle).env("RUST_LOG", "trace");
    // Twice, with the token expired in between, so a refresh after a 401 is logged too.
    let first = s.run(&["-vvv", "snapshot"]).ok();
    let cached = store::open(&s.db_url()).unwrap().zoho_token(&zoho.client_id()).unwrap().expect("token cached");
    zoho.expire_all_tokens();
    let second = s.run(&["-vvv", "snapshot"]).ok();
    let renewed = store::open(&s.db_url()).unwrap().zoho_token(&zoho.client_id()).unwrap().unwrap();
    assert_ne!(cached.access_token.expose(), renewed.access_token.expose(), "the second run refreshed");
    let text = format!("{}{}{}{}", first.stdout, first.stderr, second.stdout, second.stderr);
    assert!(text.contains("TRACE") || text.contains("trace"), "trace logging was on");
    let secrets = [
        zoho.client_secret().expose().to_string(),
        zoho.refresh_token().expose().to_string(),
        moodle.token(),
        cached.access_token.expose().to_string(),
        renewed.access_token.expose().to_string(),
    ];
    for (i, secret) in secrets.iter().enumerate() {
        assert!(!text.contains(secret.as_str()), "secret #{i} leaked into the output");
        for f in files_below(s.path()) {
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            if i >= 3 && name.starts_with("zmsync.db") {
                continue;
            }
            let bytes = std::fs::read(&f).unwrap();
            assert!(!String::from_utf8_lossy(&bytes).contains(secret.as_str()), "secret #{i} leaked into {name}");
        }
    }
}
