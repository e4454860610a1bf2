//! The Moodle side of `synced`: what a completed sync leaves behind, built only through `mapping::*` (the
//! functions the sync writes with), and the Moodle-id write-backs it leaves in the Zoho records.

use std::collections::{HashMap, HashSet};

use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{json, Map, Value};

use super::dashboard_rows::plugin_tables;
use super::raw_fields::{RawFields, BLOCK};
use super::zoho_side::PendingGrade;
use crate::drift;
use crate::seed::{
    JsonObject, MoodleCategory, MoodleCourse, MoodleEnrolment, MoodleGrade, MoodleSeed, MoodleUser, ZohoSeed,
};
use crate::world::{zoho_time, INTEGRATION_USER, SYNCED_AT};
use zmsync_core::mapping::{self, class, enrollment, person, ZohoNames};
use zmsync_core::model::{Kind, Record};
use zmsync_core::settings::Settings;

/// The Moodle category every fresh site has, and the one the sync creates (`moodle.accounts`).
pub const DEFAULT_CATEGORY_ID: i64 = 1;
pub const SYNC_CATEGORY_ID: i64 = 2;
/// Moodle user ids 1 and 2 are the guest and the admin (the fake adds them); course 1 is the site.
const FIRST_USER_ID: i64 = 3;
const FIRST_COURSE_ID: i64 = 2;

pub(super) fn default_category() -> MoodleCategory {
    MoodleCategory { id: DEFAULT_CATEGORY_ID, name: "Category 1".into(), idnumber: String::new(), parent: 0 }
}

// ---- the Moodle side of `synced` --------------------------------------------------------------------------

/// Maps seed records of one kind as a sync reads them: through `mapping::map_record`, with the names looked
/// up once, from only the fields a sync asks Zoho for (`ZohoNames::read_fields`, the other values are not
/// built).
struct Mapper<'s> {
    kind: Kind,
    names: ZohoNames,
    read: Vec<String>,
    settings: &'s Settings,
}

impl<'s> Mapper<'s> {
    fn new(kind: Kind, settings: &'s Settings) -> Mapper<'s> {
        let names = ZohoNames::for_kind(settings, kind);
        let read = names.read_fields();
        Mapper { kind, names, read, settings }
    }

    fn map(&self, rec: &JsonObject) -> Record {
        let raw = rec.pick(&self.read);
        mapping::map_record_named(self.kind, &raw, &self.names, self.settings)
            .unwrap_or_else(|e| panic!("generated {} record does not map ({e}): a generator bug\n{rec}", self.kind))
    }

    /// [`Mapper::map`] over a block of records, on all cores, in order.
    fn map_all(&self, block: &[JsonObject]) -> Vec<Record> {
        block.par_iter().map(|rec| self.map(rec)).collect()
    }
}

fn text(m: &Map<String, Value>, key: &str) -> String {
    m.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

fn int(m: &Map<String, Value>, key: &str) -> i64 {
    m.get(key).and_then(Value::as_i64).unwrap_or(0)
}

/// Records the sync's write-back of a Moodle id into a Zoho record (its text edited in place).
fn write_back(rec: &mut JsonObject, field: &str, moodle_id: i64) {
    let ist = rec.raw("Modified_Time").is_some_and(|t| t.ends_with("+05:30\""));
    rec.set(field, &moodle_id.to_string());
    rec.set("Modified_Time", &zoho_time(SYNCED_AT, ist));
    rec.set("Modified_By", &json!({"id": INTEGRATION_USER.0, "name": INTEGRATION_USER.1}));
}

fn user_from_create(id: i64, create: &Map<String, Value>, suspended: bool) -> MoodleUser {
    MoodleUser {
        id,
        username: text(create, "username"),
        firstname: text(create, "firstname"),
        lastname: text(create, "lastname"),
        email: text(create, "email"),
        idnumber: text(create, "idnumber"),
        auth: text(create, "auth"),
        suspended,
        phone1: text(create, "phone1"),
    }
}

fn enrolment_from_item(item: &Map<String, Value>) -> MoodleEnrolment {
    MoodleEnrolment {
        courseid: int(item, "courseid"),
        userid: int(item, "userid"),
        roleid: int(item, "roleid"),
        status: int(item, "suspend"),
        timestart: int(item, "timestart"),
        timeend: int(item, "timeend"),
    }
}

/// Which Zoho students get a Moodle user: those with an email, and among students sharing an email
/// (case-insensitive, trimmed), only the one with the smallest Zoho id. Others are skipped by the sync,
/// with their enrolments, dashboard rows and grades. Returns the Zoho ids that get a user.
pub fn students_with_users(students: &[JsonObject], settings: &Settings) -> HashSet<String> {
    let mut by_email: HashMap<String, String> = HashMap::new();
    let mapper = Mapper::new(Kind::Student, settings);
    for s in students {
        let r = mapper.map(s);
        let Some(email) = r.field_str("email") else { continue };
        let id = r.key.as_str();
        let e = by_email.entry(email.to_string()).or_insert_with(|| id.to_string());
        // Ids are equal-length digit strings, so comparing the text compares the numbers.
        if (id.len(), id) < (e.len(), e.as_str()) {
            *e = id.to_string();
        }
    }
    by_email.into_values().collect()
}

/// The Moodle side of `synced`, with the Zoho students as mapped on the way (for [`drift::plan_mapped`]).
pub(super) fn synced_moodle(
    zoho: &mut ZohoSeed,
    pending: Vec<PendingGrade>,
    settings: &Settings,
    phase: &dyn Fn(&str),
) -> (MoodleSeed, Vec<drift::MappedStudent>) {
    let accounts = &settings.accounts;
    let mut moodle = MoodleSeed {
        categories: vec![
            default_category(),
            MoodleCategory {
                id: SYNC_CATEGORY_ID,
                name: "zmsync".into(),
                idnumber: accounts.course_category_idnumber.clone(),
                parent: 0,
            },
        ],
        // Sized up front: what a large college holds for its lifetime is not grown by doubling.
        users: Vec::with_capacity(zoho.modules["BTEC_Teachers"].len() + zoho.modules["BTEC_Students"].len()),
        enrolments: Vec::with_capacity(zoho.modules["BTEC_Classes"].len() + zoho.modules["BTEC_Enrollments"].len()),
        grades: Vec::with_capacity(pending.len()),
        ..MoodleSeed::default()
    };
    let mut next_user = FIRST_USER_ID;
    let mut user_of: FxHashMap<String, i64> = FxHashMap::default();

    // People, in the sync's entity order: teachers, then students. Students are in id order, so the first
    // with an email is the one among its sharers that gets a user ([`students_with_users`]): one pass, one
    // mapping per student.
    let mut emails_taken: FxHashSet<String> = FxHashSet::default();
    let mut last_student = String::new();
    let mut students = Vec::with_capacity(zoho.modules["BTEC_Students"].len());
    for (module, kind, field) in
        [("BTEC_Teachers", Kind::Teacher, "Teacher_Moodle_ID"), ("BTEC_Students", Kind::Student, "Student_Moodle_ID")]
    {
        let mapper = Mapper::new(kind, settings);
        let records = zoho.modules.get_mut(module).expect("module present");
        for (rec, r) in records.chunks_mut(BLOCK).flat_map(|block| {
            let mapped = mapper.map_all(block);
            block.iter_mut().zip(mapped)
        }) {
            if kind == Kind::Student {
                assert!((r.key.len(), &r.key) > (last_student.len(), &last_student), "students are in id order");
                last_student.clone_from(&r.key);
                students.push(drift::MappedStudent::new(&r, None));
                match r.field_str("email") {
                    Some(email) if !emails_taken.contains(email) => emails_taken.insert(email.to_string()),
                    _ => continue,
                };
            }
            let Ok(create) = person::moodle_user_create(&r.fields, accounts) else { continue };
            let suspended = r.field("suspended").as_bool().unwrap_or(false);
            moodle.users.push(user_from_create(next_user, &create, suspended));
            write_back(rec, field, next_user);
            if kind == Kind::Student {
                students.last_mut().expect("just pushed").uid = Some(next_user);
            }
            user_of.insert(r.key, next_user);
            next_user += 1;
        }
    }
    drop(emails_taken);
    phase("people");
    // Classes → courses, each with its teacher enrolled with the teacher role.
    let mut course_of: FxHashMap<String, i64> = FxHashMap::default();
    let teaching: zmsync_core::model::Fields = [("active".to_string(), json!(true))].into_iter().collect();
    let classes = zoho.modules.get_mut("BTEC_Classes").expect("module present");
    let mapper = Mapper::new(Kind::Class, settings);
    for (next_course, rec) in (FIRST_COURSE_ID..).zip(classes.iter_mut()) {
        let r = mapper.map(rec);
        let create = class::moodle_course_create(&r.key, &r.fields).expect("generated classes have names");
        moodle.courses.push(MoodleCourse {
            id: next_course,
            shortname: text(&create, "shortname"),
            fullname: text(&create, "fullname"),
            idnumber: text(&create, "idnumber"),
            categoryid: SYNC_CATEGORY_ID,
            startdate: int(&create, "startdate"),
            enddate: int(&create, "enddate"),
            visible: int(&create, "visible") == 1,
        });
        if let Some(teacher) = r.ref_str("teacher_id").and_then(|t| user_of.get(t)) {
            let item = enrollment::moodle_enrol(settings.roles.teacher, *teacher, next_course, &teaching);
            moodle.enrolments.push(enrolment_from_item(&item));
        }
        write_back(rec, "Moodle_Course_ID", next_course);
        course_of.insert(r.key, next_course);
    }

    phase("courses");
    let names = ZohoNames::for_kind(settings, Kind::Enrollment);
    for block in zoho.modules["BTEC_Enrollments"].chunks(BLOCK) {
        let enrolled: Vec<MoodleEnrolment> = block
            .par_iter()
            .filter_map(|rec| {
                let text = RawFields::new(rec);
                let e = enrollment::zoho_parts(|name| text.get(name), &names).unwrap_or_else(|e| text.bug(e));
                let u = e.student.as_str().and_then(|s| user_of.get(s))?;
                let c = e.class.as_str().and_then(|c| course_of.get(c))?;
                Some(enrolment_from_item(&enrollment::moodle_enrol(settings.roles.student, *u, *c, &e.fields)))
            })
            .collect();
        moodle.enrolments.extend(enrolled);
    }

    for p in pending {
        if let (Some(u), Some(c)) = (user_of.get(&p.student), course_of.get(&p.class)) {
            moodle.grades.push(MoodleGrade {
                courseid: *c,
                userid: *u,
                finalgrade: Some(p.finalgrade),
                grademin: 0.0,
                grademax: p.grademax,
                scaleitem: None,
                timemodified: p.timemodified,
            });
        }
    }

    phase("enrolments and grades");
    moodle.plugin = plugin_tables(zoho, &user_of, settings);
    phase("plugin rows");
    (moodle, students)
}
