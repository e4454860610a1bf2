//! Dashboard rows (units, registrations, payments, grades): Zoho records paired with the plugin's rows by key.

use std::borrow::Cow;

use rustc_hash::FxHashMap;
use serde_json::{json, Value};

use super::shared::{id_num, ignored, op, removal, ByKey};
use super::World;
use crate::mapping::dashboard;
use crate::model::{Entity, Fields, Kind, Record, Side};
use crate::reconcile::diff::{Differ, EntityRules, Outcome, Pair};
use crate::reconcile::plan::{Action, IssueKind};
use crate::settings::{RemovalAction, Settings};

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
            RemovalAction::Delete => removal(Action::Delete, self.entity, policy, what),
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
