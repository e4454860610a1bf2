//! What a run covers (its scope read: a saved plan, a module, every entity), and step 2, the plan: reconciled
//! one entity group at a time into a spill, or a saved plan's ops with its stale ones; the safety guards.

use super::{RunError, RunOptions, Scope};
use crate::apply::{Spill, SpillWriter};
use crate::model::Entity;
use crate::progress::Bars;
use crate::reconcile::{self, Plan};
use crate::settings::Settings;
use crate::snapshot;
use crate::store::Store;

/// What a run covers, from its scope.
pub(super) struct Target {
    /// `zmsync apply PLAN`: the saved plan.
    pub saved: Option<Plan>,
    /// The entities to sync.
    pub entities: Vec<Entity>,
    /// `--module`: the one entity read.
    pub only: Option<Entity>,
}

/// Reads the run's scope: the saved plan (a usage error if it cannot be read), the entities, the module.
pub(super) fn target(settings: &Settings, opts: &RunOptions) -> Result<Target, RunError> {
    let saved: Option<Plan> = match &opts.scope {
        Scope::Plan(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| RunError::Usage(format!("cannot read the plan {}: {e}", file.display())))?;
            Some(
                Plan::from_json(&text)
                    .map_err(|e| RunError::Usage(format!("{} is not a zmsync plan: {e}", file.display())))?,
            )
        }
        _ => None,
    };
    let entities = match (&opts.scope, &saved) {
        (Scope::Module(m), _) => reconcile::select(Some(m), settings).map_err(|e| RunError::Usage(e.0))?,
        (_, Some(p)) => p.entities.clone(),
        _ => reconcile::select(None, settings).map_err(|e| RunError::Usage(e.0))?,
    };
    let only = match &opts.scope {
        Scope::Module(m) => snapshot::parse_module(m, settings),
        _ => None,
    };
    Ok(Target { saved, entities, only })
}

/// The plan, its ops spilled to disk.
pub(super) struct Planned {
    /// Counts, issues, conflicts and guard verdicts; its `ops` stay empty (they are in `ops`).
    pub plan: Plan,
    pub ops: Spill,
    /// Seqs of a saved plan's ops skipped as stale.
    pub stale: Vec<u64>,
    /// The entities whose base the plan's own pass recorded (a group with no ops).
    pub based: Vec<Entity>,
}

/// Plans `entities` (or takes the saved plan, with its stale ops), one entity group at a time: each group's ops
/// go to the spill as they are planned (apply reads them back a phase at a time), the rest — counts, issues,
/// conflicts, guard verdicts — to `plan`, whose `ops` stay empty. A plan with no ops records the base from the
/// same pass.
pub(super) fn plan(
    store: &dyn Store,
    settings: &Settings,
    opts: &RunOptions,
    run_id: i64,
    saved: Option<Plan>,
    entities: &[Entity],
    bars: &Bars,
) -> Result<Planned, RunError> {
    let mut plan = Plan::empty(Some(run_id), entities.to_vec());
    let mut spill = SpillWriter::new()?;
    let (stale, based) = match saved {
        Some(p) => {
            let stale = p.stale_ops(store).map_err(reconcile::ReconcileError::from)?;
            for op in &p.ops {
                spill.push(op)?;
            }
            plan = Plan { ops: Vec::new(), ..p };
            (stale, Vec::new())
        }
        None if entities.is_empty() => (Vec::new(), Vec::new()),
        None => {
            let ro = reconcile::Options {
                entities: entities.to_vec(),
                run_id: Some(run_id),
                allow_mass_change: opts.allow_mass_change,
                collect_agreed: false,
            };
            let bar = bars.step("reconcile");
            let based = reconcile::reconcile_each(store, settings, &ro, !opts.dry_run, |mut group: Plan| {
                for op in &group.ops {
                    spill.push(op)?;
                }
                plan.counts.append(&mut group.counts);
                plan.issues.append(&mut group.issues);
                plan.conflicts.append(&mut group.conflicts);
                plan.guards.append(&mut group.guards);
                Ok::<_, RunError>(())
            })?;
            bar.finish_with_message(format!("{} ops planned", spill.len()));
            (Vec::new(), based)
        }
    };
    let ops = spill.finish()?;
    Ok(Planned { plan, ops, stale, based })
}

/// A plan a safety guard refused: nothing is written, and the run says why and what to do.
pub(super) fn guard(plan: &Plan) -> Result<(), RunError> {
    if plan.refused() {
        let msgs: Vec<String> = plan.guards.iter().map(|g| format!("  - {}", g.message)).collect();
        Err(RunError::Refused(format!(
            "the plan was refused by a safety guard; nothing was written:\n{}\n  hint: review it with `zmsync plan`, \
             then rerun with --allow-mass-change if it is intended",
            msgs.join("\n")
        )))
    } else {
        Ok(())
    }
}
