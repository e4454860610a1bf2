//! Reconcile: decides what changes. Reads the store's last snapshot of both sides, the links and the agreed
//! base; pairs records ([`link`]), diffs each pair ([`diff`]) and returns a [`Plan`]. Read-only: links found by
//! matching are ops that apply stores. See docs/reconcile.md for the rules as an operator reads them.

mod baseline;
pub mod diff;
pub mod entities;
pub mod guards;
pub mod link;
pub mod plan;
pub mod report;
pub mod source;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

pub use baseline::{baseline, baseline_each, baseline_of, BaselineSummary};
pub use guards::{enforce, Refusal};
pub use plan::{Action, Conflict, Counts, Fingerprints, GuardVerdict, Issue, IssueKind, Op, Plan, StaleCheck};

use self::baseline::{base_rows, record_agreed};
use self::diff::{Agreed, Differ, EntityDiff, EntityRules};
use self::entities::World;
use self::link::{Linked, Rules};
pub use self::source::{Records, SourceError};
use crate::model::{Entity, Kind, Record};
use crate::model::{Link, SyncState};
use crate::settings::Settings;

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Store(#[from] SourceError),
    #[error(transparent)]
    Refused(Refusal),
}

/// A `--module` value that names no entity, or a disabled one: the user's mistake, said with the fix.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UnknownEntity(pub String);

/// What to reconcile.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The entities to plan, in any order; empty = every enabled entity.
    pub entities: Vec<Entity>,
    pub run_id: Option<i64>,
    /// Keep the pairs that agree in [`Analysis::agreed`] (what `baseline` records); a plan only counts them.
    pub collect_agreed: bool,
    /// Let a plan over the mass-change limit through (recorded on the plan). Never overrides the empty-side
    /// guard.
    pub allow_mass_change: bool,
}

/// The entities a `--module` value names: an entity name (`student`) or a Zoho module (`BTEC_Students`);
/// `None` = every enabled entity. Classes bring their teaching.
pub fn select(module: Option<&str>, settings: &Settings) -> Result<Vec<Entity>, UnknownEntity> {
    let enabled: Vec<Entity> = Entity::ALL.into_iter().filter(|e| e.enabled(settings)).collect();
    let Some(m) = module else { return Ok(enabled) };
    let wanted: Vec<Entity> = Entity::ALL
        .into_iter()
        .filter(|e| e.name().eq_ignore_ascii_case(m) || e.default_module().eq_ignore_ascii_case(m))
        .collect();
    if wanted.is_empty() {
        let names: Vec<&str> = Entity::ALL.iter().map(|e| e.name()).collect();
        return Err(UnknownEntity(format!(
            "unknown module `{m}`; use an entity ({}) or a Zoho module name (BTEC_Students…)",
            names.join(", ")
        )));
    }
    let on: Vec<Entity> = wanted.iter().copied().filter(|e| enabled.contains(e)).collect();
    if on.is_empty() {
        return Err(UnknownEntity(format!(
            "module `{m}` is disabled in modules.enabled; enable it with `zmsync settings set modules.enabled …`"
        )));
    }
    Ok(on)
}

/// Everything reconcile reads, loaded once. Tests build it by hand from mapped records.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub records: BTreeMap<Kind, Vec<Record>>,
    pub links: BTreeMap<Entity, Vec<Link>>,
    pub states: BTreeMap<Entity, Vec<SyncState>>,
}

/// Entities whose identity every other entity resolves through.
const IDENTITY: [Entity; 3] = [Entity::Student, Entity::Teacher, Entity::Class];

impl Inputs {
    /// Reads what reconciling `entities` needs: their records, links and base, and always the records and
    /// links of students, teachers and classes (everything else refers to them).
    pub fn load<S: Records + ?Sized>(store: &S, entities: &[Entity]) -> Result<Inputs, SourceError> {
        let mut kinds: Vec<Kind> =
            vec![Kind::Student, Kind::Teacher, Kind::MoodleUser, Kind::Class, Kind::MoodleCourse];
        let mut with_base: Vec<Entity> = IDENTITY.to_vec();
        for e in entities {
            let (z, m) = e.kinds();
            kinds.extend([z, m]);
            with_base.push(*e);
        }
        kinds.sort();
        kinds.dedup();
        with_base.sort();
        with_base.dedup();
        let mut inputs = Inputs::default();
        inputs.records.extend(kinds.iter().copied().zip(store.records_of(&kinds)?));
        for e in with_base {
            inputs.links.insert(e, store.links(e)?);
            inputs.states.insert(e, store.sync_states(e)?);
        }
        Ok(inputs)
    }

    pub fn records(&self, kind: Kind) -> &[Record] {
        self.records.get(&kind).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn links(&self, entity: Entity) -> &[Link] {
        self.links.get(&entity).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn states(&self, entity: Entity) -> &[SyncState] {
        self.states.get(&entity).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// The plan, and the pairs that agree (what [`baseline`] records).
pub struct Analysis {
    pub plan: Plan,
    pub agreed: BTreeMap<Entity, Vec<Agreed>>,
}

/// Reads the store and plans. The plan carries the guard verdicts; a refused plan is returned too (a diff
/// report still shows it) — call [`enforce`] before saving or applying one.
pub fn reconcile<S: Records + ?Sized>(store: &S, settings: &Settings, opts: &Options) -> Result<Plan, ReconcileError> {
    let entities =
        if opts.entities.is_empty() { select(None, settings).unwrap_or_default() } else { opts.entities.clone() };
    let inputs = Inputs::load(store, &entities)?;
    Ok(analyse(&inputs, settings, &Options { entities, ..opts.clone() }).plan)
}

/// [`reconcile`], then the guards: a refused plan is an error (exit 4).
pub fn plan<S: Records + ?Sized>(store: &S, settings: &Settings, opts: &Options) -> Result<Plan, ReconcileError> {
    let plan = reconcile(store, settings, opts)?;
    enforce(&plan).map_err(ReconcileError::Refused)?;
    Ok(plan)
}

/// How long each phase took, for the benchmark and `-v` logs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    pub link: Duration,
    pub diff: Duration,
}

/// The pure part: pairs, diffs and guards `inputs`. No I/O.
pub fn analyse(inputs: &Inputs, settings: &Settings, opts: &Options) -> Analysis {
    analyse_timed(inputs, settings, opts).0
}

pub fn analyse_timed(inputs: &Inputs, settings: &Settings, opts: &Options) -> (Analysis, Timings) {
    analyse_in(inputs, settings, opts, None)
}

/// What the plan creates of students, teachers and classes, by Zoho id: their dependants are planned with the
/// ids apply fills in after the create.
type Creating = HashMap<Entity, HashSet<String>>;

/// [`analyse_timed`]; `creating`, when given, is what the identity entities' own diffs create (computed
/// beforehand, so a group without them plans its dependants as the whole plan would).
fn analyse_in(
    inputs: &Inputs,
    settings: &Settings,
    opts: &Options,
    creating: Option<&Creating>,
) -> (Analysis, Timings) {
    let started = Instant::now();
    let mut entities: Vec<Entity> =
        if opts.entities.is_empty() { select(None, settings).unwrap_or_default() } else { opts.entities.clone() };
    entities.sort();
    entities.dedup();
    entities.sort_by_key(|e| Entity::ALL.iter().position(|x| x == e));

    // Identity first: students and teachers share the Moodle user pool, so every stored link of either is
    // claimed before any matching.
    let users: FxHashMap<&str, &Record> =
        inputs.records(Kind::MoodleUser).iter().map(|r| (r.key.as_str(), r)).collect();
    let courses: FxHashMap<&str, &Record> =
        inputs.records(Kind::MoodleCourse).iter().map(|r| (r.key.as_str(), r)).collect();
    let mut claimed: FxHashSet<&str> = [Entity::Student, Entity::Teacher]
        .iter()
        .flat_map(|e| inputs.links(*e))
        .filter(|l| users.contains_key(l.moodle_id.as_str()))
        .map(|l| l.moodle_id.as_str())
        .collect();
    let students = link::link(
        Entity::Student,
        Rules::Person,
        inputs.records(Kind::Student),
        &users,
        inputs.links(Entity::Student),
        &mut claimed,
    );
    let teachers = link::link(
        Entity::Teacher,
        Rules::Person,
        inputs.records(Kind::Teacher),
        &users,
        inputs.links(Entity::Teacher),
        &mut claimed,
    );
    let mut claimed_courses = FxHashSet::default();
    let classes = link::link(
        Entity::Class,
        Rules::Course,
        inputs.records(Kind::Class),
        &courses,
        inputs.links(Entity::Class),
        &mut claimed_courses,
    );
    let link_time = started.elapsed();

    // Students, teachers and classes next: what they create, their dependants wait for.
    let empty_creating = HashMap::new();
    let world0 = World {
        settings,
        records: &inputs.records,
        states: &inputs.states,
        links: &inputs.links,
        users: &users,
        courses: &courses,
        students: &students,
        teachers: &teachers,
        classes: &classes,
        creating: &empty_creating,
    };
    let mut diffs: BTreeMap<Entity, EntityDiff> = IDENTITY
        .par_iter()
        .filter(|e| entities.contains(e))
        .map(|e| (*e, diff_entity(&world0, *e, opts.collect_agreed)))
        .collect();
    let own;
    let creating = match creating {
        Some(c) => c,
        None => {
            own = diffs.iter().map(|(e, d)| (*e, created_keys(&d.ops))).collect();
            &own
        }
    };
    let world = World { creating, ..world0 };
    let rest: Vec<(Entity, EntityDiff)> = entities
        .par_iter()
        .filter(|e| !IDENTITY.contains(e))
        .map(|e| (*e, diff_entity(&world, *e, opts.collect_agreed)))
        .collect();
    diffs.extend(rest);

    // Assemble in dependency order; link ops of an entity come before its other ops.
    let mut plan = Plan::empty(opts.run_id, entities.clone());
    let mut agreed = BTreeMap::new();
    for e in &entities {
        let linked: Option<&Linked> = match e {
            Entity::Student => Some(&students),
            Entity::Teacher => Some(&teachers),
            Entity::Class => Some(&classes),
            _ => None,
        };
        let Some(mut d) = diffs.remove(e) else { continue };
        if let Some(l) = linked {
            let mut ops = l.ops.clone();
            ops.append(&mut d.ops);
            d.ops = ops;
            d.issues.splice(0..0, l.issues.iter().cloned());
        }
        d.ops.sort_by(|a, b| {
            op_rank(a.action)
                .cmp(&op_rank(b.action))
                .then_with(|| link::cmp_ids(&a.key, &b.key))
                .then(a.target.cmp(&b.target))
        });
        let mut counts = d.counts.clone();
        counts.issues = d.issues.len() as u64;
        for op in &d.ops {
            *counts.ops.entry(op.action.name().to_string()).or_default() += 1;
        }
        plan.counts.insert(*e, counts);
        plan.ops.append(&mut d.ops);
        plan.issues.append(&mut d.issues);
        plan.conflicts.append(&mut d.conflicts);
        agreed.insert(*e, d.agreed);
    }
    for (i, op) in plan.ops.iter_mut().enumerate() {
        op.seq = i as u64 + 1;
    }
    guards::evaluate(&mut plan, inputs, settings, opts.allow_mass_change);
    let diff_time = started.elapsed() - link_time;
    (Analysis { plan, agreed }, Timings { link: link_time, diff: diff_time })
}

/// The keys `ops` create.
fn created_keys<'a>(ops: impl IntoIterator<Item = &'a Op>) -> HashSet<String> {
    ops.into_iter().filter(|o| o.action == Action::Create).map(|o| o.key.clone()).collect()
}

/// Order of ops within an entity: pairings first (apply stores them before writing through them).
fn op_rank(a: Action) -> usize {
    match a {
        Action::Link => 0,
        Action::WriteBack => 1,
        _ => 2,
    }
}

fn diff_entity(w: &World, e: Entity, collect: bool) -> EntityDiff {
    let direction = e.direction(w.settings);
    let policy = w.settings.conflicts;
    let mut pre = EntityDiff::default();
    let mut d = match e {
        Entity::Student | Entity::Teacher => {
            let linked = if e == Entity::Student { w.students } else { w.teachers };
            let rules = entities::PersonRules::new(w, e, &linked.blocked);
            let mut d = Differ::new(e, direction, policy, &rules, collect);
            entities::person_pairs(w, e, &mut d);
            d.finish()
        }
        Entity::Class => {
            let rules = entities::ClassRules { settings: w.settings, blocked: &w.classes.blocked };
            let mut d = Differ::new(e, direction, policy, &rules, collect);
            entities::class_pairs(w, &mut d);
            d.finish()
        }
        Entity::Teaching | Entity::Enrollment => {
            let rules = entities::EnrolRules { entity: e, settings: w.settings, world: w };
            let mut d = Differ::new(e, direction, policy, &rules as &dyn EntityRules, collect);
            if e == Entity::Teaching {
                entities::teaching_pairs(w, &mut d);
            } else {
                entities::enrollment_pairs(w, &mut d, &mut pre);
            }
            d.finish()
        }
        Entity::Grade => {
            let mut d = Differ::new(e, direction, policy, &entities::GradeRules, collect);
            entities::grade_pairs(w, &mut d, &mut pre);
            d.finish()
        }
        Entity::Unit | Entity::Registration | Entity::Payment | Entity::DashboardGrade => {
            let rules = entities::DashboardRules { entity: e, settings: w.settings, world: w };
            let mut d = Differ::new(e, direction, policy, &rules, collect);
            entities::dashboard_pairs(w, e, &mut d);
            d.finish()
        }
    };
    d.issues.splice(0..0, pre.issues);
    d
}

/// `entities` in groups, in dependency order: students, teachers and classes together (the records every entity
/// resolves through), teaching and enrolments together (they share Moodle's enrolments), grades and their
/// dashboard rows together (a row shows what this run brings into the Zoho grade), every other entity alone.
fn groups(entities: &[Entity]) -> Vec<Vec<Entity>> {
    let mut out: Vec<Vec<Entity>> = Vec::new();
    let together = |a: Entity, b: Entity| {
        (IDENTITY.contains(&a) && IDENTITY.contains(&b))
            || [a, b].iter().all(|e| matches!(e, Entity::Teaching | Entity::Enrollment))
            || [a, b].iter().all(|e| matches!(e, Entity::Grade | Entity::DashboardGrade))
    };
    for e in Entity::ALL.into_iter().filter(|e| entities.contains(e)) {
        match out.last_mut() {
            Some(g) if together(g[0], e) => g.push(e),
            _ => out.push(vec![e]),
        }
    }
    out
}

impl Inputs {
    /// Adds the records, links and base of `group` not yet loaded.
    fn load_group<S: Records + ?Sized>(&mut self, store: &S, group: &[Entity]) -> Result<(), SourceError> {
        let mut kinds: Vec<Kind> =
            group.iter().flat_map(|e| <[Kind; 2]>::from(e.kinds())).filter(|k| !self.records.contains_key(k)).collect();
        kinds.sort();
        kinds.dedup();
        self.records.extend(kinds.iter().copied().zip(store.records_of(&kinds)?));
        for e in group {
            if let std::collections::btree_map::Entry::Vacant(slot) = self.links.entry(*e) {
                slot.insert(store.links(*e)?);
                self.states.insert(*e, store.sync_states(*e)?);
            }
        }
        Ok(())
    }

    /// Drops what [`Inputs::load_group`] added: all but the `identity` kinds and the identity entities.
    fn unload_group(&mut self, identity: &[Kind]) {
        self.records.retain(|k, _| identity.contains(k));
        self.links.retain(|e, _| IDENTITY.contains(e));
        self.states.retain(|e, _| IDENTITY.contains(e));
    }
}

/// [`reconcile_for_run`] one group of entities at a time (see [`groups`]), to hold less at once: the records
/// of students, teachers and classes are read once and kept, every other group's read, planned and dropped
/// before the next. `each` gets every group's plan in dependency order — its ops numbered as [`reconcile`]
/// numbers the whole plan's, its counts, issues, conflicts and guard verdicts; the decisions are the whole
/// plan's. When `record` is set and no group has an op or a refusal, the base is recorded from the same pass,
/// as [`reconcile_for_run`] does. Returns the entities whose base was recorded.
pub fn reconcile_each<S, E>(
    store: &S,
    settings: &Settings,
    opts: &Options,
    record: bool,
    mut each: impl FnMut(Plan) -> Result<(), E>,
) -> Result<Vec<Entity>, E>
where
    S: Records + ?Sized,
    E: From<ReconcileError>,
{
    let entities =
        if opts.entities.is_empty() { select(None, settings).unwrap_or_default() } else { opts.entities.clone() };
    let store_err = |e: SourceError| E::from(ReconcileError::Store(e));
    let mut inputs = Inputs::load(store, &[]).map_err(store_err)?;
    let identity: Vec<Kind> = inputs.records.keys().copied().collect();
    let opts = Options { entities: Vec::new(), collect_agreed: record, ..opts.clone() };
    // The identity entities first: what they create, every other group's diff needs.
    let own: Vec<Entity> = entities.iter().copied().filter(|e| IDENTITY.contains(e)).collect();
    let mut identity_plan =
        (!own.is_empty()).then(|| analyse(&inputs, settings, &Options { entities: own, ..opts.clone() }));
    let creating: Creating = match &identity_plan {
        Some(a) => IDENTITY.iter().map(|e| (*e, created_keys(a.plan.ops.iter().filter(|o| o.entity == *e)))).collect(),
        None => Creating::new(),
    };
    let (mut seq, mut quiet) = (0u64, true);
    let (mut links, mut states) = (Vec::new(), Vec::new());
    for group in groups(&entities) {
        let analysis = match identity_plan.take_if(|_| IDENTITY.contains(&group[0])) {
            Some(a) => a,
            None => {
                inputs.load_group(store, &group).map_err(store_err)?;
                let o = Options { entities: group.clone(), collect_agreed: record && quiet, ..opts.clone() };
                analyse_in(&inputs, settings, &o, Some(&creating)).0
            }
        };
        let mut plan = analysis.plan;
        for op in &mut plan.ops {
            op.seq += seq;
        }
        seq += plan.ops.len() as u64;
        quiet &= plan.ops.is_empty() && !plan.refused();
        if record && quiet {
            let (l, s) = base_rows(&inputs, analysis.agreed, opts.run_id);
            links.extend(l);
            states.extend(s);
        } else {
            (links, states) = (Vec::new(), Vec::new());
        }
        inputs.unload_group(&identity);
        each(plan)?;
    }
    if !(record && quiet) {
        return Ok(Vec::new());
    }
    store.put_links(&links).map_err(store_err)?;
    store.put_sync_states(&states).map_err(store_err)?;
    Ok(entities)
}

/// Reconciles once for a run: the plan and, when `record` is set and the plan has no ops, the base recorded
/// from the same pass (the pairs it found agreeing are the base; nothing is reconciled twice). Returns the
/// plan and the entities whose base was recorded.
pub fn reconcile_for_run<S: Records + ?Sized>(
    store: &S,
    settings: &Settings,
    opts: &Options,
    record: bool,
) -> Result<(Plan, Vec<Entity>), ReconcileError> {
    let entities =
        if opts.entities.is_empty() { select(None, settings).unwrap_or_default() } else { opts.entities.clone() };
    let inputs = Inputs::load(store, &entities)?;
    let opts = Options { entities, collect_agreed: record, ..opts.clone() };
    let analysis = analyse(&inputs, settings, &opts);
    if !record || !analysis.plan.ops.is_empty() || analysis.plan.refused() {
        return Ok((analysis.plan, Vec::new()));
    }
    record_agreed(store, &inputs, analysis.agreed, opts.run_id)?;
    Ok((analysis.plan, opts.entities))
}

#[cfg(test)]
mod tests;
