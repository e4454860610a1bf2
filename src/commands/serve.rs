//! `zmsync serve --bind ADDR [--workers N]`: the webhook receiver.
//!
//! The first line on stdout is the bound address (`127.0.0.1:8001`), so `--bind 127.0.0.1:0` can be used
//! by scripts and tests. SIGTERM / SIGINT drain in-flight requests and stop; a second signal exits at once.
//! SIGHUP re-reads the settings (`webhook.rate_limit`) at once; they are also re-read every 5 s.

use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Result;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use super::Context;
use crate::cli::ServeArgs;
use crate::error::Exit;
use crate::webhook::server::Receiver;
use crate::webhook::{Secrets, ServeOptions};

pub fn run(ctx: &Context, args: ServeArgs) -> Result<Exit> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGTERM, SIGINT] {
        // The first signal sets the flag (drain); a second one, with the flag already set, exits at once.
        signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&stop))?;
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(SIGHUP, Arc::clone(&reload))?;
    // Open (and migrate) the store before listening, so a bad URL fails before anything is accepted.
    drop(ctx.store()?);
    let receiver = Receiver::bind(&args.bind)?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", receiver.addr())?;
        out.flush()?;
    }
    let opts = ServeOptions {
        database_url: ctx.config.database_url.clone(),
        workers: usize::from(args.workers),
        secrets: Secrets::from_config(&ctx.config),
        replay_window: std::time::Duration::from_secs(u64::from(args.replay_window) * 3600),
        reload,
    };
    receiver.run(opts, stop)?;
    Ok(Exit::Done)
}
