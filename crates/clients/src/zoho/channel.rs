//! What zmsync's Notification API channel should be (`zmsync zoho watch`), and how the one Zoho holds
//! differs from it (`zoho watch --status`, `doctor`).
//!
//! One channel covers every enabled module's create, edit and delete events; its notify URL is the receiver's
//! `/v1/events/zoho/notify`; it is renewed when less than [`RENEW_WITHIN`] remains; `doctor` fails it with less
//! than [`DOCTOR_MIN_LEFT`].

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::watch::WatchedChannel;
use zmsync_core::mapping::ZohoNames;
use zmsync_core::model::Entity;
use zmsync_core::settings::Settings;
pub use zmsync_core::settings::{resolve_notify_url as notify_url, NOTIFY_PATH};

/// Zoho keeps a channel at most a week (v4 on). zmsync asks for a little less, so that clock skew never
/// pushes the request past the maximum (which Zoho silently turns into one hour).
pub const ASK_FOR: Duration = Duration::minutes(7 * 24 * 60 - 10);
/// `zoho watch --renew` renews when less than this remains.
pub const RENEW_WITHIN: Duration = Duration::days(2);
/// `doctor` fails the channel when less than this remains.
pub const DOCTOR_MIN_LEFT: Duration = Duration::days(1);

/// The channel zmsync subscribed, as the store remembers it (`zoho_channel`, at most one row).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ChannelRow {
    /// Digits, chosen by zmsync; Zoho echoes it in every callback.
    pub channel_id: String,
    pub notify_url: String,
    /// `{Module}.{create|edit|delete}`, as subscribed.
    pub events: Vec<String>,
    /// The expiry Zoho answered with.
    pub expiry: DateTime<Utc>,
    pub subscribed_at: DateTime<Utc>,
    pub renewed_at: DateTime<Utc>,
}

/// The events for every enabled module, sorted: `{Module}.create`, `.edit`, `.delete`.
pub fn desired_events(settings: &Settings) -> Vec<String> {
    let mut modules: Vec<String> = Vec::new();
    for e in Entity::ALL {
        if !e.enabled(settings) {
            continue;
        }
        let m = ZohoNames::for_kind(settings, e.kinds().0).module().to_string();
        if !m.is_empty() && !modules.contains(&m) {
            modules.push(m);
        }
    }
    let mut events: Vec<String> =
        modules.iter().flat_map(|m| ["create", "edit", "delete"].map(|op| format!("{m}.{op}"))).collect();
    events.sort();
    events
}

/// One way the channel Zoho holds differs from what it should be.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// `present`, `events`, `url` or `expiry` (doctor's `zoho.watch[.aspect]` lines).
    pub aspect: &'static str,
    /// A difference that loses nothing (extra events): a warning, not a failure.
    pub minor: bool,
    pub what: String,
    pub fix: String,
}

/// Compares Zoho's channel (`None`: Zoho does not have it, or it lapsed) with what zmsync expects.
pub fn problems(
    expected: &ChannelRow,
    zoho: Option<&WatchedChannel>,
    desired_events: &[String],
    configured_url: &str,
    now: DateTime<Utc>,
) -> Vec<Problem> {
    let watch = "run `zmsync zoho watch`";
    let Some(z) = zoho else {
        let what = if expected.expiry <= now {
            format!(
                "channel {} lapsed at {}: Zoho sends no events since (changes reach Moodle only with the nightly full \
                 sync)",
                expected.channel_id,
                expected.expiry.format("%Y-%m-%d %H:%M UTC")
            )
        } else {
            format!(
                "Zoho no longer lists channel {} (it lapsed early, or was removed in Zoho): Zoho sends no events",
                expected.channel_id
            )
        };
        return vec![Problem {
            aspect: "present",
            minor: false,
            what,
            fix: format!("{watch}; and check that the daily renewal runs (zmsync-zoho-watch.timer or the crontab)"),
        }];
    };
    let mut out = Vec::new();
    let missing: Vec<&String> = desired_events.iter().filter(|e| !z.events.contains(e)).collect();
    if !missing.is_empty() {
        out.push(Problem {
            aspect: "events",
            minor: false,
            what: format!("the channel does not cover {}", join(&missing)),
            fix: format!("{watch} (modules.enabled or mapping.fields changed since it was subscribed)"),
        });
    }
    let extra: Vec<&String> = z.events.iter().filter(|e| !desired_events.contains(e)).collect();
    if !extra.is_empty() {
        out.push(Problem {
            aspect: "events",
            minor: true,
            what: format!("the channel also covers {}, which zmsync does not sync", join(&extra)),
            fix: format!("{watch} to drop them"),
        });
    }
    match z.notify_url.as_deref() {
        Some(u) if u == configured_url => {}
        other => out.push(Problem {
            aspect: "url",
            minor: false,
            what: format!("Zoho notifies {}, not the configured {configured_url}", other.unwrap_or("(no URL)")),
            fix: format!("{watch} (or correct the setting zoho.notify_url)"),
        }),
    }
    match z.expiry {
        Some(t) if t - now > DOCTOR_MIN_LEFT => {}
        Some(t) => out.push(Problem {
            aspect: "expiry",
            minor: false,
            what: format!(
                "the channel expires in {} h ({})",
                (t - now).num_hours().max(0),
                t.format("%Y-%m-%d %H:%M UTC")
            ),
            fix: "run `zmsync zoho watch --renew`, and check that the daily renewal runs (zmsync-zoho-watch.timer or \
                  the crontab)"
                .into(),
        }),
        None => out.push(Problem {
            aspect: "expiry",
            minor: false,
            what: "Zoho reports no expiry for the channel".into(),
            fix: watch.into(),
        }),
    }
    out
}

fn join(v: &[&String]) -> String {
    v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

/// A fresh channel id: digits, as Zoho wants (a number we choose).
pub fn new_channel_id(now: DateTime<Utc>) -> String {
    format!("{}{:03}", now.timestamp_millis(), rand::random::<u16>() % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(expiry: DateTime<Utc>) -> ChannelRow {
        ChannelRow {
            channel_id: "1".into(),
            notify_url: "https://s/v1/events/zoho/notify".into(),
            events: vec![],
            expiry,
            subscribed_at: expiry,
            renewed_at: expiry,
        }
    }

    #[test]
    fn default_settings_watch_eight_modules_three_ops() {
        let ev = desired_events(&Settings::defaults());
        assert_eq!(ev.len(), 8 * 3, "{ev:?}");
        assert!(ev.contains(&"BTEC_Students.edit".to_string()) && !ev.iter().any(|e| e.starts_with("BTEC_Attendance")));
    }

    #[test]
    fn base_urls_get_the_notify_path() {
        assert_eq!(notify_url("https://sync.example.edu").unwrap(), "https://sync.example.edu/v1/events/zoho/notify");
        assert_eq!(notify_url("http://127.0.0.1:8001/").unwrap(), "http://127.0.0.1:8001/v1/events/zoho/notify");
        assert_eq!(
            notify_url("https://x/v1/events/zoho/notify?src=w").unwrap(),
            "https://x/v1/events/zoho/notify?src=w"
        );
        assert!(notify_url("ftp://x").is_err() && notify_url("nope").is_err());
    }

    #[test]
    fn each_difference_is_one_problem() {
        let now = Utc::now();
        let want = vec!["A.create".to_string(), "A.edit".to_string()];
        let url = "https://s/v1/events/zoho/notify";
        let good = WatchedChannel {
            channel_id: "1".into(),
            events: want.clone(),
            notify_url: Some(url.into()),
            expiry: Some(now + Duration::days(6)),
        };
        assert!(problems(&row(now + Duration::days(6)), Some(&good), &want, url, now).is_empty());
        let lapsed = problems(&row(now - Duration::hours(1)), None, &want, url, now);
        assert!(lapsed.len() == 1 && lapsed[0].what.contains("lapsed"), "{lapsed:?}");
        let mut bad = good.clone();
        bad.events = vec!["A.create".into(), "B.edit".into()];
        bad.notify_url = Some("https://other".into());
        bad.expiry = Some(now + Duration::hours(5));
        let p = problems(&row(now + Duration::days(6)), Some(&bad), &want, url, now);
        assert_eq!(p.len(), 4, "{p:?}");
    }
}
