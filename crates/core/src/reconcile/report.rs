//! Diff reports: one row per differing field, readable in a spreadsheet.
//!
//! Columns (fixed, in this order): run_id, entity, key, zoho_id, moodle_id, field, zoho_value, moodle_value,
//! base_value, action, reason. An op without fields (suspend after a deletion, unenrol, delete, link) is one
//! row with an empty field. Conflicts settled `report_only` appear with action `conflict`, issues with action
//! `issue`: the report shows everything that differs, not only what will be written.
//!
//! Spreadsheet safety: a value starting with `=`, `+`, `-`, `@`, a tab or a carriage return is prefixed with
//! `'` so that no cell is read as a formula (CSV injection). UTF-8 throughout; see [`write_csv`] on the BOM.

use std::io::Write;

use serde::Serialize;
use serde_json::Value;

use super::plan::{Op, Plan};
use crate::model::{Entity, Side};

pub const COLUMNS: [&str; 11] = [
    "run_id",
    "entity",
    "key",
    "zoho_id",
    "moodle_id",
    "field",
    "zoho_value",
    "moodle_value",
    "base_value",
    "action",
    "reason",
];

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub run_id: Option<i64>,
    pub entity: Entity,
    pub key: String,
    pub zoho_id: Option<String>,
    pub moodle_id: Option<String>,
    pub field: Option<String>,
    pub zoho_value: Option<String>,
    pub moodle_value: Option<String>,
    pub base_value: Option<String>,
    pub action: String,
    pub reason: String,
}

impl Row {
    fn cells(&self) -> [String; 11] {
        let o = |v: &Option<String>| v.clone().unwrap_or_default();
        [
            self.run_id.map(|r| r.to_string()).unwrap_or_default(),
            self.entity.name().to_string(),
            self.key.clone(),
            o(&self.zoho_id),
            o(&self.moodle_id),
            o(&self.field),
            o(&self.zoho_value),
            o(&self.moodle_value),
            o(&self.base_value),
            self.action.clone(),
            self.reason.clone(),
        ]
    }
}

/// A canonical value as a cell: null is empty, strings as they are.
pub fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Neutralises a cell a spreadsheet would evaluate (OWASP "CSV injection").
pub fn defuse(s: &str) -> String {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}"),
        _ => s.to_string(),
    }
}

/// The rows of a plan: ops, then report-only conflicts, then issues.
pub fn rows(plan: &Plan) -> Vec<Row> {
    let mut out = Vec::new();
    for op in &plan.ops {
        op_rows(plan.run_id, op, &mut out);
    }
    for c in plan.conflicts.iter().filter(|c| c.winner.is_none()) {
        out.push(Row {
            run_id: plan.run_id,
            entity: c.entity,
            key: c.key.clone(),
            zoho_id: c.zoho_id.clone(),
            moodle_id: c.moodle_id.clone(),
            field: Some(c.field.clone()),
            zoho_value: Some(cell(&c.zoho_value)),
            moodle_value: Some(cell(&c.moodle_value)),
            base_value: c.base_value.as_ref().map(cell),
            action: "conflict".into(),
            reason: "both sides changed it; conflicts.policy = report_only, nothing written".into(),
        });
    }
    for i in &plan.issues {
        out.push(Row {
            run_id: plan.run_id,
            entity: i.entity,
            key: i.key.clone(),
            zoho_id: i.zoho_id.clone(),
            moodle_id: i.moodle_id.clone(),
            field: None,
            zoho_value: None,
            moodle_value: None,
            base_value: None,
            action: "issue".into(),
            reason: format!("{}: {}", i.kind.name(), i.message),
        });
    }
    out
}

fn op_rows(run_id: Option<i64>, op: &Op, out: &mut Vec<Row>) {
    let base_row = Row {
        run_id,
        entity: op.entity,
        key: op.key.clone(),
        zoho_id: op.zoho_id.clone(),
        moodle_id: op.moodle_id.clone(),
        field: None,
        zoho_value: None,
        moodle_value: None,
        base_value: None,
        action: op.action.name().to_string(),
        reason: if op.conflict { format!("[conflict] {}", op.reason) } else { op.reason.clone() },
    };
    // A create lists what it sends; a removal has no fields worth a row each.
    if op.changes.is_empty() || (op.action.is_removal() && op.before.is_empty()) {
        out.push(base_row);
        return;
    }
    for (field, new) in &op.changes {
        let old = op.before.get(field).map(cell);
        let (zoho_value, moodle_value) = match op.target {
            Side::Moodle => (Some(cell(new)), old),
            Side::Zoho => (old, Some(cell(new))),
        };
        out.push(Row {
            field: Some(field.clone()),
            zoho_value,
            moodle_value,
            base_value: op.base.as_ref().map(|b| b.get(field).map(cell).unwrap_or_default()),
            ..base_row.clone()
        });
    }
}

/// Writes the rows as RFC 4180 CSV (the `csv` crate quotes what needs quoting), header first.
///
/// `bom`: Excel opens a CSV file by double-click in the system's legacy code page unless the file starts with
/// a UTF-8 byte-order mark, which garbles every accented name; LibreOffice and most CSV readers accept the BOM.
/// The command writes it for files (`--out`) and leaves it off on stdout, where another program reads.
pub fn write_csv<W: Write>(rows: &[Row], mut w: W, bom: bool) -> std::io::Result<()> {
    if bom {
        w.write_all("\u{feff}".as_bytes())?;
    }
    let mut csv = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(w);
    csv.write_record(COLUMNS)?;
    for r in rows {
        csv.write_record(r.cells().iter().map(|c| defuse(c)))?;
    }
    csv.flush()?;
    Ok(())
}

/// The report as JSON: `{"rows": [...], "summary": {...}}`.
pub fn to_json(plan: &Plan) -> Value {
    serde_json::json!({
        "run_id": plan.run_id,
        "rows": rows(plan),
        "summary": plan.counts,
        "conflicts": plan.conflicts.len(),
        "issues": plan.issues.len(),
        "guards": plan.guards,
    })
}

/// A human table for a terminal; changed values as an inline character diff (`[-old-]{+new+}`, or red/green
/// when `color`).
pub fn table(plan: &Plan, color: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for r in rows(plan) {
        let what = match (&r.field, r.action.as_str()) {
            (Some(f), _) => {
                let (from, to) = match target_of(plan, &r) {
                    Some(Side::Zoho) => (r.zoho_value.clone(), r.moodle_value.clone()),
                    _ => (r.moodle_value.clone(), r.zoho_value.clone()),
                };
                format!("{f}: {}", inline_diff(from.as_deref().unwrap_or(""), to.as_deref().unwrap_or(""), color))
            }
            (None, _) => String::new(),
        };
        let ids =
            format!("zoho {} / moodle {}", r.zoho_id.as_deref().unwrap_or("-"), r.moodle_id.as_deref().unwrap_or("-"));
        let _ = writeln!(
            out,
            "{:<12} {:<10} {:<30} {:<34} {}  ({})",
            r.entity.name(),
            r.action,
            r.key,
            ids,
            what,
            r.reason
        );
    }
    out
}

fn target_of(plan: &Plan, r: &Row) -> Option<Side> {
    plan.ops.iter().find(|o| o.key == r.key && o.entity == r.entity && o.action.name() == r.action).map(|o| o.target)
}

/// `old` → `new` as one string with the removed and added characters marked.
pub fn inline_diff(old: &str, new: &str, color: bool) -> String {
    use similar::{ChangeTag, TextDiff};
    let diff = TextDiff::from_chars(old, new);
    let mut out = String::new();
    // Runs of one kind are marked once: "[-ab-]", not "[-a-][-b-]".
    let mut run: Option<(ChangeTag, String)> = None;
    let flush = |out: &mut String, run: Option<(ChangeTag, String)>| match run {
        None => {}
        Some((ChangeTag::Equal, s)) => out.push_str(&s),
        Some((ChangeTag::Delete, s)) if color => out.push_str(&format!("\x1b[31;9m{s}\x1b[0m")),
        Some((ChangeTag::Insert, s)) if color => out.push_str(&format!("\x1b[32;1m{s}\x1b[0m")),
        Some((ChangeTag::Delete, s)) => out.push_str(&format!("[-{s}-]")),
        Some((ChangeTag::Insert, s)) => out.push_str(&format!("{{+{s}+}}")),
    };
    for change in diff.iter_all_changes() {
        match &mut run {
            Some((tag, s)) if *tag == change.tag() => s.push_str(change.value()),
            _ => {
                flush(&mut out, run.take());
                run = Some((change.tag(), change.value().to_string()));
            }
        }
    }
    flush(&mut out, run);
    out
}
