//! What the fake servers start with, and what the generator produces. This file is the contract between the
//! generator (`generator.rs`) and the two fakes (`zoho.rs`, `moodle.rs`): each fake turns a seed into its own
//! internal state, and the generator never reaches into a fake's internals.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// The Zoho CRM custom modules the sandbox serves (docs/sandbox.md "The college"), in dependency order.
pub const ZOHO_MODULES: &[&str] = &[
    "BTEC_Units",
    "BTEC_Teachers",
    "BTEC_Students",
    "BTEC_Classes",
    "BTEC_Enrollments",
    "BTEC_Registrations",
    "BTEC_Payments",
    "BTEC_Grades",
    "BTEC_Attendance",
];

/// One JSON object kept as its compact text, parsed when used. Seeds hold hundreds of thousands of records
/// (50,000 students make about 640,000); as `serde_json::Value` objects (an `IndexMap` each, with this crate's
/// `preserve_order`) they took about 3.5 KiB apiece, as text they take their length. Keys keep their order.
/// The text is always serde_json's compact form (no whitespace between tokens), which lets [`JsonObject::raw`],
/// [`JsonObject::pick`] and [`JsonObject::set`] find a key's value by a byte scan instead of a parse.
/// Serializes as the object itself, not as a string.
#[derive(Clone, PartialEq, Eq)]
pub struct JsonObject(Box<str>);

impl JsonObject {
    /// The object's text, e.g. `{"id":"5847596013000001007","Name":"STU-2025-00001",…}`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Parsed into a map (in key order).
    pub fn map(&self) -> Map<String, Value> {
        serde_json::from_str(&self.0).expect("a JsonObject holds an object's JSON")
    }

    /// Parsed into a `Value::Object`.
    pub fn value(&self) -> Value {
        Value::Object(self.map())
    }

    /// The string `id` (Zoho records) without parsing the rest when `id` is the first key, as the generator
    /// and [`JsonObject::from`] write it.
    pub fn id(&self) -> Option<String> {
        let fast = self.0.strip_prefix("{\"id\":\"").and_then(|rest| rest.split_once('"')).map(|(id, _)| id);
        match fast.filter(|id| !id.contains('\\')) {
            Some(id) => Some(id.to_string()),
            None => self.map().get("id").and_then(Value::as_str).map(str::to_string),
        }
    }

    /// The text of a top-level key's value as written (`"Active"`, `null`, `{"id":"1","name":"S"}`), without
    /// parsing anything. Keys are matched as spelled in the text (seed keys hold no escapes).
    pub fn raw(&self, key: &str) -> Option<&str> {
        value_range(&self.0, key).map(|r| &self.0[r])
    }

    /// Every top-level entry in one scan, in the text's order: each key as written (seed keys hold no escapes)
    /// and its value's text. For readers that need most fields of many records, where a [`JsonObject::raw`]
    /// per field would scan the text once each.
    pub fn raw_entries(&self) -> impl Iterator<Item = (&str, &str)> {
        entries(&self.0)
    }

    /// Whether the string `id` is `id`, without allocating (see [`JsonObject::id`]).
    pub fn has_id(&self, id: &str) -> bool {
        match self.raw("id") {
            Some(raw) if !raw.contains('\\') => raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) == Some(id),
            _ => self.id().as_deref() == Some(id),
        }
    }

    /// Sets a top-level key to `value`: its value's text is replaced where it stands (the key keeps its
    /// place), or the key is appended when absent. The rest of the text is kept as it is, unparsed.
    pub fn set<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) {
        let v = serde_json::to_string(value).expect("a value serializes");
        let text = &self.0;
        let out = match value_range(text, key) {
            Some(r) => [&text[..r.start], &v, &text[r.end..]].concat(),
            None => {
                let sep = if text.len() > 2 { "," } else { "" };
                let key = serde_json::to_string(key).expect("a key serializes");
                [&text[..text.len() - 1], sep, &key, ":", &v, "}"].concat()
            }
        };
        self.0 = out.into_boxed_str();
    }

    /// Only the `keys` of the object, in its order, as a `Value::Object`; other values are skipped without
    /// being built. For readers that need a few fields of many records (a full parse builds every value).
    pub fn pick<K: AsRef<str>>(&self, keys: &[K]) -> Value {
        let mut out = Map::with_capacity(keys.len());
        for (key, value) in entries(&self.0) {
            // A key is matched by what it spells: one written with an escape is decoded first.
            let key: Cow<str> = if key.contains('\\') {
                Cow::Owned(serde_json::from_str(&format!("\"{key}\"")).expect("a JSON key"))
            } else {
                Cow::Borrowed(key)
            };
            if keys.iter().any(|k| k.as_ref() == key) {
                out.insert(key.into_owned(), parse_value(value));
            }
        }
        Value::Object(out)
    }

    /// [`JsonObject::raw`] of several keys in one scan, which stops when all are found (keys are unique: the
    /// text is a serialized map or the generator's), in the order of `keys`: for readers that need a few
    /// fields of many records and build only what they keep.
    pub fn raws<const N: usize>(&self, keys: [&str; N]) -> [Option<&str>; N] {
        let mut out = [None; N];
        let mut missing = N;
        for (key, value) in entries(&self.0) {
            if let Some(i) = keys.iter().position(|k| *k == key) {
                if out[i].is_none() {
                    out[i] = Some(value);
                    missing -= 1;
                    if missing == 0 {
                        break;
                    }
                }
            }
        }
        out
    }

    /// Wraps text already known to be one compact JSON object (the generator's record writer).
    pub(crate) fn from_text_unchecked(text: String) -> JsonObject {
        debug_assert!(serde_json::from_str::<Map<String, Value>>(&text).is_ok(), "not a JSON object: {text}");
        JsonObject(text.into_boxed_str())
    }
}

/// The string a value's text holds (`"Active"` → `Active`), borrowed from the text when written without
/// escapes; `None` for any other value.
pub fn json_str(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    match inner.contains('\\') {
        false => Some(Cow::Borrowed(inner)),
        true => serde_json::from_str(raw).ok().map(Cow::Owned),
    }
}

/// The string `id` of a lookup's text (`{"id":"57","name":"S"}` → `57`), as `value[key]["id"].as_str()`
/// would read it; `None` for anything else.
pub fn json_lookup_id(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.starts_with('{') {
        return None;
    }
    json_str(entries(raw).find(|(key, _)| *key == "id")?.1)
}

/// A value's text parsed: a plain string or `null` without running the parser.
pub(crate) fn parse_value(raw: &str) -> Value {
    match raw {
        "null" => Value::Null,
        _ => match json_str(raw) {
            Some(Cow::Borrowed(s)) => Value::String(s.to_string()),
            _ => serde_json::from_str(raw).expect("a JsonObject holds an object's JSON"),
        },
    }
}

/// Where the value of top-level `key` lies in an object's compact text (as serde_json writes it, and as
/// every [`JsonObject`] holds it: no whitespace between tokens).
fn value_range(text: &str, key: &str) -> Option<std::ops::Range<usize>> {
    spans(text).find(|(k, _)| &text[k.clone()] == key).map(|(_, v)| v)
}

/// The top-level entries of an object's compact text: each key as written (without its quotes, escapes
/// left as they are) and its value's text.
fn entries(text: &str) -> impl Iterator<Item = (&str, &str)> {
    spans(text).map(move |(k, v)| (&text[k], &text[v]))
}

/// [`entries`] as byte ranges: a scan of the text that builds nothing (the text is valid JSON, see
/// [`JsonObject`]).
fn spans(text: &str) -> impl Iterator<Item = (std::ops::Range<usize>, std::ops::Range<usize>)> + '_ {
    let b = text.as_bytes();
    let mut i = 1; // after the `{`
    std::iter::from_fn(move || {
        if b.get(i) != Some(&b'"') {
            return None;
        }
        let key_end = string_end(b, i);
        let start = key_end + 1; // after the `:`
        let end = value_end(b, start);
        let key = i + 1..key_end - 1;
        i = end + 1; // after the `,` (or past the closing `}`)
        Some((key, start..end))
    })
}

/// The index just past the string starting at `b[i]` (a `"`).
fn string_end(b: &[u8], i: usize) -> usize {
    let mut j = i + 1;
    loop {
        j += memchr::memchr2(b'"', b'\\', &b[j..]).expect("a JSON string ends");
        if b[j] == b'"' {
            return j + 1;
        }
        j += 2;
    }
}

/// The index of the `,` or `}` that ends the value starting at `b[j]`.
fn value_end(b: &[u8], mut j: usize) -> usize {
    let mut depth = 0usize;
    loop {
        match b[j] {
            b'"' => {
                j = string_end(b, j);
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' if depth == 0 => return j,
            b'}' | b']' => depth -= 1,
            b',' if depth == 0 => return j,
            _ => {}
        }
        j += 1;
    }
}

impl From<&Map<String, Value>> for JsonObject {
    fn from(m: &Map<String, Value>) -> JsonObject {
        JsonObject(serde_json::to_string(m).expect("a map serializes").into_boxed_str())
    }
}

impl From<Map<String, Value>> for JsonObject {
    fn from(m: Map<String, Value>) -> JsonObject {
        JsonObject::from(&m)
    }
}

/// Panics on anything but an object (seeds hold only objects).
impl From<&Value> for JsonObject {
    fn from(v: &Value) -> JsonObject {
        assert!(v.is_object(), "a seed record must be a JSON object: {v}");
        JsonObject(serde_json::to_string(v).expect("a value serializes").into_boxed_str())
    }
}

impl From<Value> for JsonObject {
    fn from(v: Value) -> JsonObject {
        JsonObject::from(&v)
    }
}

impl std::fmt::Debug for JsonObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for JsonObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for JsonObject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.map().serialize(s)
    }
}

impl<'de> Deserialize<'de> for JsonObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<JsonObject, D::Error> {
        Ok(JsonObject::from(Map::<String, Value>::deserialize(d)?))
    }
}

/// The fake Zoho's starting data: records per module, exactly as Zoho would return them on read, i.e. JSON
/// objects (kept as [`JsonObject`] text) keyed by field API name, with `id` (a 19-digit string), `Created_Time` and
/// `Modified_Time`
/// (ISO-8601 with an offset, to the second; seed data mixes `+00:00` and `+05:30`), `Created_By` and
/// `Modified_By` (user lookups), and lookups as `{"id": "...", "name": "..."}`. Every module in
/// [`ZOHO_MODULES`] is present (possibly empty).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ZohoSeed {
    pub modules: BTreeMap<String, Vec<JsonObject>>,
    /// Records already in the recycle bin, per module (served by `GET /{module}/deleted`).
    pub deleted: BTreeMap<String, Vec<DeletedStub>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeletedStub {
    pub id: String,
    pub display_name: Option<String>,
    /// `recycle` or `permanent`.
    pub r#type: String,
    /// ISO-8601 with an offset.
    pub deleted_time: String,
}

/// The fake Moodle's starting data. Ids are Moodle ids (integers); the fake keeps them and continues
/// numbering after the largest. User id 1 is the guest and 2 the admin (the fake adds both if absent);
/// course id 1 is the site course (added by the fake).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MoodleSeed {
    pub categories: Vec<MoodleCategory>,
    pub users: Vec<MoodleUser>,
    pub courses: Vec<MoodleCourse>,
    pub enrolments: Vec<MoodleEnrolment>,
    pub grades: Vec<MoodleGrade>,
    /// The student-dashboard plugin's tables, rows exactly as `docs/plugin-contract.md` defines them.
    pub plugin: PluginTables,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MoodleCategory {
    pub id: i64,
    pub name: String,
    pub idnumber: String,
    pub parent: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MoodleUser {
    pub id: i64,
    pub username: String,
    pub firstname: String,
    pub lastname: String,
    pub email: String,
    pub idnumber: String,
    pub auth: String,
    pub suspended: bool,
    pub phone1: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MoodleCourse {
    pub id: i64,
    pub shortname: String,
    pub fullname: String,
    pub idnumber: String,
    pub categoryid: i64,
    /// Unix seconds (0 = none).
    pub startdate: i64,
    pub enddate: i64,
    pub visible: bool,
}

/// A manual enrolment with its role assignment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MoodleEnrolment {
    pub courseid: i64,
    pub userid: i64,
    pub roleid: i64,
    /// 0 active, 1 suspended.
    pub status: i64,
    pub timestart: i64,
    pub timeend: i64,
}

/// A course-total grade of one user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MoodleGrade {
    pub courseid: i64,
    pub userid: i64,
    pub finalgrade: Option<f64>,
    pub grademin: f64,
    pub grademax: f64,
    /// When the course total uses a scale (e.g. Refer, Pass, Merit, Distinction), the chosen item's name.
    pub scaleitem: Option<String>,
    /// Unix seconds.
    pub timemodified: i64,
}

/// Rows of the plugin's tables, one JSON object per row with the contract's field names.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PluginTables {
    pub registrations: Vec<JsonObject>,
    pub payments: Vec<JsonObject>,
    pub units: Vec<JsonObject>,
    pub grades: Vec<JsonObject>,
}

/// One seeded difference of the `drifted` state, with the change the reconcile must plan for it, assuming
/// the store's base (`sync_state`) is the state before the drift. Tests compare the reconcile's diff with
/// these, item by item: `(entity, zoho_id, moodle_id, target, action)` must match, `fields` must be the
/// differing canonical fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    pub kind: DriftKind,
    /// Entity name as in `model::Entity::name()` (student, enrollment, grade, payment…).
    pub entity: String,
    /// The Zoho record id involved, as the sync's link knows it: `None` only when the record never existed in
    /// Zoho (an extra Moodle enrolment). A student deleted in Zoho keeps its id here.
    pub zoho_id: Option<String>,
    /// The Moodle-side key involved, as the link knows it: a user or course id, `courseid:userid` for an
    /// enrolment or a course grade, the `zoho_id` for a dashboard row. `None` only when it never existed in
    /// Moodle; an enrolment removed in Moodle keeps its `courseid:userid`.
    pub moodle_id: Option<String>,
    /// Which side the planned op writes: `zoho` or `moodle`.
    pub target: String,
    /// The planned op: `create`, `update`, `suspend`, `restore`, `hide`, `unenrol`, `delete`.
    pub action: String,
    /// Canonical field names that differ, sorted (empty for create/suspend/unenrol/delete; `suspended` for a
    /// restore).
    pub fields: Vec<String>,
    /// Both sides changed the same field differently: reported as a conflict, settled by `conflicts.policy`.
    pub conflict: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// The registry office changed a student's email in Zoho.
    ZohoEmailChanged,
    /// Someone renamed a user in Moodle (profile is Zoho → Moodle: renamed back).
    MoodleUserRenamed,
    /// Someone suspended an active student's user in Moodle (restored).
    MoodleUserSuspended,
    /// An enrolment was removed in Moodle (bidirectional: Zoho becomes Withdrawn).
    MoodleEnrolmentMissing,
    /// A teacher enrolled a student in Moodle that Zoho does not have (created in Zoho).
    MoodleEnrolmentExtra,
    /// The registry withdrew an enrolment in Zoho (the Moodle enrolment is suspended).
    ZohoEnrollmentStatusChanged,
    /// A teacher suspended an enrolment in Moodle (Zoho becomes Withdrawn).
    MoodleEnrolmentStatusChanged,
    /// Both sides changed an enrolment's start date differently (a conflict).
    EnrollmentConflict,
    /// A teacher changed a course total in Moodle (the Zoho grade is updated).
    MoodleGradeChanged,
    /// The finance office changed a payment in Zoho (the dashboard row is updated).
    ZohoPaymentChanged,
    /// A student was deleted in Zoho (their Moodle user is suspended, per `deletions.policy`).
    ZohoStudentDeleted,
}

impl DriftKind {
    pub const ALL: [DriftKind; 11] = [
        DriftKind::ZohoEmailChanged,
        DriftKind::MoodleUserRenamed,
        DriftKind::MoodleUserSuspended,
        DriftKind::MoodleEnrolmentMissing,
        DriftKind::MoodleEnrolmentExtra,
        DriftKind::ZohoEnrollmentStatusChanged,
        DriftKind::MoodleEnrolmentStatusChanged,
        DriftKind::EnrollmentConflict,
        DriftKind::MoodleGradeChanged,
        DriftKind::ZohoPaymentChanged,
        DriftKind::ZohoStudentDeleted,
    ];
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pick_keeps_only_the_keys_asked_for() {
        // An escaped key is matched by what it spells.
        let text = r#"{"id":"58","Name":"O'Brien","Student":{"id":"57","name":"S"},"Sta\u0074us":"Active","Amount":12.5,"Tags":[1,{"a":null}]}"#;
        let rec = JsonObject::from_text_unchecked(text.to_string());
        let got = rec.pick(&["id", "Student", "Status", "Missing"]);
        assert_eq!(got, json!({"id": "58", "Student": {"id": "57", "name": "S"}, "Status": "Active"}));
        assert_eq!(rec.pick::<&str>(&[]), json!({}));
    }

    #[test]
    fn raws_and_json_str_read_what_a_parse_reads() {
        let text = r#"{"id":"58","Name":"O\u0027Brien \"Z\"","Student":{"id":"57","name":"S"},"Status":"Due","N":-1.5,"M":null}"#;
        let rec = JsonObject::from_text_unchecked(text.to_string());
        let parsed = rec.value();
        let [id, name, student, status, n, m, missing] = rec.raws(["id", "Name", "Student", "Status", "N", "M", "X"]);
        for (raw, key) in [(id, "id"), (name, "Name"), (student, "Student"), (status, "Status"), (n, "N"), (m, "M")] {
            let raw = raw.expect("present");
            assert_eq!(json_str(raw).as_deref(), parsed[key].as_str(), "{key}");
            assert_eq!(json_lookup_id(raw).as_deref(), parsed[key]["id"].as_str(), "{key}");
            assert_eq!(parse_value(raw), parsed[key], "{key}");
        }
        assert_eq!(missing, None);
        assert_eq!(json_str(status.unwrap()).as_deref(), Some("Due"));
        assert_eq!(rec.raws(["Student", "id"]), [student, id]);
        assert_eq!(json_str(name.unwrap()).as_deref(), Some("O'Brien \"Z\""));
    }

    #[test]
    fn raw_and_set_edit_the_text_in_place() {
        let text = r#"{"id":"58","Name":"a,\"}b","Student":{"id":"57","tags":[1,{"x":"]"}]},"Phone":null,"N":-1.5}"#;
        let mut rec = JsonObject::from_text_unchecked(text.to_string());
        assert_eq!(rec.raw("Name"), Some(r#""a,\"}b""#));
        assert_eq!(rec.raw("Student"), Some(r#"{"id":"57","tags":[1,{"x":"]"}]}"#));
        assert_eq!(rec.raw("N"), Some("-1.5"));
        assert_eq!(rec.raw("id"), Some(r#""58""#));
        assert_eq!(rec.raw("x"), None);
        assert!(rec.has_id("58") && !rec.has_id("5"));
        let mut want = rec.map();
        rec.set("Phone", "07700 900123");
        rec.set("Student", &json!({"id": "9", "name": "Zoë"}));
        rec.set("N", &2);
        rec.set("Added", &None::<i64>);
        want.insert("Phone".into(), json!("07700 900123"));
        want.insert("Student".into(), json!({"id": "9", "name": "Zoë"}));
        want.insert("N".into(), json!(2));
        want.insert("Added".into(), Value::Null);
        assert_eq!(rec.as_str(), serde_json::to_string(&want).unwrap());
        let mut empty = JsonObject::from(json!({}));
        empty.set("a", "b");
        assert_eq!(empty.as_str(), r#"{"a":"b"}"#);
    }
}
