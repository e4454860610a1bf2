//! `zmsync demo`: the sandbox in-process, an SQLite store, a first full sync, then a no-change run.

use std::collections::HashMap;
use std::io::IsTerminal;

use anyhow::{Context as _, Result};

use super::Context;
use crate::cli::DemoArgs;
use crate::config::Config;
use crate::error::Exit;
use crate::run::{self, RunOptions, Scope};
use crate::sandbox::generator::{GenOptions, State};
use crate::sandbox::{Sandbox, SandboxOptions};
use crate::settings::Settings;

pub fn run(ctx: &Context, args: DemoArgs) -> Result<Exit> {
    let dir = match args.dir {
        Some(d) => d,
        None => tempfile_dir()?,
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    eprintln!("starting the sandbox: a generated college of {} students, Moodle empty…", args.students);
    let sandbox = Sandbox::start(SandboxOptions {
        generate: GenOptions { students: args.students, state: State::Empty, ..GenOptions::default() },
        ..SandboxOptions::default()
    })?;
    eprintln!("{}", sandbox.summary());
    let url = format!("sqlite://{}", dir.join("zmsync.db").display());
    let env: HashMap<String, String> = sandbox.env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    let config = Config::load(None, Some(&url), &env.into_iter().collect())?;
    let store = crate::store::open(&url)?;
    let settings = Settings::from_rows(&store.settings_map()?)?;
    let opts = RunOptions {
        scope: Scope::All,
        dry_run: false,
        plan_out: None,
        allow_mass_change: false,
        report_dir: Some(dir.join("reports")),
        progress: std::io::stderr().is_terminal(),
        apply: Default::default(),
    };
    let mut worst = Exit::Done;
    for (i, what) in ["first full sync", "second run (nothing changed)"].iter().enumerate() {
        eprintln!("\n== {} ==", what);
        let report = run::run(store.as_ref(), &settings, &config, &opts)?;
        if ctx.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print!("{}", report.text());
        }
        if Exit::of_run(&report) != Exit::Done {
            worst = Exit::of_run(&report);
        }
        if i == 1 && report.applied > 0 {
            eprintln!("note: the second run still wrote {} changes", report.applied);
        }
    }
    println!("\nstore: {}\nreports: {}", url, dir.join("reports").display());
    Ok(worst)
}

/// A fresh directory under the system temp dir, kept after the demo so the reports can be read.
fn tempfile_dir() -> Result<std::path::PathBuf> {
    let base = std::env::temp_dir().join(format!("zmsync-demo-{}", std::process::id()));
    std::fs::create_dir_all(&base)?;
    Ok(base)
}
