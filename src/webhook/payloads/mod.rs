//! Every payload shape the receiver accepts (docs/webhooks.md "Payloads"), turned into
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
mod tests;
