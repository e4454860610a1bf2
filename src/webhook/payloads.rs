//! Every payload shape the receiver accepts (domain.md "Events", zoho-crm-api.md §8), turned into
//! [`NewEvent`]s. Pure functions of the body: no I/O, so every shape is unit-tested here.
//!
//! - Zoho workflow webhooks, JSON or form-encoded: `{"event_id","event_type","module","record_id",…}` or
//!   `{"notification_id","operation","module","record_id","data":{…}}`; `zoho_id` / `id` also name the
//!   record (one real integration sends `{"zoho_id":"${!BTEC_Students.Id}","module":"BTEC_Students"}`).
//! - Zoho Notification API callbacks: `{"channel_id","ids":[…],"operation","module","server_time","token"}`,
//!   one event per id with `event_id = "{channel_id}:{id}:{operation}:{server_time}"`. The token is checked
//!   by the server and never stored.
//! - Moodle plugin events: `{"eventid","eventname","courseid","userid"|"relateduserid","timecreated"}` or
//!   `{"event_id","event_type","entity_type","entity_id","student_id","course_id",…}`.
//!
//! Dirty keys: a Zoho record id; for Moodle `"{courseid}:{userid}"` (the affected user: `relateduserid` when
//! the event has one), or `entity_id` when the course and user are not given.

use serde_json::{Map, Value};

use super::routes::{entity_of_module, ZOHO_ENTITIES};
use crate::store::events::NewEvent;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the body is not valid {format}: {message}")]
    Malformed { format: &'static str, message: String },
    #[error("the body must be a JSON object (or form fields), not {0}")]
    NotAnObject(&'static str),
    #[error("content type `{0}` is not accepted; send application/json or application/x-www-form-urlencoded")]
    ContentType(String),
    #[error(
        "field `{field}` holds an unsubstituted placeholder ({value}); the Zoho workflow webhook is misconfigured: \
         check the merge field in its body"
    )]
    Placeholder { field: String, value: String },
    #[error("unknown module `{module}`; known modules: {known}")]
    UnknownModule { module: String, known: String },
    #[error("the payload's module `{payload}` does not belong on this route (it expects `{route}`); post it to the route of its module")]
    ModuleMismatch { route: String, payload: String },
    #[error("the payload's entity_type `{payload}` does not belong on this route (it expects `{route}`)")]
    EntityMismatch { route: String, payload: String },
    #[error("missing record id: {expected}")]
    MissingRecordId { expected: &'static str },
    #[error("missing field `{0}`")]
    Missing(&'static str),
    #[error("unrecognised payload: {0}")]
    Unrecognised(&'static str),
}

impl PayloadError {
    /// The HTTP status for this error: 400 for a body that cannot be read, 415 for its type, 422 otherwise.
    pub fn status(&self) -> u16 {
        match self {
            PayloadError::Malformed { .. } | PayloadError::NotAnObject(_) => 400,
            PayloadError::ContentType(_) => 415,
            _ => 422,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Form,
}

/// The body format from a Content-Type header. `text/plain` is read as JSON (Zoho's "raw" webhook bodies
/// may be sent with it).
pub fn body_format(content_type: Option<&str>) -> Result<BodyFormat, PayloadError> {
    let raw = content_type.unwrap_or("").trim();
    let mime = raw.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match mime.as_str() {
        "application/json" | "text/json" | "text/plain" => Ok(BodyFormat::Json),
        m if m.starts_with("application/") && m.ends_with("+json") => Ok(BodyFormat::Json),
        "application/x-www-form-urlencoded" => Ok(BodyFormat::Form),
        "" => Err(PayloadError::ContentType("(none)".into())),
        _ => Err(PayloadError::ContentType(raw.chars().take(100).collect())),
    }
}

/// Reads the body as an object: JSON, or form fields (each value a string).
pub fn object(format: BodyFormat, body: &[u8]) -> Result<Map<String, Value>, PayloadError> {
    match format {
        BodyFormat::Json => {
            let value: Value = serde_json::from_slice(body)
                .map_err(|e| PayloadError::Malformed { format: "JSON", message: e.to_string() })?;
            match value {
                Value::Object(m) => Ok(m),
                Value::Array(_) => Err(PayloadError::NotAnObject("an array")),
                Value::String(_) => Err(PayloadError::NotAnObject("a string")),
                Value::Number(_) => Err(PayloadError::NotAnObject("a number")),
                Value::Bool(_) => Err(PayloadError::NotAnObject("a boolean")),
                Value::Null => Err(PayloadError::NotAnObject("null")),
            }
        }
        BodyFormat::Form => {
            let text = std::str::from_utf8(body)
                .map_err(|e| PayloadError::Malformed { format: "form data", message: format!("not UTF-8: {e}") })?;
            let mut map = Map::new();
            for (k, v) in form_urlencoded::parse(text.as_bytes()) {
                map.insert(k.into_owned(), Value::String(v.into_owned()));
            }
            if map.is_empty() {
                return Err(PayloadError::Malformed { format: "form data", message: "no fields".into() });
            }
            Ok(map)
        }
    }
}

/// Rejects unsubstituted `${...}` merge placeholders anywhere in the payload.
pub fn check_placeholders(map: &Map<String, Value>) -> Result<(), PayloadError> {
    fn walk(path: &str, v: &Value) -> Result<(), PayloadError> {
        match v {
            Value::String(s) if s.contains("${") => {
                Err(PayloadError::Placeholder { field: path.to_string(), value: s.chars().take(60).collect() })
            }
            Value::Array(a) => a.iter().enumerate().try_for_each(|(i, v)| walk(&format!("{path}[{i}]"), v)),
            Value::Object(m) => m.iter().try_for_each(|(k, v)| walk(&format!("{path}.{k}"), v)),
            _ => Ok(()),
        }
    }
    map.iter().try_for_each(|(k, v)| walk(k, v))
}

/// A field as a non-empty string: strings are trimmed, numbers are written out.
fn text(map: &Map<String, Value>, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| match map.get(*n) {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

fn known_modules() -> String {
    ZOHO_ENTITIES.iter().map(|(_, m)| *m).collect::<Vec<_>>().join(", ")
}

/// Checks a payload's module against the route's.
fn check_module(route_module: &str, payload_module: &str) -> Result<(), PayloadError> {
    if entity_of_module(payload_module).is_none() {
        return Err(PayloadError::UnknownModule { module: payload_module.to_string(), known: known_modules() });
    }
    if !payload_module.eq_ignore_ascii_case(route_module) {
        return Err(PayloadError::ModuleMismatch { route: route_module.into(), payload: payload_module.into() });
    }
    Ok(())
}

/// Whether the object is a Notification API callback (`channel_id` plus `ids`).
pub fn is_notification(map: &Map<String, Value>) -> bool {
    map.contains_key("channel_id") && map.contains_key("ids")
}

/// A Zoho workflow webhook posted to the route of `entity` / `module`. A Notification API shape relayed to an
/// entity route is accepted too (its module must match).
pub fn zoho_workflow(
    entity: &'static str,
    module: &'static str,
    mut map: Map<String, Value>,
    received_ms: i64,
) -> Result<Vec<NewEvent>, PayloadError> {
    check_placeholders(&map)?;
    if is_notification(&map) {
        let events = zoho_notification(map)?;
        if let Some(e) = events.first() {
            check_module(module, e.module.as_deref().unwrap_or(""))?;
        }
        return Ok(events);
    }
    if let Some(m) = text(&map, &["module"]) {
        check_module(module, &m)?;
    }
    let record_id = text(&map, &["record_id", "zoho_id", "id"])
        .ok_or(PayloadError::MissingRecordId { expected: "`record_id` (or `zoho_id`) with the Zoho record id" })?;
    let event_type = text(&map, &["event_type", "operation"]).unwrap_or_else(|| "update".into());
    let event_id = match text(&map, &["event_id", "notification_id"]) {
        Some(id) => id,
        None => {
            // No id from the sender: derive one. With a timestamp it is stable (a resend is a duplicate);
            // without one, the receipt time keeps separate changes apart.
            let at = text(&map, &["timestamp"]).unwrap_or_else(|| received_ms.to_string());
            format!("zoho:{module}:{record_id}:{event_type}:{at}")
        }
    };
    map.remove("token");
    Ok(vec![NewEvent {
        event_id,
        source: "zoho".into(),
        event_type,
        module: Some(module.into()),
        entity_type: entity.into(),
        record_id,
        payload: Value::Object(map),
    }])
}

/// The shared token of a Notification API callback, if any (checked by the server before anything else).
pub fn notification_token(map: &Map<String, Value>) -> Option<&str> {
    map.get("token").and_then(Value::as_str)
}

/// A Notification API callback: one event per id. The `token` is removed from the stored payload.
pub fn zoho_notification(mut map: Map<String, Value>) -> Result<Vec<NewEvent>, PayloadError> {
    check_placeholders(&map)?;
    map.remove("token");
    let channel = text(&map, &["channel_id"]).ok_or(PayloadError::Missing("channel_id"))?;
    let module = text(&map, &["module"]).ok_or(PayloadError::Missing("module"))?;
    let entity = entity_of_module(&module)
        .ok_or_else(|| PayloadError::UnknownModule { module: module.clone(), known: known_modules() })?;
    let module = ZOHO_ENTITIES.iter().find(|(e, _)| *e == entity).map(|(_, m)| *m).unwrap_or("");
    let operation = text(&map, &["operation"]).ok_or(PayloadError::Missing("operation"))?;
    let server_time = text(&map, &["server_time"]).ok_or(PayloadError::Missing("server_time"))?;
    let ids: Vec<String> = match map.get("ids") {
        Some(Value::Array(ids)) => ids
            .iter()
            .filter_map(|v| match v {
                Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if ids.is_empty() {
        return Err(PayloadError::MissingRecordId { expected: "`ids`: a non-empty list of Zoho record ids" });
    }
    let payload = Value::Object(map);
    Ok(ids
        .into_iter()
        .map(|id| NewEvent {
            event_id: format!("{channel}:{id}:{operation}:{server_time}"),
            source: "zoho".into(),
            event_type: operation.clone(),
            module: Some(module.into()),
            entity_type: entity.into(),
            record_id: id,
            payload: payload.clone(),
        })
        .collect())
}

/// A Moodle plugin event posted to the route of `entity`.
pub fn moodle(entity: &'static str, map: Map<String, Value>) -> Result<NewEvent, PayloadError> {
    check_placeholders(&map)?;
    let (event_id, event_type, record_id) = if let Some(name) = text(&map, &["eventname"]) {
        let course = text(&map, &["courseid"]);
        let user = text(&map, &["relateduserid", "userid"]);
        let (Some(course), Some(user)) = (course, user) else {
            return Err(PayloadError::MissingRecordId { expected: "`courseid` and `userid` (or `relateduserid`)" });
        };
        let record_id = format!("{course}:{user}");
        let event_id = match text(&map, &["eventid"]) {
            Some(id) => format!("moodle:{id}"),
            None => {
                let at = text(&map, &["timecreated"]).ok_or(PayloadError::Missing("timecreated (or eventid)"))?;
                format!("moodle:{name}:{course}:{user}:{at}")
            }
        };
        (event_id, name, record_id)
    } else if map.contains_key("event_type") || map.contains_key("entity_type") || map.contains_key("entity_id") {
        if let Some(t) = text(&map, &["entity_type"]) {
            if !t.eq_ignore_ascii_case(entity) {
                return Err(PayloadError::EntityMismatch { route: entity.into(), payload: t });
            }
        }
        let record_id = match (text(&map, &["course_id", "courseid"]), text(&map, &["student_id", "userid"])) {
            (Some(c), Some(u)) => format!("{c}:{u}"),
            _ => text(&map, &["entity_id"])
                .ok_or(PayloadError::MissingRecordId { expected: "`entity_id`, or `course_id` and `student_id`" })?,
        };
        let event_type = text(&map, &["event_type"]).ok_or(PayloadError::Missing("event_type"))?;
        let event_id = text(&map, &["event_id"]).ok_or(PayloadError::Missing("event_id"))?;
        (event_id, event_type, record_id)
    } else {
        return Err(PayloadError::Unrecognised(
            "a Moodle event has `eventname`, `courseid`, `userid` or `event_id`, `event_type`, `entity_type`, `entity_id`",
        ));
    };
    Ok(NewEvent {
        event_id,
        source: "moodle".into(),
        event_type,
        module: None,
        entity_type: entity.into(),
        record_id,
        payload: Value::Object(map),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn content_types() {
        assert_eq!(body_format(Some("application/json; charset=utf-8")), Ok(BodyFormat::Json));
        assert_eq!(body_format(Some("Application/JSON")), Ok(BodyFormat::Json));
        assert_eq!(body_format(Some("text/plain")), Ok(BodyFormat::Json));
        assert_eq!(body_format(Some("application/x-www-form-urlencoded")), Ok(BodyFormat::Form));
        assert_eq!(body_format(Some("application/xml")).unwrap_err().status(), 415);
        assert_eq!(body_format(None).unwrap_err().status(), 415);
    }

    #[test]
    fn zoho_first_shape() {
        let m = obj(json!({"event_id":"evt_123_456","event_type":"created","module":"BTEC_Students",
                           "record_id":"5847596000012345","changed_fields":["all"],"timestamp":"2026-01-25T10:00:00Z"}));
        let e = zoho_workflow("student", "BTEC_Students", m.clone(), 0).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].event_id, "evt_123_456");
        assert_eq!(e[0].event_type, "created");
        assert_eq!(e[0].record_id, "5847596000012345");
        assert_eq!(e[0].entity_type, "student");
        assert_eq!(e[0].module.as_deref(), Some("BTEC_Students"));
        assert_eq!(e[0].payload, Value::Object(m));
    }

    #[test]
    fn zoho_second_shape_and_numbers() {
        let m =
            obj(json!({"notification_id":"event_12345","timestamp":"2026-01-25T10:00:00Z","module":"BTEC_Students",
                           "operation":"update","record_id":5398830000123893227u64,"data":{"Name":"John Doe"}}));
        let e = zoho_workflow("student", "BTEC_Students", m, 0).unwrap();
        assert_eq!((e[0].event_id.as_str(), e[0].event_type.as_str()), ("event_12345", "update"));
        assert_eq!(e[0].record_id, "5398830000123893227");
    }

    #[test]
    fn zoho_form_encoded_and_derived_id() {
        let m = object(
            BodyFormat::Form,
            b"zoho_id=5847596000012345&module=BTEC_Classes&timestamp=2026-01-25T10%3A00%3A00Z",
        )
        .unwrap();
        let e = zoho_workflow("class", "BTEC_Classes", m.clone(), 7).unwrap();
        assert_eq!(e[0].record_id, "5847596000012345");
        assert_eq!(e[0].event_id, "zoho:BTEC_Classes:5847596000012345:update:2026-01-25T10:00:00Z");
        let mut m2 = m;
        m2.remove("timestamp");
        assert_eq!(
            zoho_workflow("class", "BTEC_Classes", m2, 7).unwrap()[0].event_id,
            "zoho:BTEC_Classes:5847596000012345:update:7"
        );
    }

    #[test]
    fn zoho_bad_inputs() {
        let err = |v: Value| zoho_workflow("student", "BTEC_Students", obj(v), 0).unwrap_err();
        assert!(matches!(err(json!({"event_id":"e","module":"BTEC_Students"})), PayloadError::MissingRecordId { .. }));
        assert!(matches!(
            err(json!({"event_id":"e","module":"Leads","record_id":"1"})),
            PayloadError::UnknownModule { .. }
        ));
        assert!(matches!(
            err(json!({"event_id":"e","module":"BTEC_Teachers","record_id":"1"})),
            PayloadError::ModuleMismatch { .. }
        ));
        let p = err(json!({"zoho_id":"${!BTEC_Students.Id}","module":"BTEC_Students"}));
        assert!(matches!(p, PayloadError::Placeholder { ref field, .. } if field == "zoho_id"), "{p}");
        assert_eq!(p.status(), 422);
        let p = err(json!({"event_id":"e","record_id":"1","data":{"Name":"${Name}"}}));
        assert!(matches!(p, PayloadError::Placeholder { ref field, .. } if field == "data.Name"), "{p}");
        assert_eq!(object(BodyFormat::Json, b"{not json").unwrap_err().status(), 400);
        assert_eq!(object(BodyFormat::Json, b"[1]").unwrap_err().status(), 400);
        assert_eq!(object(BodyFormat::Form, b"").unwrap_err().status(), 400);
    }

    #[test]
    fn notification_splits_ids_and_drops_token() {
        let m = obj(json!({"server_time":1769335200473u64,"query_params":{"src":"watch"},"module":"BTEC_Students",
            "resource_uri":"https://www.zohoapis.eu/crm/v8/BTEC_Students","ids":["5847596000012345001","5847596000012345002"],
            "affected_fields":[],"operation":"update","channel_id":"1000000068001","token":"s3cr3t"}));
        assert!(is_notification(&m));
        assert_eq!(notification_token(&m), Some("s3cr3t"));
        let e = zoho_notification(m.clone()).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].event_id, "1000000068001:5847596000012345001:update:1769335200473");
        assert_eq!(e[1].record_id, "5847596000012345002");
        assert_eq!(e[1].entity_type, "student");
        assert!(e[0].payload.get("token").is_none(), "the token must never be stored");
        assert!(!e[0].payload.to_string().contains("s3cr3t"));
        let mut bad = m.clone();
        bad.insert("ids".into(), json!([]));
        assert!(matches!(zoho_notification(bad).unwrap_err(), PayloadError::MissingRecordId { .. }));
        let mut bad = m;
        bad.insert("module".into(), json!("Leads"));
        assert!(matches!(zoho_notification(bad).unwrap_err(), PayloadError::UnknownModule { .. }));
    }

    #[test]
    fn moodle_first_shape() {
        let m =
            obj(json!({"eventid":"991","eventname":"\\core\\event\\user_enrolment_created","courseid":12,"userid":34,
                           "timecreated":1767261600}));
        let e = moodle("enrollment", m.clone()).unwrap();
        assert_eq!(e.event_id, "moodle:991");
        assert_eq!(e.record_id, "12:34");
        assert_eq!(e.event_type, "\\core\\event\\user_enrolment_created");
        let mut no_id = m.clone();
        no_id.remove("eventid");
        let e1 = moodle("enrollment", no_id.clone()).unwrap();
        assert_eq!(e1.event_id, "moodle:\\core\\event\\user_enrolment_created:12:34:1767261600");
        assert_eq!(moodle("enrollment", no_id).unwrap().event_id, e1.event_id, "derived ids are stable");
        let mut related = m;
        related.insert("relateduserid".into(), json!(56));
        assert_eq!(moodle("enrollment", related).unwrap().record_id, "12:56");
    }

    #[test]
    fn moodle_second_shape_and_bad_inputs() {
        let m = obj(json!({"event_id":"moodle_evt_789","event_type":"grade_submitted","entity_type":"grade",
                           "entity_id":"12345","student_id":1234,"course_id":567,"grade":85.5}));
        let e = moodle("grade", m.clone()).unwrap();
        assert_eq!(
            (e.event_id.as_str(), e.record_id.as_str(), e.event_type.as_str()),
            ("moodle_evt_789", "567:1234", "grade_submitted")
        );
        let mut only_entity = m.clone();
        only_entity.remove("student_id");
        assert_eq!(moodle("grade", only_entity).unwrap().record_id, "12345");
        assert!(matches!(moodle("enrollment", m.clone()).unwrap_err(), PayloadError::EntityMismatch { .. }));
        let mut none = m;
        for k in ["student_id", "course_id", "entity_id"] {
            none.remove(k);
        }
        assert!(matches!(moodle("grade", none).unwrap_err(), PayloadError::MissingRecordId { .. }));
        assert!(matches!(
            moodle("grade", obj(json!({"eventname":"x","courseid":1}))).unwrap_err(),
            PayloadError::MissingRecordId { .. }
        ));
        assert!(matches!(moodle("grade", obj(json!({"hello":"x"}))).unwrap_err(), PayloadError::Unrecognised(_)));
    }
}
