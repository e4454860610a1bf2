//! The college data generator: a BTEC college shaped like domain.md, deterministic for a seed, in one of
//! three states (see [`State`]). The Zoho side is raw JSON as Zoho returns it; the Moodle side of `synced` is
//! built only through `mapping::*` (the same functions the sync writes with), so the rules live in one place
//! and "what a completed sync leaves behind" cannot drift from what the sync does.
//!
//! Real-world mess is deliberate: mixed-case and padded emails, students without an email, duplicate emails,
//! Unicode and apostrophe names, several phone formats, timestamps in `+00:00` and `+05:30`.

mod names;
mod record;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use rustc_hash::{FxHashMap, FxHashSet};

use chrono::{Datelike, NaiveDate};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use self::record::RecordWriter;
use super::drift;
use super::seed::{
    parse_value, Drift, JsonObject, MoodleCategory, MoodleCourse, MoodleEnrolment, MoodleGrade, MoodleSeed, MoodleUser,
    PluginTables, ZohoSeed, ZOHO_MODULES,
};
use crate::mapping::{self, class, dashboard, enrollment, grade, person, MapError, ZohoNames};
use crate::model::{Kind, Record};
use crate::settings::Settings;

pub use names::ascii_fold;

/// The moment the generated college is "as of": every seeded timestamp is before it, drift after it.
/// Fixed (2026-03-02T09:00:00Z) so a seed gives the same bytes on any day.
pub const AS_OF: i64 = 1_772_442_000;
/// When the `synced` state's sync ran (its write-backs carry this `Modified_Time`).
pub const SYNCED_AT: i64 = AS_OF - 20 * 3600;
const DAY: i64 = 86_400;

/// The Zoho user the registry office works as (seed records are created by a human).
pub const HUMAN_USER: (&str, &str) = ("5847596000000411001", "Registry Admin");
/// The Zoho user the sync writes as (the `synced` state's Moodle-id write-backs).
pub const INTEGRATION_USER: (&str, &str) = ("5847596000000411009", "zmsync Integration");

/// The Moodle category every fresh site has, and the one the sync creates (`moodle.accounts`).
pub const DEFAULT_CATEGORY_ID: i64 = 1;
pub const SYNC_CATEGORY_ID: i64 = 2;
/// Moodle user ids 1 and 2 are the guest and the admin (the fake adds them); course 1 is the site.
const FIRST_USER_ID: i64 = 3;
const FIRST_COURSE_ID: i64 = 2;

/// Which state both systems start in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Zoho full of data; Moodle fresh (a default category, no users but the guest and admin, no courses).
    /// Zoho has no `*_Moodle_ID` values and no BTEC_Grades (grades come from Moodle).
    Empty,
    /// Moodle exactly as a completed sync leaves it; Zoho carries the written-back Moodle ids.
    Synced,
    /// `synced`, then the drift applied (see `College::drift` for the expected changes).
    Drifted,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Empty => "empty",
            State::Synced => "synced",
            State::Drifted => "drifted",
        }
    }
}

#[derive(Debug, Clone)]
pub struct GenOptions {
    pub students: usize,
    pub seed: u64,
    pub state: State,
    /// K: how many differences `drifted` seeds; at least one of every `DriftKind` when K ≥ 11.
    pub drift_count: usize,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions { students: 1500, seed: 1, state: State::Empty, drift_count: 30 }
    }
}

/// A generated college: what each fake starts with, and (for `drifted`) the changes a reconcile must plan.
#[derive(Debug, Clone, Serialize)]
pub struct College {
    pub zoho: ZohoSeed,
    pub moodle: MoodleSeed,
    pub drift: Vec<Drift>,
}

/// How many teachers and classes a college of `students` has: domain.md's 50 and 200 up to 1,500 students,
/// growing in proportion beyond (so a class never holds thousands).
pub fn shape(students: usize) -> (usize, usize) {
    (50.max(students / 30), 200.max(students * 2 / 15))
}

impl College {
    pub fn generate(opts: GenOptions) -> College {
        let settings = Settings::defaults();
        let start = std::time::Instant::now();
        let phase = |what: &str| {
            if tracing::enabled!(tracing::Level::DEBUG) {
                let (rss_kib, peak_kib) = crate::memory::resident_kib().unwrap_or_default();
                let (rss_mib, peak_mib) = (rss_kib / 1024, peak_kib / 1024);
                tracing::debug!(ms = start.elapsed().as_millis() as u64, rss_mib, peak_mib, "generator: {what} done")
            }
        };
        let mut g = Gen::new(&opts, &settings);
        g.zoho_side();
        phase("Zoho side");
        let Gen { mut zoho, pending, .. } = g;
        if opts.state == State::Empty {
            let moodle = MoodleSeed { categories: vec![default_category()], ..MoodleSeed::default() };
            return College { zoho, moodle, drift: Vec::new() };
        }
        let (mut moodle, students) = synced_moodle(&mut zoho, pending, &settings, &phase);
        let mut drift = Vec::new();
        if opts.state == State::Drifted {
            let (count, seed) = (opts.drift_count, opts.seed);
            let plans = drift::plan_mapped(&zoho, &moodle, students, count, seed, &HashSet::new(), &settings);
            phase("drift plan");
            for p in &plans {
                drift::apply_to_seeds(&mut zoho, &mut moodle, &p.mutations, AS_OF + 3600);
            }
            drift = plans.into_iter().map(|p| p.drift).collect();
            phase("drift applied");
        }
        College { zoho, moodle, drift }
    }

    /// Records per Zoho module and Moodle object, for the sandbox's one-line summary.
    pub fn summary(&self) -> String {
        let n = |m: &str| self.zoho.modules.get(m).map(Vec::len).unwrap_or(0);
        format!(
            "zoho: {} students, {} teachers, {} units, {} classes, {} enrollments, {} registrations, {} payments, {} grades; \
             moodle: {} users, {} courses, {} enrolments, {} grades, {} dashboard rows; {} drift",
            n("BTEC_Students"),
            n("BTEC_Teachers"),
            n("BTEC_Units"),
            n("BTEC_Classes"),
            n("BTEC_Enrollments"),
            n("BTEC_Registrations"),
            n("BTEC_Payments"),
            n("BTEC_Grades"),
            self.moodle.users.len(),
            self.moodle.courses.len(),
            self.moodle.enrolments.len(),
            self.moodle.grades.len(),
            self.moodle.plugin.units.len() + self.moodle.plugin.registrations.len() + self.moodle.plugin.payments.len(),
            self.drift.len(),
        )
    }
}

fn default_category() -> MoodleCategory {
    MoodleCategory { id: DEFAULT_CATEGORY_ID, name: "Category 1".into(), idnumber: String::new(), parent: 0 }
}

// ---- time and id helpers ---------------------------------------------------------------------------------

fn civil(days: i64) -> NaiveDate {
    NaiveDate::from_num_days_from_ce_opt((days + 719_163) as i32).expect("generated dates are in range")
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01).
pub fn date_str(days: i64) -> String {
    let mut out = String::with_capacity(10);
    push_date(&mut out, days);
    out
}

/// A Zoho datetime to the second: UTC as `+00:00`, or India time as `+05:30` (the org's zone).
pub fn zoho_time(t: i64, ist: bool) -> String {
    let (local, suffix) = if ist { (t + 19_800, "+05:30") } else { (t, "+00:00") };
    let mut out = String::with_capacity(25);
    push_date(&mut out, local.div_euclid(DAY));
    let s = local.rem_euclid(DAY);
    out.push('T');
    push_padded(&mut out, s / 3600, 2);
    out.push(':');
    push_padded(&mut out, s % 3600 / 60, 2);
    out.push(':');
    push_padded(&mut out, s % 60, 2);
    out.push_str(suffix);
    out
}

// Dates and times are written digit by digit: the generator writes about two million of them, and
// `format!` was a tenth of its serial part.
fn push_date(out: &mut String, days: i64) {
    let d = civil(days);
    push_padded(out, i64::from(d.year()), 4);
    out.push('-');
    push_padded(out, i64::from(d.month()), 2);
    out.push('-');
    push_padded(out, i64::from(d.day()), 2);
}

/// `n` in decimal, zero-padded to `width` digits (as `{:0width$}` does).
fn push_padded(out: &mut String, n: i64, width: usize) {
    match u32::try_from(n) {
        Ok(n) if n < 10u32.pow(width as u32) => {
            for place in (0..width as u32).rev() {
                out.push(char::from(b'0' + (n / 10u32.pow(place) % 10) as u8));
            }
        }
        _ => out.push_str(&format!("{n:0width$}")),
    }
}

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

// ---- the Zoho side ----------------------------------------------------------------------------------------

struct StudentInfo {
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
pub(crate) struct PendingGrade {
    student: String,
    class: String,
    finalgrade: f64,
    grademax: f64,
    timemodified: i64,
}

struct Gen<'a> {
    rng: StdRng,
    students: usize,
    state: State,
    settings: &'a Settings,
    zoho: ZohoSeed,
    seq: FxHashMap<&'static str, u64>,
    teachers: Vec<(String, String)>,
    units: Vec<(String, String)>,
    unit_names: Vec<String>,
    classes: Vec<ClassInfo>,
    pending: Vec<PendingGrade>,
    /// The buffer records are written in, handed from one record to the next ([`RecordWriter::with_buffer`]).
    scratch: Vec<u8>,
}

impl<'a> Gen<'a> {
    fn new(opts: &GenOptions, settings: &'a Settings) -> Gen<'a> {
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

    fn zoho_side(&mut self) {
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

/// A seed record's fields as a sync reads them, from one scan of its text: for the many records of which
/// the Moodle side needs a few fields and no [`Record`] (enrolments, dashboard rows).
struct RawFields<'t> {
    rec: &'t JsonObject,
    fields: Vec<(&'t str, &'t str)>,
}

impl<'t> RawFields<'t> {
    fn new(rec: &'t JsonObject) -> RawFields<'t> {
        RawFields { rec, fields: rec.raw_entries().collect() }
    }

    /// A field's value by API name (`None` when absent), for `mapping`'s `raw` readers.
    fn get(&self, name: &str) -> Option<Cow<'static, Value>> {
        self.fields.iter().find(|(k, _)| *k == name).map(|(_, text)| Cow::Owned(parse_value(text)))
    }

    fn bug(&self, e: MapError) -> ! {
        panic!("a generated record does not map ({e}): a generator bug\n{}", self.rec)
    }
}

/// Records are mapped on all cores a block at a time: what is built for one block (a few MB) is all that is
/// held, and all the garbage it leaves in the workers' heaps.
const BLOCK: usize = 2048;

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
fn synced_moodle(
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
    let teaching: crate::model::Fields = [("active".to_string(), json!(true))].into_iter().collect();
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

/// The dashboard rows as the plugin's `get_*` functions show them after the sync's upserts (grades: those
/// recorded in Zoho, for students with a Moodle user).
fn plugin_tables(zoho: &ZohoSeed, user_of: &FxHashMap<String, i64>, settings: &Settings) -> PluginTables {
    let mut tables = PluginTables::default();
    let mut next_row = 1;
    for (module, kind) in [
        ("BTEC_Units", Kind::Unit),
        ("BTEC_Registrations", Kind::Registration),
        ("BTEC_Payments", Kind::Payment),
        ("BTEC_Grades", Kind::Grade),
    ] {
        let names = ZohoNames::for_kind(settings, kind);
        let table = match kind {
            Kind::Unit => &mut tables.units,
            Kind::Registration => &mut tables.registrations,
            Kind::Grade => &mut tables.grades,
            _ => &mut tables.payments,
        };
        for block in zoho.modules[module].chunks(BLOCK) {
            let rows: Vec<Vec<(&str, Value)>> = block
                .par_iter()
                .filter_map(|rec| {
                    // The row `plugin_row` makes of the mapped record, read field by field from its text.
                    let text = RawFields::new(rec);
                    let bad = |e| text.bug(e);
                    let mut values = dashboard::zoho_values(kind, |name| text.get(name), &names).unwrap_or_else(bad);
                    let id = rec.id().expect("generated records have ids");
                    let userid = match dashboard::personal(kind) {
                        // No Moodle user for the student: the sync skips their rows.
                        true => {
                            let student = values.iter().find(|(c, _)| *c == "student").and_then(|(_, v)| v.as_str());
                            Some(*student.and_then(|s| user_of.get(s))?)
                        }
                        false => None,
                    };
                    let take = |c: &str| values.iter_mut().find(|(k, _)| *k == c).map(|(_, v)| Cow::Owned(v.take()));
                    Some(dashboard::plugin_entries(kind, &id, userid, take).unwrap_or_else(bad))
                })
                .collect();
            let first = next_row;
            next_row += rows.len() as i64;
            let stored: Vec<JsonObject> = rows
                .into_par_iter()
                .enumerate()
                .map(|(i, row)| stored_row_text(kind, row, first + i as i64, SYNCED_AT))
                .collect();
            // Kept as copies made on this thread: the rows live as long as the college, and this thread's
            // allocations reuse the space the people's write-backs freed, where the workers' would grow their
            // own heaps (and leave them holding this block's garbage).
            table.extend(stored.iter().cloned());
        }
    }
    tables
}

/// What an omitted optional key reads as in a `get_*` row (plugin-contract.md §4.3).
#[derive(Clone, Copy)]
enum Absent {
    Required,
    Empty,
    Null,
    Zero,
}

/// The keys of a `get_*` row in the contract's order (after `id`), each with what it reads as when omitted.
fn layout(kind: Kind) -> &'static [(&'static str, Absent)] {
    use Absent::*;
    match kind {
        Kind::Unit | Kind::DashboardUnit => &[
            ("zoho_id", Required),
            ("unit_code", Required),
            ("unit_name", Required),
            ("level", Empty),
            ("credits", Zero),
            ("criteria", Empty),
        ],
        Kind::Registration | Kind::DashboardRegistration => &[
            ("zoho_id", Required),
            ("userid", Required),
            ("student_zoho_id", Required),
            ("program", Required),
            ("registration_date", Null),
            ("total_fee", Required),
            ("scholarship_percent", Required),
            ("currency", Required),
            ("status", Empty),
        ],
        Kind::Grade | Kind::DashboardGrade => &[
            ("zoho_id", Required),
            ("userid", Required),
            ("student_zoho_id", Required),
            ("unit_zoho_id", Empty),
            ("class_zoho_id", Empty),
            ("grade", Required),
            ("moodle_grade", Null),
            ("graded_date", Null),
        ],
        _ => &[
            ("zoho_id", Required),
            ("userid", Required),
            ("student_zoho_id", Required),
            ("registration_zoho_id", Empty),
            ("amount", Required),
            ("payment_date", Null),
            ("due_date", Null),
            ("status", Required),
            ("method", Empty),
        ],
    }
}

/// A key's stored value: an omitted optional as the plugin stores it (`""`, `null`, 0 credits), `credits` as
/// an integer.
fn stored_value(key: &str, absent: Absent, v: Option<Value>) -> Value {
    let v = v.unwrap_or(match absent {
        Absent::Empty => json!(""),
        Absent::Zero => json!(0),
        Absent::Null | Absent::Required => Value::Null,
    });
    match (key, v) {
        ("credits", Value::String(s)) => json!(s.parse::<i64>().unwrap_or(0)),
        // PARAM_FLOAT, stored as a number.
        ("moodle_grade", Value::String(s)) => s.parse::<f64>().map(|g| json!(g)).unwrap_or(Value::Null),
        ("scholarship_percent", Value::Null) => json!("0.00"),
        (_, v) => v,
    }
}

/// The `get_*` row for an upserted row: every key of the contract in its order, omitted optionals as the
/// plugin stores them (`""`, `null`, 0 credits), `credits` as an integer, plus `id` and `timemodified`.
pub fn stored_row(kind: Kind, mut row: Map<String, Value>, id: i64, timemodified: i64) -> Value {
    let layout = layout(kind);
    let mut out = Map::with_capacity(layout.len() + 2);
    out.insert("id".into(), json!(id));
    for (key, absent) in layout {
        out.insert(key.to_string(), stored_value(key, *absent, row.remove(*key)));
    }
    out.insert("timemodified".into(), json!(timemodified));
    Value::Object(out)
}

/// [`stored_row`] of a row's entries (`dashboard::plugin_entries`), written straight to its compact text (the
/// same bytes), without building the row's map.
fn stored_row_text(kind: Kind, mut row: Vec<(&str, Value)>, id: i64, timemodified: i64) -> JsonObject {
    use std::io::Write;
    let mut buf = Vec::with_capacity(320);
    write!(buf, "{{\"id\":{id}").expect("writing to memory cannot fail");
    for (key, absent) in layout(kind) {
        write!(buf, ",\"{key}\":").expect("writing to memory cannot fail");
        let given = row.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v.take());
        let v = stored_value(key, *absent, given);
        serde_json::to_writer(&mut buf, &v).expect("writing JSON to memory cannot fail");
    }
    write!(buf, ",\"timemodified\":{timemodified}}}").expect("writing to memory cannot fail");
    JsonObject::from_text_unchecked(String::from_utf8(buf).expect("serde_json writes UTF-8"))
}

#[cfg(test)]
mod tests;
