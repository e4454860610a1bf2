//! The Zoho side of the college: units, teachers, classes, students, their registrations and payments,
//! enrolments and grades, written as raw Zoho JSON in creation order (ids increase within a module).

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::json;

use super::names::{self, ascii_fold};
use super::record::RecordWriter;
use super::{shape, GenOptions, State};
use crate::seed::{ZohoSeed, ZOHO_MODULES};
use crate::world::{date_str, zoho_time, AS_OF, DAY, HUMAN_USER, INTEGRATION_USER, SYNCED_AT};
use zmsync_core::mapping::{self, grade};
use zmsync_core::settings::Settings;

/// Per-module id prefixes: ids are 19-digit strings, increasing in creation order within a module.
fn module_code(module: &str) -> u64 {
    match module {
        "BTEC_Units" => 11,
        "BTEC_Teachers" => 12,
        "BTEC_Students" => 13,
        "BTEC_Classes" => 14,
        "BTEC_Enrollments" => 15,
        "BTEC_Registrations" => 16,
        "BTEC_Payments" => 17,
        _ => 18,
    }
}

pub(super) struct StudentInfo {
    id: String,
    name: String,
    /// Whether the sync gives this student a Moodle user (an email, and the smallest id among its sharers).
    user: bool,
    program: usize,
}

struct ClassInfo {
    id: String,
    name: String,
    unit: usize,
    start: i64,
    end: Option<i64>,
    /// The course total's maximum (one grade item per course: most out of 100, some out of 20).
    grademax: f64,
}

/// A course-total grade in Moodle; its Zoho BTEC_Grades record is derived from it.
pub(super) struct PendingGrade {
    pub(super) student: String,
    pub(super) class: String,
    pub(super) finalgrade: f64,
    pub(super) grademax: f64,
    pub(super) timemodified: i64,
}

pub(super) struct Gen<'a> {
    rng: StdRng,
    students: usize,
    state: State,
    settings: &'a Settings,
    pub(super) zoho: ZohoSeed,
    seq: FxHashMap<&'static str, u64>,
    teachers: Vec<(String, String)>,
    units: Vec<(String, String)>,
    unit_names: Vec<String>,
    classes: Vec<ClassInfo>,
    pub(super) pending: Vec<PendingGrade>,
    /// The buffer records are written in, handed from one record to the next ([`RecordWriter::with_buffer`]).
    scratch: Vec<u8>,
}

impl<'a> Gen<'a> {
    pub(super) fn new(opts: &GenOptions, settings: &'a Settings) -> Gen<'a> {
        let mut zoho = ZohoSeed::default();
        for m in ZOHO_MODULES {
            zoho.modules.insert(m.to_string(), Vec::new());
        }
        Gen {
            rng: StdRng::seed_from_u64(opts.seed),
            students: opts.students,
            state: opts.state,
            settings,
            zoho,
            seq: FxHashMap::default(),
            teachers: Vec::new(),
            units: Vec::new(),
            unit_names: Vec::new(),
            classes: Vec::new(),
            pending: Vec::new(),
            scratch: Vec::with_capacity(1024),
        }
    }

    /// The next id of a module: strictly increasing, with small random gaps as real ids have.
    fn next_id(&mut self, module: &'static str) -> String {
        let gap = self.rng.gen_range(1..8u64);
        let seq = self.seq.entry(module).or_insert(1000);
        *seq += gap;
        format!("58475960{:02}{:09}", module_code(module), *seq)
    }

    /// Starts a record: `id` first, then the caller's fields, then [`Gen::stamp`].
    fn record(&mut self, module: &'static str, name: &str) -> (String, RecordWriter) {
        let id = self.next_id(module);
        let mut m = RecordWriter::with_buffer(std::mem::take(&mut self.scratch));
        m.put("id", &id).put("Name", name);
        (id, m)
    }

    /// Created/Modified time and user. `created_from` is the earliest plausible creation (Unix seconds).
    fn stamp(&mut self, m: &mut RecordWriter, created_from: i64) {
        let created_from = created_from.min(AS_OF - 60 * DAY);
        let created = self.rng.gen_range(created_from..AS_OF - 30 * DAY);
        let modified = (created + self.rng.gen_range(0..40 * DAY)).min(AS_OF - 2 * DAY);
        let ist = self.rng.gen_bool(0.4);
        m.put("Created_Time", &zoho_time(created, ist)).put("Modified_Time", &zoho_time(modified, ist));
        m.lookup("Created_By", HUMAN_USER.0, HUMAN_USER.1).lookup("Modified_By", HUMAN_USER.0, HUMAN_USER.1);
    }

    fn push(&mut self, module: &str, m: RecordWriter) {
        let (rec, buf) = m.finish();
        self.scratch = buf;
        self.zoho.modules.get_mut(module).expect("every module is present").push(rec);
    }

    fn pick<'b, T>(&mut self, items: &'b [T]) -> &'b T {
        items.choose(&mut self.rng).expect("non-empty list")
    }

    /// A person's names, now and then padded with spaces (typed into a CRM form).
    fn person_names(&mut self) -> (String, String) {
        let first = self.pick(names::FIRST_NAMES).to_string();
        let last = self.pick(names::LAST_NAMES).to_string();
        if self.rng.gen_bool(0.02) {
            (format!(" {first} "), format!("{last} "))
        } else {
            (first, last)
        }
    }

    pub(super) fn zoho_side(&mut self) {
        let (teachers, classes) = shape(self.students);
        for i in 0..classes {
            self.unit(i);
        }
        for i in 0..teachers {
            self.teacher(i);
        }
        let class_start = 1_672_531_200; // 2023-01-01: when the college moved to Zoho
        for i in 0..classes {
            self.class(i, class_start);
        }
        let mut seen: FxHashSet<String> = FxHashSet::with_capacity_and_hasher(self.students, Default::default());
        let mut emails: Vec<Option<String>> = Vec::with_capacity(self.students);
        let mut seqs = (0u64, 0u64);
        for i in 0..self.students {
            // Every 50th student is a new intake: active, but not yet registered or enrolled. Deleting one of
            // them in Zoho leaves no dangling lookups, so that drift's expected change stays exactly one.
            let new_intake = i % 50 == 49;
            let s = self.student(i, new_intake, &mut seen, &mut emails);
            if !new_intake {
                self.finance(&s, &mut seqs.0);
                self.enrolments(&s, &mut seqs.1);
            }
        }
    }

    fn unit(&mut self, i: usize) {
        let code = format!(
            "{}/{}/{:04}",
            names::CODE_LETTERS[i % names::CODE_LETTERS.len()],
            600 + (i / names::CODE_LETTERS.len()) % 100,
            1000 + i
        );
        let title = names::UNIT_TITLES[i % names::UNIT_TITLES.len()];
        let round = i / names::UNIT_TITLES.len();
        let unit_name = if round == 0 { title.to_string() } else { format!("{title} {}", round + 1) };
        let level = self.pick(&["3", "Level 3", "4", "Level 4", "5", "Level 5", "6"]).to_string();
        let credits: Option<i64> = if self.rng.gen_bool(0.05) { None } else { Some(*self.pick(&[15, 15, 30, 30, 60])) };
        let criteria = if self.rng.gen_bool(0.05) {
            None
        } else {
            Some(format!(
                "P1 Explain the principles of {title}.\nP2 Apply them to a given scenario.\n\
                 M1 Analyse the results.\nD1 Evaluate the approach and justify improvements."
            ))
        };
        let (id, mut m) = self.record("BTEC_Units", &code);
        m.put("Unit_Code", &code).put("Unit_Name", &unit_name).put("Level", &level);
        m.put("Credits", &credits).put("Grading_Criteria", &criteria);
        self.stamp(&mut m, 1_672_531_200);
        self.push("BTEC_Units", m);
        self.units.push((id, code));
        self.unit_names.push(unit_name);
    }

    fn teacher(&mut self, i: usize) {
        let (first, last) = self.person_names();
        let number = format!("TCH-{:04}", i + 1);
        let mut email = format!("{}.{}{}@college.ac.uk", ascii_fold(&first), ascii_fold(&last), i + 1);
        if self.rng.gen_bool(0.2) {
            email = names::mixed_case(&email);
        }
        let (id, mut m) = self.record("BTEC_Teachers", &number);
        m.put("First_Name", &first).put("Last_Name", &last).put("Academic_Email", &email);
        m.put("Teacher_ID_Number", &number).null("Teacher_Moodle_ID");
        self.stamp(&mut m, 1_672_531_200);
        self.push("BTEC_Teachers", m);
        self.teachers.push((id, number));
    }

    fn class(&mut self, i: usize, created_from: i64) {
        let unit = i % self.units.len();
        let unit_name = self.unit_names[unit].clone();
        let abbrev: String = ascii_fold(&unit_name).chars().filter(char::is_ascii_alphabetic).take(3).collect();
        let short = format!("{}-{:04}", abbrev.to_uppercase(), i + 1);
        let group = (b'A' + (i % 4) as u8) as char;
        // Cohorts start in September, January and April; a course lasts about nine months.
        let start_day = *self.pick(&[20_332i64, 20_465, 20_563, 20_101]); // 2025-09-01, 2026-01-12, 2026-04-20, 2025-01-13
        let end = if self.rng.gen_bool(0.05) { None } else { Some(start_day + 273) };
        let program = self.pick(names::PROGRAMS).to_string();
        let teacher = self.rng.gen_range(0..self.teachers.len());
        let status = *self.pick(&[
            "Active",
            "Active",
            "Active",
            "Active",
            "Active",
            "Active",
            "Active",
            "Active",
            "Active",
            "Active",
            "Active",
            "Active",
            "Active",
            "Active",
            "Active",
            "Active",
            "Active",
            "Inactive",
            "Inactive",
            "Completed",
        ]);
        let (id, mut m) = self.record("BTEC_Classes", &short);
        m.put("Class_Name", &format!("{unit_name} — Group {group}")).put("Class_Short_Name", &short);
        m.put("Program", &program);
        let (tid, tname) = &self.teachers[teacher];
        m.lookup("Teacher", tid, tname);
        let (uid, uname) = &self.units[unit];
        m.lookup("Unit", uid, uname);
        m.put("Start_Date", &date_str(start_day)).put("End_Date", &end.map(date_str));
        m.put("Status", status).null("Moodle_Course_ID");
        self.stamp(&mut m, created_from);
        self.push("BTEC_Classes", m);
        let grademax = if self.rng.gen_bool(0.2) { 20.0 } else { 100.0 };
        self.classes.push(ClassInfo { id, name: short, unit, start: start_day, end, grademax });
    }

    fn student(
        &mut self,
        i: usize,
        new_intake: bool,
        seen: &mut FxHashSet<String>,
        emails: &mut Vec<Option<String>>,
    ) -> StudentInfo {
        let (first, last) = self.person_names();
        let year = self.rng.gen_range(2023..=2025);
        let number = format!("STU-{year}-{:05}", i + 1);
        let roll = self.rng.gen_range(0..1000);
        let email = if roll < 10 {
            None // about 1% have no academic email yet
        } else if roll < 17 && i > 0 {
            // About 0.7% share an earlier student's email (a sibling's, a typo), in another spelling.
            let mut j = self.rng.gen_range(0..i);
            while emails[j].is_none() && j > 0 {
                j -= 1;
            }
            emails[j].as_ref().map(|e| format!(" {} ", e.trim().to_uppercase()))
        } else {
            let plain = format!("{}.{}{}@student.college.ac.uk", ascii_fold(&first), ascii_fold(&last), i + 1);
            Some(match self.rng.gen_range(0..100) {
                0..=14 => names::mixed_case(&plain),
                15..=19 => format!("  {plain} "),
                20..=22 => plain.to_uppercase(),
                _ => plain,
            })
        };
        let user = match &email {
            Some(e) => seen.insert(e.trim().to_lowercase()),
            None => false,
        };
        emails.push(email.clone());
        let d = |r: &mut StdRng, n: u32| r.gen_range(0..10u32.pow(n));
        let phone = match self.rng.gen_range(0..20) {
            0 => None,
            1..=4 => Some(format!("+44 20 7946 {:04}", d(&mut self.rng, 4))),
            5..=8 => Some(format!("07700 900{:03}", d(&mut self.rng, 3))),
            9..=11 => Some(format!("(020) 7946-{:04}", d(&mut self.rng, 4))),
            12..=14 => Some(format!("+447700900{:03}", d(&mut self.rng, 3))),
            15..=16 => Some(format!("+91 98765 {:05}", d(&mut self.rng, 5))),
            _ => Some(format!("020 7946 {:04}", d(&mut self.rng, 4))),
        };
        let status = match self.rng.gen_range(0..100) {
            _ if new_intake => "Active",
            0..=84 => "Active",
            85..=88 => "Inactive",
            89..=91 => "Suspended",
            92..=95 => "Withdrawn",
            _ => "Graduated",
        };
        let program = self.rng.gen_range(0..names::PROGRAMS.len());
        let (id, mut m) = self.record("BTEC_Students", &number);
        m.put("First_Name", &first).put("Last_Name", &last).put("Academic_Email", &email);
        m.put("Student_ID_Number", &number).put("Phone", &phone).put("Status", status).null("Student_Moodle_ID");
        self.stamp(&mut m, 1_672_531_200 + (year - 2023) * 365 * DAY);
        self.push("BTEC_Students", m);
        StudentInfo { id, name: number, user, program }
    }

    /// One registration and its three to five instalments.
    fn finance(&mut self, s: &StudentInfo, pay_seq: &mut u64) {
        let reg_day = self.rng.gen_range(19_000..20_330i64); // 2022-01 .. 2025-08
        let fee_cents: i64 = *self.pick(&[800_000, 950_000, 1_000_000, 1_250_050, 725_075, 1_500_000]);
        let scholarship: Option<f64> = *self.pick(&[None, Some(0.0), Some(10.0), Some(12.5), Some(20.0), Some(25.0)]);
        let currency = match self.rng.gen_range(0..20) {
            0..=13 => "GBP",
            14..=15 => "USD",
            16 => "EUR",
            17 => "AED",
            _ => "INR",
        };
        let status = match self.rng.gen_range(0..20) {
            0..=16 => "Active",
            17 => "Completed",
            18 => "Withdrawn",
            _ => "Cancelled",
        };
        let name = format!("REG-{}", &s.name[4..]);
        let (reg_id, mut m) = self.record("BTEC_Registrations", &name);
        m.lookup("Student", &s.id, &s.name).put("Program", names::PROGRAMS[s.program]);
        m.put("Registration_Date", &date_str(reg_day)).put("Total_Fee", &(fee_cents as f64 / 100.0));
        m.put("Scholarship_Percent", &scholarship).put("Currency", currency).put("Status", status);
        self.stamp(&mut m, reg_day * DAY);
        self.push("BTEC_Registrations", m);

        let net = fee_cents - (fee_cents as f64 * scholarship.unwrap_or(0.0) / 100.0).round() as i64;
        let count = self.rng.gen_range(3..=5i64);
        let today = AS_OF / DAY;
        for k in 0..count {
            *pay_seq += 1;
            let amount = if k == count - 1 { net - net / count * (count - 1) } else { net / count };
            let due = reg_day + 30 + k * 90 + self.rng.gen_range(0..10);
            let (status, paid_on) = if due > today {
                ("Due", None)
            } else if self.rng.gen_bool(0.1) {
                ("Overdue", None)
            } else {
                ("Paid", Some(due - self.rng.gen_range(0..10)))
            };
            let method =
                paid_on.map(|_| *self.pick(&["Cash", "Card", "Card", "Bank Transfer", "Bank Transfer", "Cheque"]));
            let pname = format!("PAY-{:07}", *pay_seq);
            let (_, mut p) = self.record("BTEC_Payments", &pname);
            p.lookup("Student", &s.id, &s.name).lookup("Registration", &reg_id, &name);
            p.put("Amount", &(amount as f64 / 100.0)).put("Payment_Date", &paid_on.map(date_str));
            p.put("Due_Date", &date_str(due)).put("Status", status).put("Method", &method);
            self.stamp(&mut p, reg_day * DAY);
            self.push("BTEC_Payments", p);
        }
    }

    /// Four to six enrolments in distinct classes, and a grade for part of them.
    fn enrolments(&mut self, s: &StudentInfo, enr_seq: &mut u64) {
        let count = self.rng.gen_range(4..=6usize).min(self.classes.len());
        let picks = rand::seq::index::sample(&mut self.rng, self.classes.len(), count).into_vec();
        for c in picks {
            *enr_seq += 1;
            let status = match self.rng.gen_range(0..20) {
                0..=16 => "Active",
                17..=18 => "Withdrawn",
                _ => "Completed",
            };
            let (class_id, class_name, start, end, unit, grademax) = {
                let c = &self.classes[c];
                (c.id.clone(), c.name.clone(), c.start, c.end, c.unit, c.grademax)
            };
            // Late joiners start after the class did.
            let start = if self.rng.gen_bool(0.1) { start + self.rng.gen_range(1..30) } else { start };
            let graded = match status {
                "Completed" => self.rng.gen_bool(0.9),
                "Active" => self.rng.gen_bool(0.35),
                _ => false,
            };
            let name = format!("ENR-{:07}", *enr_seq);
            let (_, mut m) = self.record("BTEC_Enrollments", &name);
            m.lookup("Student", &s.id, &s.name).lookup("Class", &class_id, &class_name);
            m.put("Status", status).put("Start_Date", &date_str(start)).put("End_Date", &end.map(date_str));
            self.stamp(&mut m, start * DAY);
            self.push("BTEC_Enrollments", m);
            if graded {
                self.grade(s, &class_id, &class_name, unit, grademax);
            }
        }
    }

    /// A course total in Moodle and, where the sync would have written it, its BTEC_Grades record. The
    /// random draws do not depend on the state, so every state has the same Zoho data.
    fn grade(&mut self, s: &StudentInfo, class_id: &str, class_name: &str, unit: usize, grademax: f64) {
        let hundredths = self.rng.gen_range(2_000..9_800u32);
        let finalgrade = hundredths as f64 / 100.0 * grademax / 100.0;
        let timemodified = AS_OF - self.rng.gen_range(3 * DAY..200 * DAY);
        let ist = self.rng.gen_bool(0.4);
        let id = self.next_id("BTEC_Grades");
        if !s.user || self.state == State::Empty {
            return;
        }
        let t = &self.settings.thresholds;
        let level = grade::level(Some(finalgrade), 0.0, grademax, None, t).expect("a numeric grade has a level");
        let percent = grade::percent(finalgrade, 0.0, grademax);
        let pct = mapping::canon::decimal(Some(&json!(percent)), 2, "Moodle_Grade").expect("a number");
        let pct: f64 = pct.as_str().and_then(|p| p.parse().ok()).expect("a fixed-point number");
        let name = format!("GRD-{}-{}", &s.name[4..], &class_name);
        let mut m = RecordWriter::with_buffer(std::mem::take(&mut self.scratch));
        m.put("id", &id).put("Name", &name);
        m.lookup("Student", &s.id, &s.name).lookup("Class", class_id, class_name);
        let (uid, uname) = &self.units[unit];
        m.lookup("Unit", uid, uname);
        m.put("Grade", &level).put("Moodle_Grade", &pct).put("Graded_Date", &date_str(timemodified.div_euclid(DAY)));
        // Grades are written by the sync (Moodle → Zoho).
        m.put("Created_Time", &zoho_time(SYNCED_AT, ist)).put("Modified_Time", &zoho_time(SYNCED_AT, ist));
        let (iid, iname) = INTEGRATION_USER;
        m.lookup("Created_By", iid, iname).lookup("Modified_By", iid, iname);
        self.push("BTEC_Grades", m);
        self.pending.push(PendingGrade {
            student: s.id.clone(),
            class: class_id.to_string(),
            finalgrade,
            grademax,
            timemodified,
        });
    }
}
