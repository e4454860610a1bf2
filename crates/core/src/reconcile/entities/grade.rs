//! Grades (Moodle → Zoho): Zoho grades paired with Moodle's course grades by `courseid:userid`.

use std::cell::OnceCell;

use rustc_hash::FxHashMap;
use serde_json::{json, Value};

use super::shared::{op, pair_by_student_class, ByKey, ByStudentClass};
use super::World;
use crate::model::{Entity, Fields, Kind, Record, Side};
use crate::reconcile::diff::{Differ, EntityDiff, EntityRules, Outcome, Pair};
use crate::reconcile::plan::{Action, IssueKind};

pub fn grade_pairs<'a>(w: &World<'a>, d: &mut Differ, pre: &mut EntityDiff) {
    let graded_date = |g: &Record| g.refs.get("graded_date").cloned().unwrap_or(Value::Null);
    // Classes by id, indexed when a Moodle grade without a Zoho grade first asks for its unit.
    let classes: OnceCell<FxHashMap<&str, &Record>> = OnceCell::new();
    let unit_of = |c: &str| {
        let classes = classes.get_or_init(|| w.records(Kind::Class).iter().map(|r| (r.key.as_str(), r)).collect());
        classes.get(c).and_then(|r| r.refs.get("unit_id")).cloned().unwrap_or(Value::Null)
    };
    let by = ByStudentClass {
        entity: Entity::Grade,
        moodle: ByKey::new(w.records(Kind::MoodleGrade).iter().collect()),
        // A Zoho grade is always ours: one without a Moodle grade is reported.
        linked: true,
        duplicate: |first| format!("Zoho grade {first} is for the same student and class (older, updated instead)"),
        zoho_refs: |_: &str, _: &str, _: Option<&str>, _: Option<&str>, found: Option<&Record>| {
            let mut refs = Fields::new();
            if let Some(g) = found {
                refs.insert("graded_date".into(), graded_date(g));
            }
            refs
        },
        moodle_refs: |s: &str, c: &str, g: &Record| {
            let mut refs = Fields::new();
            refs.insert("student_zoho_id".into(), json!(s));
            refs.insert("class_zoho_id".into(), json!(c));
            refs.insert("unit_id".into(), unit_of(c));
            refs.insert("graded_date".into(), graded_date(g));
            refs
        },
    };
    pair_by_student_class(w, d, pre, by);
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
