//! The watch endpoint, `/crm/v8/actions/watch` (Notification API, §8.2): list, subscribe, amend and
//! unsubscribe the [`Notifier`]'s channels.

use chrono::{DateTime, FixedOffset};
use serde_json::{json, Value};

use super::envelope::error;
use super::notify::{id_key, Channel, Notifier};
use super::schema;
use super::store::{fmt_time, now, parse_time};
use crate::http::{HttpRequest, HttpResponse};

const MAX_WATCH_PER_REQUEST: usize = 50;
const MAX_TOKEN_LEN: usize = 50;
/// Fields a `notification_condition` may name (v6+).
const MAX_CONDITION_FIELDS: usize = 10;

impl Notifier {
    /// `/crm/v8/actions/watch`: GET lists, POST/PUT subscribe, PATCH amends, DELETE unsubscribes.
    pub fn watch(&self, base_url: &str, req: &HttpRequest) -> HttpResponse {
        match req.method.as_str() {
            "GET" => self.list(base_url),
            "POST" | "PUT" => self.subscribe(base_url, req, false),
            "PATCH" => self.subscribe(base_url, req, true),
            "DELETE" => self.unsubscribe(base_url, req),
            _ => method_not_allowed(),
        }
    }

    fn list(&self, base_url: &str) -> HttpResponse {
        let t = now();
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = Vec::new();
        for c in channels.iter().filter(|c| c.expiry > t) {
            for m in c.modules() {
                out.push(json!({
                    "channel_id": c.channel_id,
                    "events": c.events.iter().filter(|e| e.starts_with(&format!("{m}."))).collect::<Vec<_>>(),
                    "channel_expiry": fmt_time(&c.expiry),
                    "resource_name": m,
                    "resource_id": schema::module(&m).map(|d| d.id),
                    "resource_uri": format!("{base_url}/crm/v8/{m}"),
                    "notify_url": c.notify_url,
                    "token": c.token,
                    "notify_on_related_action": c.notify_on_related_action,
                }));
            }
        }
        if out.is_empty() {
            return HttpResponse::empty(204);
        }
        let n = out.len();
        HttpResponse::json(
            200,
            &json!({"watch": out, "info": {"per_page": 200, "count": n, "page": 1, "more_records": false}}),
        )
    }

    fn subscribe(&self, base_url: &str, req: &HttpRequest, patch: bool) -> HttpResponse {
        let items = match serde_json::from_slice::<Value>(&req.body).ok().and_then(|v| v.get("watch").cloned()) {
            Some(Value::Array(items)) if !items.is_empty() => items,
            _ => {
                return error(
                    400,
                    "REQUIRED_PARAM_MISSING",
                    json!({"param_name": "watch"}),
                    "One of the expected parameter is missing",
                )
            }
        };
        if items.len() > MAX_WATCH_PER_REQUEST {
            return error(
                400,
                "LIMIT_EXCEEDED",
                json!({"limit": MAX_WATCH_PER_REQUEST, "param_name": "watch"}),
                "too many watch objects",
            );
        }
        let mut results = Vec::new();
        let mut ok = 0;
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        for (i, item) in items.iter().enumerate() {
            let r = if patch {
                amend(&mut channels, item, i)
            } else {
                parse_channel(item, i).inspect(|c| {
                    channels.retain(|x| x.key() != c.key());
                    channels.push(c.clone());
                })
            };
            match r {
                Ok(c) => {
                    ok += 1;
                    results.push(json!({
                        "code": "SUCCESS",
                        "status": "success",
                        "message": "Successfully subscribed for actions-watch of the given module",
                        "details": {"events": event_details(base_url, &c)},
                    }));
                }
                Err(e) => results.push(e),
            }
        }
        let all_ok = if patch || req.method == "PUT" { 200 } else { 201 };
        let status = if ok == items.len() {
            all_ok
        } else if ok == 0 {
            400
        } else {
            207
        };
        HttpResponse::json(status, &json!({"watch": results}))
    }

    fn unsubscribe(&self, base_url: &str, req: &HttpRequest) -> HttpResponse {
        let ids: Vec<String> = req
            .query_pairs()
            .into_iter()
            .find(|(k, _)| k == "channel_ids")
            .map(|(_, v)| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        if ids.is_empty() {
            return error(
                400,
                "REQUIRED_PARAM_MISSING",
                json!({"param_name": "channel_ids"}),
                "One of the expected parameter is missing",
            );
        }
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let mut results = Vec::new();
        let mut ok = 0;
        for id in &ids {
            match channels.iter().position(|c| &c.key() == id) {
                Some(pos) => {
                    let c = channels.remove(pos);
                    ok += 1;
                    results.push(json!({
                        "code": "SUCCESS", "status": "success",
                        "message": "Successfully unsubscribed from actions-watch",
                        "details": {"events": event_details(base_url, &c)},
                    }));
                }
                None => results.push(not_subscribed(id)),
            }
        }
        let status = if ok == ids.len() {
            200
        } else if ok == 0 {
            400
        } else {
            207
        };
        HttpResponse::json(status, &json!({"watch": results}))
    }
}

fn method_not_allowed() -> HttpResponse {
    error(400, "INVALID_REQUEST_METHOD", json!({}), "The http request method type is not a valid one")
}

fn not_subscribed(id: &str) -> Value {
    json!({"code": "NOT_SUBSCRIBED", "status": "error", "message": "Not subscribed for actions-watch of the given module", "details": {"channel_id": id}})
}

fn item_error(code: &str, api_name: &str, i: usize, message: &str) -> Value {
    json!({"code": code, "status": "error", "message": message,
           "details": {"api_name": api_name, "json_path": format!("$.watch[{i}].{api_name}")}})
}

fn event_details(base_url: &str, c: &Channel) -> Vec<Value> {
    c.modules()
        .into_iter()
        .map(|m| {
            json!({
                "channel_id": c.channel_id,
                "resource_name": m,
                "resource_id": schema::module(&m).map(|d| d.id),
                "resource_uri": format!("{base_url}/crm/v8/{m}"),
                "channel_expiry": fmt_time(&c.expiry),
            })
        })
        .collect()
}

/// Zoho keeps a channel at most a week; a missing, unreadable, past or too distant expiry becomes 1 hour.
pub fn capped_expiry(requested: Option<&str>, now: DateTime<FixedOffset>) -> DateTime<FixedOffset> {
    let fallback = now + chrono::Duration::hours(1);
    match requested.and_then(parse_time) {
        Some(t) if t > now && t <= now + chrono::Duration::days(7) => t,
        _ => fallback,
    }
}

fn parse_events(v: Option<&Value>, i: usize) -> Result<Vec<String>, Value> {
    let Some(Value::Array(a)) = v else {
        return Err(item_error("MANDATORY_NOT_FOUND", "events", i, "required field not found"));
    };
    let events: Vec<String> = a.iter().filter_map(Value::as_str).map(str::to_string).collect();
    let valid = |e: &String| match e.split_once('.') {
        Some((m, op)) => schema::module(m).is_some() && ["create", "edit", "delete", "all"].contains(&op),
        None => false,
    };
    if events.is_empty() || events.len() != a.len() || !events.iter().all(valid) {
        return Err(item_error("INVALID_DATA", "events", i, "invalid data"));
    }
    Ok(events)
}

fn parse_url(v: Option<&Value>, i: usize) -> Result<String, Value> {
    let Some(s) = v.and_then(Value::as_str) else {
        return Err(item_error("MANDATORY_NOT_FOUND", "notify_url", i, "required field not found"));
    };
    match url::Url::parse(s) {
        Ok(u) if u.scheme() == "http" || u.scheme() == "https" => Ok(s.to_string()),
        _ => Err(item_error("INVALID_DATA", "notify_url", i, "invalid data")),
    }
}

fn parse_token(v: Option<&Value>, i: usize) -> Result<Option<String>, Value> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= MAX_TOKEN_LEN => Ok(Some(s.clone())),
        _ => Err(item_error("INVALID_DATA", "token", i, "invalid data")),
    }
}

fn parse_channel_id(v: Option<&Value>, i: usize) -> Result<Value, Value> {
    match v {
        Some(Value::Number(n)) if n.is_u64() => Ok(Value::Number(n.clone())),
        Some(Value::String(s)) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(Value::String(s.clone()))
        }
        None => Err(item_error("MANDATORY_NOT_FOUND", "channel_id", i, "required field not found")),
        _ => Err(item_error("INVALID_DATA", "channel_id", i, "invalid data")),
    }
}

/// `notification_condition` may name at most [`MAX_CONDITION_FIELDS`] fields.
fn check_condition(item: &Value, i: usize) -> Result<(), Value> {
    match item.get("notification_condition") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(a)) if a.len() <= MAX_CONDITION_FIELDS => Ok(()),
        Some(_) => Err(item_error("INVALID_DATA", "notification_condition", i, "invalid data")),
    }
}

fn parse_channel(item: &Value, i: usize) -> Result<Channel, Value> {
    let channel_id = parse_channel_id(item.get("channel_id"), i)?;
    check_condition(item, i)?;
    let events = parse_events(item.get("events"), i)?;
    let notify_url = parse_url(item.get("notify_url"), i)?;
    let token = parse_token(item.get("token"), i)?;
    Ok(Channel {
        channel_id,
        events,
        notify_url,
        token,
        expiry: capped_expiry(item.get("channel_expiry").and_then(Value::as_str), now()),
        notify_on_related_action: item.get("notify_on_related_action").and_then(Value::as_bool).unwrap_or(false),
    })
}

fn amend(channels: &mut [Channel], item: &Value, i: usize) -> Result<Channel, Value> {
    let id = parse_channel_id(item.get("channel_id"), i)?;
    let Some(c) = channels.iter_mut().find(|c| c.key() == id_key(&id)) else {
        return Err(not_subscribed(&id_key(&id)));
    };
    if now() >= c.expiry {
        return Err(not_subscribed(&id_key(&id)));
    }
    check_condition(item, i)?;
    if item.get("events").is_some() {
        c.events = parse_events(item.get("events"), i)?;
    }
    if item.get("notify_url").is_some() {
        c.notify_url = parse_url(item.get("notify_url"), i)?;
    }
    if item.get("token").is_some() {
        c.token = parse_token(item.get("token"), i)?;
    }
    if let Some(e) = item.get("channel_expiry") {
        c.expiry = capped_expiry(e.as_str(), now());
    }
    Ok(c.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_capped_at_a_week_else_one_hour() {
        let t = parse_time("2026-01-25T10:00:00+00:00").unwrap();
        assert_eq!(capped_expiry(None, t), t + chrono::Duration::hours(1));
        assert_eq!(capped_expiry(Some("2026-02-05T10:00:00+00:00"), t), t + chrono::Duration::hours(1));
        assert_eq!(capped_expiry(Some("garbage"), t), t + chrono::Duration::hours(1));
        let ok = parse_time("2026-01-31T15:30:00+05:30").unwrap();
        assert_eq!(capped_expiry(Some("2026-01-31T15:30:00+05:30"), t), ok);
    }
}
