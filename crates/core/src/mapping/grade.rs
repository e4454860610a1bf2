//! Grades: Moodle course totals → BTEC levels → Zoho BTEC_Grades. Identity: (student, class) ⇄ (user, course).
//!
//! The conversion rule is shared with the Moodle plugin (docs/plugin-contract.md §8) and both sides are tested
//! against the same vectors in fixtures/grade-conversion.json.

use serde_json::{json, Map, Value};

use super::{canon, id_of, object, read_zoho, FieldSpec, MapError, Norm, ZohoNames};
use crate::model::{Fields, Kind, Record};
use crate::settings::GradeThresholds;

pub const LEVELS: [&str; 4] = ["Refer", "Pass", "Merit", "Distinction"];

/// A Moodle grade as a BTEC level, or `None` when there is no level (no grade yet, an empty range, or a scale
/// item that names no level).
pub fn level(
    finalgrade: Option<f64>,
    grademin: f64,
    grademax: f64,
    scaleitem: Option<&str>,
    t: &GradeThresholds,
) -> Option<&'static str> {
    if let Some(item) = scaleitem {
        let item = item.trim();
        return LEVELS.into_iter().find(|l| l.eq_ignore_ascii_case(item));
    }
    let grade = finalgrade?;
    if grademax <= grademin {
        return None;
    }
    let percent = percent(grade, grademin, grademax);
    Some(if percent >= t.distinction {
        "Distinction"
    } else if percent >= t.merit {
        "Merit"
    } else if percent >= t.pass {
        "Pass"
    } else {
        "Refer"
    })
}

/// The grade as a percentage of its range, rounded to 5 places as Moodle stores grades (removes float noise).
pub fn percent(grade: f64, grademin: f64, grademax: f64) -> f64 {
    ((grade - grademin) * 100.0 / (grademax - grademin) * 100_000.0).round() / 100_000.0
}

const ZOHO_GRADE: &[FieldSpec] =
    &[FieldSpec { canonical: "grade", norm: Norm::Text }, FieldSpec { canonical: "moodle_grade", norm: Norm::Money }];

pub fn from_zoho(raw: &Value, names: &ZohoNames) -> Result<Record, MapError> {
    let rec = object(raw)?;
    let id = id_of(rec, "id")?;
    let fields = read_zoho(rec, names, ZOHO_GRADE)?;
    let mut refs = Fields::new();
    refs.insert("student_id".into(), canon::lookup_id(rec.get(names.get("student"))));
    refs.insert("class_id".into(), canon::lookup_id(rec.get(names.get("class"))));
    refs.insert("unit_id".into(), canon::lookup_id(rec.get(names.get("unit"))));
    refs.insert("graded_date".into(), canon::date(rec.get(names.get("graded_date")), "graded_date")?);
    Ok(Record::new(Kind::Grade, id, fields, refs))
}

/// A row of `local_student_dashboard_get_course_grades`. A row without a level is not a grade yet:
/// `MapError::Skip`.
pub fn from_moodle(raw: &Value, t: &GradeThresholds) -> Result<Record, MapError> {
    let obj = object(raw)?;
    let courseid = id_of(obj, "courseid")?;
    let userid = id_of(obj, "userid")?;
    let finalgrade = obj.get("finalgrade").and_then(Value::as_f64);
    let grademin = obj.get("grademin").and_then(Value::as_f64).unwrap_or(0.0);
    let grademax = obj.get("grademax").and_then(Value::as_f64).unwrap_or(100.0);
    let scaleitem = obj.get("scaleitem").and_then(Value::as_str);
    let Some(level) = level(finalgrade, grademin, grademax, scaleitem, t) else {
        return Err(MapError::Skip(format!("course {courseid} user {userid}: no BTEC level yet")));
    };
    let moodle_grade = match (scaleitem, finalgrade) {
        (None, Some(g)) => canon::decimal(Some(&json!(percent(g, grademin, grademax))), 2, "finalgrade")?,
        _ => Value::Null,
    };
    let mut fields = Fields::new();
    fields.insert("grade".into(), json!(level));
    fields.insert("moodle_grade".into(), moodle_grade);
    let mut refs = Fields::new();
    refs.insert("courseid".into(), json!(courseid));
    refs.insert("userid".into(), json!(userid));
    refs.insert("graded_date".into(), canon::date_from_unix(obj.get("timemodified")));
    Ok(Record::new(Kind::MoodleGrade, format!("{courseid}:{userid}"), fields, refs))
}

/// Zoho fields for a grade write: the level and percentage, and on create the lookups and the date.
pub fn zoho_fields(names: &ZohoNames, fields: &Fields, graded_date: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    for f in ["grade", "moodle_grade"] {
        if let Some(v) = fields.get(f) {
            let v = match (f, v) {
                ("moodle_grade", Value::String(s)) => s.parse::<f64>().map(|n| json!(n)).unwrap_or(Value::Null),
                _ => v.clone(),
            };
            out.insert(names.get(f).into(), v);
        }
    }
    if !graded_date.is_null() {
        out.insert(names.get("graded_date").into(), graded_date.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors shared with the Moodle plugin's PHP tests.
    #[test]
    fn shared_vectors() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/grade-conversion.json");
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).unwrap();
        let defaults: GradeThresholds = serde_json::from_value(doc["thresholds"].clone()).unwrap();
        let cases = doc["cases"].as_array().unwrap();
        assert!(cases.len() >= 10, "the vector file looks truncated");
        for case in cases {
            let t: GradeThresholds =
                case.get("thresholds").map(|v| serde_json::from_value(v.clone()).unwrap()).unwrap_or(defaults.clone());
            let got = level(
                case["finalgrade"].as_f64(),
                case["grademin"].as_f64().unwrap_or(0.0),
                case["grademax"].as_f64().unwrap_or(100.0),
                case["scaleitem"].as_str(),
                &t,
            );
            assert_eq!(got, case["expected"].as_str(), "case: {}", case["description"]);
        }
    }

    #[test]
    fn moodle_row_maps_to_level_and_percent() {
        let t = GradeThresholds { distinction: 70.0, merit: 60.0, pass: 40.0 };
        let row = json!({"courseid": 12, "userid": 34, "finalgrade": 17.0, "grademin": 0, "grademax": 20,
            "scaleid": null, "scaleitem": null, "timemodified": 1767261600});
        let r = from_moodle(&row, &t).unwrap();
        assert_eq!(r.field("grade"), &json!("Distinction"));
        assert_eq!(r.field("moodle_grade"), &json!("85.00"));
        assert_eq!(r.key, "12:34");
        let none = json!({"courseid": 12, "userid": 35, "finalgrade": null, "grademin": 0, "grademax": 100});
        assert!(matches!(from_moodle(&none, &t), Err(MapError::Skip(_))));
    }
}
