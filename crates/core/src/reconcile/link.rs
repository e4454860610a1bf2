//! Identity: which Zoho record is which Moodle record.
//!
//! Students and teachers are paired with Moodle users, classes with courses. In order: the stored link; the
//! Moodle id Zoho already holds (the write-back); the Moodle `idnumber` (= Student_ID_Number /
//! Teacher_ID_Number, or a course's idnumber = the class's Zoho id); for people, the email — only when exactly
//! one unlinked Moodle user has it. Several candidates are reported as ambiguous, never guessed. Pairings found
//! by matching become ops (Link / WriteBack) that apply stores; reconcile itself writes nothing.

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{json, Value};

use super::plan::{Action, Fingerprints, Issue, IssueKind, Op};
use crate::model::Link;
use crate::model::{Entity, Fields, Record, Side};

/// Zoho id ⇄ Moodle id for one entity. The ids are borrowed from the records and links they were read from.
#[derive(Debug, Default, Clone)]
pub struct IdMap<'a> {
    pub z2m: FxHashMap<&'a str, &'a str>,
    pub m2z: FxHashMap<&'a str, &'a str>,
}

impl<'a> IdMap<'a> {
    pub fn insert(&mut self, zoho: &'a str, moodle: &'a str) {
        self.z2m.insert(zoho, moodle);
        self.m2z.insert(moodle, zoho);
    }
    /// Forgets the pairing of `zoho` (its Moodle id is about to be paired with another Zoho id).
    pub fn remove_zoho(&mut self, zoho: &str) {
        if let Some(m) = self.z2m.remove(zoho) {
            if self.m2z.get(m).is_some_and(|z| *z == zoho) {
                self.m2z.remove(m);
            }
        }
    }
    pub fn moodle(&self, zoho: &str) -> Option<&'a str> {
        self.z2m.get(zoho).copied()
    }
    pub fn zoho(&self, moodle: &str) -> Option<&'a str> {
        self.m2z.get(moodle).copied()
    }
}

/// How a pairing was found. A stored pairing plans nothing but the write-back of a Moodle id Zoho lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// The stored link (kept only when Zoho's Moodle id field differs from it).
    Stored,
    /// Zoho's own Moodle id field pointed at it.
    ZohoField,
    IdNumber,
    Email,
}

/// The identity of one entity: pairs, the ops that record new pairs, the issues, and the Zoho records that
/// must not be created (a create would duplicate or guess).
#[derive(Debug, Default)]
pub struct Linked<'a> {
    pub map: IdMap<'a>,
    pub ops: Vec<Op>,
    pub issues: Vec<Issue>,
    pub blocked: FxHashSet<&'a str>,
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
pub fn link<'a>(
    entity: Entity,
    rules: Rules,
    zoho: &'a [Record],
    moodle: &FxHashMap<&'a str, &'a Record>,
    stored: &'a [Link],
    claimed: &mut FxHashSet<&'a str>,
) -> Linked<'a> {
    let mut out = Linked::default();
    // The pairings found by matching, by Zoho id (stored ones plan nothing, so they are not kept here).
    let mut how: BTreeMap<&'a str, (How, &'a Record)> = BTreeMap::new();

    // 1. Stored links whose Moodle record still exists. One whose Zoho record is gone is kept: it is how a
    //    deletion in Zoho is recognised. The Moodle id field in Zoho must say the same: a run killed between
    //    the create and the write-back, a person clearing or mistyping the field, all leave it empty or wrong,
    //    and every run writes the link back until it agrees (issue #19).
    let by_key: FxHashMap<&'a str, &'a Record> =
        if stored.is_empty() { FxHashMap::default() } else { zoho.iter().map(|r| (r.key.as_str(), r)).collect() };
    for l in stored {
        if moodle.contains_key(l.moodle_id.as_str()) && out.map.zoho(&l.moodle_id).is_none() {
            out.map.insert(&l.zoho_id, &l.moodle_id);
            claimed.insert(&l.moodle_id);
            if let Some(r) = by_key.get(l.zoho_id.as_str()).filter(|r| r.ref_str("moodle_id") != Some(&l.moodle_id)) {
                how.insert(&l.zoho_id, (How::Stored, r));
            }
        }
    }

    // Smallest Zoho id first, so that ties go the same way on every run.
    let mut pending: Vec<&'a Record> = zoho.iter().filter(|r| out.map.moodle(&r.key).is_none()).collect();
    sort_by_id(&mut pending, |r| r.key.as_str());

    // 2. The Moodle id Zoho holds, when that record exists and nobody has it.
    pending.retain(|r| {
        let Some(mid) = r.ref_str("moodle_id") else { return true };
        match moodle.get_key_value(mid) {
            Some((mid, _)) if !claimed.contains(mid) => {
                out.map.insert(&r.key, mid);
                claimed.insert(mid);
                how.insert(&r.key, (How::ZohoField, r));
                false
            }
            _ => true,
        }
    });

    // 3./4. The matching rules, over the Moodle records nobody has claimed (nothing to match when every Zoho
    //    record is paired already).
    let unclaimed = |field: &dyn Fn(&'a Record) -> Option<&'a str>, claimed: &FxHashSet<&'a str>| {
        let mut index: FxHashMap<&'a str, Vec<&'a str>> = FxHashMap::default();
        for (id, r) in moodle {
            if !claimed.contains(*id) {
                if let Some(v) = field(r) {
                    index.entry(v).or_default().push(*id);
                }
            }
        }
        for ids in index.values_mut() {
            ids.sort_by(|a, b| cmp_ids(a, b));
        }
        index
    };
    match rules {
        _ if pending.is_empty() => {}
        Rules::Course => {
            let index = unclaimed(&|r: &'a Record| r.ref_str("idnumber"), claimed);
            for r in pending {
                match index.get(r.key.as_str()).map(Vec::as_slice) {
                    Some(&[one]) if !claimed.contains(one) => {
                        pair(&mut out, claimed, &mut how, r, one, How::IdNumber);
                    }
                    Some(many) if many.len() > 1 => {
                        ambiguous(
                            &mut out,
                            entity,
                            r,
                            format!("courses {} all have idnumber {}; fix them in Moodle", many.join(", "), r.key),
                        );
                    }
                    _ => {}
                }
            }
        }
        Rules::Person => {
            let by_idnumber = unclaimed(&|r: &'a Record| r.field_str("id_number"), claimed);
            let mut rest = Vec::new();
            for r in pending {
                let Some(idn) = r.field_str("id_number") else {
                    rest.push(r);
                    continue;
                };
                match by_idnumber.get(idn).map(Vec::as_slice) {
                    Some(&[one]) if !claimed.contains(one) => {
                        pair(&mut out, claimed, &mut how, r, one, How::IdNumber);
                    }
                    Some(many) if many.len() > 1 => {
                        ambiguous(
                            &mut out,
                            entity,
                            r,
                            format!(
                                "Moodle users {} all have idnumber {idn}; link one by setting the Moodle id in Zoho",
                                many.join(", ")
                            ),
                        );
                    }
                    _ => rest.push(r),
                }
            }
            if rest.is_empty() {
                return finish(entity, out, how, moodle);
            }
            // The smallest Zoho id owns an email; the others cannot be created or matched by it.
            let mut owner: FxHashMap<&str, &Record> = FxHashMap::default();
            let mut all: Vec<&Record> = zoho.iter().collect();
            sort_by_id(&mut all, |r| r.key.as_str());
            for r in all {
                if let Some(e) = r.field_str("email") {
                    owner.entry(e).or_insert(r);
                }
            }
            let by_email = unclaimed(&|r: &'a Record| r.field_str("email"), claimed);
            // Moodle users whose linked Zoho record is gone (deleted in Zoho), by email: when the older of two
            // records sharing an email is deleted, the other now owns the email and takes its user over, rather
            // than being planned as a create Moodle refuses every night (issue #19).
            let mut orphans: FxHashMap<&'a str, Vec<(&'a str, &'a str)>> = FxHashMap::default();
            for l in stored {
                if by_key.contains_key(l.zoho_id.as_str()) || out.map.moodle(&l.zoho_id) != Some(l.moodle_id.as_str()) {
                    continue;
                }
                if let Some(e) = moodle.get(l.moodle_id.as_str()).and_then(|u| u.field_str("email")) {
                    orphans.entry(e).or_default().push((l.zoho_id.as_str(), l.moodle_id.as_str()));
                }
            }
            for r in rest {
                if out.blocked.contains(r.key.as_str()) {
                    continue;
                }
                let Some(email) = r.field_str("email") else {
                    out.blocked.insert(&r.key);
                    out.issues.push(issue(
                        entity,
                        r,
                        IssueKind::Incomplete,
                        "no email in Zoho: the Moodle account cannot be created; fill in the email".into(),
                    ));
                    continue;
                };
                if let Some(first) = owner.get(email).filter(|o| o.key != r.key) {
                    out.blocked.insert(&r.key);
                    let first_name = first.ref_str("name").unwrap_or("");
                    out.issues.push(issue(
                        entity,
                        r,
                        IssueKind::Duplicate,
                        format!(
                            "email {email} is also on Zoho record {} {first_name} (older, synced instead); \
                             correct one of them in Zoho",
                            first.key
                        ),
                    ));
                    continue;
                }
                match by_email.get(email).map(Vec::as_slice) {
                    Some(&[one]) if !claimed.contains(one) => {
                        pair(&mut out, claimed, &mut how, r, one, How::Email);
                    }
                    Some(many) if many.len() > 1 => {
                        ambiguous(
                            &mut out,
                            entity,
                            r,
                            format!(
                                "Moodle users {} all have email {email}; set the Moodle id in Zoho or give the \
                                 user the id number {}",
                                many.join(", "),
                                r.field_str("id_number").unwrap_or("(none)")
                            ),
                        );
                    }
                    _ => {
                        if let Some(&[(gone, mid)]) = orphans.get(email).map(Vec::as_slice) {
                            out.map.remove_zoho(gone);
                            out.map.insert(&r.key, mid);
                            how.insert(&r.key, (How::Email, r));
                        }
                    }
                }
            }
        }
    }
    finish(entity, out, how, moodle)
}

/// Pairings to record, and Moodle ids to write back where Zoho's is missing or wrong.
fn finish<'a>(
    entity: Entity,
    mut out: Linked<'a>,
    how: BTreeMap<&'a str, (How, &'a Record)>,
    moodle: &FxHashMap<&'a str, &'a Record>,
) -> Linked<'a> {
    for (zid, (how, r)) in how {
        let Some(mid) = out.map.moodle(zid) else { continue };
        let m = moodle.get(mid).copied();
        let held = r.ref_str("moodle_id");
        let (action, reason) = if held != Some(mid) {
            let why = match held {
                None => "Zoho has no Moodle id".to_string(),
                Some(other) => format!("Zoho's Moodle id {other} is wrong"),
            };
            (Action::WriteBack, format!("{why}; paired by {}", how_name(how)))
        } else if matches!(how, How::IdNumber | How::Email) {
            (Action::Link, format!("paired by {}", how_name(how)))
        } else {
            // Already recorded in Zoho's own Moodle id field: nothing to plan (baseline stores the local link
            // once the pair agrees), so a synced college diffs empty even before its first base.
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
            key: zid.to_string(),
            zoho_id: Some(zid.to_string()),
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

/// Sorts `v` by id in [`cmp_ids`] order. When every id is numeric (the usual case), each is parsed once rather
/// than at every comparison; the order is the same (both sorts are stable).
pub fn sort_by_id<T>(v: &mut [T], id: impl Fn(&T) -> &str) {
    if v.iter().all(|x| id(x).parse::<u128>().is_ok()) {
        v.sort_by_cached_key(|x| id(x).parse::<u128>().unwrap_or_default());
    } else {
        v.sort_by(|a, b| cmp_ids(id(a), id(b)));
    }
}

/// Pairs `r` with the Moodle record `mid`, found by the rule `by`.
fn pair<'a>(
    out: &mut Linked<'a>,
    claimed: &mut FxHashSet<&'a str>,
    how: &mut BTreeMap<&'a str, (How, &'a Record)>,
    r: &'a Record,
    mid: &'a str,
    by: How,
) {
    out.map.insert(&r.key, mid);
    claimed.insert(mid);
    how.insert(&r.key, (by, r));
}

/// Several Moodle records match `r` by one rule: it is blocked with an issue that names them.
fn ambiguous<'a>(out: &mut Linked<'a>, entity: Entity, r: &'a Record, message: String) {
    out.blocked.insert(&r.key);
    out.issues.push(issue(entity, r, IssueKind::Ambiguous, message));
}
