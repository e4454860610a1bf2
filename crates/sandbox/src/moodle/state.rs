//! The fake site's tables (Moodle's lib/db/install.xml), in memory behind one mutex. Ids are deterministic: each table
//! numbers after its largest id, so a seeded run is reproducible.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::seed::MoodleSeed;

pub const GUEST_ID: i64 = 1;
pub const ADMIN_ID: i64 = 2;
pub const SITE_COURSE_ID: i64 = 1;

/// Roles of the fake site: (id, shortname, sortorder). Built-in roles have an empty `name` in the DB.
pub const ROLES: &[(i64, &str)] = &[(1, "manager"), (3, "editingteacher"), (4, "teacher"), (5, "student")];

/// The BTEC scale the fake offers to course totals whose seed grades name scale items.
pub const BTEC_SCALE_ID: i64 = 1;
pub const BTEC_SCALE: &[&str] = &["Refer", "Pass", "Merit", "Distinction"];

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub firstname: String,
    pub lastname: String,
    pub email: String,
    pub idnumber: String,
    pub auth: String,
    pub suspended: bool,
    pub deleted: bool,
    pub confirmed: bool,
    pub lang: String,
    pub timezone: String,
    pub mailformat: i64,
    pub description: String,
    pub city: String,
    pub country: String,
    pub institution: String,
    pub department: String,
    pub phone1: String,
    pub phone2: String,
    pub address: String,
    /// Plain text; the fake never exposes it (only `/login/token.php` compares it).
    #[serde(skip)]
    pub password: Option<String>,
    /// Custom profile fields by shortname.
    pub customfields: BTreeMap<String, String>,
    pub timecreated: i64,
    pub timemodified: i64,
}

impl User {
    pub fn new(id: i64, username: &str, firstname: &str, lastname: &str, email: &str, now: i64) -> User {
        User {
            id,
            username: username.into(),
            firstname: firstname.into(),
            lastname: lastname.into(),
            email: email.into(),
            idnumber: String::new(),
            auth: "manual".into(),
            suspended: false,
            deleted: false,
            confirmed: true,
            lang: "en".into(),
            timezone: "99".into(),
            mailformat: 1,
            description: String::new(),
            city: String::new(),
            country: String::new(),
            institution: String::new(),
            department: String::new(),
            phone1: String::new(),
            phone2: String::new(),
            address: String::new(),
            password: None,
            customfields: BTreeMap::new(),
            timecreated: now,
            timemodified: now,
        }
    }

    pub fn fullname(&self) -> String {
        format!("{} {}", self.firstname, self.lastname)
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Category {
    pub id: i64,
    pub name: String,
    pub idnumber: String,
    pub parent: i64,
    pub description: String,
    pub descriptionformat: i64,
    pub visible: bool,
    pub timemodified: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Course {
    pub id: i64,
    pub shortname: String,
    pub fullname: String,
    pub idnumber: String,
    pub categoryid: i64,
    pub summary: String,
    pub summaryformat: i64,
    pub format: String,
    pub startdate: i64,
    pub enddate: i64,
    pub visible: bool,
    pub timecreated: i64,
    pub timemodified: i64,
    /// `enrol.id` of the course's manual instance (`None` for the site course).
    pub manual_enrolid: Option<i64>,
    /// The course-total grade item.
    pub grade_item: GradeItem,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GradeItem {
    pub id: i64,
    pub grademin: f64,
    pub grademax: f64,
    /// Set when the course total uses the BTEC scale (gradetype 2).
    pub scaleid: Option<i64>,
}

/// `user_enrolments` joined with the course's manual instance.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Enrolment {
    pub id: i64,
    pub enrolid: i64,
    pub courseid: i64,
    pub userid: i64,
    /// 0 active, 1 suspended.
    pub status: i64,
    pub timestart: i64,
    pub timeend: i64,
    pub timecreated: i64,
    pub timemodified: i64,
}

/// A `grade_grades` row of a course-total item.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Grade {
    pub id: i64,
    pub courseid: i64,
    pub userid: i64,
    pub finalgrade: Option<f64>,
    pub timemodified: i64,
}

/// One plugin table: rows in the `get_*` representation, by row id. Rows change through [`PluginTable::insert`]
/// and [`PluginTable::remove`], which keep the `zoho_id` index (the plugin's unique key) that `find` uses.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PluginTable {
    pub rows: BTreeMap<i64, Map<String, Value>>,
    pub next_id: i64,
    #[serde(skip)]
    by_zoho: HashMap<String, i64>,
}

impl PluginTable {
    pub fn find(&self, zoho_id: &str) -> Option<i64> {
        self.by_zoho.get(zoho_id).copied()
    }

    pub fn insert(&mut self, id: i64, row: Map<String, Value>) {
        if let Some(z) = row.get("zoho_id").and_then(Value::as_str) {
            self.by_zoho.insert(z.to_string(), id);
        }
        self.rows.insert(id, row);
    }

    pub fn remove(&mut self, id: i64) {
        if let Some(z) = self.rows.remove(&id).as_ref().and_then(|r| r.get("zoho_id")).and_then(Value::as_str) {
            self.by_zoho.remove(z);
        }
    }
}

/// Something a plugin observer would have seen (docs/plugin-contract.md §9).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    pub eventname: String,
    pub courseid: i64,
    pub userid: i64,
    pub timecreated: i64,
    /// For grade events: the `grade_grades.id` and the final grade.
    pub grade_id: Option<i64>,
    pub grade: Option<f64>,
}

#[derive(Debug, Default, Clone)]
pub struct State {
    pub users: BTreeMap<i64, User>,
    pub categories: BTreeMap<i64, Category>,
    pub courses: BTreeMap<i64, Course>,
    /// Keyed by (courseid, userid): one manual enrolment per pair.
    pub enrolments: BTreeMap<(i64, i64), Enrolment>,
    /// Role assignments in course contexts: (courseid, userid) → role ids.
    pub roles: BTreeMap<(i64, i64), BTreeSet<i64>>,
    /// Course-total grades by (courseid, userid).
    pub grades: BTreeMap<(i64, i64), Grade>,
    pub plugin: BTreeMap<&'static str, PluginTable>,
    pub events: Vec<Event>,
    next_user: i64,
    next_course: i64,
    next_category: i64,
    next_enrolment: i64,
    next_enrol_instance: i64,
    next_grade: i64,
    next_grade_item: i64,
}

pub const PLUGIN_TABLES: &[&str] = &["registrations", "payments", "units", "grades"];

impl State {
    /// What a transactional call may change, kept for its rollback: every core table, not the plugin's tables
    /// nor the event log (no core function writes the plugin's tables, and a call's events are appended only
    /// once it has succeeded). Copying those too made each enrol call cost O(everything ever written).
    pub fn core_backup(&self) -> State {
        State {
            users: self.users.clone(),
            categories: self.categories.clone(),
            courses: self.courses.clone(),
            enrolments: self.enrolments.clone(),
            roles: self.roles.clone(),
            grades: self.grades.clone(),
            plugin: BTreeMap::new(),
            events: Vec::new(),
            ..*self
        }
    }

    /// Rolls the core tables back to `backup` (from [`State::core_backup`]), keeping the plugin's tables and the
    /// event log as they are.
    pub fn restore_core(&mut self, backup: State) {
        let plugin = std::mem::take(&mut self.plugin);
        let events = std::mem::take(&mut self.events);
        *self = State { plugin, events, ..backup };
    }

    pub fn from_seed(seed: MoodleSeed, now: i64) -> State {
        let mut s = State::default();
        s.users.insert(GUEST_ID, {
            let mut u = User::new(GUEST_ID, "guest", "Guest user", " ", "root@localhost", now);
            u.auth = "manual".into();
            u
        });
        s.users.insert(ADMIN_ID, User::new(ADMIN_ID, "admin", "Admin", "User", "admin@sandbox.invalid", now));
        for u in seed.users {
            let mut user = User::new(u.id, &u.username, &u.firstname, &u.lastname, &u.email, now);
            user.idnumber = u.idnumber;
            user.auth = u.auth;
            user.suspended = u.suspended;
            user.phone1 = u.phone1;
            s.users.insert(u.id, user);
        }
        if !seed.categories.iter().any(|c| c.id == 1) {
            s.categories.insert(1, category(1, "Category 1", "", 0, now));
        }
        for c in seed.categories {
            s.categories.insert(c.id, category(c.id, &c.name, &c.idnumber, c.parent, now));
        }
        s.next_user = s.users.keys().max().copied().unwrap_or(0);
        s.next_category = s.categories.keys().max().copied().unwrap_or(0);
        s.next_course = seed.courses.iter().map(|c| c.id).max().unwrap_or(1).max(1);
        let site = Course {
            id: SITE_COURSE_ID,
            shortname: "sandbox".into(),
            fullname: "zmsync sandbox Moodle".into(),
            idnumber: String::new(),
            categoryid: 0,
            summary: String::new(),
            summaryformat: 1,
            format: "site".into(),
            startdate: 0,
            enddate: 0,
            visible: true,
            timecreated: now,
            timemodified: now,
            manual_enrolid: None,
            grade_item: GradeItem { id: 0, grademin: 0.0, grademax: 100.0, scaleid: None },
        };
        s.courses.insert(SITE_COURSE_ID, site);
        // Per course: whether any seed grade names a scale item, and the first seed grade's range.
        let mut grading: BTreeMap<i64, (bool, (f64, f64))> = BTreeMap::new();
        for g in &seed.grades {
            let e = grading.entry(g.courseid).or_insert((false, (g.grademin, g.grademax)));
            e.0 |= g.scaleitem.is_some();
        }
        for c in seed.courses.into_iter().filter(|c| c.id != SITE_COURSE_ID) {
            // A seed course whose grades name scale items gets a BTEC-scale course total.
            let scaled = grading.get(&c.id).is_some_and(|g| g.0);
            let range = grading.get(&c.id).map(|g| g.1);
            let mut course = s.new_course(c.id, &c.shortname, &c.fullname, &c.idnumber, c.categoryid, now);
            course.startdate = c.startdate;
            course.enddate = c.enddate;
            course.visible = c.visible;
            if scaled {
                course.grade_item.scaleid = Some(BTEC_SCALE_ID);
                course.grade_item.grademin = 1.0;
                course.grade_item.grademax = BTEC_SCALE.len() as f64;
            } else if let Some((min, max)) = range {
                course.grade_item.grademin = min;
                course.grade_item.grademax = max;
            }
            s.courses.insert(c.id, course);
        }
        for e in seed.enrolments {
            let Some(enrolid) = s.courses.get(&e.courseid).and_then(|c| c.manual_enrolid) else { continue };
            s.next_enrolment += 1;
            let id = s.next_enrolment;
            s.enrolments.insert(
                (e.courseid, e.userid),
                Enrolment {
                    id,
                    enrolid,
                    courseid: e.courseid,
                    userid: e.userid,
                    status: e.status,
                    timestart: e.timestart,
                    timeend: e.timeend,
                    timecreated: now,
                    timemodified: now,
                },
            );
            s.roles.entry((e.courseid, e.userid)).or_default().insert(e.roleid);
        }
        for g in seed.grades {
            let finalgrade = match (&g.scaleitem, g.finalgrade) {
                (Some(item), None) => BTEC_SCALE.iter().position(|s| s == item).map(|p| (p + 1) as f64),
                (_, f) => f,
            };
            s.next_grade += 1;
            let id = s.next_grade;
            s.grades.insert(
                (g.courseid, g.userid),
                Grade { id, courseid: g.courseid, userid: g.userid, finalgrade, timemodified: g.timemodified },
            );
        }
        for t in PLUGIN_TABLES {
            s.plugin.insert(t, PluginTable::default());
        }
        let tables = [
            ("registrations", seed.plugin.registrations),
            ("payments", seed.plugin.payments),
            ("units", seed.plugin.units),
            ("grades", seed.plugin.grades),
        ];
        for (name, rows) in tables {
            let table = s.plugin.entry(name).or_default();
            for row in rows {
                let mut row = row.map();
                let id = row.get("id").and_then(Value::as_i64).unwrap_or(table.next_id + 1);
                row.insert("id".into(), Value::from(id));
                row.entry("timemodified").or_insert(Value::from(now));
                table.next_id = table.next_id.max(id);
                table.insert(id, row);
            }
        }
        s
    }

    pub fn next_user_id(&mut self) -> i64 {
        self.next_user += 1;
        self.next_user
    }

    pub fn next_category_id(&mut self) -> i64 {
        self.next_category += 1;
        self.next_category
    }

    pub fn next_course_id(&mut self) -> i64 {
        self.next_course += 1;
        self.next_course
    }

    /// A new course with its manual enrol instance and course-total grade item (what `create_course` adds).
    pub fn new_course(
        &mut self,
        id: i64,
        shortname: &str,
        fullname: &str,
        idnumber: &str,
        cat: i64,
        now: i64,
    ) -> Course {
        self.next_enrol_instance += 1;
        self.next_grade_item += 1;
        Course {
            id,
            shortname: shortname.into(),
            fullname: fullname.into(),
            idnumber: idnumber.into(),
            categoryid: cat,
            summary: String::new(),
            summaryformat: 1,
            format: "topics".into(),
            startdate: 0,
            enddate: 0,
            visible: true,
            timecreated: now,
            timemodified: now,
            manual_enrolid: Some(self.next_enrol_instance),
            grade_item: GradeItem { id: self.next_grade_item, grademin: 0.0, grademax: 100.0, scaleid: None },
        }
    }

    pub fn next_enrolment_id(&mut self) -> i64 {
        self.next_enrolment += 1;
        self.next_enrolment
    }

    pub fn next_grade_id(&mut self) -> i64 {
        self.next_grade += 1;
        self.next_grade
    }

    /// Live (not deleted) user by id.
    pub fn live_user(&self, id: i64) -> Option<&User> {
        self.users.get(&id).filter(|u| !u.deleted)
    }

    /// Removes an enrolment with its roles and course grade (grades move to history on a real site).
    pub fn unenrol(&mut self, courseid: i64, userid: i64) -> Option<Enrolment> {
        let e = self.enrolments.remove(&(courseid, userid))?;
        self.roles.remove(&(courseid, userid));
        self.grades.remove(&(courseid, userid));
        Some(e)
    }
}

fn category(id: i64, name: &str, idnumber: &str, parent: i64, now: i64) -> Category {
    Category {
        id,
        name: name.into(),
        idnumber: idnumber.into(),
        parent,
        description: String::new(),
        descriptionformat: 1,
        visible: true,
        timemodified: now,
    }
}

/// `format_string` with default settings: tags stripped, `&` not starting an entity escaped, `<`/`>` escaped.
pub fn format_string(s: &str, raw: bool) -> String {
    if raw {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for (i, c) in s.char_indices() {
        match c {
            '&' if !starts_entity(&s[i + 1..]) => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn starts_entity(rest: &str) -> bool {
    let Some(end) = rest.find(';') else { return false };
    let name = &rest[..end];
    !name.is_empty() && name.len() <= 10 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '#')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_string_escapes_lone_ampersands_only() {
        assert_eq!(format_string("A & B &amp; C <x>", false), "A &amp; B &amp; C &lt;x&gt;");
        assert_eq!(format_string("A & B", true), "A & B");
    }
}
