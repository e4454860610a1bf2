//! The command line: init, settings, db status, configuration errors and secret hygiene.

use crate::support::{files_below, Scratch};

#[test]
fn help_lists_only_working_commands() {
    let s = Scratch::new();
    let out = s.run(&["--help"]).ok().stdout;
    for cmd in ["init", "settings", "db", "completions", "man"] {
        assert!(out.contains(cmd), "{cmd} missing from --help:\n{out}");
    }
    let v = s.run(&["--version"]).ok().stdout;
    assert!(v.starts_with("zmsync "), "{v}");
}

#[test]
fn init_writes_defaults_once_and_keeps_changes() {
    let s = Scratch::new();
    let out = s.run(&["init"]).ok().stdout;
    let n = zmsync::settings::REGISTRY.len();
    assert!(out.contains(&format!("wrote defaults for {n} ")), "{out}");
    s.run(&["settings", "set", "retry.policy", r#"{"max_retries":7,"backoff_factor":2,"initial_delay_seconds":1}"#])
        .ok();
    let out = s.run(&["init"]).ok().stdout;
    assert!(out.contains("none changed"), "{out}");
    let got = s.run(&["settings", "get", "retry.policy"]).ok().stdout;
    assert!(got.contains("\"max_retries\":7"), "{got}");
    let list = s.run(&["--json", "settings", "list"]).ok().stdout;
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    let retry = v.as_array().unwrap().iter().find(|i| i["key"] == "retry.policy").unwrap();
    assert!(retry["updated_by"].as_str().unwrap().starts_with("cli:"), "{retry}");
    assert!(retry["updated_at"].is_string());
}

#[test]
fn bad_settings_exit_2_and_write_nothing() {
    let s = Scratch::new();
    s.run(&["init"]).ok();
    let before = s.run(&["--json", "settings", "list"]).ok().stdout;
    let r = s.run(&["settings", "set", "retry.polcy", "{}"]).code(2);
    assert!(r.stderr.contains("unknown setting `retry.polcy`") && r.stderr.contains("retry.policy"), "{}", r.stderr);
    let r = s.run(&["settings", "set", "retry.policy", "{max_retries: 3"]).code(2);
    assert!(r.stderr.contains("not valid JSON"), "{}", r.stderr);
    let r = s
        .run(&["settings", "set", "retry.policy", r#"{"max_retries":-1,"backoff_factor":2,"initial_delay_seconds":1}"#])
        .code(2);
    assert!(r.stderr.contains("expected:") && r.stderr.contains("current:  {\"max_retries\":3"), "{}", r.stderr);
    let r = s.run(&["settings", "get", "nope"]).code(2);
    assert!(r.stderr.contains("valid keys"), "{}", r.stderr);
    assert_eq!(s.run(&["--json", "settings", "list"]).ok().stdout, before);
}

#[test]
fn db_status_names_dialect_and_version() {
    let s = Scratch::new();
    let out = s.run(&["--json", "db", "status"]).ok().stdout;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["dialect"], "sqlite");
    assert_eq!(v["schema_version"], v["binary_schema_version"]);
    assert!(v["location"].as_str().unwrap().ends_with("zmsync.db"));
}

#[test]
fn database_url_from_env_and_flag() {
    let s = Scratch::new();
    let env_db = s.path().join("env.db");
    let s = s.env("DATABASE_URL", &format!("sqlite://{}", env_db.display()));
    s.run(&["init"]).ok();
    assert!(env_db.exists());
    let flag_db = s.path().join("flag.db");
    s.run(&["--database-url", &format!("sqlite://{}", flag_db.display()), "init"]).ok();
    assert!(flag_db.exists());
}

#[test]
fn unwritable_sqlite_path_exits_2_and_creates_nothing() {
    let s = Scratch::new();
    let r = s.run(&["--database-url", "sqlite:///nonexistent-dir-zmsync/sub/z.db", "init"]).code(2);
    assert!(r.stderr.contains("does not exist") && r.stderr.contains("hint:"), "{}", r.stderr);
    // A path whose parent is a file.
    std::fs::write(s.path().join("afile"), "x").unwrap();
    let url = format!("sqlite://{}/afile/z.db", s.path().display());
    let r = s.run(&["--database-url", &url, "init"]).code(2);
    assert!(r.stderr.contains("cannot open the SQLite database"), "{}", r.stderr);
    assert!(!std::path::Path::new("/nonexistent-dir-zmsync").exists());
}

#[test]
fn unreachable_postgres_exits_1_without_the_password() {
    let s = Scratch::new();
    let r = s.run(&["--database-url", "postgres://postgres:pw-not-shown@127.0.0.1:1/test", "db", "status"]).code(1);
    assert!(r.stderr.contains("cannot connect to PostgreSQL at postgres@127.0.0.1:1/test"), "{}", r.stderr);
    assert!(!r.stderr.contains("pw-not-shown"), "{}", r.stderr);
}

#[test]
fn unknown_database_scheme_exits_2() {
    let s = Scratch::new();
    let r = s.run(&["--database-url", "mysql://root@localhost/x", "init"]).code(2);
    assert!(r.stderr.contains("sqlite://") && r.stderr.contains("postgres://"), "{}", r.stderr);
}

#[test]
fn malformed_dotenv_line_exits_2_and_names_the_line() {
    let s = Scratch::new();
    std::fs::write(s.path().join(".env"), "ZOHO_REGION=eu\nTHIS IS NOT=an assignment\nMOODLE_TOKEN=abc\n").unwrap();
    let r = s.run(&["init"]).code(2);
    assert!(r.stderr.contains(".env:2"), "{}", r.stderr);
    assert!(!s.path().join("zmsync.db").exists(), "nothing may be written");
}

#[test]
fn config_file_typo_names_file_key_and_choices() {
    let s = Scratch::new();
    std::fs::write(s.path().join("zmsync.toml"), "[zoho]\nregion = \"eu\"\napi_domian = \"https://x\"\n").unwrap();
    let r = s.run(&["--config", "zmsync.toml", "init"]).code(2);
    assert!(
        r.stderr.contains("zmsync.toml") && r.stderr.contains("api_domian") && r.stderr.contains("api_domain"),
        "{}",
        r.stderr
    );
    std::fs::write(s.path().join("bad-region.toml"), "[zoho]\nregion = \"mars\"\n").unwrap();
    let r = s.run(&["--config", "bad-region.toml", "init"]).code(2);
    assert!(r.stderr.contains("mars") && r.stderr.contains("com.au"), "{}", r.stderr);
    assert!(!s.path().join("zmsync.db").exists());
}

#[test]
fn dotenv_fills_but_does_not_override_the_environment() {
    let s = Scratch::new();
    let from_file = s.path().join("file.db");
    std::fs::write(s.path().join(".env"), format!("DATABASE_URL=sqlite://{}\n", from_file.display())).unwrap();
    s.run(&["init"]).ok();
    assert!(from_file.exists());
    let from_env = s.path().join("env.db");
    let s = s.env("DATABASE_URL", &format!("sqlite://{}", from_env.display()));
    s.run(&["init"]).ok();
    assert!(from_env.exists());
}

/// Known secret values at trace level: none may appear in stdout, stderr, the database or any file written.
#[test]
fn secrets_never_leak() {
    let secrets = [
        ("ZOHO_CLIENT_SECRET", "zcs-SECRET-VALUE-1111"),
        ("ZOHO_REFRESH_TOKEN", "zrt-SECRET-VALUE-2222"),
        ("MOODLE_TOKEN", "mt-SECRET-VALUE-3333"),
        ("ZOHO_WEBHOOK_HMAC_SECRET", "zwh-SECRET-VALUE-4444"),
        ("MOODLE_WEBHOOK_HMAC_SECRET", "mwh-SECRET-VALUE-5555"),
    ];
    let mut s = Scratch::new().env("RUST_LOG", "trace").env("ZOHO_CLIENT_ID", "1000.PUBLICID");
    for (k, v) in secrets {
        s = s.env(k, v);
    }
    let mut outputs = String::new();
    for args in [&["-vvv", "init"][..], &["-vvv", "settings", "list"], &["-vvv", "--json", "db", "status"]] {
        let r = s.run(args).ok();
        outputs.push_str(&r.stdout);
        outputs.push_str(&r.stderr);
    }
    assert!(!outputs.is_empty());
    for (_, v) in secrets {
        assert!(!outputs.contains(v), "secret {v} leaked into output");
    }
    let files = files_below(s.path());
    assert!(files.iter().any(|f| f.ends_with("zmsync.db")));
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for (_, v) in secrets {
            assert!(!text.contains(v), "secret {v} leaked into {}", f.display());
        }
    }
}

#[test]
fn completions_and_man_page_render() {
    let s = Scratch::new();
    let bash = s.run(&["completions", "bash"]).ok().stdout;
    assert!(bash.contains("_zmsync()") && bash.contains("settings"), "bash completion looks wrong");
    let zsh = s.run(&["completions", "zsh"]).ok().stdout;
    assert!(zsh.starts_with("#compdef zmsync"), "{}", &zsh[..zsh.len().min(80)]);
    let fish = s.run(&["completions", "fish"]).ok().stdout;
    assert!(fish.contains("complete -c zmsync"), "fish completion looks wrong");
    let man = s.run(&["man"]).ok().stdout;
    assert!(man.contains(".TH zmsync") && man.contains("settings"), "man page looks wrong");
    let r = s.run(&["completions", "tcsh"]).code(2);
    assert!(r.stderr.contains("bash") && r.stderr.contains("zsh"), "{}", r.stderr);
    assert!(!s.path().join("zmsync.db").exists(), "rendering help opens no store");
}

/// README's first command, `zmsync demo`: the sandbox in-process, a first full sync into the empty Moodle that
/// applies everything it plans, then a run that plans nothing; the store and both reports are kept in --dir.
#[test]
fn demo_syncs_then_finds_nothing_to_change() {
    let s = Scratch::new();
    let dir = s.path().join("demo");
    let r = s.run(&["demo", "--students", "120", "--dir", dir.to_str().unwrap()]).ok();
    let runs: Vec<&str> = r.stdout.split("ops planned ").skip(1).collect();
    assert_eq!(runs.len(), 2, "two run reports expected:\n{}", r.stdout);
    let planned = |text: &str| -> u64 { text.split(',').next().and_then(|n| n.trim().parse().ok()).unwrap_or(0) };
    assert!(planned(runs[0]) > 0, "the first run plans the college:\n{}", r.stdout);
    assert!(runs[0].contains("rejected 0, failed 0"), "{}", r.stdout);
    assert_eq!(planned(runs[1]), 0, "the second run plans nothing:\n{}", r.stdout);
    assert!(dir.join("zmsync.db").is_file());
    for n in 1..=2 {
        assert!(dir.join("reports").join(format!("run-{n}.csv")).is_file(), "report of run {n}");
    }
}
