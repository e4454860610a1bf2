//! The per-record diff: one-way (the source's fields are desired) or 3-way against the agreed base
//! (bidirectional). Entity-specific decisions — what a create needs, what a removal becomes — come from an
//! [`EntityRules`]; the engine here only compares.

use std::borrow::Cow;

use serde_json::Value;

use super::plan::{Action, Conflict, Counts, Fingerprints, Issue, IssueKind, Op};
use crate::model::SyncState;
use crate::model::{Entity, Fields, Record, Side};
use crate::settings::{ConflictPolicy, Direction};

/// One key of an entity with whatever each side and the base hold for it.
#[derive(Debug, Clone)]
pub struct Pair<'a> {
    pub key: String,
    /// The Zoho record's id, when the record exists.
    pub zoho_id: Option<String>,
    /// The Moodle record's key, when it exists.
    pub moodle_id: Option<String>,
    /// The compared view of each side (a projection where the entity sees part of a record).
    pub zoho: Option<Cow<'a, Record>>,
    pub moodle: Option<Cow<'a, Record>>,
    /// The stored records' fingerprints (what a stale check compares later).
    pub zoho_fp: Option<&'a str>,
    pub moodle_fp: Option<&'a str>,
    pub base: Option<&'a SyncState>,
    /// Linked (stored or matched): a target-only record is ours, so its source deleted it.
    pub linked: bool,
    /// Passed to every op of this pair (ids apply needs).
    pub refs: Fields,
}

impl<'a> Pair<'a> {
    pub fn new(key: impl Into<String>) -> Pair<'a> {
        Pair {
            key: key.into(),
            zoho_id: None,
            moodle_id: None,
            zoho: None,
            moodle: None,
            zoho_fp: None,
            moodle_fp: None,
            base: None,
            linked: false,
            refs: Fields::new(),
        }
    }

    pub fn with_zoho(mut self, shown: Cow<'a, Record>, stored: &'a Record) -> Pair<'a> {
        self.zoho_id = Some(stored.key.clone());
        self.zoho_fp = Some(stored.fingerprint.as_str());
        self.zoho = Some(shown);
        self
    }

    pub fn with_moodle(mut self, shown: Cow<'a, Record>, stored: &'a Record) -> Pair<'a> {
        self.moodle_id = Some(stored.key.clone());
        self.moodle_fp = Some(stored.fingerprint.as_str());
        self.moodle = Some(shown);
        self
    }

    /// Both sides present with equal fingerprints: nothing will be planned, so nothing else is prepared.
    pub fn agrees(&self) -> bool {
        match (&self.zoho, &self.moodle) {
            (Some(z), Some(m)) => z.fingerprint == m.fingerprint,
            _ => false,
        }
    }

    pub fn side(&self, side: Side) -> Option<&Record> {
        match side {
            Side::Zoho => self.zoho.as_deref(),
            Side::Moodle => self.moodle.as_deref(),
        }
    }

    fn fingerprints(&self) -> Fingerprints {
        Fingerprints {
            zoho: self.zoho_fp.map(str::to_string),
            moodle: self.moodle_fp.map(str::to_string),
            base: self.base.map(|b| b.fingerprint.clone()),
        }
    }
}

/// What an entity rule decides for a create or a removal.
pub enum Outcome {
    Op { action: Action, changes: Fields, before: Fields, reason: String, refs: Fields },
    Issue(IssueKind, String),
    Nothing,
}

/// The entity-specific half of the diff.
pub trait EntityRules: Sync {
    /// `src` exists, the `target` side has nothing for this key.
    fn create(&self, pair: &Pair, target: Side, src: &Record) -> Outcome;
    /// The `target` side holds a record of ours whose source is gone.
    fn remove(&self, pair: &Pair, target: Side, tgt: &Record) -> Outcome;
    /// The action for an update of `target` (students: Suspend / Restore).
    fn update_action(&self, _target: Side, _changes: &Fields, _before: &Fields) -> Action {
        Action::Update
    }
    /// Extra refs for an update of `target` (e.g. the current Zoho status).
    fn update_refs(&self, _pair: &Pair, _target: Side, _changes: &Fields) -> Fields {
        Fields::new()
    }
}

/// A pair both sides agree on: what `baseline` records.
#[derive(Debug, Clone)]
pub struct Agreed {
    pub key: String,
    pub zoho_id: Option<String>,
    pub moodle_id: Option<String>,
    pub fields: Fields,
    pub fingerprint: String,
}

#[derive(Debug, Default)]
pub struct EntityDiff {
    /// Keep the agreeing pairs (only `baseline` needs them; a plain diff only counts them).
    pub collect_agreed: bool,
    pub ops: Vec<Op>,
    pub issues: Vec<Issue>,
    pub conflicts: Vec<Conflict>,
    pub agreed: Vec<Agreed>,
    pub counts: Counts,
}

impl EntityDiff {
    pub fn issue(&mut self, entity: Entity, pair: &Pair, kind: IssueKind, message: String) {
        self.issues.push(Issue {
            entity,
            key: pair.key.clone(),
            zoho_id: pair.zoho_id.clone(),
            moodle_id: pair.moodle_id.clone(),
            kind,
            message,
        });
    }

    fn op(&mut self, entity: Entity, pair: &Pair, target: Side, o: OpParts) {
        let mut refs = pair.refs.clone();
        refs.extend(o.refs);
        self.ops.push(Op {
            seq: 0,
            entity,
            action: o.action,
            target,
            key: pair.key.clone(),
            zoho_id: pair.zoho_id.clone(),
            moodle_id: pair.moodle_id.clone(),
            changes: o.changes,
            before: o.before,
            base: pair.base.map(|b| b.fields.clone()),
            fingerprints: pair.fingerprints(),
            refs,
            reason: o.reason,
            conflict: o.conflict,
        });
    }

    fn outcome(&mut self, entity: Entity, pair: &Pair, target: Side, o: Outcome) {
        match o {
            Outcome::Op { action, changes, before, reason, refs } => {
                self.op(entity, pair, target, OpParts { action, changes, before, reason, refs, conflict: false })
            }
            Outcome::Issue(kind, message) => self.issue(entity, pair, kind, message),
            Outcome::Nothing => {}
        }
    }

    fn agree(&mut self, pair: &Pair, rec: &Record) {
        self.counts.unchanged += 1;
        if !self.collect_agreed {
            return;
        }
        self.agreed.push(Agreed {
            key: pair.key.clone(),
            zoho_id: pair.zoho_id.clone(),
            moodle_id: pair.moodle_id.clone(),
            fields: rec.fields.clone(),
            fingerprint: rec.fingerprint.clone(),
        });
    }
}

struct OpParts {
    action: Action,
    changes: Fields,
    before: Fields,
    reason: String,
    refs: Fields,
    conflict: bool,
}

/// Diffs the pairs of one entity in the given direction, one at a time as they are built.
pub struct Differ<'r> {
    entity: Entity,
    direction: Direction,
    policy: ConflictPolicy,
    rules: &'r dyn EntityRules,
    out: EntityDiff,
}

impl<'r> Differ<'r> {
    pub fn new(
        entity: Entity,
        direction: Direction,
        policy: ConflictPolicy,
        rules: &'r dyn EntityRules,
        collect_agreed: bool,
    ) -> Differ<'r> {
        Differ { entity, direction, policy, rules, out: EntityDiff { collect_agreed, ..EntityDiff::default() } }
    }

    pub fn pair(&mut self, pair: &Pair) {
        let out = &mut self.out;
        out.counts.zoho_records += pair.zoho.is_some() as u64;
        out.counts.moodle_records += pair.moodle.is_some() as u64;
        match self.direction {
            Direction::Disabled => {}
            Direction::ZohoToMoodle => one_way(out, self.entity, pair, Side::Zoho, self.rules),
            Direction::MoodleToZoho => one_way(out, self.entity, pair, Side::Moodle, self.rules),
            Direction::Bidirectional => three_way(out, self.entity, pair, self.policy, self.rules),
        }
    }

    /// The fast path, taken before a pair is built: both sides exist and their compared views are equal
    /// (equal fingerprints), `shown` being either view. Counted and recorded exactly as [`Differ::pair`] would;
    /// `ids` (key, Zoho id, Moodle id) is only called when the agreeing pairs are kept.
    pub fn agreed(&mut self, shown: &Record, ids: impl FnOnce() -> (String, Option<String>, Option<String>)) {
        let out = &mut self.out;
        out.counts.zoho_records += 1;
        out.counts.moodle_records += 1;
        if self.direction == Direction::Disabled {
            return;
        }
        out.counts.unchanged += 1;
        if out.collect_agreed {
            let (key, zoho_id, moodle_id) = ids();
            out.agreed.push(Agreed {
                key,
                zoho_id,
                moodle_id,
                fields: shown.fields.clone(),
                fingerprint: shown.fingerprint.clone(),
            });
        }
    }

    pub fn finish(self) -> EntityDiff {
        self.out
    }
}

fn one_way(out: &mut EntityDiff, entity: Entity, pair: &Pair, source: Side, rules: &dyn EntityRules) {
    let target = source.other();
    match (pair.side(source), pair.side(target)) {
        (Some(src), Some(tgt)) => {
            // The fast path: equal fingerprints mean equal fields; nothing is compared.
            if src.fingerprint == tgt.fingerprint {
                return out.agree(pair, src);
            }
            let (changes, before) = differing(src, tgt);
            if changes.is_empty() {
                return out.agree(pair, src);
            }
            let action = rules.update_action(target, &changes, &before);
            let reason = format!("{} differs from {source} ({})", target, names(&changes));
            let refs = rules.update_refs(pair, target, &changes);
            out.op(entity, pair, target, OpParts { action, changes, before, reason, refs, conflict: false });
        }
        (Some(src), None) => {
            let o = rules.create(pair, target, src);
            out.outcome(entity, pair, target, o);
        }
        (None, Some(tgt)) => {
            // Target-only and never ours (a staff user, a course we do not manage): left alone.
            if pair.linked || pair.base.is_some() {
                let o = rules.remove(pair, target, tgt);
                out.outcome(entity, pair, target, o);
            }
        }
        (None, None) => {}
    }
}

/// Fields of `src` whose value on `tgt` differs: (new values, current target values). A field the target does
/// not have is unknown there (Moodle did not return it): never compared, never written.
fn differing(src: &Record, tgt: &Record) -> (Fields, Fields) {
    let mut changes = Fields::new();
    let mut before = Fields::new();
    for (k, v) in &src.fields {
        let Some(cur) = tgt.fields.get(k) else { continue };
        if cur != v {
            changes.insert(k.clone(), v.clone());
            before.insert(k.clone(), cur.clone());
        }
    }
    (changes, before)
}

fn names(f: &Fields) -> String {
    f.keys().cloned().collect::<Vec<_>>().join(", ")
}

fn three_way(out: &mut EntityDiff, entity: Entity, pair: &Pair, policy: ConflictPolicy, rules: &dyn EntityRules) {
    match (pair.zoho.as_deref(), pair.moodle.as_deref()) {
        (Some(z), Some(m)) => {
            if z.fingerprint == m.fingerprint {
                return out.agree(pair, z);
            }
            let base = pair.base.map(|b| &b.fields);
            let conflicts_before = out.conflicts.len();
            let mut to_moodle = (Fields::new(), Fields::new());
            let mut to_zoho = (Fields::new(), Fields::new());
            let (mut moodle_conflict, mut zoho_conflict) = (false, false);
            let mut keys: Vec<&String> = z.fields.keys().chain(m.fields.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                // A field one side did not return is unknown: not compared.
                let (Some(zv), Some(mv)) = (z.fields.get(k), m.fields.get(k)) else { continue };
                if zv == mv {
                    continue; // the same on both sides (maybe both changed alike): the base moves
                }
                let bv = base.map(|b| b.get(k.as_str()).unwrap_or(&Value::Null));
                let winner = match bv {
                    Some(bv) if zv == bv => Some(Side::Moodle), // only Moodle changed it
                    Some(bv) if mv == bv => Some(Side::Zoho),   // only Zoho changed it
                    _ => {
                        // Both changed it differently, or first contact: a conflict, always reported.
                        let w = settle(policy, z, m);
                        out.conflicts.push(Conflict {
                            entity,
                            key: pair.key.clone(),
                            zoho_id: pair.zoho_id.clone(),
                            moodle_id: pair.moodle_id.clone(),
                            field: k.clone(),
                            zoho_value: zv.clone(),
                            moodle_value: mv.clone(),
                            base_value: bv.cloned(),
                            policy,
                            winner: w,
                        });
                        out.counts.conflicts += 1;
                        match w {
                            Some(Side::Zoho) => moodle_conflict = true,
                            Some(Side::Moodle) => zoho_conflict = true,
                            None => {}
                        }
                        w
                    }
                };
                match winner {
                    Some(Side::Zoho) => {
                        to_moodle.0.insert(k.clone(), zv.clone());
                        to_moodle.1.insert(k.clone(), mv.clone());
                    }
                    Some(Side::Moodle) => {
                        to_zoho.0.insert(k.clone(), mv.clone());
                        to_zoho.1.insert(k.clone(), zv.clone());
                    }
                    None => {}
                }
            }
            let mut wrote = false;
            for (target, (changes, before), conflict) in
                [(Side::Zoho, to_zoho, zoho_conflict), (Side::Moodle, to_moodle, moodle_conflict)]
            {
                if changes.is_empty() {
                    continue;
                }
                wrote = true;
                let action = rules.update_action(target, &changes, &before);
                let reason = if conflict {
                    format!("conflict on {} settled by conflicts.policy {}", names(&changes), policy_name(policy))
                } else if base.is_some() {
                    format!("{} changed on {} since the last sync", names(&changes), target.other())
                } else {
                    format!("{} differs ({} side wins)", names(&changes), target.other())
                };
                let refs = rules.update_refs(pair, target, &changes);
                out.op(entity, pair, target, OpParts { action, changes, before, reason, refs, conflict });
            }
            if !wrote && out.conflicts.len() == conflicts_before {
                // Both sides made the same changes: nothing to write, the base moves.
                out.agree(pair, z);
            }
        }
        // Missing in Moodle: with a base, Moodle removed it; without, it is new in Zoho.
        (Some(z), None) => {
            let o = if pair.base.is_some() {
                rules.remove(pair, Side::Zoho, z)
            } else {
                rules.create(pair, Side::Moodle, z)
            };
            let target = if pair.base.is_some() { Side::Zoho } else { Side::Moodle };
            out.outcome(entity, pair, target, o);
        }
        // Missing in Zoho: with a base, Zoho deleted it; without, it is new in Moodle.
        (None, Some(m)) => {
            let o = if pair.base.is_some() || pair.linked {
                rules.remove(pair, Side::Moodle, m)
            } else {
                rules.create(pair, Side::Zoho, m)
            };
            let target = if pair.base.is_some() || pair.linked { Side::Moodle } else { Side::Zoho };
            out.outcome(entity, pair, target, o);
        }
        (None, None) => {}
    }
}

/// Who wins a conflict under `policy`; `None` = report only.
pub fn settle(policy: ConflictPolicy, z: &Record, m: &Record) -> Option<Side> {
    match policy {
        ConflictPolicy::ZohoWins => Some(Side::Zoho),
        ConflictPolicy::MoodleWins => Some(Side::Moodle),
        ConflictPolicy::ReportOnly => None,
        ConflictPolicy::Newest => {
            let zt = z
                .ref_str("modified_time")
                .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                .map(|t| t.timestamp());
            let mt = m.refs.get("timemodified").and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()));
            // Unknown times, and ties, go to Zoho: it is the registry's record.
            match (zt, mt) {
                (Some(zt), Some(mt)) if mt > zt => Some(Side::Moodle),
                _ => Some(Side::Zoho),
            }
        }
    }
}

pub fn policy_name(p: ConflictPolicy) -> &'static str {
    match p {
        ConflictPolicy::ZohoWins => "zoho_wins",
        ConflictPolicy::MoodleWins => "moodle_wins",
        ConflictPolicy::Newest => "newest",
        ConflictPolicy::ReportOnly => "report_only",
    }
}
