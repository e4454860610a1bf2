//! The event log and the dirty marks on PostgreSQL.

use chrono::{DateTime, Utc};

use super::*;
use crate::postgres::PgStore;
use crate::{now, Result};

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
