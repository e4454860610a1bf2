//! Units, registrations, payments and grades recorded in Zoho (Zoho → Moodle): rows of the student-dashboard plugin's tables, through
//! its web-service functions (docs/plugin-contract.md). Identity: the row's `zoho_id`.

use std::borrow::Cow;

use serde_json::{json, Map, Value};

use super::{canon, id_of, normalise, object, MapError, Norm, ZohoNames};
use crate::model::{Fields, Kind, Record};

/// (canonical, how Zoho encodes it, the plugin's field, how the plugin encodes it)
type Spec = (&'static str, Norm, &'static str, Norm);

const UNIT: &[Spec] = &[
    ("code", Norm::Text, "unit_code", Norm::Text),
    ("name", Norm::Text, "unit_name", Norm::Text),
    ("level", Norm::Text, "level", Norm::Text),
    ("credits", Norm::Integer, "credits", Norm::Integer),
    ("criteria", Norm::Text, "criteria", Norm::Text),
];

const REGISTRATION: &[Spec] = &[
    ("student", Norm::Lookup, "student_zoho_id", Norm::Text),
    ("program", Norm::Text, "program", Norm::Text),
    ("registration_date", Norm::Date, "registration_date", Norm::Date),
    ("total_fee", Norm::Money, "total_fee", Norm::Money),
    ("scholarship_percent", Norm::Percent, "scholarship_percent", Norm::Percent),
    ("currency", Norm::Text, "currency", Norm::Text),
    ("status", Norm::Text, "status", Norm::Text),
];

const PAYMENT: &[Spec] = &[
    ("student", Norm::Lookup, "student_zoho_id", Norm::Text),
    ("registration", Norm::Lookup, "registration_zoho_id", Norm::Text),
    ("amount", Norm::Money, "amount", Norm::Money),
    ("payment_date", Norm::Date, "payment_date", Norm::Date),
    ("due_date", Norm::Date, "due_date", Norm::Date),
    ("status", Norm::Text, "status", Norm::Text),
    ("method", Norm::Text, "method", Norm::Text),
];

/// A BTEC_Grades record as the plugin's grade row (contract §3.4). The Zoho side is built from the stored grade
/// record by [`grade_view`]; `zoho_values` reads the same from a raw record.
const GRADE: &[Spec] = &[
    ("student", Norm::Lookup, "student_zoho_id", Norm::Text),
    ("unit", Norm::Lookup, "unit_zoho_id", Norm::Text),
    ("class", Norm::Lookup, "class_zoho_id", Norm::Text),
    ("grade", Norm::Text, "grade", Norm::Text),
    ("moodle_grade", Norm::Money, "moodle_grade", Norm::Money),
    ("graded_date", Norm::Date, "graded_date", Norm::Date),
];

/// The dashboard view of a stored Zoho grade ([`super::grade::from_zoho`]: level and percentage as fields, the
/// lookups and the date as refs): the fields of its plugin row, keyed by the Zoho id. `moodle`: the course
/// grade this run brings into the Zoho record (grades flow Moodle → Zoho), whose level, percentage and date the
/// record holds once the run is done, so the row is written once, not again on the next run.
pub fn grade_view(z: &Record, moodle: Option<&Record>) -> Record {
    let r = |k: &str| z.refs.get(k).cloned().unwrap_or(Value::Null);
    let mut fields = Fields::new();
    fields.insert("student".into(), r("student_id"));
    fields.insert("unit".into(), r("unit_id"));
    fields.insert("class".into(), r("class_id"));
    fields.insert("grade".into(), z.field("grade").clone());
    fields.insert("moodle_grade".into(), z.field("moodle_grade").clone());
    fields.insert("graded_date".into(), r("graded_date"));
    if let Some(m) = moodle.filter(|m| m.fingerprint != z.fingerprint) {
        fields.insert("grade".into(), m.field("grade").clone());
        fields.insert("moodle_grade".into(), m.field("moodle_grade").clone());
        if let Some(d) = m.refs.get("graded_date").filter(|d| !d.is_null()) {
            fields.insert("graded_date".into(), d.clone());
        }
    }
    Record::new(Kind::Grade, z.key.clone(), fields, z.refs.clone())
}

/// Where the plugin stores a default for an omitted value, the same default is canonical for an empty Zoho
/// value; otherwise an empty Zoho field would differ from the stored default forever.
fn plugin_default(canonical: &str) -> Option<Value> {
    match canonical {
        "credits" => Some(json!("0")),
        "scholarship_percent" => Some(json!("0.00")),
        _ => None,
    }
}

fn specs(kind: Kind) -> &'static [Spec] {
    match kind {
        Kind::Unit | Kind::DashboardUnit => UNIT,
        Kind::Registration | Kind::DashboardRegistration => REGISTRATION,
        Kind::Grade | Kind::DashboardGrade => GRADE,
        _ => PAYMENT,
    }
}

/// The plugin's row type name for a kind (`units`, `registrations`, `payments`).
pub fn table(kind: Kind) -> &'static str {
    match kind {
        Kind::Unit | Kind::DashboardUnit => "units",
        Kind::Registration | Kind::DashboardRegistration => "registrations",
        Kind::Grade | Kind::DashboardGrade => "grades",
        _ => "payments",
    }
}

/// Whether rows of this kind belong to a student (need `userid` and `student_zoho_id`).
pub fn personal(kind: Kind) -> bool {
    !matches!(kind, Kind::Unit | Kind::DashboardUnit)
}

fn finish(canonical: &str, v: Value) -> Value {
    match (v, plugin_default(canonical)) {
        (Value::Null, Some(d)) => d,
        (v, _) => v,
    }
}

/// The canonical fields of a Zoho record of `kind`, in spec order, each read through `raw` (a Zoho field's
/// raw value by API name; `None` when absent). `from_zoho`'s fields; on its own for callers that want only
/// the plugin row ([`plugin_entries`]) of many records, without building each record.
pub fn zoho_values<'r>(
    kind: Kind,
    raw: impl Fn(&str) -> Option<Cow<'r, Value>>,
    names: &ZohoNames,
) -> Result<Vec<(&'static str, Value)>, MapError> {
    let specs = specs(kind);
    let mut out = Vec::with_capacity(specs.len());
    for (canonical, norm, _, _) in specs {
        let name = names.get(canonical);
        out.push((*canonical, finish(canonical, normalise(*norm, raw(name).as_deref(), name)?)));
    }
    Ok(out)
}

pub fn from_zoho(kind: Kind, raw: &Value, names: &ZohoNames) -> Result<Record, MapError> {
    let rec = object(raw)?;
    let id = id_of(rec, "id")?;
    let mut fields = Fields::new();
    for (canonical, value) in zoho_values(kind, |name| rec.get(name).map(Cow::Borrowed), names)? {
        fields.insert(canonical.to_string(), value);
    }
    let mut refs = Fields::new();
    refs.insert("modified_time".into(), canon::text(rec.get("Modified_Time")));
    Ok(Record::new(kind, id, fields, refs))
}

pub fn from_moodle(kind: Kind, raw: &Value) -> Result<Record, MapError> {
    let obj = object(raw)?;
    let id = id_of(obj, "zoho_id")?;
    let mut fields = Fields::new();
    for (canonical, _, plugin, norm) in specs(kind) {
        fields.insert(canonical.to_string(), finish(canonical, normalise(*norm, obj.get(*plugin), plugin)?));
    }
    let mut refs = Fields::new();
    refs.insert("row_id".into(), obj.get("id").cloned().unwrap_or(Value::Null));
    refs.insert("userid".into(), obj.get("userid").cloned().unwrap_or(Value::Null));
    Ok(Record::new(kind, id, fields, refs))
}

/// The entries of one upsert row for the plugin, in the contract's order: `zoho_id`, for personal rows the
/// student's Moodle `userid`, then every canonical field under its plugin name. Null values are omitted (the
/// contract's "not set"). `value` gives a canonical field's value.
pub fn plugin_entries<'v>(
    kind: Kind,
    zoho_id: &str,
    userid: Option<i64>,
    mut value: impl FnMut(&str) -> Option<Cow<'v, Value>>,
) -> Result<Vec<(&'static str, Value)>, MapError> {
    let specs = specs(kind);
    let mut out = Vec::with_capacity(specs.len() + 2);
    out.push(("zoho_id", json!(zoho_id)));
    if personal(kind) {
        out.push(("userid", json!(userid.ok_or(MapError::Missing { what: "the student's Moodle user".into() })?)));
    }
    for (canonical, _, plugin, _) in specs {
        match value(canonical) {
            Some(v) if !v.is_null() => out.push((*plugin, v.into_owned())),
            _ => {}
        }
    }
    Ok(out)
}

/// One upsert row for the plugin: [`plugin_entries`] of a record's canonical fields, as a JSON object.
pub fn plugin_row(
    kind: Kind,
    zoho_id: &str,
    fields: &Fields,
    userid: Option<i64>,
) -> Result<Map<String, Value>, MapError> {
    let entries = plugin_entries(kind, zoho_id, userid, |canonical| fields.get(canonical).map(Cow::Borrowed))?;
    Ok(entries.into_iter().map(|(key, v)| (key.to_string(), v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    #[test]
    fn payment_roundtrips_through_the_plugin_row() {
        let names = ZohoNames::for_kind(&Settings::defaults(), Kind::Payment);
        let raw = json!({"id": "900", "Student": {"id": "1", "name": "S"}, "Registration": {"id": "2", "name": "R"},
            "Amount": 2000, "Payment_Date": "2026-01-15", "Due_Date": "2026-01-15", "Status": "Paid", "Method": null});
        let z = from_zoho(Kind::Payment, &raw, &names).unwrap();
        assert_eq!(z.field("amount"), &json!("2000.00"));
        let row = plugin_row(Kind::Payment, "900", &z.fields, Some(34)).unwrap();
        assert!(!row.contains_key("method"));
        let mut stored = row.clone();
        stored.insert("method".into(), json!(""));
        stored.insert("id".into(), json!(5));
        let m = from_moodle(Kind::DashboardPayment, &Value::Object(stored)).unwrap();
        assert_eq!(m.fields, z.fields);
        assert_eq!(m.key, "900");
    }

    #[test]
    fn empty_zoho_values_match_plugin_defaults() {
        let names = ZohoNames::for_kind(&Settings::defaults(), Kind::Unit);
        let z =
            from_zoho(Kind::Unit, &json!({"id": "3", "Unit_Code": "U1", "Unit_Name": "N", "Credits": null}), &names)
                .unwrap();
        let m = from_moodle(
            Kind::DashboardUnit,
            &json!({"zoho_id": "3", "unit_code": "U1", "unit_name": "N",
            "level": "", "credits": 0, "criteria": ""}),
        )
        .unwrap();
        assert_eq!(m.fingerprint, z.fingerprint);
        assert!(plugin_row(Kind::Registration, "1", &Fields::new(), None).is_err());
    }
}
