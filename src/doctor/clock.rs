//! Clock skew against a server's `Date` header. A clock that is minutes off breaks OAuth expiry (tokens look
//! valid when Zoho has already dropped them) and `If-Modified-Since` cursors (records changed in the gap are
//! missed until the nightly full run).

use chrono::{DateTime, Utc};

use super::{Check, NET_TIMEOUT};

/// Above this, warn.
pub const WARN_SECS: i64 = 60;
/// Above this, fail.
pub const FAIL_SECS: i64 = 300;

/// The skew between the local clock and `server`'s, judged. `local` is the local time halfway through the
/// request; `Date` has whole seconds, so a second of difference is noise.
pub fn verdict(name: &str, host: &str, server: DateTime<Utc>, local: DateTime<Utc>) -> Check {
    // `Date` is truncated to the second: the server's clock read, on average, half a second later.
    let skew = (local - server).num_milliseconds() as f64 / 1000.0 - 0.5;
    let ahead = if skew >= 0.0 { "ahead of" } else { "behind" };
    let detail = format!("local clock {:.0} s {ahead} {host}", skew.abs());
    let secs = skew.abs().round() as i64;
    let fix = "synchronise the clock (systemd-timesyncd or chrony: `timedatectl set-ntp true`)";
    if secs > FAIL_SECS {
        Check::fail(name, format!("{detail}: OAuth expiry and If-Modified-Since break"), fix)
    } else if secs > WARN_SECS {
        Check::warn(name, detail, fix)
    } else {
        Check::pass(name, detail)
    }
}

/// GETs `url` (any answer will do, even an error: only its `Date` matters) and judges the skew.
pub async fn check(name: &str, url: &str) -> Check {
    let host = url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_else(|| url.into());
    let http = match reqwest::Client::builder().timeout(NET_TIMEOUT).build() {
        Ok(h) => h,
        Err(e) => return Check::skip(name, format!("no HTTP client: {e}")),
    };
    let before = Utc::now();
    let resp = match http.get(url).send().await {
        Ok(r) => r,
        Err(e) => return Check::skip(name, format!("{host} did not answer: {}", e.without_url())),
    };
    let after = Utc::now();
    let local = before + (after - before) / 2;
    let date = resp.headers().get(reqwest::header::DATE).and_then(|v| v.to_str().ok()).map(str::to_string);
    match date.as_deref().map(DateTime::parse_from_rfc2822) {
        Some(Ok(server)) => verdict(name, &host, server.with_timezone(&Utc), local),
        Some(Err(_)) => Check::skip(name, format!("{host} sent an unreadable Date header")),
        None => Check::skip(name, format!("{host} sent no Date header")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;
    use chrono::Duration;

    #[test]
    fn thresholds() {
        let t = Utc::now();
        let v = |secs: i64| verdict("clock.zoho", "accounts.zoho.eu", t, t + Duration::seconds(secs));
        assert_eq!(v(0).status, Status::Pass);
        assert_eq!(v(-59).status, Status::Pass);
        assert_eq!(v(60).status, Status::Pass);
        assert_eq!(v(62).status, Status::Warn);
        assert_eq!(v(-301).status, Status::Fail);
        assert_eq!(v(91).detail, "local clock 90 s ahead of accounts.zoho.eu");
        assert!(v(-400).detail.starts_with("local clock 400 s behind"));
        let parsed = DateTime::parse_from_rfc2822(&crate::sandbox::zoho::http_date(t)).unwrap();
        assert_eq!(parsed.timestamp(), t.timestamp());
    }
}
