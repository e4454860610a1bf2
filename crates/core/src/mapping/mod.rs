//! Mapping: raw Zoho and Moodle JSON ⇄ canonical [`Record`]s, from configurable field maps.
//!
//! Mapping is context-free: each record keeps its own side's identity (`key`) and the references it holds
//! (`refs`: lookup ids, Moodle ids). Pairing records across sides is the reconcile's link step. One file per
//! entity says which fields it has and how each side spells and encodes them; this file holds the
//! table-driven readers they share.

pub mod canon;
pub mod class;
pub mod dashboard;
pub mod enrollment;
pub mod grade;
pub mod person;

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::model::{Fields, Kind, Record};
use crate::settings::Settings;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MapError {
    #[error("field {field}: `{value}` is not {expected}")]
    BadValue { field: String, value: String, expected: String },
    #[error("missing {what}")]
    Missing { what: String },
    #[error("not a JSON object")]
    NotAnObject,
    /// Not an error: the object is not a record of this kind yet (e.g. a grade row without a grade).
    #[error("skipped: {0}")]
    Skip(String),
}

/// How a field's raw value becomes canonical.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Norm {
    Text,
    Email,
    Date,
    /// Unix seconds → date (Moodle).
    UnixDate,
    Money,
    Percent,
    Integer,
    Bool,
    Lookup,
}

/// One canonical field and its spelling on a side.
pub struct FieldSpec {
    pub canonical: &'static str,
    pub norm: Norm,
}

/// The Zoho field API names of one entity (`mapping.fields[entity]`), with the module name under `module`.
#[derive(Debug, Clone)]
pub struct ZohoNames(BTreeMap<String, String>);

impl ZohoNames {
    pub fn for_kind(settings: &Settings, kind: Kind) -> ZohoNames {
        let entity = kind.field_map_entity().unwrap_or("");
        ZohoNames(settings.fields.get(entity).cloned().unwrap_or_default())
    }

    /// The Zoho API name of a canonical field (the canonical name itself if unmapped).
    pub fn get<'a>(&'a self, canonical: &'a str) -> &'a str {
        self.0.get(canonical).map(String::as_str).unwrap_or(canonical)
    }

    pub fn module(&self) -> &str {
        self.get("module")
    }

    /// Every Zoho field a read must ask for (`fields=`), `id` and `Modified_Time` included.
    pub fn read_fields(&self) -> Vec<String> {
        let mut out: Vec<String> = vec!["id".into(), "Modified_Time".into()];
        for (canonical, name) in &self.0 {
            if canonical != "module" && !out.contains(name) {
                out.push(name.clone());
            }
        }
        out
    }
}

pub(crate) fn normalise(norm: Norm, raw: Option<&Value>, field: &str) -> Result<Value, MapError> {
    Ok(match norm {
        Norm::Text => canon::text(raw),
        Norm::Email => canon::email(raw),
        Norm::Date => canon::date(raw, field)?,
        Norm::UnixDate => canon::date_from_unix(raw),
        Norm::Money | Norm::Percent => canon::decimal(raw, 2, field)?,
        Norm::Integer => canon::integer(raw, field)?,
        Norm::Bool => Value::Bool(canon::boolean(raw)),
        Norm::Lookup => canon::lookup_id(raw),
    })
}

/// Reads `specs` from a Zoho record through the configured names.
pub(crate) fn read_zoho(rec: &Map<String, Value>, names: &ZohoNames, specs: &[FieldSpec]) -> Result<Fields, MapError> {
    read_zoho_with(|name| rec.get(name).map(Cow::Borrowed), names, specs)
}

/// [`read_zoho`] through `raw` (a field's raw value by API name; `None` when absent): for readers that do not
/// hold the record as a map.
pub(crate) fn read_zoho_with<'r>(
    raw: impl Fn(&str) -> Option<Cow<'r, Value>>,
    names: &ZohoNames,
    specs: &[FieldSpec],
) -> Result<Fields, MapError> {
    let mut out = Fields::new();
    for spec in specs {
        let name = names.get(spec.canonical);
        out.insert(spec.canonical.to_string(), normalise(spec.norm, raw(name).as_deref(), name)?);
    }
    Ok(out)
}

/// Reads `(canonical, moodle name, norm)` triples from a Moodle object.
pub(crate) fn read_moodle(obj: &Map<String, Value>, specs: &[(&str, &str, Norm)]) -> Result<Fields, MapError> {
    let mut out = Fields::new();
    for (canonical, moodle, norm) in specs {
        out.insert(canonical.to_string(), normalise(*norm, obj.get(*moodle), moodle)?);
    }
    Ok(out)
}

pub(crate) fn object(v: &Value) -> Result<&Map<String, Value>, MapError> {
    v.as_object().ok_or(MapError::NotAnObject)
}

/// A record's id as a string (Zoho ids are strings; Moodle ids numbers).
pub(crate) fn id_of(obj: &Map<String, Value>, key: &str) -> Result<String, MapError> {
    match obj.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        _ => Err(MapError::Missing { what: format!("`{key}`") }),
    }
}

/// Maps one raw record of `kind` (as its API returns it) to a canonical record.
pub fn map_record(kind: Kind, raw: &Value, settings: &Settings) -> Result<Record, MapError> {
    map_record_named(kind, raw, &ZohoNames::for_kind(settings, kind), settings)
}

/// [`map_record`] with the kind's Zoho names already looked up (`names` must be
/// `ZohoNames::for_kind(settings, kind)`): for callers mapping many records of one kind, which would
/// otherwise copy the names for each.
pub fn map_record_named(kind: Kind, raw: &Value, names: &ZohoNames, settings: &Settings) -> Result<Record, MapError> {
    match kind {
        Kind::Student => person::student_from_zoho(raw, names),
        Kind::Teacher => person::teacher_from_zoho(raw, names),
        Kind::MoodleUser => person::user_from_moodle(raw),
        Kind::Class => class::class_from_zoho(raw, names),
        Kind::MoodleCourse => class::course_from_moodle(raw),
        Kind::Enrollment => enrollment::from_zoho(raw, names),
        Kind::MoodleEnrolment => enrollment::from_moodle(raw),
        Kind::Grade => grade::from_zoho(raw, names),
        Kind::MoodleGrade => grade::from_moodle(raw, &settings.thresholds),
        Kind::Unit | Kind::Registration | Kind::Payment => dashboard::from_zoho(kind, raw, names),
        Kind::DashboardUnit | Kind::DashboardRegistration | Kind::DashboardPayment | Kind::DashboardGrade => {
            dashboard::from_moodle(kind, raw)
        }
    }
}
