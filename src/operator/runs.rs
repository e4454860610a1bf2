//! `zmsync runs` and `zmsync runs show RUN`: what happened lately, from the `runs` rows and the journal.
//!
//! Status as shown: `completed`, `partial` (completed, some records rejected or failed), `failed`, `refused`,
//! `interrupted` (killed; a `running` row whose run no longer holds the run lock reads as interrupted), and
//! `running` for the one live run.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::issues::IssueSummary;
use crate::store::{JournalRow, RunRow, Store, StoreError};

/// One run as `runs` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct RunLine {
    pub id: i64,
    pub kind: String,
    pub module: Option<String>,
    /// As shown (see the module doc).
    pub status: String,
    /// As stored in `runs.status`.
    pub stored_status: String,
    pub dry_run: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_s: Option<f64>,
    /// Journalled ops by outcome (planned = never sent: the run died or was a dry run).
    pub ops: BTreeMap<String, i64>,
    pub zoho_calls: u64,
    pub moodle_calls: u64,
    pub error: Option<String>,
    /// The CSV and HTML reports, when they exist.
    pub report: Option<PathBuf>,
    pub html: Option<PathBuf>,
}

impl RunLine {
    pub fn api_calls(&self) -> u64 {
        self.zoho_calls + self.moodle_calls
    }
}

/// A run's whole story for `runs show`.
#[derive(Debug, Clone, Serialize)]
pub struct RunDetail {
    #[serde(flatten)]
    pub line: RunLine,
    /// The run's summary as it recorded it (the `sync --json` document), when it finished.
    pub summary: Option<Value>,
    pub failures: Vec<Failure>,
    pub stale: Vec<Failure>,
    pub guards: Vec<Value>,
    pub issues: IssueSummary,
}

/// An op that did not apply.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub seq: i64,
    pub entity: String,
    pub key: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub message: String,
}

impl Failure {
    fn of(r: &JournalRow) -> Failure {
        let e = &r.entry;
        Failure {
            seq: e.seq,
            entity: e.entity.clone(),
            key: e.key.clone(),
            action: e.op.clone(),
            target: e.target.clone(),
            outcome: e.outcome.clone(),
            message: e.message.clone().unwrap_or_default(),
        }
    }
}

/// Shown status of stored rows: a `running` row is live only if it is the newest running row and the run lock
/// is held; every other `running` row belongs to a run that died.
fn shown_status(rows: &[RunRow], store: &dyn Store) -> Result<BTreeMap<i64, String>, StoreError> {
    let running: Vec<i64> = rows.iter().filter(|r| r.status == "running").map(|r| r.id).collect();
    let live = if running.is_empty() {
        None
    } else {
        match store.try_lock_runs()? {
            Some(_free) => None,
            None => store.running_runs()?.first().map(|r| r.id),
        }
    };
    Ok(rows
        .iter()
        .map(|r| {
            let s = match r.status.as_str() {
                "running" if Some(r.id) == live => "running".to_string(),
                "running" => "interrupted".to_string(),
                other => other.to_string(),
            };
            (r.id, s)
        })
        .collect())
}

fn u(v: Option<&Value>) -> u64 {
    v.and_then(Value::as_u64).unwrap_or(0)
}

/// The CSV report of run `id` and its HTML page: as the summary names it, else where runs put them.
fn reports(store: &dyn Store, row: &RunRow) -> (Option<PathBuf>, Option<PathBuf>) {
    let csv = super::report::csv_path(store, row);
    let html = csv.with_extension("html");
    (csv.exists().then_some(csv), html.exists().then_some(html))
}

fn line(store: &dyn Store, row: &RunRow, status: String, counts: BTreeMap<String, i64>) -> RunLine {
    let s = row.summary.as_ref();
    let (report, html) = reports(store, row);
    // An interrupted run's finished_at is when a later run found it dead, not how long it ran.
    let duration_s = row
        .finished_at
        .filter(|_| status != "interrupted")
        .map(|f| (f - row.started_at).num_milliseconds() as f64 / 1000.0);
    RunLine {
        id: row.id,
        kind: row.kind.clone(),
        module: row.module.clone(),
        status,
        stored_status: row.status.clone(),
        dry_run: row.dry_run,
        started_at: row.started_at,
        finished_at: row.finished_at,
        duration_s,
        ops: counts,
        zoho_calls: u(s.and_then(|s| s.get("zoho_calls"))),
        moodle_calls: u(s.and_then(|s| s.get("moodle_calls"))),
        error: row.error.clone(),
        report,
        html,
    }
}

/// The newest `limit` runs, newest first.
pub fn list(store: &dyn Store, limit: i64) -> Result<Vec<RunLine>, StoreError> {
    let rows = store.recent_runs(limit)?;
    lines(store, &rows)
}

/// The lines of `rows` (their shown status, journal counts and reports).
pub fn lines(store: &dyn Store, rows: &[RunRow]) -> Result<Vec<RunLine>, StoreError> {
    let status = shown_status(rows, store)?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut counts: BTreeMap<i64, BTreeMap<String, i64>> = BTreeMap::new();
    for (run, outcome, n) in store.journal_counts(&ids)? {
        counts.entry(run).or_default().insert(outcome, n);
    }
    Ok(rows
        .iter()
        .map(|r| {
            line(store, r, status.get(&r.id).cloned().unwrap_or_default(), counts.remove(&r.id).unwrap_or_default())
        })
        .collect())
}

/// One run, or `None` when the store has no such run.
pub fn show(store: &dyn Store, id: i64) -> Result<Option<RunDetail>, StoreError> {
    let Some(row) = store.run(id)? else { return Ok(None) };
    let line = lines(store, std::slice::from_ref(&row))?.remove(0);
    let journal = store.journal_rows(id)?;
    let failures =
        journal.iter().filter(|r| matches!(r.entry.outcome.as_str(), "rejected" | "failed")).map(Failure::of).collect();
    let stale = journal.iter().filter(|r| r.entry.outcome == "skipped").map(Failure::of).collect();
    let s = row.summary.as_ref();
    let guards = s.and_then(|s| s.get("guards")).and_then(Value::as_array).cloned().unwrap_or_default();
    let issues =
        s.and_then(|s| s.get("issue_summary")).and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
    Ok(Some(RunDetail { line, summary: row.summary.clone(), failures, stale, guards, issues }))
}

/// `runs` as a table.
pub fn table(lines: &[RunLine]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>5}  {:<11} {:<20} {:>9}  {:<11} {:<44} {:>9}",
        "run", "kind", "started (UTC)", "duration", "status", "ops by outcome", "API calls"
    );
    for l in lines {
        let ops = if l.ops.is_empty() {
            "-".to_string()
        } else {
            l.ops.iter().map(|(o, n)| format!("{o} {n}")).collect::<Vec<_>>().join(", ")
        };
        let kind = if l.dry_run { format!("{} (dry)", l.kind) } else { l.kind.clone() };
        let _ = writeln!(
            out,
            "{:>5}  {:<11} {:<20} {:>9}  {:<11} {:<44} {:>9}",
            l.id,
            kind,
            l.started_at.format("%Y-%m-%d %H:%M:%S"),
            l.duration_s.map(|d| format!("{d:.1} s")).unwrap_or_else(|| "-".into()),
            l.status,
            ops,
            l.api_calls()
        );
    }
    if lines.is_empty() {
        out.push_str("no runs yet: `zmsync sync --all` makes the first\n");
    }
    out
}

/// `runs show` as text: at most `max` failures listed (the JSON has all).
pub fn detail_text(d: &RunDetail, max: usize) -> String {
    let l = &d.line;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "run {} ({}{}): {}{}",
        l.id,
        l.kind,
        l.module.as_deref().map(|m| format!(" {m}")).unwrap_or_default(),
        l.status,
        if l.dry_run { " (dry run: nothing was written)" } else { "" }
    );
    let _ = writeln!(
        out,
        "started {}, {}",
        l.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
        match (l.finished_at, l.duration_s) {
            _ if l.status == "interrupted" => format!(
                "never finished: the process was killed or the machine stopped{}; the next run finishes its work \
                 (a rerun duplicates nothing)",
                l.finished_at.map(|f| format!(" (found at {})", f.format("%H:%M:%S"))).unwrap_or_default()
            ),
            (Some(f), Some(d)) => format!("finished {} ({d:.1} s)", f.format("%H:%M:%S")),
            _ => "still running".to_string(),
        }
    );
    if let Some(e) = &l.error {
        let _ = writeln!(out, "error: {e}");
    }
    if let Some(s) = &d.summary {
        if let Some(ents) = s.get("entities").and_then(Value::as_object) {
            let _ = writeln!(
                out,
                "{:<13} {:>8} {:>8} {:>10} {:>10} {:>8} {:>7}",
                "entity", "created", "updated", "suspended", "unchanged", "skipped", "failed"
            );
            for (e, t) in ents {
                let g = |k: &str| u(t.get(k));
                let _ = writeln!(
                    out,
                    "{:<13} {:>8} {:>8} {:>10} {:>10} {:>8} {:>7}",
                    e,
                    g("created"),
                    g("updated"),
                    g("suspended"),
                    g("unchanged"),
                    g("skipped"),
                    g("failed")
                );
            }
        }
        let _ = writeln!(
            out,
            "ops planned {}, applied {}, rejected {}, failed {}; issues {}, conflicts {}",
            u(s.get("planned_ops")),
            u(s.get("applied")),
            u(s.get("rejected")),
            u(s.get("failed")),
            d.issues.count(),
            u(s.get("conflicts"))
        );
    }
    if !l.ops.is_empty() {
        let ops: Vec<String> = l.ops.iter().map(|(o, n)| format!("{o} {n}")).collect();
        let _ = writeln!(out, "journal: {}", ops.join(", "));
    }
    let _ = writeln!(out, "API calls: Zoho {}, Moodle {}", l.zoho_calls, l.moodle_calls);
    for g in &d.guards {
        let _ = writeln!(out, "guard: {}", g.get("message").and_then(Value::as_str).unwrap_or_default());
    }
    let issues = d.issues.text();
    if !issues.is_empty() {
        let _ = writeln!(out, "issues by cause:");
        out.push_str(&issues);
    }
    if !d.failures.is_empty() {
        let _ = writeln!(out, "failures ({}):", d.failures.len());
        for f in d.failures.iter().take(max) {
            let _ = writeln!(
                out,
                "  {:>6} {:<12} {:<10} {:<7} {:<24} {}: {}",
                f.seq, f.entity, f.action, f.target, f.key, f.outcome, f.message
            );
        }
        if d.failures.len() > max {
            let _ = writeln!(out, "  … {} more (--json, or the CSV report)", d.failures.len() - max);
        }
    }
    if !d.stale.is_empty() {
        let _ = writeln!(out, "skipped ({}):", d.stale.len());
        for f in d.stale.iter().take(max) {
            let _ = writeln!(out, "  {:>6} {:<12} {:<10} {:<24} {}", f.seq, f.entity, f.action, f.key, f.message);
        }
    }
    match (&l.report, &l.html) {
        (None, None) => {
            let _ = writeln!(out, "report: none written (`zmsync report {}` writes it from the journal)", l.id);
        }
        (csv, html) => {
            if let Some(p) = csv {
                let _ = writeln!(out, "report: {}", p.display());
            }
            if let Some(p) = html {
                let _ = writeln!(out, "html: {}", p.display());
            }
        }
    }
    out
}
