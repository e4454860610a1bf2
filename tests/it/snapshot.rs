//! `zmsync snapshot` end to end: the real binary against the fake Moodle and the Zoho stand-in on loopback.

use zmsync::sandbox::moodle::{FakeMoodle, MoodleOptions};

use crate::clients::zoho_stub;
use crate::support::{files_below, Scratch};

fn scratch(stub: &zoho_stub::Stub, moodle: &FakeMoodle) -> Scratch {
    Scratch::new()
        .env("ZOHO_CLIENT_ID", "1000.CLIENT")
        .env("ZOHO_CLIENT_SECRET", "zcs-SECRET-VALUE-1111")
        .env("ZOHO_REFRESH_TOKEN", "good-refresh")
        .env("ZOHO_ACCOUNTS_URL", &stub.url)
        .env("ZOHO_API_DOMAIN", &stub.url)
        .env("MOODLE_URL", &moodle.url())
        .env("MOODLE_TOKEN", &moodle.token())
}

fn moodle_seed(users: i64) -> zmsync::sandbox::seed::MoodleSeed {
    let mut s = zmsync::sandbox::seed::MoodleSeed::default();
    for i in 0..users {
        s.users.push(zmsync::sandbox::seed::MoodleUser {
            id: 100 + i,
            username: format!("stu-{i}"),
            firstname: "F".into(),
            lastname: "L".into(),
            email: format!("s{i}@x.edu"),
            idnumber: format!("STU-{i}"),
            auth: "manual".into(),
            suspended: false,
            phone1: String::new(),
        });
    }
    s
}

#[test]
fn snapshot_stores_both_sides_and_the_empty_side_guard_refuses() {
    let stub = zoho_stub::start(2_100, 0);
    let moodle = FakeMoodle::start(moodle_seed(25), MoodleOptions::default()).unwrap();
    let s = scratch(&stub, &moodle);
    let out = s.run(&["--json", "snapshot", "--module", "BTEC_Students"]).ok().stdout;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let kinds = v["kinds"].as_array().unwrap();
    let get = |k: &str| kinds.iter().find(|x| x["kind"] == k).unwrap().clone();
    assert_eq!(get("student")["records"], 2_100, "read past 2,000 with page_token");
    assert_eq!(get("moodle_user")["records"], 25);
    assert_eq!(get("moodle_user")["stored"], 25);
    assert_eq!(v["zoho"]["token_refreshes"], 1);

    // A second process reuses the cached token.
    let out = s.run(&["--json", "snapshot", "--module", "student"]).ok().stdout;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["zoho"]["token_refreshes"], 0, "{v}");

    // Moodle suddenly answers nothing: refused, exit 4, nothing written.
    moodle.set_zero_records(true);
    let r = s.run(&["snapshot", "--module", "student"]).code(4);
    assert!(r.stderr.contains("moodle_user") && r.stderr.contains("returned no records"), "{}", r.stderr);
    moodle.set_zero_records(false);
    let out = s.run(&["--json", "snapshot", "--module", "student"]).ok().stdout;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["kinds"].as_array().unwrap().iter().find(|x| x["kind"] == "moodle_user").unwrap()["stored"], 25);
}

#[test]
fn snapshot_names_unknown_modules_and_missing_credentials() {
    let s = Scratch::new();
    let r = s.run(&["snapshot", "--module", "BTEC_Nope"]).code(2);
    assert!(r.stderr.contains("BTEC_Students") && r.stderr.contains("student"), "{}", r.stderr);
    let r = s.run(&["snapshot", "--module", "student"]).code(2);
    assert!(r.stderr.contains("ZOHO_CLIENT_ID") || r.stderr.contains("MOODLE_URL"), "{}", r.stderr);
}

#[test]
fn snapshot_never_leaks_secrets_at_trace_level() {
    let stub = zoho_stub::start(300, 0);
    let moodle = FakeMoodle::start(moodle_seed(5), MoodleOptions::default()).unwrap();
    let s = scratch(&stub, &moodle).env("RUST_LOG", "trace");
    let r = s.run(&["-vvv", "snapshot", "--module", "student"]).ok();
    let text = format!("{}{}", r.stdout, r.stderr);
    let access = stub.token.lock().unwrap().clone();
    for secret in ["zcs-SECRET-VALUE-1111", "good-refresh", moodle.token().as_str()] {
        assert!(!text.contains(secret), "{secret} leaked into output");
        for f in files_below(s.path()) {
            let bytes = std::fs::read(&f).unwrap();
            assert!(!String::from_utf8_lossy(&bytes).contains(secret), "{secret} leaked into {}", f.display());
        }
    }
    // The access token is cached in the store by design, but never printed.
    assert!(!text.contains(&access), "the access token leaked into output");
}
