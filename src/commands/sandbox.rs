//! `zmsync sandbox`: serve the fake Zoho and the fake Moodle, filled with a generated college, until a signal.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use signal_hook::consts::{SIGINT, SIGTERM};

use crate::cli::SandboxArgs;
use crate::error::{Exit, UsageError};
use crate::sandbox::generator::GenOptions;
use crate::sandbox::{Sandbox, SandboxOptions};

pub fn run(args: SandboxArgs) -> Result<Exit> {
    if !(0.0..=1.0).contains(&args.fault_rate) {
        return Err(UsageError(format!(
            "--fault-rate {} is not a probability\n  hint: give a number from 0 to 1, e.g. --fault-rate 0.05",
            args.fault_rate
        ))
        .into());
    }
    if let Some(url) = &args.webhook_url {
        url::Url::parse(url).map_err(|e| {
            UsageError(format!(
                "--webhook-url {url}: {e}\n  hint: give the receiver's base, e.g. http://127.0.0.1:8080"
            ))
        })?;
    }
    // Registered before the servers start, so a signal during start-up still ends in an orderly stop.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing the signal handlers")?;
    }
    let started = Instant::now();
    let state = args.state;
    let opts = SandboxOptions {
        generate: GenOptions { students: args.students, seed: args.seed, state, drift_count: args.drift },
        latency_ms: args.latency_ms,
        per_record_ms: args.per_record_ms,
        fault_rate: args.fault_rate,
        zoho_port: args.zoho_port,
        moodle_port: args.moodle_port,
        webhook_url: args.webhook_url,
        webhook_hmac_secret: None,
        moodle_cost_model: args.moodle_cost_model,
        moodle_show_phone: args.moodle_show_phone,
        moodle_mail: args.moodle_mail,
    };
    let sandbox = Sandbox::start(opts).context("starting the sandbox servers (is the port free?)")?;
    {
        // Flushed at once: a parent reading these lines through a pipe must not wait for our exit.
        let mut out = std::io::stdout().lock();
        out.write_all(sandbox.env_lines().as_bytes()).context("writing the settings to stdout")?;
        out.flush().context("writing the settings to stdout")?;
    }
    eprintln!(
        "zmsync sandbox: state {}, seed {}, started in {:.2} s; {}. Zoho {} · Moodle {}. Stop with Ctrl-C.",
        state.name(),
        args.seed,
        started.elapsed().as_secs_f64(),
        sandbox.summary(),
        sandbox.zoho().url(),
        sandbox.moodle().url(),
    );
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(sandbox);
    eprintln!("zmsync sandbox: stopped");
    Ok(Exit::Done)
}
