//! The Notification API's channels: list, subscribe or amend, unsubscribe, on
//! `/crm/v8/actions/watch`. `zmsync zoho watch` and `doctor` use them.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use super::{Client, Replay, ZohoError};

const WHAT: &str = "actions/watch";

/// One channel as Zoho reports it, its per-module entries folded together.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WatchedChannel {
    pub channel_id: String,
    pub events: Vec<String>,
    pub notify_url: Option<String>,
    pub expiry: Option<DateTime<Utc>>,
}

/// What a subscription asks for. The token is the channel's shared secret: sent, never printed.
pub struct ChannelRequest<'a> {
    pub channel_id: &'a str,
    pub events: &'a [String],
    pub notify_url: &'a str,
    pub token: &'a str,
    pub expiry: DateTime<Utc>,
}

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    v.and_then(Value::as_str).and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.to_utc())
}

impl Client {
    /// Every channel the org has (204: none).
    pub async fn watch_list(&self) -> Result<Vec<WatchedChannel>, ZohoError> {
        let answer =
            self.send(WHAT, Replay::Safe, |http, base| http.get(format!("{base}/crm/v8/actions/watch"))).await?;
        match answer.status.as_u16() {
            200 => {
                let v = answer.json(WHAT)?;
                let mut out: Vec<WatchedChannel> = Vec::new();
                for w in v.get("watch").and_then(Value::as_array).into_iter().flatten() {
                    let Some(id) = w.get("channel_id").and_then(id_text) else { continue };
                    let events: Vec<String> = w
                        .get("events")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                        .unwrap_or_default();
                    let url = w.get("notify_url").and_then(Value::as_str).map(str::to_string);
                    let expiry = time(w.get("channel_expiry"));
                    match out.iter_mut().find(|c| c.channel_id == id) {
                        Some(c) => {
                            c.events.extend(events);
                            c.notify_url = c.notify_url.take().or(url);
                            c.expiry = c.expiry.or(expiry);
                        }
                        None => out.push(WatchedChannel { channel_id: id, events, notify_url: url, expiry }),
                    }
                }
                for c in &mut out {
                    c.events.sort();
                    c.events.dedup();
                }
                Ok(out)
            }
            204 => Ok(Vec::new()),
            _ => Err(answer.error(WHAT)),
        }
    }

    /// Subscribes the channel (`amend: false`, POST: creates or replaces it) or amends a live one (`amend: true`,
    /// PATCH). Returns the expiry Zoho granted, which may be shorter than the one asked for (Zoho silently
    /// turns a past or too distant expiry into one hour).
    pub async fn watch_subscribe(&self, req: &ChannelRequest<'_>, amend: bool) -> Result<DateTime<Utc>, ZohoError> {
        let body = json!({"watch": [{
            "channel_id": req.channel_id,
            "events": req.events,
            "notify_url": req.notify_url,
            "token": req.token,
            "channel_expiry": req.expiry.to_rfc3339_opts(chrono::SecondsFormat::Secs, false),
            "notify_on_related_action": false,
        }]});
        let answer = self
            .send(WHAT, Replay::Safe, |http, base| {
                let url = format!("{base}/crm/v8/actions/watch");
                if amend { http.patch(url) } else { http.post(url) }.json(&body)
            })
            .await?;
        let v: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        let item = v.get("watch").and_then(|w| w.get(0));
        match item {
            Some(i) if i.get("code").and_then(Value::as_str) == Some("SUCCESS") => {
                let granted = i
                    .pointer("/details/events")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| time(e.get("channel_expiry")))
                    .min();
                granted.ok_or_else(|| ZohoError::Decode {
                    module: WHAT.into(),
                    message: format!("HTTP {}: no channel_expiry in the answer", answer.status),
                })
            }
            Some(i) => Err(ZohoError::Api {
                module: WHAT.into(),
                status: answer.status.as_u16(),
                code: i.get("code").and_then(Value::as_str).unwrap_or("").to_string(),
                message: i.get("message").and_then(Value::as_str).unwrap_or("").to_string(),
                details: Box::new(i.get("details").cloned().unwrap_or(Value::Null)),
            }),
            None => Err(answer.error(WHAT)),
        }
    }

    /// Unsubscribes a channel. `Ok(false)`: Zoho did not have it (`NOT_SUBSCRIBED`).
    pub async fn watch_remove(&self, channel_id: &str) -> Result<bool, ZohoError> {
        let query = [("channel_ids", channel_id.to_string())];
        let answer = self
            .send(WHAT, Replay::Safe, |http, base| http.delete(format!("{base}/crm/v8/actions/watch")).query(&query))
            .await?;
        let v: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        match v.pointer("/watch/0/code").and_then(Value::as_str) {
            Some("SUCCESS") => Ok(true),
            Some("NOT_SUBSCRIBED") => Ok(false),
            _ => Err(answer.error(WHAT)),
        }
    }
}
