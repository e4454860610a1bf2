//! Parse the command line, load configuration, dispatch, map errors to exit codes — nothing else.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use zmsync::cli::Cli;
use zmsync::config::{self, Config};
use zmsync::exit::{exit_code_for, Exit};

fn main() -> ExitCode {
    // .env first: clap and the config read the environment it fills.
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    if let Err(e) = config::load_dotenv(&cwd) {
        eprintln!("error: {e}");
        return ExitCode::from(Exit::Usage.code());
    }
    let cli = Cli::parse();
    init_logging(cli.global.verbose, cli.global.quiet);
    let result = Config::load(cli.global.config.as_deref(), cli.global.database_url.as_deref(), &Config::process_env())
        .map_err(anyhow::Error::from)
        .and_then(|config| zmsync::commands::run(cli, config));
    match result {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code_for(&e).code())
        }
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("zmsync={level},{}", if verbose >= 3 { "trace" } else { "warn" })));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}
