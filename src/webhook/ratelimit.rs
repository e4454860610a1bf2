//! Per-source token buckets (setting `webhook.rate_limit`): `per_source_per_second` tokens a second, up to
//! `burst` (at least one second's worth) saved up. 0 means no limit.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::routes::Source;
use crate::settings::WebhookLimits;

pub struct RateLimiter {
    rate: f64,
    capacity: f64,
    buckets: [Mutex<Bucket>; 2],
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    pub fn new(limits: &WebhookLimits) -> RateLimiter {
        let rate = f64::from(limits.per_source_per_second);
        let capacity = f64::from(limits.burst.max(limits.per_source_per_second).max(1));
        let bucket = || Mutex::new(Bucket { tokens: capacity, at: Instant::now() });
        RateLimiter { rate, capacity, buckets: [bucket(), bucket()] }
    }

    pub fn unlimited(&self) -> bool {
        self.rate <= 0.0
    }

    /// Takes `n` tokens for `source`, or says how long to wait before retrying.
    pub fn take(&self, source: Source, n: usize) -> Result<(), Duration> {
        self.take_at(source, n, Instant::now())
    }

    fn take_at(&self, source: Source, n: usize, now: Instant) -> Result<(), Duration> {
        if self.unlimited() {
            return Ok(());
        }
        let idx = match source {
            Source::Zoho => 0,
            Source::Moodle => 1,
        };
        let mut b = self.buckets[idx].lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.capacity);
        b.at = now;
        let need = n as f64;
        if b.tokens >= need {
            b.tokens -= need;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(((need - b.tokens) / self.rate).max(0.001)))
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
}
