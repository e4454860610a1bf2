//! Moodle users: created (or found by id number and linked), updated, deleted.

use serde_json::{json, Value};

use super::{created, deleted_outcome, found, send_all, settle, users_by_idnumber};
use crate::apply::{skip, str_field, ApplyError, Ctx, Outcome};
use crate::mapping::person;
use crate::moodle::calls::USERS_PER_CALL;
use crate::reconcile::{Action, Op};

pub async fn users(ctx: &Ctx, ops: &[&Op]) -> Result<(), ApplyError> {
    if ops.is_empty() {
        return Ok(());
    }
    let creates: Vec<&Op> = ops.iter().copied().filter(|o| o.action == Action::Create).collect();
    let updates: Vec<&Op> = ops.iter().copied().filter(|o| o.action != Action::Create).collect();
    create_users(ctx, &creates).await?;
    update_users(ctx, &updates).await
}

async fn create_users(ctx: &Ctx, ops: &[&Op]) -> Result<(), ApplyError> {
    if ops.is_empty() {
        return Ok(());
    }
    // Identity first: a user that already exists (an earlier run died before recording it) is linked.
    let wanted: Vec<String> =
        ops.iter().filter_map(|o| str_field(&o.changes, "id_number")).map(str::to_string).collect();
    let existing = users_by_idnumber(ctx, wanted).await?;
    let mut linked = Vec::new();
    let mut to_create: Vec<&Op> = Vec::new();
    let mut rows = Vec::new();
    let mut refused = Vec::new();
    for op in ops {
        if let Some(id) = str_field(&op.changes, "id_number").and_then(|n| existing.get(n)) {
            linked.push((*op, *id));
            continue;
        }
        match person::moodle_user_create(&op.changes, &ctx.settings.accounts) {
            Ok(row) => {
                to_create.push(op);
                rows.push(Value::Object(row));
            }
            Err(e) => refused.push((*op, Outcome::Rejected { code: "incomplete".into(), message: e.to_string() })),
        }
    }
    ctx.finish(refused).await?;
    found(ctx, linked, "already in Moodle (found by id number): linked, not created again").await?;
    send_all(ctx, "core_user_create_users", "users", rows, USERS_PER_CALL, true, async |batch| {
        created(ctx, &to_create, batch, "id_number").await
    })
    .await
}

async fn update_users(ctx: &Ctx, ops: &[&Op]) -> Result<(), ApplyError> {
    let mut rows = Vec::new();
    let mut sendable = Vec::new();
    let mut missing = Vec::new();
    for op in ops {
        let Some(id) = op.moodle_id.as_deref().and_then(|m| m.parse::<i64>().ok()) else {
            missing.push(*op);
            continue;
        };
        let mut row = person::moodle_user_update(&op.changes);
        match op.action {
            Action::Suspend => {
                row.insert("suspended".into(), json!(1));
            }
            Action::Restore => {
                row.insert("suspended".into(), json!(0));
            }
            _ => {}
        }
        row.insert("id".into(), json!(id));
        rows.push(Value::Object(row));
        sendable.push(*op);
    }
    skip(ctx, &missing, "no Moodle user id").await?;
    send_all(ctx, "core_user_update_users", "users", rows, USERS_PER_CALL, false, async |batch| {
        settle(ctx, &sendable, batch).await
    })
    .await
}

/// Deletes users, only planned where `deletions.policy` says `delete`. `core_user_delete_users` is Moodle's own
/// soft delete (the row stays with `deleted` set; username, email and idnumber are mangled; enrolments go). A
/// batch is transactional, so a rejected id is found by bisecting it like any other write.
pub async fn delete_users(ctx: &Ctx, ops: &[&Op]) -> Result<(), ApplyError> {
    let mut rows = Vec::new();
    let mut sendable = Vec::new();
    let mut missing = Vec::new();
    for op in ops {
        match op.moodle_id.as_deref().and_then(|m| m.parse::<i64>().ok()) {
            Some(id) => {
                rows.push(json!(id));
                sendable.push(*op);
            }
            None => missing.push(*op),
        }
    }
    skip(ctx, &missing, "no Moodle user id").await?;
    send_all(ctx, "core_user_delete_users", "userids", rows, USERS_PER_CALL, false, async |batch| {
        ctx.finish(batch.iter().map(|(i, r)| (sendable[*i], deleted_outcome(r))).collect()).await
    })
    .await
}
