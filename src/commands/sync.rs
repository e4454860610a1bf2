//! `zmsync sync --all | --module M | --incremental [--follow]` and `zmsync apply plan.json`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use super::{print_json, Context};
use crate::cli::{ApplyArgs, RunArgs, SyncArgs};
use crate::error::{Busy, CommandError, Exit};
use crate::run::{self, RunError, RunOptions, Scope};
use crate::settings::Settings;
use crate::store::Store;

pub fn sync(ctx: &Context, args: SyncArgs) -> Result<Exit> {
    let scope = match (&args.module, args.incremental) {
        (Some(m), _) => Scope::Module(m.clone()),
        (None, true) => Scope::Incremental,
        (None, false) => Scope::All,
    };
    let store = ctx.store()?;
    let opts = options(ctx, scope, &args.common, args.plan_out.clone());
    if args.follow {
        return follow(ctx, store.as_ref(), &opts);
    }
    let waited = std::time::Instant::now();
    let result = loop {
        match once(ctx, store.as_ref(), &opts) {
            Err(e) if e.downcast_ref::<Busy>().is_some() && waited.elapsed() < Duration::from_secs(args.lock_wait) => {
                tracing::info!("waiting for the run lock (--lock-wait {}): {e}", args.lock_wait);
                std::thread::sleep(LOCK_RETRY.min(Duration::from_secs(args.lock_wait)));
            }
            other => break other,
        }
    };
    match result {
        Err(e) if args.if_free && e.downcast_ref::<Busy>().is_some() => {
            // Not an alarm: the run that holds the lock does the work; the next scheduled run catches up.
            tracing::warn!("skipped (--if-free): {e}");
            Ok(Exit::Done)
        }
        other => other,
    }
}

pub fn apply(ctx: &Context, args: ApplyArgs) -> Result<Exit> {
    let store = ctx.store()?;
    let opts = options(ctx, Scope::Plan(args.plan.clone()), &args.common, None);
    once(ctx, store.as_ref(), &opts)
}

fn options(ctx: &Context, scope: Scope, common: &RunArgs, plan_out: Option<std::path::PathBuf>) -> RunOptions {
    RunOptions {
        scope,
        dry_run: common.dry_run,
        plan_out,
        allow_mass_change: common.allow_mass_change,
        report_dir: common.report_dir.clone(),
        progress: !ctx.json && !ctx.quiet && std::io::stderr().is_terminal(),
        apply: Default::default(),
    }
}

/// How often `--lock-wait` tries the run lock again.
const LOCK_RETRY: Duration = Duration::from_secs(5);

/// How long `--follow` lets a burst of webhooks settle before a run: long enough for the events of one save
/// in Zoho (or one Notification API callback) to arrive together, short beside the run itself.
pub const FOLLOW_SETTLE: Duration = Duration::from_millis(50);

/// One run, its summary printed (with `-q`, only when it did not fully succeed); errors mapped to their exit
/// codes.
pub fn once(ctx: &Context, store: &dyn Store, opts: &RunOptions) -> Result<Exit> {
    let settings = Settings::from_rows(&store.settings_map()?)?;
    match run::run(store, &settings, &ctx.config, opts) {
        Ok(report) => {
            let exit = Exit::of_run(&report);
            if ctx.quiet && exit == Exit::Done {
                // Cron mails any output: a run that needs nobody says nothing.
            } else if ctx.json {
                print_json(&serde_json::to_value(&report)?);
            } else {
                print!("{}", report.text());
            }
            Ok(exit)
        }
        Err(e @ RunError::Locked(_)) => Err(Busy(e.to_string()).into()),
        Err(e @ RunError::Usage(_)) => Err(e.into()),
        Err(e) => Err(name_the_run(store, e.into())),
    }
}

/// `run 12 (full) failed: …`: the error names the run this process recorded, so the operator (and
/// zmsync-notify, which reads the journal) can find it in the store.
fn name_the_run(store: &dyn Store, e: anyhow::Error) -> anyhow::Error {
    let pid = i64::from(std::process::id());
    let mine = store.recent_runs(1).ok().and_then(|r| r.into_iter().next()).filter(|r| r.pid == Some(pid));
    match mine {
        Some(r) => e.context(format!("run {} ({}) {}", r.id, r.kind, r.status)),
        None => e,
    }
}

/// `--incremental --follow`: waits for dirty marks (LISTEN/NOTIFY on PostgreSQL, 20 ms polling on SQLite),
/// lets a burst settle ([`FOLLOW_SETTLE`]), runs an incremental sync, and repeats until SIGTERM or SIGINT,
/// which stop it between runs. Marks committed during a run are taken by the next one.
fn follow(ctx: &Context, store: &dyn Store, opts: &RunOptions) -> Result<Exit> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let mut worst = Exit::Done;
    eprintln!("following dirty marks (SIGTERM or Ctrl-C stops between runs)");
    while !stop.load(Ordering::Relaxed) {
        // Only marks this follower can take now: not those another follower holds, nor failing keys whose
        // retry is not yet due (counting them ran a run that claimed nothing, over and over).
        if store.claimable_dirty()? == 0 {
            // PostgreSQL: woken by the receiver's NOTIFY; SQLite: a short poll. Bounded either way, so SIGTERM is
            // seen within a second.
            store.wait_for_dirty(Duration::from_secs(1))?;
            continue;
        }
        std::thread::sleep(FOLLOW_SETTLE);
        match once(ctx, store, opts) {
            Ok(Exit::Partial) => worst = Exit::Partial,
            Ok(_) => {}
            Err(e) => {
                // A failed run leaves its marks dirty with the error; keep following after a pause.
                let e = CommandError::from(e);
                let shown = e.render_as("incremental run failed");
                tracing::error!("{}", shown.trim_end());
                eprint!("{shown}");
                worst = Exit::Partial;
                std::thread::sleep(Duration::from_secs(2));
            }
        }
    }
    eprintln!("stopped");
    Ok(worst)
}
