//! Runtime settings: the `app_settings` rows (key → JSON value) that an operator may change without a
//! redeploy. Every key has a typed shape; `validate` checks a JSON value against it, and [`Settings`] is
//! the typed view the rest of the program reads. Secrets are never settings.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("unknown setting `{key}`\n  hint: valid keys are: {valid}")]
    UnknownKey { key: String, valid: String },
    #[error("the value for `{key}` is not valid JSON: {message}\n  hint: quote the whole JSON argument for the shell, e.g. '{example}'")]
    BadJson { key: String, message: String, example: String },
    #[error("the value for `{key}` has the wrong shape: {message}\n  expected: {shape}\n  current:  {current}")]
    WrongShape { key: String, message: String, shape: String, current: String },
}

// ---- the typed shapes ----------------------------------------------------------------------------------

/// Zoho modules the sync knows. `BTEC_Attendance` is reserved for later and off by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
pub struct ModulesEnabled {
    pub BTEC_Students: bool,
    pub BTEC_Teachers: bool,
    pub BTEC_Registrations: bool,
    pub BTEC_Classes: bool,
    pub BTEC_Enrollments: bool,
    pub BTEC_Payments: bool,
    pub BTEC_Grades: bool,
    pub BTEC_Units: bool,
    pub BTEC_Attendance: bool,
}

impl ModulesEnabled {
    pub fn is_enabled(&self, module: &str) -> bool {
        match module {
            "BTEC_Students" => self.BTEC_Students,
            "BTEC_Teachers" => self.BTEC_Teachers,
            "BTEC_Registrations" => self.BTEC_Registrations,
            "BTEC_Classes" => self.BTEC_Classes,
            "BTEC_Enrollments" => self.BTEC_Enrollments,
            "BTEC_Payments" => self.BTEC_Payments,
            "BTEC_Grades" => self.BTEC_Grades,
            "BTEC_Units" => self.BTEC_Units,
            "BTEC_Attendance" => self.BTEC_Attendance,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    ZohoToMoodle,
    MoodleToZoho,
    Bidirectional,
    Disabled,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncDirections {
    pub student_profile: Direction,
    pub finance: Direction,
    pub enrollments: Direction,
    pub grades: Direction,
    pub attendance: Direction,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    pub max_retries: u32,
    pub backoff_factor: f64,
    pub initial_delay_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardVisibility {
    pub show_profile: bool,
    pub show_academics: bool,
    pub show_finance: bool,
    pub show_payments: bool,
    pub show_remaining_balance: bool,
    pub show_grades: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoodleRoles {
    pub student: i64,
    pub teacher: i64,
    pub editing_teacher: i64,
}

/// How hard zmsync may push Zoho: calls in flight at once (by the org's edition) and the daily credits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZohoLimits {
    pub max_in_flight: u32,
    pub daily_credits: u64,
}

/// How new Moodle users and courses are made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoodleAccounts {
    /// Moodle auth plugin for created users: `manual`, or the SSO method the college uses (`oauth2`, `saml2`…).
    pub auth: String,
    /// Course category (by idnumber) for new courses; created if missing.
    pub course_category_idnumber: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictPolicy {
    ZohoWins,
    MoodleWins,
    Newest,
    ReportOnly,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GradeThresholds {
    pub distinction: f64,
    pub merit: f64,
    pub pass: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemovalAction {
    /// Keep the target record as it is; report only.
    Ignore,
    Suspend,
    Hide,
    Unenrol,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletionPolicy {
    pub student: RemovalAction,
    pub teacher: RemovalAction,
    pub class: RemovalAction,
    pub enrollment: RemovalAction,
    pub finance: RemovalAction,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxRemovals {
    pub percent: f64,
    pub min_records: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookLimits {
    /// Accepted events per second per source before 429 (0 = no limit).
    pub per_source_per_second: u32,
    pub burst: u32,
}

/// Zoho field names per entity: canonical field → Zoho API name. A college with other names configures this.
pub type FieldMap = BTreeMap<String, BTreeMap<String, String>>;

// ---- the registry ---------------------------------------------------------------------------------------

pub struct SettingDef {
    pub key: &'static str,
    pub description: &'static str,
    pub shape: &'static str,
    default: fn() -> Value,
    check: fn(&Value) -> Result<(), String>,
}

impl SettingDef {
    pub fn default_value(&self) -> Value {
        (self.default)()
    }
    pub fn check(&self, value: &Value) -> Result<(), String> {
        (self.check)(value)
    }
}

fn shape<T: DeserializeOwned>(v: &Value) -> Result<(), String> {
    serde_json::from_value::<T>(v.clone()).map(|_| ()).map_err(|e| e.to_string())
}

fn deletion_policy(v: &Value) -> Result<(), String> {
    let p: DeletionPolicy = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    if p.class == RemovalAction::Delete {
        return Err("class: \"delete\" is not offered: deleting a Moodle course deletes its grades and submissions. \
                    Use \"hide\" (the default) and delete the course in Moodle by hand if it must go"
            .into());
    }
    Ok(())
}

fn positive_thresholds(v: &Value) -> Result<(), String> {
    let t: GradeThresholds = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    if !(t.distinction >= t.merit && t.merit >= t.pass && t.pass >= 0.0 && t.distinction <= 100.0) {
        return Err("thresholds must satisfy 100 >= distinction >= merit >= pass >= 0".into());
    }
    Ok(())
}

fn positive_integer(v: &Value) -> Result<(), String> {
    match v.as_u64() {
        Some(n) if n >= 50 => Ok(()),
        _ => Err("expected a whole number of at least 50".into()),
    }
}

fn at_least_one(v: &Value) -> Result<(), String> {
    match v.as_u64() {
        Some(n) if n >= 1 => Ok(()),
        _ => Err("expected a whole number of at least 1".into()),
    }
}

fn notify_url_setting(v: &Value) -> Result<(), String> {
    match v.as_str() {
        Some("") => Ok(()),
        Some(s) => resolve_notify_url(s).map(|_| ()),
        None => Err("expected a string: the URL, or \"\"".into()),
    }
}

/// The receiver's route for Zoho Notification API callbacks.
pub const NOTIFY_PATH: &str = "/v1/events/zoho/notify";

/// The notify URL for a receiver's public base URL (`https://sync.example.edu`) or a full notify URL (kept as
/// given). Only http and https are accepted.
pub fn resolve_notify_url(given: &str) -> Result<String, String> {
    let given = given.trim();
    let url = url::Url::parse(given).map_err(|e| format!("`{given}` is not a URL ({e})"))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(format!("`{given}`: Zoho posts only to http or https URLs"));
    }
    if url.path() == "/" && url.query().is_none() {
        return Ok(format!("{}{NOTIFY_PATH}", given.trim_end_matches('/')));
    }
    Ok(given.to_string())
}

fn field_map(v: &Value) -> Result<(), String> {
    let map: FieldMap = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    let defaults: FieldMap = serde_json::from_value(default_field_map()).expect("default field map");
    for (entity, fields) in &map {
        let Some(known) = defaults.get(entity) else {
            return Err(format!(
                "unknown entity `{entity}`; valid: {}",
                defaults.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        };
        for (canonical, zoho) in fields {
            if !known.contains_key(canonical) {
                return Err(format!(
                    "unknown field `{canonical}` for {entity}; valid: {}",
                    known.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
            if zoho.trim().is_empty() {
                return Err(format!("{entity}.{canonical}: the Zoho field name is empty"));
            }
        }
    }
    Ok(())
}

/// The shipped field map (the college's Zoho API names, docs/sandbox.md "The college"). Entities may be given partially
/// in the setting; what is
/// absent keeps its default.
pub fn default_field_map() -> Value {
    json!({
        "student": {"module": "BTEC_Students", "name": "Name", "first_name": "First_Name", "last_name": "Last_Name",
                    "email": "Academic_Email", "id_number": "Student_ID_Number", "phone": "Phone", "status": "Status",
                    "moodle_id": "Student_Moodle_ID"},
        "teacher": {"module": "BTEC_Teachers", "name": "Name", "first_name": "First_Name", "last_name": "Last_Name",
                    "email": "Academic_Email", "id_number": "Teacher_ID_Number", "moodle_id": "Teacher_Moodle_ID"},
        "class": {"module": "BTEC_Classes", "name": "Class_Name", "short_name": "Class_Short_Name", "program": "Program",
                  "teacher": "Teacher", "unit": "Unit", "start_date": "Start_Date", "end_date": "End_Date",
                  "status": "Status", "moodle_id": "Moodle_Course_ID"},
        "enrollment": {"module": "BTEC_Enrollments", "student": "Student", "class": "Class", "status": "Status",
                       "start_date": "Start_Date", "end_date": "End_Date"},
        "registration": {"module": "BTEC_Registrations", "student": "Student", "program": "Program",
                         "registration_date": "Registration_Date", "total_fee": "Total_Fee",
                         "scholarship_percent": "Scholarship_Percent", "currency": "Currency", "status": "Status"},
        "payment": {"module": "BTEC_Payments", "student": "Student", "registration": "Registration", "amount": "Amount",
                    "payment_date": "Payment_Date", "due_date": "Due_Date", "status": "Status", "method": "Method"},
        "unit": {"module": "BTEC_Units", "code": "Unit_Code", "name": "Unit_Name", "level": "Level", "credits": "Credits",
                 "criteria": "Grading_Criteria"},
        "grade": {"module": "BTEC_Grades", "student": "Student", "class": "Class", "unit": "Unit", "grade": "Grade",
                  "moodle_grade": "Moodle_Grade", "graded_date": "Graded_Date"}
    })
}

pub static REGISTRY: &[SettingDef] = &[
    SettingDef {
        key: "modules.enabled",
        description: "which Zoho modules are synced",
        shape: r#"{"BTEC_Students":bool,"BTEC_Teachers":bool,"BTEC_Registrations":bool,"BTEC_Classes":bool,"BTEC_Enrollments":bool,"BTEC_Payments":bool,"BTEC_Grades":bool,"BTEC_Units":bool,"BTEC_Attendance":bool}"#,
        default: || {
            json!({"BTEC_Students":true,"BTEC_Teachers":true,"BTEC_Registrations":true,"BTEC_Classes":true,
                   "BTEC_Enrollments":true,"BTEC_Payments":true,"BTEC_Grades":true,"BTEC_Units":true,"BTEC_Attendance":false})
        },
        check: shape::<ModulesEnabled>,
    },
    SettingDef {
        key: "sync.directions",
        description: "which way each kind of data flows",
        shape: r#"{"student_profile":D,"finance":D,"enrollments":D,"grades":D,"attendance":D} where D is "zoho_to_moodle"|"moodle_to_zoho"|"bidirectional"|"disabled""#,
        default: || {
            json!({"student_profile":"zoho_to_moodle","finance":"zoho_to_moodle","enrollments":"bidirectional",
                   "grades":"moodle_to_zoho","attendance":"moodle_to_zoho"})
        },
        check: shape::<SyncDirections>,
    },
    SettingDef {
        key: "retry.policy",
        description: "re-trying failed records and events across runs",
        shape: r#"{"max_retries":int>=0,"backoff_factor":number,"initial_delay_seconds":int>=0}"#,
        default: || json!({"max_retries":3,"backoff_factor":2,"initial_delay_seconds":60}),
        check: shape::<RetryPolicy>,
    },
    SettingDef {
        key: "student_dashboard.visibility",
        description: "sections of the Moodle student dashboard",
        shape: r#"{"show_profile":bool,"show_academics":bool,"show_finance":bool,"show_payments":bool,"show_remaining_balance":bool,"show_grades":bool}"#,
        default: || {
            json!({"show_profile":true,"show_academics":true,"show_finance":true,"show_payments":true,
                   "show_remaining_balance":false,"show_grades":true})
        },
        check: shape::<DashboardVisibility>,
    },
    SettingDef {
        key: "moodle.roles",
        description: "Moodle role ids used for enrolments",
        shape: r#"{"student":int,"teacher":int,"editing_teacher":int}"#,
        default: || json!({"student":5,"teacher":3,"editing_teacher":4}),
        check: shape::<MoodleRoles>,
    },
    SettingDef {
        key: "moodle.max_input_vars",
        description: "PHP max_input_vars of the Moodle site; every request stays under it",
        shape: "int >= 50",
        default: || json!(1000),
        check: positive_integer,
    },
    SettingDef {
        key: "moodle.accounts",
        description: "auth method of created users and the category of created courses",
        shape: r#"{"auth":"manual"|"oauth2"|"saml2"|…,"course_category_idnumber":string}"#,
        default: || json!({"auth":"manual","course_category_idnumber":"zmsync"}),
        check: shape::<MoodleAccounts>,
    },
    SettingDef {
        key: "zoho.limits",
        description: "Zoho calls in flight at once and the daily credit budget (by the org's edition)",
        shape: r#"{"max_in_flight":int>=1,"daily_credits":int}"#,
        default: || json!({"max_in_flight":10,"daily_credits":50000}),
        check: shape::<ZohoLimits>,
    },
    SettingDef {
        key: "mapping.fields",
        description: "Zoho field API names per entity (canonical field → Zoho name)",
        shape: r#"{"student":{"email":"Academic_Email",…},"class":{…},…} (entities and fields as in the default)"#,
        default: default_field_map,
        check: field_map,
    },
    SettingDef {
        key: "conflicts.policy",
        description: "who wins when both sides changed an enrolment differently",
        shape: r#""zoho_wins"|"moodle_wins"|"newest"|"report_only""#,
        default: || json!("zoho_wins"),
        check: shape::<ConflictPolicy>,
    },
    SettingDef {
        key: "grades.thresholds",
        description: "percentages at which a Moodle grade becomes a BTEC level",
        shape: r#"{"distinction":number,"merit":number,"pass":number} with 100 >= distinction >= merit >= pass >= 0"#,
        default: || json!({"distinction":70,"merit":60,"pass":40}),
        check: positive_thresholds,
    },
    SettingDef {
        key: "deletions.policy",
        description: "what happens in Moodle when a record disappears from its source",
        shape: r#"{"student":A,"teacher":A,"class":A,"enrollment":A,"finance":A} where A is "ignore"|"suspend"|"hide"|"unenrol"|"delete" (never "delete" for class)"#,
        default: || json!({"student":"suspend","teacher":"suspend","class":"hide","enrollment":"unenrol","finance":"delete"}),
        check: deletion_policy,
    },
    SettingDef {
        key: "guards.max_removals",
        description: "largest share of an entity one run may remove or suspend without --allow-mass-change",
        shape: r#"{"percent":number,"min_records":int} (the larger of percent% and min_records)"#,
        default: || json!({"percent":5,"min_records":25}),
        check: shape::<MaxRemovals>,
    },
    SettingDef {
        key: "webhook.rate_limit",
        description: "webhook events accepted per second per source before 429 (0 = unlimited)",
        shape: r#"{"per_source_per_second":int,"burst":int}"#,
        default: || json!({"per_source_per_second":0,"burst":0}),
        check: shape::<WebhookLimits>,
    },
    SettingDef {
        key: "doctor.max_full_run_age_hours",
        description: "doctor warns when the last successful full sync is older than this (a stopped timer)",
        shape: "int >= 1 (hours)",
        default: || json!(36),
        check: at_least_one,
    },
    SettingDef {
        key: "zoho.notify_url",
        description:
            "where Zoho's Notification API channel posts (`zmsync zoho watch`): the receiver's public notify URL",
        shape: r#""https://HOST/v1/events/zoho/notify" or "" (no channel)"#,
        default: || json!(""),
        check: notify_url_setting,
    },
];

pub fn lookup(key: &str) -> Result<&'static SettingDef, SettingsError> {
    REGISTRY.iter().find(|d| d.key == key).ok_or_else(|| SettingsError::UnknownKey {
        key: key.to_string(),
        valid: REGISTRY.iter().map(|d| d.key).collect::<Vec<_>>().join(", "),
    })
}

/// Parses and checks a value given on the command line for `key`. `current` is shown on a wrong shape.
pub fn parse_value(key: &str, raw: &str, current: &Value) -> Result<Value, SettingsError> {
    let def = lookup(key)?;
    let value: Value = serde_json::from_str(raw).map_err(|e| SettingsError::BadJson {
        key: key.into(),
        message: e.to_string(),
        example: def.default_value().to_string(),
    })?;
    def.check(&value).map_err(|message| SettingsError::WrongShape {
        key: key.into(),
        message,
        shape: def.shape.into(),
        current: current.to_string(),
    })?;
    Ok(value)
}

/// The typed view of every setting, with defaults for rows that are absent.
#[derive(Debug, Clone)]
pub struct Settings {
    pub modules: ModulesEnabled,
    pub directions: SyncDirections,
    pub retry: RetryPolicy,
    pub visibility: DashboardVisibility,
    pub roles: MoodleRoles,
    pub max_input_vars: usize,
    pub accounts: MoodleAccounts,
    pub zoho_limits: ZohoLimits,
    pub fields: FieldMap,
    pub conflicts: ConflictPolicy,
    pub thresholds: GradeThresholds,
    pub deletions: DeletionPolicy,
    pub max_removals: MaxRemovals,
    pub webhook_limits: WebhookLimits,
    /// `doctor.max_full_run_age_hours`.
    pub max_full_run_age_hours: u64,
    /// `zoho.notify_url` ("" when no channel is configured).
    pub notify_url: String,
}

impl Settings {
    /// Builds the typed view from stored rows (`key → value`); absent keys take their defaults. A stored value
    /// that no longer fits its shape is an error that names the key and the fix.
    pub fn from_rows(rows: &BTreeMap<String, Value>) -> Result<Settings, SettingsError> {
        fn get<T: DeserializeOwned>(rows: &BTreeMap<String, Value>, key: &str) -> Result<T, SettingsError> {
            let def = lookup(key)?;
            let value = rows.get(key).cloned().unwrap_or_else(|| def.default_value());
            serde_json::from_value(value.clone()).map_err(|e| SettingsError::WrongShape {
                key: key.into(),
                message: format!("{e} (fix it with `zmsync settings set {key} '<json>'`)"),
                shape: def.shape.into(),
                current: value.to_string(),
            })
        }
        let mut fields: FieldMap = serde_json::from_value(default_field_map()).expect("default field map");
        let configured: FieldMap = get(rows, "mapping.fields")?;
        for (entity, map) in configured {
            fields.entry(entity).or_default().extend(map);
        }
        Ok(Settings {
            modules: get(rows, "modules.enabled")?,
            directions: get(rows, "sync.directions")?,
            retry: get(rows, "retry.policy")?,
            visibility: get(rows, "student_dashboard.visibility")?,
            roles: get(rows, "moodle.roles")?,
            max_input_vars: get(rows, "moodle.max_input_vars")?,
            accounts: get(rows, "moodle.accounts")?,
            zoho_limits: get(rows, "zoho.limits")?,
            fields,
            conflicts: get(rows, "conflicts.policy")?,
            thresholds: get(rows, "grades.thresholds")?,
            deletions: get(rows, "deletions.policy")?,
            max_removals: get(rows, "guards.max_removals")?,
            webhook_limits: get(rows, "webhook.rate_limit")?,
            max_full_run_age_hours: get(rows, "doctor.max_full_run_age_hours")?,
            notify_url: get(rows, "zoho.notify_url")?,
        })
    }

    pub fn defaults() -> Settings {
        Settings::from_rows(&BTreeMap::new()).expect("defaults fit their shapes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_fits_its_shape() {
        for def in REGISTRY {
            def.check(&def.default_value()).unwrap_or_else(|e| panic!("{}: {e}", def.key));
        }
        let s = Settings::defaults();
        assert!(s.modules.BTEC_Students && !s.modules.BTEC_Attendance);
        assert_eq!(s.roles.student, 5);
        assert_eq!(s.fields["student"]["email"], "Academic_Email");
    }

    #[test]
    fn wrong_shapes_are_named() {
        let cur = json!(null);
        assert!(matches!(parse_value("nope", "1", &cur), Err(SettingsError::UnknownKey { .. })));
        assert!(matches!(parse_value("retry.policy", "{bad", &cur), Err(SettingsError::BadJson { .. })));
        let e = parse_value(
            "retry.policy",
            r#"{"max_retries":"three","backoff_factor":2,"initial_delay_seconds":1}"#,
            &cur,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("max_retries") && e.contains("expected:"), "{e}");
        let e = parse_value("grades.thresholds", r#"{"distinction":50,"merit":60,"pass":40}"#, &cur)
            .unwrap_err()
            .to_string();
        assert!(e.contains("distinction >= merit"), "{e}");
        let e = parse_value("mapping.fields", r#"{"student":{"emial":"Email"}}"#, &cur).unwrap_err().to_string();
        assert!(e.contains("emial") && e.contains("email"), "{e}");
        assert!(parse_value("conflicts.policy", r#""newest""#, &cur).is_ok());
    }

    #[test]
    fn partial_field_map_keeps_other_defaults() {
        let mut rows = BTreeMap::new();
        rows.insert("mapping.fields".to_string(), json!({"student":{"email":"College_Email"}}));
        let s = Settings::from_rows(&rows).unwrap();
        assert_eq!(s.fields["student"]["email"], "College_Email");
        assert_eq!(s.fields["student"]["first_name"], "First_Name");
        assert_eq!(s.fields["class"]["name"], "Class_Name");
    }
}
