//! Zoho's Notification API channel (`zmsync zoho watch`): present and live, covering every enabled module,
//! posting to the configured URL, more than a day left. Skipped when the college uses no channel.

use std::sync::Arc;

use chrono::Utc;

use super::{Check, NET_TIMEOUT};
use crate::config::Config;
use crate::settings::Settings;
use crate::store::{ChannelRow, Store};
use crate::zoho::channel::{self, Problem};
use crate::zoho::{Backoff, Client, ClientOptions, TokenCache};

/// The stored channel, read before the network checks (the store is not called from async code).
pub fn expected(store: Option<&dyn Store>) -> Result<Option<ChannelRow>, String> {
    match store {
        Some(s) => s.zoho_channel().map_err(|e| e.to_string()),
        None => Ok(None),
    }
}

pub async fn checks(
    config: &Config,
    settings: Result<&Settings, &str>,
    expected: &Result<Option<ChannelRow>, String>,
    cache: Option<Arc<dyn TokenCache>>,
) -> Vec<Check> {
    let Ok(settings) = settings else {
        return vec![Check::skip("zoho.watch", "the settings cannot be read")];
    };
    let row = match expected {
        Err(e) => {
            return vec![Check::fail(
                "zoho.watch",
                format!("cannot read the stored channel: {e}"),
                "check the database",
            )]
        }
        Ok(None) if settings.notify_url.is_empty() => {
            return vec![Check::skip(
                "zoho.watch",
                "no Notification API channel (events come from workflow webhooks, or only the nightly run finds \
                 changes); `zmsync zoho watch --url https://<receiver>` subscribes one",
            )]
        }
        Ok(None) => {
            return vec![Check::fail(
                "zoho.watch",
                format!("zoho.notify_url is {} but no channel was subscribed from this store", settings.notify_url),
                "run `zmsync zoho watch`",
            )]
        }
        Ok(Some(row)) => row,
    };
    let opts =
        ClientOptions { max_in_flight: 2, backoff: Backoff { tries: 2, ..Backoff::default() }, timeout: NET_TIMEOUT };
    let client = match Client::new(&config.zoho, opts, cache) {
        Ok(c) => c,
        Err(e) => return vec![Check::skip("zoho.watch", format!("no Zoho client: {e}"))],
    };
    let list = match client.watch_list().await {
        Ok(l) => l,
        Err(e) => {
            return vec![Check::fail(
                "zoho.watch",
                format!("cannot list the channels: {}", e.to_string().lines().next().unwrap_or_default()),
                "check zoho.token above; the refresh token needs the scope ZohoCRM.notifications.ALL",
            )]
        }
    };
    let url = if settings.notify_url.is_empty() { row.notify_url.clone() } else { settings.notify_url.clone() };
    let desired = channel::desired_events(settings);
    let now = Utc::now();
    let zoho = list.iter().find(|c| c.channel_id == row.channel_id);
    let problems = channel::problems(row, zoho, &desired, &url, now);
    let for_aspect = |aspect: &str| problems.iter().filter(|p| p.aspect == aspect).collect::<Vec<&Problem>>();
    let line = |name: &str, ps: Vec<&Problem>, pass: String| -> Check {
        match ps.iter().find(|p| !p.minor).or(ps.first()) {
            None => Check::pass(name, pass),
            Some(p) if p.minor => Check::warn(name, p.what.clone(), p.fix.clone()),
            Some(p) => Check::fail(name, p.what.clone(), p.fix.clone()),
        }
    };
    let Some(z) = zoho else {
        return vec![line("zoho.watch", for_aspect("present"), String::new())];
    };
    let expiry = z.expiry.map(|t| format!("{} ({} h left)", t.format("%Y-%m-%d %H:%M UTC"), (t - now).num_hours()));
    vec![
        Check::pass("zoho.watch", format!("channel {} is live in Zoho", z.channel_id)),
        line(
            "zoho.watch.events",
            for_aspect("events"),
            format!("covers every enabled module: {} modules, {} events", desired.len() / 3, desired.len()),
        ),
        line("zoho.watch.url", for_aspect("url"), format!("posts to {url}")),
        line("zoho.watch.expiry", for_aspect("expiry"), format!("expires {}", expiry.unwrap_or_default())),
    ]
}
