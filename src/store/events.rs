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
//!   completed; the mark removed unless a newer event re-marked it) or [`EventStore::fail_dirty`] (events → failed with the error; the mark **stays**,
//!   unclaimed, with its last error, an attempt count and a `retry_after` time from [`retry_delay`], so a
//!   failing key is retried by a later run once due, never in a hot loop; a new event for the key after the
//!   failed attempt began makes it due at once, as does `zmsync events retry`, which re-queues failed events
//!   within `retry.policy.max_retries`).

use chrono::{DateTime, Utc};
use rusqlite::params;
use serde::Serialize;
use serde_json::Value;

use super::postgres::PgStore;
use super::sqlite::{parse_ts, ts, SqliteStore};
use super::{now, Result};

/// A claim older than this is taken to belong to a follower that died, and may be claimed again.
pub const STALE_CLAIM: chrono::Duration = chrono::Duration::minutes(15);

/// The longest a failing dirty key waits between attempts.
pub const DIRTY_RETRY_CAP: std::time::Duration = std::time::Duration::from_secs(3600);

/// The shortest: even with `initial_delay_seconds: 0` a failing key never makes `--follow` loop hot.
pub const DIRTY_RETRY_MIN: std::time::Duration = std::time::Duration::from_secs(1);

/// How long a dirty key waits after its `attempt`-th failure (1, 2, …): `initial_delay_seconds ×
/// backoff_factor^(attempt − 1)` from `retry.policy`, between [`DIRTY_RETRY_MIN`] and [`DIRTY_RETRY_CAP`].
pub fn retry_delay(policy: &crate::settings::RetryPolicy, attempt: i32) -> std::time::Duration {
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

// ---- SQLite ----------------------------------------------------------------------------------------------

fn sqlite_event(r: &rusqlite::Row<'_>) -> rusqlite::Result<(EventRow, Option<String>, String)> {
    Ok((
        EventRow {
            id: r.get(0)?,
            event_id: r.get(1)?,
            source: r.get(2)?,
            event_type: r.get(3)?,
            module: r.get(4)?,
            entity_type: r.get(5)?,
            record_id: r.get(6)?,
            status: r.get(7)?,
            retry_count: r.get(8)?,
            error_message: r.get(9)?,
            processed_at: None,
            created_at: DateTime::<Utc>::MIN_UTC,
        },
        r.get(10)?,
        r.get(11)?,
    ))
}

fn sqlite_finish((mut row, processed, created): (EventRow, Option<String>, String)) -> Result<EventRow> {
    row.processed_at = processed.as_deref().map(parse_ts).transpose()?;
    row.created_at = parse_ts(&created)?;
    Ok(row)
}

fn sqlite_events(conn: &rusqlite::Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<EventRow>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params, sqlite_event)?.collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(sqlite_finish).collect()
}

/// A claimable mark (SQLite): unclaimed or stale-claimed (?1), and due at ?2.
const SQLITE_CLAIMABLE: &str = "(claimed_at IS NULL OR claimed_at < ?1)
     AND (retry_after IS NULL OR retry_after <= ?2 OR failed_at IS NULL OR marked_at > failed_at)";

const SQLITE_UPSERT_DIRTY: &str =
    "INSERT INTO dirty (source, entity, key, first_event_id, marked_at) VALUES (?1, ?2, ?3, ?4, ?5)
     ON CONFLICT (source, entity, key) DO UPDATE SET marked_at = excluded.marked_at, claimed_at = NULL";

impl EventStore for SqliteStore {
    fn insert_events(&self, events: &[NewEvent]) -> Result<Vec<InsertOutcome>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut out = Vec::with_capacity(events.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO integration_events_log (event_id, source, event_type, module, entity_type, record_id, payload, status, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8) ON CONFLICT (event_id) DO NOTHING",
            )?;
            let mut dirty = tx.prepare_cached(SQLITE_UPSERT_DIRTY)?;
            let at = ts(now());
            for e in events {
                let n = insert.execute(params![
                    e.event_id,
                    e.source,
                    e.event_type,
                    e.module,
                    e.entity_type,
                    e.record_id,
                    e.payload.to_string(),
                    at
                ])?;
                if n == 1 {
                    dirty.execute(params![e.source, e.entity_type, e.record_id, e.event_id, at])?;
                    out.push(InsertOutcome::Inserted);
                } else {
                    out.push(InsertOutcome::Duplicate);
                }
            }
        }
        tx.commit()?;
        Ok(out)
    }

    fn event_counts(&self) -> Result<Vec<EventCount>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT source, status, COUNT(*) FROM integration_events_log GROUP BY source, status ORDER BY source, status",
        )?;
        let rows = stmt
            .query_map([], |r| Ok(EventCount { source: r.get(0)?, status: r.get(1)?, count: r.get(2)? }))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn oldest_pending_event(&self) -> Result<Option<EventRow>> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM integration_events_log WHERE status = 'pending' ORDER BY created_at, id LIMIT 1"
        );
        Ok(sqlite_events(&conn, &sql, [])?.into_iter().next())
    }

    fn recent_failed_events(&self, limit: usize) -> Result<Vec<EventRow>> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM integration_events_log WHERE status = 'failed'
             ORDER BY COALESCE(processed_at, created_at) DESC, id DESC LIMIT ?1"
        );
        sqlite_events(&conn, &sql, [limit as i64])
    }

    fn event(&self, event_id: &str) -> Result<Option<EventRow>> {
        let conn = self.conn();
        let sql = format!("SELECT {EVENT_COLUMNS} FROM integration_events_log WHERE event_id = ?1");
        Ok(sqlite_events(&conn, &sql, [event_id])?.into_iter().next())
    }

    fn retry_failed(&self, since: DateTime<Utc>, max_retries: u32) -> Result<RetryOutcome> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let since = ts(since);
        let window = "status = 'failed' AND COALESCE(processed_at, created_at) >= ?1";
        let exhausted: i64 = tx.query_row(
            &format!("SELECT COUNT(*) FROM integration_events_log WHERE {window} AND retry_count >= ?2"),
            params![since, max_retries],
            |r| r.get(0),
        )?;
        let picked: Vec<(i64, String, String, String, String)> = {
            let mut stmt = tx.prepare(&format!(
                "SELECT id, event_id, source, COALESCE(entity_type, ''), COALESCE(record_id, '') FROM integration_events_log
                 WHERE {window} AND retry_count < ?2 ORDER BY id"
            ))?;
            let rows = stmt
                .query_map(params![since, max_retries], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows
        };
        let at = ts(now());
        for (id, event_id, source, entity, key) in &picked {
            tx.execute(
                "UPDATE integration_events_log SET status = 'pending', retry_count = retry_count + 1, processed_at = NULL
                 WHERE id = ?1",
                [id],
            )?;
            tx.execute(SQLITE_UPSERT_DIRTY, params![source, entity, key, event_id, at])?;
        }
        tx.commit()?;
        Ok(RetryOutcome { retried: picked.len() as u64, exhausted: exhausted as u64 })
    }

    fn cleanup_events(&self, older_than: DateTime<Utc>, include_failed: bool, dry_run: bool) -> Result<u64> {
        let conn = self.conn();
        let statuses = if include_failed { "('completed', 'failed')" } else { "('completed')" };
        let filter = format!("FROM integration_events_log WHERE status IN {statuses} AND created_at < ?1");
        let n = if dry_run {
            conn.query_row(&format!("SELECT COUNT(*) {filter}"), [ts(older_than)], |r| r.get::<_, i64>(0))? as usize
        } else {
            conn.execute(&format!("DELETE {filter}"), [ts(older_than)])?
        };
        Ok(n as u64)
    }

    fn dirty_marks(&self) -> Result<Vec<(DirtyKey, Option<DateTime<Utc>>)>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT source, entity, key, claimed_at FROM dirty ORDER BY marked_at, source, entity, key")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((DirtyKey { source: r.get(0)?, entity: r.get(1)?, key: r.get(2)? }, r.get::<_, Option<String>>(3)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(|(k, c)| Ok((k, c.as_deref().map(parse_ts).transpose()?))).collect()
    }

    fn claimable_dirty(&self) -> Result<u64> {
        let at = now();
        let n: i64 = self.conn().query_row(
            &format!("SELECT COUNT(*) FROM dirty WHERE {SQLITE_CLAIMABLE}"),
            params![ts(at - STALE_CLAIM), ts(at)],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    fn failing_dirty(&self, limit: usize) -> Result<Vec<FailingMark>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT source, entity, key, attempts, last_error, marked_at, retry_after FROM dirty WHERE attempts > 0
             ORDER BY retry_after, marked_at, source, entity, key LIMIT ?1",
        )?;
        type Row = (DirtyKey, i32, Option<String>, String, Option<String>);
        let rows: Vec<Row> = stmt
            .query_map([limit as i64], |r| {
                Ok((
                    DirtyKey { source: r.get(0)?, entity: r.get(1)?, key: r.get(2)? },
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(key, attempts, last_error, marked, retry)| {
                Ok(FailingMark {
                    key,
                    attempts,
                    last_error,
                    marked_at: parse_ts(&marked)?,
                    retry_after: retry.as_deref().map(parse_ts).transpose()?,
                })
            })
            .collect()
    }

    fn claim_dirty(&self, limit: usize) -> Result<Vec<DirtyMark>> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let claimed_at = now();
        let stale = ts(claimed_at - STALE_CLAIM);
        type MarkRow = (String, String, String, Option<String>, String, i32, Option<String>);
        let rows: Vec<MarkRow> = {
            let mut stmt = tx.prepare(&format!(
                "SELECT source, entity, key, first_event_id, marked_at, attempts, last_error FROM dirty
                 WHERE {SQLITE_CLAIMABLE} ORDER BY marked_at LIMIT ?3"
            ))?;
            let rows = stmt
                .query_map(params![stale, ts(claimed_at), limit as i64], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows
        };
        let mut out = Vec::with_capacity(rows.len());
        for (source, entity, key, first_event_id, marked_at, attempts, last_error) in rows {
            tx.execute(
                "UPDATE dirty SET claimed_at = ?4 WHERE source = ?1 AND entity = ?2 AND key = ?3",
                params![source, entity, key, ts(claimed_at)],
            )?;
            tx.execute(
                "UPDATE integration_events_log SET status = 'processing'
                 WHERE source = ?1 AND entity_type = ?2 AND record_id = ?3 AND status = 'pending'",
                params![source, entity, key],
            )?;
            out.push(DirtyMark {
                key: DirtyKey { source, entity, key },
                first_event_id,
                marked_at: parse_ts(&marked_at)?,
                claimed_at,
                attempts,
                last_error,
            });
        }
        tx.commit()?;
        Ok(out)
    }

    fn complete_dirty(&self, marks: &[DirtyMark]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let at = ts(now());
        for m in marks {
            let k = &m.key;
            tx.execute(
                "UPDATE integration_events_log SET status = 'completed', processed_at = ?4, error_message = NULL
                 WHERE source = ?1 AND entity_type = ?2 AND record_id = ?3 AND status IN ('processing', 'failed')",
                params![k.source, k.entity, k.key, at],
            )?;
            let claim = ts(m.claimed_at);
            let removed = tx.execute(
                "DELETE FROM dirty WHERE source = ?1 AND entity = ?2 AND key = ?3 AND claimed_at = ?4",
                params![k.source, k.entity, k.key, claim],
            )?;
            if removed == 0 {
                // Re-marked during the sync: it stays for the next run, but no longer as a failing key.
                tx.execute(
                    "UPDATE dirty SET attempts = 0, last_error = NULL, failed_at = NULL, retry_after = NULL
                     WHERE source = ?1 AND entity = ?2 AND key = ?3",
                    params![k.source, k.entity, k.key],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn fail_dirty(&self, mark: &DirtyMark, error: &str, retry_in: std::time::Duration) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let k = &mark.key;
        let at = now();
        tx.execute(
            "UPDATE integration_events_log SET status = 'failed', processed_at = ?4, error_message = ?5
             WHERE source = ?1 AND entity_type = ?2 AND record_id = ?3 AND status = 'processing'",
            params![k.source, k.entity, k.key, ts(at), error],
        )?;
        // `failed_at` is the failed attempt's claim: a mark re-marked after it (marked_at > failed_at) is due at
        // once. A claim taken since by another follower (this one went stale) is left to it.
        let retry_after = at + retry_span(retry_in);
        tx.execute(
            "UPDATE dirty SET attempts = attempts + 1, last_error = ?5, failed_at = ?4, retry_after = ?6,
                 claimed_at = CASE WHEN claimed_at = ?4 THEN NULL ELSE claimed_at END
             WHERE source = ?1 AND entity = ?2 AND key = ?3",
            params![k.source, k.entity, k.key, ts(mark.claimed_at), error, ts(retry_after)],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn wait_for_dirty(&self, timeout: std::time::Duration) -> Result<bool> {
        if self.claimable_dirty()? > 0 {
            return Ok(true);
        }
        std::thread::sleep(timeout.min(SQLITE_DIRTY_POLL));
        Ok(self.claimable_dirty()? > 0)
    }
}

// ---- PostgreSQL ------------------------------------------------------------------------------------------

fn pg_event(r: &postgres::Row) -> EventRow {
    EventRow {
        id: r.get(0),
        event_id: r.get(1),
        source: r.get(2),
        event_type: r.get(3),
        module: r.get(4),
        entity_type: r.get(5),
        record_id: r.get(6),
        status: r.get(7),
        retry_count: r.get(8),
        error_message: r.get(9),
        processed_at: r.get(10),
        created_at: r.get(11),
    }
}

/// A claimable mark (PostgreSQL): unclaimed or stale-claimed ($1), and due at $2.
const PG_CLAIMABLE: &str = "(claimed_at IS NULL OR claimed_at < $1)
     AND (retry_after IS NULL OR retry_after <= $2 OR failed_at IS NULL OR marked_at > failed_at)";

/// Keys as three columns (sources, entities, keys), for statements over arrays.
fn key_columns<'a>(keys: impl Iterator<Item = &'a DirtyKey>) -> (Vec<&'a str>, Vec<&'a str>, Vec<&'a str>) {
    let mut cols: (Vec<&str>, Vec<&str>, Vec<&str>) = Default::default();
    for k in keys {
        cols.0.push(&k.source);
        cols.1.push(&k.entity);
        cols.2.push(&k.key);
    }
    cols
}

impl EventStore for PgStore {
    fn insert_events(&self, events: &[NewEvent]) -> Result<Vec<InsertOutcome>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        // One statement per batch whatever its size (round trips, not rows, are what a batch costs). Repeats of
        // an event_id inside the batch are settled here first: a later copy is a duplicate.
        let mut first = std::collections::HashSet::new();
        let candidates: Vec<&NewEvent> = events.iter().filter(|e| first.insert(e.event_id.as_str())).collect();
        let col = |f: fn(&NewEvent) -> String| candidates.iter().map(|e| f(e)).collect::<Vec<String>>();
        let (ids, sources, types, entities, records) = (
            col(|e| e.event_id.clone()),
            col(|e| e.source.clone()),
            col(|e| e.event_type.clone()),
            col(|e| e.entity_type.clone()),
            col(|e| e.record_id.clone()),
        );
        let modules: Vec<Option<String>> = candidates.iter().map(|e| e.module.clone()).collect();
        let payloads: Vec<Value> = candidates.iter().map(|e| e.payload.clone()).collect();
        let at = now();
        // One statement (its own transaction): events, then the marks of those inserted (one per key, the
        // first event's), then the NOTIFY, which the server delivers only on commit, so a follower never wakes
        // for marks that were rolled back. Sent typed, with no separate prepare: one round trip per batch, which
        // matters on a busy machine where every round trip waits for the server process to be scheduled.
        //
        // Two receivers on one database may take the same events at once (a proxy that delivers to both): the
        // events are inserted in event_id order so their locks are always taken in one order, and a statement
        // that PostgreSQL still aborts as a deadlock or a serialization failure is sent again (it changed
        // nothing), rather than answered 503.
        use postgres::error::SqlState;
        use postgres::types::Type;
        let mut attempt = 0;
        let rows = loop {
            attempt += 1;
            match self.conn()?.query_typed(
                "WITH input AS (
                     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[])
                          WITH ORDINALITY AS t(event_id, source, event_type, module, entity_type, record_id, payload, ord)),
                 ins AS (
                     INSERT INTO integration_events_log (event_id, source, event_type, module, entity_type, record_id, payload, status, created_at)
                     SELECT event_id, source, event_type, module, entity_type, record_id, payload, 'pending', $8 FROM input ORDER BY event_id
                     ON CONFLICT (event_id) DO NOTHING RETURNING event_id),
                 marks AS (
                     INSERT INTO dirty (source, entity, key, first_event_id, marked_at)
                     SELECT DISTINCT ON (i.source, i.entity_type, i.record_id) i.source, i.entity_type, i.record_id, i.event_id, $8
                     FROM input i JOIN ins USING (event_id) ORDER BY i.source, i.entity_type, i.record_id, i.ord
                     ON CONFLICT (source, entity, key) DO UPDATE SET marked_at = excluded.marked_at, claimed_at = NULL
                     RETURNING 1),
                 notified AS (SELECT pg_notify($9, '') FROM (SELECT 1 FROM marks LIMIT 1) m)
                 SELECT ins.event_id FROM ins CROSS JOIN (SELECT count(*) FROM notified) n",
                &[
                    (&ids, Type::TEXT_ARRAY),
                    (&sources, Type::TEXT_ARRAY),
                    (&types, Type::TEXT_ARRAY),
                    (&modules, Type::TEXT_ARRAY),
                    (&entities, Type::TEXT_ARRAY),
                    (&records, Type::TEXT_ARRAY),
                    (&payloads, Type::JSONB_ARRAY),
                    (&at, Type::TIMESTAMPTZ),
                    (&DIRTY_CHANNEL, Type::TEXT),
                ],
            ) {
                Ok(rows) => break rows,
                Err(e)
                    if attempt < 4
                        && matches!(
                            e.code(),
                            Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE
                        ) =>
                {
                    tracing::debug!(attempt, "event batch aborted by a concurrent receiver's; sent again");
                }
                Err(e) => return Err(e.into()),
            }
        };
        let inserted: std::collections::HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
        let mut answered = std::collections::HashSet::new();
        Ok(events
            .iter()
            .map(|e| {
                if inserted.contains(&e.event_id) && answered.insert(e.event_id.as_str()) {
                    InsertOutcome::Inserted
                } else {
                    InsertOutcome::Duplicate
                }
            })
            .collect())
    }

    fn event_counts(&self) -> Result<Vec<EventCount>> {
        let rows = self.conn()?.query(
            "SELECT source, status, COUNT(*) FROM integration_events_log GROUP BY source, status ORDER BY source, status",
            &[],
        )?;
        Ok(rows.iter().map(|r| EventCount { source: r.get(0), status: r.get(1), count: r.get(2) }).collect())
    }

    fn oldest_pending_event(&self) -> Result<Option<EventRow>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM integration_events_log WHERE status = 'pending' ORDER BY created_at, id LIMIT 1"
        );
        Ok(self.conn()?.query_opt(&sql, &[])?.as_ref().map(pg_event))
    }

    fn recent_failed_events(&self, limit: usize) -> Result<Vec<EventRow>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM integration_events_log WHERE status = 'failed'
             ORDER BY COALESCE(processed_at, created_at) DESC, id DESC LIMIT $1"
        );
        Ok(self.conn()?.query(&sql, &[&(limit as i64)])?.iter().map(pg_event).collect())
    }

    fn event(&self, event_id: &str) -> Result<Option<EventRow>> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM integration_events_log WHERE event_id = $1");
        Ok(self.conn()?.query_opt(&sql, &[&event_id])?.as_ref().map(pg_event))
    }

    fn retry_failed(&self, since: DateTime<Utc>, max_retries: u32) -> Result<RetryOutcome> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let max = max_retries as i32;
        let window = "status = 'failed' AND COALESCE(processed_at, created_at) >= $1";
        let exhausted: i64 = tx
            .query_one(
                &format!("SELECT COUNT(*) FROM integration_events_log WHERE {window} AND retry_count >= $2"),
                &[&since, &max],
            )?
            .get(0);
        let rows = tx.query(
            &format!(
                "UPDATE integration_events_log SET status = 'pending', retry_count = retry_count + 1, processed_at = NULL
                 WHERE {window} AND retry_count < $2
                 RETURNING event_id, source, COALESCE(entity_type, ''), COALESCE(record_id, '')"
            ),
            &[&since, &max],
        )?;
        // The marks in one upsert over arrays: one per key, the first event's (as one upsert per event left it).
        let mut seen = std::collections::HashSet::new();
        let mut marks: [Vec<String>; 4] = Default::default();
        for r in &rows {
            let (event_id, source, entity, key): (String, String, String, String) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            if seen.insert((source.clone(), entity.clone(), key.clone())) {
                for (col, v) in marks.iter_mut().zip([source, entity, key, event_id]) {
                    col.push(v);
                }
            }
        }
        if !seen.is_empty() {
            let [sources, entities, keys, event_ids] = &marks;
            tx.execute(
                "INSERT INTO dirty (source, entity, key, first_event_id, marked_at)
                 SELECT source, entity, key, event_id, $5
                   FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[]) AS u(source, entity, key, event_id)
                 ON CONFLICT (source, entity, key) DO UPDATE SET marked_at = excluded.marked_at, claimed_at = NULL",
                &[sources, entities, keys, event_ids, &now()],
            )?;
        }
        tx.commit()?;
        Ok(RetryOutcome { retried: rows.len() as u64, exhausted: exhausted as u64 })
    }

    fn cleanup_events(&self, older_than: DateTime<Utc>, include_failed: bool, dry_run: bool) -> Result<u64> {
        let statuses = if include_failed { "('completed', 'failed')" } else { "('completed')" };
        let filter = format!("FROM integration_events_log WHERE status IN {statuses} AND created_at < $1");
        let mut conn = self.conn()?;
        Ok(if dry_run {
            conn.query_one(&format!("SELECT COUNT(*) {filter}"), &[&older_than])?.get::<_, i64>(0) as u64
        } else {
            conn.execute(&format!("DELETE {filter}"), &[&older_than])?
        })
    }

    fn dirty_marks(&self) -> Result<Vec<(DirtyKey, Option<DateTime<Utc>>)>> {
        let rows = self
            .conn()?
            .query("SELECT source, entity, key, claimed_at FROM dirty ORDER BY marked_at, source, entity, key", &[])?;
        Ok(rows.iter().map(|r| (DirtyKey { source: r.get(0), entity: r.get(1), key: r.get(2) }, r.get(3))).collect())
    }

    fn claimable_dirty(&self) -> Result<u64> {
        let at = now();
        let sql = format!("SELECT COUNT(*) FROM dirty WHERE {PG_CLAIMABLE}");
        Ok(self.conn()?.query_one(&sql, &[&(at - STALE_CLAIM), &at])?.get::<_, i64>(0) as u64)
    }

    fn failing_dirty(&self, limit: usize) -> Result<Vec<FailingMark>> {
        let rows = self.conn()?.query(
            "SELECT source, entity, key, attempts, last_error, marked_at, retry_after FROM dirty WHERE attempts > 0
             ORDER BY retry_after, marked_at, source, entity, key LIMIT $1",
            &[&(limit as i64)],
        )?;
        Ok(rows
            .iter()
            .map(|r| FailingMark {
                key: DirtyKey { source: r.get(0), entity: r.get(1), key: r.get(2) },
                attempts: r.get(3),
                last_error: r.get(4),
                marked_at: r.get(5),
                retry_after: r.get(6),
            })
            .collect())
    }

    fn claim_dirty(&self, limit: usize) -> Result<Vec<DirtyMark>> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let claimed_at = now();
        let stale = claimed_at - STALE_CLAIM;
        // $2 is both the claim's time and "now" for the back-off (PG_CLAIMABLE's $2).
        let rows = tx.query(
            &format!(
                "UPDATE dirty d SET claimed_at = $2 FROM (
                     SELECT source, entity, key FROM dirty WHERE {PG_CLAIMABLE}
                     ORDER BY marked_at LIMIT $3 FOR UPDATE SKIP LOCKED) c
                 WHERE d.source = c.source AND d.entity = c.entity AND d.key = c.key
                 RETURNING d.source, d.entity, d.key, d.first_event_id, d.marked_at, d.attempts, d.last_error"
            ),
            &[&stale, &claimed_at, &(limit as i64)],
        )?;
        let mut out: Vec<DirtyMark> = rows
            .iter()
            .map(|r| DirtyMark {
                key: DirtyKey { source: r.get(0), entity: r.get(1), key: r.get(2) },
                first_event_id: r.get(3),
                marked_at: r.get(4),
                claimed_at,
                attempts: r.get(5),
                last_error: r.get(6),
            })
            .collect();
        out.sort_by(|a, b| a.marked_at.cmp(&b.marked_at).then_with(|| a.key.cmp(&b.key)));
        if !out.is_empty() {
            let (sources, entities, keys) = key_columns(out.iter().map(|m| &m.key));
            tx.execute(
                "UPDATE integration_events_log AS l SET status = 'processing'
                   FROM UNNEST($1::text[], $2::text[], $3::text[]) AS u(source, entity, key)
                  WHERE l.source = u.source AND l.entity_type = u.entity AND l.record_id = u.key AND l.status = 'pending'",
                &[&sources, &entities, &keys],
            )?;
        }
        tx.commit()?;
        Ok(out)
    }

    fn complete_dirty(&self, marks: &[DirtyMark]) -> Result<()> {
        if marks.is_empty() {
            return Ok(());
        }
        // Three statements over arrays, whatever the number of marks.
        let (sources, entities, keys) = key_columns(marks.iter().map(|m| &m.key));
        let claimed: Vec<DateTime<Utc>> = marks.iter().map(|m| m.claimed_at).collect();
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        tx.execute(
            "UPDATE integration_events_log AS l SET status = 'completed', processed_at = $4, error_message = NULL
               FROM UNNEST($1::text[], $2::text[], $3::text[]) AS u(source, entity, key)
              WHERE l.source = u.source AND l.entity_type = u.entity AND l.record_id = u.key
                AND l.status IN ('processing', 'failed')",
            &[&sources, &entities, &keys, &now()],
        )?;
        let removed: std::collections::HashSet<(String, String, String)> = tx
            .query(
                "DELETE FROM dirty AS d USING UNNEST($1::text[], $2::text[], $3::text[], $4::timestamptz[])
                     AS u(source, entity, key, claimed_at)
                  WHERE d.source = u.source AND d.entity = u.entity AND d.key = u.key AND d.claimed_at = u.claimed_at
                  RETURNING d.source, d.entity, d.key",
                &[&sources, &entities, &keys, &claimed],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        // Re-marked during the sync: it stays for the next run, but no longer as a failing key.
        let kept: Vec<&DirtyKey> = marks
            .iter()
            .map(|m| &m.key)
            .filter(|k| !removed.contains(&(k.source.clone(), k.entity.clone(), k.key.clone())))
            .collect();
        if !kept.is_empty() {
            let (sources, entities, keys) = key_columns(kept.into_iter());
            tx.execute(
                "UPDATE dirty AS d SET attempts = 0, last_error = NULL, failed_at = NULL, retry_after = NULL
                   FROM UNNEST($1::text[], $2::text[], $3::text[]) AS u(source, entity, key)
                  WHERE d.source = u.source AND d.entity = u.entity AND d.key = u.key",
                &[&sources, &entities, &keys],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn fail_dirty(&self, mark: &DirtyMark, error: &str, retry_in: std::time::Duration) -> Result<()> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let k = &mark.key;
        let at = now();
        tx.execute(
            "UPDATE integration_events_log SET status = 'failed', processed_at = $4, error_message = $5
             WHERE source = $1 AND entity_type = $2 AND record_id = $3 AND status = 'processing'",
            &[&k.source, &k.entity, &k.key, &at, &error],
        )?;
        // As on SQLite: the mark stays, due at `retry_after` or at once if re-marked since the failed claim.
        tx.execute(
            "UPDATE dirty SET attempts = attempts + 1, last_error = $5, failed_at = $4, retry_after = $6,
                 claimed_at = CASE WHEN claimed_at = $4 THEN NULL ELSE claimed_at END
             WHERE source = $1 AND entity = $2 AND key = $3",
            &[&k.source, &k.entity, &k.key, &mark.claimed_at, &error, &(at + retry_span(retry_in))],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn wait_for_dirty(&self, timeout: std::time::Duration) -> Result<bool> {
        use postgres::fallible_iterator::FallibleIterator;
        let mut guard = self.listener.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            let mut conn = self.conn()?;
            conn.batch_execute(&format!("LISTEN {DIRTY_CHANNEL}"))?;
            *guard = Some(conn);
            // Marks committed before the LISTEN sent no notice we could see: let the caller look now.
            return Ok(true);
        }
        let conn = guard.as_mut().expect("listener set above");
        let woken = conn.notifications().timeout_iter(timeout).next()?.is_some();
        // A burst of commits sends a burst of notices; one look at the marks covers them all.
        while conn.notifications().iter().next()?.is_some() {}
        Ok(woken)
    }
}
