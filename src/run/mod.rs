//! One run end to end, as named steps: lock and `runs` row, then snapshot ([`read`]), plan ([`plan`]), journal
//! and apply ([`execute`]), write-back, re-read and base ([`agree`]), dirty marks settled ([`settle`]); the
//! report and the files it writes are in [`report`].
//!
//! Threads: the store is synchronous and is used from this thread only; the network phases (snapshot, apply)
//! run on tokio behind a [`crate::bridge`].

mod agree;
mod execute;
mod lock;
mod plan;
mod read;
mod report;
mod settle;

use std::path::PathBuf;
use std::time::Instant;

use serde_json::json;

use crate::apply::{self, Outcome};
use crate::config::Config;
use crate::process::release_freed;
use crate::progress::Bars;
use crate::reconcile;
use crate::settings::Settings;
use crate::snapshot;
use crate::store::events::DirtyMark;
use crate::store::{NewRun, Store, StoreError};

pub use report::{check_report_dir, Calls, PhaseCalls, RunReport};

/// What a run covers.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Every enabled module.
    All,
    /// One module (an entity or Zoho module name).
    Module(String),
    /// Only the dirty keys (and Zoho changes since the last run's cursor).
    Incremental,
    /// A saved plan; its stale ops are skipped and listed.
    Plan(PathBuf),
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub scope: Scope,
    pub dry_run: bool,
    pub plan_out: Option<PathBuf>,
    pub allow_mass_change: bool,
    /// Where the CSV report goes (default: `reports/` beside the store).
    pub report_dir: Option<PathBuf>,
    /// Progress bars (a terminal only).
    pub progress: bool,
    pub apply: apply::Options,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Another run holds the lock (exit 5).
    #[error("{0}")]
    Locked(String),
    /// A guard refused the plan: nothing was written (exit 4).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Snapshot(#[from] snapshot::SnapshotError),
    #[error(transparent)]
    Reconcile(#[from] reconcile::ReconcileError),
    #[error(transparent)]
    Apply(#[from] apply::ApplyError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A file or directory the run needs cannot be written: the message names it and the fix.
    #[error("{0}")]
    File(String),
}

impl RunError {
    /// A guard refused the plan or the snapshot: nothing was written (recorded as `refused`, not `failed`).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            RunError::Refused(_)
                | RunError::Reconcile(reconcile::ReconcileError::Refused(_))
                | RunError::Snapshot(snapshot::SnapshotError::Refused(_))
        )
    }
}

/// Runs one sync. Blocks. Returns the report (exit 0, or 3 when [`RunReport::is_partial`]) or an error (a held lock is
/// exit 5, a guard's refusal exit 4).
pub fn run(store: &dyn Store, settings: &Settings, config: &Config, opts: &RunOptions) -> Result<RunReport, RunError> {
    let _lock = lock::take(store)?;
    let (kind, module) = match &opts.scope {
        Scope::All => ("full", None),
        Scope::Module(m) => ("module", Some(m.as_str())),
        Scope::Incremental => ("incremental", None),
        Scope::Plan(_) => ("apply", None),
    };
    let run_id =
        store.create_run(&NewRun { kind, module, dry_run: opts.dry_run, allow_mass_change: opts.allow_mass_change })?;
    tracing::info!(run_id, kind, "run started");
    // A run still marked running cannot be alive now that this one holds the lock: it was killed. Say so, and
    // that this run finishes its work (the journal and the store's state make that safe).
    let resumes: Vec<i64> = store.interrupt_runs(run_id)?.iter().map(|r| r.id).collect();
    for id in &resumes {
        tracing::warn!("run {run_id} ({kind}): finishing the work of run {id}, which was interrupted (marked so now)");
    }
    let mut claimed = Vec::new();
    let result = body(store, settings, config, opts, run_id, kind, &mut claimed).map(|mut r| {
        r.resumes = resumes;
        r
    });
    match &result {
        Ok(r) => {
            store.finish_run(run_id, &r.status, &serde_json::to_value(r).unwrap_or_default(), None)?;
            crate::operator::html::write_beside(store, r.run_id, r.report.as_deref());
        }
        Err(e) => {
            let status = if e.is_refusal() { "refused" } else { "failed" };
            store.finish_run(run_id, status, &json!({}), Some(&e.to_string()))?;
            // The marks taken stay dirty, with the error, for a later run once due.
            for m in &claimed {
                settle::fail_mark(store, settings, m, &e.to_string())?;
            }
        }
    }
    result
}

/// The steps of a run that holds the lock and has its `runs` row. `claimed`: the dirty marks taken, for
/// [`run`] to fail if a step fails.
fn body(
    store: &dyn Store,
    settings: &Settings,
    config: &Config,
    opts: &RunOptions,
    run_id: i64,
    kind: &str,
    claimed: &mut Vec<DirtyMark>,
) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let lap =
        |what: &str| tracing::info!(step = what, elapsed_ms = started.elapsed().as_millis() as u64, "run step done");
    let mut calls = report::ApiCalls::default();
    let target = plan::target(settings, opts)?;
    // Before anything is read or written: the report must be writable, or the run would apply everything and
    // then fail to say what it did.
    let dir = report::report_dir(store, opts)?;

    // 1. Snapshot (incremental: the dirty keys only, plus Zoho changes since the cursor).
    let read = read::snapshot(store, settings, config, opts, target.entities, target.only, claimed, &mut calls)?;
    lap("snapshot");

    // 2. Plan (or the saved one, with its stale ops), refused whole by a safety guard.
    let bars = Bars::new(opts.progress);
    let planned = plan::plan(store, settings, opts, run_id, target.saved, &read.entities, &bars)?;
    let plan::Planned { plan, ops, stale, based } = planned;
    release_freed();
    plan::guard(&plan)?;
    lap("plan");
    if let Some(out) = &opts.plan_out {
        report::write_plan(out, &plan, &ops)?;
    }

    let path = dir.join(format!("run-{run_id}.csv"));
    let scoped = read.scoped.then_some(&read.entities);
    let (done, summary, report_error) = if !opts.dry_run && !ops.is_empty() {
        // 3. Journal every planned op before anything is sent; then 4. apply.
        execute::journal(store, &ops, run_id)?;
        lap("journal");
        let apply_opts = apply::Options { progress: opts.progress, ..opts.apply.clone() };
        let (done, z, m, written_back) = execute::execute(store, settings, config, &ops, &stale, run_id, &apply_opts)?;
        calls.apply(&z, &m);
        lap("apply");
        // The CSV and the summary's counts now, so the ops are not kept while the base is recorded.
        let report_error = report::write_csv_applied(&path, run_id, &ops, &done);
        let summary = report::Summary::of(store, run_id, &plan, &ops, &done)?;
        let reread = agree::refresh(&read.mode, &done, &ops)?;
        drop(ops);
        release_freed();
        // 5. Record what both sides now agree on. Moodle ids written back into Zoho are set on the stored Zoho
        //    records; every other kind written to is read back (a full run reads those kinds whole, an
        //    incremental one the keys it wrote), then 6. the base.
        agree::patch_moodle_ids(store, run_id, &written_back)?;
        agree::reread(store, settings, config, opts, target.only, reread, &mut calls);
        lap("refresh");
        release_freed();
        agree::base(store, settings, opts, scoped, &based, run_id, &bars)?;
        lap("baseline");
        (done, summary, report_error)
    } else {
        // Nothing to send (or a dry run): 6. the base, and the CSV of what would be done.
        if !opts.dry_run {
            agree::record_base(store, settings, scoped, &based, run_id)?;
        }
        report::write_csv(&path, run_id, &ops, &[], opts.dry_run)?;
        (Vec::new(), report::Summary::of(store, run_id, &plan, &ops, &[])?, None)
    };

    // 7. Dirty marks: settled per key.
    let dirty_taken = claimed.len();
    let dirty_failed = settle::settle(store, settings, claimed, &done, &read.refused)?;

    // 8. The report (its CSV, of what was applied or, in a dry run, would be, was written above).
    let rejected = done.iter().filter(|d| matches!(d.outcome, Outcome::Rejected { .. })).count() as u64;
    let failed = done.iter().filter(|d| matches!(d.outcome, Outcome::Failed { .. })).count() as u64;
    let applied = done.iter().filter(|d| matches!(d.outcome, Outcome::Applied { .. })).count() as u64;
    let status = if rejected + failed > 0 || dirty_failed > 0 { "partial" } else { "completed" };
    Ok(RunReport {
        run_id,
        kind: kind.to_string(),
        status: status.into(),
        dry_run: opts.dry_run,
        allow_mass_change: opts.allow_mass_change,
        entities: summary.entities,
        planned_ops: summary.planned_ops,
        applied,
        rejected,
        failed,
        stale,
        issues: summary.issues.count() as usize,
        issue_summary: summary.issues,
        guards: summary.guards,
        conflicts: summary.conflicts,
        zoho_calls: calls.zoho_calls,
        zoho_credits: calls.zoho_credits,
        moodle_calls: calls.moodle_calls,
        phase_calls: calls.phase_calls,
        elapsed_ms: started.elapsed().as_millis() as u64,
        report: report_error.is_none().then_some(path),
        report_error,
        plan_out: opts.plan_out.clone(),
        dirty_taken,
        dirty_failed,
        resumes: Vec::new(),
    })
}
