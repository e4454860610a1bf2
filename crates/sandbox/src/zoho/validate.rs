//! Validation of the fields a write sets, as Zoho checks them (§5, §11): types, lengths, pick lists, lookups,
//! unique fields, and the per-record error it answers with.

use chrono::NaiveDate;
use serde_json::{json, Map, Value};

use super::schema::{FieldDef, FieldType, ModuleDef, SYSTEM_FIELDS};
use super::store::{Actor, Store};

#[derive(Debug)]
pub(super) struct RecordError {
    pub(super) code: &'static str,
    pub(super) message: &'static str,
    pub(super) details: Value,
}

impl RecordError {
    pub(super) fn to_json(&self) -> Value {
        json!({"code": self.code, "status": "error", "message": self.message, "details": self.details})
    }
}

pub(super) fn path(i: usize, field: &str) -> String {
    format!("$.data[{i}].{field}")
}

pub(super) fn invalid(fd: &FieldDef, i: usize, extra: Value) -> RecordError {
    let mut details = json!({"api_name": fd.api_name, "json_path": path(i, fd.api_name)});
    if let (Value::Object(d), Value::Object(e)) = (&mut details, extra) {
        d.extend(e);
    }
    RecordError { code: "INVALID_DATA", message: "invalid data", details }
}

pub(super) fn is_blank(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.trim().is_empty(),
        _ => false,
    }
}

pub(super) fn valid_email(s: &str) -> bool {
    let mut parts = s.split('@');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(local), Some(domain), None) => {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        }
        _ => false,
    }
}

/// Checks one value against its field type; the value to store.
pub(super) fn check_value(store: &Store, fd: &FieldDef, v: &Value, i: usize) -> Result<Value, RecordError> {
    if v.is_null() {
        return Ok(Value::Null);
    }
    let expected = |t: &str| invalid(fd, i, json!({"expected_data_type": t}));
    match fd.ty {
        FieldType::Text | FieldType::Textarea | FieldType::Phone | FieldType::Email => {
            let Some(s) = v.as_str() else { return Err(expected(fd.ty.data_type())) };
            if s.chars().count() > fd.ty.length() {
                return Err(invalid(fd, i, json!({"maximum_length": fd.ty.length()})));
            }
            if fd.ty == FieldType::Email && !s.is_empty() && !valid_email(s) {
                return Err(expected("email"));
            }
            Ok(v.clone())
        }
        FieldType::Integer => match v.as_i64() {
            Some(n) if i32::try_from(n).is_ok() => Ok(v.clone()),
            _ => Err(expected("integer")),
        },
        FieldType::Double | FieldType::Currency | FieldType::Percent => {
            if v.is_number() {
                Ok(v.clone())
            } else {
                Err(expected(fd.ty.data_type()))
            }
        }
        FieldType::Boolean => {
            if v.is_boolean() {
                Ok(v.clone())
            } else {
                Err(expected("boolean"))
            }
        }
        FieldType::Date => match v.as_str().map(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d")) {
            Some(Ok(_)) => Ok(v.clone()),
            _ => Err(expected("date")),
        },
        FieldType::Picklist(values) => match v.as_str() {
            Some(s) if values.contains(&s) => Ok(v.clone()),
            _ => Err(invalid(fd, i, json!({"expected_data_type": "picklist", "supported_values": values}))),
        },
        FieldType::Lookup(target) => {
            // `{"id": ...}` is the documented shape; a bare id string is accepted too. `name` is ignored.
            let id = match v {
                Value::Object(o) => o.get("id").and_then(Value::as_str),
                Value::String(s) => Some(s.as_str()),
                _ => None,
            };
            let Some(id) = id else { return Err(expected("lookup")) };
            if !store.exists(target, id) {
                return Err(invalid(fd, i, json!({"id": id})));
            }
            Ok(json!({"id": id}))
        }
    }
}

pub(super) fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.trim().eq_ignore_ascii_case(y.trim()),
        (Value::Object(x), Value::Object(y)) => x.get("id") == y.get("id"),
        _ => a == b,
    }
}

/// The first other record whose `field` equals `v`, in id order.
pub(super) fn find_by(store: &Store, module: &str, field: &str, v: &Value, except: Option<&str>) -> Option<String> {
    store
        .modules
        .get(module)?
        .iter()
        .find(|(id, r)| Some(id.0.as_str()) != except && r.fields.get(field).is_some_and(|x| same_value(x, v)))
        .map(|(id, _)| id.0.clone())
}

/// Validates the fields a write sets; returns them as stored. `self_id` is the record being updated.
pub(super) fn validate(
    store: &Store,
    m: &ModuleDef,
    obj: &Map<String, Value>,
    i: usize,
    self_id: Option<&str>,
) -> Result<Map<String, Value>, RecordError> {
    let inserting = self_id.is_none();
    for fd in m.fields.iter().filter(|f| f.mandatory) {
        let missing = if inserting {
            is_blank(obj.get(fd.api_name))
        } else {
            obj.contains_key(fd.api_name) && is_blank(obj.get(fd.api_name))
        };
        if missing {
            return Err(RecordError {
                code: "MANDATORY_NOT_FOUND",
                message: "required field not found",
                details: json!({"api_name": fd.api_name, "json_path": path(i, fd.api_name)}),
            });
        }
    }
    let mut out = Map::new();
    for (k, v) in obj {
        if SYSTEM_FIELDS.contains(&k.as_str()) || k.starts_with('$') {
            continue;
        }
        // Zoho ignores keys that are not fields of the module.
        let Some(fd) = m.field(k) else { continue };
        out.insert(k.clone(), check_value(store, fd, v, i)?);
    }
    for fd in m.fields.iter().filter(|f| f.unique) {
        let Some(v) = out.get(fd.api_name).filter(|v| !is_blank(Some(v))) else { continue };
        if let Some(dup) = find_by(store, m.api_name, fd.api_name, v, self_id) {
            return Err(RecordError {
                code: "DUPLICATE_DATA",
                message: "duplicate data",
                details: json!({
                    "api_name": fd.api_name,
                    "json_path": path(i, fd.api_name),
                    "id": dup,
                    "duplicate_record": {
                        "id": dup,
                        "Owner": Actor::Human.user(),
                        "module": {"api_name": m.api_name, "id": m.id},
                    },
                    "more_records": false,
                }),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert!(valid_email("a.b@student.edu"));
        assert!(!valid_email("a.b@student"));
        assert!(!valid_email("a@b@c.d"));
        assert!(!valid_email("@c.d"));
    }
}
