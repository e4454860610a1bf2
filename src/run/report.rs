//! What a run reports: the summary screen and `--json` ([`RunReport`]), and the files it writes beside the
//! store: the CSV of every op and its outcome, the plan (`--plan-out`), and the check that the report
//! directory takes a file before anything is read or written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::execute::JOURNAL_CHUNK;
use super::RunError;
use crate::apply::{self, Done, Spill, Tally};
use crate::model::Entity;
use crate::reconcile::{self, Plan};
use crate::snapshot;
use crate::store::{Store, StoreError};
use crate::{moodle, zoho};

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
    /// Some records were rejected or failed, dirty marks failed, or the report could not be written.
    pub fn is_partial(&self) -> bool {
        self.rejected + self.failed > 0 || self.dirty_failed > 0 || self.report_error.is_some()
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

/// API calls counted over a run's phases: the totals and [`PhaseCalls`].
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ApiCalls {
    pub zoho_calls: u64,
    pub zoho_credits: u64,
    pub moodle_calls: u64,
    pub phase_calls: PhaseCalls,
}

impl ApiCalls {
    /// The snapshot's calls.
    pub fn snapshot(&mut self, snap: &snapshot::SnapshotSummary) {
        let (z, c, m) = calls(snap);
        self.add(z, c, m);
        self.phase_calls.snapshot = Calls { zoho: z, moodle: m };
    }

    /// Apply's calls (writes and identity checks).
    pub fn apply(&mut self, z: &zoho::ZohoStats, m: &moodle::MoodleStats) {
        self.add(z.calls, z.credits, m.calls);
        self.phase_calls.apply = Calls { zoho: z.calls, moodle: m.calls };
    }

    /// The calls of the re-read of what was written.
    pub fn refresh(&mut self, snap: &snapshot::SnapshotSummary) {
        let (z, c, m) = calls(snap);
        self.add(z, c, m);
        self.phase_calls.refresh = Calls { zoho: z, moodle: m };
    }

    fn add(&mut self, zoho: u64, credits: u64, moodle: u64) {
        self.zoho_calls += zoho;
        self.zoho_credits += credits;
        self.moodle_calls += moodle;
    }
}

fn calls(s: &snapshot::SnapshotSummary) -> (u64, u64, u64) {
    let z = s.zoho.as_ref();
    (
        z.map(|z| z.api_calls).unwrap_or(0),
        z.map(|z| z.credits).unwrap_or(0),
        s.moodle.as_ref().map(|m| m.api_calls).unwrap_or(0),
    )
}

/// The run's report directory (`--report-dir`, else [`crate::operator::report::default_report_dir`]), checked
/// to take a file.
pub(super) fn report_dir(store: &dyn Store, opts: &super::RunOptions) -> Result<PathBuf, RunError> {
    let dir = opts.report_dir.clone().unwrap_or_else(|| crate::operator::report::default_report_dir(store));
    check_report_dir(&dir)?;
    Ok(dir)
}

/// What the report keeps of the plan once it is dropped.
pub(super) struct Summary {
    pub entities: BTreeMap<Entity, Tally>,
    pub planned_ops: usize,
    pub issues: crate::operator::issues::IssueSummary,
    pub guards: Vec<reconcile::GuardVerdict>,
    pub conflicts: usize,
}

impl Summary {
    /// `plan`'s counts, issues (by cause) and conflicts; its ops are in `ops`.
    pub(super) fn of(
        store: &dyn Store,
        run_id: i64,
        plan: &Plan,
        ops: &Spill,
        done: &[Done],
    ) -> Result<Summary, StoreError> {
        Ok(Summary {
            entities: apply::tally(plan, done),
            planned_ops: ops.len(),
            issues: crate::operator::issues::summarise(store, Some(run_id), &plan.issues)?,
            guards: plan.guards.clone(),
            conflicts: plan.conflicts.len(),
        })
    }
}

/// Writes `plan` with its ops read back from `ops`, in the form [`Plan::from_json`] reads.
pub(super) fn write_plan(path: &Path, plan: &Plan, ops: &Spill) -> Result<(), RunError> {
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
pub(super) fn write_csv(path: &Path, run_id: i64, ops: &Spill, done: &[Done], dry_run: bool) -> Result<(), RunError> {
    write_csv_rows(path, run_id, ops, done, dry_run).map_err(|e| match e {
        RunError::Io(e) => RunError::File(file_error("cannot write the report", path, &e)),
        other => other,
    })
}

/// Writes the CSV once the ops were applied: one that cannot be written does not fail the run (the journal has
/// every op and outcome); the run goes on and exits 3, and this says why and how to write it later.
pub(super) fn write_csv_applied(path: &Path, run_id: i64, ops: &Spill, done: &[Done]) -> Option<String> {
    let e = write_csv(path, run_id, ops, done, false).err()?;
    let _ = std::fs::remove_file(path);
    Some(format!(
        "{e}\n  the ops were applied and are all in the journal; once there is room, write the report with: \
         zmsync report {run_id}"
    ))
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
