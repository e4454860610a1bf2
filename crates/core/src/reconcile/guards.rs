//! Safety guards. A plan that takes away more than `guards.max_removals` of an entity is refused unless the
//! operator says `--allow-mass-change`; a side that suddenly holds nothing where the store says there should
//! be records is refused always (a failed or misconfigured snapshot must never read as "everyone left").

use super::plan::{Guard, GuardOutcome, GuardVerdict, Plan};
use super::Inputs;
use crate::model::{Entity, Side};
use crate::settings::{MaxRemovals, Settings};

/// The removal limit for an entity of `total` records: the larger of `percent`% and `min_records`.
pub fn limit(max: &MaxRemovals, total: u64) -> u64 {
    let share = (max.percent / 100.0 * total as f64).floor() as u64;
    share.max(max.min_records)
}

/// The mass-change verdict of `removals` of an entity's `total` records, `None` within the limit. `what` is
/// what removes them (`plan`, `revert`); `review`, how the operator looks at them before letting them through.
pub fn mass_change(
    entity: Entity,
    removals: u64,
    total: u64,
    settings: &Settings,
    allow: bool,
    what: &str,
    review: &str,
) -> Option<GuardVerdict> {
    let max = limit(&settings.max_removals, total);
    if removals <= max {
        return None;
    }
    let message = format!(
        "{}: the {what} removes or suspends {removals} of {total} {entity} records, over the limit of {max} \
         (guards.max_removals: the larger of {}% and {}); {}",
        if allow { "allowed" } else { "refused" },
        settings.max_removals.percent,
        settings.max_removals.min_records,
        if allow {
            "let through by --allow-mass-change".to_string()
        } else {
            format!("{review}, then run again with --allow-mass-change if it is right")
        }
    );
    Some(GuardVerdict {
        entity,
        guard: Guard::MassChange,
        count: removals,
        limit: max,
        outcome: if allow { GuardOutcome::Allowed } else { GuardOutcome::Refused },
        message,
    })
}

/// Adds the guard verdicts to `plan`. Only problems are recorded (a passed check is silent).
pub fn evaluate(plan: &mut Plan, inputs: &Inputs, settings: &Settings, allow_mass_change: bool) {
    let mut verdicts = Vec::new();
    for &entity in &plan.entities {
        let expected = inputs.links(entity).len().max(inputs.states(entity).len()) as u64;
        let (zk, mk) = entity.kinds();
        for (side, kind) in [(Side::Zoho, zk), (Side::Moodle, mk)] {
            if expected > 0 && inputs.records(kind).is_empty() {
                verdicts.push(GuardVerdict {
                    entity,
                    guard: Guard::EmptySide,
                    count: 0,
                    limit: expected,
                    outcome: GuardOutcome::Refused,
                    message: format!(
                        "refused: {side} holds no {kind} records, but {expected} {entity} records were synced before. \
                         Check that the last snapshot of {side} finished (run it again), that the {} has access to \
                         {what}, and that the URL points at the right {side} — this guard cannot be overridden",
                        if side == Side::Zoho { "Zoho API user" } else { "Moodle web-service token" },
                        what = if side == Side::Zoho {
                            entity.default_module().to_string()
                        } else {
                            format!("the {kind} data")
                        },
                    ),
                });
            }
        }
        let removals = plan.ops.iter().filter(|o| o.entity == entity && o.action.is_removal()).count() as u64;
        let total = expected.max(inputs.records(zk).len() as u64);
        verdicts.extend(mass_change(
            entity,
            removals,
            total,
            settings,
            allow_mass_change,
            "plan",
            "review it with `zmsync diff`",
        ));
    }
    plan.guards = verdicts;
}

/// A guard refused the plan: the messages of every refusal, one a line. Nothing was written.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refusal(pub String);

/// `Err` when a guard refused the plan: the messages of every refusal.
pub fn enforce(plan: &Plan) -> Result<(), Refusal> {
    let refusals: Vec<&str> =
        plan.guards.iter().filter(|g| g.outcome == GuardOutcome::Refused).map(|g| g.message.as_str()).collect();
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(Refusal(refusals.join("\n")))
    }
}

/// Whether `entity`'s verdicts let its ops through.
pub fn passes(plan: &Plan, entity: Entity) -> bool {
    !plan.guards.iter().any(|g| g.entity == entity && g.outcome == GuardOutcome::Refused)
}
