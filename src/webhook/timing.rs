//! The receiver's optional per-request breakdown ([`TIMING_VAR`]): where each accepted request's time went.

use std::time::Duration;

use super::writer;

/// The environment variable that turns on the per-request breakdown: set (to anything but `0`), the receiver
/// times each accepted request's stages and logs p50 / p99 / max of each when it stops.
pub const TIMING_VAR: &str = "ZMSYNC_WEBHOOK_TIMING";

/// The log target of the breakdown's lines.
pub const TIMING_TARGET: &str = "zmsync::webhook::timing";

/// The stages of [`Breakdown`], in order.
const STAGES: [&str; 7] = ["body", "check", "queued", "commit", "wake", "respond", "total"];

/// Where one request's time went, from its head being read: reading the body; content type, signature,
/// payload and rate limit; waiting for the commit before its own; its batch's commit; from the commit to its
/// thread running again; writing the answer (the legacy server only: hyper writes after the handler returns);
/// and all of it. What it does not see: the time from the request's arrival to its head being read.
#[derive(Default)]
pub(super) struct Stages {
    pub(super) body: Duration,
    pub(super) check: Duration,
    pub(super) write: writer::WriteTiming,
}

/// The per-request breakdown of accepted events, kept when [`TIMING_VAR`] is set.
#[derive(Default)]
pub(super) struct Breakdown {
    rows: std::sync::Mutex<Vec<[Duration; STAGES.len()]>>,
}

impl Breakdown {
    pub(super) fn from_env() -> Option<Breakdown> {
        std::env::var(TIMING_VAR).ok().filter(|v| !v.is_empty() && v != "0").map(|_| Breakdown::default())
    }

    pub(super) fn record(&self, s: &Stages, respond: Duration, total: Duration) {
        let row = [s.body, s.check, s.write.queued, s.write.commit, s.write.wake, respond, total];
        self.rows.lock().unwrap_or_else(|p| p.into_inner()).push(row);
    }

    /// Logs p50 / p99 / max of each stage.
    pub(super) fn log(&self) {
        let rows = std::mem::take(&mut *self.rows.lock().unwrap_or_else(|p| p.into_inner()));
        for (i, stage) in STAGES.iter().enumerate() {
            let mut v: Vec<Duration> = rows.iter().map(|r| r[i]).collect();
            v.sort();
            let at = |p: f64| v.get(((v.len().max(1) - 1) as f64 * p).round() as usize).copied().unwrap_or_default();
            let us = |d: Duration| d.as_micros() as u64;
            tracing::info!(
                target: TIMING_TARGET,
                stage,
                requests = v.len(),
                p50_us = us(at(0.50)),
                p99_us = us(at(0.99)),
                max_us = us(at(1.0)),
                "webhook timing"
            );
        }
    }
}
