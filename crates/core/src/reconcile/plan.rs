//! The plan: what to write, to which side, and why. A plan is data — it can be printed, saved as JSON,
//! reviewed and applied later. Every op carries the fingerprints it was computed from, so that applying a
//! saved plan can skip the ops whose records moved since ([`StaleCheck`]).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::source::{Records, SourceError};
use crate::model::{Entity, Fields, Kind, Side};

/// What an op does to its target record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    /// Only the fields in `changes`.
    Update,
    /// A user's `suspended` goes false → true (a Zoho status change, or a deletion under `suspend`).
    Suspend,
    /// A user's `suspended` goes true → false.
    Restore,
    /// A course becomes invisible (a class deleted in Zoho under `hide`).
    Hide,
    /// A Moodle enrolment is created.
    Enrol,
    /// A Moodle enrolment is removed.
    Unenrol,
    /// The target record is deleted (only where `deletions.policy` says `delete`).
    Delete,
    /// The Moodle id is written into Zoho's Student_Moodle_ID / Teacher_Moodle_ID / Moodle_Course_ID. Apply
    /// stores the link with it.
    WriteBack,
    /// A pairing found by matching (id number, email) that only needs storing in `links`; nothing is sent.
    Link,
}

impl Action {
    pub const ALL: [Action; 10] = [
        Action::Create,
        Action::Update,
        Action::Suspend,
        Action::Restore,
        Action::Hide,
        Action::Enrol,
        Action::Unenrol,
        Action::Delete,
        Action::WriteBack,
        Action::Link,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Suspend => "suspend",
            Action::Restore => "restore",
            Action::Hide => "hide",
            Action::Enrol => "enrol",
            Action::Unenrol => "unenrol",
            Action::Delete => "delete",
            Action::WriteBack => "write_back",
            Action::Link => "link",
        }
    }

    /// Whether the op takes something away from people (what the mass-change guard counts).
    pub fn is_removal(self) -> bool {
        matches!(self, Action::Suspend | Action::Hide | Action::Unenrol | Action::Delete)
    }
}

/// The fingerprints an op was computed from. `None`: the record did not exist.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprints {
    pub zoho: Option<String>,
    pub moodle: Option<String>,
    pub base: Option<String>,
}

/// One write to one record on one side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    pub seq: u64,
    pub entity: Entity,
    pub action: Action,
    pub target: Side,
    /// The link key: the Zoho id for students, teachers, classes, units, registrations and payments;
    /// `{student_zoho_id}|{class_zoho_id}` for enrolments and grades; `{teacher_zoho_id}|{class_zoho_id}` for
    /// teaching. Also the `sync_state` key.
    pub key: String,
    /// The Zoho record's id, when it is known: the record exists, or existed and the link or base still
    /// names it (a student deleted in Zoho keeps its id). `None`: it never existed in Zoho.
    pub zoho_id: Option<String>,
    /// The Moodle record's key (user or course id, `courseid:userid`, dashboard `zoho_id`), known as above:
    /// an enrolment removed in Moodle keeps its `courseid:userid`. `None`: it never existed in Moodle.
    /// Whether the record exists now is in `fingerprints` (`None` = absent when planned).
    pub moodle_id: Option<String>,
    /// Field → the value the target gets (for a create: every field).
    pub changes: Fields,
    /// Field → the target's current value (empty for a create).
    pub before: Fields,
    /// The agreed base of the 3-way diff, when there is one.
    pub base: Option<Fields>,
    pub fingerprints: Fingerprints,
    /// What apply needs besides the fields: Moodle `userid`/`courseid`/`roleid`, the Zoho lookups
    /// (`student_zoho_id`, `class_zoho_id`, `unit_id`), the current Zoho `status`, the dashboard `row_id`…
    #[serde(default, skip_serializing_if = "Fields::is_empty")]
    pub refs: Fields,
    pub reason: String,
    /// At least one field of this op settles a conflict (see `Plan::conflicts`).
    pub conflict: bool,
}

impl Op {
    /// The Zoho kind and the Moodle kind whose records this op was computed from.
    pub fn kinds(&self) -> (Kind, Kind) {
        self.entity.kinds()
    }
}

/// Something reconcile will not turn into an op; reported so a person can act.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Issue {
    pub entity: Entity,
    pub key: String,
    pub zoho_id: Option<String>,
    pub moodle_id: Option<String>,
    pub kind: IssueKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueKind {
    /// Several unlinked Moodle records match (same email or id number): never guessed.
    Ambiguous,
    /// Another Zoho record with a smaller id has the same email / natural key; this one is not synced.
    Duplicate,
    /// The record lacks what the other side requires (an email, a name…).
    Incomplete,
    /// A reference (student, class, teacher) has no Moodle counterpart yet.
    Unresolved,
    /// A target-only record left alone because `deletions.policy` says `ignore` (or the policy does not fit).
    RemovalIgnored,
    /// A Zoho grade without a Moodle grade: reported, never deleted.
    Orphan,
    /// The Zoho write-back points at a Moodle id that does not exist or belongs to another record.
    Mismatch,
}

impl IssueKind {
    pub fn name(self) -> &'static str {
        match self {
            IssueKind::Ambiguous => "ambiguous",
            IssueKind::Duplicate => "duplicate",
            IssueKind::Incomplete => "incomplete",
            IssueKind::Unresolved => "unresolved",
            IssueKind::RemovalIgnored => "removal_ignored",
            IssueKind::Orphan => "orphan",
            IssueKind::Mismatch => "mismatch",
        }
    }
}

/// Both sides changed the same field differently (or differ at first contact). Always reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conflict {
    pub entity: Entity,
    pub key: String,
    pub zoho_id: Option<String>,
    pub moodle_id: Option<String>,
    pub field: String,
    pub zoho_value: serde_json::Value,
    pub moodle_value: serde_json::Value,
    pub base_value: Option<serde_json::Value>,
    /// The `conflicts.policy` that settled it.
    pub policy: crate::settings::ConflictPolicy,
    /// The side whose value wins; `None` under `report_only` (nothing is written).
    pub winner: Option<Side>,
}

/// The outcome of one safety check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardVerdict {
    pub entity: Entity,
    pub guard: Guard,
    /// Removals planned (mass change) or records on the empty side (0).
    pub count: u64,
    /// The limit (mass change) or the records the store expects (empty side).
    pub limit: u64,
    pub outcome: GuardOutcome,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guard {
    MassChange,
    EmptySide,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuardOutcome {
    /// Over the limit, let through by `--allow-mass-change`.
    Allowed,
    Refused,
}

/// Per-entity tallies, for the summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    pub zoho_records: u64,
    pub moodle_records: u64,
    /// Pairs that agree (most skipped on equal fingerprints without a field comparison).
    pub unchanged: u64,
    /// Ops per action name.
    pub ops: BTreeMap<String, u64>,
    pub issues: u64,
    pub conflicts: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub run_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    /// The entities this plan covers (`--module`), in dependency order.
    pub entities: Vec<Entity>,
    pub ops: Vec<Op>,
    pub issues: Vec<Issue>,
    pub conflicts: Vec<Conflict>,
    pub guards: Vec<GuardVerdict>,
    pub counts: BTreeMap<Entity, Counts>,
}

impl Plan {
    pub fn empty(run_id: Option<i64>, entities: Vec<Entity>) -> Plan {
        Plan {
            run_id,
            created_at: Utc::now(),
            entities,
            ops: Vec::new(),
            issues: Vec::new(),
            conflicts: Vec::new(),
            guards: Vec::new(),
            counts: BTreeMap::new(),
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a plan serialises")
    }

    pub fn from_json(text: &str) -> Result<Plan, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Whether a guard refused this plan (it must not be applied).
    pub fn refused(&self) -> bool {
        self.guards.iter().any(|g| g.outcome == GuardOutcome::Refused)
    }

    /// The ops whose records changed since the plan was made (apply skips them). Reads the store.
    pub fn stale_ops<S: Records + ?Sized>(&self, store: &S) -> Result<Vec<u64>, SourceError> {
        let check = StaleCheck::load(store, &self.entities)?;
        Ok(self.ops.iter().filter(|op| check.is_stale(op)).map(|op| op.seq).collect())
    }

    /// One screen for a person: counts per entity, guards, then the ops table (at most `max_ops` rows).
    pub fn summary_text(&self, max_ops: usize) -> String {
        let mut out = String::new();
        let run = self.run_id.map(|r| format!("run {r}, ")).unwrap_or_default();
        let _ = writeln!(
            out,
            "plan ({run}made {}): {} ops, {} conflicts, {} issues",
            self.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
            self.ops.len(),
            self.conflicts.len(),
            self.issues.len()
        );
        out.push_str(&counts_table(&self.counts));
        for g in &self.guards {
            let _ = writeln!(out, "guard: {}", g.message);
        }
        if !self.ops.is_empty() {
            let _ = writeln!(
                out,
                "\n{:>5}  {:<12} {:<10} {:<7} {:<28} {:<28} reason",
                "seq", "entity", "action", "target", "key", "fields"
            );
            for op in self.ops.iter().take(max_ops) {
                let fields = op.changes.keys().cloned().collect::<Vec<_>>().join(",");
                let _ = writeln!(
                    out,
                    "{:>5}  {:<12} {:<10} {:<7} {:<28} {:<28} {}{}",
                    op.seq,
                    op.entity.name(),
                    op.action.name(),
                    op.target.name(),
                    clip(&op.key, 28),
                    clip(&fields, 28),
                    if op.conflict { "[conflict] " } else { "" },
                    op.reason
                );
            }
            if self.ops.len() > max_ops {
                let _ = writeln!(out, "… {} more (see the JSON or `zmsync diff`)", self.ops.len() - max_ops);
            }
        }
        for i in self.issues.iter().take(max_ops) {
            let _ = writeln!(out, "issue: {} {} [{}]: {}", i.entity, i.key, i.kind.name(), i.message);
        }
        if self.issues.len() > max_ops {
            let _ = writeln!(out, "… {} more issues", self.issues.len() - max_ops);
        }
        out
    }
}

/// The per-entity counts as a small text table.
pub fn counts_table(counts: &BTreeMap<Entity, Counts>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:>7} {:>7} {:>9}  {:<40} {:>9} {:>6}",
        "entity", "zoho", "moodle", "unchanged", "ops", "conflicts", "issues"
    );
    for (e, c) in counts {
        let ops = if c.ops.is_empty() {
            "-".to_string()
        } else {
            c.ops.iter().map(|(a, n)| format!("{a} {n}")).collect::<Vec<_>>().join(", ")
        };
        let _ = writeln!(
            out,
            "{:<12} {:>7} {:>7} {:>9}  {:<40} {:>9} {:>6}",
            e.name(),
            c.zoho_records,
            c.moodle_records,
            c.unchanged,
            ops,
            c.conflicts,
            c.issues
        );
    }
    out
}

fn clip(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

/// The current fingerprints of every record a plan's ops may touch, to tell stale ops from fresh ones.
/// Apply builds one right before writing and asks [`StaleCheck::is_stale`] per op.
pub struct StaleCheck {
    records: HashMap<Kind, HashMap<String, String>>,
    base: HashMap<Entity, HashMap<String, String>>,
}

impl StaleCheck {
    pub fn load<S: Records + ?Sized>(store: &S, entities: &[Entity]) -> Result<StaleCheck, SourceError> {
        let mut records = HashMap::new();
        let mut base = HashMap::new();
        for e in entities {
            let (z, m) = e.kinds();
            for kind in [z, m] {
                if let std::collections::hash_map::Entry::Vacant(v) = records.entry(kind) {
                    v.insert(store.records(kind)?.into_iter().map(|r| (r.key, r.fingerprint)).collect());
                }
            }
            base.insert(*e, store.sync_states(*e)?.into_iter().map(|s| (s.key, s.fingerprint)).collect());
        }
        Ok(StaleCheck { records, base })
    }

    /// From fingerprints already at hand: per kind `key → fingerprint`, per entity `base key → fingerprint`.
    pub fn from_parts(
        records: HashMap<Kind, HashMap<String, String>>,
        base: HashMap<Entity, HashMap<String, String>>,
    ) -> StaleCheck {
        StaleCheck { records, base }
    }

    /// An op is stale when a record it was computed from changed, appeared or vanished since, or its base
    /// moved. A stale op must be skipped (the next run plans it afresh).
    pub fn is_stale(&self, op: &Op) -> bool {
        let (zk, mk) = op.kinds();
        let current = |kind: Kind, id: &Option<String>| -> Option<String> {
            id.as_ref().and_then(|id| self.records.get(&kind).and_then(|m| m.get(id)).cloned())
        };
        // Teaching's Zoho record is the class; its fingerprint is over the class fields.
        let zoho_now = current(zk, &op.zoho_id);
        let moodle_now = current(mk, &op.moodle_id);
        let base_now = self.base.get(&op.entity).and_then(|m| m.get(&op.key)).cloned();
        // A record the op expects to be absent must still be absent, whatever its id would be.
        let zoho_stale = match (&op.fingerprints.zoho, op.zoho_id.is_some()) {
            (Some(fp), true) => zoho_now.as_deref() != Some(fp.as_str()),
            (None, _) => false,
            (Some(_), false) => false,
        };
        let moodle_stale = match (&op.fingerprints.moodle, op.moodle_id.is_some()) {
            (Some(fp), true) => moodle_now.as_deref() != Some(fp.as_str()),
            _ => false,
        };
        zoho_stale || moodle_stale || base_now != op.fingerprints.base
    }
}
