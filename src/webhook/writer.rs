//! Group commit, led by the workers themselves.
//!
//! Workers parse and verify, then submit their events and wait. A worker that finds nobody committing becomes
//! the leader: it inserts whatever is queued (up to [`MAX_BATCH`] events, its own first) in one transaction
//! with the dirty marks, commits, and only then answers each submitter, so every 202 is for an event that is
//! committed. Events that queued up meanwhile are committed next, by the oldest of their submitters, which is
//! woken to lead. An idle receiver thus commits an event on the thread that received it, with no hand-off to
//! another thread and back (each hand-off is a wake-up the scheduler may delay on a busy machine); under load,
//! every commit carries everything that arrived while the last one ran.
//!
//! A store error is retried for a while (a few seconds on SQLite, whose busy timeout absorbs other writers
//! first; about a second on PostgreSQL, where a failure means the server is unreachable); if it persists, the
//! submitters answer 503 with Retry-After and nothing was acknowledged. While the store stays unavailable, each
//! later batch is tried once, so clients are told 503 quickly; the first batch that commits ends that.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::store::events::{InsertOutcome, NewEvent};
use crate::store::Store;

/// Events per transaction at most.
pub const MAX_BATCH: usize = 256;
/// How long a failing batch is retried before answering "unavailable", by default.
pub const RETRY_FOR: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the event store is unavailable; nothing was recorded")]
pub struct StoreUnavailable;

type Outcome = Result<Vec<InsertOutcome>, StoreUnavailable>;

/// Where one submission's time went (for the receiver's optional breakdown, `ZMSYNC_WEBHOOK_TIMING`).
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteTiming {
    /// From the submission until the commit of its batch began (waiting behind the batch before it).
    pub queued: Duration,
    /// The batch's insert and commit.
    pub commit: Duration,
    /// From the commit's end until the submitter ran again with its answer.
    pub wake: Duration,
}

/// What a waiting submitter is told.
enum Signal {
    Waiting,
    /// Commit the queue (your events are first in it).
    Lead,
    /// The outcome, when the batch's commit began and how long it took, and when it was answered.
    Done(Outcome, Instant, Duration, Instant),
}

struct Slot {
    signal: Mutex<Signal>,
    cv: Condvar,
}

impl Slot {
    fn set(&self, s: Signal) {
        *lock(&self.signal) = s;
        self.cv.notify_one();
    }

    /// Waits for `Lead` (→ `None`) or the outcome, with its timing for a job submitted at `submitted`.
    fn wait(&self, submitted: Instant) -> Option<(Outcome, WriteTiming)> {
        let mut g = lock(&self.signal);
        loop {
            match std::mem::replace(&mut *g, Signal::Waiting) {
                Signal::Waiting => g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner()),
                Signal::Lead => return None,
                Signal::Done(o, began, commit, answered) => {
                    let timing = WriteTiming {
                        queued: began.saturating_duration_since(submitted),
                        commit,
                        wake: answered.elapsed(),
                    };
                    return Some((o, timing));
                }
            }
        }
    }
}

struct Job {
    events: Vec<NewEvent>,
    slot: Arc<Slot>,
}

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Someone is committing (or has been told to): new jobs wait to be committed by them.
    leading: bool,
    /// The last batch failed: try the next one once.
    down: bool,
}

struct Inner {
    store: Mutex<Box<dyn Store>>,
    retry_for: Duration,
    queue: Mutex<Queue>,
}

/// The workers' shared handle on the event store's writing connection. Cloneable.
#[derive(Clone)]
pub struct WriterHandle {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The writer on its own store connection; a failing batch is retried for `retry_for`.
pub fn new(store: Box<dyn Store>, retry_for: Duration) -> WriterHandle {
    let inner = Inner { store: Mutex::new(store), retry_for, queue: Mutex::new(Queue::default()) };
    WriterHandle { inner: Arc::new(inner) }
}

impl WriterHandle {
    /// Records events and returns once they are committed (or the store gave up).
    pub fn submit(&self, events: Vec<NewEvent>) -> Outcome {
        self.submit_timed(events).0
    }

    /// [`WriterHandle::submit`], also telling where the time went.
    pub fn submit_timed(&self, events: Vec<NewEvent>) -> (Outcome, WriteTiming) {
        let submitted = Instant::now();
        let slot = Arc::new(Slot { signal: Mutex::new(Signal::Waiting), cv: Condvar::new() });
        {
            let mut q = lock(&self.inner.queue);
            q.jobs.push_back(Job { events, slot: Arc::clone(&slot) });
            if q.leading {
                drop(q);
                if let Some(done) = slot.wait(submitted) {
                    return done;
                }
            } else {
                q.leading = true;
            }
        }
        // Leading: our job is the oldest in the queue.
        self.lead();
        slot.wait(submitted).unwrap_or((Err(StoreUnavailable), WriteTiming::default()))
    }

    /// Commits one batch from the head of the queue, answers it, and passes the lead on (or ends it).
    fn lead(&self) {
        let (jobs, down) = {
            let mut q = lock(&self.inner.queue);
            let mut jobs = Vec::new();
            let mut count = 0;
            while let Some(job) = q.jobs.front() {
                if !jobs.is_empty() && count + job.events.len() > MAX_BATCH {
                    break;
                }
                count += job.events.len();
                jobs.push(q.jobs.pop_front().expect("front exists"));
            }
            (jobs, q.down)
        };
        let batch: Vec<NewEvent> = jobs.iter().flat_map(|j| j.events.iter().cloned()).collect();
        let began = Instant::now();
        let result = {
            let store = lock(&self.inner.store);
            let retry_for = if down { Duration::ZERO } else { self.inner.retry_for };
            // A panic inside the store must not leave the lead taken forever: it answers 503 like any failure.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                insert_with_retry(store.as_ref(), &batch, retry_for)
            }))
            .unwrap_or_else(|_| {
                tracing::error!(events = batch.len(), "the event store panicked; answering 503");
                Err(StoreUnavailable)
            })
        };
        if result.is_ok() && down {
            tracing::info!("event store available again");
        }
        let (commit, answered) = (began.elapsed(), Instant::now());
        let mut offset = 0;
        for job in &jobs {
            let n = job.events.len();
            let outcome = result.as_ref().map(|o| o[offset..offset + n].to_vec()).map_err(|e| *e);
            job.slot.set(Signal::Done(outcome, began, commit, answered));
            offset += n;
        }
        let mut q = lock(&self.inner.queue);
        q.down = result.is_err();
        match q.jobs.front() {
            Some(next) => next.slot.set(Signal::Lead),
            None => q.leading = false,
        }
    }
}

fn insert_with_retry(store: &dyn Store, batch: &[NewEvent], retry_for: Duration) -> Outcome {
    let start = Instant::now();
    let mut delay = Duration::from_millis(20);
    loop {
        match store.insert_events(batch) {
            Ok(outcomes) => return Ok(outcomes),
            Err(e) if start.elapsed() < retry_for => {
                tracing::warn!(error = %e, events = batch.len(), "event store write failed; retrying");
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_millis(500));
            }
            Err(e) => {
                tracing::error!(error = %e, events = batch.len(), "event store write failed; answering 503");
                return Err(StoreUnavailable);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str) -> NewEvent {
        NewEvent {
            event_id: id.into(),
            source: "zoho".into(),
            event_type: "updated".into(),
            module: Some("BTEC_Students".into()),
            entity_type: "student".into(),
            record_id: format!("r-{id}"),
            payload: serde_json::json!({}),
        }
    }

    #[test]
    fn concurrent_submitters_are_all_committed_and_answered() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("w.db").display());
        let w = new(crate::store::open(&url).unwrap(), RETRY_FOR);
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    (0..50)
                        .map(|i| {
                            let id = format!("{t}-{i}");
                            // Every other submission repeats the previous id: a duplicate.
                            let first = w.submit(vec![event(&id)]).unwrap();
                            let again = w.submit(vec![event(&id), event(&format!("{id}-b"))]).unwrap();
                            (first, again)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for t in threads {
            for (first, again) in t.join().unwrap() {
                assert_eq!(first, vec![InsertOutcome::Inserted]);
                assert_eq!(again, vec![InsertOutcome::Duplicate, InsertOutcome::Inserted]);
            }
        }
        let store = crate::store::open(&url).unwrap();
        assert_eq!(store.event_counts().unwrap().iter().map(|c| c.count).sum::<i64>(), 8 * 50 * 2);
        assert!(!lock(&w.inner.queue).leading, "the lead is released when the queue is empty");
    }
}
