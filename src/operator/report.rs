//! `zmsync report [RUN]`: a run's CSV report re-written from the journal (the run's own CSV could not be
//! written, or was lost), with the same columns and rows as the one the run writes; `--html FILE` draws the
//! run as one page ([`super::html`]).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::store::{JournalRow, RunRow, Store, StoreError};

/// The CSV report's columns, in order (the run's own report and this one).
pub const CSV_COLUMNS: [&str; 12] = [
    "run_id",
    "seq",
    "entity",
    "action",
    "target",
    "key",
    "zoho_id",
    "moodle_id",
    "fields",
    "outcome",
    "target_id",
    "message",
];

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the store has no run {0}\n  hint: `zmsync runs` lists the runs")]
    NoRun(i64),
    #[error("the store has no runs yet\n  hint: `zmsync sync --all` makes the first")]
    NoRuns,
    #[error("cannot write {path}: {message}\n  hint: check that the directory exists, is writable and has room, or pass another path")]
    Write { path: PathBuf, message: String },
}

/// Run `id`, or the newest run.
pub fn run_row(store: &dyn Store, id: Option<i64>) -> Result<RunRow, ReportError> {
    match id {
        Some(id) => store.run(id)?.ok_or(ReportError::NoRun(id)),
        None => store.recent_runs(1)?.into_iter().next().ok_or(ReportError::NoRuns),
    }
}

/// Where a run's CSV report goes: as its summary names it, else `run-<id>.csv` in the default report directory.
pub fn csv_path(store: &dyn Store, row: &RunRow) -> PathBuf {
    row.summary
        .as_ref()
        .and_then(|s| s.get("report"))
        .and_then(Value::as_str)
        .map(PathBuf::from)
        .unwrap_or_else(|| default_report_dir(store).join(format!("run-{}.csv", row.id)))
}

/// The default report directory: `reports/` beside an SQLite store, else in the working directory.
pub fn default_report_dir(store: &dyn Store) -> PathBuf {
    let loc = store.location();
    match store.dialect() {
        crate::store::Dialect::Sqlite => {
            Path::new(&loc).parent().map(|p| p.join("reports")).unwrap_or_else(|| PathBuf::from("reports"))
        }
        // Absolute, so the path printed in the summary works from anywhere.
        crate::store::Dialect::Postgres => {
            std::env::current_dir().map(|d| d.join("reports")).unwrap_or_else(|_| PathBuf::from("reports"))
        }
    }
}

/// The cells of one journal row, as the run's report writes them.
pub fn csv_cells(r: &JournalRow) -> [String; 12] {
    let e = &r.entry;
    let planned_op = e.changes.is_some();
    let outcome = match e.outcome.as_str() {
        "planned" | "sent" => "not_run",
        o => o,
    };
    [
        e.run_id.to_string(),
        e.seq.to_string(),
        e.entity.clone(),
        e.op.clone(),
        e.target.clone(),
        e.key.clone(),
        // An outcome no planned op carries (a write-back of what the run created) is about the Zoho record.
        r.detail.zoho_id.clone().unwrap_or_else(|| if planned_op { String::new() } else { e.key.clone() }),
        r.detail.moodle_id.clone().unwrap_or_default(),
        e.changes.as_ref().map(Value::to_string).unwrap_or_default(),
        outcome.to_string(),
        e.target_id.clone().unwrap_or_default(),
        e.message.clone().or_else(|| r.detail.reason.clone()).unwrap_or_default(),
    ]
}

/// Writes run `row`'s CSV from the journal to `out`; returns the rows written.
pub fn write_csv(store: &dyn Store, row: &RunRow, out: &Path) -> Result<usize, ReportError> {
    let fail = |e: &dyn std::fmt::Display| ReportError::Write { path: out.to_path_buf(), message: e.to_string() };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
    }
    let mut w = csv::Writer::from_path(out).map_err(|e| fail(&e))?;
    w.write_record(CSV_COLUMNS).map_err(|e| fail(&e))?;
    // A row at a time, as the journal is read: a large run's ops are never all held.
    let (mut n, mut written) = (0, Ok(()));
    store.journal_each(row.id, &mut |r| {
        if written.is_ok() {
            written = w.write_record(csv_cells(&r));
            n += 1;
        }
        Ok(())
    })?;
    written.map_err(|e| fail(&e))?;
    w.flush().map_err(|e| fail(&e))?;
    Ok(n)
}
