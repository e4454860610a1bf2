//! Students and teachers (Zoho BTEC_Students / BTEC_Teachers) ⇄ Moodle users.
//!
//! Both map onto one Moodle user pool. A user's canonical fields are a superset; a teacher sees the
//! projection [`TEACHER_FIELDS`]. Identity: Moodle `idnumber` = Student_ID_Number / Teacher_ID_Number,
//! falling back to the email (the link step decides).

use serde_json::{json, Map, Value};

use super::{id_of, object, read_moodle, read_zoho, FieldSpec, MapError, Norm, ZohoNames};
use crate::model::{Fields, Kind, Record};
use crate::settings::MoodleAccounts;

pub const STUDENT_FIELDS: &[&str] = &["email", "first_name", "id_number", "last_name", "phone", "suspended"];
pub const TEACHER_FIELDS: &[&str] = &["email", "first_name", "id_number", "last_name"];

const ZOHO_PERSON: &[FieldSpec] = &[
    FieldSpec { canonical: "first_name", norm: Norm::Text },
    FieldSpec { canonical: "last_name", norm: Norm::Text },
    FieldSpec { canonical: "email", norm: Norm::Email },
    FieldSpec { canonical: "id_number", norm: Norm::Text },
];

/// canonical → Moodle user field.
const MOODLE_USER: &[(&str, &str, Norm)] = &[
    ("first_name", "firstname", Norm::Text),
    ("last_name", "lastname", Norm::Text),
    ("email", "email", Norm::Email),
    ("id_number", "idnumber", Norm::Text),
    ("phone", "phone1", Norm::Text),
    ("suspended", "suspended", Norm::Bool),
];

/// Zoho student statuses that keep the Moodle account active; any other status suspends it.
pub const ACTIVE_STUDENT_STATUSES: &[&str] = &["Active", "Graduated"];

pub fn student_from_zoho(raw: &Value, names: &ZohoNames) -> Result<Record, MapError> {
    let rec = object(raw)?;
    let mut fields = read_zoho(rec, names, ZOHO_PERSON)?;
    fields.insert("phone".into(), super::canon::text(rec.get(names.get("phone"))));
    let status = super::canon::text(rec.get(names.get("status")));
    let active = status.as_str().map(|s| ACTIVE_STUDENT_STATUSES.contains(&s)).unwrap_or(true);
    fields.insert("suspended".into(), Value::Bool(!active));
    person_record(Kind::Student, rec, names, fields, status)
}

pub fn teacher_from_zoho(raw: &Value, names: &ZohoNames) -> Result<Record, MapError> {
    let rec = object(raw)?;
    let fields = read_zoho(rec, names, ZOHO_PERSON)?;
    person_record(Kind::Teacher, rec, names, fields, Value::Null)
}

fn person_record(
    kind: Kind,
    rec: &Map<String, Value>,
    names: &ZohoNames,
    fields: Fields,
    status: Value,
) -> Result<Record, MapError> {
    let id = id_of(rec, "id")?;
    let mut refs = Fields::new();
    refs.insert("moodle_id".into(), super::canon::text(rec.get(names.get("moodle_id"))));
    refs.insert("name".into(), super::canon::text(rec.get(names.get("name"))));
    refs.insert("status".into(), status);
    refs.insert("modified_time".into(), super::canon::text(rec.get("Modified_Time")));
    Ok(Record::new(kind, id, fields, refs))
}

/// Mapped user fields that Moodle returns only to a site admin's token or when *Show user identity*
/// (`showuseridentity`) lists them, and leaves out when empty: (canonical, Moodle field).
pub const IDENTITY_FIELDS: &[(&str, &str)] = &[("phone", "phone1")];

/// Settles what an absent identity field means in one answer of `core_user_get_users*`: when some user carries
/// it, the token can read it and an absent key is an empty value (filled in as `""`); when none does, the token
/// cannot read it and it stays absent, which [`user_from_moodle`] maps to *unknown*. Returns the Moodle names of
/// the fields no user carried.
pub fn settle_identity_fields(users: &mut [Value]) -> Vec<&'static str> {
    let mut unreadable = Vec::new();
    for (_, field) in IDENTITY_FIELDS {
        if users.iter().any(|u| u.get(*field).is_some()) {
            for u in users.iter_mut() {
                if let Some(m) = u.as_object_mut() {
                    m.entry(*field).or_insert_with(|| json!(""));
                }
            }
        } else if !users.is_empty() {
            unreadable.push(*field);
        }
    }
    unreadable
}

/// A Moodle user. An identity field absent from the answer is unknown (the token cannot read it): it is left
/// out of the fields, so it is never compared, planned or recorded as empty (see [`settle_identity_fields`]).
pub fn user_from_moodle(raw: &Value) -> Result<Record, MapError> {
    let obj = object(raw)?;
    let id = id_of(obj, "id")?;
    let mut fields = read_moodle(obj, MOODLE_USER)?;
    for (canonical, field) in IDENTITY_FIELDS {
        if !obj.contains_key(*field) {
            fields.remove(*canonical);
        }
    }
    let mut refs = Fields::new();
    refs.insert("username".into(), super::canon::text(obj.get("username")));
    refs.insert("auth".into(), super::canon::text(obj.get("auth")));
    Ok(Record::new(Kind::MoodleUser, id, fields, refs))
}

/// The Moodle username for a new user: the lower-cased id number (else the email), reduced to the characters
/// Moodle's PARAM_USERNAME keeps.
pub fn username_for(fields: &Fields) -> Option<String> {
    username_of(fields).ok()
}

/// [`username_for`], or what is wrong: no id number nor email, or one that keeps no character Moodle accepts in
/// a username (学生号, `!!!///`).
pub fn username_of(fields: &Fields) -> Result<String, MapError> {
    let (field, base) =
        match (fields.get("id_number").and_then(Value::as_str), fields.get("email").and_then(Value::as_str)) {
            (Some(idn), _) => ("id number", idn),
            (None, Some(email)) => ("email", email),
            (None, None) => return Err(MapError::Missing { what: "an id number or email for the username".into() }),
        };
    let cleaned: String = base
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'))
        .collect();
    if cleaned.is_empty() {
        return Err(MapError::BadValue {
            field: field.into(),
            value: base.into(),
            expected: "usable as a Moodle username: it has no letter a–z, digit 0–9 or _ - . @ in it (the username \
                       is made of those only); give the person an id number with letters or digits in Zoho"
                .into(),
        });
    }
    Ok(cleaned)
}

/// `core_user_create_users` fields for a new user from a Zoho person's canonical fields. Never a password:
/// `manual` users get `createpassword=1` (Moodle mails them a link); SSO users need none.
pub fn moodle_user_create(fields: &Fields, accounts: &MoodleAccounts) -> Result<Map<String, Value>, MapError> {
    let mut out = Map::new();
    out.insert("username".into(), json!(username_of(fields)?));
    for (canonical, moodle, _) in MOODLE_USER {
        if *canonical == "suspended" {
            continue; // not accepted on create; applied by an update right after
        }
        if let Some(Value::String(v)) = fields.get(*canonical) {
            out.insert(moodle.to_string(), json!(v));
        }
    }
    for required in ["firstname", "lastname", "email"] {
        if !out.contains_key(required) {
            return Err(MapError::Missing { what: format!("a value for Moodle's `{required}`") });
        }
    }
    out.insert("auth".into(), json!(accounts.auth));
    if accounts.auth == "manual" {
        out.insert("createpassword".into(), json!(1));
    }
    Ok(out)
}

/// `core_user_update_users` fields for changed canonical fields (with `id` added by the caller).
pub fn moodle_user_update(changes: &Fields) -> Map<String, Value> {
    let mut out = Map::new();
    for (canonical, moodle, norm) in MOODLE_USER {
        if let Some(v) = changes.get(*canonical) {
            let value = match (norm, v) {
                (Norm::Bool, Value::Bool(b)) => json!(if *b { 1 } else { 0 }),
                (_, Value::Null) => json!(""),
                (_, other) => other.clone(),
            };
            out.insert(moodle.to_string(), value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    fn names(kind: Kind) -> ZohoNames {
        ZohoNames::for_kind(&Settings::defaults(), kind)
    }

    #[test]
    fn student_maps_and_normalises() {
        let raw = json!({"id": "5847596000012345001", "Name": "STU-2024-001", "First_Name": " Zoë ", "Last_Name": "O'Brien",
            "Academic_Email": " Zoe.OBrien@Student.EDU", "Student_ID_Number": "STU-2024-001", "Phone": "+44 20 7946 0000",
            "Status": "Withdrawn", "Student_Moodle_ID": null, "Modified_Time": "2026-01-25T10:00:00+05:30"});
        let r = student_from_zoho(&raw, &names(Kind::Student)).unwrap();
        assert_eq!(r.key, "5847596000012345001");
        assert_eq!(r.field("first_name"), &json!("Zoë"));
        assert_eq!(r.field("email"), &json!("zoe.obrien@student.edu"));
        assert_eq!(r.field("suspended"), &json!(true));
        assert_eq!(r.refs["status"], json!("Withdrawn"));
        assert_eq!(r.fields.keys().map(String::as_str).collect::<Vec<_>>(), STUDENT_FIELDS);
    }

    #[test]
    fn moodle_user_and_student_agree_when_synced() {
        let zoho = json!({"id": "1", "First_Name": "John", "Last_Name": "Smith", "Academic_Email": "John@x.edu",
            "Student_ID_Number": "STU-1", "Phone": null, "Status": "Active"});
        let z = student_from_zoho(&zoho, &names(Kind::Student)).unwrap();
        let accounts = MoodleAccounts { auth: "manual".into(), course_category_idnumber: "zmsync".into() };
        let create = moodle_user_create(&z.fields, &accounts).unwrap();
        assert_eq!(create["username"], json!("stu-1"));
        assert_eq!(create["createpassword"], json!(1));
        assert!(!create.contains_key("password") && !create.contains_key("phone1"));
        let mut user = create.clone();
        user.insert("id".into(), json!(57));
        user.insert("suspended".into(), json!(false));
        // A token that cannot read phone1 (stock Show user identity): the phone is unknown, not empty.
        let hidden = user_from_moodle(&Value::Object(user.clone())).unwrap();
        assert!(!hidden.fields.contains_key("phone"));
        assert_eq!(hidden.project(STUDENT_FIELDS).fields.len(), STUDENT_FIELDS.len() - 1);
        // A token that reads it: another user carries phone1, so this one's absent key is an empty phone.
        let mut users = vec![Value::Object(user), json!({"id": 58, "phone1": "+44 1"})];
        assert!(settle_identity_fields(&mut users).is_empty());
        let m = user_from_moodle(&users[0]).unwrap();
        assert_eq!(m.fingerprint, z.fingerprint);
        assert_eq!(m.project(TEACHER_FIELDS).fields.len(), 4);
        assert_eq!(settle_identity_fields(&mut [json!({"id": 1})]), vec!["phone1"]);
    }

    #[test]
    fn sso_users_get_no_password_and_missing_email_is_reported() {
        let accounts = MoodleAccounts { auth: "oauth2".into(), course_category_idnumber: "x".into() };
        let mut f = Fields::new();
        f.insert("first_name".into(), json!("A"));
        f.insert("last_name".into(), json!("B"));
        f.insert("id_number".into(), json!("T 1/Ü"));
        assert!(matches!(moodle_user_create(&f, &accounts), Err(MapError::Missing { .. })));
        f.insert("email".into(), json!("a@b.c"));
        // An id number with nothing a username can keep says so, naming it (not "missing").
        for bad in ["学生号", "!!!///"] {
            let mut g = f.clone();
            g.insert("id_number".into(), json!(bad));
            let e = moodle_user_create(&g, &accounts).unwrap_err().to_string();
            assert!(
                e.contains("id number") && e.contains(bad) && e.contains("username") && !e.contains("missing"),
                "{e}"
            );
        }
        let c = moodle_user_create(&f, &accounts).unwrap();
        assert_eq!(c["username"], json!("t1"));
        assert!(!c.contains_key("createpassword") && c["auth"] == json!("oauth2"));
    }

    #[test]
    fn update_encodes_booleans_and_clears() {
        let mut ch = Fields::new();
        ch.insert("suspended".into(), json!(true));
        ch.insert("phone".into(), Value::Null);
        let u = moodle_user_update(&ch);
        assert_eq!(u["suspended"], json!(1));
        assert_eq!(u["phone1"], json!(""));
    }
}
