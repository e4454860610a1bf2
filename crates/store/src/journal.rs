//! What the operator's commands read of the journal (issue #22): each op's before-values, ids, refs and reason
//! (journalled with the plan), a record's history across runs, and outcome counts per run.

use chrono::{DateTime, Utc};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::Type;
use rusqlite::params_from_iter;
use serde_json::Value;

use super::postgres::PgStore;
use super::sqlite::{parse_ts, ts, SqliteStore};
use super::{now, JournalEntry, Result};

/// What the journal keeps of an op besides [`JournalEntry`]: enough to tell its story and to undo it.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OpDetail {
    pub zoho_id: Option<String>,
    pub moodle_id: Option<String>,
    /// The target's values before the op (the changed fields; for a removal, the record's fields).
    pub before: Option<Value>,
    /// The agreed base the op was planned against (`Some(null)`: there was none; `None`: not kept).
    pub base: Option<Value>,
    /// What apply needed besides the fields (Moodle ids, the whole row of an upsert).
    pub refs: Option<Value>,
    pub reason: Option<String>,
    /// The Zoho id of the record the op is about: the student of an enrolment, grade or payment.
    pub subject: Option<String>,
}

/// One journal row as the operator's commands read it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JournalRow {
    #[serde(flatten)]
    pub entry: JournalEntry,
    #[serde(flatten)]
    pub detail: OpDetail,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
}

pub trait JournalStore {
    /// Like `journal_planned`, with each entry's [`OpDetail`] (`details` is empty or as long as `entries`).
    fn journal_planned_with(&self, entries: &[JournalEntry], details: &[OpDetail]) -> Result<()>;
    /// A run's journal with details, in seq order, handed to `f` a row at a time as it is read (a first sync of
    /// 5,000 students journals 46,000 ops: read whole, they were the largest thing the run held). `f` must not
    /// call the store.
    fn journal_each(&self, run_id: i64, f: &mut dyn FnMut(JournalRow) -> Result<()>) -> Result<()>;
    /// A run's journal with details, in seq order.
    fn journal_rows(&self, run_id: i64) -> Result<Vec<JournalRow>> {
        let mut rows = Vec::new();
        self.journal_each(run_id, &mut |r| {
            rows.push(r);
            Ok(())
        })?;
        Ok(rows)
    }
    /// Every op about one of `subjects` (of `entity` when given), newest first, at most `limit`.
    fn journal_history(&self, subjects: &[String], entity: Option<&str>, limit: i64) -> Result<Vec<JournalRow>>;
    /// `(run_id, outcome, ops)` for each of `run_ids`.
    fn journal_counts(&self, run_ids: &[i64]) -> Result<Vec<(i64, String, i64)>>;
}

const COLS: &str = "run_id, seq, entity, key, target, op, changes, fingerprints, outcome, target_id, message, \
                    zoho_id, moodle_id, before_values, refs, reason, subject, created_at, completed_at, base_values";

fn json_text(v: &Option<Value>) -> Option<String> {
    v.as_ref().map(Value::to_string)
}

type SqliteRaw = (JournalRow, [Option<String>; 5], String, Option<String>);

fn sqlite_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SqliteRaw> {
    Ok((
        JournalRow {
            entry: sqlite_entry(r)?,
            detail: OpDetail {
                zoho_id: r.get(11)?,
                moodle_id: r.get(12)?,
                before: None,
                base: None,
                refs: None,
                reason: r.get(15)?,
                subject: r.get(16)?,
            },
            created_at: Utc::now(),
            completed_at: None,
        },
        [r.get(6)?, r.get(7)?, r.get(13)?, r.get(14)?, r.get(19)?],
        r.get(17)?,
        r.get(18)?,
    ))
}

fn finish_sqlite((mut row, json, created, completed): SqliteRaw) -> Result<JournalRow> {
    let parse =
        |s: &Option<String>| -> Result<Option<Value>> { Ok(s.as_deref().map(serde_json::from_str).transpose()?) };
    row.entry.changes = parse(&json[0])?;
    row.entry.fingerprints = parse(&json[1])?;
    row.detail.before = parse(&json[2])?;
    row.detail.refs = parse(&json[3])?;
    row.detail.base = parse(&json[4])?;
    row.created_at = parse_ts(&created)?;
    row.completed_at = completed.as_deref().map(parse_ts).transpose()?;
    Ok(row)
}

impl SqliteStore {
    fn journal_query(&self, tail: &str, args: Vec<rusqlite::types::Value>) -> Result<Vec<JournalRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {COLS} FROM journal {tail}"))?;
        let rows = stmt.query_map(params_from_iter(args), sqlite_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(finish_sqlite).collect()
    }
}

fn placeholders(from: usize, n: usize, pg: bool) -> String {
    (0..n).map(|i| if pg { format!("${}", from + i) } else { format!("?{}", from + i) }).collect::<Vec<_>>().join(", ")
}

impl JournalStore for SqliteStore {
    fn journal_planned_with(&self, entries: &[JournalEntry], details: &[OpDetail]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO journal (run_id, seq, entity, key, target, op, changes, fingerprints, outcome, target_id,
                                      message, created_at, zoho_id, moodle_id, before_values, refs, reason, subject,
                                      base_values)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19)",
            )?;
            let at = ts(now());
            let none = OpDetail::default();
            for (i, e) in entries.iter().enumerate() {
                let d = details.get(i).unwrap_or(&none);
                stmt.execute(rusqlite::params![
                    e.run_id,
                    e.seq,
                    e.entity,
                    e.key,
                    e.target,
                    e.op,
                    json_text(&e.changes),
                    json_text(&e.fingerprints),
                    e.outcome,
                    e.target_id,
                    e.message,
                    at,
                    d.zoho_id,
                    d.moodle_id,
                    json_text(&d.before),
                    json_text(&d.refs),
                    d.reason,
                    d.subject.as_deref().unwrap_or(&e.key),
                    json_text(&d.base),
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn journal_each(&self, run_id: i64, f: &mut dyn FnMut(JournalRow) -> Result<()>) -> Result<()> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!("SELECT {COLS} FROM journal WHERE run_id = ?1 ORDER BY seq"))?;
        let mut rows = stmt.query([run_id])?;
        while let Some(r) = rows.next()? {
            f(finish_sqlite(sqlite_row(r)?)?)?;
        }
        Ok(())
    }

    fn journal_history(&self, subjects: &[String], entity: Option<&str>, limit: i64) -> Result<Vec<JournalRow>> {
        if subjects.is_empty() {
            return Ok(Vec::new());
        }
        let mut args: Vec<rusqlite::types::Value> = subjects.iter().map(|s| s.clone().into()).collect();
        let n = args.len();
        let mut tail = format!("WHERE subject IN ({})", placeholders(1, n, false));
        if let Some(e) = entity {
            args.push(e.to_string().into());
            tail.push_str(&format!(" AND entity = ?{}", n + 1));
        }
        args.push(limit.into());
        tail.push_str(&format!(" ORDER BY run_id DESC, seq DESC LIMIT ?{}", args.len()));
        self.journal_query(&tail, args)
    }

    fn journal_counts(&self, run_ids: &[i64]) -> Result<Vec<(i64, String, i64)>> {
        if run_ids.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT run_id, outcome, count(*) FROM journal WHERE run_id IN ({}) GROUP BY run_id, outcome",
            placeholders(1, run_ids.len(), false)
        ))?;
        let rows = stmt
            .query_map(params_from_iter(run_ids.iter()), |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}

fn pg_row(r: &postgres::Row) -> JournalRow {
    JournalRow {
        entry: pg_entry(r),
        detail: OpDetail {
            zoho_id: r.get(11),
            moodle_id: r.get(12),
            before: r.get(13),
            base: r.get(19),
            refs: r.get(14),
            reason: r.get(15),
            subject: r.get(16),
        },
        created_at: r.get(17),
        completed_at: r.get(18),
    }
}

impl JournalStore for PgStore {
    fn journal_planned_with(&self, entries: &[JournalEntry], details: &[OpDetail]) -> Result<()> {
        // One COPY for the chunk: a round trip for all its ops, and the server fills the table's pages a batch of
        // rows at a time (an INSERT over arrays went a row at a time, and was a run's slowest statement).
        if entries.is_empty() {
            return Ok(());
        }
        let none = OpDetail::default();
        let at = now();
        let mut conn = self.conn()?;
        let sink = conn.copy_in(
            "COPY journal (run_id, seq, entity, key, target, op, changes, fingerprints, outcome, target_id, message,
                           created_at, zoho_id, moodle_id, before_values, refs, reason, subject, base_values)
             FROM STDIN (FORMAT binary)",
        )?;
        let (text, json) = (Type::TEXT, Type::JSON);
        let types = [
            Type::INT8,
            Type::INT4,
            text.clone(),
            text.clone(),
            text.clone(),
            text.clone(),
            json.clone(),
            json.clone(),
            text.clone(),
            text.clone(),
            text.clone(),
            Type::TIMESTAMPTZ,
            text.clone(),
            text.clone(),
            json.clone(),
            json.clone(),
            text.clone(),
            text,
            json,
        ];
        let mut w = BinaryCopyInWriter::new(sink, &types);
        for (i, e) in entries.iter().enumerate() {
            let d = details.get(i).unwrap_or(&none);
            let seq = e.seq as i32;
            let subject = d.subject.as_deref().unwrap_or(&e.key);
            w.write(&[
                &e.run_id,
                &seq,
                &e.entity,
                &e.key,
                &e.target,
                &e.op,
                &e.changes,
                &e.fingerprints,
                &e.outcome,
                &e.target_id,
                &e.message,
                &at,
                &d.zoho_id,
                &d.moodle_id,
                &d.before,
                &d.refs,
                &d.reason,
                &subject,
                &d.base,
            ])?;
        }
        w.finish()?;
        Ok(())
    }

    fn journal_each(&self, run_id: i64, f: &mut dyn FnMut(JournalRow) -> Result<()>) -> Result<()> {
        use postgres::fallible_iterator::FallibleIterator;
        let mut conn = self.conn()?;
        let sql = format!("SELECT {COLS} FROM journal WHERE run_id = $1 ORDER BY seq");
        let mut rows = conn.query_raw(&sql, [&run_id as &(dyn postgres::types::ToSql + Sync)])?;
        while let Some(r) = rows.next()? {
            f(pg_row(&r))?;
        }
        Ok(())
    }

    fn journal_history(&self, subjects: &[String], entity: Option<&str>, limit: i64) -> Result<Vec<JournalRow>> {
        if subjects.is_empty() {
            return Ok(Vec::new());
        }
        let subjects: Vec<String> = subjects.to_vec();
        let rows = match entity {
            Some(e) => self.conn()?.query(
                &format!(
                    "SELECT {COLS} FROM journal WHERE subject = ANY($1) AND entity = $2 ORDER BY run_id DESC, seq DESC \
                     LIMIT $3"
                ),
                &[&subjects, &e, &limit],
            )?,
            None => self.conn()?.query(
                &format!("SELECT {COLS} FROM journal WHERE subject = ANY($1) ORDER BY run_id DESC, seq DESC LIMIT $2"),
                &[&subjects, &limit],
            )?,
        };
        Ok(rows.iter().map(pg_row).collect())
    }

    fn journal_counts(&self, run_ids: &[i64]) -> Result<Vec<(i64, String, i64)>> {
        if run_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<i64> = run_ids.to_vec();
        let rows = self.conn()?.query(
            "SELECT run_id, outcome, count(*) FROM journal WHERE run_id = ANY($1) GROUP BY run_id, outcome",
            &[&ids],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
    }
}

/// The journal entry in the first eleven columns of a journal row (`run_id, seq, entity, key, target, op,
/// changes, fingerprints, outcome, target_id, message`), its two JSON columns left for the caller to parse.
pub(super) fn sqlite_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<JournalEntry> {
    Ok(JournalEntry {
        run_id: r.get(0)?,
        seq: r.get(1)?,
        entity: r.get(2)?,
        key: r.get(3)?,
        target: r.get(4)?,
        op: r.get(5)?,
        changes: None,
        fingerprints: None,
        outcome: r.get(8)?,
        target_id: r.get(9)?,
        message: r.get(10)?,
    })
}

/// The journal entry in the first eleven columns of a journal row (see [`sqlite_entry`]).
pub(super) fn pg_entry(r: &postgres::Row) -> JournalEntry {
    JournalEntry {
        run_id: r.get(0),
        seq: i64::from(r.get::<_, i32>(1)),
        entity: r.get(2),
        key: r.get(3),
        target: r.get(4),
        op: r.get(5),
        changes: r.get(6),
        fingerprints: r.get(7),
        outcome: r.get(8),
        target_id: r.get(9),
        message: r.get(10),
    }
}
