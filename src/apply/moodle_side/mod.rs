//! The Moodle phases: category, users, courses, enrolments, plugin rows, removals.
//!
//! Batches are spawned together; the Moodle client's own semaphore bounds how many are in flight (a PHP site
//! has few workers). Outcomes are journalled as each batch completes.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use serde_json::{json, Value};
use tokio::task::JoinSet;

use super::{str_field, ApplyError, Ctx, Outcome};
use crate::moodle::{self, MoodleError, Replay};
use crate::reconcile::Op;
use crate::store::Link;

mod courses;
mod enrolments;
mod rows;
mod users;

pub use courses::courses;
pub use enrolments::{confirm_committed, enrolments, unenrol, ToConfirm};
pub use rows::{delete_rows, plugin_rows, rows_of_new_grades};
pub use users::{delete_users, users};

/// What Moodle did with one row of a write.
#[derive(Debug, Clone)]
enum Row {
    /// Applied; the id Moodle gave a created row.
    Ok(Option<i64>),
    Rejected(String, String),
    /// Moodle saved the batch, then raised this errorcode (`moodle::raised_after_commit`): applied, with a
    /// warning, once a read-back confirms it.
    Committed(String),
    /// Sent, answer lost: check identity before doing anything else.
    Unknown(String),
    Failed(String),
}

type RowsFuture = Pin<Box<dyn Future<Output = Vec<Row>> + Send>>;

/// Sends `rows` to `function` under `list`. A Moodle exception on a batch of several rows (create calls are
/// all-or-nothing) bisects it, so each rejected row is named with Moodle's errorcode and the
/// others still land: O(k log n) calls for k bad rows instead of one per row.
fn send(m: moodle::Client, function: &'static str, list: &'static str, rows: Vec<Value>, create: bool) -> RowsFuture {
    Box::pin(async move {
        let replay = if create { Replay::Unsafe } else { Replay::Safe };
        let n = rows.len();
        match m.call_with(function, &json!({ list: &rows }), replay, &[]).await {
            Ok(v) if create => {
                let ids: Vec<Option<i64>> =
                    (0..n).map(|i| v.get(i).and_then(|c| c.get("id")).and_then(Value::as_i64)).collect();
                ids.into_iter()
                    .map(|id| match id {
                        Some(id) => Row::Ok(Some(id)),
                        None => Row::Unknown("Moodle answered fewer created rows than sent".into()),
                    })
                    .collect()
            }
            Ok(v) => {
                // Per-row problems of update and enrol calls come back as warnings naming the item's id.
                let mut out = vec![Row::Ok(None); n];
                for w in v.get("warnings").and_then(Value::as_array).into_iter().flatten() {
                    let item = w.get("itemid").and_then(Value::as_i64);
                    let code = w.get("warningcode").and_then(Value::as_str).unwrap_or("warning").to_string();
                    let msg = w.get("message").and_then(Value::as_str).unwrap_or("").to_string();
                    for (i, r) in rows.iter().enumerate() {
                        let id = r.get("id").or_else(|| r.get("userid")).and_then(Value::as_i64);
                        if item.is_some() && id == item {
                            out[i] = Row::Rejected(code.clone(), msg.clone());
                        }
                    }
                }
                out
            }
            // Saved, then an exception (no mail for the welcome message): not a rejection, never bisected.
            Err(MoodleError::Exception { errorcode, message, .. })
                if moodle::raised_after_commit(&errorcode, &message) =>
            {
                vec![Row::Committed(errorcode); n]
            }
            Err(MoodleError::Exception { .. }) if n > 1 => {
                let mut right = rows;
                let left = right.drain(..n / 2).collect::<Vec<_>>();
                let mut a = send(m.clone(), function, list, left, create).await;
                a.extend(send(m, function, list, right, create).await);
                a
            }
            Err(MoodleError::Exception { errorcode, message, .. }) => vec![Row::Rejected(errorcode, message)],
            Err(MoodleError::UnknownOutcome { message, .. }) => vec![Row::Unknown(message); n],
            Err(e) => vec![Row::Failed(e.to_string()); n],
        }
    })
}

/// Splits `rows` under max_input_vars and sends every batch; answers `(index in rows, result)` per row.
async fn send_all(
    ctx: &Ctx,
    function: &'static str,
    list: &'static str,
    rows: Vec<Value>,
    max_rows: usize,
    create: bool,
    mut on_batch: impl AsyncFnMut(Vec<(usize, Row)>) -> Result<(), ApplyError>,
) -> Result<(), ApplyError> {
    let m = moodle(ctx)?;
    let mut set = JoinSet::new();
    for r in m.batcher(function, max_rows).split(&rows, 0)? {
        let start = r.start;
        let batch = rows[r].to_vec();
        let m = m.clone();
        set.spawn(async move { (start, send(m, function, list, batch, create).await) });
    }
    // Each batch is settled (linked, journalled) as soon as it completes: a run killed mid-phase keeps it.
    while let Some(joined) = set.join_next().await {
        let Ok((start, results)) = joined else { continue };
        on_batch(results.into_iter().enumerate().map(|(i, r)| (start + i, r)).collect()).await?;
    }
    Ok(())
}

fn moodle(ctx: &Ctx) -> Result<&moodle::Client, ApplyError> {
    ctx.moodle.as_ref().ok_or_else(|| {
        ApplyError::Moodle(MoodleError::SiteNotReady { problems: vec!["no Moodle client configured".into()] })
    })
}

fn outcome(row: &Row, created: Option<String>) -> Outcome {
    match row {
        Row::Ok(_) => Outcome::applied(created),
        Row::Rejected(code, message) => Outcome::Rejected { code: code.clone(), message: message.clone() },
        Row::Committed(code) => Outcome::Applied { target_id: created, note: Some(after_commit_note(code)) },
        Row::Unknown(m) => Outcome::Failed { message: format!("outcome unknown: {m}") },
        Row::Failed(m) => Outcome::Failed { message: m.clone() },
    }
}

/// The report's warning for a row Moodle saved before raising `code`.
fn after_commit_note(code: &str) -> String {
    if code == moodle::MESSAGE_NOT_SENT {
        format!(
            "warning: saved; Moodle then raised \"{code}\" (its course welcome message could not be mailed: set up \
             outgoing mail, or turn welcome messages off; see docs/moodle-setup.md)"
        )
    } else {
        format!("warning: saved; Moodle then raised \"{code}\"")
    }
}

/// Journals results batch by batch as they come from `send_all`.
async fn settle(ctx: &Ctx, ops: &[&Op], results: Vec<(usize, Row)>) -> Result<(), ApplyError> {
    ctx.finish(results.iter().map(|(i, r)| (ops[*i], outcome(r, ops[*i].moodle_id.clone()))).collect()).await
}

// ---- identity: users and courses found by id number, or created ---------------------------------------

/// Users by id number: `idnumber → id`.
async fn users_by_idnumber(ctx: &Ctx, idnumbers: Vec<String>) -> Result<HashMap<String, i64>, ApplyError> {
    if idnumbers.is_empty() {
        return Ok(HashMap::new());
    }
    let found = moodle(ctx)?.users_by_field("idnumber", &idnumbers).await?;
    Ok(found.iter().filter_map(|u| Some((u.get("idnumber")?.as_str()?.to_string(), u.get("id")?.as_i64()?))).collect())
}

/// Links, queues the write-back and journals objects found by identity.
async fn found(ctx: &Ctx, pairs: Vec<(&Op, i64)>, note: &str) -> Result<(), ApplyError> {
    if pairs.is_empty() {
        return Ok(());
    }
    ctx.link(
        pairs
            .iter()
            .map(|(op, id)| Link { entity: op.entity, zoho_id: op.key.clone(), moodle_id: id.to_string() })
            .collect(),
    )
    .await?;
    for (op, id) in &pairs {
        ctx.queue_write_back(op.entity, &op.key, &id.to_string());
    }
    ctx.finish(
        pairs
            .into_iter()
            .map(|(op, id)| (op, Outcome::Applied { target_id: Some(id.to_string()), note: Some(note.to_string()) }))
            .collect(),
    )
    .await
}

/// Settles create results: created rows are linked and queued for write-back; rows whose outcome is unknown
/// are looked up by identity (never re-sent); rejected rows are reported.
async fn created(ctx: &Ctx, ops: &[&Op], results: Vec<(usize, Row)>, identity: &str) -> Result<(), ApplyError> {
    let mut made = Vec::new();
    let mut unknown = Vec::new();
    let mut other = Vec::new();
    for (i, r) in results {
        match r {
            Row::Ok(Some(id)) => made.push((ops[i], id)),
            Row::Unknown(_) | Row::Ok(None) => unknown.push(ops[i]),
            r => other.push((ops[i], outcome(&r, None))),
        }
    }
    ctx.finish(other).await?;
    found(ctx, made, "").await?;
    if unknown.is_empty() {
        return Ok(());
    }
    let (entity_is_user, keys): (bool, Vec<String>) = if identity == "id_number" {
        (true, unknown.iter().filter_map(|o| str_field(&o.changes, "id_number")).map(str::to_string).collect())
    } else {
        (false, unknown.iter().map(|o| o.key.clone()).collect())
    };
    let existing = if entity_is_user { users_by_idnumber(ctx, keys).await? } else { courses_by_idnumber(ctx).await? };
    let mut again = Vec::new();
    let mut lost = Vec::new();
    for op in unknown {
        let k =
            if entity_is_user { str_field(&op.changes, "id_number").unwrap_or("").to_string() } else { op.key.clone() };
        match existing.get(&k) {
            Some(id) => again.push((op, *id)),
            None => lost.push((
                op,
                Outcome::Failed {
                    message: "the create's answer was lost and Moodle has no such record: the next run creates it"
                        .into(),
                },
            )),
        }
    }
    found(ctx, again, "the create's answer was lost; found by identity and linked").await?;
    ctx.finish(lost).await
}

async fn courses_by_idnumber(ctx: &Ctx) -> Result<HashMap<String, i64>, ApplyError> {
    let all = moodle(ctx)?.courses().await?;
    Ok(all
        .iter()
        .filter_map(|c| {
            let idn = c.get("idnumber")?.as_str().filter(|s| !s.is_empty())?;
            Some((idn.to_string(), c.get("id")?.as_i64()?))
        })
        .collect())
}

/// A user Moodle no longer knows (a retried call whose first attempt landed, or an admin who deleted it by hand)
/// is where the delete wanted it: gone.
fn deleted_outcome(row: &Row) -> Outcome {
    match row {
        Row::Rejected(code, _) if code == "invaliduser" || code == "invalidrecordunknown" => Outcome::applied(None),
        r => outcome(r, None),
    }
}
