//! What each applied op of the reverted run becomes, against the store's state now.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::kind_written;
use crate::model::{Entity, Fields, Kind, Record, Side};
use crate::reconcile::{Action, Fingerprints, Op};
use crate::settings::{RemovalAction, Settings};
use crate::store::{JournalRow, Store, StoreError};

/// The store's current state, loaded a kind (or entity) at a time as ops need it.
pub(super) struct Now<'a> {
    pub(super) store: &'a dyn Store,
    pub(super) settings: &'a Settings,
    pub(super) records: HashMap<Kind, HashMap<String, Record>>,
    pub(super) base: HashMap<Entity, HashMap<String, (String, Fields)>>,
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
    pub(super) fn base(&mut self, entity: Entity, key: &str) -> Result<Option<(String, Fields)>, StoreError> {
        if !self.base.contains_key(&entity) {
            let map = self.store.sync_states(entity)?.into_iter().map(|s| (s.key, (s.fingerprint, s.fields))).collect();
            self.base.insert(entity, map);
        }
        Ok(self.base.get(&entity).and_then(|m| m.get(key)).cloned())
    }

    /// The fingerprints an op on these records carries: as they are now.
    pub(super) fn fingerprints(&mut self, op: &Op) -> Result<Fingerprints, StoreError> {
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
pub(super) enum Undo {
    Ops(Vec<Op>),
    Stale(String),
    Not(String),
}

/// Whether `record` still holds every value of `wrote`.
fn holds(record: Option<&Record>, wrote: &Fields) -> bool {
    record.is_some_and(|r| wrote.iter().all(|(k, v)| r.field(k) == v))
}

pub(super) fn undo(now: &mut Now<'_>, run_id: i64, r: &JournalRow) -> Result<Undo, StoreError> {
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
