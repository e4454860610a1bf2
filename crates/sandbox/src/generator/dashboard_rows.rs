//! The dashboard rows of `synced`: the plugin's tables as its `get_*` functions show them after the sync's
//! upserts, in the contract's key order (plugin-contract.md §4.3).

use std::borrow::Cow;

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde_json::{json, Map, Value};

use super::raw_fields::{RawFields, BLOCK};
use crate::seed::{JsonObject, PluginTables, ZohoSeed};
use crate::world::SYNCED_AT;
use zmsync_core::mapping::{dashboard, ZohoNames};
use zmsync_core::model::Kind;
use zmsync_core::settings::Settings;

/// The dashboard rows as the plugin's `get_*` functions show them after the sync's upserts (grades: those
/// recorded in Zoho, for students with a Moodle user).
pub(super) fn plugin_tables(zoho: &ZohoSeed, user_of: &FxHashMap<String, i64>, settings: &Settings) -> PluginTables {
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
pub(super) fn stored_row_text(kind: Kind, mut row: Vec<(&str, Value)>, id: i64, timemodified: i64) -> JsonObject {
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
