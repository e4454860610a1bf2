//! Per-source token buckets (setting `webhook.rate_limit`): `per_source_per_second` tokens a second, up to
//! `burst` (at least one second's worth) saved up. 0 means no limit. The limits can be changed while serving
//! ([`RateLimiter::set_limits`]): the receiver re-reads the setting every few seconds and on SIGHUP.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::routes::Source;
use crate::settings::WebhookLimits;

pub struct RateLimiter {
    limits: Mutex<WebhookLimits>,
    buckets: [Mutex<Bucket>; 2],
}

struct Bucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(limits: &WebhookLimits) -> Bucket {
        let rate = f64::from(limits.per_source_per_second);
        let capacity = f64::from(limits.burst.max(limits.per_source_per_second).max(1));
        Bucket { rate, capacity, tokens: capacity, at: Instant::now() }
    }
}

impl RateLimiter {
    pub fn new(limits: &WebhookLimits) -> RateLimiter {
        let bucket = || Mutex::new(Bucket::new(limits));
        RateLimiter { limits: Mutex::new(limits.clone()), buckets: [bucket(), bucket()] }
    }

    pub fn limits(&self) -> WebhookLimits {
        self.limits.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Applies new limits at once; returns whether they differ from the current ones. Each bucket keeps what
    /// it has saved up (at most the new burst); a bucket that was unlimited starts full.
    pub fn set_limits(&self, limits: &WebhookLimits) -> bool {
        let mut current = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        if *current == *limits {
            return false;
        }
        *current = limits.clone();
        for b in &self.buckets {
            let mut b = b.lock().unwrap_or_else(|p| p.into_inner());
            let fresh = Bucket::new(limits);
            let tokens = if b.rate <= 0.0 { fresh.capacity } else { b.tokens.min(fresh.capacity) };
            *b = Bucket { tokens, ..fresh };
        }
        true
    }

    /// Takes `n` tokens for `source`, or says how long to wait before retrying.
    pub fn take(&self, source: Source, n: usize) -> Result<(), Duration> {
        self.take_at(source, n, Instant::now())
    }

    fn take_at(&self, source: Source, n: usize, now: Instant) -> Result<(), Duration> {
        let idx = match source {
            Source::Zoho => 0,
            Source::Moodle => 1,
        };
        let mut b = self.buckets[idx].lock().unwrap_or_else(|p| p.into_inner());
        if b.rate <= 0.0 {
            return Ok(());
        }
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * b.rate).min(b.capacity);
        b.at = now;
        let need = n as f64;
        if b.tokens >= need {
            b.tokens -= need;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(((need - b.tokens) / b.rate).max(0.001)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_unlimited() {
        let r = RateLimiter::new(&WebhookLimits { per_source_per_second: 0, burst: 0 });
        for _ in 0..10_000 {
            assert!(r.take(Source::Zoho, 1).is_ok());
        }
    }

    #[test]
    fn bucket_empties_refills_and_sources_are_separate() {
        let r = RateLimiter::new(&WebhookLimits { per_source_per_second: 2, burst: 3 });
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(r.take_at(Source::Zoho, 1, t0).is_ok());
        }
        let wait = r.take_at(Source::Zoho, 1, t0).unwrap_err();
        assert!(wait <= Duration::from_millis(500) && wait > Duration::ZERO, "{wait:?}");
        assert!(r.take_at(Source::Moodle, 1, t0).is_ok());
        assert!(r.take_at(Source::Zoho, 1, t0 + Duration::from_millis(500)).is_ok());
        assert!(r.take_at(Source::Zoho, 1, t0 + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn limits_change_while_serving() {
        let r = RateLimiter::new(&WebhookLimits { per_source_per_second: 0, burst: 0 });
        let t0 = Instant::now();
        assert!(!r.set_limits(&WebhookLimits { per_source_per_second: 0, burst: 0 }), "unchanged");
        assert!(r.set_limits(&WebhookLimits { per_source_per_second: 1, burst: 2 }));
        assert!(r.take_at(Source::Zoho, 2, t0).is_ok(), "a bucket that was unlimited starts full");
        assert!(r.take_at(Source::Zoho, 1, t0).is_err());
        assert!(r.set_limits(&WebhookLimits { per_source_per_second: 0, burst: 0 }));
        for _ in 0..1000 {
            assert!(r.take_at(Source::Zoho, 1, t0).is_ok());
        }
        assert_eq!(r.limits(), WebhookLimits { per_source_per_second: 0, burst: 0 });
    }
}
