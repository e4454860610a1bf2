//! Watch channels (Notification API, §8.2) and the emulated workflow webhook (§8.1). Deliveries run on a
//! background thread, never inside the request that caused them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::Sha256;

use super::store::now;
use super::{WebhookFormat, ZohoOptions, ZohoStats};
use crate::http;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeOp {
    Insert,
    Update,
    Delete,
}

/// One applied change, for watch notifications and workflow webhooks.
#[derive(Debug, Clone)]
pub struct Change {
    pub op: ChangeOp,
    pub id: String,
    pub fields: Vec<String>,
}

/// A channel as the fake holds it, for tests (including lapsed ones, which Zoho no longer lists).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelView {
    pub channel_id: String,
    pub events: Vec<String>,
    pub notify_url: String,
    pub expiry: DateTime<FixedOffset>,
    pub live: bool,
}

#[derive(Debug, Clone)]
pub(super) struct Channel {
    /// As the subscriber sent it (a number or a string); echoed verbatim in callbacks.
    pub(super) channel_id: Value,
    pub(super) events: Vec<String>,
    pub(super) notify_url: String,
    pub(super) token: Option<String>,
    pub(super) expiry: DateTime<FixedOffset>,
    pub(super) notify_on_related_action: bool,
}

impl Channel {
    pub(super) fn key(&self) -> String {
        id_key(&self.channel_id)
    }

    fn wants(&self, module: &str, op: ChangeOp) -> bool {
        let verb = match op {
            ChangeOp::Insert => "create",
            ChangeOp::Update => "edit",
            ChangeOp::Delete => "delete",
        };
        self.events.iter().any(|e| match e.split_once('.') {
            Some((m, v)) => m == module && (v == "all" || v == verb),
            None => false,
        })
    }

    pub(super) fn modules(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for e in &self.events {
            if let Some((m, _)) = e.split_once('.') {
                if !out.iter().any(|x| x == m) {
                    out.push(m.to_string());
                }
            }
        }
        out
    }
}

pub(super) fn id_key(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

struct Delivery {
    webhook: bool,
    url: String,
    content_type: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

type Pending = Arc<(Mutex<usize>, Condvar)>;

pub struct Notifier {
    pub(super) channels: Mutex<Vec<Channel>>,
    tx: Mutex<Sender<Delivery>>,
    pending: Pending,
    seq: AtomicU64,
}

impl Notifier {
    pub fn new(stats: Arc<Mutex<ZohoStats>>) -> Notifier {
        let (tx, rx) = mpsc::channel::<Delivery>();
        let pending: Pending = Arc::new((Mutex::new(0), Condvar::new()));
        let pending2 = pending.clone();
        let spawned = std::thread::Builder::new().name("fake-zoho-deliver".into()).spawn(move || {
            for d in rx {
                let res = http::post(&d.url, Some("ZohoCRM-fake"), d.content_type, &d.headers, &d.body);
                {
                    let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
                    match &res {
                        Ok(status) if (200..300).contains(status) => {}
                        _ => s.delivery_failures += 1,
                    }
                    if d.webhook {
                        s.webhooks_sent += 1;
                    } else {
                        s.notifications_sent += 1;
                    }
                }
                if let Err(e) = res {
                    tracing::debug!(url = %d.url, error = %e, "fake zoho: callback delivery failed");
                }
                let (lock, cv) = &*pending2;
                let mut n = lock.lock().unwrap_or_else(|e| e.into_inner());
                *n = n.saturating_sub(1);
                cv.notify_all();
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "fake zoho: no delivery thread, callbacks are off");
        }
        Notifier { channels: Mutex::new(Vec::new()), tx: Mutex::new(tx), pending, seq: AtomicU64::new(1) }
    }

    fn send(&self, d: Delivery) {
        *self.pending.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        if tx.send(d).is_err() {
            *self.pending.0.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        }
    }

    pub fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.pending;
        let mut n = lock.lock().unwrap_or_else(|e| e.into_inner());
        while *n > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            n = cv.wait_timeout(n, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        true
    }

    /// Every channel ever subscribed and not removed, live or lapsed, in subscription order.
    pub fn channels(&self) -> Vec<ChannelView> {
        let t = now();
        self.channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|c| ChannelView {
                channel_id: c.key(),
                events: c.events.clone(),
                notify_url: c.notify_url.clone(),
                expiry: c.expiry,
                live: c.expiry > t,
            })
            .collect()
    }

    /// Moves a channel's expiry (a test's clock: "three days later"). `false` when there is no such channel.
    pub fn set_expiry(&self, channel_id: &str, expiry: DateTime<FixedOffset>) -> bool {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        match channels.iter_mut().find(|c| c.key() == channel_id) {
            Some(c) => {
                c.expiry = expiry;
                true
            }
            None => false,
        }
    }

    /// Queues watch notifications (always: `trigger` does not silence the Notification API) and, when
    /// workflows may run, the workflow webhooks.
    pub fn after_write(&self, base_url: &str, webhooks: Option<&ZohoOptions>, module: &str, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        self.notify_channels(base_url, module, changes);
        if let Some(opts) = webhooks {
            self.fire_webhooks(opts, module, changes);
        }
    }

    fn notify_channels(&self, base_url: &str, module: &str, changes: &[Change]) {
        let t = now();
        let channels: Vec<Channel> =
            self.channels.lock().unwrap_or_else(|e| e.into_inner()).iter().filter(|c| c.expiry > t).cloned().collect();
        let server_time = Utc::now().timestamp_millis();
        for op in [ChangeOp::Insert, ChangeOp::Update, ChangeOp::Delete] {
            let batch: Vec<&Change> = changes.iter().filter(|c| c.op == op).collect();
            if batch.is_empty() {
                continue;
            }
            for ch in channels.iter().filter(|c| c.wants(module, op)) {
                let affected: Vec<Value> = if op == ChangeOp::Update {
                    batch.iter().map(|c| json!({ c.id.clone(): c.fields })).collect()
                } else {
                    Vec::new()
                };
                let query_params: Map<String, Value> = url::Url::parse(&ch.notify_url)
                    .map(|u| u.query_pairs().map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect())
                    .unwrap_or_default();
                let body = json!({
                    "server_time": server_time,
                    "query_params": query_params,
                    "module": module,
                    "resource_uri": format!("{base_url}/crm/v8/{module}"),
                    "ids": batch.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
                    "affected_fields": affected,
                    "operation": match op { ChangeOp::Insert => "insert", ChangeOp::Update => "update", ChangeOp::Delete => "delete" },
                    "channel_id": ch.channel_id,
                    "token": ch.token,
                });
                self.send(Delivery {
                    webhook: false,
                    url: ch.notify_url.clone(),
                    content_type: "application/json",
                    headers: Vec::new(),
                    body: body.to_string().into_bytes(),
                });
            }
        }
    }

    fn fire_webhooks(&self, opts: &ZohoOptions, module: &str, changes: &[Change]) {
        let Some(url) = opts.webhook_url.clone() else { return };
        let url = url.replace("{entity}", entity_segment(module));
        for c in changes {
            let event_type = match c.op {
                ChangeOp::Insert => "created",
                ChangeOp::Update => "updated",
                ChangeOp::Delete => "deleted",
            };
            let event_id = format!("zwf_{}_{}", c.id, self.seq.fetch_add(1, Ordering::SeqCst));
            let timestamp = Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true);
            let changed: Vec<String> = if c.op == ChangeOp::Delete { Vec::new() } else { c.fields.clone() };
            let (content_type, body) = match opts.webhook_format {
                WebhookFormat::Json => (
                    "application/json",
                    json!({
                        "event_id": event_id, "event_type": event_type, "module": module,
                        "record_id": c.id, "changed_fields": changed, "timestamp": timestamp,
                    })
                    .to_string(),
                ),
                WebhookFormat::Form => (
                    "application/x-www-form-urlencoded",
                    form_urlencoded::Serializer::new(String::new())
                        .append_pair("event_id", &event_id)
                        .append_pair("event_type", event_type)
                        .append_pair("module", module)
                        .append_pair("record_id", &c.id)
                        .append_pair("changed_fields", &changed.join(","))
                        .append_pair("timestamp", &timestamp)
                        .finish(),
                ),
            };
            let mut headers = Vec::new();
            if let Some(secret) = &opts.webhook_hmac_secret {
                headers.push((
                    "X-Zoho-Signature".to_string(),
                    format!("sha256={}", sign(secret.expose(), body.as_bytes())),
                ));
            }
            self.send(Delivery { webhook: true, url: url.clone(), content_type, headers, body: body.into_bytes() });
        }
    }
}

/// The receiver's path segment for a module (`/v1/events/zoho/{segment}`).
pub fn entity_segment(module: &str) -> &'static str {
    match module {
        "BTEC_Students" => "student",
        "BTEC_Teachers" => "teacher",
        "BTEC_Classes" => "class",
        "BTEC_Enrollments" => "enrollment",
        "BTEC_Registrations" => "registration",
        "BTEC_Payments" => "payment",
        "BTEC_Grades" => "grade",
        "BTEC_Units" => "unit",
        "BTEC_Attendance" => "attendance",
        _ => "unknown",
    }
}

/// HMAC-SHA256 over the exact body, hex-encoded (docs/webhooks.md "Signatures").
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(), // HMAC takes keys of any length; unreachable in practice
    };
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_a_known_vector() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
