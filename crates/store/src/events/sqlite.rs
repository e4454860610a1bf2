//! The event log and the dirty marks on SQLite.

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::*;
use crate::sqlite::{parse_ts, ts, SqliteStore};
use crate::{now, Result};

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
