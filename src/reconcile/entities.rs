//! Per entity: which records form a pair (via the links), and what a create or a removal becomes.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::OnceLock;

use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{json, Value};

use super::diff::{Differ, EntityRules, Outcome, Pair};
use super::link::{sort_by_id, IdMap, Linked};
use super::plan::{Action, IssueKind};
use crate::mapping::{class, dashboard, person};
use crate::model::{Entity, Fields, Kind, Record, Side};
use crate::settings::{RemovalAction, Settings};
use crate::store::SyncState;

/// What every entity's pairing may consult: the records, the identity of people and classes, and which of
/// them this plan creates (their dependants are planned with the ids to fill in after the create).
pub struct World<'a> {
    pub settings: &'a Settings,
    pub records: &'a BTreeMap<Kind, Vec<Record>>,
    pub states: &'a BTreeMap<Entity, Vec<SyncState>>,
    pub links: &'a BTreeMap<Entity, Vec<crate::store::Link>>,
    /// Moodle users and courses by id (built once: the identity step, people and classes all look them up).
    pub users: &'a FxHashMap<&'a str, &'a Record>,
    pub courses: &'a FxHashMap<&'a str, &'a Record>,
    pub students: &'a Linked<'a>,
    pub teachers: &'a Linked<'a>,
    pub classes: &'a Linked<'a>,
    pub creating: &'a HashMap<Entity, HashSet<String>>,
}

impl<'a> World<'a> {
    pub fn records(&self, kind: Kind) -> &'a [Record] {
        self.records.get(&kind).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The agreed base of `entity` by key, indexed on its first use (pairs that agree never look it up).
    pub fn base(&self, entity: Entity) -> Base<'a> {
        Base { states: self.states.get(&entity).map(Vec::as_slice).unwrap_or(&[]), index: None }
    }

    /// Moodle id → Zoho id of the stored links of `entity` (to name a record gone from Zoho).
    pub fn linked_zoho(&self, entity: Entity) -> FxHashMap<&'a str, &'a str> {
        self.links
            .get(&entity)
            .map(|v| v.iter().map(|l| (l.moodle_id.as_str(), l.zoho_id.as_str())).collect())
            .unwrap_or_default()
    }

    fn creating(&self, entity: Entity, zoho_id: &str) -> bool {
        self.creating.get(&entity).map(|s| s.contains(zoho_id)).unwrap_or(false)
    }
}

/// An entity's base rows by key, indexed when first asked.
pub struct Base<'a> {
    states: &'a [SyncState],
    index: Option<FxHashMap<&'a str, &'a SyncState>>,
}

impl<'a> Base<'a> {
    pub fn get(&mut self, key: &str) -> Option<&'a SyncState> {
        let states = self.states;
        self.index.get_or_insert_with(|| states.iter().map(|s| (s.key.as_str(), s)).collect()).get(key).copied()
    }
}

/// Records of one kind by their key, remembering which were paired (the rest are the other side's extras).
struct ByKey<'a> {
    records: Vec<&'a Record>,
    index: FxHashMap<&'a str, usize>,
    seen: Vec<bool>,
    buf: String,
}

impl<'a> ByKey<'a> {
    fn new(records: Vec<&'a Record>) -> ByKey<'a> {
        let index = records.iter().enumerate().map(|(i, r)| (r.key.as_str(), i)).collect();
        ByKey { seen: vec![false; records.len()], records, index, buf: String::new() }
    }

    /// The record with `key`, now marked as paired.
    fn take(&mut self, key: &str) -> Option<&'a Record> {
        let i = *self.index.get(key)?;
        self.seen[i] = true;
        Some(self.records[i])
    }

    /// The Moodle enrolment or grade `courseid:userid` (when both are linked), now marked as paired.
    fn take_course_user(&mut self, course: Option<&str>, user: Option<&str>) -> Option<&'a Record> {
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
    fn untaken(&self, one_per_key: bool) -> Vec<&'a Record> {
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
fn view_equals(shown: &Record, r: &Record, names: &[&str]) -> bool {
    if r.fields.len() == names.len() && names.iter().all(|n| r.fields.contains_key(*n)) {
        return shown.fingerprint == r.fingerprint;
    }
    shown.fields.len() == names.len() && names.iter().all(|n| shown.fields.get(*n) == Some(r.field(n)))
}

/// The Moodle view of a record restricted to `names`, borrowed when it has exactly those fields.
fn view<'a>(r: &'a Record, names: &[&str]) -> Cow<'a, Record> {
    if r.fields.len() == names.len() && names.iter().all(|n| r.fields.contains_key(*n)) {
        Cow::Borrowed(r)
    } else {
        Cow::Owned(r.project(names))
    }
}

/// `names` without the fields `r` does not have (unknown: Moodle did not return them).
fn known_names<'n>(r: &Record, names: &'n [&'n str]) -> Cow<'n, [&'n str]> {
    if names.iter().all(|n| r.fields.contains_key(*n)) {
        Cow::Borrowed(names)
    } else {
        Cow::Owned(names.iter().copied().filter(|n| r.fields.contains_key(*n)).collect())
    }
}

fn id_num(s: Option<&str>) -> Value {
    s.and_then(|s| s.parse::<i64>().ok()).map(|n| json!(n)).unwrap_or(Value::Null)
}

fn removal_reason(entity: Entity, policy: RemovalAction, what: &str) -> String {
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

fn ignored(entity: Entity, policy: RemovalAction, what: &str) -> Outcome {
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

fn op(action: Action, changes: Fields, before: Fields, reason: impl Into<String>, refs: Fields) -> Outcome {
    Outcome::Op { action, changes, before, reason: reason.into(), refs }
}

fn one(k: &str, v: Value) -> Fields {
    let mut f = Fields::new();
    f.insert(k.into(), v);
    f
}

// ---- students and teachers -------------------------------------------------------------------------------

pub fn person_pairs<'a>(w: &World<'a>, entity: Entity, d: &mut Differ) {
    let (kind, names, linked) = match entity {
        Entity::Student => (Kind::Student, person::STUDENT_FIELDS, w.students),
        _ => (Kind::Teacher, person::TEACHER_FIELDS, w.teachers),
    };
    let mut base = w.base(entity);
    let zoho = w.records(kind);
    let mut seen = FxHashSet::default();
    seen.reserve(zoho.len());
    for z in zoho {
        seen.insert(z.key.as_str());
        let user = linked.map.moodle(&z.key).and_then(|m| w.users.get(m)).copied();
        // Fields Moodle did not return for this user are unknown: both sides are compared without them.
        let known = user.map(|u| known_names(u, names)).unwrap_or(Cow::Borrowed(names));
        let shown = if known.len() == names.len() { Cow::Borrowed(z) } else { Cow::Owned(z.project(&known)) };
        if let Some(u) = user.filter(|u| view_equals(&shown, u, &known)) {
            d.agreed(&shown, || (z.key.clone(), Some(z.key.clone()), Some(u.key.clone())));
            continue;
        }
        let mut p = Pair::new(&z.key).with_zoho(shown, z);
        if let Some(u) = user {
            p = p.with_moodle(view(u, &known), u);
            p.linked = true;
        }
        p.base = base.get(&z.key);
        d.pair(&p);
    }
    // Linked users whose Zoho record is gone.
    for (zid, mid) in &linked.map.z2m {
        if seen.contains(zid) {
            continue;
        }
        if let Some(u) = w.users.get(mid) {
            let mut p = Pair::new(*zid).with_moodle(view(u, names), u);
            // Ops name a record gone from its side by the id the link knows.
            p.zoho_id = Some(zid.to_string());
            p.linked = true;
            p.base = base.get(zid);
            d.pair(&p);
        }
    }
}

pub struct PersonRules<'a> {
    pub entity: Entity,
    pub settings: &'a Settings,
    pub blocked: &'a FxHashSet<&'a str>,
    pub users: &'a FxHashMap<&'a str, &'a Record>,
    records: &'a [Record],
    /// username → Moodle user id, to see a create that Moodle would refuse (indexed on the first create).
    usernames: OnceLock<FxHashMap<&'a str, &'a str>>,
}

impl<'a> PersonRules<'a> {
    pub fn new(w: &World<'a>, entity: Entity, blocked: &'a FxHashSet<&'a str>) -> PersonRules<'a> {
        PersonRules {
            entity,
            settings: w.settings,
            blocked,
            users: w.users,
            records: w.records(Kind::MoodleUser),
            usernames: OnceLock::new(),
        }
    }

    fn username_owner(&self, username: &str) -> Option<&'a str> {
        let records = self.records;
        let usernames = self
            .usernames
            .get_or_init(|| records.iter().filter_map(|u| Some((u.ref_str("username")?, u.key.as_str()))).collect());
        usernames.get(username).copied()
    }
}

impl EntityRules for PersonRules<'_> {
    fn create(&self, pair: &Pair, target: Side, src: &Record) -> Outcome {
        if target == Side::Zoho {
            return Outcome::Issue(
                IssueKind::Incomplete,
                format!("zmsync does not create {}s in Zoho", self.entity.name()),
            );
        }
        if self.blocked.contains(pair.key.as_str()) {
            return Outcome::Nothing; // the link step reported why
        }
        // A student who is not active in Zoho gets no new account (there is nothing for them to do in Moodle).
        if src.field("suspended") == &Value::Bool(true) {
            return Outcome::Nothing;
        }
        if let Err(e) = person::moodle_user_create(&src.fields, &self.settings.accounts) {
            return Outcome::Issue(IssueKind::Incomplete, format!("cannot create the Moodle user: {e}"));
        }
        let username = person::username_for(&src.fields).unwrap_or_default();
        if let Some(uid) = self.username_owner(&username) {
            return Outcome::Issue(
                IssueKind::Duplicate,
                format!(
                    "the username {username} is taken by Moodle user {uid}, which is not linked; if it is this \
                     person, give it the id number or put {uid} into the Moodle id field in Zoho"
                ),
            );
        }
        let refs = one("username", json!(username));
        op(Action::Create, src.fields.clone(), Fields::new(), "new in Zoho: no Moodle user yet", refs)
    }

    fn remove(&self, pair: &Pair, target: Side, _tgt: &Record) -> Outcome {
        let what = "deleted in Zoho";
        if target == Side::Zoho {
            return Outcome::Nothing;
        }
        let policy = if self.entity == Entity::Student {
            self.settings.deletions.student
        } else {
            self.settings.deletions.teacher
        };
        let raw = pair.moodle_id.as_deref().and_then(|m| self.users.get(m));
        match policy {
            RemovalAction::Suspend => {
                if raw.map(|u| u.field("suspended") == &Value::Bool(true)).unwrap_or(false) {
                    return Outcome::Nothing;
                }
                op(
                    Action::Suspend,
                    Fields::new(),
                    Fields::new(),
                    removal_reason(self.entity, policy, what),
                    Fields::new(),
                )
            }
            RemovalAction::Delete => op(
                Action::Delete,
                Fields::new(),
                Fields::new(),
                removal_reason(self.entity, policy, what),
                Fields::new(),
            ),
            other => ignored(self.entity, other, what),
        }
    }

    fn update_action(&self, target: Side, changes: &Fields, before: &Fields) -> Action {
        if target == Side::Moodle {
            match (changes.get("suspended"), before.get("suspended")) {
                (Some(Value::Bool(true)), _) => return Action::Suspend,
                (Some(Value::Bool(false)), Some(Value::Bool(true))) => return Action::Restore,
                _ => {}
            }
        }
        Action::Update
    }
}

// ---- classes ---------------------------------------------------------------------------------------------

pub fn class_pairs<'a>(w: &World<'a>, d: &mut Differ) {
    let mut base = w.base(Entity::Class);
    let zoho = w.records(Kind::Class);
    let mut seen = FxHashSet::default();
    seen.reserve(zoho.len());
    for z in zoho {
        seen.insert(z.key.as_str());
        let course = w.classes.map.moodle(&z.key).and_then(|m| w.courses.get(m)).copied();
        if let Some(c) = course.filter(|c| c.fingerprint == z.fingerprint) {
            d.agreed(z, || (z.key.clone(), Some(z.key.clone()), Some(c.key.clone())));
            continue;
        }
        let mut p = Pair::new(&z.key).with_zoho(Cow::Borrowed(z), z);
        if let Some(c) = course {
            p = p.with_moodle(Cow::Borrowed(c), c);
            p.linked = true;
        }
        p.base = base.get(&z.key);
        d.pair(&p);
    }
    for (zid, mid) in &w.classes.map.z2m {
        if !seen.contains(zid) {
            if let Some(c) = w.courses.get(mid) {
                let mut p = Pair::new(*zid).with_moodle(Cow::Borrowed(*c), c);
                p.zoho_id = Some(zid.to_string());
                p.linked = true;
                p.base = base.get(zid);
                d.pair(&p);
            }
        }
    }
}

pub struct ClassRules<'a> {
    pub settings: &'a Settings,
    pub blocked: &'a FxHashSet<&'a str>,
}

impl EntityRules for ClassRules<'_> {
    fn create(&self, pair: &Pair, target: Side, src: &Record) -> Outcome {
        if target == Side::Zoho || self.blocked.contains(pair.key.as_str()) {
            return Outcome::Nothing;
        }
        if let Err(e) = class::moodle_course_create(&pair.key, &src.fields) {
            return Outcome::Issue(IssueKind::Incomplete, format!("cannot create the Moodle course: {e}"));
        }
        op(Action::Create, src.fields.clone(), Fields::new(), "new in Zoho: no Moodle course yet", Fields::new())
    }

    fn remove(&self, _pair: &Pair, target: Side, tgt: &Record) -> Outcome {
        if target == Side::Zoho {
            return Outcome::Nothing;
        }
        let policy = self.settings.deletions.class;
        let what = "deleted in Zoho";
        match policy {
            RemovalAction::Hide => {
                if tgt.field("visible") == &Value::Bool(false) {
                    return Outcome::Nothing;
                }
                op(
                    Action::Hide,
                    one("visible", json!(false)),
                    one("visible", json!(true)),
                    removal_reason(Entity::Class, policy, what),
                    Fields::new(),
                )
            }
            // Deleting a course deletes its grades and submissions: zmsync never does it (the setting refuses
            // `delete` for classes; a value stored before that rule is reported here, not acted on).
            other => ignored(Entity::Class, other, what),
        }
    }
}

// ---- enrolments (students and teachers) ------------------------------------------------------------------

/// Moodle enrolments holding `role`, by `courseid:userid`.
fn enrolments_with_role<'a>(w: &World<'a>, role: i64) -> ByKey<'a> {
    ByKey::new(
        w.records(Kind::MoodleEnrolment)
            .iter()
            .filter(|r| {
                r.refs.get("roleids").and_then(Value::as_array).map(|ids| ids.iter().any(|i| i.as_i64() == Some(role)))
                    == Some(true)
            })
            .collect(),
    )
}

/// The Zoho natural key of a Moodle `courseid:userid` through the class and person links.
fn natural_key(rec: &Record, people: &IdMap, classes: &IdMap) -> Option<(String, String)> {
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

fn ref_id(rec: &Record, name: &str) -> Option<String> {
    match rec.refs.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn link_refs(
    who: &str,
    person_zid: &str,
    class_zid: &str,
    userid: Option<&str>,
    courseid: Option<&str>,
    role: i64,
) -> Fields {
    let mut refs = Fields::new();
    refs.insert(format!("{who}_zoho_id"), json!(person_zid));
    refs.insert("class_zoho_id".into(), json!(class_zid));
    refs.insert("userid".into(), id_num(userid));
    refs.insert("courseid".into(), id_num(courseid));
    refs.insert("roleid".into(), json!(role));
    refs
}

pub fn teaching_pairs<'a>(w: &World<'a>, d: &mut Differ) {
    let role = w.settings.roles.teacher;
    let mut moodle = enrolments_with_role(w, role);
    let mut base = w.base(Entity::Teaching);
    // The Zoho side of a teaching is the class's teacher: an active enrolment.
    let active = Record::new(Kind::Class, String::new(), one("active", json!(true)), Fields::new());
    for c in w.records(Kind::Class) {
        let Some(t) = c.ref_str("teacher_id") else { continue };
        let (uid, cid) = (w.teachers.map.moodle(t), w.classes.map.moodle(&c.key));
        let found = moodle.take_course_user(cid, uid);
        if let Some(e) = found.filter(|e| view_equals(&active, e, &["active"])) {
            d.agreed(&active, || (format!("{t}|{}", c.key), Some(c.key.clone()), Some(e.key.clone())));
            continue;
        }
        let key = format!("{t}|{}", c.key);
        let shown = Record { key: c.key.clone(), ..active.clone() };
        let mut p = Pair::new(&key).with_zoho(Cow::Owned(shown), c);
        if let Some(e) = found {
            p = p.with_moodle(view(e, &["active"]), e);
        }
        p.refs = link_refs("teacher", t, &c.key, uid, cid, role);
        p.base = base.get(&key);
        if let (true, Some(u), Some(co)) = (p.base.is_some(), uid, cid) {
            p.moodle_id.get_or_insert_with(|| format!("{co}:{u}"));
        }
        d.pair(&p);
    }
    for e in moodle.untaken(true) {
        let Some((t, c)) = natural_key(e, &w.teachers.map, &w.classes.map) else { continue };
        let key = format!("{t}|{c}");
        let mut p = Pair::new(&key).with_moodle(view(e, &["active"]), e);
        p.refs = link_refs("teacher", &t, &c, ref_id(e, "userid").as_deref(), ref_id(e, "courseid").as_deref(), role);
        p.zoho_id = Some(c.clone());
        p.base = base.get(&key);
        d.pair(&p);
    }
}

/// Rules for enrolments of either kind: teaching (one-way) and student enrolments (bidirectional).
pub struct EnrolRules<'a> {
    pub entity: Entity,
    pub settings: &'a Settings,
    pub world: &'a World<'a>,
}

impl EnrolRules<'_> {
    fn person(&self) -> (Entity, &'static str) {
        if self.entity == Entity::Teaching {
            (Entity::Teacher, "teacher")
        } else {
            (Entity::Student, "student")
        }
    }
}

impl EntityRules for EnrolRules<'_> {
    fn create(&self, pair: &Pair, target: Side, src: &Record) -> Outcome {
        let (person_entity, who) = self.person();
        if src.field("active") != &Value::Bool(true) {
            return Outcome::Nothing; // an inactive enrolment is not created on the other side
        }
        let person = pair.refs.get(&format!("{who}_zoho_id")).and_then(Value::as_str).unwrap_or("");
        let class_id = pair.refs.get("class_zoho_id").and_then(Value::as_str).unwrap_or("");
        match target {
            Side::Moodle => {
                let mut waiting = Vec::new();
                if pair.refs.get("userid").map(Value::is_null).unwrap_or(true) {
                    if self.world.creating(person_entity, person) {
                        waiting.push(format!("its {who}, created earlier in this plan"));
                    } else {
                        return Outcome::Issue(
                            IssueKind::Unresolved,
                            format!("waiting for its {who} {person}: no Moodle user is linked to it"),
                        );
                    }
                }
                if pair.refs.get("courseid").map(Value::is_null).unwrap_or(true) {
                    if self.world.creating(Entity::Class, class_id) {
                        waiting.push("its class, created earlier in this plan".into());
                    } else {
                        return Outcome::Issue(
                            IssueKind::Unresolved,
                            format!("waiting for its class {class_id}: no Moodle course is linked to it"),
                        );
                    }
                }
                let reason = if waiting.is_empty() {
                    "not enrolled in Moodle".to_string()
                } else {
                    format!("not enrolled in Moodle; ids of {} filled in by apply", waiting.join(" and "))
                };
                op(Action::Enrol, src.fields.clone(), Fields::new(), reason, Fields::new())
            }
            Side::Zoho => {
                if self.entity == Entity::Teaching {
                    return Outcome::Nothing;
                }
                op(Action::Create, src.fields.clone(), Fields::new(), "enrolled in Moodle, not in Zoho", Fields::new())
            }
        }
    }

    fn remove(&self, _pair: &Pair, target: Side, tgt: &Record) -> Outcome {
        match target {
            // Moodle removed it: Zoho's enrolment becomes inactive (Withdrawn), once.
            Side::Zoho => {
                if self.entity == Entity::Teaching || tgt.field("active") != &Value::Bool(true) {
                    return Outcome::Nothing;
                }
                let mut refs = Fields::new();
                refs.insert("status".into(), tgt.refs.get("status").cloned().unwrap_or(Value::Null));
                op(
                    Action::Update,
                    one("active", json!(false)),
                    one("active", json!(true)),
                    "removed in Moodle since the last sync",
                    refs,
                )
            }
            Side::Moodle => {
                let policy = self.settings.deletions.enrollment;
                let what = if self.entity == Entity::Teaching {
                    "no longer the class's teacher in Zoho"
                } else {
                    "deleted in Zoho since the last sync"
                };
                match policy {
                    RemovalAction::Unenrol | RemovalAction::Delete => op(
                        Action::Unenrol,
                        Fields::new(),
                        Fields::new(),
                        removal_reason(self.entity, policy, what),
                        Fields::new(),
                    ),
                    RemovalAction::Suspend => {
                        if tgt.field("active") == &Value::Bool(false) {
                            return Outcome::Nothing;
                        }
                        op(
                            Action::Suspend,
                            one("active", json!(false)),
                            one("active", json!(true)),
                            removal_reason(self.entity, policy, what),
                            Fields::new(),
                        )
                    }
                    other => ignored(self.entity, other, what),
                }
            }
        }
    }

    fn update_refs(&self, pair: &Pair, target: Side, changes: &Fields) -> Fields {
        let mut refs = Fields::new();
        match target {
            Side::Zoho => {
                let status = pair.zoho.as_deref().and_then(|z| z.refs.get("status"));
                refs.insert("status".into(), status.cloned().unwrap_or(Value::Null));
            }
            // Moodle's enrol call is an upsert of the whole enrolment: apply sends every field.
            Side::Moodle => {
                if let Some(m) = pair.moodle.as_deref() {
                    let mut all = m.fields.clone();
                    all.extend(changes.clone());
                    refs.insert("fields".into(), json!(all));
                }
            }
        }
        refs
    }
}

pub fn enrollment_pairs<'a>(w: &World<'a>, d: &mut Differ, pre: &mut super::diff::EntityDiff) {
    let role = w.settings.roles.student;
    let mut moodle = enrolments_with_role(w, role);
    let mut base = w.base(Entity::Enrollment);
    let mut zoho: Vec<&'a Record> = w.records(Kind::Enrollment).iter().collect();
    sort_by_id(&mut zoho, |r| r.key.as_str());
    let mut by_key = FxHashMap::default();
    by_key.reserve(zoho.len());
    for z in zoho {
        let Some((s, c)) = student_class_key(z, Entity::Enrollment, &mut by_key, pre, |first| {
            format!("Zoho enrolment {first} is the same student and class (older, synced instead)")
        }) else {
            continue;
        };
        let (uid, cid) = (w.students.map.moodle(s), w.classes.map.moodle(c));
        let found = moodle.take_course_user(cid, uid);
        if let Some(e) = found.filter(|e| e.fingerprint == z.fingerprint) {
            d.agreed(z, || (format!("{s}|{c}"), Some(z.key.clone()), Some(e.key.clone())));
            continue;
        }
        let key = format!("{s}|{c}");
        let mut p = Pair::new(&key).with_zoho(Cow::Borrowed(z), z);
        if let Some(e) = found {
            p = p.with_moodle(Cow::Borrowed(e), e);
        }
        p.refs = link_refs("student", s, c, uid, cid, role);
        p.base = base.get(&key);
        if let (true, Some(u), Some(co)) = (p.base.is_some(), uid, cid) {
            p.moodle_id.get_or_insert_with(|| format!("{co}:{u}"));
        }
        d.pair(&p);
    }
    let mut extra = moodle.untaken(true);
    if extra.is_empty() {
        return;
    }
    extra.sort_by(|a, b| a.key.cmp(&b.key));
    let linked_zoho = w.linked_zoho(Entity::Enrollment);
    let in_zoho = in_zoho(w);
    for e in extra {
        // An enrolment of a user or in a course that is not linked is not ours.
        let Some((s, c)) = natural_key(e, &w.students.map, &w.classes.map) else { continue };
        let key = format!("{s}|{c}");
        let mut p = Pair::new(&key).with_moodle(Cow::Borrowed(e), e);
        p.refs = link_refs("student", &s, &c, ref_id(e, "userid").as_deref(), ref_id(e, "courseid").as_deref(), role);
        p.zoho_id = linked_zoho.get(e.key.as_str()).map(|z| z.to_string());
        p.base = base.get(&key);
        if p.base.is_none() && !in_zoho(&s, &c) {
            continue; // new in Moodle for a student or class deleted in Zoho: nothing to create it under
        }
        d.pair(&p);
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
    diff: &mut super::diff::EntityDiff,
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

// ---- grades (Moodle → Zoho) ------------------------------------------------------------------------------

pub fn grade_pairs<'a>(w: &World<'a>, d: &mut Differ, pre: &mut super::diff::EntityDiff) {
    let mut moodle = ByKey::new(w.records(Kind::MoodleGrade).iter().collect());
    let mut base = w.base(Entity::Grade);
    let mut zoho: Vec<&'a Record> = w.records(Kind::Grade).iter().collect();
    sort_by_id(&mut zoho, |r| r.key.as_str());
    let mut by_key = FxHashMap::default();
    by_key.reserve(zoho.len());
    for z in zoho {
        let Some((s, c)) = student_class_key(z, Entity::Grade, &mut by_key, pre, |first| {
            format!("Zoho grade {first} is for the same student and class (older, updated instead)")
        }) else {
            continue;
        };
        let (uid, cid) = (w.students.map.moodle(s), w.classes.map.moodle(c));
        let found = moodle.take_course_user(cid, uid);
        if let Some(g) = found.filter(|g| g.fingerprint == z.fingerprint) {
            d.agreed(z, || (format!("{s}|{c}"), Some(z.key.clone()), Some(g.key.clone())));
            continue;
        }
        let key = format!("{s}|{c}");
        let mut p = Pair::new(&key).with_zoho(Cow::Borrowed(z), z);
        if let Some(g) = found {
            p = p.with_moodle(Cow::Borrowed(g), g);
            p.refs.insert("graded_date".into(), g.refs.get("graded_date").cloned().unwrap_or(Value::Null));
        }
        // A Zoho grade is always ours: one without a Moodle grade is reported.
        p.linked = true;
        p.base = base.get(&key);
        if let (true, Some(u), Some(co)) = (p.base.is_some(), uid, cid) {
            p.moodle_id.get_or_insert_with(|| format!("{co}:{u}"));
        }
        d.pair(&p);
    }
    let mut extra = moodle.untaken(true);
    if extra.is_empty() {
        return;
    }
    extra.sort_by(|a, b| a.key.cmp(&b.key));
    let classes: FxHashMap<&str, &Record> = w.records(Kind::Class).iter().map(|r| (r.key.as_str(), r)).collect();
    let unit_of = |c: &str| classes.get(c).and_then(|r| r.refs.get("unit_id")).cloned().unwrap_or(Value::Null);
    let linked_zoho = w.linked_zoho(Entity::Grade);
    let in_zoho = in_zoho(w);
    for g in extra {
        let Some((s, c)) = natural_key(g, &w.students.map, &w.classes.map) else { continue };
        let key = format!("{s}|{c}");
        let mut p = Pair::new(&key).with_moodle(Cow::Borrowed(g), g);
        p.zoho_id = linked_zoho.get(g.key.as_str()).map(|z| z.to_string());
        p.refs.insert("student_zoho_id".into(), json!(s));
        p.refs.insert("class_zoho_id".into(), json!(c));
        p.refs.insert("unit_id".into(), unit_of(&c));
        p.refs.insert("graded_date".into(), g.refs.get("graded_date").cloned().unwrap_or(Value::Null));
        p.base = base.get(&key);
        if p.base.is_none() && !in_zoho(&s, &c) {
            continue; // new in Moodle for a student or class deleted in Zoho: nothing to create it under
        }
        d.pair(&p);
    }
}

pub struct GradeRules;

impl EntityRules for GradeRules {
    fn create(&self, _pair: &Pair, target: Side, src: &Record) -> Outcome {
        match target {
            Side::Zoho => {
                op(Action::Create, src.fields.clone(), Fields::new(), "graded in Moodle, not in Zoho", Fields::new())
            }
            Side::Moodle => Outcome::Issue(IssueKind::Incomplete, "zmsync does not write grades to Moodle".into()),
        }
    }

    fn remove(&self, _pair: &Pair, target: Side, _tgt: &Record) -> Outcome {
        match target {
            Side::Zoho => Outcome::Issue(
                IssueKind::Orphan,
                "a Zoho grade without a Moodle grade (kept: grades are never deleted)".into(),
            ),
            Side::Moodle => Outcome::Nothing,
        }
    }
}

// ---- dashboard rows: units, registrations, payments ------------------------------------------------------

pub fn dashboard_pairs<'a>(w: &World<'a>, entity: Entity, d: &mut Differ) {
    let (zk, mk) = entity.kinds();
    let mut moodle = ByKey::new(w.records(mk).iter().collect());
    let mut base = w.base(entity);
    let personal = dashboard::personal(zk);
    let student_refs = |student: Option<&str>| {
        let mut refs = Fields::new();
        if personal {
            refs.insert("student_zoho_id".into(), student.map(|s| json!(s)).unwrap_or(Value::Null));
            refs.insert("userid".into(), id_num(student.and_then(|s| w.students.map.moodle(s))));
        }
        refs
    };
    let grades = (entity == Entity::DashboardGrade).then(|| MoodleGrades::new(w));
    for z in w.records(zk) {
        // A Zoho grade's dashboard row is a view of the grade record (its lookups and date are refs there).
        let shown = match &grades {
            Some(g) => Cow::Owned(dashboard::grade_view(z, g.moodle_of(w, z))),
            None => Cow::Borrowed(z),
        };
        let found = moodle.take(&z.key);
        if let Some(m) = found.filter(|m| m.fingerprint == shown.fingerprint) {
            d.agreed(&shown, || (z.key.clone(), Some(z.key.clone()), Some(m.key.clone())));
            continue;
        }
        let student = shown.field_str("student").map(str::to_string);
        let mut p = Pair::new(&z.key).with_zoho(shown, z);
        if let Some(m) = found {
            p = p.with_moodle(Cow::Borrowed(m), m);
            p.linked = true;
        }
        p.refs = student_refs(student.as_deref());
        p.base = base.get(&z.key);
        d.pair(&p);
    }
    for m in moodle.untaken(false) {
        // The plugin's tables hold only rows zmsync wrote: every row is ours.
        let mut p = Pair::new(&m.key).with_moodle(Cow::Borrowed(m), m);
        p.zoho_id = Some(m.key.clone());
        p.linked = true;
        p.refs = student_refs(m.field_str("student"));
        p.refs.insert("row_id".into(), m.refs.get("row_id").cloned().unwrap_or(Value::Null));
        p.base = base.get(&m.key);
        d.pair(&p);
    }
}

/// Moodle's course grades by `courseid:userid`, when this run brings them into Zoho (grades Moodle → Zoho).
struct MoodleGrades<'a> {
    by_key: FxHashMap<&'a str, &'a Record>,
}

impl<'a> MoodleGrades<'a> {
    fn new(w: &World<'a>) -> MoodleGrades<'a> {
        let flows = Entity::Grade.direction(w.settings) == crate::settings::Direction::MoodleToZoho;
        let records = if flows { w.records(Kind::MoodleGrade) } else { &[] };
        MoodleGrades { by_key: records.iter().map(|r| (r.key.as_str(), r)).collect() }
    }

    /// The Moodle grade of a Zoho grade's student and class, if both are linked and it has one.
    fn moodle_of(&self, w: &World<'a>, z: &Record) -> Option<&'a Record> {
        let uid = w.students.map.moodle(z.ref_str("student_id")?)?;
        let cid = w.classes.map.moodle(z.ref_str("class_id")?)?;
        self.by_key.get(format!("{cid}:{uid}").as_str()).copied()
    }
}

pub struct DashboardRules<'a> {
    pub entity: Entity,
    pub settings: &'a Settings,
    pub world: &'a World<'a>,
}

impl EntityRules for DashboardRules<'_> {
    fn create(&self, pair: &Pair, target: Side, src: &Record) -> Outcome {
        if target == Side::Zoho {
            return Outcome::Nothing;
        }
        let (zk, _) = self.entity.kinds();
        let mut reason = "new in Zoho: no dashboard row yet".to_string();
        if dashboard::personal(zk) && pair.refs.get("userid").map(Value::is_null).unwrap_or(true) {
            let student = src.field_str("student").unwrap_or("");
            if student.is_empty() {
                return Outcome::Issue(IssueKind::Incomplete, "no student in Zoho".into());
            }
            if !self.world.creating(Entity::Student, student) {
                return Outcome::Issue(
                    IssueKind::Unresolved,
                    format!("waiting for its student {student}: no Moodle user is linked to it"),
                );
            }
            reason.push_str("; the student's Moodle id is filled in by apply after creating them");
        }
        op(Action::Create, src.fields.clone(), Fields::new(), reason, Fields::new())
    }

    fn remove(&self, _pair: &Pair, target: Side, _tgt: &Record) -> Outcome {
        if target == Side::Zoho {
            return Outcome::Nothing;
        }
        let policy = self.settings.deletions.finance;
        let what = "deleted in Zoho";
        match policy {
            RemovalAction::Delete => op(
                Action::Delete,
                Fields::new(),
                Fields::new(),
                removal_reason(self.entity, policy, what),
                Fields::new(),
            ),
            other => ignored(self.entity, other, what),
        }
    }

    fn update_refs(&self, pair: &Pair, target: Side, _changes: &Fields) -> Fields {
        // The plugin's call is an upsert of the whole row: apply sends every field.
        let mut refs = Fields::new();
        if let (Side::Moodle, Some(z)) = (target, pair.zoho.as_deref()) {
            refs.insert("fields".into(), json!(z.fields));
        }
        refs
    }
}
