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

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use chrono::Utc;
use serde::Serialize;
use serde_json::{json, Value};

use super::journal::kind_written;
use crate::model::{Entity, Fields, Kind, Record, Side};
use crate::reconcile::plan::{Guard, GuardOutcome};
use crate::reconcile::{guards, Action, Counts, Fingerprints, GuardVerdict, Op, Plan};
use crate::settings::{RemovalAction, Settings};
use crate::store::{JournalRow, Store, StoreError};

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

/// The store's current state, loaded a kind (or entity) at a time as ops need it.
struct Now<'a> {
    store: &'a dyn Store,
    settings: &'a Settings,
    records: HashMap<Kind, HashMap<String, Record>>,
    base: HashMap<Entity, HashMap<String, (String, Fields)>>,
}

impl<'a> Now<'a> {
    fn record(&mut self, kind: Kind, key: Option<&str>) -> Result<Option<&Record>, StoreError> {
        if !self.records.contains_key(&kind) {
            let map = self.store.records(kind)?.into_iter().map(|r| (r.key.clone(), r)).collect();
            self.records.insert(kind, map);
        }
        Ok(key.and_then(|k| self.records.get(&kind).and_then(|m| m.get(k))))
    }

    /// The agreed base of `key`: its fingerprint and fields.
    fn base(&mut self, entity: Entity, key: &str) -> Result<Option<(String, Fields)>, StoreError> {
        if !self.base.contains_key(&entity) {
            let map = self.store.sync_states(entity)?.into_iter().map(|s| (s.key, (s.fingerprint, s.fields))).collect();
            self.base.insert(entity, map);
        }
        Ok(self.base.get(&entity).and_then(|m| m.get(key)).cloned())
    }

    /// The fingerprints an op on these records carries: as they are now.
    fn fingerprints(&mut self, op: &Op) -> Result<Fingerprints, StoreError> {
        let (zk, mk) = op.kinds();
        let zoho = self.record(zk, op.zoho_id.as_deref())?.map(|r| r.fingerprint.clone());
        let moodle = self.record(mk, op.moodle_id.as_deref())?.map(|r| r.fingerprint.clone());
        let base = self.base(op.entity, &op.key)?.map(|b| b.0);
        Ok(Fingerprints { zoho, moodle, base })
    }
}

fn fields(v: &Option<Value>) -> Fields {
    v.as_ref().and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default()
}

fn action(name: &str) -> Option<Action> {
    Action::ALL.into_iter().find(|a| a.name() == name)
}

fn side(name: &str) -> Option<Side> {
    match name {
        "zoho" => Some(Side::Zoho),
        "moodle" => Some(Side::Moodle),
        _ => None,
    }
}

/// `courseid:userid` as numbers.
fn enrolment_ids(key: &str) -> Option<(i64, i64)> {
    let (c, u) = key.split_once(':')?;
    Some((c.parse().ok()?, u.parse().ok()?))
}

/// What one applied op of RUN becomes.
enum Undo {
    Ops(Vec<Op>),
    Stale(String),
    Not(String),
}

/// Whether `record` still holds every value of `wrote`.
fn holds(record: Option<&Record>, wrote: &Fields) -> bool {
    record.is_some_and(|r| wrote.iter().all(|(k, v)| r.field(k) == v))
}

fn undo(now: &mut Now<'_>, run_id: i64, r: &JournalRow) -> Result<Undo, StoreError> {
    let e = &r.entry;
    let (Some(entity), Some(act), Some(target)) = (Entity::from_name(&e.entity), action(&e.op), side(&e.target)) else {
        return Ok(Undo::Not(format!("unknown op {} {} on {}", e.entity, e.op, e.target)));
    };
    let changes = fields(&e.changes);
    let before = fields(&r.detail.before);
    let refs = fields(&r.detail.refs);
    let zoho_id = r.detail.zoho_id.clone();
    let moodle_id = r.detail.moodle_id.clone().or_else(|| e.target_id.clone().filter(|_| target == Side::Moodle));
    let kind = kind_written(entity, target);
    let reason = |what: &str| format!("revert of run {run_id} (seq {}): {what}", e.seq);
    let op = |action: Action, changes: Fields, before: Fields, refs: Fields, moodle_id: Option<String>, why: &str| Op {
        seq: 0,
        entity,
        action,
        target,
        key: e.key.clone(),
        zoho_id: zoho_id.clone(),
        moodle_id,
        changes,
        before,
        base: None,
        fingerprints: Fingerprints::default(),
        refs,
        reason: reason(why),
        conflict: false,
    };
    // The Moodle id a create wrote back into Zoho, cleared again (when Zoho still holds it).
    let clear_write_back = |now: &mut Now<'_>, mid: &str| -> Result<Option<Op>, StoreError> {
        if !matches!(entity, Entity::Student | Entity::Teacher | Entity::Class) {
            return Ok(None);
        }
        let zk = entity.kinds().0;
        let held = now.record(zk, Some(&e.key))?.and_then(|z| z.refs.get("moodle_id").cloned());
        let held = held.map(|v| match v {
            Value::String(s) => s,
            Value::Null => String::new(),
            v => v.to_string(),
        });
        if held.as_deref() != Some(mid) {
            return Ok(None);
        }
        Ok(Some(Op {
            seq: 0,
            entity,
            action: Action::WriteBack,
            target: Side::Zoho,
            key: e.key.clone(),
            zoho_id: Some(e.key.clone()),
            moodle_id: Some(mid.to_string()),
            changes: [("moodle_id".to_string(), json!(""))].into_iter().collect(),
            before: [("moodle_id".to_string(), json!(mid))].into_iter().collect(),
            base: None,
            fingerprints: Fingerprints::default(),
            refs: Fields::new(),
            reason: reason("the Moodle id it wrote back, cleared in Zoho"),
            conflict: false,
        }))
    };
    let target_key = match target {
        Side::Zoho => zoho_id.clone(),
        Side::Moodle => moodle_id.clone(),
    };
    Ok(match act {
        Action::Link => Undo::Not("a link is bookkeeping: nothing was sent".into()),
        Action::Delete if entity == Entity::Student || entity == Entity::Teacher => {
            Undo::Not("a Moodle user deleted cannot be brought back by zmsync (restore it in Moodle)".into())
        }
        Action::Create if target == Side::Zoho => {
            let Some(made) = e.target_id.clone().or(zoho_id.clone()) else {
                return Ok(Undo::Not("the journal does not name the Zoho record it created".into()));
            };
            let current = now.record(kind, Some(&made))?.cloned();
            let Some(current) = current else { return Ok(Undo::Stale(format!("Zoho record {made} is gone since"))) };
            if !holds(Some(&current), &changes) {
                return Ok(Undo::Stale("the Zoho record changed since".into()));
            }
            let keep = entity == Entity::Grade
                || matches!(now.settings.deletions.enrollment, RemovalAction::Unenrol | RemovalAction::Delete);
            if !keep {
                return Ok(Undo::Not("deletions.policy.enrollment keeps enrolments: left in Zoho".into()));
            }
            let mut o = op(
                Action::Delete,
                Fields::new(),
                current.fields.clone(),
                refs,
                moodle_id.clone(),
                "Zoho record it created, deleted (Zoho keeps it in the recycle bin)",
            );
            o.zoho_id = Some(made);
            Undo::Ops(vec![o])
        }
        Action::WriteBack => {
            let held = now.record(entity.kinds().0, zoho_id.as_deref())?.and_then(|z| z.refs.get("moodle_id").cloned());
            let wrote = moodle_id.clone().unwrap_or_default();
            if held.as_ref().and_then(Value::as_str) != Some(wrote.as_str()) {
                return Ok(Undo::Stale("Zoho's Moodle id changed since".into()));
            }
            let old = before.get("moodle_id").cloned().unwrap_or(json!(""));
            let changes = [("moodle_id".to_string(), old)].into_iter().collect();
            let before = [("moodle_id".to_string(), json!(wrote))].into_iter().collect();
            Undo::Ops(vec![op(
                Action::WriteBack,
                changes,
                before,
                Fields::new(),
                moodle_id.clone(),
                "Moodle id set back in Zoho",
            )])
        }
        Action::Create => {
            let Some(made) = e.target_id.clone().or(moodle_id.clone()) else {
                return Ok(Undo::Not("the journal does not name what was created".into()));
            };
            let current = now.record(kind, Some(&made))?.cloned();
            let Some(current) = current else { return Ok(Undo::Stale(format!("{kind} {made} is gone since"))) };
            match entity {
                Entity::Student | Entity::Teacher => {
                    let mut ops = Vec::new();
                    if current.field("suspended") != &Value::Bool(true) {
                        ops.push(op(
                            Action::Suspend,
                            Fields::new(),
                            Fields::new(),
                            refs,
                            Some(made.clone()),
                            "user it created, suspended",
                        ));
                    }
                    ops.extend(clear_write_back(now, &made)?);
                    if ops.is_empty() {
                        return Ok(Undo::Not("already suspended, its Moodle id not in Zoho".into()));
                    }
                    Undo::Ops(ops)
                }
                Entity::Class => {
                    let mut ops = Vec::new();
                    if current.field("visible") != &Value::Bool(false) {
                        let hide = [("visible".to_string(), json!(false))].into_iter().collect();
                        let shown = [("visible".to_string(), json!(true))].into_iter().collect();
                        ops.push(op(Action::Hide, hide, shown, refs, Some(made.clone()), "course it created, hidden"));
                    }
                    ops.extend(clear_write_back(now, &made)?);
                    if ops.is_empty() {
                        return Ok(Undo::Not("already hidden, its Moodle id not in Zoho".into()));
                    }
                    Undo::Ops(ops)
                }
                Entity::Unit | Entity::Registration | Entity::Payment => {
                    if !holds(Some(&current), &changes) {
                        return Ok(Undo::Stale("the dashboard row changed since".into()));
                    }
                    Undo::Ops(vec![op(
                        Action::Delete,
                        Fields::new(),
                        current.fields.clone(),
                        refs,
                        Some(made),
                        "row it created, deleted",
                    )])
                }
                _ => Undo::Not(format!("no undo for a {entity} created in Moodle")),
            }
        }
        Action::Enrol => {
            let Some(made) = e.target_id.clone().or(moodle_id.clone()) else {
                return Ok(Undo::Not("the journal does not name the enrolment".into()));
            };
            let Some(current) = now.record(kind, Some(&made))?.cloned() else {
                return Ok(Undo::Stale(format!("enrolment {made} is gone since")));
            };
            let mut refs = refs;
            if let Some((c, u)) = enrolment_ids(&made) {
                refs.insert("courseid".into(), json!(c));
                refs.insert("userid".into(), json!(u));
            }
            Undo::Ops(vec![op(
                Action::Unenrol,
                Fields::new(),
                current.fields.clone(),
                refs,
                Some(made),
                "enrolment it made, removed",
            )])
        }
        Action::Unenrol => {
            if now.record(kind, target_key.as_deref())?.is_some() {
                return Ok(Undo::Stale("enrolled again since".into()));
            }
            let mut refs = refs;
            if let Some((c, u)) = target_key.as_deref().and_then(enrolment_ids) {
                refs.insert("courseid".into(), json!(c));
                refs.insert("userid".into(), json!(u));
            }
            if !refs.contains_key("roleid") {
                if let Some(r) = before.get("roleid").cloned() {
                    refs.insert("roleid".into(), r);
                }
            }
            refs.insert("fields".into(), json!(before));
            Undo::Ops(vec![op(
                Action::Enrol,
                before.clone(),
                Fields::new(),
                refs,
                target_key,
                "enrolment it removed, made again",
            )])
        }
        Action::Delete => {
            // Dashboard rows (users were handled above).
            if now.record(kind, target_key.as_deref())?.is_some() {
                return Ok(Undo::Stale("written again since".into()));
            }
            if before.is_empty() {
                return Ok(Undo::Not("the journal does not hold the row's fields".into()));
            }
            Undo::Ops(vec![op(
                Action::Create,
                before.clone(),
                Fields::new(),
                refs,
                target_key,
                "row it deleted, written again",
            )])
        }
        Action::Update | Action::Suspend | Action::Restore | Action::Hide => {
            let current = now.record(kind, target_key.as_deref())?.cloned();
            let Some(current) = current else { return Ok(Undo::Stale(format!("{kind} is gone since"))) };
            let person = target == Side::Moodle && matches!(entity, Entity::Student | Entity::Teacher);
            if changes.is_empty() {
                // A user suspended or restored as a whole (a removal): the other way round.
                let suspended = current.field("suspended") == &Value::Bool(true);
                return Ok(match (act, person) {
                    (Action::Suspend, true) if suspended => Undo::Ops(vec![op(
                        Action::Restore,
                        Fields::new(),
                        Fields::new(),
                        refs,
                        target_key,
                        "suspension restored",
                    )]),
                    (Action::Restore, true) if !suspended => Undo::Ops(vec![op(
                        Action::Suspend,
                        Fields::new(),
                        Fields::new(),
                        refs,
                        target_key,
                        "restoration undone",
                    )]),
                    (Action::Suspend | Action::Restore, true) => Undo::Stale("its suspension changed since".into()),
                    _ => Undo::Not("no fields were changed".into()),
                });
            }
            if !holds(Some(&current), &changes) {
                return Ok(Undo::Stale("its fields changed since".into()));
            }
            let back: Fields =
                changes.keys().map(|k| (k.clone(), before.get(k.as_str()).cloned().unwrap_or(Value::Null))).collect();
            let action = if person {
                match (back.get("suspended"), changes.get("suspended")) {
                    (Some(Value::Bool(true)), _) => Action::Suspend,
                    (Some(Value::Bool(false)), Some(Value::Bool(true))) => Action::Restore,
                    _ => Action::Update,
                }
            } else if entity == Entity::Class && back.get("visible") == Some(&Value::Bool(false)) {
                Action::Hide
            } else {
                Action::Update
            };
            // An upsert of the whole row or enrolment: the row as it is now, with the fields set back.
            let mut refs = refs;
            if let Some(Value::Object(m)) = refs.get("fields").cloned() {
                let mut whole: Fields = m.into_iter().collect();
                whole.extend(back.clone());
                refs.insert("fields".into(), json!(whole));
            }
            Undo::Ops(vec![op(action, back, changes.clone(), refs, target_key, "fields set back")])
        }
    })
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
        let max = guards::limit(&settings.max_removals, total);
        if removals > max {
            out.push(GuardVerdict {
                entity,
                guard: Guard::MassChange,
                count: removals,
                limit: max,
                outcome: if allow { GuardOutcome::Allowed } else { GuardOutcome::Refused },
                message: format!(
                    "{}: the revert removes or suspends {removals} of {total} {entity} records, over the limit of {max} \
                     (guards.max_removals: the larger of {}% and {}); {}",
                    if allow { "allowed" } else { "refused" },
                    settings.max_removals.percent,
                    settings.max_removals.min_records,
                    if allow {
                        "let through by --allow-mass-change"
                    } else {
                        "review it, then run again with --allow-mass-change if it is right"
                    }
                ),
            });
        }
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
