//! Group commit: the one thread that writes events.
//!
//! Workers parse and verify, then hand their events to the writer through a bounded channel and wait. The
//! writer takes whatever is queued (up to [`MAX_BATCH`] events), inserts it in one transaction with the dirty
//! marks, commits, and only then answers each worker, so every 202 is for an event that is committed. A store
//! error is retried for a few seconds (SQLite's busy timeout absorbs other writers first); if it persists,
//! the workers answer 503 with Retry-After and nothing was acknowledged.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::store::events::{InsertOutcome, NewEvent};
use crate::store::Store;

/// Events per transaction at most.
pub const MAX_BATCH: usize = 256;
/// How long the writer keeps retrying a failing batch before answering "unavailable".
const RETRY_FOR: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the event store is unavailable; nothing was recorded")]
pub struct StoreUnavailable;

struct Job {
    events: Vec<NewEvent>,
    reply: SyncSender<Result<Vec<InsertOutcome>, StoreUnavailable>>,
}

/// A worker's handle on the writer. Cloneable; the writer stops when every handle is dropped.
#[derive(Clone)]
pub struct WriterHandle {
    tx: SyncSender<Job>,
}

impl WriterHandle {
    /// Sends events to the writer and waits until they are committed (or the store gave up).
    pub fn submit(&self, events: Vec<NewEvent>) -> Result<Vec<InsertOutcome>, StoreUnavailable> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.tx.send(Job { events, reply }).map_err(|_| StoreUnavailable)?;
        answer.recv().unwrap_or(Err(StoreUnavailable))
    }
}

/// Starts the writer thread on its own store connection.
pub fn spawn(store: Box<dyn Store>) -> (WriterHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::sync_channel::<Job>(4 * MAX_BATCH);
    let handle = std::thread::Builder::new()
        .name("event-writer".into())
        .spawn(move || run(store.as_ref(), rx))
        .expect("spawn the event writer thread");
    (WriterHandle { tx }, handle)
}

fn run(store: &dyn Store, rx: Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let mut count = jobs[0].events.len();
        while count < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => {
                    count += job.events.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let batch: Vec<NewEvent> = jobs.iter().flat_map(|j| j.events.iter().cloned()).collect();
        let result = insert_with_retry(store, &batch);
        let mut offset = 0;
        for job in jobs {
            let n = job.events.len();
            let answer = match &result {
                Ok(outcomes) => Ok(outcomes[offset..offset + n].to_vec()),
                Err(e) => Err(*e),
            };
            offset += n;
            let _ = job.reply.send(answer);
        }
    }
    tracing::debug!("event writer stopped");
}

fn insert_with_retry(store: &dyn Store, batch: &[NewEvent]) -> Result<Vec<InsertOutcome>, StoreUnavailable> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(20);
    loop {
        match store.insert_events(batch) {
            Ok(outcomes) => return Ok(outcomes),
            Err(e) if start.elapsed() < RETRY_FOR => {
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
