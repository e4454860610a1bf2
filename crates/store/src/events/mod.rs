//! The event log and the dirty marks: what the webhook receiver writes, what `zmsync events` reports and
//! repairs, and what the follow mode (`sync --incremental --follow`) claims and settles.
//!
//! Vocabulary. An event is one row of `integration_events_log` (status pending → processing → completed |
//! failed). A dirty mark is one row of `dirty`, keyed by (source, entity, key): "this record changed, sync
//! it". An event's dirty key is (source, entity_type, record_id); the receiver stores `entity_type` for both
//! sources (Zoho events carry the module too).
//!
//! The mark life cycle:
//! - the receiver inserts events and upserts their marks in one transaction ([`EventStore::insert_events`]);
//!   a new event for a key that is already marked clears the claim, so the change is synced again;
//! - the follow mode claims marks ([`EventStore::claim_dirty`]): their pending events become processing;
//! - it settles each: [`EventStore::complete_dirty`] (events, failed ones of earlier attempts too, →
//!   completed; the mark removed unless a newer event re-marked it) or [`EventStore::fail_dirty`] (events →
//!   failed with the error; the mark **stays**, unclaimed, with its last error, an attempt count and a
//!   `retry_after` time from [`retry_delay`], so a
//!   failing key is retried by a later run once due, never in a hot loop; a new event for the key after the
//!   failed attempt began makes it due at once, as does `zmsync events retry`, which re-queues failed events
//!   within `retry.policy.max_retries`).

mod pg;
mod sqlite;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::Result;

/// A claim older than this is taken to belong to a follower that died, and may be claimed again.
pub const STALE_CLAIM: chrono::Duration = chrono::Duration::minutes(15);

/// The longest a failing dirty key waits between attempts.
pub const DIRTY_RETRY_CAP: std::time::Duration = std::time::Duration::from_secs(3600);

/// The shortest: even with `initial_delay_seconds: 0` a failing key never makes `--follow` loop hot.
pub const DIRTY_RETRY_MIN: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a dirty key waits after its `attempt`-th failure (1, 2, …): `initial_delay_seconds ×
/// backoff_factor^(attempt − 1)` from `retry.policy`, between [`DIRTY_RETRY_MIN`] and [`DIRTY_RETRY_CAP`].
pub fn retry_delay(policy: &zmsync_core::settings::RetryPolicy, attempt: i32) -> std::time::Duration {
    let exp = attempt.saturating_sub(1).clamp(0, 64);
    let secs = policy.initial_delay_seconds as f64 * policy.backoff_factor.max(1.0).powi(exp);
    let secs = if secs.is_finite() { secs.min(DIRTY_RETRY_CAP.as_secs_f64()) } else { DIRTY_RETRY_CAP.as_secs_f64() };
    std::time::Duration::from_secs_f64(secs).max(DIRTY_RETRY_MIN)
}

/// `retry_in` as a time span, at most a year (a later time than that is no retry at all).
fn retry_span(retry_in: std::time::Duration) -> chrono::Duration {
    let year = std::time::Duration::from_secs(366 * 86_400);
    chrono::Duration::from_std(retry_in.min(year)).unwrap_or(chrono::Duration::days(366))
}

/// A dirty key whose last sync failed: what `zmsync events status` lists.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailingMark {
    pub key: DirtyKey,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub marked_at: DateTime<Utc>,
    /// When it may be claimed again (a new event for the key makes it due at once).
    pub retry_after: Option<DateTime<Utc>>,
}

/// The identity of a dirty mark.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct DirtyKey {
    pub source: String,
    pub entity: String,
    pub key: String,
}

/// An event as the receiver hands it to the store. Never carries a signature or a token.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: String,
    /// `zoho` or `moodle`.
    pub source: String,
    pub event_type: String,
    /// The Zoho module (`BTEC_Students`…), for Zoho events.
    pub module: Option<String>,
    /// The entity (`student`, `enrollment`, `grade`…); with `record_id` it names the dirty mark.
    pub entity_type: String,
    pub record_id: String,
    pub payload: Value,
}

impl NewEvent {
    pub fn dirty_key(&self) -> DirtyKey {
        DirtyKey { source: self.source.clone(), entity: self.entity_type.clone(), key: self.record_id.clone() }
    }
}

/// What happened to one event of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InsertOutcome {
    Inserted,
    /// Its event_id was already in the log (or earlier in the same batch): nothing was changed.
    Duplicate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventCount {
    pub source: String,
    pub status: String,
    pub count: i64,
}

/// One row of the event log (without its payload).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventRow {
    pub id: i64,
    pub event_id: String,
    pub source: String,
    pub event_type: String,
    pub module: Option<String>,
    pub entity_type: Option<String>,
    pub record_id: Option<String>,
    pub status: String,
    pub retry_count: i32,
    pub error_message: Option<String>,
    pub processed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// What `retry_failed` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct RetryOutcome {
    /// Failed events moved back to pending (their records marked dirty again).
    pub retried: u64,
    /// Failed events in the window left alone: they already used `max_retries`.
    pub exhausted: u64,
}

/// A claimed dirty mark. `claimed_at` is the claim's token: settling a mark that was re-marked since the
/// claim keeps it dirty.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DirtyMark {
    pub key: DirtyKey,
    pub first_event_id: Option<String>,
    pub marked_at: DateTime<Utc>,
    pub claimed_at: DateTime<Utc>,
    pub attempts: i32,
    pub last_error: Option<String>,
}

pub trait EventStore {
    /// Inserts a batch of events and upserts the dirty mark of each inserted one, all in one transaction.
    /// Returns one outcome per event, in order. A duplicate event_id changes nothing.
    fn insert_events(&self, events: &[NewEvent]) -> Result<Vec<InsertOutcome>>;
    /// Event counts by source and status, sorted.
    fn event_counts(&self) -> Result<Vec<EventCount>>;
    /// The oldest pending event, if any.
    fn oldest_pending_event(&self) -> Result<Option<EventRow>>;
    /// The last `limit` failed events, newest first.
    fn recent_failed_events(&self, limit: usize) -> Result<Vec<EventRow>>;
    /// One event by its event_id.
    fn event(&self, event_id: &str) -> Result<Option<EventRow>>;
    /// Failed events that failed (or arrived) at or after `since` and have `retry_count < max_retries` go back
    /// to pending with `retry_count + 1`, and their records are marked dirty again.
    fn retry_failed(&self, since: DateTime<Utc>, max_retries: u32) -> Result<RetryOutcome>;
    /// Deletes completed events (and failed ones with `include_failed`) created before `older_than`. With
    /// `dry_run` nothing is deleted. Returns how many were (or would be) deleted.
    fn cleanup_events(&self, older_than: DateTime<Utc>, include_failed: bool, dry_run: bool) -> Result<u64>;
    /// All dirty marks, claimed or not, due or not, oldest first (for status and tests).
    fn dirty_marks(&self) -> Result<Vec<(DirtyKey, Option<DateTime<Utc>>)>>;
    /// How many marks [`claim_dirty`](EventStore::claim_dirty) would take now: unclaimed (or stale-claimed)
    /// and due (never failed, past their `retry_after`, or re-marked since the failed attempt). What `--follow`
    /// waits for: marks another follower holds, or failing keys not yet due, are not its work.
    fn claimable_dirty(&self) -> Result<u64>;
    /// Marks whose last sync failed (attempts > 0), soonest retry first, at most `limit`.
    fn failing_dirty(&self, limit: usize) -> Result<Vec<FailingMark>>;
    /// Claims up to `limit` claimable marks (see [`claimable_dirty`](EventStore::claimable_dirty)), oldest
    /// first; their pending events become processing. Safe with several followers on PostgreSQL (SKIP LOCKED).
    fn claim_dirty(&self, limit: usize) -> Result<Vec<DirtyMark>>;
    /// The claimed records were synced: their processing events, and the failed ones of earlier attempts,
    /// become completed; each mark is removed unless a newer event re-marked it after the claim (then it
    /// stays, its failure record cleared).
    fn complete_dirty(&self, marks: &[DirtyMark]) -> Result<()>;
    /// The claimed record could not be synced: its processing events become failed with `error`; the mark
    /// stays, unclaimed, with `error`, one more attempt, and `retry_after = now + retry_in` (see
    /// [`retry_delay`]). A new event for the key since the claim makes it due at once.
    fn fail_dirty(&self, mark: &DirtyMark, error: &str, retry_in: std::time::Duration) -> Result<()>;
    /// Waits until new dirty marks may have been committed; returns whether it saw a sign of them.
    /// PostgreSQL: sleeps on the channel the receiver NOTIFYs on commit, at most `timeout`. SQLite, which has
    /// no notifications: **one short poll** — a claimable mark now, or after [`SQLITE_DIRTY_POLL`] (or
    /// `timeout`, if shorter); the caller loops. The caller re-checks the marks either way, so a spurious wake
    /// costs one query and a missed one only the timeout (or the poll).
    fn wait_for_dirty(&self, timeout: std::time::Duration) -> Result<bool>;
}

/// How often the SQLite follower looks for new dirty marks (one indexed `EXISTS` query, a few microseconds).
pub const SQLITE_DIRTY_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// The channel `insert_events` notifies (on commit) when it marks records dirty.
pub const DIRTY_CHANNEL: &str = "zmsync_dirty";

const EVENT_COLUMNS: &str = "id, event_id, source, event_type, module, entity_type, record_id, status, retry_count, \
                             error_message, processed_at, created_at";
