//! Reconcile at college scale: 5,000 students (no change, 1% changed) and 50,000 students, with their
//! enrolments, registrations, payments and grades, both sides in agreement in an SQLite store.
//! Prints the store read time and the CPU phases (link, diff) separately. `cargo bench --bench reconcile`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use zmsync::mapping::map_record;
use zmsync::model::{Kind, Record};
use zmsync::reconcile::{self, Inputs, Options};
use zmsync::settings::Settings;
use zmsync::store::{self, Store};

struct Sizes {
    students: usize,
    classes: usize,
    teachers: usize,
}

fn rec(s: &Settings, kind: Kind, raw: Value) -> Record {
    map_record(kind, &raw, s).expect("maps")
}

/// Both sides of a synced college, per kind. Per student: 4 enrolments, 1 registration, 4 payments, 2 grades.
fn college(n: &Sizes, s: &Settings) -> Vec<(Kind, Vec<Record>)> {
    let mut out: Vec<(Kind, Vec<Record>)> = Kind::ALL.iter().map(|k| (*k, Vec::new())).collect();
    let mut push = |k: Kind, r: Record| out.iter_mut().find(|(x, _)| *x == k).expect("kind").1.push(r);
    let zid = |base: u64, i: usize| format!("{}", 5_847_596_000_000_000u64 + base * 1_000_000 + i as u64);
    for t in 0..n.teachers {
        let (id, uid) = (zid(1, t), 1_000_000 + t as i64);
        let email = format!("t{t}@college.edu");
        push(
            Kind::Teacher,
            rec(
                s,
                Kind::Teacher,
                json!({"id": id, "First_Name": "T", "Last_Name": format!("Teacher {t}"),
            "Academic_Email": email, "Teacher_ID_Number": format!("T-{t}"), "Teacher_Moodle_ID": uid.to_string()}),
            ),
        );
        push(
            Kind::MoodleUser,
            rec(
                s,
                Kind::MoodleUser,
                json!({"id": uid, "username": format!("t-{t}"), "firstname": "T",
            "lastname": format!("Teacher {t}"), "email": email, "idnumber": format!("T-{t}"), "suspended": 0, "phone1": ""}),
            ),
        );
    }
    for c in 0..n.classes {
        let (id, cid, unit) = (zid(2, c), 10 + c as i64, zid(3, c));
        let teacher = zid(1, c % n.teachers);
        push(
            Kind::Class,
            rec(
                s,
                Kind::Class,
                json!({"id": id, "Class_Name": format!("Class {c}"),
            "Class_Short_Name": format!("C{c}"), "Start_Date": "2026-09-01", "End_Date": "2027-06-30", "Status": "Active",
            "Teacher": {"id": teacher}, "Unit": {"id": unit}, "Moodle_Course_ID": cid.to_string()}),
            ),
        );
        let (start, end) = (1_788_220_800i64, 1_814_313_600i64);
        push(
            Kind::MoodleCourse,
            rec(
                s,
                Kind::MoodleCourse,
                json!({"id": cid, "fullname": format!("Class {c}"),
            "shortname": format!("C{c}"), "idnumber": id, "startdate": start, "enddate": end, "visible": 1}),
            ),
        );
        push(
            Kind::MoodleEnrolment,
            rec(
                s,
                Kind::MoodleEnrolment,
                json!({"courseid": cid,
            "userid": 1_000_000 + (c % n.teachers) as i64, "roleids": [3], "status": 0, "timestart": 0, "timeend": 0}),
            ),
        );
        push(
            Kind::Unit,
            rec(
                s,
                Kind::Unit,
                json!({"id": unit, "Unit_Code": format!("U{c}"), "Unit_Name": "Unit",
            "Level": "5", "Credits": 15}),
            ),
        );
        push(
            Kind::DashboardUnit,
            rec(
                s,
                Kind::DashboardUnit,
                json!({"zoho_id": unit, "unit_code": format!("U{c}"),
            "unit_name": "Unit", "level": "5", "credits": 15, "criteria": ""}),
            ),
        );
    }
    for i in 0..n.students {
        let (id, uid) = (zid(4, i), 10_000 + i as i64);
        let email = format!("s{i}@college.edu");
        push(
            Kind::Student,
            rec(
                s,
                Kind::Student,
                json!({"id": id, "First_Name": "Zoë", "Last_Name": format!("Student {i}"),
            "Academic_Email": email, "Student_ID_Number": format!("S-{i}"), "Phone": "+44 20 7946 0000",
            "Status": "Active", "Student_Moodle_ID": uid.to_string()}),
            ),
        );
        push(
            Kind::MoodleUser,
            rec(
                s,
                Kind::MoodleUser,
                json!({"id": uid, "username": format!("s-{i}"), "firstname": "Zoë",
            "lastname": format!("Student {i}"), "email": email, "idnumber": format!("S-{i}"), "suspended": 0,
            "phone1": "+44 20 7946 0000"}),
            ),
        );
        let reg = zid(5, i);
        push(
            Kind::Registration,
            rec(
                s,
                Kind::Registration,
                json!({"id": reg, "Student": {"id": id}, "Program": "IT",
            "Registration_Date": "2026-09-01", "Total_Fee": 10000, "Scholarship_Percent": 20, "Currency": "USD", "Status": "Active"}),
            ),
        );
        push(
            Kind::DashboardRegistration,
            rec(
                s,
                Kind::DashboardRegistration,
                json!({"zoho_id": reg, "userid": uid,
            "student_zoho_id": id, "program": "IT", "registration_date": "2026-09-01", "total_fee": "10000.00",
            "scholarship_percent": "20.00", "currency": "USD", "status": "Active"}),
            ),
        );
        for k in 0..4 {
            let c = (i * 7 + k * 13) % n.classes;
            let (cz, cid) = (zid(2, c), 10 + c as i64);
            push(
                Kind::Enrollment,
                rec(
                    s,
                    Kind::Enrollment,
                    json!({"id": zid(6, i * 4 + k), "Student": {"id": id},
                "Class": {"id": cz}, "Status": "Active", "Start_Date": "2026-09-01"}),
                ),
            );
            push(
                Kind::MoodleEnrolment,
                rec(
                    s,
                    Kind::MoodleEnrolment,
                    json!({"courseid": cid, "userid": uid,
                "roleids": [5], "status": 0, "timestart": 1_788_220_800i64, "timeend": 0}),
                ),
            );
            let pay = zid(7, i * 4 + k);
            push(
                Kind::Payment,
                rec(
                    s,
                    Kind::Payment,
                    json!({"id": pay, "Student": {"id": id}, "Registration": {"id": reg},
                "Amount": 2000, "Payment_Date": "2026-10-15", "Due_Date": "2026-10-15", "Status": "Paid", "Method": "Card"}),
                ),
            );
            push(
                Kind::DashboardPayment,
                rec(
                    s,
                    Kind::DashboardPayment,
                    json!({"zoho_id": pay, "userid": uid,
                "student_zoho_id": id, "registration_zoho_id": reg, "amount": "2000.00", "payment_date": "2026-10-15",
                "due_date": "2026-10-15", "status": "Paid", "method": "Card"}),
                ),
            );
            if k < 2 {
                let g = 40.0 + ((i + k) % 60) as f64;
                push(
                    Kind::MoodleGrade,
                    rec(
                        s,
                        Kind::MoodleGrade,
                        json!({"courseid": cid, "userid": uid, "finalgrade": g,
                    "grademin": 0, "grademax": 100, "timemodified": 1_790_000_000i64}),
                    ),
                );
                let level = zmsync::mapping::grade::level(Some(g), 0.0, 100.0, None, &s.thresholds).expect("level");
                push(
                    Kind::Grade,
                    rec(
                        s,
                        Kind::Grade,
                        json!({"id": zid(8, i * 2 + k), "Student": {"id": id},
                    "Class": {"id": cz}, "Grade": level, "Moodle_Grade": g}),
                    ),
                );
            }
        }
    }
    out
}

/// 1% of users renamed in Moodle, 1% of enrolments withdrawn in Zoho, 1% of payments changed in Zoho.
fn drift(store: &dyn Store, s: &Settings) {
    let mut users = store.records(Kind::MoodleUser).unwrap();
    for u in users.iter_mut().step_by(100) {
        u.fields.insert("first_name".into(), json!("Renamed"));
        *u = Record::new(u.kind, u.key.clone(), u.fields.clone(), u.refs.clone());
    }
    store.replace_records(Kind::MoodleUser, &users).unwrap();
    for kind in [Kind::Enrollment, Kind::Payment] {
        let mut v = store.records(kind).unwrap();
        for r in v.iter_mut().step_by(100) {
            let (f, val) =
                if kind == Kind::Enrollment { ("active", json!(false)) } else { ("amount", json!("2500.00")) };
            r.fields.insert(f.into(), val);
            *r = Record::new(r.kind, r.key.clone(), r.fields.clone(), r.refs.clone());
        }
        store.replace_records(kind, &v).unwrap();
    }
    let _ = s;
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn measure(label: &str, store: &dyn Store, s: &Settings, rounds: usize) {
    let opts = Options { allow_mass_change: true, ..Options::default() };
    let entities = reconcile::select(None, s).unwrap();
    let (mut read, mut link, mut diff, mut total) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut ops = 0;
    let mut records = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let inputs: Inputs = Inputs::load(store, &entities).unwrap();
        read.push(t.elapsed());
        records = inputs.records.values().map(Vec::len).sum::<usize>();
        let t = Instant::now();
        let (a, timings) =
            reconcile::analyse_timed(&inputs, s, &Options { entities: entities.clone(), ..opts.clone() });
        total.push(t.elapsed());
        link.push(timings.link);
        diff.push(timings.diff);
        ops = a.plan.ops.len();
    }
    dump(label, store, s, &entities);
    println!(
        "{label:<34} records {records:>8}  ops {ops:>6}  store read {:>10}  reconcile {:>9} (link {}, diff {})",
        ms(median(read)),
        ms(median(total)),
        ms(median(link)),
        ms(median(diff))
    );
}

/// With `ZMSYNC_BENCH_DUMP=dir`: writes the plan (its time zeroed) and the agreed pairs of a scenario, to
/// compare two builds' outputs byte for byte.
fn dump(label: &str, store: &dyn Store, s: &Settings, entities: &[zmsync::model::Entity]) {
    let Ok(dir) = std::env::var("ZMSYNC_BENCH_DUMP") else { return };
    let inputs = Inputs::load(store, entities).unwrap();
    let opts =
        Options { entities: entities.to_vec(), allow_mass_change: true, collect_agreed: true, ..Options::default() };
    let mut a = reconcile::analyse(&inputs, s, &opts);
    a.plan.created_at = chrono::DateTime::UNIX_EPOCH;
    let name = label.replace([' ', ',', '%'], "_");
    std::fs::write(format!("{dir}/{name}.plan.json"), a.plan.to_json()).unwrap();
    std::fs::write(format!("{dir}/{name}.agreed.txt"), format!("{:#?}", a.agreed)).unwrap();
}

fn scenario(students: usize, rounds: usize) {
    let s = Settings::defaults();
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(&format!("sqlite://{}", dir.path().join("bench.db").display())).unwrap();
    let t = Instant::now();
    let sizes = Sizes { students, classes: (students / 25).max(200), teachers: (students / 100).max(50) };
    let data = college(&sizes, &s);
    for (k, v) in &data {
        store.replace_records(*k, v).unwrap();
    }
    drop(data);
    let b = reconcile::baseline(store.as_ref(), &s, None).unwrap();
    println!(
        "setup {students} students: {} links, {} base rows in {:.1} s",
        b.links,
        b.states,
        t.elapsed().as_secs_f64()
    );
    measure(&format!("{students} students, no change"), store.as_ref(), &s, rounds);
    drift(store.as_ref(), &s);
    measure(&format!("{students} students, 1% changed"), store.as_ref(), &s, rounds);
}

fn main() {
    // `cargo bench` passes --bench; a filter argument "5000" or "50000" runs one scenario.
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    println!("rayon threads: {}", rayon::current_num_threads());
    if only.as_deref().map(|o| o == "5000").unwrap_or(true) {
        scenario(5_000, 7);
    }
    if only.as_deref().map(|o| o == "50000").unwrap_or(true) {
        scenario(50_000, 3);
    }
}
