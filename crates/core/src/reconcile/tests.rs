//! Rule-by-rule tests on synthetic records, built through the real mapping functions.

use serde_json::{json, Value};

use super::plan::{Action, GuardOutcome, IssueKind, Op, Plan};
use super::*;
use crate::mapping::map_record;
use crate::model::Side;
use crate::settings::{ConflictPolicy, RemovalAction};

const T0: i64 = 1_767_225_600; // 2026-01-01

fn rec(kind: Kind, raw: Value) -> Record {
    map_record(kind, &raw, &Settings::defaults()).expect("maps")
}

fn student(id: &str, idn: &str, email: &str, first: &str, status: &str, moodle: Option<&str>) -> Record {
    rec(
        Kind::Student,
        json!({"id": id, "Name": idn, "First_Name": first, "Last_Name": "Smith", "Academic_Email": email,
               "Student_ID_Number": idn, "Phone": null, "Status": status, "Student_Moodle_ID": moodle,
               "Modified_Time": "2026-01-10T10:00:00+00:00"}),
    )
}

fn user(id: i64, idn: &str, email: &str, first: &str, suspended: bool) -> Record {
    rec(
        Kind::MoodleUser,
        json!({"id": id, "username": idn.to_lowercase(), "firstname": first, "lastname": "Smith", "email": email,
               "idnumber": idn, "auth": "manual", "suspended": suspended, "phone1": ""}),
    )
}

fn teacher(id: &str, idn: &str, email: &str, moodle: Option<&str>) -> Record {
    rec(
        Kind::Teacher,
        json!({"id": id, "First_Name": "Tess", "Last_Name": "Teach", "Academic_Email": email,
               "Teacher_ID_Number": idn, "Teacher_Moodle_ID": moodle}),
    )
}

fn tuser(id: i64, idn: &str, email: &str) -> Record {
    rec(
        Kind::MoodleUser,
        json!({"id": id, "username": idn.to_lowercase(), "firstname": "Tess", "lastname": "Teach", "email": email,
               "idnumber": idn, "auth": "manual", "suspended": false, "phone1": "555"}),
    )
}

fn class(id: &str, teacher: Option<&str>, moodle: Option<&str>) -> Record {
    rec(
        Kind::Class,
        json!({"id": id, "Class_Name": "Networking", "Class_Short_Name": format!("NET-{id}"), "Start_Date": "2026-01-01",
               "End_Date": null, "Status": "Active", "Teacher": teacher.map(|t| json!({"id": t})),
               "Unit": {"id": "900"}, "Moodle_Course_ID": moodle}),
    )
}

fn course(id: i64, idnumber: &str) -> Record {
    rec(
        Kind::MoodleCourse,
        json!({"id": id, "fullname": "Networking", "shortname": format!("NET-{idnumber}"), "idnumber": idnumber,
               "startdate": T0, "enddate": 0, "visible": 1}),
    )
}

fn enrollment(id: &str, s: &str, c: &str, status: &str, start: &str) -> Record {
    rec(
        Kind::Enrollment,
        json!({"id": id, "Student": {"id": s}, "Class": {"id": c}, "Status": status, "Start_Date": start,
               "End_Date": null, "Modified_Time": "2026-01-10T10:00:00+00:00"}),
    )
}

fn enrolment(course: i64, user: i64, role: i64, active: bool, start: i64, modified: i64) -> Record {
    rec(
        Kind::MoodleEnrolment,
        json!({"courseid": course, "userid": user, "roleids": [role], "status": if active { 0 } else { 1 },
               "timestart": start, "timeend": 0, "timemodified": modified}),
    )
}

fn zgrade(id: &str, s: &str, c: &str, grade: &str, pct: f64) -> Record {
    rec(Kind::Grade, json!({"id": id, "Student": {"id": s}, "Class": {"id": c}, "Grade": grade, "Moodle_Grade": pct}))
}

fn mgrade(course: i64, user: i64, finalgrade: f64) -> Record {
    rec(
        Kind::MoodleGrade,
        json!({"courseid": course, "userid": user, "finalgrade": finalgrade, "grademin": 0, "grademax": 100,
               "timemodified": T0}),
    )
}

/// The dashboard row of Zoho grade `id` (no unit, no date).
fn dgrade(id: &str, s: &str, user: i64, c: &str, grade: &str, pct: f64) -> Record {
    rec(
        Kind::DashboardGrade,
        json!({"id": 1, "zoho_id": id, "userid": user, "student_zoho_id": s, "unit_zoho_id": "", "class_zoho_id": c,
               "grade": grade, "moodle_grade": pct, "graded_date": null}),
    )
}

fn zpayment(id: &str, s: &str, amount: &str) -> Record {
    rec(
        Kind::Payment,
        json!({"id": id, "Student": {"id": s}, "Registration": {"id": "r1"}, "Amount": amount,
               "Payment_Date": "2026-01-15", "Due_Date": "2026-01-15", "Status": "Paid", "Method": "Card"}),
    )
}

fn mpayment(id: &str, s: &str, user: i64, amount: &str) -> Record {
    rec(
        Kind::DashboardPayment,
        json!({"id": 1, "zoho_id": id, "userid": user, "student_zoho_id": s, "registration_zoho_id": "r1",
               "amount": amount, "payment_date": "2026-01-15", "due_date": "2026-01-15", "status": "Paid",
               "method": "Card"}),
    )
}

/// A small college in agreement: students 101, 102 (users 11, 12), teacher 201 (user 21), class 301 (course
/// 31) taught by 201, both students enrolled, 101 graded, one payment of 101.
struct Fx {
    inputs: Inputs,
    settings: Settings,
}

impl Fx {
    fn synced() -> Fx {
        let mut i = Inputs::default();
        i.records.insert(
            Kind::Student,
            vec![
                student("101", "S-1", "a@x.edu", "Ann", "Active", Some("11")),
                student("102", "S-2", "b@x.edu", "Bob", "Active", Some("12")),
            ],
        );
        i.records.insert(Kind::Teacher, vec![teacher("201", "T-1", "t@x.edu", Some("21"))]);
        i.records.insert(
            Kind::MoodleUser,
            vec![
                user(11, "S-1", "a@x.edu", "Ann", false),
                user(12, "S-2", "b@x.edu", "Bob", false),
                tuser(21, "T-1", "t@x.edu"),
                user(2, "", "admin@x.edu", "Admin", false),
            ],
        );
        i.records.insert(Kind::Class, vec![class("301", Some("201"), Some("31"))]);
        i.records.insert(Kind::MoodleCourse, vec![course(31, "301"), course(1, "")]);
        i.records.insert(
            Kind::Enrollment,
            vec![
                enrollment("401", "101", "301", "Active", "2026-01-01"),
                enrollment("402", "102", "301", "Active", "2026-01-01"),
            ],
        );
        i.records.insert(
            Kind::MoodleEnrolment,
            vec![
                enrolment(31, 11, 5, true, T0, T0),
                enrolment(31, 12, 5, true, T0, T0),
                rec(
                    Kind::MoodleEnrolment,
                    json!({"courseid": 31, "userid": 21, "roleids": [3], "status": 0, "timestart": 0, "timeend": 0}),
                ),
            ],
        );
        i.records.insert(Kind::Grade, vec![zgrade("501", "101", "301", "Merit", 65.0)]);
        i.records.insert(Kind::MoodleGrade, vec![mgrade(31, 11, 65.0)]);
        i.records.insert(Kind::DashboardGrade, vec![dgrade("501", "101", 11, "301", "Merit", 65.0)]);
        i.records.insert(Kind::Payment, vec![zpayment("601", "101", "2000")]);
        i.records.insert(Kind::DashboardPayment, vec![mpayment("601", "101", 11, "2000")]);
        let mut fx = Fx { inputs: i, settings: Settings::defaults() };
        fx.baseline();
        fx
    }

    /// What `baseline` stores, in memory.
    fn baseline(&mut self) {
        let a = analyse(&self.inputs, &self.settings, &Options { collect_agreed: true, ..Options::default() });
        for (entity, agreed) in a.agreed {
            for g in agreed {
                if let (Some(z), Some(m)) = (&g.zoho_id, &g.moodle_id) {
                    let links = self.inputs.links.entry(entity).or_default();
                    links.retain(|l| &l.zoho_id != z);
                    links.push(Link { entity, zoho_id: z.clone(), moodle_id: m.clone() });
                }
                let states = self.inputs.states.entry(entity).or_default();
                states.retain(|s| s.key != g.key);
                states.push(SyncState {
                    entity,
                    key: g.key,
                    fields: g.fields,
                    fingerprint: g.fingerprint,
                    synced_at: chrono::Utc::now(),
                    run_id: None,
                });
            }
        }
    }

    fn set(&mut self, kind: Kind, key: &str, r: Record) {
        let v = self.inputs.records.entry(kind).or_default();
        v.retain(|x| x.key != key);
        v.push(r);
    }

    fn remove(&mut self, kind: Kind, key: &str) {
        self.inputs.records.entry(kind).or_default().retain(|x| x.key != key);
    }

    fn plan(&self) -> Plan {
        analyse(&self.inputs, &self.settings, &Options::default()).plan
    }
}

fn only(plan: &Plan) -> &Op {
    assert_eq!(plan.ops.len(), 1, "expected exactly one op: {:#?}", plan.ops);
    &plan.ops[0]
}

fn fields(op: &Op) -> Vec<&str> {
    op.changes.keys().map(String::as_str).collect()
}

#[test]
fn reconcile_synced_world_plans_nothing() {
    let fx = Fx::synced();
    let p = fx.plan();
    assert!(p.ops.is_empty(), "{:#?}", p.ops);
    assert!(p.issues.is_empty(), "{:#?}", p.issues);
    assert!(p.guards.is_empty());
    assert_eq!(p.counts[&Entity::Student].unchanged, 2);
    assert_eq!(p.counts[&Entity::Enrollment].unchanged, 2);
    assert_eq!(p.counts[&Entity::Teaching].unchanged, 1);
    assert_eq!(p.counts[&Entity::Grade].unchanged, 1);
    assert_eq!(p.counts[&Entity::Payment].unchanged, 1);
}

#[test]
fn reconcile_fast_path_skips_fields_when_fingerprints_agree() {
    let mut fx = Fx::synced();
    // Different fields under equal fingerprints: only a skipped comparison plans nothing.
    let mut u = user(11, "S-1", "a@x.edu", "Changed", false);
    u.fingerprint = fx.inputs.records(Kind::Student)[0].fingerprint.clone();
    fx.set(Kind::MoodleUser, "11", u);
    assert!(fx.plan().ops.is_empty());
    // The same record with its true fingerprint is compared and renamed back.
    fx.set(Kind::MoodleUser, "11", user(11, "S-1", "a@x.edu", "Changed", false));
    let p = fx.plan();
    let op = only(&p);
    assert_eq!((op.action, op.target, fields(op)), (Action::Update, Side::Moodle, vec!["first_name"]));
    assert_eq!(op.changes["first_name"], json!("Ann"));
    assert_eq!(op.before["first_name"], json!("Changed"));
}

#[test]
fn reconcile_zoho_email_change_updates_moodle() {
    let mut fx = Fx::synced();
    fx.set(Kind::Student, "101", student("101", "S-1", "ann.new@x.edu", "Ann", "Active", Some("11")));
    let p = fx.plan();
    let op = only(&p);
    assert_eq!((op.entity, op.action, op.target), (Entity::Student, Action::Update, Side::Moodle));
    assert_eq!((op.zoho_id.as_deref(), op.moodle_id.as_deref()), (Some("101"), Some("11")));
    assert_eq!(op.changes["email"], json!("ann.new@x.edu"));
}

#[test]
fn reconcile_suspend_and_restore() {
    let mut fx = Fx::synced();
    fx.set(Kind::MoodleUser, "11", user(11, "S-1", "a@x.edu", "Ann", true));
    let p = fx.plan();
    let op = only(&p);
    assert_eq!((op.action, fields(op)), (Action::Restore, vec!["suspended"]));
    let mut fx = Fx::synced();
    fx.set(Kind::Student, "102", student("102", "S-2", "b@x.edu", "Bob", "Withdrawn", Some("12")));
    let p = fx.plan();
    let op = only(&p);
    assert_eq!((op.action, op.moodle_id.as_deref()), (Action::Suspend, Some("12")));
    assert_eq!(op.changes["suspended"], json!(true));
}

#[test]
fn reconcile_staff_users_and_foreign_courses_are_not_ours() {
    let mut fx = Fx::synced();
    fx.set(Kind::MoodleUser, "99", user(99, "STAFF", "staff@x.edu", "Staff", false));
    fx.set(Kind::MoodleCourse, "98", course(98, "someone-else"));
    fx.inputs.records.get_mut(&Kind::MoodleEnrolment).unwrap().push(enrolment(98, 99, 5, true, T0, T0));
    let p = fx.plan();
    assert!(p.ops.is_empty() && p.issues.is_empty(), "{:#?} {:#?}", p.ops, p.issues);
}

#[test]
fn reconcile_student_deletion_follows_policy() {
    let mut fx = Fx::synced();
    fx.remove(Kind::Student, "102");
    let p = fx.plan();
    let op = only(&p);
    assert_eq!((op.entity, op.action, op.target), (Entity::Student, Action::Suspend, Side::Moodle));
    assert_eq!((op.key.as_str(), op.zoho_id.as_deref(), op.moodle_id.as_deref()), ("102", Some("102"), Some("12")));
    assert_eq!(op.fingerprints.zoho, None, "gone from Zoho");
    // Already suspended: nothing more to do.
    fx.set(Kind::MoodleUser, "12", user(12, "S-2", "b@x.edu", "Bob", true));
    assert!(fx.plan().ops.is_empty());
    fx.set(Kind::MoodleUser, "12", user(12, "S-2", "b@x.edu", "Bob", false));
    fx.settings.deletions.student = RemovalAction::Delete;
    assert_eq!(only(&fx.plan()).action, Action::Delete);
    fx.settings.deletions.student = RemovalAction::Ignore;
    let p = fx.plan();
    assert!(p.ops.is_empty());
    assert_eq!(p.issues[0].kind, IssueKind::RemovalIgnored);
    fx.settings.deletions.student = RemovalAction::Hide;
    let p = fx.plan();
    assert!(p.ops.is_empty() && p.issues[0].message.contains("does not apply"));
}

#[test]
fn reconcile_class_deletion_hides_the_course_and_unenrols_nobody_by_itself() {
    let mut fx = Fx::synced();
    fx.remove(Kind::Class, "301");
    let p = fx.plan();
    let hide: Vec<&Op> = p.ops.iter().filter(|o| o.entity == Entity::Class).collect();
    assert_eq!(hide.len(), 1);
    assert_eq!((hide[0].action, hide[0].moodle_id.as_deref()), (Action::Hide, Some("31")));
    assert_eq!(hide[0].changes["visible"], json!(false));
    // The class's teaching is gone from Zoho too: its teacher enrolment is removed (it had a base).
    assert!(p.ops.iter().any(|o| o.entity == Entity::Teaching && o.action == Action::Unenrol));
    // A course is never deleted, whatever the policy says: reported, not acted on.
    fx.settings.deletions.class = RemovalAction::Delete;
    let p = fx.plan();
    assert!(!p.ops.iter().any(|o| o.entity == Entity::Class), "{:?}", p.ops);
    assert!(
        p.issues.iter().any(|i| i.message.contains("deletions.policy.class = delete does not apply")),
        "{:?}",
        p.issues
    );
}

#[test]
fn reconcile_payment_deletion_and_change() {
    let mut fx = Fx::synced();
    fx.set(Kind::Payment, "601", zpayment("601", "101", "2500"));
    let p = fx.plan();
    let op = only(&p);
    assert_eq!(
        (op.entity, op.action, op.target, fields(op)),
        (Entity::Payment, Action::Update, Side::Moodle, vec!["amount"])
    );
    assert_eq!(op.refs["userid"], json!(11));
    assert_eq!(op.refs["fields"]["amount"], json!("2500.00"), "the plugin upsert needs the whole row");
    fx.remove(Kind::Payment, "601");
    let p = fx.plan();
    assert_eq!((only(&p).action, only(&p).moodle_id.as_deref()), (Action::Delete, Some("601")));
    fx.settings.deletions.finance = RemovalAction::Ignore;
    assert!(fx.plan().ops.is_empty());
}

#[test]
fn reconcile_new_student_is_created_with_dependants_waiting_for_it() {
    let mut fx = Fx::synced();
    fx.set(Kind::Student, "103", student("103", "S-3", "c@x.edu", "Cy", "Active", None));
    fx.set(Kind::Enrollment, "403", enrollment("403", "103", "301", "Active", "2026-01-01"));
    fx.set(Kind::Payment, "603", zpayment("603", "103", "100"));
    let p = fx.plan();
    let kinds: Vec<(Entity, Action)> = p.ops.iter().map(|o| (o.entity, o.action)).collect();
    assert_eq!(
        kinds,
        vec![(Entity::Student, Action::Create), (Entity::Enrollment, Action::Enrol), (Entity::Payment, Action::Create)]
    );
    assert_eq!(p.ops[0].changes.len(), 6);
    assert_eq!(p.ops[1].refs["userid"], Value::Null);
    assert_eq!(p.ops[1].refs["courseid"], json!(31));
    assert_eq!(p.ops[1].refs["roleid"], json!(5));
    // Seq follows dependency order.
    assert!(p.ops.windows(2).all(|w| w[0].seq < w[1].seq));
}

#[test]
fn reconcile_unresolved_references_are_issues() {
    let mut fx = Fx::synced();
    // A student with no email cannot be created, so their enrolment waits.
    fx.set(Kind::Student, "103", student("103", "S-3", "", "Cy", "Active", None));
    fx.set(Kind::Enrollment, "403", enrollment("403", "103", "301", "Active", "2026-01-01"));
    let p = fx.plan();
    assert!(p.ops.is_empty(), "{:#?}", p.ops);
    let kinds: Vec<IssueKind> = p.issues.iter().map(|i| i.kind).collect();
    assert_eq!(kinds, vec![IssueKind::Incomplete, IssueKind::Unresolved]);
    assert!(p.issues[1].message.contains("waiting for its student 103"));
}

#[test]
fn reconcile_links_by_idnumber_then_unique_email() {
    let mut fx = Fx::synced();
    fx.inputs.links.clear();
    fx.inputs.states.clear();
    // 101 is paired by the Moodle id Zoho holds (nothing to plan); 102's write-back is missing (paired by
    // idnumber); a new student matches by email only.
    fx.set(Kind::Student, "102", student("102", "S-2", "b@x.edu", "Bob", "Active", None));
    fx.set(Kind::Student, "104", student("104", "S-4", "D@X.edu", "Di", "Active", None));
    fx.set(Kind::MoodleUser, "14", user(14, "", "d@x.edu", "Di", false));
    let p = fx.plan();
    let ident: Vec<(Action, &str, Option<&str>)> = p
        .ops
        .iter()
        .filter(|o| o.entity == Entity::Student && matches!(o.action, Action::Link | Action::WriteBack))
        .map(|o| (o.action, o.key.as_str(), o.moodle_id.as_deref()))
        .collect();
    assert_eq!(ident, vec![(Action::WriteBack, "102", Some("12")), (Action::WriteBack, "104", Some("14"))]);
    // Di's Moodle user has no id number: the pairing also shows as a field update.
    assert!(p.ops.iter().any(|o| o.key == "104" && o.action == Action::Update && o.changes.contains_key("id_number")));
}

#[test]
fn reconcile_ambiguous_email_is_reported_not_guessed() {
    let mut fx = Fx::synced();
    fx.set(Kind::Student, "104", student("104", "S-4", "d@x.edu", "Di", "Active", None));
    fx.set(Kind::MoodleUser, "14", user(14, "", "d@x.edu", "Di", false));
    fx.set(Kind::MoodleUser, "15", user(15, "", "D@x.edu", "Di", false));
    let p = fx.plan();
    assert!(p.ops.is_empty(), "{:#?}", p.ops);
    assert_eq!(p.issues.len(), 1);
    assert_eq!(p.issues[0].kind, IssueKind::Ambiguous);
    assert!(p.issues[0].message.contains("14, 15"));
}

#[test]
fn reconcile_duplicate_zoho_emails_smallest_id_wins() {
    let mut fx = Fx::synced();
    fx.set(Kind::Student, "105", student("105", "S-5", "e@x.edu", "Ed", "Active", None));
    fx.set(Kind::Student, "1000", student("1000", "S-6", "E@x.edu", "Eddie", "Active", None));
    let p = fx.plan();
    let op = only(&p);
    assert_eq!((op.action, op.key.as_str()), (Action::Create, "105"));
    assert_eq!(p.issues.len(), 1);
    assert_eq!((p.issues[0].kind, p.issues[0].key.as_str()), (IssueKind::Duplicate, "1000"));
}

#[test]
fn reconcile_inactive_students_get_no_new_account() {
    let mut fx = Fx::synced();
    fx.set(Kind::Student, "106", student("106", "S-7", "f@x.edu", "Fi", "Withdrawn", None));
    assert!(fx.plan().ops.is_empty());
}

#[test]
fn reconcile_teacher_changes_move_the_teaching() {
    let mut fx = Fx::synced();
    fx.set(Kind::Teacher, "202", teacher("202", "T-2", "t2@x.edu", Some("22")));
    fx.set(Kind::MoodleUser, "22", tuser(22, "T-2", "t2@x.edu"));
    fx.baseline();
    fx.set(Kind::Class, "301", class("301", Some("202"), Some("31")));
    let p = fx.plan();
    let t: Vec<(Action, &str)> =
        p.ops.iter().filter(|o| o.entity == Entity::Teaching).map(|o| (o.action, o.key.as_str())).collect();
    assert_eq!(t, vec![(Action::Unenrol, "201|301"), (Action::Enrol, "202|301")]);
    let enrol = &p.ops.iter().find(|o| o.action == Action::Enrol).unwrap().refs;
    assert_eq!(
        (enrol["userid"].clone(), enrol["courseid"].clone(), enrol["roleid"].clone()),
        (json!(22), json!(31), json!(3))
    );
}

// ---- enrolments: bidirectional -------------------------------------------------------------------------

fn enrolment_ops(p: &Plan) -> Vec<(Action, Side, Vec<&str>, bool)> {
    p.ops
        .iter()
        .filter(|o| o.entity == Entity::Enrollment)
        .map(|o| (o.action, o.target, o.changes.keys().map(String::as_str).collect(), o.conflict))
        .collect()
}

#[test]
fn reconcile_enrolment_change_on_one_side_propagates() {
    let mut fx = Fx::synced();
    fx.set(Kind::Enrollment, "401", enrollment("401", "101", "301", "Withdrawn", "2026-01-01"));
    let p = fx.plan();
    assert_eq!(enrolment_ops(&p), vec![(Action::Update, Side::Moodle, vec!["active"], false)]);
    assert_eq!(p.ops[0].refs["fields"]["start_date"], json!("2026-01-01"), "the enrol upsert needs every field");
    let mut fx = Fx::synced();
    fx.set(Kind::MoodleEnrolment, "31:12", enrolment(31, 12, 5, false, T0, T0));
    let p = fx.plan();
    assert_eq!(enrolment_ops(&p), vec![(Action::Update, Side::Zoho, vec!["active"], false)]);
    assert_eq!(p.ops[0].refs["status"], json!("Active"));
    assert_eq!(p.ops[0].zoho_id.as_deref(), Some("402"));
}

#[test]
fn reconcile_same_change_on_both_sides_writes_nothing() {
    let mut fx = Fx::synced();
    fx.set(Kind::Enrollment, "401", enrollment("401", "101", "301", "Withdrawn", "2026-01-01"));
    fx.set(Kind::MoodleEnrolment, "31:11", enrolment(31, 11, 5, false, T0, T0));
    let a = analyse(&fx.inputs, &fx.settings, &Options { collect_agreed: true, ..Options::default() });
    assert!(a.plan.ops.is_empty());
    // The base moves: baseline records the new agreement.
    let agreed = &a.agreed[&Entity::Enrollment];
    assert!(agreed.iter().any(|g| g.key == "101|301" && g.fields["active"] == json!(false)));
}

fn conflicted(policy: ConflictPolicy) -> Plan {
    let mut fx = Fx::synced();
    fx.settings.conflicts = policy;
    // Zoho moved the start to Jan 5 (modified Jan 10); Moodle to Jan 8 (modified at `T0 + 20 days`).
    fx.set(Kind::Enrollment, "401", enrollment("401", "101", "301", "Active", "2026-01-05"));
    fx.set(Kind::MoodleEnrolment, "31:11", enrolment(31, 11, 5, true, T0 + 7 * 86_400, T0 + 20 * 86_400));
    fx.plan()
}

#[test]
fn reconcile_conflict_policies() {
    let p = conflicted(ConflictPolicy::ZohoWins);
    assert_eq!(enrolment_ops(&p), vec![(Action::Update, Side::Moodle, vec!["start_date"], true)]);
    assert_eq!(p.ops[0].changes["start_date"], json!("2026-01-05"));
    assert_eq!(p.conflicts.len(), 1);
    assert_eq!(p.conflicts[0].winner, Some(Side::Zoho));
    assert_eq!(p.conflicts[0].base_value, Some(json!("2026-01-01")));

    let p = conflicted(ConflictPolicy::MoodleWins);
    assert_eq!(enrolment_ops(&p), vec![(Action::Update, Side::Zoho, vec!["start_date"], true)]);
    assert_eq!(p.ops[0].changes["start_date"], json!("2026-01-08"));

    // Moodle's change (Jan 21) is newer than Zoho's Modified_Time (Jan 10).
    let p = conflicted(ConflictPolicy::Newest);
    assert_eq!(enrolment_ops(&p), vec![(Action::Update, Side::Zoho, vec!["start_date"], true)]);

    let p = conflicted(ConflictPolicy::ReportOnly);
    assert!(p.ops.is_empty());
    assert_eq!(p.conflicts.len(), 1);
    assert_eq!(p.conflicts[0].winner, None);
    assert_eq!(p.counts[&Entity::Enrollment].conflicts, 1);
}

#[test]
fn reconcile_newest_prefers_zoho_when_it_is_newer() {
    let mut fx = Fx::synced();
    fx.settings.conflicts = ConflictPolicy::Newest;
    fx.set(Kind::Enrollment, "401", enrollment("401", "101", "301", "Active", "2026-01-05"));
    fx.set(Kind::MoodleEnrolment, "31:11", enrolment(31, 11, 5, true, T0 + 7 * 86_400, T0 + 86_400));
    assert_eq!(enrolment_ops(&fx.plan()), vec![(Action::Update, Side::Moodle, vec!["start_date"], true)]);
}

#[test]
fn reconcile_first_contact_differences_are_conflicts() {
    let mut fx = Fx::synced();
    fx.inputs.states.remove(&Entity::Enrollment);
    fx.set(Kind::MoodleEnrolment, "31:11", enrolment(31, 11, 5, true, T0 + 86_400, T0));
    let p = fx.plan();
    assert_eq!(enrolment_ops(&p), vec![(Action::Update, Side::Moodle, vec!["start_date"], true)]);
    assert_eq!(p.conflicts[0].base_value, None);
}

#[test]
fn reconcile_enrolment_missing_on_one_side() {
    // Missing in Moodle with a base: Moodle removed it, Zoho becomes inactive (once).
    let mut fx = Fx::synced();
    fx.remove(Kind::MoodleEnrolment, "31:12");
    let p = fx.plan();
    assert_eq!(enrolment_ops(&p), vec![(Action::Update, Side::Zoho, vec!["active"], false)]);
    // The enrolment keeps the `courseid:userid` its base knows; its fingerprint says it is gone.
    assert_eq!((p.ops[0].zoho_id.as_deref(), p.ops[0].moodle_id.as_deref()), (Some("402"), Some("31:12")));
    assert_eq!(p.ops[0].fingerprints.moodle, None);
    fx.set(Kind::Enrollment, "402", enrollment("402", "102", "301", "Withdrawn", "2026-01-01"));
    assert!(enrolment_ops(&fx.plan()).is_empty());

    // Missing in Moodle, no base: enrol.
    let mut fx = Fx::synced();
    fx.set(Kind::Enrollment, "403", enrollment("403", "102", "301", "Active", "2026-01-01"));
    fx.remove(Kind::Enrollment, "402");
    fx.remove(Kind::MoodleEnrolment, "31:12");
    fx.inputs.states.get_mut(&Entity::Enrollment).unwrap().retain(|s| s.key != "102|301");
    assert_eq!(
        enrolment_ops(&fx.plan()),
        vec![(Action::Enrol, Side::Moodle, vec!["active", "end_date", "start_date"], false)]
    );

    // Missing in Zoho with a base: Zoho deleted it, unenrol.
    let mut fx = Fx::synced();
    fx.remove(Kind::Enrollment, "402");
    let p = fx.plan();
    assert_eq!(enrolment_ops(&p), vec![(Action::Unenrol, Side::Moodle, vec![], false)]);
    assert_eq!(p.ops[0].moodle_id.as_deref(), Some("31:12"));

    // Missing in Zoho, no base, user and course linked: create in Zoho.
    fx.inputs.states.get_mut(&Entity::Enrollment).unwrap().retain(|s| s.key != "102|301");
    let p = fx.plan();
    assert_eq!(enrolment_ops(&p), vec![(Action::Create, Side::Zoho, vec!["active", "end_date", "start_date"], false)]);
    assert_eq!(p.ops[0].refs["student_zoho_id"], json!("102"));
    assert_eq!(p.ops[0].refs["class_zoho_id"], json!("301"));
}

// ---- grades: Moodle → Zoho -------------------------------------------------------------------------------

#[test]
fn reconcile_grades_flow_to_zoho_and_are_never_deleted() {
    let mut fx = Fx::synced();
    fx.set(Kind::MoodleGrade, "31:11", mgrade(31, 11, 82.0));
    let p = fx.plan();
    assert_eq!(p.ops.len(), 2, "{:#?}", p.ops);
    let op = &p.ops[0];
    assert_eq!((op.entity, op.action, op.target), (Entity::Grade, Action::Update, Side::Zoho));
    assert_eq!(op.changes["grade"], json!("Distinction"));
    assert_eq!(op.changes["moodle_grade"], json!("82.00"));
    // The grade's dashboard row follows in the same run, with what Zoho will hold.
    let row = &p.ops[1];
    assert_eq!((row.entity, row.action, row.target), (Entity::DashboardGrade, Action::Update, Side::Moodle));
    assert_eq!(
        (row.changes["grade"].clone(), row.changes["moodle_grade"].clone()),
        (json!("Distinction"), json!("82.00"))
    );

    fx.set(Kind::MoodleGrade, "31:12", mgrade(31, 12, 45.0));
    let p = fx.plan();
    let create = p.ops.iter().find(|o| o.action == Action::Create).expect("create");
    assert_eq!(
        (create.target, create.refs["student_zoho_id"].clone(), create.refs["unit_id"].clone()),
        (Side::Zoho, json!("102"), json!("900"))
    );

    let mut fx = Fx::synced();
    fx.remove(Kind::MoodleGrade, "31:11");
    let p = fx.plan();
    assert!(p.ops.is_empty());
    assert_eq!(p.issues[0].kind, IssueKind::Orphan);
}

// ---- guards ----------------------------------------------------------------------------------------------

fn many_students(n: usize) -> Fx {
    let mut i = Inputs::default();
    let mut zs = Vec::new();
    let mut us = Vec::new();
    for k in 0..n {
        let id = format!("{}", 1000 + k);
        zs.push(student(&id, &format!("S{k}"), &format!("s{k}@x.edu"), "N", "Active", Some(&format!("{}", 5000 + k))));
        us.push(user(5000 + k as i64, &format!("S{k}"), &format!("s{k}@x.edu"), "N", false));
    }
    i.records.insert(Kind::Student, zs);
    i.records.insert(Kind::MoodleUser, us);
    let mut fx = Fx { inputs: i, settings: Settings::defaults() };
    fx.baseline();
    fx
}

fn delete_students(fx: &mut Fx, n: usize) {
    let v = fx.inputs.records.get_mut(&Kind::Student).unwrap();
    v.truncate(v.len() - n);
}

#[test]
fn reconcile_guards_mass_change_at_the_boundary() {
    // 100 students: the limit is max(5% = 5, 25) = 25.
    let mut fx = many_students(100);
    delete_students(&mut fx, 25);
    let p = fx.plan();
    assert_eq!(p.ops.len(), 25);
    assert!(p.guards.is_empty() && enforce(&p).is_ok());
    let mut fx = many_students(100);
    delete_students(&mut fx, 26);
    let p = fx.plan();
    assert_eq!(p.guards.len(), 1);
    assert_eq!((p.guards[0].count, p.guards[0].limit, p.guards[0].outcome), (26, 25, GuardOutcome::Refused));
    let e = enforce(&p).unwrap_err().to_string();
    assert!(e.contains("student") && e.contains("26") && e.contains("25") && e.contains("--allow-mass-change"), "{e}");
    // Allowed: recorded on the plan, not refused.
    let p = analyse(&fx.inputs, &fx.settings, &Options { allow_mass_change: true, ..Options::default() }).plan;
    assert_eq!(p.guards[0].outcome, GuardOutcome::Allowed);
    assert!(enforce(&p).is_ok());
}

#[test]
fn reconcile_guards_percentage_limit_for_large_entities() {
    assert_eq!(guards::limit(&Settings::defaults().max_removals, 1000), 50);
    assert_eq!(guards::limit(&Settings::defaults().max_removals, 1019), 50);
    assert_eq!(guards::limit(&Settings::defaults().max_removals, 100), 25);
    let mut fx = many_students(600);
    delete_students(&mut fx, 30); // limit max(30, 25) = 30
    assert!(enforce(&fx.plan()).is_ok());
    delete_students(&mut fx, 1);
    assert!(enforce(&fx.plan()).is_err());
}

#[test]
fn reconcile_guards_refuse_an_empty_side_always() {
    let mut fx = many_students(3);
    fx.inputs.records.insert(Kind::Student, Vec::new());
    let p = analyse(&fx.inputs, &fx.settings, &Options { allow_mass_change: true, ..Options::default() }).plan;
    let e = enforce(&p).unwrap_err().to_string();
    assert!(e.contains("zoho holds no student records") && e.contains("cannot be overridden"), "{e}");
    let mut fx = many_students(3);
    fx.inputs.records.insert(Kind::MoodleUser, Vec::new());
    assert!(enforce(&fx.plan()).is_err());
}

// ---- the plan as data ----------------------------------------------------------------------------------

#[test]
fn reconcile_plan_json_roundtrip() {
    let p = conflicted(ConflictPolicy::ZohoWins);
    let mut fx = many_students(40);
    delete_students(&mut fx, 30);
    let mut p2 = analyse(&fx.inputs, &fx.settings, &Options { allow_mass_change: true, ..Options::default() }).plan;
    p2.ops.extend(p.ops.clone());
    p2.conflicts.extend(p.conflicts.clone());
    p2.run_id = Some(7);
    let text = p2.to_json();
    assert_eq!(Plan::from_json(&text).unwrap(), p2);
    assert!(text.contains("\"allowed\""));
}

#[test]
fn reconcile_stale_ops_are_detected() {
    let mut fx = Fx::synced();
    fx.set(Kind::Student, "101", student("101", "S-1", "new@x.edu", "Ann", "Active", Some("11")));
    let p = fx.plan();
    let check = |fx: &Fx| {
        let mut records = std::collections::HashMap::new();
        for (k, v) in &fx.inputs.records {
            records.insert(*k, v.iter().map(|r| (r.key.clone(), r.fingerprint.clone())).collect());
        }
        let mut base = std::collections::HashMap::new();
        for (e, v) in &fx.inputs.states {
            base.insert(*e, v.iter().map(|s| (s.key.clone(), s.fingerprint.clone())).collect());
        }
        StaleCheck::from_parts(records, base)
    };
    assert!(!check(&fx).is_stale(&p.ops[0]));
    fx.set(Kind::MoodleUser, "11", user(11, "S-1", "a@x.edu", "Renamed", false));
    assert!(check(&fx).is_stale(&p.ops[0]));
}

#[test]
fn reconcile_module_selection() {
    let s = Settings::defaults();
    assert_eq!(select(Some("BTEC_Classes"), &s).unwrap(), vec![Entity::Class, Entity::Teaching]);
    assert_eq!(select(Some("student"), &s).unwrap(), vec![Entity::Student]);
    assert!(select(Some("nope"), &s).is_err());
    let mut off = s.clone();
    off.modules.BTEC_Grades = false;
    assert!(select(Some("grade"), &off).unwrap_err().to_string().contains("disabled"));
    assert!(!select(None, &off).unwrap().contains(&Entity::Grade));
    // Only the selected entity's ops, though links are computed for all.
    let mut fx = Fx::synced();
    fx.set(Kind::Student, "101", student("101", "S-1", "new@x.edu", "Ann", "Active", Some("11")));
    fx.set(Kind::Payment, "601", zpayment("601", "101", "1"));
    let p = analyse(&fx.inputs, &fx.settings, &Options { entities: vec![Entity::Payment], ..Options::default() }).plan;
    assert_eq!(only(&p).entity, Entity::Payment);
}

/// Issue #19: a stored link is compared with the Moodle id field Zoho holds on every run; empty, cleared or
/// wrong, the link is written back (a run killed between the create and the write-back left it empty for good).
#[test]
fn reconcile_stored_links_are_written_back_where_zoho_lost_them() {
    let mut fx = Fx::synced();
    assert!(fx.plan().ops.is_empty());
    fx.set(Kind::Student, "101", student("101", "S-1", "a@x.edu", "Ann", "Active", None));
    fx.set(Kind::Student, "102", student("102", "S-2", "b@x.edu", "Bob", "Active", Some("999")));
    fx.set(Kind::Teacher, "201", teacher("201", "T-1", "t@x.edu", Some("")));
    fx.set(Kind::Class, "301", class("301", Some("201"), Some("11")));
    let p = fx.plan();
    let mut wb: Vec<(Entity, &str, Option<&str>, Value)> = p
        .ops
        .iter()
        .map(|o| (o.entity, o.key.as_str(), o.moodle_id.as_deref(), o.before["moodle_id"].clone()))
        .collect();
    wb.sort_by(|a, b| a.1.cmp(b.1));
    assert!(p.ops.iter().all(|o| o.action == Action::WriteBack && o.target == Side::Zoho), "{:#?}", p.ops);
    assert_eq!(
        wb,
        vec![
            (Entity::Student, "101", Some("11"), Value::Null),
            (Entity::Student, "102", Some("12"), json!("999")),
            (Entity::Teacher, "201", Some("21"), Value::Null),
            (Entity::Class, "301", Some("31"), json!("11")),
        ]
    );
    assert!(p.ops.iter().all(|o| o.reason.contains("stored link")), "{:#?}", p.ops);
}

/// Issue #19: when the older of two students sharing an email is deleted in Zoho, the other takes its Moodle
/// user over (a create would be refused by Moodle every night); the deleted one's user is not suspended.
#[test]
fn reconcile_the_younger_of_two_sharing_an_email_takes_the_user_over_when_the_older_is_deleted() {
    let mut fx = Fx::synced();
    fx.set(Kind::Student, "105", student("105", "S-5", "e@x.edu", "Ed", "Active", Some("15")));
    fx.set(Kind::MoodleUser, "15", user(15, "S-5", "e@x.edu", "Ed", false));
    fx.set(Kind::Student, "1000", student("1000", "S-6", "E@x.edu", "Eddie", "Active", None));
    fx.baseline();
    let p = fx.plan();
    assert!(p.ops.is_empty(), "{:#?}", p.ops);
    assert_eq!(p.issues.iter().map(|i| (i.kind, i.key.as_str())).collect::<Vec<_>>(), [(IssueKind::Duplicate, "1000")]);

    fx.remove(Kind::Student, "105");
    let p = fx.plan();
    assert!(p.ops.iter().all(|o| o.action != Action::Create && o.action != Action::Suspend), "{:#?}", p.ops);
    let wb: Vec<(Action, &str, Option<&str>)> = p
        .ops
        .iter()
        .filter(|o| o.action == Action::WriteBack)
        .map(|o| (o.action, o.key.as_str(), o.moodle_id.as_deref()))
        .collect();
    assert_eq!(wb, vec![(Action::WriteBack, "1000", Some("15"))]);
    // The user now follows 1000's fields.
    assert!(
        p.ops.iter().any(|o| o.key == "1000" && o.action == Action::Update && o.target == Side::Moodle),
        "{:#?}",
        p.ops
    );
    assert!(p.issues.is_empty(), "{:#?}", p.issues);
}

/// Issue #19: a grade or enrolment new in Moodle for a student deleted in Zoho has nothing to be created under:
/// it is not planned (apply would skip it, and every run would plan it again).
#[test]
fn reconcile_nothing_is_created_in_zoho_for_a_student_deleted_there() {
    let mut fx = Fx::synced();
    fx.remove(Kind::Student, "102");
    fx.set(Kind::MoodleGrade, "31:12", mgrade(31, 12, 40.0));
    let p = fx.plan();
    assert!(
        !p.ops.iter().any(|o| o.target == Side::Zoho && o.action == Action::Create),
        "nothing is created in Zoho for the deleted student: {:#?}",
        p.ops
    );
    // The same grade for a student still in Zoho is created.
    let mut fx = Fx::synced();
    fx.set(Kind::MoodleGrade, "31:12", mgrade(31, 12, 40.0));
    assert!(fx
        .plan()
        .ops
        .iter()
        .any(|o| o.entity == Entity::Grade && o.action == Action::Create && o.target == Side::Zoho));
}
