//! The web-service functions of the fake site, one file per group. Each function has its real parameter
//! schema (validated before it runs), its real return shape and its real error codes.

use serde_json::{Map, Value};

use super::errors::WsError;
use super::params::Desc;
use super::state::{Event, State};
use super::MoodleOptions;

pub mod courses;
pub mod enrol;
pub mod grades;
pub mod plugin;
pub mod site;
pub mod users;

/// What a function sees while it runs (the state lock is held).
pub struct Ctx<'a> {
    pub state: &'a mut State,
    pub opts: &'a MoodleOptions,
    /// `moodlewssettingraw=1`: strings are returned unformatted.
    pub raw: bool,
    pub now: i64,
    /// Records written, for `per_record_ms` and the statistics.
    pub written: usize,
    /// Events the plugin's observers would see.
    pub events: Vec<Event>,
    pub siteurl: String,
    /// An exception raised after the call's changes were committed (they stay): what the client sees.
    pub after_commit: Option<WsError>,
}

impl Ctx<'_> {
    /// `require_capability` for the token's user.
    pub fn require(&self, cap: &str) -> Result<(), WsError> {
        if self.lacks(cap) {
            Err(WsError::nopermissions(cap))
        } else {
            Ok(())
        }
    }

    pub fn lacks(&self, cap: &str) -> bool {
        self.opts.nopermissions.iter().any(|c| c == cap)
    }
}

pub type Schema = fn() -> Vec<(&'static str, Desc)>;
pub type Run = fn(&mut Ctx, &Map<String, Value>) -> Result<Value, WsError>;

/// One external function as declared in a `db/services.php`.
pub struct Function {
    pub name: &'static str,
    pub component_version: &'static str,
    pub schema: Schema,
    pub run: Run,
    /// Writes (subject to `fault_after_apply`).
    pub write: bool,
    /// Runs in one delegated transaction: any error rolls the whole call back.
    pub transactional: bool,
    /// Provided by `local_student_dashboard` (unknown when the plugin is not installed).
    pub plugin: bool,
}

pub const CORE_VERSION: &str = "2025100600.02";
pub const PLUGIN_VERSION: &str = "2026040100";

/// Every function the fake implements; all of them are in the token's service (`zmsync`).
pub fn all() -> Vec<&'static Function> {
    let mut v: Vec<&'static Function> = Vec::new();
    v.extend(site::FUNCTIONS);
    v.extend(users::FUNCTIONS);
    v.extend(courses::FUNCTIONS);
    v.extend(enrol::FUNCTIONS);
    v.extend(grades::FUNCTIONS);
    v.extend(plugin::FUNCTIONS);
    v
}

pub fn lookup(name: &str) -> Option<&'static Function> {
    all().into_iter().find(|f| f.name == name)
}

/// Core functions that exist on a 5.1 site but are not in the `zmsync` service: calling them is an
/// `accessexception`, not an unknown function. (`core_grades_get_grades` is deliberately absent: 5.1
/// removed it, so it is unknown.)
pub const OUTSIDE_SERVICE: &[&str] = &[
    "core_enrol_get_users_courses",
    "core_enrol_get_enrolled_users_with_capability",
    "core_role_assign_roles",
    "core_role_unassign_roles",
    "core_course_delete_courses",
    "core_course_search_courses",
    "core_grades_get_gradeitems",
    "gradereport_overview_get_course_grades",
    "gradereport_user_get_grades_table",
    "core_user_get_course_user_profiles",
    "core_webservice_get_site_info_legacy",
];

// Small accessors over validated arguments (validation guarantees the types).

pub fn s<'a>(m: &'a Map<String, Value>, k: &str) -> &'a str {
    m.get(k).and_then(Value::as_str).unwrap_or_default()
}

pub fn os<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

pub fn i(m: &Map<String, Value>, k: &str) -> i64 {
    m.get(k).and_then(Value::as_i64).unwrap_or_default()
}

pub fn oi(m: &Map<String, Value>, k: &str) -> Option<i64> {
    m.get(k).and_then(Value::as_i64)
}

pub fn ob(m: &Map<String, Value>, k: &str) -> Option<bool> {
    m.get(k).and_then(Value::as_bool)
}

pub fn items<'a>(m: &'a Map<String, Value>, k: &str) -> Vec<&'a Map<String, Value>> {
    m.get(k).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_object).collect()).unwrap_or_default()
}

pub fn ints(m: &Map<String, Value>, k: &str) -> Vec<i64> {
    m.get(k).and_then(Value::as_array).map(|a| a.iter().filter_map(Value::as_i64).collect()).unwrap_or_default()
}

pub fn strs(m: &Map<String, Value>, k: &str) -> Vec<String> {
    m.get(k)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(String::from).collect())
        .unwrap_or_default()
}

/// `external_warnings` entry.
pub fn warning(item: impl Into<Value>, itemid: i64, code: &str, message: impl Into<String>) -> Value {
    serde_json::json!({"item": item.into(), "itemid": itemid, "warningcode": code, "message": message.into()})
}
