//! Zoho's limits as seen from one run: calls in flight (a semaphore sized by `zoho.limits.max_in_flight`) and
//! the counters a run reports (API calls, credits, refreshes, retries, 429s).
//!
//! The limiter adapts: Zoho answers 429 when the org's concurrency (or sub-concurrency) is exceeded, and the
//! edition decides how much that is. A call that got a 429 gives up its permit for good,
//! so the run settles below the org's real limit instead of hammering it; a streak of successes gives one
//! permit back, up to the configured maximum.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Successes in a row that earn one permit back.
const GROW_AFTER: usize = 20;

#[derive(Debug)]
pub struct Limiter {
    sem: Arc<Semaphore>,
    max: usize,
    current: AtomicUsize,
    successes: AtomicUsize,
}

impl Limiter {
    pub fn new(max_in_flight: usize) -> Limiter {
        let max = max_in_flight.max(1);
        Limiter {
            sem: Arc::new(Semaphore::new(max)),
            max,
            current: AtomicUsize::new(max),
            successes: AtomicUsize::new(0),
        }
    }

    pub async fn acquire(&self) -> OwnedSemaphorePermit {
        // The semaphore is never closed, so acquire cannot fail.
        self.sem.clone().acquire_owned().await.expect("limiter semaphore is never closed")
    }

    /// The call holding `permit` was throttled: shrink by one (never below 1).
    pub fn throttled(&self, permit: OwnedSemaphorePermit) {
        self.successes.store(0, Ordering::Relaxed);
        let shrunk = self
            .current
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| if c > 1 { Some(c - 1) } else { None })
            .is_ok();
        if shrunk {
            permit.forget();
        }
    }

    /// A call succeeded: after a streak, grow back by one.
    pub fn succeeded(&self) {
        if self.successes.fetch_add(1, Ordering::Relaxed) + 1 >= GROW_AFTER {
            self.successes.store(0, Ordering::Relaxed);
            let grown = self
                .current
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |c| if c < self.max { Some(c + 1) } else { None })
                .is_ok();
            if grown {
                self.sem.add_permits(1);
            }
        }
    }

    /// Calls allowed in flight right now.
    pub fn current(&self) -> usize {
        self.current.load(Ordering::SeqCst)
    }
}

/// What one client did, for the run summary. Cheap to update from many tasks.
#[derive(Debug, Default)]
pub struct Counters {
    pub calls: AtomicU64,
    pub credits: AtomicU64,
    pub refreshes: AtomicU64,
    pub retries: AtomicU64,
    pub throttled: AtomicU64,
    by_module: Mutex<BTreeMap<String, u64>>,
}

impl Counters {
    pub fn call(&self, module: &str, credits: u64) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.credits.fetch_add(credits, Ordering::Relaxed);
        let mut m = self.by_module.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(module.to_string()).or_default() += 1;
    }

    pub fn snapshot(&self) -> ZohoStats {
        ZohoStats {
            calls: self.calls.load(Ordering::Relaxed),
            credits: self.credits.load(Ordering::Relaxed),
            refreshes: self.refreshes.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
            calls_by_module: self.by_module.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ZohoStats {
    /// API calls sent (each attempt counts; the token endpoint does not).
    pub calls: u64,
    /// Credits spent: 1 per GET of ≤200 records or write of ≤100.
    pub credits: u64,
    /// Access tokens minted by this process.
    pub refreshes: u64,
    pub retries: u64,
    /// 429 answers received.
    pub throttled: u64,
    pub calls_by_module: BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shrinks_on_throttle_and_grows_back() {
        let l = Limiter::new(3);
        let p = l.acquire().await;
        l.throttled(p);
        assert_eq!(l.current(), 2);
        for _ in 0..3 {
            let p = l.acquire().await;
            l.throttled(p);
        }
        assert_eq!(l.current(), 1, "never below one");
        for _ in 0..GROW_AFTER {
            l.succeeded();
        }
        assert_eq!(l.current(), 2);
        let a = l.acquire().await;
        let b = l.acquire().await;
        assert!(l.sem.available_permits() == 0);
        drop((a, b));
    }
}
