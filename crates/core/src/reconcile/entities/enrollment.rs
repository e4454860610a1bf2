//! Enrolments: a class's teacher (teaching, one-way) and student enrolments (both ways), paired with Moodle's
//! enrolments by `courseid:userid`.

use std::borrow::Cow;

use serde_json::{json, Value};

use super::shared::{
    id_num, ignored, natural_key, one, op, pair_by_student_class, ref_id, removal, removal_reason, view, view_equals,
    ByKey, ByStudentClass,
};
use super::World;
use crate::model::{Entity, Fields, Kind, Record, Side};
use crate::reconcile::diff::{Differ, EntityDiff, EntityRules, Outcome, Pair};
use crate::reconcile::plan::{Action, IssueKind};
use crate::settings::{RemovalAction, Settings};

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
                    RemovalAction::Unenrol | RemovalAction::Delete => {
                        removal(Action::Unenrol, self.entity, policy, what)
                    }
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

pub fn enrollment_pairs<'a>(w: &World<'a>, d: &mut Differ, pre: &mut EntityDiff) {
    let role = w.settings.roles.student;
    let by = ByStudentClass {
        entity: Entity::Enrollment,
        moodle: enrolments_with_role(w, role),
        linked: false,
        duplicate: |first| format!("Zoho enrolment {first} is the same student and class (older, synced instead)"),
        zoho_refs: |s: &str, c: &str, uid: Option<&str>, cid: Option<&str>, _| {
            link_refs("student", s, c, uid, cid, role)
        },
        moodle_refs: |s: &str, c: &str, e: &Record| {
            link_refs("student", s, c, ref_id(e, "userid").as_deref(), ref_id(e, "courseid").as_deref(), role)
        },
    };
    pair_by_student_class(w, d, pre, by);
}
