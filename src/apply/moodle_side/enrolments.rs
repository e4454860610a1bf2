//! Enrolments: enrol (its timing confirmed after a commit error), unenrol.

use serde_json::{json, Map, Value};

use super::{moodle, outcome, send_all, settle, Row};
use crate::apply::{ref_i64, skip, ApplyError, Ctx, Outcome};
use crate::mapping::enrollment;
use crate::model::{Entity, Fields, Kind};
use crate::reconcile::{Action, Op};

/// The person entity and its ref name for an enrolment-like op.
fn person_of(op: &Op) -> (Entity, &'static str) {
    if op.entity == Entity::Teaching {
        (Entity::Teacher, "teacher_zoho_id")
    } else {
        (Entity::Student, "student_zoho_id")
    }
}

/// The whole enrolment to send: Moodle's enrol call is an upsert that resets what it is not given.
fn enrol_fields(ctx: &Ctx, op: &Op) -> Fields {
    let mut fields = match op.refs.get("fields") {
        Some(Value::Object(m)) => m.clone().into_iter().collect(),
        _ => op
            .moodle_id
            .as_deref()
            .and_then(|k| ctx.record(Kind::MoodleEnrolment, k))
            .map(|r| r.fields.clone())
            .unwrap_or_default(),
    };
    fields.extend(op.changes.clone());
    if op.action == Action::Suspend {
        fields.insert("active".into(), json!(false));
    }
    fields
}

pub async fn enrolments(ctx: &Ctx, ops: &[&Op]) -> Result<(), ApplyError> {
    let mut rows = Vec::new();
    let mut sendable = Vec::new();
    let mut waiting = Vec::new();
    for op in ops {
        let (pe, pref) = person_of(op);
        let user = ref_i64(ctx, op, "userid", pe, pref);
        let course = ref_i64(ctx, op, "courseid", Entity::Class, "class_zoho_id");
        let role = op.refs.get("roleid").and_then(Value::as_i64);
        let (Some(u), Some(c), Some(r)) = (user, course, role) else {
            waiting.push(*op);
            continue;
        };
        rows.push(Value::Object(enrollment::moodle_enrol(r, u, c, &enrol_fields(ctx, op))));
        sendable.push(*op);
    }
    skip(ctx, &waiting, "its user or course does not exist in Moodle (not created in this run)").await?;
    let ids: Vec<Option<String>> =
        rows.iter().map(|r| Some(format!("{}:{}", r.get("courseid")?, r.get("userid")?))).collect();
    // Batches Moodle saved before raising (no mail for the welcome messages) are confirmed by one read-back of
    // their courses at the end, not bisected.
    let mut committed: Vec<(usize, String)> = Vec::new();
    send_all(ctx, "enrol_manual_enrol_users", "enrolments", rows, 200, false, async |batch| {
        let mut now = Vec::with_capacity(batch.len());
        for (i, r) in batch {
            match r {
                Row::Committed(code) => committed.push((i, code)),
                r => now.push((sendable[i], outcome(&r, ids[i].clone()))),
            }
        }
        ctx.finish(now).await
    })
    .await?;
    confirm_committed(ctx, &sendable, &ids, committed).await
}

/// Reads back the enrolments of rows Moodle saved before raising, in one call for all their courses: each found
/// is applied with the warning, each missing failed (the next run sends it again).
async fn confirm_committed(
    ctx: &Ctx,
    ops: &[&Op],
    ids: &[Option<String>],
    committed: Vec<(usize, String)>,
) -> Result<(), ApplyError> {
    if committed.is_empty() {
        return Ok(());
    }
    tracing::warn!(
        rows = committed.len(),
        "Moodle saved enrolments and then raised \"{}\": outgoing mail is not set up for its welcome messages",
        committed[0].1
    );
    let key = |courseid: &Value, userid: &Value| format!("{courseid}:{userid}");
    let mut courses: Vec<i64> =
        committed.iter().filter_map(|(i, _)| ids[*i].as_deref()?.split(':').next()?.parse().ok()).collect();
    courses.sort_unstable();
    courses.dedup();
    let found: std::collections::HashSet<String> = match moodle(ctx)?.enrolments(&courses).await {
        Ok((rows, _)) => rows
            .iter()
            .map(|r| key(r.get("courseid").unwrap_or(&Value::Null), r.get("userid").unwrap_or(&Value::Null)))
            .collect(),
        Err(e) => {
            let message = format!("Moodle raised \"{}\" after saving, and reading it back failed: {e}", committed[0].1);
            let ops: Vec<&Op> = committed.iter().map(|(i, _)| ops[*i]).collect();
            return ctx.finish_all(&ops, Outcome::Failed { message }).await;
        }
    };
    let outcomes = committed
        .into_iter()
        .map(|(i, code)| {
            let id = ids[i].clone();
            let o = if id.as_deref().is_some_and(|k| found.contains(k)) {
                outcome(&Row::Committed(code), id)
            } else {
                Outcome::Failed { message: format!("Moodle raised \"{code}\" and the enrolment is not there") }
            };
            (ops[i], o)
        })
        .collect();
    ctx.finish(outcomes).await
}

pub async fn unenrol(ctx: &Ctx, ops: &[&Op]) -> Result<(), ApplyError> {
    let mut rows = Vec::new();
    let mut sendable = Vec::new();
    let mut missing = Vec::new();
    for op in ops {
        let (pe, pref) = person_of(op);
        match (ref_i64(ctx, op, "userid", pe, pref), ref_i64(ctx, op, "courseid", Entity::Class, "class_zoho_id")) {
            (Some(u), Some(c)) => {
                let mut row = Map::new();
                row.insert("userid".into(), json!(u));
                row.insert("courseid".into(), json!(c));
                if let Some(r) = op.refs.get("roleid").and_then(Value::as_i64) {
                    row.insert("roleid".into(), json!(r));
                }
                rows.push(Value::Object(row));
                sendable.push(*op);
            }
            _ => missing.push(*op),
        }
    }
    skip(ctx, &missing, "no Moodle user or course id").await?;
    send_all(ctx, "enrol_manual_unenrol_users", "enrolments", rows, 200, false, async |batch| {
        settle(ctx, &sendable, batch).await
    })
    .await
}
