//! `zmsync revert RUN`: a plan that undoes what run RUN applied, built from the journal (which keeps each op's
//! before-values) and the store's last snapshot. It is a plan like any other: shown, saved, applied with
//! `zmsync apply`, its ops carrying the fingerprints of the records as they are now, so a record that moves
//! between the revert and its apply is skipped as stale there too.
//!
//! What each applied op becomes:
//! - an update (or a suspension, restoration or hiding) → the fields set back to their before-values on the side
//!   that was written;
//! - a Moodle user created → suspended, and its Moodle id cleared in Zoho; a course created → hidden, and its id
//!   cleared; an enrolment made → removed; a dashboard row created → deleted;
//! - an enrolment removed → enrolled again with the fields it had; a dashboard row deleted → written again;
//! - a Moodle id written back into Zoho → set back to what Zoho had;
//! - links (bookkeeping) → nothing; records created in Zoho and users deleted in Moodle → not undone, listed.
//!
//! An op whose record changed since RUN (its fields no longer hold what RUN wrote, or it is gone) is stale:
//! left out and listed.

mod undo;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use chrono::Utc;
use serde::Serialize;
use serde_json::Value;

use super::journal::kind_written;
use crate::model::{Entity, Fields, Kind, Side};
use crate::reconcile::{guards, Counts, GuardVerdict, Plan};
use crate::settings::Settings;
use crate::store::{Store, StoreError};
use undo::{undo, Now, Undo};

/// An applied op of RUN the revert leaves alone, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Left {
    pub seq: i64,
    pub entity: String,
    pub action: String,
    pub key: String,
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Revert {
    pub run_id: i64,
    pub plan: Plan,
    /// Ops of RUN whose records changed since: skipped.
    pub stale: Vec<Left>,
    /// Ops of RUN that cannot be undone (or need nothing undone): listed.
    pub not_undone: Vec<Left>,
    /// Applied ops of RUN read from the journal.
    pub applied: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum RevertError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the store has no run {0}\n  hint: `zmsync runs` lists the runs")]
    NoRun(i64),
    #[error("run {0} was a dry run: it wrote nothing, so there is nothing to revert")]
    DryRun(i64),
}

/// Builds the revert of run `run_id`. The mass-change guard applies as to any plan.
pub fn plan(
    store: &dyn Store,
    settings: &Settings,
    run_id: i64,
    allow_mass_change: bool,
) -> Result<Revert, RevertError> {
    let run = store.run(run_id)?.ok_or(RevertError::NoRun(run_id))?;
    if run.dry_run {
        return Err(RevertError::DryRun(run_id));
    }
    let rows = store.journal_rows(run_id)?;
    let mut now = Now { store, settings, records: HashMap::new(), base: HashMap::new() };
    let mut ops = Vec::new();
    let mut stale = Vec::new();
    let mut not_undone = Vec::new();
    let mut applied = 0;
    // Newest first: the last write to a record is undone first.
    for r in rows.iter().rev().filter(|r| r.entry.outcome == "applied") {
        applied += 1;
        let left = |why: String| Left {
            seq: r.entry.seq,
            entity: r.entry.entity.clone(),
            action: r.entry.op.clone(),
            key: r.entry.key.clone(),
            why,
        };
        match undo(&mut now, run_id, r)? {
            Undo::Ops(mut o) => {
                // The base the run found: restored once the revert is applied (see [`restore_bases`]).
                if let Some(b) = &r.detail.base {
                    for op in &mut o {
                        op.refs.insert(REVERT_BASE.into(), b.clone());
                    }
                }
                ops.append(&mut o)
            }
            Undo::Stale(why) => stale.push(left(why)),
            Undo::Not(why) => not_undone.push(left(why)),
        }
    }
    for (i, op) in ops.iter_mut().enumerate() {
        op.seq = i as u64 + 1;
        op.fingerprints = now.fingerprints(op)?;
        // Journalled with the revert's run, so that its own revert restores today's base.
        op.base = now.base(op.entity, &op.key)?.map(|b| b.1);
    }
    stale.sort_by_key(|l| l.seq);
    not_undone.sort_by_key(|l| l.seq);
    let entities: Vec<Entity> = Entity::ALL.into_iter().filter(|e| ops.iter().any(|o| o.entity == *e)).collect();
    let mut counts: BTreeMap<Entity, Counts> = BTreeMap::new();
    for op in &ops {
        *counts.entry(op.entity).or_default().ops.entry(op.action.name().to_string()).or_default() += 1;
    }
    let mut plan = Plan {
        run_id: None,
        created_at: Utc::now(),
        entities,
        ops,
        issues: Vec::new(),
        conflicts: Vec::new(),
        guards: Vec::new(),
        counts,
    };
    plan.guards = guard(store, settings, &plan, allow_mass_change)?;
    Ok(Revert { run_id, plan, stale, not_undone, applied })
}

/// The mass-change guard over the revert's removals, per entity, as `reconcile` counts it for a plan.
fn guard(store: &dyn Store, settings: &Settings, plan: &Plan, allow: bool) -> Result<Vec<GuardVerdict>, StoreError> {
    let mut out = Vec::new();
    for &entity in &plan.entities {
        let removals = plan.ops.iter().filter(|o| o.entity == entity && o.action.is_removal()).count() as u64;
        if removals == 0 {
            continue;
        }
        let total = (store.links(entity)?.len() as u64)
            .max(store.sync_states(entity)?.len() as u64)
            .max(store.record_count(entity.kinds().0)?);
        out.extend(guards::mass_change(entity, removals, total, settings, allow, "revert", "review it"));
    }
    Ok(out)
}

impl Revert {
    /// The plan's summary, then what is left out and why.
    pub fn text(&self, max_ops: usize) -> String {
        let mut out = format!(
            "revert of run {}: {} applied ops read from the journal, {} ops to undo them, {} stale, {} not undone\n",
            self.run_id,
            self.applied,
            self.plan.ops.len(),
            self.stale.len(),
            self.not_undone.len()
        );
        out.push_str(&self.plan.summary_text(max_ops));
        let mut list = |title: &str, items: &[Left]| {
            if items.is_empty() {
                return;
            }
            let _ = writeln!(out, "{title} ({}):", items.len());
            for l in items.iter().take(max_ops) {
                let _ = writeln!(out, "  seq {:>6} {:<12} {:<10} {:<28} {}", l.seq, l.entity, l.action, l.key, l.why);
            }
            if items.len() > max_ops {
                let _ = writeln!(out, "  … {} more (--json lists all)", items.len() - max_ops);
            }
        };
        list("stale: changed since the run, skipped", &self.stale);
        list("not undone", &self.not_undone);
        out
    }
}

/// The ref a revert op carries the base to restore in: the agreed base its run found (null: none).
pub const REVERT_BASE: &str = "revert_base";

/// After a saved plan is applied: the agreed base of every key a revert op applied goes back to what the reverted
/// run found, so the next diff sees the state before that run exactly (not a base the run itself recorded); the
/// links of Zoho records it deleted go too. Nothing to do for other plans.
pub fn restore_bases(store: &dyn Store, run_id: i64) -> Result<usize, StoreError> {
    let mut put: Vec<crate::store::SyncState> = Vec::new();
    let mut delete: BTreeMap<Entity, Vec<String>> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    let mut unlink: BTreeMap<Entity, Vec<String>> = BTreeMap::new();
    let mut gone: BTreeMap<Kind, Vec<String>> = BTreeMap::new();
    for r in store.journal_rows(run_id)? {
        if r.entry.outcome != "applied" {
            continue;
        }
        let reverting = r.detail.refs.as_ref().is_some_and(|f| f.get(REVERT_BASE).is_some());
        // What a revert removed from Moodle is gone from the stored snapshot too: the re-read after apply may
        // not have run (a side emptied by the revert is what the empty-side guard refuses to read), and the
        // next snapshot must not take the emptiness it caused for a failure.
        if reverting && r.entry.target == "moodle" && matches!(r.entry.op.as_str(), "unenrol" | "delete") {
            if let (Some(e), Some(k)) = (Entity::from_name(&r.entry.entity), r.detail.moodle_id.clone()) {
                gone.entry(kind_written(e, Side::Moodle)).or_default().push(k);
            }
        }
        // A Zoho record the reverted run created, deleted again: the link it made goes with it.
        if r.entry.op == "delete" && r.entry.target == "zoho" {
            if let (Some(e), Some(z)) = (Entity::from_name(&r.entry.entity), r.detail.zoho_id.clone()) {
                unlink.entry(e).or_default().push(z);
            }
        }
        let Some(base) = r.detail.refs.as_ref().and_then(|f| f.get(REVERT_BASE)) else { continue };
        let Some(entity) = Entity::from_name(&r.entry.entity) else { continue };
        if !seen.insert((entity, r.entry.key.clone())) {
            continue;
        }
        match base {
            Value::Object(m) => {
                let fields: Fields = m.clone().into_iter().collect();
                put.push(crate::store::SyncState {
                    entity,
                    key: r.entry.key.clone(),
                    fingerprint: crate::model::fingerprint(&fields),
                    fields,
                    synced_at: Utc::now(),
                    run_id: Some(run_id),
                });
            }
            _ => delete.entry(entity).or_default().push(r.entry.key.clone()),
        }
    }
    let n = put.len() + delete.values().map(Vec::len).sum::<usize>();
    if !put.is_empty() {
        store.put_sync_states(&put)?;
    }
    for (e, keys) in delete {
        store.delete_sync_states(e, &keys)?;
    }
    for (e, ids) in unlink {
        store.delete_links(e, &ids)?;
    }
    for (k, keys) in gone {
        store.delete_records(k, &keys)?;
    }
    Ok(n)
}
