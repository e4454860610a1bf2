//! Shared test helpers: run the binary in a scratch directory, and PostgreSQL schemas per test.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

pub const PG_ENV: &str = "ZMSYNC_TEST_DATABASE_URL";

/// A scratch directory with the binary ready to run in it, with a clean environment.
pub struct Scratch {
    pub dir: tempfile::TempDir,
    pub env: Vec<(String, String)>,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch { dir: tempfile::tempdir().expect("tempdir"), env: Vec::new() }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn db_url(&self) -> String {
        format!("sqlite://{}", self.path().join("zmsync.db").display())
    }

    pub fn env(mut self, key: &str, value: &str) -> Scratch {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_zmsync"));
        c.current_dir(self.path()).args(args);
        for var in [
            "DATABASE_URL",
            "RUST_LOG",
            "ZOHO_REGION",
            "MOODLE_URL",
            "MOODLE_TOKEN",
            "ZOHO_CLIENT_ID",
            "ZOHO_CLIENT_SECRET",
            "ZOHO_REFRESH_TOKEN",
            "ZOHO_ACCOUNTS_URL",
            "ZOHO_API_DOMAIN",
            "ZOHO_WEBHOOK_HMAC_SECRET",
            "MOODLE_WEBHOOK_HMAC_SECRET",
            "ZOHO_NOTIFY_TOKEN",
        ] {
            c.env_remove(var);
        }
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd(args).output().expect("run zmsync"))
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    #[track_caller]
    pub fn code(self, code: i32) -> Run {
        assert_eq!(self.code, code, "expected exit {code}\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }
}

/// Every file below `dir`, recursively.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A PostgreSQL schema of its own for one test, dropped at the end. `None` when no test database is set.
pub struct PgSchema {
    base: String,
    pub name: String,
    pub url: String,
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

impl PgSchema {
    pub fn create() -> Option<PgSchema> {
        let base = std::env::var(PG_ENV).ok().filter(|s| !s.is_empty())?;
        let name = format!("zt_{}_{}_{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst), rand_suffix());
        let mut client =
            postgres::Client::connect(&base, postgres::NoTls).expect("connect to ZMSYNC_TEST_DATABASE_URL");
        client.batch_execute(&format!("CREATE SCHEMA {name}")).expect("create schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-csearch_path%3D{name}");
        Some(PgSchema { base, name, url })
    }

    pub fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connect")
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut c) = postgres::Client::connect(&self.base, postgres::NoTls) {
            let _ = c.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

fn rand_suffix() -> u32 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0) % 100_000
}

/// Whether PostgreSQL tests must run (CI) even though no URL is set.
pub fn pg_required() -> bool {
    std::env::var("CI").map(|v| v == "true" || v == "1").unwrap_or(false)
}
