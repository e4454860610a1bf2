//! The generator's promises: determinism, shape, mess, and above all that `synced` agrees record by record
//! through the mapping, and `drifted` differs in exactly the drifted records.

use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Value};

use super::dashboard_rows::stored_row_text;
use super::*;
use crate::seed::{DriftKind, JsonObject, ZOHO_MODULES};
use crate::world::SYNCED_AT;
use zmsync_core::mapping::person::TEACHER_FIELDS;
use zmsync_core::mapping::{self, dashboard};
use zmsync_core::model::Kind;

fn college(students: usize, seed: u64, state: State) -> College {
    College::generate(GenOptions { students, seed, state, drift_count: 30 })
}

fn json_of(c: &College) -> String {
    serde_json::to_string(c).unwrap()
}

/// A module's records, parsed.
fn records(c: &College, module: &str) -> Vec<Value> {
    c.zoho.modules[module].iter().map(JsonObject::value).collect()
}

fn values(objects: &[JsonObject]) -> Vec<Value> {
    objects.iter().map(JsonObject::value).collect()
}

#[test]
fn generator_is_deterministic_for_a_seed() {
    let a = json_of(&college(120, 7, State::Drifted));
    let b = json_of(&college(120, 7, State::Drifted));
    assert_eq!(a, b, "same seed, different college");
    let c = json_of(&college(120, 8, State::Drifted));
    assert_ne!(a, c, "different seeds, same college");
}

#[test]
fn generator_states_share_the_zoho_data() {
    let empty = college(100, 3, State::Empty);
    let synced = college(100, 3, State::Synced);
    let strip = |c: &College, m: &str| -> Vec<Value> {
        records(c, m)
            .iter()
            .map(|r| {
                let mut r = r.clone();
                for k in ["Student_Moodle_ID", "Teacher_Moodle_ID", "Moodle_Course_ID", "Modified_Time", "Modified_By"]
                {
                    r.as_object_mut().unwrap().remove(k);
                }
                r
            })
            .collect()
    };
    for m in ZOHO_MODULES.iter().filter(|m| **m != "BTEC_Grades") {
        assert!(strip(&empty, m) == strip(&synced, m), "{m} differs between empty and synced");
    }
    assert!(records(&empty, "BTEC_Grades").is_empty() && !records(&synced, "BTEC_Grades").is_empty());
    // A fresh Moodle: a default category, nothing else (the fake adds guest, admin and the site course).
    assert_eq!(empty.moodle.categories.len(), 1);
    assert!(empty.moodle.users.is_empty() && empty.moodle.courses.is_empty() && empty.moodle.enrolments.is_empty());
    assert!(empty.drift.is_empty() && synced.drift.is_empty());
    for s in &records(&empty, "BTEC_Students") {
        assert!(s["Student_Moodle_ID"].is_null());
    }
}

#[test]
fn generator_counts_and_shapes() {
    let c = college(1500, 1, State::Synced);
    let n = |m| records(&c, m).len();
    assert_eq!(n("BTEC_Students"), 1500);
    assert_eq!(n("BTEC_Teachers"), 50);
    assert_eq!(n("BTEC_Classes"), 200);
    assert_eq!(n("BTEC_Units"), 200);
    assert_eq!(n("BTEC_Registrations"), 1470, "one per student but the 30 new intakes");
    assert!((1470 * 9 / 2..=1470 * 11 / 2).contains(&n("BTEC_Enrollments")), "{}", n("BTEC_Enrollments"));
    assert!(n("BTEC_Payments") > 2000, "the fake must page with page_token: {}", n("BTEC_Payments"));
    assert!(n("BTEC_Grades") > 1000 && n("BTEC_Grades") < n("BTEC_Enrollments"));
    assert_eq!(n("BTEC_Attendance"), 0);
    assert_eq!(c.zoho.modules.len(), ZOHO_MODULES.len());

    let id_ok = |v: &Value| v.as_str().map(|s| s.len() == 19 && s.bytes().all(|b| b.is_ascii_digit())).unwrap_or(false);
    let time_ok = |v: &Value| {
        v.as_str().map(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok() && s.len() == 25).unwrap_or(false)
    };
    let mut ids = HashSet::new();
    for (module, recs) in &c.zoho.modules {
        let recs = values(recs);
        for r in &recs {
            assert!(id_ok(&r["id"]), "{module}: {}", r["id"]);
            assert!(ids.insert(r["id"].as_str().unwrap().to_string()), "duplicate id {}", r["id"]);
            assert!(r["Name"].is_string(), "{module}: Name");
            assert!(time_ok(&r["Created_Time"]) && time_ok(&r["Modified_Time"]), "{module}: {r}");
            assert!(r["Created_By"]["id"].is_string() && r["Modified_By"]["name"].is_string());
        }
        // Records are in id order, as the fake's default sort returns them.
        let sorted: Vec<&str> = recs.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert!(sorted.windows(2).all(|w| w[0] < w[1]), "{module} not in id order");
    }
    // Lookups name their target's Name.
    let all: Vec<Value> = c.zoho.modules.values().flat_map(|m| values(m)).collect();
    let names: HashMap<&str, &str> =
        all.iter().map(|r| (r["id"].as_str().unwrap(), r["Name"].as_str().unwrap())).collect();
    for r in &all {
        for (k, v) in r.as_object().unwrap() {
            if let (Some(id), Some(name)) = (v.get("id").and_then(Value::as_str), v.get("name")) {
                if !k.ends_with("_By") {
                    assert_eq!(names.get(id).copied(), name.as_str(), "{k} of {}", r["id"]);
                }
            }
        }
    }
    // Unique fields are unique.
    for (m, f) in [
        ("BTEC_Students", "Student_ID_Number"),
        ("BTEC_Teachers", "Teacher_ID_Number"),
        ("BTEC_Units", "Unit_Code"),
        ("BTEC_Classes", "Class_Short_Name"),
    ] {
        let recs = records(&c, m);
        let set: HashSet<&str> = recs.iter().map(|r| r[f].as_str().unwrap()).collect();
        assert_eq!(set.len(), recs.len(), "{m}.{f}");
    }
    // Picklists hold only their values.
    let pick = |m: &str, f: &str, allowed: &[&str]| {
        for r in &records(&c, m) {
            assert!(r[f].is_null() || allowed.contains(&r[f].as_str().unwrap()), "{m}.{f} = {}", r[f]);
        }
    };
    pick("BTEC_Students", "Status", &["Active", "Inactive", "Suspended", "Withdrawn", "Graduated"]);
    pick("BTEC_Classes", "Status", &["Active", "Inactive", "Completed"]);
    pick("BTEC_Enrollments", "Status", &["Active", "Withdrawn", "Completed"]);
    pick("BTEC_Registrations", "Currency", &["USD", "GBP", "EUR", "AED", "INR"]);
    pick("BTEC_Registrations", "Status", &["Active", "Completed", "Withdrawn", "Cancelled"]);
    pick("BTEC_Payments", "Status", &["Paid", "Due", "Overdue"]);
    pick("BTEC_Payments", "Method", &["Cash", "Card", "Bank Transfer", "Cheque"]);
    pick("BTEC_Grades", "Grade", &["Pass", "Merit", "Distinction", "Refer"]);

    // The Moodle side: ids after the guest and admin, the sync's category, the roles of settings.
    assert!(c.moodle.users.iter().all(|u| u.id >= 3 && u.auth == "manual"));
    assert!(c.moodle.categories.iter().any(|k| k.idnumber == "zmsync" && k.id == SYNC_CATEGORY_ID));
    assert!(c.moodle.courses.iter().all(|k| k.id >= 2 && k.categoryid == SYNC_CATEGORY_ID));
    let roles: BTreeSet<i64> = c.moodle.enrolments.iter().map(|e| e.roleid).collect();
    assert_eq!(roles, BTreeSet::from([3, 5]));
    assert_eq!(c.moodle.enrolments.iter().filter(|e| e.roleid == 3).count(), 200);
    let row = &c.moodle.plugin.registrations[0].value();
    let keys: Vec<&str> = row.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "id",
            "zoho_id",
            "userid",
            "student_zoho_id",
            "program",
            "registration_date",
            "total_fee",
            "scholarship_percent",
            "currency",
            "status",
            "timemodified"
        ]
    );
    let money = |v: &Value| v.as_str().map(|s| s.split_once('.').map(|(_, f)| f.len() == 2).unwrap_or(false));
    for p in &values(&c.moodle.plugin.payments) {
        assert_eq!(money(&p["amount"]), Some(true), "{p}");
        assert!(p["method"].is_string() && (p["payment_date"].is_null() || p["payment_date"].is_string()));
    }
    assert!(values(&c.moodle.plugin.units).iter().all(|u| u["credits"].is_i64()));
}

#[test]
fn generator_mess_is_present() {
    let c = college(1500, 1, State::Synced);
    let students = records(&c, "BTEC_Students");
    let emails: Vec<Option<&str>> = students.iter().map(|s| s["Academic_Email"].as_str()).collect();
    let missing = emails.iter().filter(|e| e.is_none()).count();
    assert!((3..60).contains(&missing), "students without email: {missing}");
    assert!(emails.iter().flatten().any(|e| e.chars().any(|c| c.is_ascii_uppercase())), "no mixed-case email");
    assert!(emails.iter().flatten().any(|e| e.starts_with(' ') || e.ends_with(' ')), "no padded email");
    let mut seen = HashMap::new();
    for e in emails.iter().flatten() {
        *seen.entry(e.trim().to_lowercase()).or_insert(0) += 1;
    }
    assert!(seen.values().any(|n| *n > 1), "no duplicate email");
    let text: String = students.iter().map(|s| format!("{} {} ", s["First_Name"], s["Last_Name"])).collect();
    for needle in ["Zoë", "Nguyễn", "O'Brien"] {
        assert!(text.contains(needle), "no {needle}");
    }
    let phones: BTreeSet<String> = students
        .iter()
        .filter_map(|s| s["Phone"].as_str())
        .map(|p| p.chars().map(|c| if c.is_ascii_digit() { '9' } else { c }).collect())
        .collect();
    assert!(phones.len() >= 4, "phone formats: {phones:?}");
    let offsets: BTreeSet<&str> = students.iter().map(|s| &s["Modified_Time"].as_str().unwrap()[19..]).collect();
    assert_eq!(offsets, BTreeSet::from(["+00:00", "+05:30"]));
    // Skipped students: no email, or sharing one with a smaller id; no user, enrolments or rows.
    let users = students.iter().filter(|s| !s["Student_Moodle_ID"].is_null()).count();
    assert!(users < 1500 && users > 1400, "{users}");
    // The generator's one pass picks the same students as the general rule.
    let with_users = students_with_users(&c.zoho.modules["BTEC_Students"], &Settings::defaults());
    let given: HashSet<String> = students
        .iter()
        .filter(|s| !s["Student_Moodle_ID"].is_null())
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(with_users, given);
}

#[test]
fn generator_payments_page_beyond_2000() {
    let c = college(1500, 99, State::Empty);
    assert!(records(&c, "BTEC_Payments").len() > 2000);
}

// ---- the key invariant ----------------------------------------------------------------------------------

/// Pairs every Zoho record with its Moodle counterpart (by the Moodle ids the Zoho records carry) and maps
/// both through `mapping::map_record`. Returns what differs: `(entity, "zoho:<id>")` for a Zoho record whose
/// counterpart is missing or has another fingerprint, `(entity, "moodle:<key>")` for a Moodle object no Zoho
/// record claims.
fn differences(c: &College) -> BTreeSet<(String, String)> {
    let s = Settings::defaults();
    let map = |k: Kind, v: &Value| mapping::map_record(k, v, &s).unwrap_or_else(|e| panic!("{k}: {e}: {v}"));
    let mut out = BTreeSet::new();
    let users: HashMap<i64, Value> = c.moodle.users.iter().map(|u| (u.id, json!(u))).collect();
    let mut claimed_users = HashSet::new();
    let mid = |v: &Value, f: &str| v[f].as_str().and_then(|s| s.parse::<i64>().ok());

    for (module, kind, field, projection) in [
        ("BTEC_Students", Kind::Student, "Student_Moodle_ID", zmsync_core::mapping::person::STUDENT_FIELDS),
        ("BTEC_Teachers", Kind::Teacher, "Teacher_Moodle_ID", TEACHER_FIELDS),
    ] {
        for r in &records(c, module) {
            let z = map(kind, r);
            let Some(uid) = mid(r, field) else { continue };
            claimed_users.insert(uid);
            let same = users.get(&uid).map(|u| map(Kind::MoodleUser, u).project(projection).fingerprint);
            if same.as_deref() != Some(z.fingerprint.as_str()) {
                out.insert((kind.name().to_string(), format!("zoho:{}", z.key)));
            }
        }
    }
    for u in &c.moodle.users {
        if !claimed_users.contains(&u.id) {
            out.insert(("student".into(), format!("moodle:{}", u.id)));
        }
    }

    let user_of = |module: &str, field: &str| -> HashMap<String, i64> {
        records(c, module).iter().filter_map(|r| Some((r["id"].as_str()?.to_string(), mid(r, field)?))).collect()
    };
    let student_uid = user_of("BTEC_Students", "Student_Moodle_ID");
    let course_of = user_of("BTEC_Classes", "Moodle_Course_ID");

    let courses: HashMap<i64, Value> = c.moodle.courses.iter().map(|k| (k.id, json!(k))).collect();
    for r in &records(c, "BTEC_Classes") {
        let z = map(Kind::Class, r);
        let m = course_of.get(&z.key).and_then(|id| courses.get(id)).map(|k| map(Kind::MoodleCourse, k));
        assert_eq!(m.as_ref().map(|m| m.refs["idnumber"].clone()), Some(json!(z.key)), "course idnumber");
        if m.map(|m| m.fingerprint) != Some(z.fingerprint) {
            out.insert(("class".into(), format!("zoho:{}", z.key)));
        }
    }

    let enrolments: HashMap<(i64, i64), Value> =
        c.moodle.enrolments.iter().filter(|e| e.roleid == 5).map(|e| ((e.courseid, e.userid), json!(e))).collect();
    let mut claimed = HashSet::new();
    for r in &records(c, "BTEC_Enrollments") {
        let z = map(Kind::Enrollment, r);
        let (Some(u), Some(k)) = (
            z.ref_str("student_id").and_then(|s| student_uid.get(s)),
            z.ref_str("class_id").and_then(|k| course_of.get(k)),
        ) else {
            continue; // a skipped student: no Moodle side at all
        };
        claimed.insert((*k, *u));
        let m = enrolments.get(&(*k, *u)).map(|e| map(Kind::MoodleEnrolment, e).fingerprint);
        if m != Some(z.fingerprint) {
            out.insert(("enrollment".into(), format!("zoho:{}", z.key)));
        }
    }
    for key in enrolments.keys().filter(|k| !claimed.contains(k)) {
        out.insert(("enrollment".into(), format!("moodle:{}:{}", key.0, key.1)));
    }
    // Teachers are enrolled with the teacher role in the classes they teach.
    let teacher_uid = user_of("BTEC_Teachers", "Teacher_Moodle_ID");
    let teaching: HashSet<(i64, i64)> =
        c.moodle.enrolments.iter().filter(|e| e.roleid == 3).map(|e| (e.courseid, e.userid)).collect();
    for r in &records(c, "BTEC_Classes") {
        let t = teacher_uid[r["Teacher"]["id"].as_str().unwrap()];
        assert!(teaching.contains(&(course_of[r["id"].as_str().unwrap()], t)), "teacher not enrolled");
    }

    let grades: HashMap<(i64, i64), Value> =
        c.moodle.grades.iter().map(|g| ((g.courseid, g.userid), json!(g))).collect();
    let mut claimed = HashSet::new();
    for r in &records(c, "BTEC_Grades") {
        let z = map(Kind::Grade, r);
        let u = student_uid[z.ref_str("student_id").unwrap()];
        let k = course_of[z.ref_str("class_id").unwrap()];
        claimed.insert((k, u));
        let m = grades.get(&(k, u)).map(|g| map(Kind::MoodleGrade, g).fingerprint);
        if m != Some(z.fingerprint) {
            out.insert(("grade".into(), format!("zoho:{}", z.key)));
        }
    }
    for key in grades.keys().filter(|k| !claimed.contains(k)) {
        out.insert(("grade".into(), format!("moodle:{}:{}", key.0, key.1)));
    }

    for (module, kind, mkind, rows) in [
        ("BTEC_Units", Kind::Unit, Kind::DashboardUnit, &c.moodle.plugin.units),
        ("BTEC_Registrations", Kind::Registration, Kind::DashboardRegistration, &c.moodle.plugin.registrations),
        ("BTEC_Payments", Kind::Payment, Kind::DashboardPayment, &c.moodle.plugin.payments),
    ] {
        let rows = values(rows);
        let rows: HashMap<String, &Value> =
            rows.iter().map(|r| (r["zoho_id"].as_str().unwrap().to_string(), r)).collect();
        let mut claimed = HashSet::new();
        for r in &records(c, module) {
            let z = map(kind, r);
            if dashboard::personal(kind) {
                let Some(u) = z.field_str("student").and_then(|s| student_uid.get(s)) else { continue };
                assert_eq!(rows.get(&z.key).map(|r| r["userid"].clone()), Some(json!(u)), "row userid");
            }
            claimed.insert(z.key.clone());
            if rows.get(&z.key).map(|m| map(mkind, m).fingerprint) != Some(z.fingerprint) {
                out.insert((kind.name().to_string(), format!("zoho:{}", z.key)));
            }
        }
        for key in rows.keys().filter(|k| !claimed.contains(*k)) {
            out.insert((kind.name().to_string(), format!("moodle:{key}")));
        }
    }
    out
}

#[test]
fn generator_synced_agrees_through_the_mapping() {
    for seed in [1, 2] {
        let c = college(400, seed, State::Synced);
        let d = differences(&c);
        assert!(d.is_empty(), "synced college differs: {d:?}");
        // Every student with a user is paired; skipped students have nothing in Moodle.
        let paired = records(&c, "BTEC_Students").iter().filter(|s| !s["Student_Moodle_ID"].is_null()).count();
        assert_eq!(paired + 50, c.moodle.users.len());
        let graded_users: HashSet<i64> = c.moodle.grades.iter().map(|g| g.userid).collect();
        assert!(graded_users.iter().all(|u| c.moodle.users.iter().any(|x| x.id == *u)));
    }
}

#[test]
fn generator_drifted_differs_in_exactly_the_drifted_records() {
    for (students, k) in [(400, 30), (1500, 11), (200, 5)] {
        let c = College::generate(GenOptions { students, seed: 5, state: State::Drifted, drift_count: k });
        assert_eq!(c.drift.len(), k, "asked for {k}");
        if k >= 11 {
            let kinds: HashSet<DriftKind> = c.drift.iter().map(|d| d.kind).collect();
            assert_eq!(kinds.len(), DriftKind::ALL.len(), "every kind at K >= 11");
        }
        let expected: BTreeSet<(String, String)> = c
            .drift
            .iter()
            .map(|d| {
                let zoho_gone = d.kind == DriftKind::ZohoStudentDeleted || d.zoho_id.is_none();
                let key = if zoho_gone {
                    format!("moodle:{}", d.moodle_id.as_ref().unwrap())
                } else {
                    format!("zoho:{}", d.zoho_id.as_ref().unwrap())
                };
                (d.entity.clone(), key)
            })
            .collect();
        assert_eq!(expected.len(), c.drift.len(), "two drifts touch one record");
        assert_eq!(differences(&c), expected);
        // A deleted student went to the recycle bin.
        let deleted = c.drift.iter().filter(|d| d.kind == DriftKind::ZohoStudentDeleted).count();
        assert_eq!(c.zoho.deleted.get("BTEC_Students").map(Vec::len).unwrap_or(0), deleted);
    }
}

#[test]
fn drift_records_follow_their_kinds() {
    let c = college(600, 11, State::Drifted);
    for d in &c.drift {
        let want: (&str, &str, &str, &[&str], bool) = match d.kind {
            DriftKind::ZohoEmailChanged => ("student", "moodle", "update", &["email"], false),
            DriftKind::MoodleUserRenamed => ("student", "moodle", "update", &["last_name"], false),
            DriftKind::MoodleUserSuspended => ("student", "moodle", "restore", &["suspended"], false),
            DriftKind::MoodleEnrolmentMissing => ("enrollment", "zoho", "update", &["active"], false),
            DriftKind::MoodleEnrolmentExtra => ("enrollment", "zoho", "create", &[], false),
            DriftKind::ZohoEnrollmentStatusChanged => ("enrollment", "moodle", "update", &["active"], false),
            DriftKind::MoodleEnrolmentStatusChanged => ("enrollment", "zoho", "update", &["active"], false),
            DriftKind::EnrollmentConflict => ("enrollment", "moodle", "update", &["start_date"], true),
            DriftKind::MoodleGradeChanged => ("grade", "zoho", "update", &["grade", "moodle_grade"], false),
            DriftKind::ZohoPaymentChanged => {
                ("payment", "moodle", "update", &["method", "payment_date", "status"], false)
            }
            DriftKind::ZohoStudentDeleted => ("student", "moodle", "suspend", &[], false),
        };
        let got = (d.entity.as_str(), d.target.as_str(), d.action.as_str(), d.fields.as_slice(), d.conflict);
        let fields: Vec<&str> = got.3.iter().map(String::as_str).collect();
        assert_eq!((got.0, got.1, got.2, fields.as_slice(), got.4), want, "{d:?}");
        assert_eq!(d.zoho_id.is_some(), d.kind != DriftKind::MoodleEnrolmentExtra, "{d:?}");
        assert!(d.moodle_id.is_some(), "{d:?}");
    }
}

#[test]
fn drift_is_planned_away_from_excluded_students() {
    let c = college(300, 4, State::Synced);
    let s = Settings::defaults();
    let first = drift::plan(&c.zoho, &c.moodle, 11, 1, &HashSet::new(), &s);
    let touched = drift::students_touched(&first);
    assert_eq!(touched.len(), 11, "one student per drift");
    let second = drift::plan(&c.zoho, &c.moodle, 11, 2, &touched, &s);
    assert_eq!(second.len(), 11);
    assert!(drift::students_touched(&second).is_disjoint(&touched));
}

#[test]
fn drift_plan_does_not_depend_on_the_order_of_the_moodle_lists() {
    // The plan finds users, enrolments, grades and payment rows by halving in sorted lists; a running
    // sandbox's lists (new rows appended) need not be in the generator's order.
    let c = college(300, 5, State::Synced);
    let s = Settings::defaults();
    let want = drift::plan(&c.zoho, &c.moodle, 22, 3, &HashSet::new(), &s);
    assert_eq!(want.len(), 22);
    let mut shuffled = c.moodle.clone();
    shuffled.users.reverse();
    shuffled.enrolments.reverse();
    shuffled.grades.reverse();
    shuffled.plugin.payments.reverse();
    assert_eq!(drift::plan(&c.zoho, &shuffled, 22, 3, &HashSet::new(), &s), want);
    // Without the payments' dashboard rows, no payment drift can be planned.
    shuffled.plugin.payments.clear();
    let without = drift::plan(&c.zoho, &shuffled, 22, 3, &HashSet::new(), &s);
    assert!(without.iter().all(|p| p.drift.kind != DriftKind::ZohoPaymentChanged));
    assert!(want.iter().any(|p| p.drift.kind == DriftKind::ZohoPaymentChanged));
}

#[test]
fn generator_stored_row_text_is_the_stored_row_json() {
    let rows = [
        (
            Kind::Unit,
            json!({"zoho_id": "1", "unit_code": "A/600/1000", "unit_name": "Zoë's \"unit\"", "credits": "15"}),
        ),
        (Kind::Unit, json!({"zoho_id": "2", "unit_code": "B", "unit_name": "U", "level": "3", "criteria": "P1\nP2"})),
        (
            Kind::Registration,
            json!({"zoho_id": "3", "userid": 7, "student_zoho_id": "9", "program": "P",
            "total_fee": "8000.00", "currency": "GBP"}),
        ),
        (
            Kind::Payment,
            json!({"zoho_id": "4", "userid": 7, "student_zoho_id": "9", "amount": "12.50",
            "due_date": "2026-01-15", "status": "Due"}),
        ),
        (
            Kind::Payment,
            json!({"zoho_id": "5", "userid": 8, "student_zoho_id": "9", "registration_zoho_id": "3",
            "amount": "1.00", "payment_date": "2026-01-10", "due_date": "2026-01-15", "status": "Paid",
            "method": "Card"}),
        ),
    ];
    for (kind, row) in rows {
        let Value::Object(row) = row else { unreachable!() };
        let want = serde_json::to_string(&stored_row(kind, row.clone(), 42, SYNCED_AT)).unwrap();
        let entries = row.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        assert_eq!(stored_row_text(kind, entries, 42, SYNCED_AT).as_str(), want);
    }
}
