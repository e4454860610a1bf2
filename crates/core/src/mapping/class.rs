//! Classes (Zoho BTEC_Classes) ⇄ Moodle courses. Identity: course `idnumber` = the class's Zoho id.

use serde_json::{json, Map, Value};

use super::{canon, id_of, object, read_moodle, read_zoho, FieldSpec, MapError, Norm, ZohoNames};
use crate::model::{Fields, Kind, Record};

const ZOHO_CLASS: &[FieldSpec] = &[
    FieldSpec { canonical: "name", norm: Norm::Text },
    FieldSpec { canonical: "short_name", norm: Norm::Text },
    FieldSpec { canonical: "start_date", norm: Norm::Date },
    FieldSpec { canonical: "end_date", norm: Norm::Date },
];

const MOODLE_COURSE: &[(&str, &str, Norm)] = &[
    ("name", "fullname", Norm::Text),
    ("short_name", "shortname", Norm::Text),
    ("start_date", "startdate", Norm::UnixDate),
    ("end_date", "enddate", Norm::UnixDate),
    ("visible", "visible", Norm::Bool),
];

/// The class status that makes its course visible to students.
pub const VISIBLE_STATUS: &str = "Active";

pub fn class_from_zoho(raw: &Value, names: &ZohoNames) -> Result<Record, MapError> {
    let rec = object(raw)?;
    let id = id_of(rec, "id")?;
    let mut fields = read_zoho(rec, names, ZOHO_CLASS)?;
    let status = canon::text(rec.get(names.get("status")));
    fields.insert("visible".into(), Value::Bool(status.as_str().map(|s| s == VISIBLE_STATUS).unwrap_or(true)));
    let mut refs = Fields::new();
    refs.insert("teacher_id".into(), canon::lookup_id(rec.get(names.get("teacher"))));
    refs.insert("unit_id".into(), canon::lookup_id(rec.get(names.get("unit"))));
    refs.insert("program".into(), canon::text(rec.get(names.get("program"))));
    refs.insert("moodle_id".into(), canon::text(rec.get(names.get("moodle_id"))));
    refs.insert("status".into(), status);
    refs.insert("modified_time".into(), canon::text(rec.get("Modified_Time")));
    Ok(Record::new(Kind::Class, id, fields, refs))
}

pub fn course_from_moodle(raw: &Value) -> Result<Record, MapError> {
    let obj = object(raw)?;
    let id = id_of(obj, "id")?;
    let fields = read_moodle(obj, MOODLE_COURSE)?;
    let mut refs = Fields::new();
    refs.insert("idnumber".into(), canon::text(obj.get("idnumber")));
    refs.insert("categoryid".into(), obj.get("categoryid").cloned().unwrap_or(Value::Null));
    Ok(Record::new(Kind::MoodleCourse, id, fields, refs))
}

/// `core_course_create_courses` fields for a class (the caller adds `categoryid`).
pub fn moodle_course_create(zoho_id: &str, fields: &Fields) -> Result<Map<String, Value>, MapError> {
    let mut out = course_fields(fields);
    for required in ["fullname", "shortname"] {
        if out.get(required).map(|v| v == &json!("")).unwrap_or(true) {
            return Err(MapError::Missing { what: format!("a value for Moodle's `{required}`") });
        }
    }
    out.insert("idnumber".into(), json!(zoho_id));
    Ok(out)
}

/// `core_course_update_courses` fields for changed canonical fields (the caller adds `id`).
pub fn moodle_course_update(changes: &Fields) -> Map<String, Value> {
    course_fields(changes)
}

fn course_fields(fields: &Fields) -> Map<String, Value> {
    let mut out = Map::new();
    for (canonical, moodle, norm) in MOODLE_COURSE {
        let Some(v) = fields.get(*canonical) else { continue };
        let value = match norm {
            Norm::UnixDate => json!(canon::unix_from_date(v)),
            Norm::Bool => json!(if v.as_bool().unwrap_or(false) { 1 } else { 0 }),
            _ => json!(v.as_str().unwrap_or("")),
        };
        out.insert(moodle.to_string(), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    #[test]
    fn class_and_course_agree_when_synced() {
        let names = ZohoNames::for_kind(&Settings::defaults(), Kind::Class);
        let raw = json!({"id": "77", "Class_Name": "Networking & Security", "Class_Short_Name": "NET-5-A",
            "Start_Date": "2026-09-01", "End_Date": "2027-06-30", "Status": "Active",
            "Teacher": {"id": "9", "name": "T"}, "Unit": {"id": "3", "name": "U"}});
        let z = class_from_zoho(&raw, &names).unwrap();
        assert_eq!(z.refs["teacher_id"], json!("9"));
        let mut course = moodle_course_create("77", &z.fields).unwrap();
        assert_eq!(course["idnumber"], json!("77"));
        assert_eq!(course["visible"], json!(1));
        course.insert("id".into(), json!(12));
        let m = course_from_moodle(&Value::Object(course)).unwrap();
        assert_eq!(m.fields, z.fields);
        assert_eq!(m.refs["idnumber"], json!("77"));
    }

    #[test]
    fn inactive_class_is_hidden_and_missing_short_name_is_reported() {
        let names = ZohoNames::for_kind(&Settings::defaults(), Kind::Class);
        let raw = json!({"id": "1", "Class_Name": "X", "Status": "Completed"});
        let z = class_from_zoho(&raw, &names).unwrap();
        assert_eq!(z.field("visible"), &json!(false));
        assert!(moodle_course_create("1", &z.fields).is_err());
    }
}
