//! `zmsync doctor` against the sandbox: passes on a healthy set-up, and each broken part gives one precise
//! FAIL line (and a non-zero exit). Secret values never appear in the output.

use zmsync::sandbox::generator::GenOptions;
use zmsync::sandbox::{Sandbox, SandboxOptions};

use crate::support::{files_below, Run, Scratch};

/// A small college: doctor reads metadata, not records, so size does not matter.
pub fn small_sandbox() -> Sandbox {
    Sandbox::start(SandboxOptions {
        generate: GenOptions { students: 50, ..GenOptions::default() },
        ..SandboxOptions::default()
    })
    .expect("sandbox")
}

/// A scratch directory with the sandbox's seven variables and an initialised SQLite store.
fn ready(sb: &Sandbox) -> Scratch {
    let mut s = Scratch::new();
    for (k, v) in sb.env() {
        s = s.env(k, &v);
    }
    let url = s.db_url();
    let s = s.env("DATABASE_URL", &url);
    s.run(&["init"]).ok();
    s
}

fn secrets(sb: &Sandbox) -> Vec<String> {
    sb.env()
        .into_iter()
        .filter(|(k, _)| matches!(*k, "ZOHO_CLIENT_SECRET" | "ZOHO_REFRESH_TOKEN" | "MOODLE_TOKEN"))
        .map(|(_, v)| v)
        .collect()
}

/// Runs doctor, checks that no secret value leaked, and returns the run.
fn doctor(s: &Scratch, secret_values: &[String]) -> Run {
    let r = s.run(&["doctor"]);
    let text = format!("{}{}", r.stdout, r.stderr);
    for v in secret_values {
        assert!(!text.contains(v.as_str()), "a secret value leaked into doctor's output:\n{text}");
        // Not even a prefix (the first 8 characters).
        assert!(!text.contains(&v[..8]), "a secret's prefix leaked into doctor's output:\n{text}");
    }
    r
}

/// The one line that starts with `prefix` (e.g. `FAIL zoho.token`).
#[track_caller]
fn line<'a>(out: &'a str, prefix: &str) -> &'a str {
    let found: Vec<&str> = out.lines().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(found.len(), 1, "expected one line starting with `{prefix}` in:\n{out}");
    found[0]
}

#[test]
fn doctor_passes_against_the_sandbox() {
    let sb = small_sandbox();
    let s = ready(&sb);
    let r = doctor(&s, &secrets(&sb)).ok();
    let out = &r.stdout;
    assert!(!out.contains("FAIL"), "{out}");
    for prefix in [
        "PASS config ",
        "PASS secret.ZOHO_CLIENT_SECRET",
        "PASS secret.ZOHO_REFRESH_TOKEN",
        "PASS secret.MOODLE_TOKEN",
        "PASS store ",
        "PASS settings ",
        "PASS zoho.token ",
        "PASS zoho.module.BTEC_Students ",
        "PASS zoho.module.BTEC_Grades ",
        "PASS moodle.site ",
        "PASS moodle.functions ",
        "PASS moodle.plugin ",
        "PASS clock.zoho ",
        "PASS clock.moodle ",
    ] {
        line(out, prefix);
    }
    assert!(line(out, "PASS secret.MOODLE_TOKEN").ends_with("set (hidden)"));
    let v = zmsync::store::LATEST_VERSION;
    assert!(line(out, "PASS store ").contains(&format!("schema {v}/{v}")), "{out}");
    assert!(line(out, "PASS moodle.plugin").contains("contract version 1"), "{out}");
    // The webhook secrets are not part of the sandbox's seven variables: a warning, not a failure.
    assert!(line(out, "WARN secret.ZOHO_WEBHOOK_HMAC_SECRET").contains("503"), "{out}");
    // A fresh token was minted and cached in the store like any run's.
    assert_eq!(sb.zoho().stats().token_refreshes, 1);
    let j = s.run(&["--json", "doctor"]).ok();
    let v: serde_json::Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(v["ok"], true);
    let checks = v["checks"].as_array().unwrap();
    assert!(checks.iter().any(|c| c["name"] == "moodle.functions" && c["status"] == "pass"), "{v}");
    assert_eq!(sb.zoho().stats().token_refreshes, 2, "doctor always proves the refresh token works");
    // Nothing secret was written anywhere in the scratch directory except the store's cached access token.
    for f in files_below(s.path()) {
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap()).into_owned();
        for v in secrets(&sb) {
            assert!(!text.contains(&v), "a secret reached {}", f.display());
        }
    }
}

#[test]
fn a_wrong_moodle_token_fails_the_site_check_and_skips_its_dependants() {
    let sb = small_sandbox();
    let s = ready(&sb).env("MOODLE_TOKEN", "0123456789abcdef0123456789abcdef");
    let mut hidden = secrets(&sb);
    hidden.push("0123456789abcdef0123456789abcdef".into());
    let r = doctor(&s, &hidden).code(1);
    let l = line(&r.stdout, "FAIL moodle.site");
    assert!(l.contains("invalidtoken") && l.contains("set MOODLE_TOKEN"), "{l}");
    assert!(line(&r.stdout, "SKIP moodle.functions").contains("no site info"));
    assert!(line(&r.stdout, "SKIP moodle.plugin").contains("no site info"));
    line(&r.stdout, "PASS zoho.token");
}

#[test]
fn a_missing_web_service_function_is_named() {
    let sb = small_sandbox();
    let s = ready(&sb);
    sb.moodle().update_options(|o| o.missing_functions = vec!["core_user_create_users".into()]);
    let r = doctor(&s, &secrets(&sb)).code(1);
    let l = line(&r.stdout, "FAIL moodle.functions");
    assert!(l.contains("does not allow: core_user_create_users →"), "{l}");
    assert!(l.contains("add them to the token's service"), "{l}");
    line(&r.stdout, "PASS moodle.site");
    line(&r.stdout, "PASS moodle.plugin");
}

#[test]
fn a_wrong_zoho_refresh_token_fails_the_token_check_and_skips_the_modules() {
    let sb = small_sandbox();
    let wrong = "not-the-sandbox-refresh-token";
    let s = ready(&sb).env("ZOHO_REFRESH_TOKEN", wrong);
    let mut hidden = secrets(&sb);
    hidden.push(wrong.into());
    let r = doctor(&s, &hidden).code(1);
    let l = line(&r.stdout, "FAIL zoho.token");
    assert!(l.contains("invalid_code from 127.0.0.1: the refresh token is wrong or revoked"), "{l}");
    assert!(l.contains("→ make a new one in the API console (Self Client) and set ZOHO_REFRESH_TOKEN"), "{l}");
    assert!(line(&r.stdout, "SKIP zoho.module.BTEC_Students").contains("no Zoho token"));
    line(&r.stdout, "PASS moodle.functions");
}

#[test]
fn an_unknown_module_or_field_names_the_setting_to_fix() {
    let sb = small_sandbox();
    let s = ready(&sb);
    s.run(&[
        "settings",
        "set",
        "mapping.fields",
        r#"{"student":{"module":"BTEC_Pupils"},"teacher":{"email":"Work_Email"}}"#,
    ])
    .ok();
    let r = doctor(&s, &secrets(&sb)).code(1);
    let l = line(&r.stdout, "FAIL zoho.module.BTEC_Pupils");
    assert!(l.contains("module BTEC_Pupils (mapping.fields.student.module) does not exist in Zoho"), "{l}");
    assert!(l.contains("BTEC_Students") && l.contains("zmsync settings set mapping.fields"), "{l}");
    let l = line(&r.stdout, "FAIL zoho.module.BTEC_Teachers");
    assert!(l.contains("no field Work_Email (mapping.fields.teacher.email)"), "{l}");
    line(&r.stdout, "PASS zoho.module.BTEC_Classes");
    // A module switched off is not checked.
    s.run(&["settings", "set", "mapping.fields", r#"{"teacher":{"email":"Work_Email"}}"#]).ok();
    let enabled = r#"{"BTEC_Students":true,"BTEC_Teachers":false,"BTEC_Registrations":true,"BTEC_Classes":true,"BTEC_Enrollments":true,"BTEC_Payments":true,"BTEC_Grades":true,"BTEC_Units":true,"BTEC_Attendance":false}"#;
    s.run(&["settings", "set", "modules.enabled", enabled]).ok();
    let r = doctor(&s, &secrets(&sb)).ok();
    assert!(!r.stdout.contains("BTEC_Teachers"), "{}", r.stdout);
}

#[test]
fn field_metadata_204_is_a_warning() {
    let sb = small_sandbox();
    let s = ready(&sb);
    sb.zoho().configure(|o| o.metadata_204_module = Some("BTEC_Units".into()));
    let r = doctor(&s, &secrets(&sb)).ok();
    assert!(line(&r.stdout, "WARN zoho.module.BTEC_Units").contains("no field metadata (204)"), "{}", r.stdout);
}

#[test]
fn an_unreachable_store_fails_precisely_and_a_missing_one_is_not_created() {
    let sb = small_sandbox();
    let s = ready(&sb).env("DATABASE_URL", "postgres://zmsync:pg-PASSWORD-42@127.0.0.1:1/zmsync");
    let mut hidden = secrets(&sb);
    hidden.push("pg-PASSWORD-42".into());
    let r = doctor(&s, &hidden).code(1);
    let l = line(&r.stdout, "FAIL store");
    assert!(l.contains("cannot connect to PostgreSQL at") && l.contains("127.0.0.1:1"), "{l}");
    assert!(l.contains("→ check that PostgreSQL is running"), "{l}");
    assert!(line(&r.stdout, "SKIP settings").contains("unreachable"));
    // Without a store the Zoho and Moodle checks still run (with the default settings).
    line(&r.stdout, "PASS zoho.token");
    line(&r.stdout, "PASS moodle.plugin");

    let missing = s.path().join("nowhere.db");
    let s = s.env("DATABASE_URL", &format!("sqlite://{}", missing.display()));
    let r = doctor(&s, &secrets(&sb)).code(1);
    assert!(line(&r.stdout, "FAIL store").contains("run `zmsync init`"), "{}", r.stdout);
    assert!(!missing.exists(), "doctor must not create a store");
}

#[test]
fn missing_credentials_fail_their_own_lines() {
    let s = Scratch::new();
    let url = s.db_url();
    let s = s.env("DATABASE_URL", &url);
    s.run(&["init"]).ok();
    let r = s.run(&["doctor"]).code(1);
    line(&r.stdout, "FAIL config.ZOHO_CLIENT_ID");
    line(&r.stdout, "FAIL secret.ZOHO_REFRESH_TOKEN");
    line(&r.stdout, "FAIL secret.MOODLE_TOKEN");
    line(&r.stdout, "SKIP zoho.token");
    line(&r.stdout, "SKIP moodle.site");
}
