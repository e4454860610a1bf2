//! Moodle courses: the category they go in, created (or found by id number and linked), updated.

use serde_json::{json, Value};

use super::{courses_by_idnumber, created, found, moodle, outcome, send, send_all, settle, Row};
use crate::apply::{skip, ApplyError, Ctx, Outcome};
use crate::mapping::class;
use crate::moodle::calls::USERS_PER_CALL;
use crate::reconcile::{Action, Op};

/// The category new courses go into, by idnumber (`moodle.accounts.course_category_idnumber`); created if
/// missing.
async fn category(ctx: &Ctx) -> Result<Result<i64, Outcome>, ApplyError> {
    let m = moodle(ctx)?;
    let idnumber = ctx.settings.accounts.course_category_idnumber.clone();
    let find = |cats: &[Value]| {
        cats.iter()
            .find(|c| c.get("idnumber").and_then(Value::as_str) == Some(idnumber.as_str()))
            .and_then(|c| c.get("id").and_then(Value::as_i64))
    };
    if let Some(id) = find(&m.categories().await?) {
        return Ok(Ok(id));
    }
    let row = json!({"name": format!("zmsync ({idnumber})"), "idnumber": idnumber, "parent": 0});
    match send(m.clone(), "core_course_create_categories", "categories", vec![row], true).await.pop() {
        Some(Row::Ok(Some(id))) => Ok(Ok(id)),
        Some(Row::Unknown(_)) | Some(Row::Ok(None)) => match find(&m.categories().await?) {
            Some(id) => Ok(Ok(id)),
            None => Ok(Err(Outcome::Failed { message: "could not create the course category".into() })),
        },
        Some(r) => Ok(Err(outcome(&r, None))),
        None => Ok(Err(Outcome::Failed { message: "no answer creating the course category".into() })),
    }
}

pub async fn courses(ctx: &Ctx, ops: &[&Op]) -> Result<(), ApplyError> {
    if ops.is_empty() {
        return Ok(());
    }
    let creates: Vec<&Op> = ops.iter().copied().filter(|o| o.action == Action::Create).collect();
    let updates: Vec<&Op> = ops.iter().copied().filter(|o| o.action != Action::Create).collect();
    if !creates.is_empty() {
        match category(ctx).await? {
            Err(o) => ctx.finish_all(&creates, o).await?,
            Ok(categoryid) => create_courses(ctx, &creates, categoryid).await?,
        }
    }
    let mut rows = Vec::new();
    let mut sendable = Vec::new();
    let mut missing = Vec::new();
    for op in updates {
        let Some(id) = op.moodle_id.as_deref().and_then(|m| m.parse::<i64>().ok()) else {
            missing.push(op);
            continue;
        };
        let mut row = class::moodle_course_update(&op.changes);
        row.insert("id".into(), json!(id));
        rows.push(Value::Object(row));
        sendable.push(op);
    }
    skip(ctx, &missing, "no Moodle course id").await?;
    send_all(ctx, "core_course_update_courses", "courses", rows, USERS_PER_CALL, false, async |batch| {
        settle(ctx, &sendable, batch).await
    })
    .await
}

async fn create_courses(ctx: &Ctx, ops: &[&Op], categoryid: i64) -> Result<(), ApplyError> {
    let existing = courses_by_idnumber(ctx).await?;
    let mut linked = Vec::new();
    let mut to_create = Vec::new();
    let mut rows = Vec::new();
    let mut refused = Vec::new();
    for op in ops {
        if let Some(id) = existing.get(&op.key) {
            linked.push((*op, *id));
            continue;
        }
        match class::moodle_course_create(&op.key, &op.changes) {
            Ok(mut row) => {
                row.insert("categoryid".into(), json!(categoryid));
                to_create.push(*op);
                rows.push(Value::Object(row));
            }
            Err(e) => refused.push((*op, Outcome::Rejected { code: "incomplete".into(), message: e.to_string() })),
        }
    }
    ctx.finish(refused).await?;
    found(ctx, linked, "already in Moodle (found by course idnumber): linked, not created again").await?;
    send_all(ctx, "core_course_create_courses", "courses", rows, USERS_PER_CALL, true, async |batch| {
        created(ctx, &to_create, batch, "idnumber").await
    })
    .await
}
