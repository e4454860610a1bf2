//! The drift applied to seeds: each mutation as a person in the CRM or in Moodle would make it.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::seed::{json_str, DeletedStub, JsonObject, MoodleEnrolment, MoodleSeed, ZohoSeed};
use crate::world::{zoho_time, HUMAN_USER};
use zmsync_core::mapping::canon;

/// One change to one record on one side. Zoho fields use API names, Moodle fields Moodle's names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Mutation {
    /// Someone edits a Zoho record in the CRM (a human, so `Modified_By` is not the integration user).
    ZohoUpdate { module: String, id: String, fields: Map<String, Value> },
    /// Someone deletes a Zoho record (it goes to the recycle bin).
    ZohoDelete { module: String, id: String },
    /// An admin edits a Moodle user (`firstname`, `lastname`, `email`, `suspended`, …).
    MoodleUpdateUser { id: i64, fields: Map<String, Value> },
    /// A teacher enrols a user in a course.
    MoodleEnrol { enrolment: MoodleEnrolment },
    /// A teacher removes an enrolment.
    MoodleUnenrol { courseid: i64, userid: i64 },
    /// A teacher suspends (1) or reactivates (0) an enrolment.
    MoodleSetEnrolmentStatus { courseid: i64, userid: i64, status: i64 },
    /// A teacher edits an enrolment's dates (Unix seconds, 0 = none).
    MoodleSetEnrolmentDates { courseid: i64, userid: i64, timestart: i64, timeend: i64 },
    /// A teacher overrides a course total.
    MoodleSetGrade { courseid: i64, userid: i64, finalgrade: Option<f64> },
}

/// Where the record with Zoho id `id` is: by binary search, as generated modules are in id order (ids are
/// equal-length digit strings, so `(length, text)` orders them as numbers), else by a scan.
fn position(records: &[JsonObject], id: &str) -> Option<usize> {
    let want = Some((id.len(), Cow::Borrowed(id)));
    let found = records.binary_search_by(|r| r.raw("id").and_then(json_str).map(|s| (s.len(), s)).cmp(&want)).ok();
    found.filter(|&pos| records[pos].has_id(id)).or_else(|| records.iter().position(|r| r.has_id(id)))
}

/// Applies mutations to seeds, as if made at `at` (Unix seconds) by people in the CRM and in Moodle.
pub fn apply_to_seeds(zoho: &mut ZohoSeed, moodle: &mut MoodleSeed, mutations: &[Mutation], at: i64) {
    for m in mutations {
        match m {
            Mutation::ZohoUpdate { module, id, fields } => {
                let Some(records) = zoho.modules.get_mut(module) else { continue };
                let Some(pos) = position(records, id) else { continue };
                let rec = &mut records[pos];
                for (k, v) in fields {
                    rec.set(k, v);
                }
                rec.set("Modified_Time", &zoho_time(at, false));
                rec.set("Modified_By", &json!({"id": HUMAN_USER.0, "name": HUMAN_USER.1}));
            }
            Mutation::ZohoDelete { module, id } => {
                let Some(records) = zoho.modules.get_mut(module) else { continue };
                let Some(pos) = position(records, id) else { continue };
                let rec = records.remove(pos).value();
                zoho.deleted.entry(module.clone()).or_default().push(DeletedStub {
                    id: id.clone(),
                    display_name: rec["Name"].as_str().map(str::to_string),
                    r#type: "recycle".into(),
                    deleted_time: zoho_time(at, false),
                });
            }
            Mutation::MoodleUpdateUser { id, fields } => {
                let Some(u) = moodle.users.iter_mut().find(|u| u.id == *id) else { continue };
                for (k, v) in fields {
                    let s = || v.as_str().unwrap_or("").to_string();
                    match k.as_str() {
                        "username" => u.username = s(),
                        "firstname" => u.firstname = s(),
                        "lastname" => u.lastname = s(),
                        "email" => u.email = s(),
                        "idnumber" => u.idnumber = s(),
                        "auth" => u.auth = s(),
                        "phone1" => u.phone1 = s(),
                        "suspended" => u.suspended = canon::boolean(Some(v)),
                        _ => {}
                    }
                }
            }
            Mutation::MoodleEnrol { enrolment } => {
                moodle.enrolments.retain(|e| (e.courseid, e.userid) != (enrolment.courseid, enrolment.userid));
                moodle.enrolments.push(enrolment.clone());
            }
            Mutation::MoodleUnenrol { courseid, userid } => {
                moodle.enrolments.retain(|e| (e.courseid, e.userid) != (*courseid, *userid));
            }
            Mutation::MoodleSetEnrolmentStatus { courseid, userid, status } => {
                if let Some(e) = moodle.enrolments.iter_mut().find(|e| (e.courseid, e.userid) == (*courseid, *userid)) {
                    e.status = *status;
                }
            }
            Mutation::MoodleSetEnrolmentDates { courseid, userid, timestart, timeend } => {
                if let Some(e) = moodle.enrolments.iter_mut().find(|e| (e.courseid, e.userid) == (*courseid, *userid)) {
                    e.timestart = *timestart;
                    e.timeend = *timeend;
                }
            }
            Mutation::MoodleSetGrade { courseid, userid, finalgrade } => {
                if let Some(g) = moodle.grades.iter_mut().find(|g| (g.courseid, g.userid) == (*courseid, *userid)) {
                    g.finalgrade = *finalgrade;
                    g.timemodified = at;
                }
            }
        }
    }
}
