//! The one vocabulary every module speaks: what a stored record is ([`Kind`]), which domain entity a pair of
//! records forms ([`Entity`]), the [`Record`] itself and its fingerprint.

use std::fmt;

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::settings::{Direction, Settings};

mod fields;
mod sync;

pub use fields::Fields;
pub use sync::{Link, SyncState};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Zoho,
    Moodle,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Zoho => "zoho",
            Side::Moodle => "moodle",
        }
    }
    pub fn other(self) -> Side {
        match self {
            Side::Zoho => Side::Moodle,
            Side::Moodle => Side::Zoho,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a stored record is: a Zoho module's record, or a Moodle object. Stored in `records.entity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    // Zoho CRM modules.
    Student,
    Teacher,
    Unit,
    Class,
    Enrollment,
    Registration,
    Payment,
    Grade,
    // Moodle objects.
    MoodleUser,
    MoodleCourse,
    MoodleEnrolment,
    MoodleGrade,
    DashboardRegistration,
    DashboardPayment,
    DashboardUnit,
    DashboardGrade,
}

impl Kind {
    pub const ALL: [Kind; 16] = [
        Kind::Student,
        Kind::Teacher,
        Kind::Unit,
        Kind::Class,
        Kind::Enrollment,
        Kind::Registration,
        Kind::Payment,
        Kind::Grade,
        Kind::MoodleUser,
        Kind::MoodleCourse,
        Kind::MoodleEnrolment,
        Kind::MoodleGrade,
        Kind::DashboardRegistration,
        Kind::DashboardPayment,
        Kind::DashboardUnit,
        Kind::DashboardGrade,
    ];

    pub fn side(self) -> Side {
        match self {
            Kind::Student
            | Kind::Teacher
            | Kind::Unit
            | Kind::Class
            | Kind::Enrollment
            | Kind::Registration
            | Kind::Payment
            | Kind::Grade => Side::Zoho,
            _ => Side::Moodle,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Student => "student",
            Kind::Teacher => "teacher",
            Kind::Unit => "unit",
            Kind::Class => "class",
            Kind::Enrollment => "enrollment",
            Kind::Registration => "registration",
            Kind::Payment => "payment",
            Kind::Grade => "grade",
            Kind::MoodleUser => "moodle_user",
            Kind::MoodleCourse => "moodle_course",
            Kind::MoodleEnrolment => "moodle_enrolment",
            Kind::MoodleGrade => "moodle_grade",
            Kind::DashboardRegistration => "dashboard_registration",
            Kind::DashboardPayment => "dashboard_payment",
            Kind::DashboardUnit => "dashboard_unit",
            Kind::DashboardGrade => "dashboard_grade",
        }
    }

    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The `mapping.fields` entity whose field names a Zoho kind uses.
    pub fn field_map_entity(self) -> Option<&'static str> {
        match self.side() {
            Side::Zoho => Some(self.name()),
            Side::Moodle => None,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A domain entity: what the reconcile pairs across both sides, with its direction and identity rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Entity {
    Student,
    Teacher,
    Unit,
    Class,
    /// A class's teacher enrolled in its course with the teacher role (from BTEC_Classes.Teacher).
    Teaching,
    Enrollment,
    Registration,
    Payment,
    Grade,
    /// A BTEC_Grades record as a row of the dashboard plugin's grade table (Zoho → Moodle; after [`Entity::Grade`],
    /// which brings Moodle's course totals into Zoho first).
    DashboardGrade,
}

impl Entity {
    /// In dependency order: a later entity may refer to an earlier one.
    pub const ALL: [Entity; 10] = [
        Entity::Unit,
        Entity::Teacher,
        Entity::Student,
        Entity::Class,
        Entity::Teaching,
        Entity::Enrollment,
        Entity::Registration,
        Entity::Payment,
        Entity::Grade,
        Entity::DashboardGrade,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Entity::Student => "student",
            Entity::Teacher => "teacher",
            Entity::Unit => "unit",
            Entity::Class => "class",
            Entity::Teaching => "teaching",
            Entity::Enrollment => "enrollment",
            Entity::Registration => "registration",
            Entity::Payment => "payment",
            Entity::Grade => "grade",
            Entity::DashboardGrade => "dashboard_grade",
        }
    }

    pub fn from_name(name: &str) -> Option<Entity> {
        Entity::ALL.into_iter().find(|e| e.name() == name)
    }

    /// The default Zoho module (the configured name is in `mapping.fields[<entity>].module`).
    pub fn default_module(self) -> &'static str {
        match self {
            Entity::Student => "BTEC_Students",
            Entity::Teacher => "BTEC_Teachers",
            Entity::Unit => "BTEC_Units",
            Entity::Class | Entity::Teaching => "BTEC_Classes",
            Entity::Enrollment => "BTEC_Enrollments",
            Entity::Registration => "BTEC_Registrations",
            Entity::Payment => "BTEC_Payments",
            Entity::Grade | Entity::DashboardGrade => "BTEC_Grades",
        }
    }

    /// The Zoho kind on one side and the Moodle kind on the other.
    pub fn kinds(self) -> (Kind, Kind) {
        match self {
            Entity::Student => (Kind::Student, Kind::MoodleUser),
            Entity::Teacher => (Kind::Teacher, Kind::MoodleUser),
            Entity::Unit => (Kind::Unit, Kind::DashboardUnit),
            Entity::Class => (Kind::Class, Kind::MoodleCourse),
            Entity::Teaching => (Kind::Class, Kind::MoodleEnrolment),
            Entity::Enrollment => (Kind::Enrollment, Kind::MoodleEnrolment),
            Entity::Registration => (Kind::Registration, Kind::DashboardRegistration),
            Entity::Payment => (Kind::Payment, Kind::DashboardPayment),
            Entity::Grade => (Kind::Grade, Kind::MoodleGrade),
            Entity::DashboardGrade => (Kind::Grade, Kind::DashboardGrade),
        }
    }

    /// Which way data flows, from `sync.directions`.
    pub fn direction(self, settings: &Settings) -> Direction {
        let d = &settings.directions;
        match self {
            Entity::Student | Entity::Teacher | Entity::Class | Entity::Teaching | Entity::Unit => d.student_profile,
            Entity::Registration | Entity::Payment => d.finance,
            Entity::Enrollment => d.enrollments,
            Entity::Grade => d.grades,
            // Grades recorded in Zoho always show on the dashboard, unless grades are not synced at all.
            Entity::DashboardGrade => match d.grades {
                Direction::Disabled => Direction::Disabled,
                _ => Direction::ZohoToMoodle,
            },
        }
    }

    /// Whether the module behind this entity is enabled in `modules.enabled`.
    pub fn enabled(self, settings: &Settings) -> bool {
        settings.modules.is_enabled(self.default_module())
    }
}

impl fmt::Display for Entity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One record of one side, mapped to canonical fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub kind: Kind,
    /// The record's own identity on its side: a Zoho record id, a Moodle id, `courseid:userid`, a zoho_id.
    pub key: String,
    /// Compared and fingerprinted.
    pub fields: Fields,
    /// Not compared: what linking and writing need (lookup ids, Moodle ids, username, Modified_Time…).
    pub refs: Fields,
    pub fingerprint: String,
}

impl Record {
    pub fn new(kind: Kind, key: impl Into<String>, mut fields: Fields, mut refs: Fields) -> Record {
        // Records are held by the thousand while planning and recording the base: no spare capacity.
        fields.shrink_to_fit();
        refs.shrink_to_fit();
        let fingerprint = fingerprint(&fields);
        Record { kind, key: key.into(), fields, refs, fingerprint }
    }

    pub fn side(&self) -> Side {
        self.kind.side()
    }

    pub fn field(&self, name: &str) -> &Value {
        self.fields.get(name).unwrap_or(&Value::Null)
    }

    pub fn field_str(&self, name: &str) -> Option<&str> {
        self.fields.get(name).and_then(Value::as_str)
    }

    pub fn ref_str(&self, name: &str) -> Option<&str> {
        self.refs.get(name).and_then(Value::as_str)
    }

    /// Keeps only `names` of the fields (for entities that see part of a shared Moodle object). A name the record
    /// does not have (an unknown field) stays absent.
    pub fn project(&self, names: &[&str]) -> Record {
        let fields = names.iter().filter_map(|n| Some((n.to_string(), self.fields.get(*n)?.clone()))).collect();
        Record::new(self.kind, self.key.clone(), fields, self.refs.clone())
    }
}

/// MD5 over the canonical fields, for change detection only — never for security or integrity. The encoding
/// is the JSON of the sorted map: unambiguous (every string quoted and escaped, every key separated).
pub fn fingerprint(fields: &Fields) -> String {
    md5_hex(&serde_json::to_vec(fields).expect("canonical fields serialise"))
}

/// The MD5 of `bytes` in lower-case hex, as PostgreSQL's `md5()` writes it. Change detection only.
pub fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(pairs: &[(&str, Value)]) -> Fields {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn fingerprint_is_order_free_and_unambiguous() {
        let a = fields(&[("a", json!("1")), ("b", json!("2"))]);
        let b = fields(&[("b", json!("2")), ("a", json!("1"))]);
        assert_eq!(fingerprint(&a), fingerprint(&b));
        // Moving a separator between key and value must change the fingerprint.
        let c = fields(&[("a", json!("1b")), ("", json!("2"))]);
        assert_ne!(fingerprint(&a), fingerprint(&c));
        assert_ne!(fingerprint(&fields(&[("x", json!(null))])), fingerprint(&fields(&[("x", json!("null"))])));
        assert_ne!(fingerprint(&fields(&[("x", json!(true))])), fingerprint(&fields(&[("x", json!("true"))])));
        assert_eq!(fingerprint(&a).len(), 32);
    }

    #[test]
    fn names_roundtrip() {
        for k in Kind::ALL {
            assert_eq!(Kind::from_name(k.name()), Some(k));
        }
        for e in Entity::ALL {
            assert_eq!(Entity::from_name(e.name()), Some(e));
        }
    }
}
