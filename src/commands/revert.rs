//! `zmsync revert RUN [--out plan.json] [--allow-mass-change] [--cached]`.

use anyhow::{Context as _, Result};
use serde_json::json;

use super::{print_json, Context};
use crate::cli::{ReconcileArgs, RevertArgs};
use crate::error::Exit;
use crate::operator::revert::{self, RevertError};
use crate::settings::Settings;

pub fn run(ctx: &Context, args: RevertArgs) -> Result<Exit> {
    let store = ctx.store()?;
    let settings = Settings::from_rows(&store.settings_map()?)?;
    // The run must exist before anything is fetched.
    if store.run(args.run)?.is_none() {
        return Err(RevertError::NoRun(args.run).into());
    }
    super::plan::refresh(ctx, store.as_ref(), &settings, &ReconcileArgs { module: None, cached: args.cached })?;
    let r = revert::plan(store.as_ref(), &settings, args.run, args.allow_mass_change)?;
    // A refused plan is never written: nothing downstream can apply it by mistake.
    let refused = crate::reconcile::enforce(&r.plan);
    if refused.is_ok() {
        if let Some(out) = &args.out {
            std::fs::write(out, r.plan.to_json()).with_context(|| format!("writing the plan to {}", out.display()))?;
        }
    }
    if ctx.json {
        print_json(&json!({
            "run_id": r.run_id,
            "out": args.out.as_ref().filter(|_| refused.is_ok()).map(|p| p.display().to_string()),
            "applied": r.applied,
            "ops": r.plan.ops.len(),
            "counts": r.plan.counts,
            "guards": r.plan.guards,
            "stale": r.stale,
            "not_undone": r.not_undone,
        }));
    } else {
        print!("{}", r.text(50));
        if let (Ok(()), Some(out)) = (&refused, &args.out) {
            println!(
                "plan written to {} (review it with `zmsync plan show {}`, apply it with `zmsync apply {}`)",
                out.display(),
                out.display(),
                out.display()
            );
        }
    }
    refused?;
    Ok(Exit::Done)
}
