//! `zmsync history RECORD [--entity E]`: everything zmsync did to one record and its dependants (a student's
//! enrolments, grades, registrations and payments), newest first, from the journal — which keeps each op's
//! before-values, so every change reads as old → new.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::model::{Entity, Kind};
use crate::store::{JournalRow, Store, StoreError};

/// Who RECORD turned out to be.
#[derive(Debug, Clone, Serialize)]
pub struct Subject {
    /// The Zoho ids the history covers (several when an email is shared).
    pub zoho_ids: Vec<String>,
    /// How RECORD was understood: zoho id, email, id number, moodle id.
    pub matched_by: String,
}

/// One op in a record's history.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub run_id: i64,
    pub seq: i64,
    pub time: DateTime<Utc>,
    pub entity: String,
    pub action: String,
    pub target: String,
    pub key: String,
    pub outcome: String,
    /// The API's message (or why the op was skipped).
    pub message: Option<String>,
    /// Why it was planned.
    pub reason: Option<String>,
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub field: String,
    /// `None`: the journal did not keep it (an op journalled before before-values were kept).
    pub old: Option<Value>,
    pub new: Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct History {
    pub record: String,
    pub subject: Subject,
    pub events: Vec<Event>,
}

fn event(r: JournalRow) -> Event {
    let before = r.detail.before.as_ref();
    let changes = r
        .entry
        .changes
        .as_ref()
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| Change {
                    field: k.clone(),
                    old: before.map(|b| b.get(k).cloned().unwrap_or(Value::Null)),
                    new: v.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    Event {
        run_id: r.entry.run_id,
        seq: r.entry.seq,
        time: r.completed_at.unwrap_or(r.created_at),
        entity: r.entry.entity,
        action: r.entry.op,
        target: r.entry.target,
        key: r.entry.key,
        outcome: r.entry.outcome,
        message: r.entry.message,
        reason: r.detail.reason,
        changes,
    }
}

/// The Zoho ids of the people whose `field` equals `value` (case-insensitive).
fn people_by(store: &dyn Store, field: &str, value: &str) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    for k in [Kind::Student, Kind::Teacher] {
        for r in store.records(k)? {
            if r.field_str(field).is_some_and(|v| v.eq_ignore_ascii_case(value)) {
                out.push(r.key);
            }
        }
    }
    Ok(out)
}

/// What RECORD names: an email, a Zoho id the journal knows, an id number, or a Moodle user id.
pub fn resolve(store: &dyn Store, record: &str) -> Result<Option<Subject>, StoreError> {
    let record = record.trim();
    let found =
        |ids: Vec<String>, how: &str| (!ids.is_empty()).then(|| Subject { zoho_ids: ids, matched_by: how.into() });
    if record.contains('@') {
        return Ok(found(people_by(store, "email", record)?, "email"));
    }
    if !store.journal_history(&[record.to_string()], None, 1)?.is_empty() {
        return Ok(found(vec![record.to_string()], "zoho id"));
    }
    if let Some(s) = found(people_by(store, "id_number", record)?, "id number") {
        return Ok(Some(s));
    }
    let mut ids = Vec::new();
    for e in [Entity::Student, Entity::Teacher] {
        ids.extend(store.links(e)?.into_iter().filter(|l| l.moodle_id == record).map(|l| l.zoho_id));
    }
    Ok(found(ids, "moodle id"))
}

/// The history of RECORD, or `None` when nothing names it.
pub fn history(
    store: &dyn Store,
    record: &str,
    entity: Option<Entity>,
    limit: i64,
) -> Result<Option<History>, StoreError> {
    let Some(subject) = resolve(store, record)? else { return Ok(None) };
    let rows = store.journal_history(&subject.zoho_ids, entity.map(Entity::name), limit)?;
    Ok(Some(History { record: record.to_string(), subject, events: rows.into_iter().map(event).collect() }))
}

fn show(v: &Option<Value>) -> String {
    match v {
        None => "?".into(),
        Some(Value::Null) => "∅".into(),
        Some(Value::String(s)) => format!("{s:?}"),
        Some(v) => v.to_string(),
    }
}

/// One line per field changed (one per op that changes no field).
pub fn text(h: &History) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "history of {} ({} {}): {} ops, newest first",
        h.record,
        h.subject.matched_by,
        h.subject.zoho_ids.join(", "),
        h.events.len()
    );
    if h.events.is_empty() {
        out.push_str("zmsync never wrote to it (or the journal no longer holds those runs)\n");
        return out;
    }
    let _ = writeln!(
        out,
        "{:>5} {:<20} {:<12} {:<10} {:<7} {:<16} {:<40} {:<9} message",
        "run", "time (UTC)", "entity", "action", "target", "field", "old → new", "outcome"
    );
    for e in &h.events {
        let time = e.time.format("%Y-%m-%d %H:%M:%S").to_string();
        let msg = e.message.clone().or_else(|| e.reason.clone()).unwrap_or_default();
        let mut lines: Vec<(String, String)> = e
            .changes
            .iter()
            .map(|c| (c.field.clone(), format!("{} → {}", show(&c.old), show(&Some(c.new.clone())))))
            .collect();
        if lines.is_empty() {
            lines.push(("-".into(), e.key.clone()));
        }
        for (i, (field, change)) in lines.iter().enumerate() {
            let _ = writeln!(
                out,
                "{:>5} {:<20} {:<12} {:<10} {:<7} {:<16} {:<40} {:<9} {}",
                e.run_id,
                time,
                e.entity,
                e.action,
                e.target,
                field,
                change,
                e.outcome,
                if i == 0 { msg.as_str() } else { "" }
            );
        }
    }
    out
}
