//! The plugin's outbound signed events (contract §9), emulated: compact JSON POSTed to
//! `{webhook_url}/enrollment` or `{webhook_url}/grade` with `X-Moodle-Signature: <hex HMAC-SHA256>`,
//! from one background thread so events leave in the order they happened and never block a request.

use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};

use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::Serialize;
use serde_json::json;
use sha2::Sha256;

use super::state::Event;
use zmsync_core::secret::Secret;

/// What happened to one outbound event (for tests: what the receiver got and what it answered).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Delivery {
    pub url: String,
    pub body: String,
    pub signature: String,
    /// HTTP status, or `None` when the POST failed at the transport level.
    pub status: Option<u16>,
}

pub struct Outbox {
    tx: Mutex<Option<Sender<(String, String)>>>,
    pub deliveries: Arc<Mutex<Vec<Delivery>>>,
}

/// `moodle-` followed by a version-4 UUID.
pub fn event_id() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("moodle-{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The body the plugin would post for `e`, and the path suffix.
pub fn body_for(e: &Event) -> (String, &'static str) {
    if let Some(grade_id) = e.grade_id {
        let v = json!({"event_id": event_id(), "event_type": "grade_updated", "entity_type": "grade",
                       "entity_id": grade_id.to_string(), "student_id": e.userid, "course_id": e.courseid,
                       "grade": e.grade});
        (v.to_string(), "grade")
    } else {
        let v = json!({"eventid": event_id(), "eventname": e.eventname, "courseid": e.courseid,
                       "userid": e.userid, "timecreated": e.timecreated});
        (v.to_string(), "enrollment")
    }
}

pub fn sign(secret: &str, body: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return String::new() };
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

impl Outbox {
    /// Starts the sender thread when a receiver URL is configured.
    pub fn start(base: Option<String>, secret: Option<Secret>) -> Outbox {
        let deliveries = Arc::new(Mutex::new(Vec::new()));
        let Some(base) = base else { return Outbox { tx: Mutex::new(None), deliveries } };
        let (tx, rx) = channel::<(String, String)>();
        let log = deliveries.clone();
        let secret = secret.unwrap_or_else(|| Secret::new(""));
        std::thread::Builder::new()
            .name("fake-moodle-webhook".into())
            .spawn(move || {
                for (suffix, body) in rx {
                    let url = format!("{}/{}", base.trim_end_matches('/'), suffix);
                    let signature = sign(secret.expose(), &body);
                    let headers = [("X-Moodle-Signature".to_string(), signature.clone())];
                    let status = crate::http::post(&url, None, "application/json", &headers, body.as_bytes()).ok();
                    if status.is_none() {
                        tracing::warn!(%url, "fake Moodle: webhook delivery failed");
                    }
                    if let Ok(mut l) = log.lock() {
                        l.push(Delivery { url, body, signature, status });
                    }
                }
            })
            .ok();
        Outbox { tx: Mutex::new(Some(tx)), deliveries }
    }

    pub fn send(&self, e: &Event) {
        if let Ok(tx) = self.tx.lock() {
            if let Some(tx) = tx.as_ref() {
                let (body, suffix) = body_for(e);
                let _ = tx.send((suffix.to_string(), body));
            }
        }
    }

    /// Stops the sender after the queued events are sent.
    pub fn close(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_v4_uuids() {
        let id = event_id();
        assert_eq!(id.len(), "moodle-".len() + 36);
        assert_eq!(&id[7 + 14..7 + 15], "4");
    }

    #[test]
    fn signature_is_hex_hmac() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
