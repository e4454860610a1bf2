//! Runs (`runs`) and the journal of every planned op and its outcome (`journal`), written as each op
//! completes so a run killed at any instant loses nothing.

use chrono::{DateTime, Utc};
use postgres::types::Type;
use rusqlite::{params, OptionalExtension};
use serde_json::Value;

use super::journal::{pg_entry, sqlite_entry};
use super::postgres::PgStore;
use super::sqlite::{parse_ts, ts, SqliteStore};
use super::{now, Result};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunRow {
    pub id: i64,
    pub kind: String,
    pub module: Option<String>,
    /// running, completed, partial (some records failed), failed, refused, interrupted (killed: found still
    /// `running` by a later run; `finished_at` is when it was found, `error` says by which run).
    pub status: String,
    pub dry_run: bool,
    pub allow_mass_change: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub host: Option<String>,
    pub pid: Option<i64>,
    pub summary: Option<Value>,
    pub error: Option<String>,
}

/// What a new run records about itself.
#[derive(Debug, Clone)]
pub struct NewRun<'a> {
    pub kind: &'a str,
    pub module: Option<&'a str>,
    pub dry_run: bool,
    pub allow_mass_change: bool,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JournalEntry {
    pub run_id: i64,
    pub seq: i64,
    pub entity: String,
    pub key: String,
    /// The side written: zoho or moodle.
    pub target: String,
    pub op: String,
    pub changes: Option<Value>,
    pub fingerprints: Option<Value>,
    /// planned, sent, applied, skipped, rejected, failed.
    pub outcome: String,
    pub target_id: Option<String>,
    pub message: Option<String>,
}

pub trait RunStore {
    fn create_run(&self, run: &NewRun<'_>) -> Result<i64>;
    fn finish_run(&self, id: i64, status: &str, summary: &Value, error: Option<&str>) -> Result<()>;
    fn run(&self, id: i64) -> Result<Option<RunRow>>;
    /// Newest first.
    fn recent_runs(&self, limit: i64) -> Result<Vec<RunRow>>;
    /// Runs still marked running (one is live if it holds the lock; others died).
    fn running_runs(&self) -> Result<Vec<RunRow>>;
    /// Marks every run still `running` other than `by` as `interrupted`, found now: called by run `by` once it
    /// holds the run lock, so none of them can be alive. Returns them, newest first.
    fn interrupt_runs(&self, by: i64) -> Result<Vec<RunRow>>;
    /// Runs found interrupted, newest first.
    fn interrupted_runs(&self, limit: i64) -> Result<Vec<RunRow>>;
    /// The newest run of `kind` (any kind when `None`) that completed without failures.
    fn last_good_run(&self, kind: Option<&str>) -> Result<Option<RunRow>>;

    /// Records the planned ops of a run before any is sent.
    fn journal_planned(&self, entries: &[JournalEntry]) -> Result<()>;
    /// Records outcomes as ops complete: `(seq, outcome, target_id, message)`.
    fn journal_outcomes(&self, run_id: i64, outcomes: &[(i64, &str, Option<&str>, Option<&str>)]) -> Result<()>;
    fn journal(&self, run_id: i64) -> Result<Vec<JournalEntry>>;
}

/// The `error` of a run found interrupted by run `by`.
pub fn interrupted_note(by: i64) -> String {
    format!("interrupted: still marked running when run {by} took the run lock (the process was killed or the machine stopped); run {by} took over its work")
}

fn host() -> Option<String> {
    std::fs::read_to_string("/etc/hostname").ok().map(|h| h.trim().to_string()).filter(|h| !h.is_empty())
}

// ---- SQLite ----------------------------------------------------------------------------------------------

const RUN_COLS: &str =
    "id, kind, module, status, dry_run, allow_mass_change, started_at, finished_at, host, pid, summary, error";

fn sqlite_run(r: &rusqlite::Row<'_>) -> rusqlite::Result<(RunRow, String, Option<String>, Option<String>)> {
    Ok((
        RunRow {
            id: r.get(0)?,
            kind: r.get(1)?,
            module: r.get(2)?,
            status: r.get(3)?,
            dry_run: r.get::<_, i64>(4)? != 0,
            allow_mass_change: r.get::<_, i64>(5)? != 0,
            started_at: Utc::now(),
            finished_at: None,
            host: r.get(8)?,
            pid: r.get(9)?,
            summary: None,
            error: r.get(11)?,
        },
        r.get(6)?,
        r.get(7)?,
        r.get(10)?,
    ))
}

fn finish_sqlite_run(
    (mut run, started, finished, summary): (RunRow, String, Option<String>, Option<String>),
) -> Result<RunRow> {
    run.started_at = parse_ts(&started)?;
    run.finished_at = finished.as_deref().map(parse_ts).transpose()?;
    run.summary = summary.as_deref().map(serde_json::from_str).transpose()?;
    Ok(run)
}

impl SqliteStore {
    fn query_runs(&self, sql_tail: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<RunRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {RUN_COLS} FROM runs {sql_tail}"))?;
        let rows = stmt.query_map(args, sqlite_run)?.collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(finish_sqlite_run).collect()
    }
}

impl RunStore for SqliteStore {
    fn create_run(&self, run: &NewRun<'_>) -> Result<i64> {
        let conn = self.conn();
        conn.execute(
            "INSERT INTO runs (kind, module, status, dry_run, allow_mass_change, started_at, host, pid)
             VALUES (?1, ?2, 'running', ?3, ?4, ?5, ?6, ?7)",
            params![run.kind, run.module, run.dry_run, run.allow_mass_change, ts(now()), host(), std::process::id()],
        )?;
        Ok(conn.last_insert_rowid())
    }

    fn finish_run(&self, id: i64, status: &str, summary: &Value, error: Option<&str>) -> Result<()> {
        self.conn().execute(
            "UPDATE runs SET status = ?2, summary = ?3, error = ?4, finished_at = ?5 WHERE id = ?1",
            params![id, status, summary.to_string(), error, ts(now())],
        )?;
        Ok(())
    }

    fn run(&self, id: i64) -> Result<Option<RunRow>> {
        let row = self
            .conn()
            .query_row(&format!("SELECT {RUN_COLS} FROM runs WHERE id = ?1"), [id], sqlite_run)
            .optional()?;
        row.map(finish_sqlite_run).transpose()
    }

    fn recent_runs(&self, limit: i64) -> Result<Vec<RunRow>> {
        self.query_runs("ORDER BY id DESC LIMIT ?1", &[&limit])
    }

    fn running_runs(&self) -> Result<Vec<RunRow>> {
        self.query_runs("WHERE status = 'running' ORDER BY id DESC", &[])
    }

    fn interrupt_runs(&self, by: i64) -> Result<Vec<RunRow>> {
        let ids: Vec<i64> =
            self.query_runs("WHERE status = 'running' AND id <> ?1", &[&by])?.iter().map(|r| r.id).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.conn().execute(
            "UPDATE runs SET status = 'interrupted', finished_at = ?2, error = ?3 WHERE status = 'running' AND id <> ?1",
            params![by, ts(now()), interrupted_note(by)],
        )?;
        let mut out = Vec::new();
        for id in ids {
            out.extend(self.run(id)?);
        }
        out.sort_by_key(|r| std::cmp::Reverse(r.id));
        Ok(out)
    }

    fn interrupted_runs(&self, limit: i64) -> Result<Vec<RunRow>> {
        self.query_runs("WHERE status = 'interrupted' ORDER BY id DESC LIMIT ?1", &[&limit])
    }

    fn last_good_run(&self, kind: Option<&str>) -> Result<Option<RunRow>> {
        let rows = match kind {
            Some(k) => self.query_runs(
                "WHERE status = 'completed' AND dry_run = 0 AND kind = ?1 ORDER BY id DESC LIMIT 1",
                &[&k],
            )?,
            None => self.query_runs("WHERE status = 'completed' AND dry_run = 0 ORDER BY id DESC LIMIT 1", &[])?,
        };
        Ok(rows.into_iter().next())
    }

    fn journal_planned(&self, entries: &[JournalEntry]) -> Result<()> {
        // One writer of journal rows: the entries without details.
        super::journal::JournalStore::journal_planned_with(self, entries, &[])
    }

    fn journal_outcomes(&self, run_id: i64, outcomes: &[(i64, &str, Option<&str>, Option<&str>)]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "UPDATE journal SET outcome = ?3, target_id = COALESCE(?4, target_id), message = ?5, completed_at = ?6
                 WHERE run_id = ?1 AND seq = ?2",
            )?;
            let at = ts(now());
            for (seq, outcome, target_id, message) in outcomes {
                stmt.execute(params![run_id, seq, outcome, target_id, message, at])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn journal(&self, run_id: i64) -> Result<Vec<JournalEntry>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT run_id, seq, entity, key, target, op, changes, fingerprints, outcome, target_id, message
               FROM journal WHERE run_id = ?1 ORDER BY seq",
        )?;
        let rows = stmt
            .query_map([run_id], |r| {
                Ok((sqlite_entry(r)?, r.get::<_, Option<String>>(6)?, r.get::<_, Option<String>>(7)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(mut e, c, f)| {
                e.changes = c.as_deref().map(serde_json::from_str).transpose()?;
                e.fingerprints = f.as_deref().map(serde_json::from_str).transpose()?;
                Ok(e)
            })
            .collect()
    }
}

// ---- PostgreSQL ------------------------------------------------------------------------------------------

fn pg_run(r: &postgres::Row) -> RunRow {
    RunRow {
        id: r.get(0),
        kind: r.get(1),
        module: r.get(2),
        status: r.get(3),
        dry_run: r.get(4),
        allow_mass_change: r.get(5),
        started_at: r.get(6),
        finished_at: r.get(7),
        host: r.get(8),
        pid: r.get::<_, Option<i32>>(9).map(i64::from),
        summary: r.get(10),
        error: r.get(11),
    }
}

impl PgStore {
    fn query_runs(&self, sql_tail: &str, args: &[&(dyn postgres::types::ToSql + Sync)]) -> Result<Vec<RunRow>> {
        let rows = self.conn()?.query(&format!("SELECT {RUN_COLS} FROM runs {sql_tail}"), args)?;
        Ok(rows.iter().map(pg_run).collect())
    }
}

impl RunStore for PgStore {
    fn create_run(&self, run: &NewRun<'_>) -> Result<i64> {
        let pid = std::process::id() as i32;
        let row = self.conn()?.query_one(
            "INSERT INTO runs (kind, module, status, dry_run, allow_mass_change, started_at, host, pid)
             VALUES ($1, $2, 'running', $3, $4, $5, $6, $7) RETURNING id",
            &[&run.kind, &run.module, &run.dry_run, &run.allow_mass_change, &now(), &host(), &pid],
        )?;
        Ok(row.get(0))
    }

    fn finish_run(&self, id: i64, status: &str, summary: &Value, error: Option<&str>) -> Result<()> {
        self.conn()?.execute(
            "UPDATE runs SET status = $2, summary = $3, error = $4, finished_at = $5 WHERE id = $1",
            &[&id, &status, summary, &error, &now()],
        )?;
        Ok(())
    }

    fn run(&self, id: i64) -> Result<Option<RunRow>> {
        Ok(self.query_runs("WHERE id = $1", &[&id])?.into_iter().next())
    }

    fn recent_runs(&self, limit: i64) -> Result<Vec<RunRow>> {
        self.query_runs("ORDER BY id DESC LIMIT $1", &[&limit])
    }

    fn running_runs(&self) -> Result<Vec<RunRow>> {
        self.query_runs("WHERE status = 'running' ORDER BY id DESC", &[])
    }

    fn interrupt_runs(&self, by: i64) -> Result<Vec<RunRow>> {
        let note = interrupted_note(by);
        let rows = self.conn()?.query(
            &format!(
                "UPDATE runs SET status = 'interrupted', finished_at = $2, error = $3 WHERE status = 'running' AND id <> $1
                 RETURNING {RUN_COLS}"
            ),
            &[&by, &now(), &note],
        )?;
        let mut out: Vec<RunRow> = rows.iter().map(pg_run).collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.id));
        Ok(out)
    }

    fn interrupted_runs(&self, limit: i64) -> Result<Vec<RunRow>> {
        self.query_runs("WHERE status = 'interrupted' ORDER BY id DESC LIMIT $1", &[&limit])
    }

    fn last_good_run(&self, kind: Option<&str>) -> Result<Option<RunRow>> {
        let rows = match kind {
            Some(k) => self.query_runs(
                "WHERE status = 'completed' AND NOT dry_run AND kind = $1 ORDER BY id DESC LIMIT 1",
                &[&k],
            )?,
            None => self.query_runs("WHERE status = 'completed' AND NOT dry_run ORDER BY id DESC LIMIT 1", &[])?,
        };
        Ok(rows.into_iter().next())
    }

    fn journal_planned(&self, entries: &[JournalEntry]) -> Result<()> {
        // One writer of journal rows: the entries without details.
        super::journal::JournalStore::journal_planned_with(self, entries, &[])
    }

    fn journal_outcomes(&self, run_id: i64, outcomes: &[(i64, &str, Option<&str>, Option<&str>)]) -> Result<()> {
        // One UPDATE over arrays: the outcomes of a whole batch in one round trip. One UPDATE cannot touch a
        // row twice, so a seq given twice is merged first as the row-at-a-time updates would have left it.
        // The seq range bounds the index scan to the batch's rows (a batch's ops are planned together): without
        // it the planner, which cannot know how many rows a run has just journalled, read the run's every row
        // for each batch (a first sync of 1,500 students: 100 batches × 14,000 rows).
        let mut merged: std::collections::BTreeMap<i32, (&str, Option<&str>, Option<&str>)> = Default::default();
        for (seq, outcome, target_id, message) in outcomes {
            let target_id = target_id.or(merged.get(&(*seq as i32)).and_then(|m| m.1));
            merged.insert(*seq as i32, (outcome, target_id, *message));
        }
        if merged.is_empty() {
            return Ok(());
        }
        let seqs: Vec<i32> = merged.keys().copied().collect();
        let names: Vec<&str> = merged.values().map(|m| m.0).collect();
        let target_ids: Vec<Option<&str>> = merged.values().map(|m| m.1).collect();
        let messages: Vec<Option<&str>> = merged.values().map(|m| m.2).collect();
        self.conn()?.execute_typed(
            "UPDATE journal AS j SET outcome = u.outcome, target_id = COALESCE(u.target_id, j.target_id),
                    message = u.message, completed_at = $2
               FROM UNNEST($3, $4, $5, $6) AS u(seq, outcome, target_id, message)
              WHERE j.run_id = $1 AND j.seq BETWEEN $7 AND $8 AND j.seq = u.seq",
            &[
                (&run_id, Type::INT8),
                (&now(), Type::TIMESTAMPTZ),
                (&seqs, Type::INT4_ARRAY),
                (&names, Type::TEXT_ARRAY),
                (&target_ids, Type::TEXT_ARRAY),
                (&messages, Type::TEXT_ARRAY),
                (&seqs[0], Type::INT4),
                (&seqs[seqs.len() - 1], Type::INT4),
            ],
        )?;
        Ok(())
    }

    fn journal(&self, run_id: i64) -> Result<Vec<JournalEntry>> {
        let rows = self.conn()?.query(
            "SELECT run_id, seq, entity, key, target, op, changes, fingerprints, outcome, target_id, message
               FROM journal WHERE run_id = $1 ORDER BY seq",
            &[&run_id],
        )?;
        Ok(rows.iter().map(pg_entry).collect())
    }
}
