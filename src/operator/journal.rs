//! What the journal keeps of each planned op besides its changes: ids, before-values, refs, reason and the
//! record it is about ([`OpDetail`]), written with the plan before anything is sent.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use crate::model::{Entity, Fields, Kind, Side};
use crate::reconcile::Op;
use crate::store::{OpDetail, Store, StoreError};

/// The Zoho id of the record `op` is about: the person of an enrolment, teaching or grade (`person|class`),
/// the student of a registration or payment, else the op's own key.
pub fn subject(op: &Op) -> String {
    match op.entity {
        Entity::Enrollment | Entity::Teaching | Entity::Grade => {
            op.key.split('|').next().unwrap_or(&op.key).to_string()
        }
        Entity::Registration | Entity::Payment => {
            let from =
                |f: &Fields| f.get("student").and_then(Value::as_str).filter(|s| !s.is_empty()).map(String::from);
            let in_refs =
                op.refs.get("fields").and_then(|v| v.get("student")).and_then(Value::as_str).map(String::from);
            from(&op.changes).or_else(|| from(&op.before)).or(in_refs).unwrap_or_else(|| op.key.clone())
        }
        _ => op.key.clone(),
    }
}

/// The details of `ops`, in order. A removal carries no before-values in its op (it changes no field), so the
/// removed record's fields are taken from the store's last snapshot: what a revert needs to put it back.
pub fn details(store: &dyn Store, ops: &[Op]) -> Result<Vec<OpDetail>, StoreError> {
    let removed: HashSet<Kind> = ops
        .iter()
        .filter(|o| o.action.is_removal() && o.before.is_empty())
        .map(|o| kind_written(o.entity, o.target))
        .collect();
    let mut records: HashMap<Kind, HashMap<String, Fields>> = HashMap::new();
    for k in removed {
        records.insert(k, store.records(k)?.into_iter().map(|r| (r.key, r.fields)).collect());
    }
    Ok(ops
        .iter()
        .map(|op| {
            let target_key = match op.target {
                Side::Zoho => op.zoho_id.as_deref(),
                Side::Moodle => op.moodle_id.as_deref(),
            };
            let before = if op.before.is_empty() && op.action.is_removal() {
                target_key
                    .and_then(|k| records.get(&kind_written(op.entity, op.target)).and_then(|m| m.get(k)))
                    .cloned()
                    .unwrap_or_default()
            } else {
                op.before.clone()
            };
            OpDetail {
                zoho_id: op.zoho_id.clone(),
                moodle_id: op.moodle_id.clone(),
                before: Some(json!(before)),
                base: Some(json!(op.base)),
                refs: (!op.refs.is_empty()).then(|| json!(op.refs)),
                reason: Some(op.reason.clone()),
                subject: Some(subject(op)),
            }
        })
        .collect())
}

/// The kind of record an op of `entity` writes on `target`.
pub fn kind_written(entity: Entity, target: Side) -> Kind {
    let (z, m) = entity.kinds();
    match target {
        Side::Zoho => z,
        Side::Moodle => m,
    }
}
