//! Drift: seeded differences between Zoho and Moodle, each as data — the [`Mutation`]s that make it and the
//! [`Drift`] record of the change a reconcile must plan for it.
//!
//! [`plan`] picks targets in seed-shaped data (a generated college, or a snapshot of running fakes) so that
//! no two drifts touch the same student or anything of theirs: the expected list stays exact, and a deleted
//! student has no other drift. Two appliers: [`apply_to_seeds`] (for `--state drifted` at start) and, in
//! `sandbox::Sandbox`, one that goes through the running fakes' own mutation APIs.
//!
//! Ids in a [`Drift`] are those the sync's links know: `zoho_id` is `None` only for a record that never
//! existed in Zoho (an extra Moodle enrolment), `moodle_id` `None` only for one that never existed in Moodle.
//! A deleted Zoho student keeps its `zoho_id`, an unenrolled enrolment its `courseid:userid`.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

mod apply;

pub use apply::{apply_to_seeds, Mutation};

use super::seed::{
    json_lookup_id, json_str, Drift, DriftKind, JsonObject, MoodleEnrolment, MoodleSeed, MoodleUser, ZohoSeed,
};
use super::world::{date_str, AS_OF};
use zmsync_core::mapping::{self, canon, enrollment, grade, ZohoNames};
use zmsync_core::model::{Fields, Kind, Record};
use zmsync_core::settings::{ConflictPolicy, Settings};

/// A drift and the mutations that make it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeededDrift {
    pub drift: Drift,
    pub mutations: Vec<Mutation>,
    /// The Zoho id of the student whose record (or whose enrolment, grade or payment) this drift touches.
    pub student: String,
}

/// The Zoho ids of the students the drifts involve (to keep later drifts of the same sandbox off them).
pub fn students_touched(plans: &[SeededDrift]) -> HashSet<String> {
    plans.iter().map(|p| p.student.clone()).collect()
}

/// What [`plan`] needs of a Zoho student, as mapped (`mapping::map_record`), and its Moodle user id
/// (`Student_Moodle_ID`) if it has one.
pub struct MappedStudent {
    pub id: String,
    pub uid: Option<i64>,
    pub email: Option<String>,
    pub id_number: String,
    /// The record's fingerprint ([`Record::fingerprint`]) as its 128 bits.
    pub fingerprint: u128,
}

impl MappedStudent {
    pub fn new(r: &Record, uid: Option<i64>) -> MappedStudent {
        MappedStudent {
            id: r.key.clone(),
            uid,
            email: r.field_str("email").map(str::to_string),
            id_number: r.field_str("id_number").unwrap_or("").to_string(),
            fingerprint: fingerprint_bits(&r.fingerprint),
        }
    }
}

/// A fingerprint's 128 bits (it is an MD5 in hex).
fn fingerprint_bits(hex: &str) -> u128 {
    u128::from_str_radix(hex, 16).expect("a fingerprint is 32 hex digits")
}

/// A candidate student: its mapped Zoho record and its Moodle user (borrowed: planning a large college
/// holds no copy of its ids).
struct Student<'a> {
    zoho: &'a MappedStudent,
    user: &'a MoodleUser,
    /// Whether a registration, enrolment, grade or payment looks the student up (a deleted one would leave
    /// that lookup dangling).
    referenced: bool,
}

/// Moodle rows found by a key (a user's id, an enrolment's course and user): their places in the list,
/// sorted by the key and searched by halving (4 bytes a row, where a map takes 16 to 32). Of rows with the
/// same key, the last is found.
struct Index<'a, T, K> {
    items: &'a [T],
    key: fn(&T) -> K,
    order: Vec<u32>,
}

impl<'a, T: Sync, K: Ord + Copy> Index<'a, T, K> {
    fn new(items: &'a [T], key: fn(&T) -> K) -> Index<'a, T, K> {
        let mut order: Vec<u32> = (0..u32::try_from(items.len()).expect("fewer than 2^32 rows")).collect();
        order.par_sort_unstable_by_key(|&i| (key(&items[i as usize]), i));
        Index { items, key, order }
    }

    fn get(&self, want: K) -> Option<&'a T> {
        let key = |i: u32| (self.key)(&self.items[i as usize]);
        let end = self.order.partition_point(|&i| key(i) <= want);
        let last = *self.order.get(end.checked_sub(1)?)?;
        (key(last) == want).then(|| &self.items[last as usize])
    }
}

fn moodle_id(v: &Value, field: &str) -> Option<i64> {
    match v.get(field)? {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn text_id(v: &Value) -> Option<String> {
    v["id"].as_str().map(str::to_string)
}

/// Picks `count` drifts (kinds in [`DriftKind::ALL`] order, round robin, so K ≥ 11 covers every kind) from
/// records that agree on both sides, leaving out students in `exclude`. Fewer come back when the college is
/// too small to keep them apart. Assumes the default policies (`conflicts.policy` zoho_wins,
/// `deletions.policy.student` suspend).
pub fn plan(
    zoho: &ZohoSeed,
    moodle: &MoodleSeed,
    count: usize,
    seed: u64,
    exclude: &HashSet<String>,
    settings: &Settings,
) -> Vec<SeededDrift> {
    let sn = ZohoNames::for_kind(settings, Kind::Student);
    let students = zoho.modules.get(sn.module()).map(Vec::as_slice).unwrap_or(&[]);
    let mapped = students
        .par_iter()
        .filter_map(|s| {
            let s = s.value();
            let r = mapping::map_record_named(Kind::Student, &s, &sn, settings).ok()?;
            Some(MappedStudent::new(&r, moodle_id(&s, sn.get("moodle_id"))))
        })
        .collect();
    plan_mapped(zoho, moodle, mapped, count, seed, exclude, settings)
}

/// [`plan`] with the Zoho students already mapped (those that map, in any order), e.g. by the generator
/// that just built the synced state from them.
pub fn plan_mapped<'z>(
    zoho: &'z ZohoSeed,
    moodle: &'z MoodleSeed,
    mapped: Vec<MappedStudent>,
    count: usize,
    seed: u64,
    exclude: &HashSet<String>,
    settings: &Settings,
) -> Vec<SeededDrift> {
    let module = |kind: Kind| ZohoNames::for_kind(settings, kind);
    let (sn, en, gn, pn) =
        (module(Kind::Student), module(Kind::Enrollment), module(Kind::Grade), module(Kind::Payment));
    let cn = module(Kind::Class);
    let module_records = |names: &ZohoNames| zoho.modules.get(names.module()).map(Vec::as_slice).unwrap_or(&[]);

    // Students who agree on both sides, have an email of their own and an active account.
    let users = Index::new(&moodle.users, |u| u.id);
    let mut emails: Vec<&str> = mapped.iter().filter_map(|r| r.email.as_deref()).collect();
    emails.sort_unstable();
    let unique = |e: &str| emails.partition_point(|x| *x <= e) - emails.partition_point(|x| *x < e) == 1;
    let user_names = ZohoNames::for_kind(settings, Kind::MoodleUser);
    let mut students: Vec<Student> = mapped
        .par_iter()
        .filter_map(|r| {
            let user = users.get(r.uid?)?;
            let unique = r.email.as_deref().is_some_and(unique);
            let m = mapping::map_record_named(Kind::MoodleUser, &json!(user), &user_names, settings).ok()?;
            let agree =
                fingerprint_bits(&m.project(zmsync_core::mapping::person::STUDENT_FIELDS).fingerprint) == r.fingerprint;
            (unique && agree && !user.suspended && !exclude.contains(&r.id)).then_some(Student {
                zoho: r,
                user,
                referenced: false,
            })
        })
        .collect();
    let student_uid: FxHashMap<&str, (i64, usize)> =
        students.iter().zip(0..).map(|(s, i)| (s.zoho.id.as_str(), (s.user.id, i))).collect();
    // Classes are few: parsed for their two fields.
    let course_of: FxHashMap<String, i64> = module_records(&cn)
        .iter()
        .map(|r| r.pick(&["id", cn.get("moodle_id")]))
        .filter_map(|c| Some((text_id(&c)?, moodle_id(&c, cn.get("moodle_id"))?)))
        .collect();
    let m_enrol = Index::new(&moodle.enrolments, |e| (e.courseid, e.userid));
    let m_grade = Index::new(&moodle.grades, |g| (g.courseid, g.userid));

    // The dependent modules are read for a few fields each, by a byte scan of each record's text on all
    // cores (nothing is built but what is kept), in module order.
    // Candidates with dependent records, marked in place (one flag each: no set of ids is built).
    let referenced: Vec<AtomicBool> = students.iter().map(|_| AtomicBool::new(false)).collect();
    for names in [module(Kind::Registration), en.clone(), gn.clone(), pn.clone()] {
        let key = names.get("student");
        module_records(&names).par_iter().for_each(|r| {
            let student = r.raw(key).and_then(json_lookup_id);
            if let Some(&(_, i)) = student.and_then(|s| student_uid.get(s.as_ref())) {
                referenced[i].store(true, Ordering::Relaxed);
            }
        });
    }
    for (s, r) in students.iter_mut().zip(referenced) {
        s.referenced = r.into_inner();
    }
    // Candidate enrolments, grades and payments are kept as their records' places in their modules, and what
    // a pick needs is read again from the record's text: a large college's candidates stay a few MB.
    let (enrolments, grade_records, payment_records) = (module_records(&en), module_records(&gn), module_records(&pn));
    let ids = |rec: &'z JsonObject, names: &ZohoNames| -> Option<(Cow<'z, str>, Cow<'z, str>)> {
        let [id, student] = rec.raws(["id", names.get("student")]);
        Some((json_str(id?)?, json_lookup_id(student?)?))
    };
    // The (course id, user id) an enrolment or grade record links, for a candidate student.
    let pair_of = |rec: &'z JsonObject, names: &ZohoNames| -> Option<(i64, i64)> {
        let (_, student) = ids(rec, names)?;
        let class = json_lookup_id(rec.raw(names.get("class"))?)?;
        Some((*course_of.get(class.as_ref())?, student_uid.get(student.as_ref())?.0))
    };
    let start_date = |rec: &'z JsonObject| rec.raw(en.get("start_date")).and_then(json_str);
    let at = |i: usize| u32::try_from(i).expect("a module holds fewer than 2^32 records");

    let mut enrols: Vec<u32> = enrolments
        .par_iter()
        .enumerate()
        .filter_map(|(i, rec)| {
            let (courseid, userid) = pair_of(rec, &en)?;
            let me = m_enrol.get((courseid, userid))?;
            let active = rec.raw(en.get("status")).and_then(json_str).as_deref() == Some("Active");
            (active && me.status == 0 && me.roleid == settings.roles.student).then(|| at(i))
        })
        .collect();
    let mut grades: Vec<u32> = grade_records
        .par_iter()
        .enumerate()
        .filter_map(|(i, rec)| {
            let (courseid, userid) = pair_of(rec, &gn)?;
            let mg = m_grade.get((courseid, userid))?;
            mg.finalgrade?;
            (mg.scaleitem.is_none() && mg.grademax > mg.grademin).then(|| at(i))
        })
        .collect();
    // Whether a payment has a dashboard row: found by halving in the rows themselves when they are in Zoho id
    // order (as the generator writes them), else in a sorted copy of their ids.
    let row_id = |r: &'z JsonObject| r.raw("zoho_id").and_then(json_str);
    let rows = &moodle.plugin.payments;
    let copy: Option<Vec<Cow<str>>> = (!rows.is_sorted_by(|a, b| row_id(a) <= row_id(b))).then(|| {
        let mut ids: Vec<Cow<str>> = rows.iter().filter_map(row_id).collect();
        ids.sort_unstable();
        ids
    });
    let has_row = |id: &str| match &copy {
        Some(ids) => ids.binary_search_by(|x| x.as_ref().cmp(id)).is_ok(),
        None => rows.binary_search_by(|r| row_id(r).as_deref().cmp(&Some(id))).is_ok(),
    };
    let status_method = [pn.get("status"), pn.get("method")];
    let mut payments: Vec<u32> = payment_records
        .par_iter()
        .enumerate()
        .filter_map(|(i, rec)| {
            let (id, student) = ids(rec, &pn)?;
            let [status, method] = rec.raws(status_method);
            let unpaid = matches!(status.and_then(json_str).as_deref(), Some("Due" | "Overdue"));
            // An absent `method` reads as null too.
            let no_method = method.is_none_or(|m| m == "null");
            (unpaid && no_method && has_row(&id) && student_uid.contains_key(student.as_ref())).then(|| at(i))
        })
        .collect();
    let courses: Vec<i64> = {
        let mut c: Vec<i64> = course_of.values().copied().collect();
        c.sort_unstable();
        c
    };

    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_d1f7);
    students.shuffle(&mut rng);
    enrols.shuffle(&mut rng);
    grades.shuffle(&mut rng);
    payments.shuffle(&mut rng);

    let mut used: FxHashSet<String> = FxHashSet::default();
    let mut out = Vec::with_capacity(count);
    let conflict_target = match settings.conflicts {
        ConflictPolicy::MoodleWins => "zoho",
        _ => "moodle",
    };
    let drift =
        |kind, entity: &str, zoho_id: Option<&str>, moodle_id: Option<String>, target: &str, action: &str| Drift {
            kind,
            entity: entity.into(),
            zoho_id: zoho_id.map(str::to_string),
            moodle_id,
            target: target.into(),
            action: action.into(),
            fields: Vec::new(),
            conflict: false,
        };
    let pair = |c: i64, u: i64| Some(format!("{c}:{u}"));
    let today = AS_OF / 86_400;

    for i in 0..count {
        let kind = DriftKind::ALL[i % DriftKind::ALL.len()];
        let planned: Option<(SeededDrift, Cow<str>)> = match kind {
            DriftKind::ZohoEmailChanged
            | DriftKind::MoodleUserRenamed
            | DriftKind::MoodleUserSuspended
            | DriftKind::ZohoStudentDeleted => {
                // Deletions take students without dependent records, the other kinds leave those to them.
                let deleting = kind == DriftKind::ZohoStudentDeleted;
                let Some(s) = students.iter().find(|s| !used.contains(s.zoho.id.as_str()) && s.referenced != deleting)
                else {
                    continue;
                };
                let uid = Some(s.user.id.to_string());
                let (mut d, mutation) = match kind {
                    DriftKind::ZohoEmailChanged => {
                        let email = format!("{}.new@student.college.ac.uk", s.zoho.id_number.to_lowercase());
                        let mut f = Map::new();
                        f.insert(sn.get("email").into(), json!(email));
                        let m = Mutation::ZohoUpdate { module: sn.module().into(), id: s.zoho.id.clone(), fields: f };
                        (drift(kind, "student", Some(s.zoho.id.as_str()), uid, "moodle", "update"), m)
                    }
                    DriftKind::MoodleUserRenamed => {
                        let mut f = Map::new();
                        f.insert("lastname".into(), json!(format!("{}-Hughes", s.user.lastname)));
                        let m = Mutation::MoodleUpdateUser { id: s.user.id, fields: f };
                        (drift(kind, "student", Some(s.zoho.id.as_str()), uid, "moodle", "update"), m)
                    }
                    DriftKind::MoodleUserSuspended => {
                        let mut f = Map::new();
                        f.insert("suspended".into(), json!(true));
                        let m = Mutation::MoodleUpdateUser { id: s.user.id, fields: f };
                        (drift(kind, "student", Some(s.zoho.id.as_str()), uid, "moodle", "restore"), m)
                    }
                    _ => {
                        let m = Mutation::ZohoDelete { module: sn.module().into(), id: s.zoho.id.clone() };
                        (drift(kind, "student", Some(s.zoho.id.as_str()), uid, "moodle", "suspend"), m)
                    }
                };
                d.fields = match kind {
                    DriftKind::ZohoEmailChanged => vec!["email".into()],
                    DriftKind::MoodleUserRenamed => vec!["last_name".into()],
                    DriftKind::MoodleUserSuspended => vec!["suspended".into()],
                    _ => vec![],
                };
                Some((
                    SeededDrift { drift: d, mutations: vec![mutation], student: String::new() },
                    s.zoho.id.as_str().into(),
                ))
            }
            DriftKind::MoodleEnrolmentExtra => {
                let Some(s) = students.iter().find(|s| !used.contains(s.zoho.id.as_str()) && s.referenced) else {
                    continue;
                };
                let start = (s.user.id as usize) % courses.len().max(1);
                let Some(&c) = courses
                    .iter()
                    .cycle()
                    .skip(start)
                    .take(courses.len())
                    .find(|c| m_enrol.get((**c, s.user.id)).is_none() && m_grade.get((**c, s.user.id)).is_none())
                else {
                    continue;
                };
                let mut f = Fields::new();
                f.insert("active".into(), json!(true));
                // As a teacher does in the UI: no dates (the fake's `enrol` helper does the same).
                f.insert("start_date".into(), Value::Null);
                f.insert("end_date".into(), Value::Null);
                let item = enrollment::moodle_enrol(settings.roles.student, s.user.id, c, &f);
                let n = |k: &str| item.get(k).and_then(Value::as_i64).unwrap_or(0);
                let enrolment = MoodleEnrolment {
                    courseid: c,
                    userid: s.user.id,
                    roleid: n("roleid"),
                    status: n("suspend"),
                    timestart: n("timestart"),
                    timeend: n("timeend"),
                };
                let d = drift(kind, "enrollment", None, pair(c, s.user.id), "zoho", "create");
                Some((
                    SeededDrift {
                        drift: d,
                        mutations: vec![Mutation::MoodleEnrol { enrolment }],
                        student: String::new(),
                    },
                    s.zoho.id.as_str().into(),
                ))
            }
            DriftKind::MoodleEnrolmentMissing
            | DriftKind::ZohoEnrollmentStatusChanged
            | DriftKind::MoodleEnrolmentStatusChanged
            | DriftKind::EnrollmentConflict => {
                // An enrolment with a grade keeps its grade row when unenrolled; pick ungraded ones for
                // every enrolment drift so grades stay out of the expected list.
                let Some((id, student, start, (courseid, userid))) = enrols.iter().find_map(|&i| {
                    let rec = &enrolments[i as usize];
                    let pair = pair_of(rec, &en)?;
                    let (id, student) = ids(rec, &en)?;
                    let start = start_date(rec);
                    let free = !used.contains(student.as_ref()) && m_grade.get(pair).is_none();
                    (free && (kind != DriftKind::EnrollmentConflict || start.is_some()))
                        .then_some((id, student, start, pair))
                }) else {
                    continue;
                };
                let key = pair(courseid, userid);
                let (mut d, mutations) = match kind {
                    DriftKind::MoodleEnrolmentMissing => (
                        drift(kind, "enrollment", Some(&*id), key, "zoho", "update"),
                        vec![Mutation::MoodleUnenrol { courseid, userid }],
                    ),
                    DriftKind::ZohoEnrollmentStatusChanged => {
                        let mut f = Map::new();
                        f.insert(en.get("status").into(), json!("Withdrawn"));
                        (
                            drift(kind, "enrollment", Some(&*id), key, "moodle", "update"),
                            vec![Mutation::ZohoUpdate { module: en.module().into(), id: id.to_string(), fields: f }],
                        )
                    }
                    DriftKind::MoodleEnrolmentStatusChanged => (
                        drift(kind, "enrollment", Some(&*id), key, "zoho", "update"),
                        vec![Mutation::MoodleSetEnrolmentStatus { courseid, userid, status: 1 }],
                    ),
                    _ => {
                        // Zoho moves the start a week later, Moodle two weeks later: the same field, changed
                        // differently on both sides.
                        let start = canon::unix_from_date(&json!(start.as_deref().unwrap_or_default())) / 86_400;
                        let mut f = Map::new();
                        f.insert(en.get("start_date").into(), json!(date_str(start + 7)));
                        let me = m_enrol.get((courseid, userid)).expect("a candidate has its enrolment");
                        let mut d = drift(kind, "enrollment", Some(&*id), key, conflict_target, "update");
                        d.conflict = true;
                        (
                            d,
                            vec![
                                Mutation::ZohoUpdate { module: en.module().into(), id: id.to_string(), fields: f },
                                Mutation::MoodleSetEnrolmentDates {
                                    courseid,
                                    userid,
                                    timestart: (start + 14) * 86_400,
                                    timeend: me.timeend,
                                },
                            ],
                        )
                    }
                };
                d.fields = vec![if kind == DriftKind::EnrollmentConflict { "start_date" } else { "active" }.into()];
                Some((SeededDrift { drift: d, mutations, student: String::new() }, student))
            }
            DriftKind::MoodleGradeChanged => {
                let Some((id, student, (courseid, userid))) = grades.iter().find_map(|&i| {
                    let rec = &grade_records[i as usize];
                    let (id, student) = ids(rec, &gn)?;
                    (!used.contains(student.as_ref())).then_some((id, student, pair_of(rec, &gn)?))
                }) else {
                    continue;
                };
                let mg = m_grade.get((courseid, userid)).expect("a candidate has its grade");
                let (grademin, grademax) = (mg.grademin, mg.grademax);
                let was = mg.finalgrade.expect("a candidate has a numeric grade");
                let t = &settings.thresholds;
                let before = grade::percent(was, grademin, grademax);
                // Move it across a threshold so both the level and the percentage change.
                let pct = if before >= t.merit { (t.pass + t.merit) / 2.0 + 0.25 } else { t.distinction + 5.25 };
                let finalgrade = grademin + pct * (grademax - grademin) / 100.0;
                let mut d = drift(kind, "grade", Some(&*id), pair(courseid, userid), "zoho", "update");
                let old_level = grade::level(Some(was), grademin, grademax, None, t);
                let new_level = grade::level(Some(finalgrade), grademin, grademax, None, t);
                if old_level != new_level {
                    d.fields.push("grade".into());
                }
                d.fields.push("moodle_grade".into());
                let m = Mutation::MoodleSetGrade { courseid, userid, finalgrade: Some(finalgrade) };
                Some((SeededDrift { drift: d, mutations: vec![m], student: String::new() }, student))
            }
            DriftKind::ZohoPaymentChanged => {
                let Some((id, student)) = payments.iter().find_map(|&p| {
                    let (id, student) = ids(&payment_records[p as usize], &pn)?;
                    (!used.contains(student.as_ref())).then_some((id, student))
                }) else {
                    continue;
                };
                let id = &*id;
                let mut f = Map::new();
                f.insert(pn.get("status").into(), json!("Paid"));
                f.insert(pn.get("payment_date").into(), json!(date_str(today)));
                f.insert(pn.get("method").into(), json!("Card"));
                let mut d = drift(kind, "payment", Some(id), Some(id.to_string()), "moodle", "update");
                d.fields = vec!["method".into(), "payment_date".into(), "status".into()];
                let m = Mutation::ZohoUpdate { module: pn.module().into(), id: id.into(), fields: f };
                Some((SeededDrift { drift: d, mutations: vec![m], student: String::new() }, student))
            }
        };
        if let Some((mut p, student)) = planned {
            p.student = student.into_owned();
            used.insert(p.student.clone());
            out.push(p);
        }
    }
    out
}
