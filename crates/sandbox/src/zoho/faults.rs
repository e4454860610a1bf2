//! Fault injection and throttling (§7, §11 item 17): what a sync must survive.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::envelope::error;
use super::ZohoOptions;
use crate::http::{Action, HttpResponse};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// 429 TOO_MANY_REQUESTS.
    TooManyRequests,
    /// 500 INTERNAL_ERROR.
    InternalError,
    /// 502 with an HTML body, as a proxy in front of Zoho answers.
    BadGateway,
    /// Hold the connection for `timeout_hold`, then drop it unanswered.
    Timeout,
    /// Drop the connection at once, unanswered.
    Reset,
}

impl FaultKind {
    pub const ALL: [FaultKind; 5] = [
        FaultKind::TooManyRequests,
        FaultKind::InternalError,
        FaultKind::BadGateway,
        FaultKind::Timeout,
        FaultKind::Reset,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::TooManyRequests => "too_many_requests",
            FaultKind::InternalError => "internal_error",
            FaultKind::BadGateway => "bad_gateway",
            FaultKind::Timeout => "timeout",
            FaultKind::Reset => "reset",
        }
    }
}

pub struct Limits {
    pub in_flight: AtomicUsize,
    calls: AtomicU64,
    credits: AtomicU64,
    /// The RNG and the seed it was made from, so a changed `fault_seed` restarts the sequence.
    rng: Mutex<(u64, StdRng)>,
}

/// Counts a call as in flight until dropped.
pub struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Limits {
    pub fn new(seed: u64) -> Limits {
        Limits {
            in_flight: AtomicUsize::new(0),
            calls: AtomicU64::new(0),
            credits: AtomicU64::new(0),
            rng: Mutex::new((seed, StdRng::seed_from_u64(seed))),
        }
    }

    /// Enters the in-flight window; returns the guard and how many calls are now in flight.
    pub fn enter(&self) -> (InFlight<'_>, usize) {
        let n = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        (InFlight(&self.in_flight), n)
    }

    fn draw(&self, seed: u64) -> f64 {
        let mut g = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 != seed {
            *g = (seed, StdRng::seed_from_u64(seed));
        }
        g.1.gen::<f64>()
    }

    /// Whether this call is over the credit budget or is an "every Nth" victim. Spends its credits.
    pub fn throttled(&self, opts: &ZohoOptions, cost: u64) -> (bool, u64) {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if opts.every_nth_429.is_some_and(|every| every > 0 && n.is_multiple_of(every)) {
            return (true, 0);
        }
        if let Some(budget) = opts.credit_budget {
            let used = self.credits.load(Ordering::SeqCst);
            if used + cost > budget {
                return (true, 0);
            }
        }
        self.credits.fetch_add(cost, Ordering::SeqCst);
        (false, cost)
    }

    /// A fault for this call, drawn from the seeded sequence.
    pub fn pick(&self, opts: &ZohoOptions) -> Option<FaultKind> {
        if opts.fault_rate <= 0.0 || opts.fault_kinds.is_empty() {
            return None;
        }
        if self.draw(opts.fault_seed) >= opts.fault_rate {
            return None;
        }
        let i = (self.draw(opts.fault_seed) * opts.fault_kinds.len() as f64) as usize;
        opts.fault_kinds.get(i.min(opts.fault_kinds.len() - 1)).copied()
    }

    pub fn after_apply(&self, opts: &ZohoOptions) -> bool {
        opts.fault_after_apply > 0.0 && self.draw(opts.fault_seed) < opts.fault_after_apply
    }
}

pub fn too_many_requests(opts: &ZohoOptions) -> HttpResponse {
    let resp = error(
        429,
        "TOO_MANY_REQUESTS",
        json!({}),
        "You have reached the maximum number of allowed API calls. Please try again later.",
    );
    match opts.retry_after {
        Some(secs) => resp.with_header("Retry-After", secs.to_string()),
        None => resp,
    }
}

pub fn action(kind: FaultKind, opts: &ZohoOptions) -> Action {
    match kind {
        FaultKind::TooManyRequests => Action::Respond(too_many_requests(opts)),
        FaultKind::InternalError => {
            Action::Respond(error(500, "INTERNAL_ERROR", json!({}), "Internal Server Error"))
        }
        FaultKind::BadGateway => Action::Respond(HttpResponse {
            status: 502,
            headers: vec![("Content-Type".into(), "text/html".into())],
            body: b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>".to_vec(),
        }),
        FaultKind::Timeout => Action::Hold(opts.timeout_hold),
        FaultKind::Reset => Action::Drop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_faults() {
        let opts = ZohoOptions { fault_rate: 0.5, fault_seed: 7, ..ZohoOptions::default() };
        let a: Vec<_> = {
            let l = Limits::new(7);
            (0..50).map(|_| l.pick(&opts)).collect()
        };
        let b: Vec<_> = {
            let l = Limits::new(7);
            (0..50).map(|_| l.pick(&opts)).collect()
        };
        assert_eq!(a, b);
        assert!(a.iter().any(Option::is_some) && a.iter().any(Option::is_none));
    }

    #[test]
    fn every_nth_and_credit_budget() {
        let l = Limits::new(1);
        let opts = ZohoOptions { every_nth_429: Some(3), ..ZohoOptions::default() };
        let hits: Vec<bool> = (0..6).map(|_| l.throttled(&opts, 1).0).collect();
        assert_eq!(hits, [false, false, true, false, false, true]);
        let l = Limits::new(1);
        let opts = ZohoOptions { credit_budget: Some(2), ..ZohoOptions::default() };
        let hits: Vec<bool> = (0..4).map(|_| l.throttled(&opts, 1).0).collect();
        assert_eq!(hits, [false, false, true, true]);
    }
}
