//! What the fake servers start with, and what the generator produces. This file is the contract between the
//! generator (`generator.rs`) and the two fakes (`zoho.rs`, `moodle.rs`): each fake turns a seed into its own
//! internal state, and the generator never reaches into a fake's internals.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The Zoho CRM custom modules the sandbox serves (domain.md), in dependency order.
pub const ZOHO_MODULES: &[&str] = &[
    "BTEC_Units",
    "BTEC_Teachers",
    "BTEC_Students",
    "BTEC_Classes",
    "BTEC_Enrollments",
    "BTEC_Registrations",
    "BTEC_Payments",
    "BTEC_Grades",
    "BTEC_Attendance",
];

/// The fake Zoho's starting data: records per module, exactly as Zoho would return them on read, i.e. JSON
/// objects keyed by field API name, with `id` (a 19-digit string), `Created_Time` and `Modified_Time`
/// (ISO-8601 with an offset, to the second; seed data mixes `+00:00` and `+05:30`), `Created_By` and
/// `Modified_By` (user lookups), and lookups as `{"id": "...", "name": "..."}`. Every module in
/// [`ZOHO_MODULES`] is present (possibly empty).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ZohoSeed {
    pub modules: BTreeMap<String, Vec<Value>>,
    /// Records already in the recycle bin, per module (served by `GET /{module}/deleted`).
    pub deleted: BTreeMap<String, Vec<DeletedStub>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeletedStub {
    pub id: String,
    pub display_name: Option<String>,
    /// `recycle` or `permanent`.
    pub r#type: String,
    /// ISO-8601 with an offset.
    pub deleted_time: String,
}

/// The fake Moodle's starting data. Ids are Moodle ids (integers); the fake keeps them and continues
/// numbering after the largest. User id 1 is the guest and 2 the admin (the fake adds both if absent);
/// course id 1 is the site course (added by the fake).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MoodleSeed {
    pub categories: Vec<MoodleCategory>,
    pub users: Vec<MoodleUser>,
    pub courses: Vec<MoodleCourse>,
    pub enrolments: Vec<MoodleEnrolment>,
    pub grades: Vec<MoodleGrade>,
    /// The student-dashboard plugin's tables, rows exactly as `docs/plugin-contract.md` defines them.
    pub plugin: PluginTables,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MoodleCategory {
    pub id: i64,
    pub name: String,
    pub idnumber: String,
    pub parent: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MoodleUser {
    pub id: i64,
    pub username: String,
    pub firstname: String,
    pub lastname: String,
    pub email: String,
    pub idnumber: String,
    pub auth: String,
    pub suspended: bool,
    pub phone1: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MoodleCourse {
    pub id: i64,
    pub shortname: String,
    pub fullname: String,
    pub idnumber: String,
    pub categoryid: i64,
    /// Unix seconds (0 = none).
    pub startdate: i64,
    pub enddate: i64,
    pub visible: bool,
}

/// A manual enrolment with its role assignment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MoodleEnrolment {
    pub courseid: i64,
    pub userid: i64,
    pub roleid: i64,
    /// 0 active, 1 suspended.
    pub status: i64,
    pub timestart: i64,
    pub timeend: i64,
}

/// A course-total grade of one user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MoodleGrade {
    pub courseid: i64,
    pub userid: i64,
    pub finalgrade: Option<f64>,
    pub grademin: f64,
    pub grademax: f64,
    /// When the course total uses a scale (e.g. Refer, Pass, Merit, Distinction), the chosen item's name.
    pub scaleitem: Option<String>,
    /// Unix seconds.
    pub timemodified: i64,
}

/// Rows of the plugin's tables, one JSON object per row with the contract's field names.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PluginTables {
    pub registrations: Vec<Value>,
    pub payments: Vec<Value>,
    pub units: Vec<Value>,
    pub grades: Vec<Value>,
}
