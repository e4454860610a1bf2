//! Apply: executes a [`Plan`] through both APIs.
//!
//! Ops are grouped by target and kind and run in dependency order, phases that do not depend on each other side
//! by side: links of pairs already matched; then users (followed by the dashboard plugin's rows), courses (with
//! their category) and the Zoho side (enrolments and grades from Moodle) at once; as soon as users and courses
//! are done, beside what is left of those, write-backs (of pairs matched and of what was just created) and
//! teacher and student enrolments (their ids resolved through the links made just before); removals last. Within a phase, batches run with bounded concurrency; the
//! clients retry transient failures; a record the API rejects is reported and never retried in this run.
//!
//! Crash safety comes from three rules: every outcome goes to the journal the moment its batch completes;
//! every create checks identity first (an object that exists is linked, never created again) and an unknown
//! outcome is re-checked by identity, never re-sent; Zoho creates are upserts on a deterministic `Name`.
//!
//! Threads: this runs on tokio; the store is reached only through the [`StoreBridge`].

mod moodle_side;
pub mod spill;
mod zoho_side;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use indicatif::ProgressBar;
use serde::Serialize;
use serde_json::Value;

use crate::bridge::StoreBridge;
use crate::model::{Entity, Fields, Kind, Record, Side};
use crate::progress::Bars;
use crate::reconcile::{Action, Op, Plan};
use crate::settings::Settings;
use crate::store::{JournalEntry, Link, StoreError};
use crate::{moodle, zoho};
pub use spill::{Entry, Spill, SpillWriter};

/// What happened to one op.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Written (or found already there and linked). `target_id`: the id on the target side.
    Applied { target_id: Option<String>, note: Option<String> },
    /// Not attempted: stale (saved plans), or something it depends on failed.
    Skipped { reason: String },
    /// The API refused this record (never retried in this run).
    Rejected { code: String, message: String },
    /// A transient failure that outlived the retries, or an outcome that could not be confirmed.
    Failed { message: String },
}

impl Outcome {
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Applied { .. } => "applied",
            Outcome::Skipped { .. } => "skipped",
            Outcome::Rejected { .. } => "rejected",
            Outcome::Failed { .. } => "failed",
        }
    }

    pub fn applied(target_id: impl Into<Option<String>>) -> Outcome {
        Outcome::Applied { target_id: target_id.into(), note: None }
    }

    pub fn target_id(&self) -> Option<&str> {
        match self {
            Outcome::Applied { target_id, .. } => target_id.as_deref(),
            _ => None,
        }
    }

    pub fn message(&self) -> Option<String> {
        match self {
            Outcome::Applied { note, .. } => note.clone(),
            Outcome::Skipped { reason } => Some(reason.clone()),
            Outcome::Rejected { code, message } => Some(format!("{code}: {message}")),
            Outcome::Failed { message } => Some(message.clone()),
        }
    }

    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::Rejected { .. } | Outcome::Failed { .. })
    }
}

/// One op's result, as the report and the summary read it.
#[derive(Debug, Clone, Serialize)]
pub struct Done {
    pub seq: u64,
    pub entity: Entity,
    pub action: Action,
    pub target: Side,
    pub key: String,
    pub outcome: Outcome,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Zoho(#[from] zoho::ZohoError),
    #[error(transparent)]
    Moodle(#[from] moodle::MoodleError),
    /// The plan's ops could not be read back (see [`spill`]).
    #[error("cannot read the plan's ops back: {0}")]
    Spill(#[from] std::io::Error),
}

/// How apply behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Batches of one phase in flight at once (Moodle; Zoho's own limiter caps its calls).
    pub concurrency: usize,
    /// A bar per phase on stderr (a terminal only).
    pub progress: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { concurrency: 4, progress: false }
    }
}

/// Everything the phases share.
pub struct Ctx {
    pub zoho: Option<zoho::Client>,
    pub moodle: Option<moodle::Client>,
    pub bridge: StoreBridge,
    pub settings: Arc<Settings>,
    pub run_id: i64,
    pub opts: Options,
    /// Zoho id → Moodle id per entity: stored links plus what this run created or matched.
    ids: Mutex<HashMap<(Entity, String), String>>,
    done: Mutex<Vec<Done>>,
    /// The store's records of the kinds apply consults (names for Zoho upserts, enrolment dates…).
    records: HashMap<Kind, HashMap<String, Record>>,
    /// Moodle ids created by this run that still need writing back to Zoho.
    write_backs: Mutex<Vec<(Entity, String, String)>>,
    /// Moodle ids Zoho accepted (entity, Zoho id, Moodle id): the run records them on the stored Zoho records
    /// instead of reading the records back.
    written_back: Mutex<Vec<(Entity, String, String)>>,
    /// The next journal seq for an outcome that is not a planned op (a write-back of what this run created).
    next_seq: std::sync::atomic::AtomicU64,
    bars: Bars,
    /// One bar per apply phase and the phase of each op (by seq), counted as outcomes are recorded.
    progress: Mutex<Progress>,
}

#[derive(Default)]
struct Progress {
    bars: Vec<ProgressBar>,
    phase: HashMap<u64, usize>,
}

impl Ctx {
    /// A bar per phase, `ops done of total`: each op counts in the first phase that names it.
    fn show_phases(&self, phases: &[(&str, Vec<u64>)]) {
        let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        let mut totals = vec![0u64; phases.len()];
        for (i, (_, seqs)) in phases.iter().enumerate() {
            for seq in seqs {
                if let std::collections::hash_map::Entry::Vacant(slot) = p.phase.entry(*seq) {
                    slot.insert(i);
                    totals[i] += 1;
                }
            }
        }
        p.bars = phases.iter().zip(totals).map(|((name, _), n)| self.bars.phase(*name, n, "ops")).collect();
        for bar in p.bars.iter().filter(|b| b.length() == Some(0)) {
            bar.finish_with_message("none");
        }
    }

    fn progressed(&self, seqs: impl Iterator<Item = u64>) {
        let p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        for seq in seqs {
            if let Some(bar) = p.phase.get(&seq).and_then(|i| p.bars.get(*i)) {
                bar.inc(1);
                if bar.position() == bar.length().unwrap_or(0) {
                    bar.finish_with_message("done");
                }
            }
        }
    }
}

impl Ctx {
    /// Loads the links and the records apply consults for `plan`'s ops (see [`consulted`]).
    pub async fn new(
        zoho: Option<zoho::Client>,
        moodle: Option<moodle::Client>,
        bridge: StoreBridge,
        settings: Arc<Settings>,
        run_id: i64,
        opts: Options,
        plan: &Spill,
    ) -> Result<Ctx, ApplyError> {
        let kinds = plan.consulted();
        let next_seq = plan.max_seq() + 1;
        let bars = Bars::new(opts.progress);
        let (ids, records) = bridge
            .run(move |s| {
                let mut ids = HashMap::new();
                for e in [Entity::Student, Entity::Teacher, Entity::Class] {
                    for l in s.links(e)? {
                        ids.insert((e, l.zoho_id), l.moodle_id);
                    }
                }
                let mut records = HashMap::new();
                for k in kinds {
                    records.insert(k, s.records(k)?.into_iter().map(|r| (r.key.clone(), r)).collect());
                }
                Ok((ids, records))
            })
            .await?;
        Ok(Ctx {
            zoho,
            moodle,
            bridge,
            settings,
            run_id,
            opts,
            ids: Mutex::new(ids),
            done: Mutex::new(Vec::new()),
            records,
            write_backs: Mutex::new(Vec::new()),
            written_back: Mutex::new(Vec::new()),
            next_seq: next_seq.into(),
            bars,
            progress: Mutex::new(Progress::default()),
        })
    }

    pub fn record(&self, kind: Kind, key: &str) -> Option<&Record> {
        self.records.get(&kind).and_then(|m| m.get(key))
    }

    /// The Moodle id of a Zoho record of `entity`, linked before or during this run.
    pub fn moodle_id(&self, entity: Entity, zoho_id: &str) -> Option<String> {
        self.ids.lock().unwrap_or_else(|e| e.into_inner()).get(&(entity, zoho_id.to_string())).cloned()
    }

    /// Stores links at once: a run killed right after still knows the pairing.
    pub async fn link(&self, links: Vec<Link>) -> Result<(), ApplyError> {
        if links.is_empty() {
            return Ok(());
        }
        {
            let mut ids = self.ids.lock().unwrap_or_else(|e| e.into_inner());
            for l in &links {
                ids.insert((l.entity, l.zoho_id.clone()), l.moodle_id.clone());
            }
        }
        self.bridge.run(move |s| s.put_links(&links)).await?;
        Ok(())
    }

    pub fn queue_write_back(&self, entity: Entity, zoho_id: &str, moodle_id: &str) {
        self.write_backs.lock().unwrap_or_else(|e| e.into_inner()).push((
            entity,
            zoho_id.to_string(),
            moodle_id.to_string(),
        ));
    }

    fn take_write_backs(&self) -> Vec<(Entity, String, String)> {
        std::mem::take(&mut *self.write_backs.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn wrote_back(&self, entity: Entity, pairs: impl IntoIterator<Item = (String, String)>) {
        let mut w = self.written_back.lock().unwrap_or_else(|e| e.into_inner());
        w.extend(pairs.into_iter().map(|(z, m)| (entity, z, m)));
    }

    /// The Moodle ids Zoho accepted in this run: (entity, Zoho id, Moodle id).
    pub fn written_back(&self) -> Vec<(Entity, String, String)> {
        std::mem::take(&mut *self.written_back.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Records outcomes: in memory for the report, and in the journal before anything else happens.
    pub async fn finish(&self, results: Vec<(&Op, Outcome)>) -> Result<(), ApplyError> {
        if results.is_empty() {
            return Ok(());
        }
        let rows: Vec<(i64, String, Option<String>, Option<String>)> = results
            .iter()
            .map(|(op, o)| (op.seq as i64, o.name().to_string(), o.target_id().map(str::to_string), o.message()))
            .collect();
        for (op, o) in &results {
            match o {
                Outcome::Rejected { .. } | Outcome::Failed { .. } => {
                    tracing::warn!(seq = op.seq, entity = %op.entity, key = %op.key, action = op.action.name(),
                        outcome = o.name(), "{}", o.message().unwrap_or_default());
                }
                _ => tracing::debug!(seq = op.seq, entity = %op.entity, key = %op.key, outcome = o.name(), "op done"),
            }
        }
        self.progressed(results.iter().map(|(op, _)| op.seq));
        {
            let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
            done.extend(results.into_iter().map(|(op, outcome)| Done {
                seq: op.seq,
                entity: op.entity,
                action: op.action,
                target: op.target,
                key: op.key.clone(),
                outcome,
            }));
        }
        let run_id = self.run_id;
        self.bridge
            .run(move |s| {
                let refs: Vec<(i64, &str, Option<&str>, Option<&str>)> =
                    rows.iter().map(|(q, o, t, m)| (*q, o.as_str(), t.as_deref(), m.as_deref())).collect();
                s.journal_outcomes(run_id, &refs)
            })
            .await?;
        Ok(())
    }

    /// Journals an outcome that no planned op carries (a write-back of a Moodle id this run created), under a
    /// seq after the plan's, so the report, the CSV and the exit code show it. Nothing is re-sent for it: the
    /// next run plans the write-back again.
    pub async fn finish_unplanned(
        &self,
        entity: Entity,
        action: Action,
        target: Side,
        key: &str,
        outcome: Outcome,
    ) -> Result<(), ApplyError> {
        let seq = self.next_seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        tracing::warn!(seq, entity = %entity, key = %key, action = action.name(), outcome = outcome.name(),
            "{}", outcome.message().unwrap_or_default());
        let entry = JournalEntry {
            run_id: self.run_id,
            seq: seq as i64,
            entity: entity.name().into(),
            key: key.to_string(),
            target: target.name().into(),
            op: action.name().into(),
            changes: None,
            fingerprints: None,
            outcome: outcome.name().into(),
            target_id: outcome.target_id().map(str::to_string),
            message: outcome.message(),
        };
        self.bridge.run(move |s| s.journal_planned(&[entry])).await?;
        let done = Done { seq, entity, action, target, key: key.to_string(), outcome };
        self.done.lock().unwrap_or_else(|e| e.into_inner()).push(done);
        Ok(())
    }

    /// The same outcome for every op of a batch.
    pub async fn finish_all(&self, ops: &[&Op], outcome: Outcome) -> Result<(), ApplyError> {
        self.finish(ops.iter().map(|op| (*op, outcome.clone())).collect()).await
    }
}

/// The kinds of stored records apply consults for `op`, so only those are held during apply: students and
/// classes name the Zoho enrolments and grades it creates; Moodle enrolments complete the enrolments it sends
/// without their fields in the op.
fn consulted(o: &Op) -> &'static [Kind] {
    let names =
        o.target == Side::Zoho && o.action == Action::Create && matches!(o.entity, Entity::Enrollment | Entity::Grade);
    let enrolments = o.target == Side::Moodle
        && matches!(o.entity, Entity::Teaching | Entity::Enrollment)
        && o.moodle_id.is_some()
        && !matches!(o.refs.get("fields"), Some(Value::Object(_)));
    match (names, enrolments) {
        (true, _) => &[Kind::Student, Kind::Class],
        (_, true) => &[Kind::MoodleEnrolment],
        _ => &[],
    }
}

/// The ids an op refers to, as numbers (Moodle) — `refs[name]`, else the id linked (or created) in this run.
pub fn ref_i64(ctx: &Ctx, op: &Op, name: &str, entity: Entity, zoho_ref: &str) -> Option<i64> {
    match op.refs.get(name) {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) if !s.is_empty() => s.parse().ok(),
        _ => {
            let zid = op.refs.get(zoho_ref).and_then(Value::as_str)?;
            ctx.moodle_id(entity, zid)?.parse().ok()
        }
    }
}

/// A stale op of a saved plan: skipped and listed.
pub async fn skip(ctx: &Ctx, ops: &[&Op], reason: &str) -> Result<(), ApplyError> {
    ctx.finish_all(ops, Outcome::Skipped { reason: reason.to_string() }).await
}

/// Runs `$phase(ctx, ops)` over the ops `$pick` takes, a chunk at a time (read back from the spill).
macro_rules! in_chunks {
    ($plan:expr, $pick:expr, |$ops:ident| $phase:expr) => {
        for chunk in $plan.chunks($pick) {
            let owned = $plan.read(&chunk)?;
            let $ops: Vec<&Op> = owned.iter().collect();
            $phase.await?;
        }
    };
}

/// Applies the plan's ops (minus the `skip_seqs`, skipped as stale) and returns every op's outcome, in seq
/// order. Each phase reads its ops back from `plan` a chunk at a time and drops them when done.
pub async fn apply(ctx: &Ctx, plan: &Spill, skip_seqs: &[u64]) -> Result<Vec<Done>, ApplyError> {
    let skipped: std::collections::HashSet<u64> = skip_seqs.iter().copied().collect();
    in_chunks!(plan, |e| skipped.contains(&e.seq), |stale| skip(
        ctx,
        &stale,
        "stale: the record changed since the plan was made (the next run plans it afresh)"
    ));
    let skipped = &skipped;
    let live = |f: fn(&Entry) -> bool| move |e: &Entry| !skipped.contains(&e.seq) && f(e);
    let seqs =
        |f: fn(&Entry) -> bool| -> Vec<u64> { plan.entries().iter().filter(|e| live(f)(e)).map(|e| e.seq).collect() };

    // 1. Pairings found by matching: stored, nothing is sent.
    fn links(o: &Entry) -> bool {
        o.action == Action::Link
    }
    in_chunks!(plan, live(links), |ops| async {
        ctx.link(ops.iter().filter_map(|o| link_of(o)).collect()).await?;
        ctx.finish_all(&ops, Outcome::applied(None)).await
    });
    let t = std::time::Instant::now();
    let lap =
        |what: &str| tracing::info!(phase = what, elapsed_ms = t.elapsed().as_millis() as u64, "apply phase done");
    // 2. Phases run as soon as what they depend on is done, side by side: users (then their dashboard rows),
    //    courses, and the Zoho side (enrolments and grades from Moodle, which depend on neither); 3 below.
    fn is_person(o: &Entry) -> bool {
        matches!(o.entity, Entity::Student | Entity::Teacher) && o.target == Side::Moodle
    }
    fn removal(o: &Entry) -> bool {
        matches!(o.action, Action::Unenrol | Action::Delete)
    }
    fn enrol(o: &Entry) -> bool {
        matches!(o.entity, Entity::Teaching | Entity::Enrollment) && o.target == Side::Moodle
    }
    fn row(o: &Entry) -> bool {
        matches!(o.entity, Entity::Unit | Entity::Registration | Entity::Payment | Entity::DashboardGrade)
            && o.target == Side::Moodle
    }
    fn users(o: &Entry) -> bool {
        is_person(o) && !removal(o)
    }
    fn rows(o: &Entry) -> bool {
        row(o) && o.action != Action::Delete
    }
    fn courses(o: &Entry) -> bool {
        o.entity == Entity::Class && o.target == Side::Moodle && !removal(o)
    }
    fn zoho_enrolments(o: &Entry) -> bool {
        o.entity == Entity::Enrollment && o.target == Side::Zoho
    }
    fn zoho_grades(o: &Entry) -> bool {
        o.entity == Entity::Grade && o.target == Side::Zoho
    }
    fn zoho_records(o: &Entry) -> bool {
        zoho_enrolments(o) || zoho_grades(o)
    }
    // In seq order (the spill is).
    fn wb(o: &Entry) -> bool {
        o.action == Action::WriteBack
    }
    fn enrolments(o: &Entry) -> bool {
        enrol(o) && o.action != Action::Unenrol
    }
    fn unenrols(o: &Entry) -> bool {
        enrol(o) && o.action == Action::Unenrol
    }
    fn row_deletes(o: &Entry) -> bool {
        row(o) && o.action == Action::Delete
    }
    fn deletes(o: &Entry) -> bool {
        is_person(o) && o.action == Action::Delete
    }
    fn removals(o: &Entry) -> bool {
        unenrols(o) || row_deletes(o) || deletes(o)
    }
    ctx.show_phases(&[
        ("links", seqs(links)),
        ("users", seqs(users)),
        ("courses", seqs(courses)),
        ("dashboard rows", seqs(rows)),
        ("zoho records", seqs(zoho_records)),
        ("write-backs", seqs(wb)),
        ("enrolments", seqs(enrolments)),
        ("removals", seqs(removals)),
    ]);
    // 3. What needs both users and courses starts the moment both are done, beside what is still running of 2
    //    (the dashboard rows, the Zoho records): write-backs (planned ones and those of what was just created or
    //    found) and enrolments (their ids resolved through the links just made). The Moodle client's semaphore
    //    (FIFO) keeps the calls in flight at its limit: the enrolments fill the workers the rows' tail leaves idle.
    let (users_done, users_seen) = tokio::sync::watch::channel(false);
    let (courses_done, courses_seen) = tokio::sync::watch::channel(false);
    let both_done = || {
        let (mut u, mut c) = (users_seen.clone(), courses_seen.clone());
        async move { u.wait_for(|d| *d).await.is_ok() && c.wait_for(|d| *d).await.is_ok() }
    };
    let people = async {
        in_chunks!(plan, live(users), |ops| moodle_side::users(ctx, &ops));
        lap("users");
        users_done.send_replace(true);
        // Dashboard rows need only the users. Before the enrolments could start early they ran beside them from
        // the start and were several times slower; now they start first and the enrolments take their tail.
        in_chunks!(plan, live(rows), |ops| moodle_side::plugin_rows(ctx, &ops));
        lap("plugin_rows");
        Ok::<_, ApplyError>(())
    };
    let classes = async {
        in_chunks!(plan, live(courses), |ops| moodle_side::courses(ctx, &ops));
        lap("courses");
        courses_done.send_replace(true);
        Ok(())
    };
    let zoho = async {
        in_chunks!(plan, live(zoho_enrolments), |ops| zoho_side::records(ctx, &ops));
        in_chunks!(plan, live(zoho_grades), |ops| zoho_side::records(ctx, &ops));
        lap("zoho_records");
        if both_done().await {
            in_chunks!(plan, live(wb), |ops| zoho_side::write_backs(ctx, &ops));
            lap("write_backs");
        }
        Ok(())
    };
    let enrol = async {
        if both_done().await {
            // The read-back of a chunk's enrolments saved before a raise overlaps the next chunk's sends.
            let mut to_confirm = moodle_side::ToConfirm::default();
            for chunk in plan.chunks(live(enrolments)) {
                let owned = plan.read(&chunk)?;
                let ops: Vec<&Op> = owned.iter().collect();
                let (sent, confirmed) =
                    tokio::join!(moodle_side::enrolments(ctx, &ops), moodle_side::confirm_committed(ctx, to_confirm));
                confirmed?;
                to_confirm = sent?;
            }
            moodle_side::confirm_committed(ctx, to_confirm).await?;
            lap("enrolments");
        }
        Ok(())
    };
    tokio::try_join!(people, classes, zoho, enrol)?;
    // 4. Removals last: nothing above depends on them.
    in_chunks!(plan, live(unenrols), |ops| moodle_side::unenrol(ctx, &ops));
    in_chunks!(plan, live(row_deletes), |ops| moodle_side::delete_rows(ctx, &ops));
    in_chunks!(plan, live(deletes), |ops| moodle_side::delete_users(ctx, &ops));
    lap("removals");
    // Anything no phase took (an entity/target pair apply does not write) is reported, never dropped.
    let seen: std::collections::HashSet<u64> =
        ctx.done.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|d| d.seq).collect();
    in_chunks!(plan, |e| !skipped.contains(&e.seq) && !seen.contains(&e.seq), |rest| skip(
        ctx,
        &rest,
        "no writer for this entity and side"
    ));
    let mut done = std::mem::take(&mut *ctx.done.lock().unwrap_or_else(|e| e.into_inner()));
    done.sort_by_key(|d| d.seq);
    Ok(done)
}

fn link_of(op: &Op) -> Option<Link> {
    Some(Link { entity: op.entity, zoho_id: op.zoho_id.clone()?, moodle_id: op.moodle_id.clone()? })
}

/// Per-entity tallies of a run, for the summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tally {
    pub created: u64,
    pub updated: u64,
    pub suspended: u64,
    pub unchanged: u64,
    pub skipped: u64,
    pub failed: u64,
}

pub fn tally(plan: &Plan, done: &[Done]) -> BTreeMap<Entity, Tally> {
    let mut out: BTreeMap<Entity, Tally> = BTreeMap::new();
    for (e, c) in &plan.counts {
        out.entry(*e).or_default().unchanged = c.unchanged;
    }
    for d in done {
        let t = out.entry(d.entity).or_default();
        match &d.outcome {
            Outcome::Applied { .. } => match d.action {
                Action::Create | Action::Enrol => t.created += 1,
                Action::Suspend | Action::Hide | Action::Unenrol | Action::Delete => t.suspended += 1,
                _ => t.updated += 1,
            },
            Outcome::Skipped { .. } => t.skipped += 1,
            _ => t.failed += 1,
        }
    }
    out
}

/// Ops that are only bookkeeping (links) never reach an API.
pub fn sends(action: Action) -> bool {
    action != Action::Link
}

pub(crate) fn str_field<'a>(f: &'a Fields, k: &str) -> Option<&'a str> {
    f.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}
