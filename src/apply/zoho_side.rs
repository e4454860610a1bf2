//! The Zoho phases: Moodle ids written back (Student_Moodle_ID, Teacher_Moodle_ID, Moodle_Course_ID), and
//! enrolments and grades that came from Moodle. Every write sends `trigger: []` (the client does), so our own
//! writes do not fire the college's workflow rules back at us.
//!
//! Creates are upserts on a deterministic `Name` (`{Student_ID_Number}-{Class_Short_Name}`) with
//! `duplicate_check_fields: ["Name"]`: a create repeated after a crash updates the record it made before.

use serde_json::{json, Map, Value};

use super::{str_field, ApplyError, Ctx, Outcome};
use crate::mapping::{enrollment, grade, ZohoNames};
use crate::model::{Entity, Kind, Side};
use crate::reconcile::{Action, Op};
use crate::store::Link;
use crate::zoho::{self, RecordOutcome, WriteOp};

fn client(ctx: &Ctx) -> Result<&zoho::Client, ApplyError> {
    ctx.zoho.as_ref().ok_or_else(|| {
        ApplyError::Zoho(zoho::ZohoError::Config(crate::credentials::ClientConfigError::Invalid {
            origin: "apply".into(),
            message: "no Zoho client: set ZOHO_CLIENT_ID, ZOHO_CLIENT_SECRET and ZOHO_REFRESH_TOKEN".into(),
        }))
    })
}

fn outcome(r: &RecordOutcome) -> Outcome {
    match r {
        RecordOutcome::Ok { id, .. } => Outcome::applied(Some(id.clone())),
        RecordOutcome::Rejected { code, message, .. } => {
            Outcome::Rejected { code: code.clone(), message: message.clone() }
        }
        RecordOutcome::Unknown { reason } => Outcome::Failed { message: format!("outcome unknown: {reason}") },
    }
}

/// The configured API name of a canonical field, `Name` for the record name.
fn api<'a>(names: &'a ZohoNames, canonical: &'a str) -> &'a str {
    match (canonical, names.get(canonical)) {
        ("name", "name") => "Name",
        (_, n) => n,
    }
}

/// Planned write-backs (pairs matched by an earlier run or by id number) and those of what this run created.
pub async fn write_backs(ctx: &Ctx, planned: &[&Op]) -> Result<(), ApplyError> {
    let extra = ctx.take_write_backs();
    if planned.is_empty() && extra.is_empty() {
        return Ok(());
    }
    let z = client(ctx)?;
    for entity in [Entity::Student, Entity::Teacher, Entity::Class] {
        let ops: Vec<&Op> = planned.iter().copied().filter(|o| o.entity == entity).collect();
        let made: Vec<&(Entity, String, String)> = extra.iter().filter(|(e, _, _)| *e == entity).collect();
        if ops.is_empty() && made.is_empty() {
            continue;
        }
        let names = ZohoNames::for_kind(&ctx.settings, entity.kinds().0);
        let field = names.get("moodle_id").to_string();
        let row = |zid: &str, mid: &str| {
            let mut m = Map::new();
            m.insert("id".into(), json!(zid));
            m.insert(field.clone(), json!(mid));
            m
        };
        let mut rows: Vec<Map<String, Value>> = Vec::new();
        let mut planned_ops = Vec::new();
        for op in &ops {
            if let (Some(z), Some(m)) = (&op.zoho_id, written_id(op)) {
                rows.push(row(z, &m));
                planned_ops.push(*op);
            }
        }
        for (_, zid, mid) in &made {
            rows.push(row(zid, mid));
        }
        let results = match z.write(names.module(), WriteOp::Update, rows).await {
            Ok(r) => r,
            Err(e) => {
                let failed = Outcome::Failed { message: format!("{e}; the next run writes it back") };
                ctx.finish_all(&planned_ops, failed.clone()).await?;
                for (_, zid, _) in &made {
                    ctx.finish_unplanned(entity, Action::WriteBack, Side::Zoho, zid, failed.clone()).await?;
                }
                continue;
            }
        };
        let (for_planned, for_made) = results.split_at(planned_ops.len().min(results.len()));
        ctx.wrote_back(
            entity,
            planned_ops
                .iter()
                .zip(for_planned)
                .filter(|(_, r)| r.is_ok())
                .filter_map(|(o, _)| Some((o.zoho_id.clone()?, written_id(o)?)))
                .chain(
                    made.iter().zip(for_made).filter(|(_, r)| r.is_ok()).map(|((_, z, m), _)| (z.clone(), m.clone())),
                )
                .collect::<Vec<_>>(),
        );
        ctx.link(
            planned_ops
                .iter()
                .zip(for_planned)
                .filter(|(o, r)| r.is_ok() && !written_id(o).unwrap_or_default().is_empty())
                .filter_map(|(o, _)| {
                    Some(Link { entity, zoho_id: o.zoho_id.clone()?, moodle_id: o.moodle_id.clone()? })
                })
                .collect(),
        )
        .await?;
        ctx.finish(planned_ops.iter().copied().zip(for_planned.iter().map(outcome)).collect()).await?;
        for ((_, zid, mid), r) in made.iter().zip(for_made) {
            if !r.is_ok() {
                // The link is stored; the next run sees the missing Moodle id in Zoho and plans the write-back.
                // Journalled (rejected or failed) so the summary, the CSV and the exit code tell the operator.
                let o = match outcome(r) {
                    Outcome::Rejected { code, message } => Outcome::Rejected {
                        code,
                        message: format!("write-back of Moodle id {mid}: {message}; the next run writes it back"),
                    },
                    o => Outcome::Failed {
                        message: format!(
                            "write-back of Moodle id {mid}: {}; the next run writes it back",
                            o.message().unwrap_or_default()
                        ),
                    },
                };
                ctx.finish_unplanned(entity, Action::WriteBack, Side::Zoho, zid, o).await?;
            }
        }
        for (_, zid, mid) in made.iter().skip(for_made.len()) {
            let o = Outcome::Failed { message: format!("write-back of Moodle id {mid}: no answer for it") };
            ctx.finish_unplanned(entity, Action::WriteBack, Side::Zoho, zid, o).await?;
        }
    }
    Ok(())
}

/// The Moodle id a write-back writes: the op's Moodle id, or the value in its `changes` (a revert sets back
/// what Zoho had, or clears it with "").
fn written_id(op: &Op) -> Option<String> {
    match op.changes.get("moodle_id") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) => Some(String::new()),
        _ => op.moodle_id.clone(),
    }
}

/// The deterministic record name of an enrolment or grade: `{Student_ID_Number}-{Class_Short_Name}`.
fn record_name(ctx: &Ctx, student: &str, class: &str) -> Option<String> {
    let s = ctx.record(Kind::Student, student).and_then(|r| str_field(&r.fields, "id_number"))?;
    let c = ctx.record(Kind::Class, class).and_then(|r| str_field(&r.fields, "short_name"))?;
    Some(format!("{s}-{c}"))
}

fn lookup(id: &str) -> Value {
    json!({ "id": id })
}

/// Enrolments or grades from Moodle: creates as upserts on `Name`, updates by id.
pub async fn records(ctx: &Ctx, ops: &[&Op]) -> Result<(), ApplyError> {
    let Some(first) = ops.first() else { return Ok(()) };
    let entity = first.entity;
    let z = client(ctx)?;
    let names = ZohoNames::for_kind(&ctx.settings, entity.kinds().0);
    let (mut creates, mut create_ops) = (Vec::new(), Vec::new());
    let (mut updates, mut update_ops) = (Vec::new(), Vec::new());
    let (mut deletes, mut delete_ops) = (Vec::new(), Vec::new());
    let mut refused = Vec::new();
    for op in ops {
        let r = &op.refs;
        let status = r.get("status").and_then(Value::as_str);
        let fields = match entity {
            Entity::Grade => grade::zoho_fields(&names, &op.changes, r.get("graded_date").unwrap_or(&Value::Null)),
            _ => enrollment::zoho_fields(&names, &op.changes, status),
        };
        if op.action == Action::Create {
            let (Some(s), Some(c)) =
                (r.get("student_zoho_id").and_then(Value::as_str), r.get("class_zoho_id").and_then(Value::as_str))
            else {
                refused.push((*op, Outcome::Skipped { reason: "no Zoho student or class for it".into() }));
                continue;
            };
            let Some(name) = record_name(ctx, s, c) else {
                refused.push((
                    *op,
                    Outcome::Skipped { reason: "the student's id number or the class's short name is missing".into() },
                ));
                continue;
            };
            let mut row = fields;
            row.insert(api(&names, "name").into(), json!(name));
            row.insert(names.get("student").into(), lookup(s));
            row.insert(names.get("class").into(), lookup(c));
            if let Some(u) = r.get("unit_id").and_then(Value::as_str).filter(|u| !u.is_empty()) {
                if entity == Entity::Grade {
                    row.insert(names.get("unit").into(), lookup(u));
                }
            }
            creates.push(row);
            create_ops.push(*op);
        } else {
            let Some(id) = op.zoho_id.clone() else {
                refused.push((*op, Outcome::Skipped { reason: "no Zoho id".into() }));
                continue;
            };
            if op.action == Action::Delete {
                // Only a revert plans it: the undoing of a record zmsync created (Zoho keeps it in its recycle bin).
                deletes.push(id);
                delete_ops.push(*op);
                continue;
            }
            let mut row = fields;
            row.insert("id".into(), json!(id));
            updates.push(row);
            update_ops.push(*op);
        }
    }
    ctx.finish(refused).await?;
    let module = names.module().to_string();
    for (ids, mine) in deletes.chunks(zoho::write::MAX_RECORDS).zip(delete_ops.chunks(zoho::write::MAX_RECORDS)) {
        match z.delete(&module, ids).await {
            Ok(results) => ctx.finish(mine.iter().copied().zip(results.iter().map(outcome)).collect()).await?,
            Err(e) => ctx.finish_all(mine, Outcome::Failed { message: e.to_string() }).await?,
        }
    }
    let upsert = WriteOp::Upsert { duplicate_check_fields: vec![api(&names, "name").to_string()] };
    for (op, rows, mine) in [(upsert, creates, create_ops), (WriteOp::Update, updates, update_ops)] {
        if rows.is_empty() {
            continue;
        }
        // ≤100 per call, batches concurrently under the client's limiter; journalled per call's worth.
        for (chunk, chunk_ops) in
            rows.chunks(zoho::write::MAX_RECORDS * 4).zip(mine.chunks(zoho::write::MAX_RECORDS * 4))
        {
            match z.write(&module, op.clone(), chunk.to_vec()).await {
                Ok(results) => {
                    let outcomes: Vec<(&Op, Outcome)> =
                        chunk_ops.iter().copied().zip(results.iter().map(outcome)).collect();
                    if entity == Entity::Grade {
                        super::moodle_side::rows_of_new_grades(ctx, &outcomes).await;
                    }
                    ctx.finish(outcomes).await?
                }
                Err(e) => ctx.finish_all(chunk_ops, Outcome::Failed { message: e.to_string() }).await?,
            }
        }
    }
    Ok(())
}
