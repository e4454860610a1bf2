//! Short in-run retries for transient failures (429, 5xx, timeouts, connection resets), shared by both
//! clients. Exponential backoff with jitter; a `Retry-After` header wins when the server sends one.
//!
//! These are retries *inside one run*: a few seconds at most. The across-runs policy (`retry.policy`,
//! minutes) is for records and events that keep failing, and is not applied here.

use std::time::Duration;

use rand::Rng;

/// How often and how long to retry one request.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// Delay before the first retry.
    pub initial: Duration,
    /// No single delay is longer than this (before jitter).
    pub max: Duration,
    /// Attempts in all, the first included.
    pub tries: u32,
    /// The longest `Retry-After` we honour; a larger value is capped (a run must not hang for an hour).
    pub max_retry_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(5),
            tries: 6,
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The delay before retry number `retry` (0-based), or `None` when no attempt is left. `retry_after` is the
    /// server's `Retry-After`, if any.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if retry + 1 >= self.tries {
            return None;
        }
        if let Some(ra) = retry_after {
            return Some(ra.min(self.max_retry_after));
        }
        let base = self.initial.saturating_mul(1u32.checked_shl(retry).unwrap_or(u32::MAX)).min(self.max);
        // "Equal jitter": half fixed, half random, so retries of many callers spread out but never collapse to 0.
        let half = base / 2;
        let jitter = rand::thread_rng().gen_range(0..=half.as_millis() as u64);
        Some(half + Duration::from_millis(jitter))
    }
}

/// Parses a `Retry-After` header given in seconds (the HTTP-date form is not used by either API).
pub fn parse_retry_after(value: Option<&reqwest::header::HeaderValue>) -> Option<Duration> {
    value?.to_str().ok()?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_stops() {
        let b = Backoff::default();
        let d0 = b.delay(0, None).unwrap();
        assert!(d0 >= Duration::from_millis(100) && d0 <= Duration::from_millis(200), "{d0:?}");
        let d4 = b.delay(4, None).unwrap();
        assert!(d4 >= Duration::from_millis(1600) && d4 <= Duration::from_millis(3200), "{d4:?}");
        assert!(b.delay(5, None).is_none(), "6 tries in all");
        let big = Backoff { tries: 40, ..Backoff::default() };
        assert!(big.delay(30, None).unwrap() <= Duration::from_secs(5));
    }

    #[test]
    fn retry_after_wins_but_is_capped() {
        let b = Backoff::default();
        assert_eq!(b.delay(0, Some(Duration::from_secs(2))), Some(Duration::from_secs(2)));
        assert_eq!(b.delay(0, Some(Duration::from_secs(3600))), Some(Duration::from_secs(60)));
        let h = reqwest::header::HeaderValue::from_static("7");
        assert_eq!(parse_retry_after(Some(&h)), Some(Duration::from_secs(7)));
        let h = reqwest::header::HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(parse_retry_after(Some(&h)), None);
    }
}
