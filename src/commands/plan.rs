//! `zmsync plan [--module M] [--out plan.json] [--allow-mass-change]` and `zmsync plan show plan.json`.

use anyhow::{Context as _, Result};
use serde_json::json;

use std::io::IsTerminal;

use super::{print_json, Context};
use crate::cli::{PlanArgs, PlanCommand, ReconcileArgs};
use crate::error::{kind_of, Exit, UsageError};
use crate::reconcile::{self, Options, Plan};
use crate::settings::Settings;
use crate::snapshot;
use crate::store::Store;

pub fn run(ctx: &Context, args: PlanArgs) -> Result<Exit> {
    if let Some(PlanCommand::Show { file, limit }) = args.command {
        let text = std::fs::read_to_string(&file)
            .map_err(|e| UsageError(format!("cannot read the plan {}: {e}", file.display())))?;
        let plan =
            Plan::from_json(&text).map_err(|e| UsageError(format!("{} is not a zmsync plan: {e}", file.display())))?;
        if ctx.json {
            print_json(&serde_json::to_value(&plan)?);
        } else {
            print!("{}", plan.summary_text(limit));
        }
        return Ok(Exit::Done);
    }
    let store = ctx.store()?;
    let settings = Settings::from_rows(&store.settings_map()?)?;
    let entities = reconcile::select(args.reconcile.module.as_deref(), &settings)?;
    refresh(ctx, store.as_ref(), &settings, &args.reconcile)?;
    let opts = Options { entities, run_id: None, allow_mass_change: args.allow_mass_change, collect_agreed: false };
    let plan = reconcile::reconcile(&*store, &settings, &opts)?;
    // A refused plan is never written: nothing downstream can apply it by mistake.
    reconcile::enforce(&plan)?;
    if let Some(out) = &args.out {
        std::fs::write(out, plan.to_json()).with_context(|| format!("writing the plan to {}", out.display()))?;
    }
    if ctx.json {
        print_json(&json!({"out": args.out.as_ref().map(|p| p.display().to_string()), "ops": plan.ops.len(),
                           "conflicts": plan.conflicts.len(), "issues": plan.issues.len(), "counts": plan.counts,
                           "guards": plan.guards}));
    } else {
        print!("{}", plan.summary_text(50));
        if let Some(out) = &args.out {
            println!("plan written to {} (review it with `zmsync plan show {}`)", out.display(), out.display());
        }
    }
    Ok(Exit::Done)
}

/// Takes a fresh snapshot of what `args` covers, unless `--cached`. Its summary goes to stderr, so stdout
/// stays the plan or the report.
pub(super) fn refresh(ctx: &Context, store: &dyn Store, settings: &Settings, args: &ReconcileArgs) -> Result<()> {
    if args.cached {
        return Ok(());
    }
    let only = match args.module.as_deref() {
        None => None,
        Some(m) => Some(snapshot::parse_module(m, settings).ok_or_else(|| {
            UsageError(format!(
                "unknown module `{m}`\n  hint: valid names are: {}",
                snapshot::valid_module_names(settings).join(", ")
            ))
        })?),
    };
    let opts = snapshot::Options { only, progress: !ctx.json && std::io::stderr().is_terminal(), ..Default::default() };
    match snapshot::run(store, settings, &ctx.config, &opts) {
        Ok(summary) => {
            if !ctx.json {
                eprint!("{}", summary.table());
            }
            Ok(())
        }
        Err(e) => {
            let e = anyhow::Error::from(e);
            if kind_of(&e) == Exit::Usage {
                Err(UsageError(format!("{e}\n  hint: to plan from the snapshot already in the store, add --cached"))
                    .into())
            } else {
                Err(e)
            }
        }
    }
}
