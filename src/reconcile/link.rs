//! Identity: which Zoho record is which Moodle record.
//!
//! Students and teachers are paired with Moodle users, classes with courses. In order: the stored link; the
//! Moodle id Zoho already holds (the write-back); the Moodle `idnumber` (= Student_ID_Number /
//! Teacher_ID_Number, or a course's idnumber = the class's Zoho id); for people, the email — only when exactly
//! one unlinked Moodle user has it. Several candidates are reported as ambiguous, never guessed. Pairings found
//! by matching become ops (Link / WriteBack) that apply stores; reconcile itself writes nothing.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::{json, Value};

use super::plan::{Action, Fingerprints, Issue, IssueKind, Op};
use crate::model::{Entity, Fields, Record, Side};
use crate::store::Link;

/// Zoho id ⇄ Moodle id for one entity.
#[derive(Debug, Default, Clone)]
pub struct IdMap {
    pub z2m: HashMap<String, String>,
    pub m2z: HashMap<String, String>,
}

impl IdMap {
    pub fn insert(&mut self, zoho: &str, moodle: &str) {
        self.z2m.insert(zoho.to_string(), moodle.to_string());
        self.m2z.insert(moodle.to_string(), zoho.to_string());
    }
    pub fn moodle(&self, zoho: &str) -> Option<&str> {
        self.z2m.get(zoho).map(String::as_str)
    }
    pub fn zoho(&self, moodle: &str) -> Option<&str> {
        self.m2z.get(moodle).map(String::as_str)
    }
}

/// How a pairing was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    Stored,
    /// Zoho's own Moodle id field pointed at it.
    ZohoField,
    IdNumber,
    Email,
}

/// The identity of one entity: pairs, the ops that record new pairs, the issues, and the Zoho records that
/// must not be created (a create would duplicate or guess).
#[derive(Debug, Default)]
pub struct Linked {
    pub map: IdMap,
    pub ops: Vec<Op>,
    pub issues: Vec<Issue>,
    pub blocked: HashSet<String>,
}

/// Which matching rules apply after the stored link and Zoho's Moodle id field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rules {
    /// Students and teachers: idnumber = id_number, then a unique email.
    Person,
    /// Classes: the course idnumber = the Zoho id.
    Course,
}

/// Pairs `zoho` records with `moodle` objects. `claimed`: Moodle ids already paired by another entity over the
/// same pool (students and teachers share the users); the ones paired here are added to it.
pub fn link(
    entity: Entity,
    rules: Rules,
    zoho: &[Record],
    moodle: &HashMap<&str, &Record>,
    stored: &[Link],
    claimed: &mut HashSet<String>,
) -> Linked {
    let mut out = Linked::default();
    let by_id: HashMap<&str, &Record> = zoho.iter().map(|r| (r.key.as_str(), r)).collect();
    let mut how: BTreeMap<String, How> = BTreeMap::new();

    // 1. Stored links whose Moodle record still exists. One whose Zoho record is gone is kept: it is how a
    //    deletion in Zoho is recognised.
    for l in stored {
        if moodle.contains_key(l.moodle_id.as_str()) && out.map.zoho(&l.moodle_id).is_none() {
            out.map.insert(&l.zoho_id, &l.moodle_id);
            claimed.insert(l.moodle_id.clone());
            how.insert(l.zoho_id.clone(), How::Stored);
        }
    }

    // Smallest Zoho id first, so that ties go the same way on every run.
    let mut pending: Vec<&Record> = zoho.iter().filter(|r| out.map.moodle(&r.key).is_none()).collect();
    pending.sort_by(|a, b| cmp_ids(&a.key, &b.key));

    // 2. The Moodle id Zoho holds, when that record exists and nobody has it.
    pending.retain(|r| {
        let Some(mid) = r.ref_str("moodle_id") else { return true };
        if moodle.contains_key(mid) && !claimed.contains(mid) {
            out.map.insert(&r.key, mid);
            claimed.insert(mid.to_string());
            how.insert(r.key.clone(), How::ZohoField);
            false
        } else {
            true
        }
    });

    // 3./4. The matching rules, over the Moodle records nobody has claimed.
    let unclaimed = |field: &dyn Fn(&Record) -> Option<String>, claimed: &HashSet<String>| {
        let mut index: HashMap<String, Vec<String>> = HashMap::new();
        for (id, r) in moodle {
            if !claimed.contains(*id) {
                if let Some(v) = field(r) {
                    index.entry(v).or_default().push(id.to_string());
                }
            }
        }
        for ids in index.values_mut() {
            ids.sort_by(|a, b| cmp_ids(a, b));
        }
        index
    };
    match rules {
        Rules::Course => {
            let index = unclaimed(&|r: &Record| r.ref_str("idnumber").map(str::to_string), claimed);
            for r in pending {
                match index.get(&r.key).map(Vec::as_slice) {
                    Some([one]) if !claimed.contains(one) => {
                        out.map.insert(&r.key, one);
                        claimed.insert(one.clone());
                        how.insert(r.key.clone(), How::IdNumber);
                    }
                    Some(many) if many.len() > 1 => {
                        out.blocked.insert(r.key.clone());
                        out.issues.push(issue(
                            entity,
                            r,
                            IssueKind::Ambiguous,
                            format!("courses {} all have idnumber {}; fix them in Moodle", many.join(", "), r.key),
                        ));
                    }
                    _ => {}
                }
            }
        }
        Rules::Person => {
            let by_idnumber = unclaimed(&|r: &Record| r.field_str("id_number").map(str::to_string), claimed);
            let mut rest = Vec::new();
            for r in pending {
                let Some(idn) = r.field_str("id_number") else {
                    rest.push(r);
                    continue;
                };
                match by_idnumber.get(idn).map(Vec::as_slice) {
                    Some([one]) if !claimed.contains(one) => {
                        out.map.insert(&r.key, one);
                        claimed.insert(one.clone());
                        how.insert(r.key.clone(), How::IdNumber);
                    }
                    Some(many) if many.len() > 1 => {
                        out.blocked.insert(r.key.clone());
                        out.issues.push(issue(
                            entity,
                            r,
                            IssueKind::Ambiguous,
                            format!(
                                "Moodle users {} all have idnumber {idn}; link one by setting the Moodle id in Zoho",
                                many.join(", ")
                            ),
                        ));
                    }
                    _ => rest.push(r),
                }
            }
            // The smallest Zoho id owns an email; the others cannot be created or matched by it.
            let mut owner: HashMap<&str, &str> = HashMap::new();
            let mut all: Vec<&Record> = zoho.iter().collect();
            all.sort_by(|a, b| cmp_ids(&a.key, &b.key));
            for r in all {
                if let Some(e) = r.field_str("email") {
                    owner.entry(e).or_insert(r.key.as_str());
                }
            }
            let by_email = unclaimed(&|r: &Record| r.field_str("email").map(str::to_string), claimed);
            for r in rest {
                if out.blocked.contains(&r.key) {
                    continue;
                }
                let Some(email) = r.field_str("email") else {
                    out.blocked.insert(r.key.clone());
                    out.issues.push(issue(
                        entity,
                        r,
                        IssueKind::Incomplete,
                        "no email in Zoho: the Moodle account cannot be created; fill in the email".into(),
                    ));
                    continue;
                };
                if let Some(first) = owner.get(email).filter(|o| **o != r.key) {
                    out.blocked.insert(r.key.clone());
                    let first_name = by_id.get(first).and_then(|f| f.ref_str("name")).unwrap_or("");
                    out.issues.push(issue(
                        entity,
                        r,
                        IssueKind::Duplicate,
                        format!(
                            "email {email} is also on Zoho record {first} {first_name} (older, synced instead); \
                             correct one of them in Zoho"
                        ),
                    ));
                    continue;
                }
                match by_email.get(email).map(Vec::as_slice) {
                    Some([one]) if !claimed.contains(one) => {
                        out.map.insert(&r.key, one);
                        claimed.insert(one.clone());
                        how.insert(r.key.clone(), How::Email);
                    }
                    Some(many) if many.len() > 1 => {
                        out.blocked.insert(r.key.clone());
                        out.issues.push(issue(
                            entity,
                            r,
                            IssueKind::Ambiguous,
                            format!(
                                "Moodle users {} all have email {email}; set the Moodle id in Zoho or give the \
                                 user the id number {}",
                                many.join(", "),
                                r.field_str("id_number").unwrap_or("(none)")
                            ),
                        ));
                    }
                    _ => {}
                }
            }
        }
    }

    // Pairings to record, and Moodle ids to write back where Zoho's is missing or wrong.
    for (zid, how) in &how {
        let Some(r) = by_id.get(zid.as_str()) else { continue };
        let Some(mid) = out.map.moodle(zid) else { continue };
        let m = moodle.get(mid).copied();
        let held = r.ref_str("moodle_id");
        let (action, reason) = if held != Some(mid) {
            let why = match held {
                None => "Zoho has no Moodle id".to_string(),
                Some(other) => format!("Zoho's Moodle id {other} is wrong"),
            };
            (Action::WriteBack, format!("{why}; paired by {}", how_name(*how)))
        } else if *how != How::Stored {
            (Action::Link, format!("paired by {}", how_name(*how)))
        } else {
            continue;
        };
        let mut changes = Fields::new();
        changes.insert("moodle_id".into(), json!(mid));
        let mut before = Fields::new();
        if action == Action::WriteBack {
            before.insert("moodle_id".into(), held.map(|h| json!(h)).unwrap_or(Value::Null));
        }
        out.ops.push(Op {
            seq: 0,
            entity,
            action,
            target: Side::Zoho,
            key: zid.clone(),
            zoho_id: Some(zid.clone()),
            moodle_id: Some(mid.to_string()),
            changes,
            before,
            base: None,
            fingerprints: Fingerprints {
                zoho: Some(r.fingerprint.clone()),
                moodle: m.map(|m| m.fingerprint.clone()),
                base: None,
            },
            refs: Fields::new(),
            reason,
            conflict: false,
        });
    }
    out
}

fn how_name(h: How) -> &'static str {
    match h {
        How::Stored => "the stored link",
        How::ZohoField => "the Moodle id in Zoho",
        How::IdNumber => "idnumber",
        How::Email => "email",
    }
}

fn issue(entity: Entity, r: &Record, kind: IssueKind, message: String) -> Issue {
    Issue { entity, key: r.key.clone(), zoho_id: Some(r.key.clone()), moodle_id: None, kind, message }
}

/// Ids compare as numbers when both are numeric (Zoho's 19-digit ids, Moodle's ids), else as text.
pub fn cmp_ids(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u128>(), b.parse::<u128>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}
