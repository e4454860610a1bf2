//! One file per command. Each takes the parsed arguments and a [`Context`] and returns an exit code.

mod completions;
mod db;
mod demo;
mod diff;
mod doctor;
mod events;
mod history;
mod init;
mod plan;
mod report;
mod revert;
mod runs;
mod sandbox;
mod serve;
mod settings;
mod snapshot;
mod sync;
mod zoho;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::error::Exit;
use crate::store::{self, Store};

/// What every command gets: the configuration and the output mode.
pub struct Context {
    pub config: Config,
    pub json: bool,
    /// `-q`: a command that succeeded prints nothing (cron mails any output); failures still print.
    pub quiet: bool,
}

impl Context {
    /// Opens (and migrates) the configured store.
    pub fn store(&self) -> Result<Box<dyn Store>> {
        Ok(store::open(&self.config.database_url)?)
    }
}

pub fn run(cli: Cli, config: Config) -> Result<Exit> {
    let ctx = Context { config, json: cli.global.json, quiet: cli.global.quiet };
    match cli.command {
        Command::Init => init::run(&ctx),
        Command::Doctor => doctor::run(&ctx),
        Command::Settings(cmd) => settings::run(&ctx, cmd),
        Command::Db(cmd) => db::run(&ctx, cmd),
        Command::Plan(args) => plan::run(&ctx, args),
        Command::Diff(args) => diff::run(&ctx, args),
        Command::Snapshot { module } => snapshot::run(&ctx, module),
        Command::Completions { shell } => completions::completions(shell),
        Command::Man => completions::man(),
        Command::Sandbox(args) => sandbox::run(args),
        Command::Sync(args) => sync::sync(&ctx, args),
        Command::Apply(args) => sync::apply(&ctx, args),
        Command::Demo(args) => demo::run(&ctx, args),
        Command::Serve(args) => serve::run(&ctx, args),
        Command::Events(cmd) => events::run(&ctx, cmd),
        Command::Runs(args) => runs::run(&ctx, args),
        Command::History(args) => history::run(&ctx, args),
        Command::Report(args) => report::run(&ctx, args),
        Command::Revert(args) => revert::run(&ctx, args),
        Command::Zoho(cmd) => zoho::run(&ctx, cmd),
    }
}

/// Who made a change, for `updated_by` columns: the login name and host.
pub fn actor() -> String {
    let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    if host.is_empty() {
        format!("cli:{user}")
    } else {
        format!("cli:{user}@{host}")
    }
}

/// Prints a JSON value on stdout, pretty.
pub fn print_json(value: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(value).expect("JSON values serialise"));
}
