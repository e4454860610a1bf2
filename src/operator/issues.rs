//! A run's issues by cause. What a policy leaves out on purpose — records waiting for a person the policy does
//! not create (a student not active in Zoho gets no Moodle account, so their enrolments, grades, registrations
//! and payments wait) — is counted as skipped by policy, not as an issue. The rest are grouped by entity and
//! kind, each group with its count, its records and the command that lists them.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{Entity, Kind};
use crate::reconcile::{Issue, IssueKind};
use crate::store::{RecordStore, StoreError};

/// What the summary, `runs show` and the HTML report say about a run's issues.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IssueSummary {
    /// Records a policy leaves out on purpose (not issues).
    pub skipped_by_policy: u64,
    /// The same by entity.
    pub policy: BTreeMap<Entity, u64>,
    /// The issues, by cause (largest first).
    pub groups: Vec<IssueGroup>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssueGroup {
    /// `entity.kind`, e.g. `student.duplicate`: what `runs show RUN --issues CAUSE` takes.
    pub cause: String,
    pub entity: Entity,
    pub kind: IssueKind,
    /// What the cause means, for a person.
    pub meaning: String,
    pub count: u64,
    /// The command that lists these records (the run id filled in once known).
    pub command: String,
    pub records: Vec<IssueRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssueRecord {
    pub key: String,
    pub zoho_id: Option<String>,
    pub moodle_id: Option<String>,
    pub message: String,
}

impl IssueSummary {
    /// Issues proper (skipped-by-policy records excluded).
    pub fn count(&self) -> u64 {
        self.groups.iter().map(|g| g.count).sum()
    }

    pub fn group(&self, cause: &str) -> Option<&IssueGroup> {
        self.groups.iter().find(|g| g.cause == cause)
    }

    /// Lines for the run summary: the policy count, then one line per cause with its command.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        if self.skipped_by_policy > 0 {
            let by: Vec<String> = self.policy.iter().map(|(e, n)| format!("{e} {n}")).collect();
            let _ = writeln!(
                out,
                "skipped by policy: {} (waiting for people the policy does not create, e.g. students not active \
                 in Zoho: {})",
                self.skipped_by_policy,
                by.join(", ")
            );
        }
        for g in &self.groups {
            let _ = writeln!(out, "  {:>6}  {:<26} {}  → {}", g.count, g.cause, g.meaning, g.command);
        }
        out
    }
}

/// What an issue kind means, in a sentence.
pub fn meaning(entity: Entity, kind: IssueKind) -> String {
    let e = entity.name();
    match kind {
        IssueKind::Ambiguous => format!("{e}s matching several unlinked Moodle records (never guessed)"),
        IssueKind::Duplicate => format!("{e}s sharing an email, username or natural key with another record"),
        IssueKind::Incomplete => format!("{e}s lacking what the other side requires (an email, a name, a student)"),
        IssueKind::Unresolved => {
            format!("{e}s waiting for a person or class with no Moodle account or course yet (see its own issue)")
        }
        IssueKind::RemovalIgnored => format!("{e}s gone from one side, left alone by deletions.policy"),
        IssueKind::Orphan => format!("{e}s in Zoho without a Moodle grade (reported, never deleted)"),
        IssueKind::Mismatch => format!("{e}s whose Moodle id in Zoho points at a missing or other record"),
    }
}

/// The cause name of an issue.
pub fn cause(entity: Entity, kind: IssueKind) -> String {
    format!("{}.{}", entity.name(), kind.name())
}

/// The person (Zoho id and kind) an unresolved issue waits for, when it waits for one.
fn waits_for(issue: &Issue, owners: &HashMap<Kind, HashMap<String, String>>) -> Option<(Kind, String)> {
    match issue.entity {
        Entity::Enrollment | Entity::Grade => Some((Kind::Student, issue.key.split('|').next()?.to_string())),
        Entity::Teaching => Some((Kind::Teacher, issue.key.split('|').next()?.to_string())),
        Entity::Registration | Entity::Payment => {
            let (zk, _) = issue.entity.kinds();
            Some((Kind::Student, owners.get(&zk)?.get(&issue.key)?.clone()))
        }
        _ => None,
    }
}

/// Sorts a plan's issues into skipped-by-policy and groups by cause. `run_id` names the listing command.
pub fn summarise<S: RecordStore + ?Sized>(
    store: &S,
    run_id: Option<i64>,
    issues: &[Issue],
) -> Result<IssueSummary, StoreError> {
    let unresolved = issues.iter().any(|i| i.kind == IssueKind::Unresolved);
    // People not active in Zoho (the policy creates no account for them), and the student of each finance
    // record — loaded only when some issue waits for someone.
    let mut inactive: HashMap<Kind, std::collections::HashSet<String>> = HashMap::new();
    let mut owners: HashMap<Kind, HashMap<String, String>> = HashMap::new();
    if unresolved {
        for k in [Kind::Student, Kind::Teacher] {
            let set = store
                .records(k)?
                .into_iter()
                .filter(|r| r.field("suspended") == &Value::Bool(true))
                .map(|r| r.key)
                .collect();
            inactive.insert(k, set);
        }
        for k in [Kind::Registration, Kind::Payment] {
            if issues.iter().any(|i| i.kind == IssueKind::Unresolved && i.entity.kinds().0 == k) {
                let map = store
                    .records(k)?
                    .into_iter()
                    .filter_map(|r| Some((r.key.clone(), r.field_str("student")?.to_string())))
                    .collect();
                owners.insert(k, map);
            }
        }
    }
    let mut sum = IssueSummary::default();
    let mut groups: BTreeMap<(Entity, IssueKind), Vec<IssueRecord>> = BTreeMap::new();
    for i in issues {
        if i.kind == IssueKind::Unresolved {
            if let Some((k, who)) = waits_for(i, &owners) {
                if inactive.get(&k).is_some_and(|s| s.contains(&who)) {
                    sum.skipped_by_policy += 1;
                    *sum.policy.entry(i.entity).or_default() += 1;
                    continue;
                }
            }
        }
        groups.entry((i.entity, i.kind)).or_default().push(IssueRecord {
            key: i.key.clone(),
            zoho_id: i.zoho_id.clone(),
            moodle_id: i.moodle_id.clone(),
            message: i.message.clone(),
        });
    }
    let run = run_id.map(|r| r.to_string()).unwrap_or_else(|| "RUN".into());
    sum.groups = groups
        .into_iter()
        .map(|((entity, kind), records)| {
            let cause = cause(entity, kind);
            IssueGroup {
                command: format!("zmsync runs show {run} --issues {cause}"),
                cause,
                entity,
                kind,
                meaning: meaning(entity, kind),
                count: records.len() as u64,
                records,
            }
        })
        .collect();
    sum.groups.sort_by(|a, b| b.count.cmp(&a.count).then(a.cause.cmp(&b.cause)));
    Ok(sum)
}
