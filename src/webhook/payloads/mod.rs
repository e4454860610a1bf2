//! Every payload shape the receiver accepts (domain.md "Events", zoho-crm-api.md §8), turned into
//! [`NewEvent`]s. Pure functions of the body: no I/O, so every shape is unit-tested here.
//!
//! - Zoho workflow webhooks, JSON or form-encoded: `{"event_id","event_type","module","record_id",…}` or
//!   `{"notification_id","operation","module","record_id","data":{…}}`; `zoho_id` / `id` also name the
//!   record (one real integration sends `{"zoho_id":"${!BTEC_Students.Id}","module":"BTEC_Students"}`).
//! - Zoho Notification API callbacks: `{"channel_id","ids":[…],"operation","module","server_time","token"}`,
//!   one event per id with `event_id = "zoho:{channel_id}:{id}:{operation}:{server_time}"`. The token is
//!   checked by the server and never stored.
//! - Moodle plugin events: `{"eventid","eventname","courseid","userid"|"relateduserid","timecreated"}` or
//!   `{"event_id","event_type","entity_type","entity_id","student_id","course_id",…}`.
//!
//! Identity and replay ([`Receipt`]): every stored event id starts with its source (`zoho:` / `moodle:`), so
//! ids are unique per source; an event that carries no id gets `sha256:<hex>` of its signed bytes, so a
//! replayed body is a duplicate; a timestamp (`timestamp`, `server_time`, `timecreated`), where the shape has
//! one, must be within the replay window (default a day) and at most 5 min ahead. Zoho record ids are digits
//! (at most 25), Moodle ids positive integers; anything else is a 400.
//!
//! Dirty keys: a Zoho record id; for Moodle `"{courseid}:{userid}"` (the affected user: `relateduserid` when
//! the event has one), or `entity_id` when the course and user are not given.

use std::time::Duration;

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
    #[error("`{field}` is not a {expected}: `{value}`")]
    BadRecordId { field: &'static str, expected: &'static str, value: String },
    #[error(
        "`{field}` ({value}) is {when}: events more than {window} old or more than 5 min ahead of the receiver's \
         clock are refused (a replay, or a clock that is wrong); check the sender's clock, or widen \
         `zmsync serve --replay-window`"
    )]
    OutOfWindow { field: &'static str, value: String, when: String, window: String },
    #[error("`{field}` is not a time: `{value}` (send RFC 3339 such as 2026-01-25T10:00:00Z, or Unix seconds or milliseconds)")]
    BadTime { field: &'static str, value: String },
}

impl PayloadError {
    /// The HTTP status for this error: 400 for a body that cannot be read or a record id that is not one, 415
    /// for its type, 422 otherwise (a timestamp outside the replay window included).
    pub fn status(&self) -> u16 {
        match self {
            PayloadError::Malformed { .. } | PayloadError::NotAnObject(_) | PayloadError::BadRecordId { .. } => 400,
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

/// What a payload is checked against besides itself: the exact signed bytes (an event that carries no id gets
/// one derived from them, so a replay is a duplicate), the receiver's clock and its replay window.
#[derive(Debug, Clone, Copy)]
pub struct Receipt<'a> {
    pub body: &'a [u8],
    pub now_ms: i64,
    /// How old an event's timestamp may be (`zmsync serve --replay-window`, default [`DEFAULT_WINDOW`]).
    pub window: Duration,
}

/// The default replay window: a day.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);
/// How far ahead of the receiver's clock a timestamp may be (clock skew).
pub const FUTURE_SKEW: Duration = Duration::from_secs(300);
/// The longest Zoho record id accepted (Zoho's are 18–19 digits).
pub const MAX_ZOHO_ID: usize = 25;

impl Receipt<'_> {
    /// The id of an event that carries none: the SHA-256 of the signed bytes, so the same body (a replay, a
    /// resend) is the same event and a different body a different one.
    fn derived_id(&self) -> String {
        use sha2::Digest;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(self.body)))
    }

    /// Refuses a timestamp (field `field` of the payload, if present) outside the window.
    fn check_time(&self, map: &Map<String, Value>, field: &'static str) -> Result<(), PayloadError> {
        let Some(raw) = map.get(field).filter(|v| !v.is_null()) else { return Ok(()) };
        let shown: String = match raw {
            Value::String(s) => s.chars().take(40).collect(),
            other => other.to_string().chars().take(40).collect(),
        };
        let at_ms = time_ms(raw).ok_or_else(|| PayloadError::BadTime { field, value: shown.clone() })?;
        let age = self.now_ms.saturating_sub(at_ms);
        let window_ms = i64::try_from(self.window.as_millis()).unwrap_or(i64::MAX);
        let skew_ms = FUTURE_SKEW.as_millis() as i64;
        let when = if age > window_ms {
            format!("{} old", span(age))
        } else if -age > skew_ms {
            format!("{} in the future", span(-age))
        } else {
            return Ok(());
        };
        Err(PayloadError::OutOfWindow { field, value: shown, when, window: span(window_ms) })
    }
}

/// A duration in milliseconds as a rounded phrase: `3 h`, `2 d`, `40 min`.
fn span(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        s if s >= 2 * 86_400 => format!("{} d", s / 86_400),
        s if s >= 3600 => format!("{} h", s / 3600),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// A timestamp in milliseconds since the Unix epoch: RFC 3339 (`2026-01-25T10:00:00Z`, any offset), a naive
/// `2026-01-25 10:00:00` / `2026-01-25T10:00:00` (UTC), or a number of seconds or milliseconds (numbers above
/// 10^11 are milliseconds), as a JSON number or a string of digits.
pub fn time_ms(v: &Value) -> Option<i64> {
    let from_number = |n: i64| if n.abs() > 100_000_000_000 { n } else { n.saturating_mul(1000) };
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)).map(from_number),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(n) = s.parse::<i64>() {
                return Some(from_number(n));
            }
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                return Some(t.timestamp_millis());
            }
            ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                .iter()
                .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok())
                .map(|t| t.and_utc().timestamp_millis())
        }
        _ => None,
    }
}

/// A Zoho record id: digits only, at most [`MAX_ZOHO_ID`] of them.
fn zoho_id(field: &'static str, id: String) -> Result<String, PayloadError> {
    if !id.is_empty() && id.len() <= MAX_ZOHO_ID && id.bytes().all(|b| b.is_ascii_digit()) {
        Ok(id)
    } else {
        Err(PayloadError::BadRecordId {
            field,
            expected: "Zoho record id (digits only, at most 25)",
            value: id.chars().take(40).collect(),
        })
    }
}

/// A Moodle id: a positive integer.
fn moodle_id(field: &'static str, id: String) -> Result<String, PayloadError> {
    match id.parse::<u64>() {
        Ok(n) if n > 0 && id.len() <= 19 && id.bytes().all(|b| b.is_ascii_digit()) => Ok(id),
        _ => Err(PayloadError::BadRecordId {
            field,
            expected: "Moodle id (a positive integer)",
            value: id.chars().take(40).collect(),
        }),
    }
}

/// The stored event id: the source's name, then the id, so ids are unique per source (a Zoho event that
/// calls itself `moodle:777` is `zoho:moodle:777`, and never shadows Moodle's event 777).
fn namespaced(source: &str, id: &str) -> String {
    format!("{source}:{id}")
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
    receipt: &Receipt,
) -> Result<Vec<NewEvent>, PayloadError> {
    check_placeholders(&map)?;
    if is_notification(&map) {
        let events = zoho_notification(map, receipt)?;
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
    let record_id = zoho_id("record_id", record_id)?;
    receipt.check_time(&map, "timestamp")?;
    let event_type = text(&map, &["event_type", "operation"]).unwrap_or_else(|| "update".into());
    // No id from the sender: one from the signed bytes, so a replay of the body is a duplicate.
    let event_id = text(&map, &["event_id", "notification_id"]).unwrap_or_else(|| receipt.derived_id());
    let event_id = namespaced("zoho", &event_id);
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
pub fn zoho_notification(mut map: Map<String, Value>, receipt: &Receipt) -> Result<Vec<NewEvent>, PayloadError> {
    check_placeholders(&map)?;
    map.remove("token");
    let channel = text(&map, &["channel_id"]).ok_or(PayloadError::Missing("channel_id"))?;
    let module = text(&map, &["module"]).ok_or(PayloadError::Missing("module"))?;
    let entity = entity_of_module(&module)
        .ok_or_else(|| PayloadError::UnknownModule { module: module.clone(), known: known_modules() })?;
    let module = ZOHO_ENTITIES.iter().find(|(e, _)| *e == entity).map(|(_, m)| *m).unwrap_or("");
    let operation = text(&map, &["operation"]).ok_or(PayloadError::Missing("operation"))?;
    let server_time = text(&map, &["server_time"]).ok_or(PayloadError::Missing("server_time"))?;
    receipt.check_time(&map, "server_time")?;
    let ids: Vec<String> = match map.get("ids") {
        Some(Value::Array(ids)) => ids
            .iter()
            .map(|v| match v {
                Value::String(s) => zoho_id("ids", s.trim().to_string()),
                Value::Number(n) => zoho_id("ids", n.to_string()),
                other => zoho_id("ids", other.to_string()),
            })
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    if ids.is_empty() {
        return Err(PayloadError::MissingRecordId { expected: "`ids`: a non-empty list of Zoho record ids" });
    }
    let payload = Value::Object(map);
    Ok(ids
        .into_iter()
        .map(|id| NewEvent {
            event_id: namespaced("zoho", &format!("{channel}:{id}:{operation}:{server_time}")),
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
pub fn moodle(entity: &'static str, map: Map<String, Value>, receipt: &Receipt) -> Result<NewEvent, PayloadError> {
    check_placeholders(&map)?;
    let (event_id, event_type, record_id) = if let Some(name) = text(&map, &["eventname"]) {
        let course = text(&map, &["courseid"]);
        let user = text(&map, &["relateduserid", "userid"]);
        let (Some(course), Some(user)) = (course, user) else {
            return Err(PayloadError::MissingRecordId { expected: "`courseid` and `userid` (or `relateduserid`)" });
        };
        let record_id = format!("{}:{}", moodle_id("courseid", course)?, moodle_id("userid", user)?);
        receipt.check_time(&map, "timecreated")?;
        let event_id = text(&map, &["eventid"]).unwrap_or_else(|| receipt.derived_id());
        (event_id, name, record_id)
    } else if map.contains_key("event_type") || map.contains_key("entity_type") || map.contains_key("entity_id") {
        if let Some(t) = text(&map, &["entity_type"]) {
            if !t.eq_ignore_ascii_case(entity) {
                return Err(PayloadError::EntityMismatch { route: entity.into(), payload: t });
            }
        }
        let record_id = match (text(&map, &["course_id", "courseid"]), text(&map, &["student_id", "userid"])) {
            (Some(c), Some(u)) => format!("{}:{}", moodle_id("course_id", c)?, moodle_id("student_id", u)?),
            _ => moodle_id(
                "entity_id",
                text(&map, &["entity_id"]).ok_or(PayloadError::MissingRecordId {
                    expected: "`entity_id`, or `course_id` and `student_id`",
                })?,
            )?,
        };
        receipt.check_time(&map, "timestamp")?;
        let event_type = text(&map, &["event_type"]).ok_or(PayloadError::Missing("event_type"))?;
        let event_id = text(&map, &["event_id"]).unwrap_or_else(|| receipt.derived_id());
        (event_id, event_type, record_id)
    } else {
        return Err(PayloadError::Unrecognised(
            "a Moodle event has `eventname`, `courseid`, `userid` or `event_id`, `event_type`, `entity_type`, `entity_id`",
        ));
    };
    Ok(NewEvent {
        event_id: namespaced("moodle", &event_id),
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

    /// 2026-01-25T10:00:00Z, the examples' time.
    const NOW: i64 = 1_769_335_200_000;

    fn at(body: &[u8]) -> Receipt<'_> {
        Receipt { body, now_ms: NOW, window: DEFAULT_WINDOW }
    }

    const R: Receipt<'static> = Receipt { body: b"{}", now_ms: NOW, window: DEFAULT_WINDOW };

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
        let e = zoho_workflow("student", "BTEC_Students", m.clone(), &R).unwrap();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].event_id, "zoho:evt_123_456");
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
        let e = zoho_workflow("student", "BTEC_Students", m, &R).unwrap();
        assert_eq!((e[0].event_id.as_str(), e[0].event_type.as_str()), ("zoho:event_12345", "update"));
        assert_eq!(e[0].record_id, "5398830000123893227");
    }

    #[test]
    fn zoho_form_encoded_and_derived_id() {
        let body: &[u8] = b"zoho_id=5847596000012345&module=BTEC_Classes&timestamp=2026-01-25T10%3A00%3A00Z";
        let m = object(BodyFormat::Form, body).unwrap();
        let e = zoho_workflow("class", "BTEC_Classes", m.clone(), &at(body)).unwrap();
        assert_eq!(e[0].record_id, "5847596000012345");
        // No id: the hash of the signed bytes, the same at any later time (a replay is a duplicate)...
        use sha2::Digest;
        assert_eq!(e[0].event_id, format!("zoho:sha256:{}", hex::encode(sha2::Sha256::digest(body))));
        let later = Receipt { now_ms: NOW + 3_600_000, ..at(body) };
        assert_eq!(zoho_workflow("class", "BTEC_Classes", m.clone(), &later).unwrap()[0].event_id, e[0].event_id);
        // ...and another body another event.
        let other: &[u8] = b"zoho_id=5847596000012345&module=BTEC_Classes";
        let m2 = object(BodyFormat::Form, other).unwrap();
        assert_ne!(zoho_workflow("class", "BTEC_Classes", m2, &at(other)).unwrap()[0].event_id, e[0].event_id);
    }

    #[test]
    fn ids_are_unique_per_source() {
        let z = zoho_workflow(
            "student",
            "BTEC_Students",
            obj(json!({"event_id":"moodle:777","module":"BTEC_Students","record_id":"5847596000012345"})),
            &R,
        )
        .unwrap();
        let m =
            moodle("enrollment", obj(json!({"eventid":"777","eventname":"x","courseid":12,"userid":34})), &R).unwrap();
        assert_eq!((z[0].event_id.as_str(), m.event_id.as_str()), ("zoho:moodle:777", "moodle:777"));
        let m2 = moodle("grade", obj(json!({"event_id":"777","event_type":"g","entity_id":"5"})), &R).unwrap();
        assert_eq!(m2.event_id, "moodle:777");
    }

    #[test]
    fn the_replay_window_on_every_shape_with_a_time() {
        let day = 86_400_000i64;
        let zoho = |ts: Value| {
            let m = obj(json!({"event_id":"e","module":"BTEC_Students","record_id":"1","timestamp":ts}));
            zoho_workflow("student", "BTEC_Students", m, &R)
        };
        let notify = |t: i64| {
            let m = obj(
                json!({"server_time":t,"module":"BTEC_Students","ids":["1"],"operation":"update","channel_id":"9"}),
            );
            zoho_notification(m, &R)
        };
        let moodle1 =
            |t: i64| moodle("enrollment", obj(json!({"eventname":"x","courseid":1,"userid":2,"timecreated":t})), &R);
        for ok in [
            json!("2026-01-25T10:00:00Z"),
            json!("2026-01-25T15:00:00+05:30"),
            json!("2026-01-24 11:00:00"),
            json!(NOW - day + 60_000),
            json!((NOW + 60_000) / 1000),
            json!(NOW.to_string()),
        ] {
            assert!(zoho(ok.clone()).is_ok(), "{ok}");
        }
        for (bad, word) in [
            (json!("2001-01-01T00:00:00Z"), "old"),
            (json!("2099-01-01T00:00:00Z"), "future"),
            (json!(NOW - day - 60_000), "old"),
            (json!(NOW + 600_000), "future"),
        ] {
            let e = zoho(bad.clone()).unwrap_err();
            assert!(matches!(e, PayloadError::OutOfWindow { .. }) && e.to_string().contains(word), "{bad}: {e}");
            assert_eq!(e.status(), 422);
        }
        assert!(matches!(zoho(json!("yesterday")).unwrap_err(), PayloadError::BadTime { .. }));
        assert!(notify(NOW).is_ok());
        assert!(matches!(notify(NOW - 2 * day).unwrap_err(), PayloadError::OutOfWindow { .. }));
        assert!(matches!(notify(NOW + day).unwrap_err(), PayloadError::OutOfWindow { .. }));
        assert!(moodle1(NOW / 1000).is_ok());
        assert!(matches!(moodle1(NOW / 1000 - 2 * 86_400).unwrap_err(), PayloadError::OutOfWindow { .. }));
        let wide = Receipt { window: Duration::from_secs(3 * 86_400), ..R };
        let m = obj(json!({"eventname":"x","courseid":1,"userid":2,"timecreated":NOW / 1000 - 2 * 86_400}));
        assert!(moodle("enrollment", m, &wide).is_ok(), "the window is configurable");
    }

    #[test]
    fn record_ids_must_be_ids() {
        let zoho = |id: Value| {
            zoho_workflow("student", "BTEC_Students", obj(json!({"event_id":"e","record_id":id})), &R)
                .map(|e| e[0].record_id.clone())
        };
        assert_eq!(zoho(json!("5847596000012345")).unwrap(), "5847596000012345");
        assert_eq!(zoho(json!(5847596000012345u64)).unwrap(), "5847596000012345");
        for bad in
            [json!("../../x"), json!("12a"), json!("1".repeat(26)), json!("x".repeat(30_000)), json!(-5), json!("1 2")]
        {
            let e = zoho(bad.clone()).unwrap_err();
            assert!(matches!(e, PayloadError::BadRecordId { .. }), "{bad}: {e}");
            assert_eq!(e.status(), 400);
            assert!(e.to_string().len() < 200, "the value is cut: {e}");
        }
        let notify = |ids: Value| {
            zoho_notification(
                obj(json!({"server_time":NOW,"module":"BTEC_Students","ids":ids,"operation":"u","channel_id":"9"})),
                &R,
            )
        };
        assert!(notify(json!(["1", 2])).is_ok());
        assert!(matches!(notify(json!(["1", "../x"])).unwrap_err(), PayloadError::BadRecordId { .. }));
        assert!(matches!(notify(json!([null])).unwrap_err(), PayloadError::BadRecordId { .. }));
        let m1 = |c: Value, u: Value| {
            moodle("enrollment", obj(json!({"eventid":"1","eventname":"x","courseid":c,"userid":u})), &R)
        };
        assert_eq!(m1(json!(12), json!("34")).unwrap().record_id, "12:34");
        for (c, u) in [(json!(0), json!(1)), (json!(-1), json!(1)), (json!("1"), json!("x")), (json!("1.5"), json!(2))]
        {
            assert!(matches!(m1(c.clone(), u.clone()).unwrap_err(), PayloadError::BadRecordId { .. }), "{c} {u}");
        }
        let m2 = |id: Value| moodle("grade", obj(json!({"event_id":"1","event_type":"g","entity_id":id})), &R);
        assert!(m2(json!("12345")).is_ok());
        assert!(matches!(m2(json!("../../x")).unwrap_err(), PayloadError::BadRecordId { .. }));
    }

    #[test]
    fn zoho_bad_inputs() {
        let err = |v: Value| zoho_workflow("student", "BTEC_Students", obj(v), &R).unwrap_err();
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
        let e = zoho_notification(m.clone(), &R).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].event_id, "zoho:1000000068001:5847596000012345001:update:1769335200473");
        assert_eq!(e[1].record_id, "5847596000012345002");
        assert_eq!(e[1].entity_type, "student");
        assert!(e[0].payload.get("token").is_none(), "the token must never be stored");
        assert!(!e[0].payload.to_string().contains("s3cr3t"));
        let mut bad = m.clone();
        bad.insert("ids".into(), json!([]));
        assert!(matches!(zoho_notification(bad, &R).unwrap_err(), PayloadError::MissingRecordId { .. }));
        let mut bad = m;
        bad.insert("module".into(), json!("Leads"));
        assert!(matches!(zoho_notification(bad, &R).unwrap_err(), PayloadError::UnknownModule { .. }));
    }

    #[test]
    fn moodle_first_shape() {
        let m =
            obj(json!({"eventid":"991","eventname":"\\core\\event\\user_enrolment_created","courseid":12,"userid":34,
                           "timecreated":1769331600}));
        let e = moodle("enrollment", m.clone(), &R).unwrap();
        assert_eq!(e.event_id, "moodle:991");
        assert_eq!(e.record_id, "12:34");
        assert_eq!(e.event_type, "\\core\\event\\user_enrolment_created");
        let mut no_id = m.clone();
        no_id.remove("eventid");
        let e1 = moodle("enrollment", no_id.clone(), &at(b"body")).unwrap();
        assert!(e1.event_id.starts_with("moodle:sha256:"), "{}", e1.event_id);
        assert_eq!(moodle("enrollment", no_id, &at(b"body")).unwrap().event_id, e1.event_id, "derived ids are stable");
        let mut related = m;
        related.insert("relateduserid".into(), json!(56));
        assert_eq!(moodle("enrollment", related, &R).unwrap().record_id, "12:56");
    }

    #[test]
    fn moodle_second_shape_and_bad_inputs() {
        let m = obj(json!({"event_id":"moodle_evt_789","event_type":"grade_submitted","entity_type":"grade",
                           "entity_id":"12345","student_id":1234,"course_id":567,"grade":85.5}));
        let e = moodle("grade", m.clone(), &R).unwrap();
        assert_eq!(
            (e.event_id.as_str(), e.record_id.as_str(), e.event_type.as_str()),
            ("moodle:moodle_evt_789", "567:1234", "grade_submitted")
        );
        let mut only_entity = m.clone();
        only_entity.remove("student_id");
        assert_eq!(moodle("grade", only_entity, &R).unwrap().record_id, "12345");
        assert!(matches!(moodle("enrollment", m.clone(), &R).unwrap_err(), PayloadError::EntityMismatch { .. }));
        let mut none = m;
        for k in ["student_id", "course_id", "entity_id"] {
            none.remove(k);
        }
        assert!(matches!(moodle("grade", none, &R).unwrap_err(), PayloadError::MissingRecordId { .. }));
        assert!(matches!(
            moodle("grade", obj(json!({"eventname":"x","courseid":1})), &R).unwrap_err(),
            PayloadError::MissingRecordId { .. }
        ));
        assert!(matches!(moodle("grade", obj(json!({"hello":"x"})), &R).unwrap_err(), PayloadError::Unrecognised(_)));
    }
}
