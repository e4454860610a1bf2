//! What the entities share: records by key, views of a record, the wording of removals, and the one pairing
//! of entities keyed by student and class (enrolments and grades).

use std::borrow::Cow;
use std::fmt::Write as _;

use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{json, Value};

use super::World;
use crate::model::{Entity, Fields, Kind, Record};
use crate::reconcile::diff::{Differ, EntityDiff, Outcome, Pair};
use crate::reconcile::link::{sort_by_id, IdMap};
use crate::reconcile::plan::{Action, IssueKind};
use crate::settings::RemovalAction;

/// Records of one kind by their key, remembering which were paired (the rest are the other side's extras).
pub(super) struct ByKey<'a> {
    records: Vec<&'a Record>,
    index: FxHashMap<&'a str, usize>,
    seen: Vec<bool>,
    buf: String,
}

impl<'a> ByKey<'a> {
    pub(super) fn new(records: Vec<&'a Record>) -> ByKey<'a> {
        let index = records.iter().enumerate().map(|(i, r)| (r.key.as_str(), i)).collect();
        ByKey { seen: vec![false; records.len()], records, index, buf: String::new() }
    }

    /// The record with `key`, now marked as paired.
    pub(super) fn take(&mut self, key: &str) -> Option<&'a Record> {
        let i = *self.index.get(key)?;
        self.seen[i] = true;
        Some(self.records[i])
    }

    /// The Moodle enrolment or grade `courseid:userid` (when both are linked), now marked as paired.
    pub(super) fn take_course_user(&mut self, course: Option<&str>, user: Option<&str>) -> Option<&'a Record> {
        let (course, user) = (course?, user?);
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        let _ = write!(buf, "{course}:{user}");
        let found = self.take(&buf);
        self.buf = buf;
        found
    }

    /// The records whose key was not taken, in their order. A key held by several records (never so in a
    /// store) yields its last record only when `one_per_key`, else all of them.
    pub(super) fn untaken(&self, one_per_key: bool) -> Vec<&'a Record> {
        let last = |r: &Record| self.index.get(r.key.as_str()).copied().unwrap_or_default();
        self.records
            .iter()
            .enumerate()
            .filter(|(i, r)| !self.seen[*i] && if one_per_key { last(r) == *i } else { !self.seen[last(r)] })
            .map(|(_, r)| *r)
            .collect()
    }
}

/// Whether the view of `r` restricted to `names` (see [`view`]) equals `shown` — what equal fingerprints
/// would say — without building the view.
pub(super) fn view_equals(shown: &Record, r: &Record, names: &[&str]) -> bool {
    if r.fields.len() == names.len() && names.iter().all(|n| r.fields.contains_key(*n)) {
        return shown.fingerprint == r.fingerprint;
    }
    shown.fields.len() == names.len() && names.iter().all(|n| shown.fields.get(*n) == Some(r.field(n)))
}

/// The Moodle view of a record restricted to `names`, borrowed when it has exactly those fields.
pub(super) fn view<'a>(r: &'a Record, names: &[&str]) -> Cow<'a, Record> {
    if r.fields.len() == names.len() && names.iter().all(|n| r.fields.contains_key(*n)) {
        Cow::Borrowed(r)
    } else {
        Cow::Owned(r.project(names))
    }
}

/// `names` without the fields `r` does not have (unknown: Moodle did not return them).
pub(super) fn known_names<'n>(r: &Record, names: &'n [&'n str]) -> Cow<'n, [&'n str]> {
    if names.iter().all(|n| r.fields.contains_key(*n)) {
        Cow::Borrowed(names)
    } else {
        Cow::Owned(names.iter().copied().filter(|n| r.fields.contains_key(*n)).collect())
    }
}

pub(super) fn id_num(s: Option<&str>) -> Value {
    s.and_then(|s| s.parse::<i64>().ok()).map(|n| json!(n)).unwrap_or(Value::Null)
}

/// A removal that writes no field: `action` under the deletion policy, with its reason.
pub(super) fn removal(action: Action, entity: Entity, policy: RemovalAction, what: &str) -> Outcome {
    op(action, Fields::new(), Fields::new(), removal_reason(entity, policy, what), Fields::new())
}

pub(super) fn removal_reason(entity: Entity, policy: RemovalAction, what: &str) -> String {
    format!("{what}; deletions.policy.{} = {}", policy_key(entity), removal_name(policy))
}

fn policy_key(entity: Entity) -> &'static str {
    match entity {
        Entity::Student => "student",
        Entity::Teacher => "teacher",
        Entity::Class => "class",
        Entity::Teaching | Entity::Enrollment => "enrollment",
        _ => "finance",
    }
}

fn removal_name(a: RemovalAction) -> &'static str {
    match a {
        RemovalAction::Ignore => "ignore",
        RemovalAction::Suspend => "suspend",
        RemovalAction::Hide => "hide",
        RemovalAction::Unenrol => "unenrol",
        RemovalAction::Delete => "delete",
    }
}

pub(super) fn ignored(entity: Entity, policy: RemovalAction, what: &str) -> Outcome {
    let msg = match policy {
        RemovalAction::Ignore => format!("{what}; left as it is (deletions.policy.{} = ignore)", policy_key(entity)),
        other => format!(
            "{what}; deletions.policy.{} = {} does not apply to a {}, so nothing is done",
            policy_key(entity),
            removal_name(other),
            entity.name()
        ),
    };
    Outcome::Issue(IssueKind::RemovalIgnored, msg)
}

pub(super) fn op(action: Action, changes: Fields, before: Fields, reason: impl Into<String>, refs: Fields) -> Outcome {
    Outcome::Op { action, changes, before, reason: reason.into(), refs }
}

pub(super) fn one(k: &str, v: Value) -> Fields {
    let mut f = Fields::new();
    f.insert(k.into(), v);
    f
}

/// The Zoho natural key of a Moodle `courseid:userid` through the class and person links.
pub(super) fn natural_key(rec: &Record, people: &IdMap, classes: &IdMap) -> Option<(String, String)> {
    let course = ref_id(rec, "courseid")?;
    let user = ref_id(rec, "userid")?;
    Some((people.zoho(&user)?.to_string(), classes.zoho(&course)?.to_string()))
}

/// Whether a student and a class both still exist in Zoho. A link outlives its Zoho record (that is how a
/// deletion is seen), so a Moodle enrolment or grade can resolve to a student deleted in Zoho: creating its
/// Zoho record would be planned every run and skipped by apply every run (issue #19).
fn in_zoho<'w>(w: &World<'w>) -> impl Fn(&str, &str) -> bool + 'w {
    let students: FxHashSet<&'w str> = w.records(Kind::Student).iter().map(|r| r.key.as_str()).collect();
    let classes: FxHashSet<&'w str> = w.records(Kind::Class).iter().map(|r| r.key.as_str()).collect();
    move |s, c| students.contains(s) && classes.contains(c)
}

pub(super) fn ref_id(rec: &Record, name: &str) -> Option<String> {
    match rec.refs.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The (student, class) natural key of a Zoho enrolment or grade, or `None` once it is reported as an issue:
/// a missing lookup, or a second record of a student and class already seen (records come in id order, so
/// the older one is the one synced; `duplicate` words the issue from that older record's id). `seen`: the
/// Zoho id of the first record of each (student, class).
fn student_class_key<'r>(
    z: &'r Record,
    entity: Entity,
    seen: &mut FxHashMap<(&'r str, &'r str), &'r str>,
    diff: &mut EntityDiff,
    duplicate: impl Fn(&str) -> String,
) -> Option<(&'r str, &'r str)> {
    let (Some(s), Some(c)) = (z.ref_str("student_id"), z.ref_str("class_id")) else {
        let p = Pair::new(&z.key).with_zoho(Cow::Borrowed(z), z);
        diff.issue(entity, &p, IssueKind::Incomplete, "no student or no class in Zoho".into());
        return None;
    };
    match seen.entry((s, c)) {
        std::collections::hash_map::Entry::Occupied(first) => {
            let p = Pair::new(format!("{s}|{c}")).with_zoho(Cow::Borrowed(z), z);
            diff.issue(entity, &p, IssueKind::Duplicate, duplicate(first.get()));
            None
        }
        std::collections::hash_map::Entry::Vacant(v) => {
            v.insert(&z.key);
            Some((s, c))
        }
    }
}

/// How an entity keyed by (student, class) pairs: its Moodle records by `courseid:userid`, and the refs it
/// gives each pair. Enrolments and grades share [`pair_by_student_class`]; only these differ.
pub(super) struct ByStudentClass<'a, Z, M> {
    pub entity: Entity,
    /// The Moodle records of the entity, by `courseid:userid`.
    pub moodle: ByKey<'a>,
    /// Whether a Zoho record is ours even without a Moodle record (a Zoho grade without one is reported).
    pub linked: bool,
    /// The issue of a second Zoho record of a student and class, from the older record's id.
    pub duplicate: fn(&str) -> String,
    /// The refs of a pair with a Zoho record: (student, class, Moodle user id, Moodle course id, Moodle record).
    pub zoho_refs: Z,
    /// The refs of a Moodle record no Zoho record took: (student, class, Moodle record).
    pub moodle_refs: M,
}

/// Pairs the Zoho records of `by.entity` (in id order, one per student and class) with Moodle's records of
/// the same student and class through the links, then pairs the Moodle records left over by their student
/// and class, when both are linked.
pub(super) fn pair_by_student_class<'a, Z, M>(
    w: &World<'a>,
    d: &mut Differ,
    pre: &mut EntityDiff,
    mut by: ByStudentClass<'a, Z, M>,
) where
    Z: Fn(&str, &str, Option<&str>, Option<&str>, Option<&'a Record>) -> Fields,
    M: Fn(&str, &str, &'a Record) -> Fields,
{
    let entity = by.entity;
    let mut base = w.base(entity);
    let mut zoho: Vec<&'a Record> = w.records(entity.kinds().0).iter().collect();
    sort_by_id(&mut zoho, |r| r.key.as_str());
    let mut by_key = FxHashMap::default();
    by_key.reserve(zoho.len());
    for z in zoho {
        let Some((s, c)) = student_class_key(z, entity, &mut by_key, pre, by.duplicate) else {
            continue;
        };
        let (uid, cid) = (w.students.map.moodle(s), w.classes.map.moodle(c));
        let found = by.moodle.take_course_user(cid, uid);
        if let Some(m) = found.filter(|m| m.fingerprint == z.fingerprint) {
            d.agreed(z, || (format!("{s}|{c}"), Some(z.key.clone()), Some(m.key.clone())));
            continue;
        }
        let key = format!("{s}|{c}");
        let mut p = Pair::new(&key).with_zoho(Cow::Borrowed(z), z);
        if let Some(m) = found {
            p = p.with_moodle(Cow::Borrowed(m), m);
        }
        p.refs = (by.zoho_refs)(s, c, uid, cid, found);
        p.linked = by.linked;
        p.base = base.get(&key);
        if let (true, Some(u), Some(co)) = (p.base.is_some(), uid, cid) {
            p.moodle_id.get_or_insert_with(|| format!("{co}:{u}"));
        }
        d.pair(&p);
    }
    let mut extra = by.moodle.untaken(true);
    if extra.is_empty() {
        return;
    }
    extra.sort_by(|a, b| a.key.cmp(&b.key));
    let linked_zoho = w.linked_zoho(entity);
    let in_zoho = in_zoho(w);
    for m in extra {
        // A Moodle record of a user or in a course that is not linked is not ours.
        let Some((s, c)) = natural_key(m, &w.students.map, &w.classes.map) else { continue };
        let key = format!("{s}|{c}");
        let mut p = Pair::new(&key).with_moodle(Cow::Borrowed(m), m);
        p.refs = (by.moodle_refs)(&s, &c, m);
        p.zoho_id = linked_zoho.get(m.key.as_str()).map(|z| z.to_string());
        p.base = base.get(&key);
        if p.base.is_none() && !in_zoho(&s, &c) {
            continue; // new in Moodle for a student or class deleted in Zoho: nothing to create it under
        }
        d.pair(&p);
    }
}
