//! Writes: insert, update, upsert and delete with per-record results in input order (§5, §11 items 10–16),
//! and the UI-edit helpers of the handle.

use std::time::Duration;

use serde_json::{json, Map, Value};

use super::envelope::error;
use super::notify::{Change, ChangeOp};
use super::schema::{self, FieldType, ModuleDef};
use super::shared::Shared;
use super::store::{now, Actor, Id, Rec, Store};
use super::validate::{find_by, is_blank, path, validate, RecordError};
use super::{FakeZohoError, WriteCall, ZohoOptions};
use crate::http::{HttpRequest, HttpResponse};

pub const MAX_WRITE: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Insert,
    Update,
    Upsert,
}

struct Applied {
    id: String,
    op: ChangeOp,
    changed: Vec<String>,
    duplicate_field: Option<String>,
}

fn insert(
    store: &mut Store,
    m: &ModuleDef,
    obj: &Map<String, Value>,
    i: usize,
    actor: Actor,
) -> Result<Applied, RecordError> {
    let fields = validate(store, m, obj, i, None)?;
    let id = store.new_id();
    let t = now();
    let rec = Rec { fields, created: t, modified: t, created_by: actor.user(), modified_by: actor.user() };
    store.modules.entry(m.api_name.to_string()).or_default().insert(Id(id.clone()), rec);
    Ok(Applied { id, op: ChangeOp::Insert, changed: vec!["all".into()], duplicate_field: None })
}

fn update(
    store: &mut Store,
    m: &ModuleDef,
    id: &str,
    obj: &Map<String, Value>,
    i: usize,
    actor: Actor,
) -> Result<Applied, RecordError> {
    if !store.exists(m.api_name, id) {
        return Err(RecordError {
            code: "INVALID_DATA",
            message: "the related id given seems to be invalid",
            details: json!({"id": id}),
        });
    }
    let fields = validate(store, m, obj, i, Some(id))?;
    let Some(rec) = store.modules.get_mut(m.api_name).and_then(|r| r.get_mut(&Id(id.to_string()))) else {
        return Err(RecordError {
            code: "INVALID_DATA",
            message: "the related id given seems to be invalid",
            details: json!({"id": id}),
        });
    };
    let mut changed = Vec::new();
    for (k, v) in fields {
        let old = rec.fields.get(&k).cloned().unwrap_or(Value::Null);
        if old != v {
            changed.push(k.clone());
        }
        if v.is_null() {
            rec.fields.remove(&k);
        } else {
            rec.fields.insert(k, v);
        }
    }
    rec.modified = now();
    rec.modified_by = actor.user();
    Ok(Applied { id: id.to_string(), op: ChangeOp::Update, changed, duplicate_field: None })
}

fn record_id(obj: &Map<String, Value>) -> Option<String> {
    match obj.get("id") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

fn apply_one(
    store: &mut Store,
    m: &ModuleDef,
    op: Op,
    obj: &Map<String, Value>,
    i: usize,
    dcf: &[String],
    actor: Actor,
) -> Result<Applied, RecordError> {
    match op {
        Op::Insert => insert(store, m, obj, i, actor),
        Op::Update => {
            let Some(id) = record_id(obj) else {
                return Err(RecordError {
                    code: "MANDATORY_NOT_FOUND",
                    message: "required field not found",
                    details: json!({"api_name": "id", "json_path": path(i, "id")}),
                });
            };
            update(store, m, &id, obj, i, actor)
        }
        Op::Upsert => {
            let existing = match record_id(obj) {
                Some(id) if store.exists(m.api_name, &id) => Some((id, None)),
                _ => dcf.iter().find_map(|f| {
                    let v = obj.get(f).filter(|v| !is_blank(Some(v)))?;
                    let v = match (m.field(f).map(|fd| fd.ty), v) {
                        (Some(FieldType::Lookup(_)), Value::String(s)) => json!({"id": s}),
                        _ => v.clone(),
                    };
                    find_by(store, m.api_name, f, &v, None).map(|id| (id, Some(f.clone())))
                }),
            };
            match existing {
                Some((id, field)) => {
                    let mut a = update(store, m, &id, obj, i, actor)?;
                    a.duplicate_field = field;
                    Ok(a)
                }
                None => insert(store, m, obj, i, actor),
            }
        }
    }
}

fn success(store: &Store, m: &ModuleDef, a: &Applied, op: Op) -> Value {
    let rec = store.get(m.api_name, &a.id);
    let details = match rec {
        Some(r) => json!({
            "id": a.id,
            "Created_Time": super::store::fmt_time(&r.created),
            "Modified_Time": super::store::fmt_time(&r.modified),
            "Created_By": r.created_by,
            "Modified_By": r.modified_by,
            "$approval_state": "approved",
        }),
        None => json!({"id": a.id}),
    };
    let message = if a.op == ChangeOp::Insert { "record added" } else { "record updated" };
    let mut out = json!({"code": "SUCCESS", "status": "success", "message": message, "details": details});
    if op == Op::Upsert {
        out["action"] = json!(if a.op == ChangeOp::Insert { "insert" } else { "update" });
        out["duplicate_field"] = json!(a.duplicate_field);
    }
    out
}

/// 201/200 when every record succeeded, 207 on a mix, 400 when all failed.
fn batch_status(ok: usize, total: usize, all_ok: u16) -> u16 {
    if ok == total {
        all_ok
    } else if ok == 0 {
        400
    } else {
        207
    }
}

/// Queues the watch notifications of applied changes and, when workflows may run, the workflow webhooks.
fn after_write(shared: &Shared, module: &str, changes: &[Change], workflows: bool) {
    if changes.is_empty() {
        return;
    }
    let webhooks = workflows.then(|| shared.opts().clone());
    shared.notifier.after_write(&shared.base_url(), webhooks.as_ref(), module, changes);
}

fn note_write(shared: &Shared, call: WriteCall) {
    let mut s = shared.stats_mut();
    *s.write_calls.entry(call.module.clone()).or_default() += 1;
    s.max_write_batch = s.max_write_batch.max(call.records);
    s.writes.push(call);
}

fn note_written(shared: &Shared, module: &str, n: usize) {
    *shared.stats_mut().records_written.entry(module.to_string()).or_default() += n as u64;
}

fn pace(opts: &ZohoOptions, records: usize) {
    if opts.per_record_ms > 0 {
        std::thread::sleep(Duration::from_millis(opts.per_record_ms.saturating_mul(records as u64)));
    }
}

/// POST (insert), PUT (update) and POST /upsert. Returns the answer and whether anything was applied.
pub fn write(
    shared: &Shared,
    opts: &ZohoOptions,
    m: &ModuleDef,
    req: &HttpRequest,
    op: Op,
    path_id: Option<&str>,
) -> (HttpResponse, bool) {
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return (
                error(
                    400,
                    "INVALID_DATA",
                    json!({"expected_data_type": "jsonobject"}),
                    "body is not a valid JSON object",
                ),
                false,
            )
        }
    };
    let Some(Value::Array(data)) = body.get("data") else {
        return (
            error(
                400,
                "REQUIRED_PARAM_MISSING",
                json!({"param_name": "data"}),
                "One of the expected parameter is missing",
            ),
            false,
        );
    };
    if data.is_empty() {
        return (error(400, "INVALID_DATA", json!({"param_name": "data"}), "the data given is empty"), false);
    }
    if data.len() > MAX_WRITE {
        return (
            error(
                400,
                "LIMIT_EXCEEDED",
                json!({"limit": MAX_WRITE, "param_name": "data"}),
                "Record insertion limit has been exceeded.",
            ),
            false,
        );
    }
    let trigger: Option<Vec<String>> = match body.get("trigger") {
        None => None,
        Some(Value::Array(a)) => Some(a.iter().filter_map(Value::as_str).map(str::to_string).collect()),
        Some(_) => {
            return (
                error(
                    400,
                    "INVALID_DATA",
                    json!({"param_name": "trigger", "expected_data_type": "jsonarray"}),
                    "invalid trigger",
                ),
                false,
            )
        }
    };
    let dcf: Vec<String> = match body.get("duplicate_check_fields") {
        Some(Value::Array(a)) => {
            let names: Vec<String> = a.iter().filter_map(Value::as_str).map(str::to_string).collect();
            if let Some(bad) = names.iter().find(|n| m.field(n).is_none()) {
                return (
                    error(
                        400,
                        "INVALID_DATA",
                        json!({"api_name": bad, "param_name": "duplicate_check_fields"}),
                        "invalid duplicate_check_fields",
                    ),
                    false,
                );
            }
            names
        }
        // Custom modules check the system field Name first, then the fields marked unique.
        _ => std::iter::once("Name".to_string())
            .chain(m.fields.iter().filter(|f| f.unique).map(|f| f.api_name.to_string()))
            .collect(),
    };
    note_write(
        shared,
        WriteCall {
            module: m.api_name.to_string(),
            operation: match op {
                Op::Insert => "insert",
                Op::Update => "update",
                Op::Upsert => "upsert",
            }
            .into(),
            records: data.len(),
            trigger: trigger.clone(),
            wf_trigger: None,
        },
    );
    pace(opts, data.len());

    let mut results = Vec::with_capacity(data.len());
    let mut changes = Vec::new();
    let mut store = shared.data();
    for (i, item) in data.iter().enumerate() {
        let Value::Object(obj) = item else {
            results.push(
                RecordError {
                    code: "INVALID_DATA",
                    message: "invalid data",
                    details: json!({"json_path": format!("$.data[{i}]"), "expected_data_type": "jsonobject"}),
                }
                .to_json(),
            );
            continue;
        };
        let mut obj = obj.clone();
        if let (Some(id), false) = (path_id, obj.contains_key("id")) {
            obj.insert("id".into(), Value::String(id.to_string()));
        }
        match apply_one(&mut store, m, op, &obj, i, &dcf, Actor::Integration) {
            Ok(a) => {
                results.push(success(&store, m, &a, op));
                changes.push(Change { op: a.op, id: a.id, fields: a.changed });
            }
            Err(e) => results.push(e.to_json()),
        }
    }
    drop(store);
    let ok = changes.len();
    note_written(shared, m.api_name, ok);
    let workflows = trigger.as_ref().is_none_or(|t| t.iter().any(|x| x == "workflow"));
    after_write(shared, m.api_name, &changes, workflows);
    let all_ok = if op == Op::Insert { 201 } else { 200 };
    let status = batch_status(ok, data.len(), all_ok);
    (HttpResponse::json(status, &json!({"data": results})), ok > 0)
}

/// `DELETE /crm/v8/{module}?ids=...` (or `/{module}/{id}`).
pub fn delete(
    shared: &Shared,
    opts: &ZohoOptions,
    m: &ModuleDef,
    req: &HttpRequest,
    path_id: Option<&str>,
) -> (HttpResponse, bool) {
    let params = req.query_pairs();
    let get = |k: &str| params.iter().find(|(p, _)| p == k).map(|(_, v)| v.clone());
    let ids: Vec<String> = match path_id {
        Some(id) => vec![id.to_string()],
        None => get("ids")
            .map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default(),
    };
    if ids.is_empty() {
        return (
            error(
                400,
                "REQUIRED_PARAM_MISSING",
                json!({"param_name": "ids"}),
                "One of the expected parameter is missing",
            ),
            false,
        );
    }
    if ids.len() > MAX_WRITE {
        return (
            error(400, "LIMIT_EXCEEDED", json!({"limit": MAX_WRITE, "param_name": "ids"}), "Record count exceeded"),
            false,
        );
    }
    let wf_trigger = get("wf_trigger");
    note_write(
        shared,
        WriteCall {
            module: m.api_name.to_string(),
            operation: "delete".into(),
            records: ids.len(),
            trigger: None,
            wf_trigger: wf_trigger.clone(),
        },
    );
    pace(opts, ids.len());
    let mut results = Vec::new();
    let mut changes = Vec::new();
    let mut store = shared.data();
    for id in &ids {
        if store.remove(m.api_name, id, Actor::Integration).is_some() {
            results.push(
                json!({"code": "SUCCESS", "status": "success", "message": "record deleted", "details": {"id": id}}),
            );
            changes.push(Change { op: ChangeOp::Delete, id: id.clone(), fields: Vec::new() });
        } else {
            results.push(json!({"code": "INVALID_DATA", "status": "error", "message": "record not deleted", "details": {"id": id}}));
        }
    }
    drop(store);
    let ok = changes.len();
    note_written(shared, m.api_name, ok);
    let workflows = wf_trigger.as_deref().is_none_or(|v| !v.eq_ignore_ascii_case("false"));
    after_write(shared, m.api_name, &changes, workflows);
    (HttpResponse::json(batch_status(ok, ids.len(), 200), &json!({"data": results})), ok > 0)
}

fn module_or_err(module: &str) -> Result<&'static ModuleDef, FakeZohoError> {
    schema::module(module).ok_or_else(|| FakeZohoError::UnknownModule(module.to_string()))
}

fn rejected(e: RecordError) -> FakeZohoError {
    FakeZohoError::Rejected { code: e.code.to_string(), details: e.details }
}

fn as_object(fields: Value) -> Result<Map<String, Value>, FakeZohoError> {
    match fields {
        Value::Object(o) => Ok(o),
        other => Err(FakeZohoError::Rejected {
            code: "INVALID_DATA".into(),
            details: json!({"expected": "object", "got": other}),
        }),
    }
}

pub fn ui_insert(shared: &Shared, module: &str, fields: Value) -> Result<String, FakeZohoError> {
    let m = module_or_err(module)?;
    let obj = as_object(fields)?;
    let a = insert(&mut shared.data(), m, &obj, 0, Actor::Human).map_err(rejected)?;
    let id = a.id.clone();
    after_write(shared, module, &[Change { op: a.op, id: a.id, fields: a.changed }], true);
    Ok(id)
}

pub fn ui_update(shared: &Shared, module: &str, id: &str, fields: Value) -> Result<(), FakeZohoError> {
    let m = module_or_err(module)?;
    let obj = as_object(fields)?;
    let a = {
        let mut store = shared.data();
        if !store.exists(module, id) {
            return Err(FakeZohoError::UnknownRecord { module: module.into(), id: id.into() });
        }
        update(&mut store, m, id, &obj, 0, Actor::Human).map_err(rejected)?
    };
    after_write(shared, module, &[Change { op: a.op, id: a.id, fields: a.changed }], true);
    Ok(())
}

pub fn ui_delete(shared: &Shared, module: &str, id: &str) -> Result<(), FakeZohoError> {
    module_or_err(module)?;
    if shared.data().remove(module, id, Actor::Human).is_none() {
        return Err(FakeZohoError::UnknownRecord { module: module.into(), id: id.into() });
    }
    after_write(shared, module, &[Change { op: ChangeOp::Delete, id: id.into(), fields: Vec::new() }], true);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_status_matrix() {
        assert_eq!(batch_status(3, 3, 201), 201);
        assert_eq!(batch_status(3, 3, 200), 200);
        assert_eq!(batch_status(1, 3, 201), 207);
        assert_eq!(batch_status(0, 3, 200), 400);
    }
}
