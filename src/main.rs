//! Parse the command line, tune the allocator for a sync, load configuration, dispatch, map errors to exit
//! codes — nothing else.

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use zmsync::cli::{Cli, Command};
use zmsync::config::{self, Config};
use zmsync::error::{CommandError, Exit};

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    // .env first: clap and the config read the environment it fills.
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    if let Err(e) = config::load_dotenv(&cwd) {
        eprint!("{}", CommandError::from(anyhow::Error::from(e)).render());
        return ExitCode::from(Exit::Usage.code());
    }
    let cli = Cli::parse();
    // Before a sync starts its threads (planning's rayon pool, the fetch runtime): they share one heap arena.
    if matches!(cli.command, Command::Sync(_) | Command::Apply(_) | Command::Demo(_)) {
        zmsync::process::one_heap_arena();
    }
    init_logging(cli.global.verbose, cli.global.quiet);
    let result = Config::load(cli.global.config.as_deref(), cli.global.database_url.as_deref(), &Config::process_env())
        .map_err(anyhow::Error::from)
        .and_then(|config| zmsync::commands::run(cli, config));
    match result {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(e) => {
            let e = CommandError::from(e);
            eprint!("{}", e.render());
            ExitCode::from(e.kind.code())
        }
    }
}

/// `zmsync runs | head -1`: the reader went away, so there is nobody left to tell. `println!` panics on a
/// closed stdout; like ripgrep, exit quietly (0) instead of printing a panic. Every other panic keeps the
/// default report.
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    // -v… raise zmsync's own level only: dependencies stay at warn (tokio-postgres logs every statement's
    // parameters at debug, the cached Zoho access token among them). RUST_LOG is the explicit override; even
    // then tokio-postgres stays at info unless RUST_LOG names it (docs/configuration.md "Logging").
    let filter = match std::env::var("RUST_LOG").ok().filter(|v| !v.trim().is_empty()) {
        Some(spec) => {
            let spec = if spec.contains("tokio_postgres") { spec } else { format!("{spec},tokio_postgres=info") };
            EnvFilter::try_new(&spec).unwrap_or_else(|e| {
                eprintln!("warning: RUST_LOG is not a valid filter ({e}); using zmsync={level}");
                EnvFilter::new(format!("zmsync={level},warn"))
            })
        }
        None => EnvFilter::new(format!("zmsync={level},warn")),
    };
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}
