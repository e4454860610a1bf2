//! Classes: Zoho classes paired with Moodle courses through the links.

use std::borrow::Cow;

use rustc_hash::FxHashSet;
use serde_json::{json, Value};

use super::shared::{ignored, one, op, removal_reason};
use super::World;
use crate::mapping::class;
use crate::model::{Entity, Fields, Kind, Record, Side};
use crate::reconcile::diff::{Differ, EntityRules, Outcome, Pair};
use crate::reconcile::plan::{Action, IssueKind};
use crate::settings::{RemovalAction, Settings};

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
