//! One run end to end: lock, `runs` row, snapshot, reconcile, guards, journal, apply, agreement recorded,
//! CSV report, summary.
//!
//! Threads: the store is synchronous and is used from this thread only; the network phases (snapshot, apply)
//! run on tokio behind a [`crate::bridge`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde_json::json;

use crate::apply::{self, Done, Outcome, Spill, SpillWriter, Tally};
use crate::bridge;
use crate::config::Config;
use crate::exit::{Exit, ExitKind};
use crate::model::{Entity, Kind, Record, Side};
use crate::progress::Bars;
use crate::reconcile::{self, Plan};
use crate::settings::Settings;
use crate::snapshot::{self, Incremental, Mode};
use crate::store::events::{retry_delay, DirtyMark};
use crate::store::{JournalEntry, NewRun, Store, StoreError};
use crate::{moodle, zoho};

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
    #[error("{0}")]
    Apply(#[from] apply::ApplyError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A file or directory the run needs cannot be written: the message names it and the fix.
    #[error("{0}")]
    File(String),
}

impl ExitKind for RunError {
    fn exit(&self) -> Exit {
        match self {
            RunError::Locked(_) => Exit::Busy,
            RunError::Refused(_) => Exit::Refused,
            RunError::Usage(_) => Exit::Usage,
            RunError::Store(e) => e.exit(),
            RunError::Snapshot(e) => e.exit(),
            RunError::Reconcile(e) => e.exit(),
            _ => Exit::Failed,
        }
    }
}

/// What a run did: the summary screen, `--json`, and `runs.summary`.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: i64,
    pub kind: String,
    pub status: String,
    pub dry_run: bool,
    pub allow_mass_change: bool,
    pub entities: BTreeMap<Entity, Tally>,
    pub planned_ops: usize,
    pub applied: u64,
    pub rejected: u64,
    pub failed: u64,
    /// Seqs of a saved plan's ops skipped as stale.
    pub stale: Vec<u64>,
    /// Issues proper: what a policy leaves out on purpose is in `issue_summary.skipped_by_policy`.
    pub issues: usize,
    /// The issues by cause, each with its command, and what was skipped by policy.
    pub issue_summary: crate::operator::issues::IssueSummary,
    /// The safety guards' verdicts (over a limit and let through by --allow-mass-change).
    pub guards: Vec<reconcile::GuardVerdict>,
    pub conflicts: usize,
    pub zoho_calls: u64,
    pub zoho_credits: u64,
    pub moodle_calls: u64,
    /// The same calls by phase.
    pub phase_calls: PhaseCalls,
    pub elapsed_ms: u64,
    pub report: Option<PathBuf>,
    /// Why the CSV report could not be written after the ops were applied (the run exits 3; `zmsync report
    /// RUN` writes it from the journal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report_error: Option<String>,
    pub plan_out: Option<PathBuf>,
    /// Dirty keys taken (incremental) and how many stayed dirty with an error.
    pub dirty_taken: usize,
    pub dirty_failed: usize,
    /// Runs this one found killed (still `running` when it took the lock, now `interrupted`): it finishes
    /// their work. Newest first.
    pub resumes: Vec<i64>,
}

/// API calls per side in one phase of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Calls {
    pub zoho: u64,
    pub moodle: u64,
}

/// API calls by phase: the snapshot, apply (writes and identity checks), the re-read of what was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PhaseCalls {
    pub snapshot: Calls,
    pub apply: Calls,
    pub refresh: Calls,
}

impl RunReport {
    pub fn exit(&self) -> Exit {
        if self.rejected + self.failed > 0 || self.dirty_failed > 0 || self.report_error.is_some() {
            Exit::Partial
        } else {
            Exit::Done
        }
    }

    /// One screen for a person.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let what = if self.dry_run { " (dry run: nothing was written)" } else { "" };
        let resumes = match self.resumes.as_slice() {
            [] => String::new(),
            [one] => format!("; finishing the work of run {one} (interrupted)"),
            many => format!(
                "; finishing the work of runs {} (interrupted)",
                many.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
            ),
        };
        let _ = writeln!(out, "run {} ({}): {}{what}{resumes}", self.run_id, self.kind, self.status);
        let _ = writeln!(
            out,
            "{:<13} {:>8} {:>8} {:>10} {:>10} {:>8} {:>7}",
            "entity", "created", "updated", "suspended", "unchanged", "skipped", "failed"
        );
        for (e, t) in &self.entities {
            let _ = writeln!(
                out,
                "{:<13} {:>8} {:>8} {:>10} {:>10} {:>8} {:>7}",
                e.name(),
                t.created,
                t.updated,
                t.suspended,
                t.unchanged,
                t.skipped,
                t.failed
            );
        }
        let _ = writeln!(
            out,
            "ops planned {}, applied {}, rejected {}, failed {}; issues {}, conflicts {}",
            self.planned_ops, self.applied, self.rejected, self.failed, self.issues, self.conflicts
        );
        out.push_str(&self.issue_summary.text());
        if !self.stale.is_empty() {
            let _ = writeln!(out, "stale ops skipped: {}", join(&self.stale));
        }
        let _ = writeln!(
            out,
            "API calls: Zoho {} ({} credits), Moodle {}; time {:.1} s",
            self.zoho_calls,
            self.zoho_credits,
            self.moodle_calls,
            self.elapsed_ms as f64 / 1000.0
        );
        if let Some(p) = &self.report {
            let _ = writeln!(out, "report: {}", p.display());
        }
        if let Some(e) = &self.report_error {
            let _ = writeln!(out, "report: NOT WRITTEN: {e}");
        }
        if let Some(p) = &self.plan_out {
            let _ = writeln!(out, "plan: {}", p.display());
        }
        out
    }
}

fn join(seqs: &[u64]) -> String {
    seqs.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
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

/// Runs one sync. Blocks. Returns the report (exit 0 or 3 by [`RunReport::exit`]) or an error (a held lock is
/// exit 5, a guard's refusal exit 4).
pub fn run(store: &dyn Store, settings: &Settings, config: &Config, opts: &RunOptions) -> Result<RunReport, RunError> {
    one_heap_arena();
    let Some(_lock) = store.try_lock_runs()? else {
        let holders = store.running_runs()?;
        let who = holders
            .first()
            .map(|r| {
                format!(
                    "run {} ({}, pid {}, host {}, started {})",
                    r.id,
                    r.kind,
                    r.pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
                    r.host.as_deref().unwrap_or("?"),
                    r.started_at.format("%Y-%m-%d %H:%M:%S UTC")
                )
            })
            .unwrap_or_else(|| "another process".into());
        return Err(RunError::Locked(format!(
            "another sync is running: {who} holds the run lock of this store; wait for it to finish (only one run \
             at a time per store)"
        )));
    };
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
            crate::operator::html::write_beside(store, r);
        }
        Err(e) => {
            let status = if e.exit() == Exit::Refused { "refused" } else { "failed" };
            store.finish_run(run_id, status, &json!({}), Some(&e.to_string()))?;
            // The marks taken stay dirty, with the error, for a later run once due.
            for m in &claimed {
                fail_mark(store, settings, m, &e.to_string())?;
            }
        }
    }
    result
}

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
    let saved: Option<Plan> = match &opts.scope {
        Scope::Plan(file) => {
            let text = std::fs::read_to_string(file)
                .map_err(|e| RunError::Usage(format!("cannot read the plan {}: {e}", file.display())))?;
            Some(
                Plan::from_json(&text)
                    .map_err(|e| RunError::Usage(format!("{} is not a zmsync plan: {e}", file.display())))?,
            )
        }
        _ => None,
    };
    let entities = match (&opts.scope, &saved) {
        (Scope::Module(m), _) => reconcile::select(Some(m), settings).map_err(|e| RunError::Usage(e.0))?,
        (_, Some(p)) => p.entities.clone(),
        _ => reconcile::select(None, settings).map_err(|e| RunError::Usage(e.0))?,
    };
    let only = match &opts.scope {
        Scope::Module(m) => snapshot::parse_module(m, settings),
        _ => None,
    };
    // Before anything is read or written: the report must be writable, or the run would apply everything and
    // then fail to say what it did.
    let dir = opts.report_dir.clone().unwrap_or_else(|| default_report_dir(store));
    check_report_dir(&dir)?;

    // 1. Snapshot (incremental: the dirty keys only, plus Zoho changes since the cursor).
    let mode = if let Scope::Incremental = opts.scope {
        *claimed = store.claim_dirty(100_000)?;
        Mode::Incremental(incremental_keys(claimed))
    } else {
        Mode::Full
    };
    let snap_opts = snapshot::Options { only, mode: mode.clone(), progress: opts.progress, ..Default::default() };
    let snap = snapshot::run(store, settings, config, &snap_opts)?;
    let (mut zoho_calls, mut zoho_credits, mut moodle_calls) = calls(&snap);
    // Keys an API refused alone in the snapshot (the rest of their read was kept): they fail, the rest syncs.
    let refused: HashMap<String, String> =
        snap.kinds.iter().flat_map(|k| k.rejected.iter().map(|r| (r.key.clone(), r.reason.clone()))).collect();
    let mut phase_calls =
        PhaseCalls { snapshot: Calls { zoho: zoho_calls, moodle: moodle_calls }, ..PhaseCalls::default() };
    // An incremental run reconciles (and records the base of) only the entities it read records of or was
    // told about; the rest did not change since the last run.
    let scoped = matches!(mode, Mode::Incremental(_));
    let entities = if scoped { touched(&entities, &snap, claimed) } else { entities };
    let lap =
        |what: &str| tracing::info!(step = what, elapsed_ms = started.elapsed().as_millis() as u64, "run step done");
    lap("snapshot");

    let bars = Bars::new(opts.progress);
    // 2. Plan (or the saved one, with its stale ops), one entity group at a time: each group's ops go to the
    //    spill as they are planned (apply reads them back a phase at a time), the rest — counts, issues,
    //    conflicts, guard verdicts — to `plan`, whose `ops` stay empty. A plan with no ops records the base
    //    from the same pass.
    let mut plan = Plan::empty(Some(run_id), entities.clone());
    let mut spill = SpillWriter::new()?;
    let (stale, based) = match saved {
        Some(p) => {
            let stale = p.stale_ops(store)?;
            for op in &p.ops {
                spill.push(op)?;
            }
            plan = Plan { ops: Vec::new(), ..p };
            (stale, Vec::new())
        }
        None if entities.is_empty() => (Vec::new(), Vec::new()),
        None => {
            let ro = reconcile::Options {
                entities: entities.clone(),
                run_id: Some(run_id),
                allow_mass_change: opts.allow_mass_change,
                collect_agreed: false,
            };
            let bar = bars.step("reconcile");
            let based = reconcile::reconcile_each(store, settings, &ro, !opts.dry_run, |mut group: Plan| {
                for op in &group.ops {
                    spill.push(op)?;
                }
                plan.counts.append(&mut group.counts);
                plan.issues.append(&mut group.issues);
                plan.conflicts.append(&mut group.conflicts);
                plan.guards.append(&mut group.guards);
                Ok::<_, RunError>(())
            })?;
            bar.finish_with_message(format!("{} ops planned", spill.len()));
            (Vec::new(), based)
        }
    };
    let ops = spill.finish()?;
    release_freed();
    if plan.refused() {
        let msgs: Vec<String> = plan.guards.iter().map(|g| format!("  - {}", g.message)).collect();
        return Err(RunError::Refused(format!(
            "the plan was refused by a safety guard; nothing was written:\n{}\n  hint: review it with `zmsync plan`, \
             then rerun with --allow-mass-change if it is intended",
            msgs.join("\n")
        )));
    }
    lap("plan");
    if let Some(out) = &opts.plan_out {
        write_plan(out, &plan, &ops)?;
    }

    // 3. Journal every planned op before anything is sent; then apply.
    let mut done: Vec<Done> = Vec::new();
    let path = dir.join(format!("run-{run_id}.csv"));
    let mut report_error = None;
    let summary;
    if !opts.dry_run && !ops.is_empty() {
        for chunk in ops.entries().chunks(JOURNAL_CHUNK) {
            let chunk = ops.read(chunk)?;
            store.journal_planned_with(&planned(&chunk, run_id), &crate::operator::journal::details(store, &chunk)?)?;
        }
        lap("journal");
        let apply_opts = apply::Options { progress: opts.progress, ..opts.apply.clone() };
        let (d, z, m, written_back) = execute(store, settings, config, &ops, &stale, run_id, &apply_opts)?;
        done = d;
        zoho_calls += z.calls;
        zoho_credits += z.credits;
        moodle_calls += m.calls;
        phase_calls.apply = Calls { zoho: z.calls, moodle: m.calls };
        lap("apply");
        // The CSV and the summary's counts now, so the ops are not kept while the base is recorded. The ops
        // were applied: a CSV that cannot be written does not fail the run (the journal has every op and
        // outcome); the run goes on and exits 3, saying how to write it later.
        if let Err(e) = write_csv(&path, run_id, &ops, &done, opts.dry_run) {
            let _ = std::fs::remove_file(&path);
            let message = format!(
                "{e}\n  the ops were applied and are all in the journal; once there is room, write the report with: \
                 zmsync report {run_id}"
            );
            report_error = Some(message);
        }
        summary = Summary::of(store, run_id, &plan, &ops, &done)?;
        let reread = refresh(&mode, &done, &ops)?;
        drop(ops);
        release_freed();
        // 4. Record what both sides now agree on. Moodle ids written back into Zoho are set on the stored Zoho
        //    records; every other kind written to is read back (a full run reads those kinds whole, an
        //    incremental one the keys it wrote), then the base.
        patch_moodle_ids(store, run_id, &written_back)?;
        if let Some((kinds, mode)) = reread {
            let refresh = snapshot::Options {
                only,
                kinds: Some(kinds),
                mode,
                progress: opts.progress,
                site_checked: true,
                ..Default::default()
            };
            match snapshot::run(store, settings, config, &refresh) {
                Ok(s) => {
                    let (z, c, m) = calls(&s);
                    zoho_calls += z;
                    zoho_credits += c;
                    moodle_calls += m;
                    phase_calls.refresh = Calls { zoho: z, moodle: m };
                }
                Err(e) => tracing::warn!("could not re-read what was written ({e}); the next run reads it"),
            }
        }
        lap("refresh");
        release_freed();
        let bar = bars.step("baseline");
        record_base(store, settings, scoped.then_some(&entities), &based, run_id)?;
        if matches!(opts.scope, Scope::Plan(_)) {
            crate::operator::revert::restore_bases(store, run_id)?;
        }
        bar.finish_with_message("recorded");
        lap("baseline");
    } else {
        if !opts.dry_run {
            record_base(store, settings, scoped.then_some(&entities), &based, run_id)?;
        }
        write_csv(&path, run_id, &ops, &done, opts.dry_run)?;
        summary = Summary::of(store, run_id, &plan, &ops, &done)?;
    }

    // 5. Dirty marks: settled per key.
    let mut dirty_failed = 0;
    let dirty_taken = claimed.len();
    if !claimed.is_empty() {
        let failed_keys: HashSet<&str> =
            done.iter().filter(|d| d.outcome.is_failure()).flat_map(|d| d.key.split('|')).collect();
        let (bad, good): (Vec<DirtyMark>, Vec<DirtyMark>) = std::mem::take(claimed)
            .into_iter()
            .partition(|m| failed_keys.contains(m.key.key.as_str()) || refused.contains_key(m.key.key.as_str()));
        store.complete_dirty(&good)?;
        for m in &bad {
            let msg = refused
                .get(m.key.key.as_str())
                .cloned()
                .or_else(|| {
                    done.iter()
                        .find(|d| d.outcome.is_failure() && d.key.split('|').any(|k| k == m.key.key))
                        .and_then(|d| d.outcome.message())
                })
                .unwrap_or_else(|| "sync failed".into());
            fail_mark(store, settings, m, &msg)?;
        }
        dirty_failed = bad.len();
    }

    // 6. The CSV of what was applied (or, in a dry run, what would be) was written above.
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
        zoho_calls,
        zoho_credits,
        moodle_calls,
        phase_calls,
        elapsed_ms: started.elapsed().as_millis() as u64,
        report: report_error.is_none().then_some(path),
        report_error,
        plan_out: opts.plan_out.clone(),
        dirty_taken,
        dirty_failed,
        resumes: Vec::new(),
    })
}

/// How long a parked dirty key waits: in effect, until a new event for its record arrives (that makes it due
/// at once) or someone runs `zmsync events retry`.
const PARKED: std::time::Duration = std::time::Duration::from_secs(366 * 86_400);

/// Settles a dirty mark whose sync failed: retried once due (`retry.policy` back-off), or, once it has used
/// `retry.policy.max_retries` attempts, parked with its error so it is no longer retried run after run; `zmsync
/// events status` lists it either way.
fn fail_mark(store: &dyn Store, settings: &Settings, m: &DirtyMark, error: &str) -> Result<(), StoreError> {
    let attempts = m.attempts + 1;
    let max = settings.retry.max_retries as i32;
    if attempts >= max.max(1) {
        let msg = format!(
            "parked after {attempts} failed attempts (retry.policy.max_retries = {max}): {error}; a new event for \
             the record, or `zmsync events retry`, tries it again"
        );
        store.fail_dirty(m, &msg, PARKED)
    } else {
        store.fail_dirty(m, error, retry_delay(&settings.retry, attempts))
    }
}

/// Keeps the threads a run starts (planning's rayon pool, the fetch runtime) on the one heap arena: with one
/// arena per thread each kept its own freed pages and fragments, and the 5,000-student first sync peaked at
/// 187 MB resident for a 96 MB heap (137 MB with one arena). Set before those threads first allocate.
fn one_heap_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes no pointer; M_ARENA_MAX only bounds the arenas glibc creates from now on.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Hands the heap's free pages back to the system between the steps of a run. glibc keeps what a step freed
/// (records, a group's ops), much of it in the arenas of the threads that planned or fetched, so each step's
/// peak would otherwise sit on top of the leftovers of the one before in the process's resident memory.
fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer and only returns free memory to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Planned ops journalled per transaction: the rows of one chunk are built at once, not the whole plan's.
const JOURNAL_CHUNK: usize = 2_000;

/// What the report keeps of the plan once it is dropped.
struct Summary {
    entities: BTreeMap<Entity, Tally>,
    planned_ops: usize,
    issues: crate::operator::issues::IssueSummary,
    guards: Vec<reconcile::GuardVerdict>,
    conflicts: usize,
}

impl Summary {
    /// `plan`'s counts, issues (by cause) and conflicts; its ops are in `ops`.
    fn of(store: &dyn Store, run_id: i64, plan: &Plan, ops: &Spill, done: &[Done]) -> Result<Summary, StoreError> {
        Ok(Summary {
            entities: apply::tally(plan, done),
            planned_ops: ops.len(),
            issues: crate::operator::issues::summarise(store, Some(run_id), &plan.issues)?,
            guards: plan.guards.clone(),
            conflicts: plan.conflicts.len(),
        })
    }
}

/// The agreed base: of every entity, or (incremental) of the entities reconciled; `based` already has it (the
/// plan's own pass recorded it).
fn record_base(
    store: &dyn Store,
    settings: &Settings,
    only: Option<&Vec<Entity>>,
    based: &[Entity],
    run_id: i64,
) -> Result<(), RunError> {
    let all = match only {
        None => reconcile::select(None, settings).unwrap_or_default(),
        Some(e) => e.clone(),
    };
    let rest: Vec<Entity> = all.into_iter().filter(|e| !based.contains(e)).collect();
    if !rest.is_empty() {
        reconcile::baseline_each(store, settings, &rest, Some(run_id))?;
    }
    Ok(())
}

/// The entities an incremental snapshot read records of, or that a dirty mark names.
fn touched(entities: &[Entity], snap: &snapshot::SnapshotSummary, marks: &[DirtyMark]) -> Vec<Entity> {
    let kinds: HashSet<Kind> =
        snap.kinds.iter().filter(|k| k.records > 0 || !k.removed.is_empty()).map(|k| k.kind).collect();
    let marked: HashSet<Entity> = marks.iter().filter_map(|m| mark_entity(&m.key.entity)).collect();
    entities
        .iter()
        .copied()
        .filter(|e| {
            let (z, m) = e.kinds();
            kinds.contains(&z) || kinds.contains(&m) || marked.contains(e)
        })
        .collect()
}

/// The entity a dirty mark's entity name stands for (the receiver also uses Moodle's words).
fn mark_entity(name: &str) -> Option<Entity> {
    Entity::from_name(name).or(match name {
        "enrolment" => Some(Entity::Enrollment),
        "user" => Some(Entity::Student),
        "course" => Some(Entity::Class),
        _ => None,
    })
}

fn calls(s: &snapshot::SnapshotSummary) -> (u64, u64, u64) {
    let z = s.zoho.as_ref();
    (
        z.map(|z| z.api_calls).unwrap_or(0),
        z.map(|z| z.credits).unwrap_or(0),
        s.moodle.as_ref().map(|m| m.api_calls).unwrap_or(0),
    )
}

/// Dirty marks as the keys an incremental snapshot fetches.
fn incremental_keys(marks: &[DirtyMark]) -> Incremental {
    let mut inc = Incremental::default();
    for m in marks {
        let k = &m.key;
        let Some(e) = mark_entity(&k.entity) else { continue };
        let (zk, mk) = e.kinds();
        if k.source == "moodle" {
            inc.moodle_keys.entry(mk).or_default().push(k.key.clone());
            // An enrolment or grade event names its user: read the user too, so a user deleted in Moodle
            // (which unenrols it everywhere: these events) is seen gone by this run, not only the next full one.
            if let (Kind::MoodleEnrolment | Kind::MoodleGrade, Some((_, user))) = (mk, k.key.split_once(':')) {
                inc.moodle_keys.entry(Kind::MoodleUser).or_default().push(user.to_string());
            }
        } else {
            inc.zoho_ids.entry(zk).or_default().push(k.key.clone());
        }
    }
    inc
}

/// What to re-read after apply: the kinds an applied op wrote to (Moodle ids written back excepted: see
/// [`patch_moodle_ids`]) — whole in a full run, the keys written in an incremental one. `None`: nothing.
fn refresh(mode: &Mode, done: &[Done], ops: &Spill) -> std::io::Result<Option<(BTreeSet<Kind>, Mode)>> {
    let wrote: HashMap<u64, &Done> = done
        .iter()
        .filter(|d| matches!(d.outcome, Outcome::Applied { .. }) && apply::sends(d.action))
        .filter(|d| d.action != reconcile::Action::WriteBack)
        .map(|d| (d.seq, d))
        .collect();
    let mut kinds = BTreeSet::new();
    let mut inc = Incremental::default();
    ops.for_each(|op| {
        let Some(d) = wrote.get(&op.seq) else { return Ok(()) };
        let (zk, mk) = op.kinds();
        let target = d.outcome.target_id().map(str::to_string);
        match op.target {
            Side::Moodle => {
                kinds.insert(mk);
                if let Some(k) = target.or_else(|| op.moodle_id.clone()) {
                    // Moodle drops the course grade with the enrolment: re-read it too, or the store keeps it.
                    if op.action == reconcile::Action::Unenrol {
                        kinds.insert(Kind::MoodleGrade);
                        inc.moodle_keys.entry(Kind::MoodleGrade).or_default().push(k.clone());
                    }
                    inc.moodle_keys.entry(mk).or_default().push(k);
                }
            }
            Side::Zoho => {
                kinds.insert(zk);
                // A grade created in Zoho got its dashboard row in the same run (apply::moodle_side::
                // rows_of_new_grades), keyed by the new Zoho id: re-read that row too, or the store lacks it.
                if op.entity == Entity::Grade && op.action == reconcile::Action::Create {
                    if let Some(id) = &target {
                        kinds.insert(Kind::DashboardGrade);
                        inc.moodle_keys.entry(Kind::DashboardGrade).or_default().push(id.clone());
                    }
                }
                if let Some(id) = target.or_else(|| op.zoho_id.clone()) {
                    inc.zoho_ids.entry(zk).or_default().push(id);
                }
            }
        }
        Ok(())
    })?;
    if kinds.is_empty() {
        return Ok(None);
    }
    Ok(match mode {
        Mode::Full => Some((kinds, Mode::Full)),
        Mode::Incremental(_) => Some((kinds, Mode::Incremental(inc))),
    })
}

/// Sets the Moodle ids Zoho accepted on the stored Zoho records (`refs.moodle_id`, not a compared field), as
/// the next snapshot would read them, without reading every written-back record again.
fn patch_moodle_ids(store: &dyn Store, run_id: i64, written: &[(Entity, String, String)]) -> Result<(), StoreError> {
    let mut by_kind: BTreeMap<Kind, HashMap<&str, &str>> = BTreeMap::new();
    for (entity, zoho_id, moodle_id) in written {
        by_kind.entry(entity.kinds().0).or_default().insert(zoho_id, moodle_id);
    }
    for (kind, ids) in by_kind {
        let records: Vec<Record> = store
            .records(kind)?
            .into_iter()
            .filter_map(|mut r| {
                let m = ids.get(r.key.as_str())?;
                r.refs.insert("moodle_id".into(), json!(m));
                Some(r)
            })
            .collect();
        let sid = format!("write-back-{run_id}-{}", kind.name());
        store.stage_records(&sid, kind, &records)?;
        store.commit_snapshot(&sid, kind, false)?;
    }
    Ok(())
}

fn planned(ops: &[reconcile::Op], run_id: i64) -> Vec<JournalEntry> {
    ops.iter()
        .map(|op| JournalEntry {
            run_id,
            seq: op.seq as i64,
            entity: op.entity.name().into(),
            key: op.key.clone(),
            target: op.target.name().into(),
            op: op.action.name().into(),
            changes: Some(json!(op.changes)),
            fingerprints: Some(json!(op.fingerprints)),
            outcome: "planned".into(),
            target_id: None,
            message: None,
        })
        .collect()
}

/// Apply on tokio, the store served on this thread.
type Executed = (Vec<Done>, zoho::ZohoStats, moodle::MoodleStats, Vec<(Entity, String, String)>);

fn execute(
    store: &dyn Store,
    settings: &Settings,
    config: &Config,
    plan: &Spill,
    stale: &[u64],
    run_id: i64,
    opts: &apply::Options,
) -> Result<Executed, RunError> {
    let settings = Arc::new(settings.clone());
    let needs = |side: Side| plan.entries().iter().any(|o| o.target == side && apply::sends(o.action));
    let out = bridge::serve(store, |b| async move {
        let z = if needs(Side::Zoho) || needs(Side::Moodle) {
            Some(
                zoho::Client::new(
                    &config.zoho,
                    zoho::ClientOptions::from_settings(&settings),
                    Some(bridge::token_cache(&b)),
                )
                .map_err(apply::ApplyError::from)?,
            )
        } else {
            None
        };
        // Not only Moodle writes: identity checks before creates and links read Moodle too (a fresh store
        // against an already-synced Moodle plans links and write-backs, and failed without a client).
        let m = if needs(Side::Moodle) || !plan.is_empty() {
            let o =
                moodle::ClientOptions { max_input_vars: settings.max_input_vars, ..moodle::ClientOptions::default() };
            Some(moodle::Client::new(&config.moodle, o).map_err(apply::ApplyError::from)?)
        } else {
            None
        };
        let ctx = apply::Ctx::new(z.clone(), m.clone(), b, settings.clone(), run_id, opts.clone(), plan).await?;
        let done = apply::apply(&ctx, plan, stale).await?;
        let zs = z.map(|z| z.stats()).unwrap_or_default();
        let ms = m.map(|m| m.stats()).unwrap_or_default();
        Ok::<_, apply::ApplyError>((done, zs, ms, ctx.written_back()))
    })?;
    Ok(out?)
}

/// Writes `plan` with its ops read back from `ops`, in the form [`Plan::from_json`] reads.
fn write_plan(path: &Path, plan: &Plan, ops: &Spill) -> Result<(), RunError> {
    /// The ops as a JSON array, streamed from the spill.
    struct Ops<'a>(&'a Spill);
    impl Serialize for Ops<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::{Error, SerializeSeq};
            let mut seq = s.serialize_seq(Some(self.0.len()))?;
            for chunk in self.0.entries().chunks(JOURNAL_CHUNK) {
                for op in self.0.read(chunk).map_err(S::Error::custom)? {
                    seq.serialize_element(&op)?;
                }
            }
            seq.end()
        }
    }
    #[derive(Serialize)]
    struct Whole<'a> {
        run_id: Option<i64>,
        created_at: chrono::DateTime<chrono::Utc>,
        entities: &'a [Entity],
        ops: Ops<'a>,
        issues: &'a [reconcile::Issue],
        conflicts: &'a [reconcile::Conflict],
        guards: &'a [reconcile::GuardVerdict],
        counts: &'a BTreeMap<Entity, reconcile::Counts>,
    }
    let whole = Whole {
        run_id: plan.run_id,
        created_at: plan.created_at,
        entities: &plan.entities,
        ops: Ops(ops),
        issues: &plan.issues,
        conflicts: &plan.conflicts,
        guards: &plan.guards,
        counts: &plan.counts,
    };
    let write = || -> std::io::Result<()> {
        let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
        serde_json::to_writer_pretty(&mut w, &whole).map_err(std::io::Error::other)?;
        std::io::Write::flush(&mut w)
    };
    write().map_err(|e| {
        let hint = io_hint(&e).replace("--report-dir", "--plan-out");
        RunError::File(format!("cannot write the plan {}: {e}\n  hint: {hint}", path.display()))
    })
}

/// One row per op: what was (or, dry run, would be) done and its outcome. Never a secret: ops hold record
/// fields only.
fn write_csv(path: &Path, run_id: i64, ops: &Spill, done: &[Done], dry_run: bool) -> Result<(), RunError> {
    write_csv_rows(path, run_id, ops, done, dry_run).map_err(|e| match e {
        RunError::Io(e) => RunError::File(file_error("cannot write the report", path, &e)),
        other => other,
    })
}

/// What to do about an I/O error on `path`, by its kind.
fn io_hint(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => "free space on that disk (df -h), or point --report-dir at another",
        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => {
            "make it writable by the user zmsync runs as, or point --report-dir at another directory"
        }
        Some(libc::ENOENT) | Some(libc::ENOTDIR) => "create it (mkdir -p), or point --report-dir at another directory",
        _ => "check the path and the disk, or point --report-dir at another directory",
    }
}

/// "{what} {path}: {error}" and a hint line.
fn file_error(what: &str, path: &Path, e: &std::io::Error) -> String {
    format!("{what} {}: {e}\n  hint: {}", path.display(), io_hint(e))
}

/// Creates the report directory if needed and checks that it takes a file (written and removed).
pub fn check_report_dir(dir: &Path) -> Result<(), RunError> {
    let fail = |e: std::io::Error| {
        RunError::File(format!(
            "{}\n  nothing was read or written",
            file_error("the report directory cannot take the run's report:", dir, &e)
        ))
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(format!(".zmsync-write-check-{}", std::process::id()));
    let written = std::fs::File::create(&probe).and_then(|mut f| {
        use std::io::Write as _;
        f.write_all(b"zmsync checks that the report directory takes a file\n")?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&probe);
    written.map_err(fail)
}

/// The I/O error inside a CSV error (its OS error kept, for [`io_hint`]).
fn csv_io(e: csv::Error) -> std::io::Error {
    match e.into_kind() {
        csv::ErrorKind::Io(e) => e,
        other => std::io::Error::other(format!("{other:?}")),
    }
}

fn write_csv_rows(path: &Path, run_id: i64, ops: &Spill, done: &[Done], dry_run: bool) -> Result<(), RunError> {
    let mut w = csv::Writer::from_path(path).map_err(|e| RunError::Io(csv_io(e)))?;
    let io = csv_io;
    w.write_record(crate::operator::report::CSV_COLUMNS).map_err(io)?;
    let by_seq: BTreeMap<u64, &Done> = done.iter().map(|d| (d.seq, d)).collect();
    ops.for_each(|op| {
        let d = by_seq.get(&op.seq);
        let outcome = match d {
            Some(d) => d.outcome.name(),
            None if dry_run => "would_apply",
            None => "not_run",
        };
        let fields = serde_json::to_string(&op.changes).unwrap_or_default();
        w.write_record([
            run_id.to_string(),
            op.seq.to_string(),
            op.entity.name().to_string(),
            op.action.name().to_string(),
            op.target.name().to_string(),
            op.key.clone(),
            op.zoho_id.clone().unwrap_or_default(),
            op.moodle_id.clone().unwrap_or_default(),
            fields,
            outcome.to_string(),
            d.and_then(|d| d.outcome.target_id().map(str::to_string)).unwrap_or_default(),
            d.and_then(|d| d.outcome.message()).unwrap_or_else(|| op.reason.clone()),
        ])
        .map_err(io)
    })?;
    // Outcomes no planned op carries (write-backs of what this run created that Zoho did not take).
    let max = ops.max_seq();
    for d in done.iter().filter(|d| d.seq > max) {
        w.write_record([
            run_id.to_string(),
            d.seq.to_string(),
            d.entity.name().to_string(),
            d.action.name().to_string(),
            d.target.name().to_string(),
            d.key.clone(),
            d.key.clone(),
            String::new(),
            String::new(),
            d.outcome.name().to_string(),
            d.outcome.target_id().map(str::to_string).unwrap_or_default(),
            d.outcome.message().unwrap_or_default(),
        ])
        .map_err(io)?;
    }
    w.flush()?;
    Ok(())
}
