//! Enrolments (Zoho BTEC_Enrollments, bidirectional) ⇄ Moodle manual enrolments with the student role.
//! Identity: (student, class) ⇄ (user, course); the link step pairs them.

use std::borrow::Cow;

use serde_json::{json, Map, Value};

use super::{canon, id_of, object, read_zoho_with, FieldSpec, MapError, Norm, ZohoNames};
use crate::model::{Fields, Kind, Record};

pub const FIELDS: &[&str] = &["active", "end_date", "start_date"];

const ZOHO_ENROLLMENT: &[FieldSpec] =
    &[FieldSpec { canonical: "start_date", norm: Norm::Date }, FieldSpec { canonical: "end_date", norm: Norm::Date }];

/// What [`from_zoho`] reads of an enrolment: its canonical fields, its Zoho status and its two lookups.
pub struct ZohoParts {
    pub fields: Fields,
    pub status: Value,
    pub student: Value,
    pub class: Value,
}

/// [`from_zoho`]'s reading of an enrolment through `raw` (a Zoho field's raw value by API name; `None` when
/// absent), without building the record: for callers that map many and keep little (the generator).
pub fn zoho_parts<'r>(raw: impl Fn(&str) -> Option<Cow<'r, Value>>, names: &ZohoNames) -> Result<ZohoParts, MapError> {
    let mut fields = read_zoho_with(&raw, names, ZOHO_ENROLLMENT)?;
    let status = canon::text(raw(names.get("status")).as_deref());
    fields.insert("active".into(), Value::Bool(status.as_str() == Some("Active")));
    let student = canon::lookup_id(raw(names.get("student")).as_deref());
    let class = canon::lookup_id(raw(names.get("class")).as_deref());
    Ok(ZohoParts { fields, status, student, class })
}

pub fn from_zoho(raw: &Value, names: &ZohoNames) -> Result<Record, MapError> {
    let rec = object(raw)?;
    let id = id_of(rec, "id")?;
    let p = zoho_parts(|name| rec.get(name).map(Cow::Borrowed), names)?;
    let mut refs = Fields::new();
    refs.insert("student_id".into(), p.student);
    refs.insert("class_id".into(), p.class);
    refs.insert("status".into(), p.status);
    refs.insert("modified_time".into(), canon::text(rec.get("Modified_Time")));
    Ok(Record::new(Kind::Enrollment, id, p.fields, refs))
}

/// A row of `local_student_dashboard_get_enrolments` (any role: teachers come through here too).
pub fn from_moodle(raw: &Value) -> Result<Record, MapError> {
    let obj = object(raw)?;
    let courseid = id_of(obj, "courseid")?;
    let userid = id_of(obj, "userid")?;
    let mut fields = Fields::new();
    fields.insert("active".into(), Value::Bool(obj.get("status").and_then(Value::as_i64) == Some(0)));
    fields.insert("start_date".into(), canon::date_from_unix(obj.get("timestart")));
    fields.insert("end_date".into(), canon::date_from_unix(obj.get("timeend")));
    let mut refs = Fields::new();
    refs.insert("courseid".into(), json!(courseid));
    refs.insert("userid".into(), json!(userid));
    refs.insert("roleids".into(), obj.get("roleids").cloned().unwrap_or(json!([])));
    refs.insert("timemodified".into(), obj.get("timemodified").cloned().unwrap_or(Value::Null));
    Ok(Record::new(Kind::MoodleEnrolment, format!("{courseid}:{userid}"), fields, refs))
}

/// One `enrol_manual_enrol_users` item. Re-sending an enrolment is an upsert in Moodle (dates reset, status
/// as sent), so the same item serves create, update, reactivate and suspend.
pub fn moodle_enrol(roleid: i64, userid: i64, courseid: i64, fields: &Fields) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("roleid".into(), json!(roleid));
    out.insert("userid".into(), json!(userid));
    out.insert("courseid".into(), json!(courseid));
    out.insert("timestart".into(), json!(canon::unix_from_date(fields.get("start_date").unwrap_or(&Value::Null))));
    out.insert("timeend".into(), json!(canon::unix_from_date(fields.get("end_date").unwrap_or(&Value::Null))));
    out.insert(
        "suspend".into(),
        json!(if fields.get("active").and_then(Value::as_bool).unwrap_or(true) { 0 } else { 1 }),
    );
    out
}

/// The Zoho Status for an enrolment's `active` flag. Inactive keeps a terminal Zoho status it already has
/// (Completed stays Completed); otherwise it becomes Withdrawn.
pub fn zoho_status(active: bool, current: Option<&str>) -> &'static str {
    match (active, current) {
        (true, _) => "Active",
        (false, Some("Completed")) => "Completed",
        (false, _) => "Withdrawn",
    }
}

/// Zoho fields for an enrolment write (create: with lookups; update: only what changed).
pub fn zoho_fields(names: &ZohoNames, changes: &Fields, current_status: Option<&str>) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(active) = changes.get("active").and_then(Value::as_bool) {
        out.insert(names.get("status").into(), json!(zoho_status(active, current_status)));
    }
    for f in ["start_date", "end_date"] {
        if let Some(v) = changes.get(f) {
            out.insert(names.get(f).into(), v.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    #[test]
    fn both_sides_agree_and_enrol_roundtrips() {
        let names = ZohoNames::for_kind(&Settings::defaults(), Kind::Enrollment);
        let raw = json!({"id": "5", "Student": {"id": "1", "name": "S"}, "Class": {"id": "2", "name": "C"},
            "Status": "Active", "Start_Date": "2026-09-01", "End_Date": null});
        let z = from_zoho(&raw, &names).unwrap();
        assert_eq!(z.refs["student_id"], json!("1"));
        let e = moodle_enrol(5, 34, 12, &z.fields);
        assert_eq!(e["timeend"], json!(0));
        assert_eq!(e["suspend"], json!(0));
        let row = json!({"id": 1, "courseid": 12, "userid": 34, "roleids": [5], "status": 0,
            "timestart": e["timestart"], "timeend": 0, "timemodified": 1});
        let m = from_moodle(&row).unwrap();
        assert_eq!(m.key, "12:34");
        assert_eq!(m.fingerprint, z.fingerprint);
    }

    #[test]
    fn status_rules() {
        assert_eq!(zoho_status(true, Some("Withdrawn")), "Active");
        assert_eq!(zoho_status(false, Some("Completed")), "Completed");
        assert_eq!(zoho_status(false, Some("Active")), "Withdrawn");
        let names = ZohoNames::for_kind(&Settings::defaults(), Kind::Enrollment);
        let mut ch = Fields::new();
        ch.insert("active".into(), json!(false));
        assert_eq!(zoho_fields(&names, &ch, Some("Active"))["Status"], json!("Withdrawn"));
    }
}
