//! The Moodle phases: category, users, courses, enrolments, plugin rows, removals.
//!
//! Batches are spawned together; the Moodle client's own semaphore bounds how many are in flight (a PHP site
//! has few workers). Outcomes are journalled as each batch completes.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use serde_json::{json, Map, Value};
use tokio::task::JoinSet;

use super::{ref_i64, str_field, ApplyError, Ctx, Outcome};
use crate::mapping::{class, dashboard, enrollment, person};
use crate::model::{Entity, Fields, Kind};
use crate::moodle::{self, batch::Batcher, calls::USERS_PER_CALL, MoodleError, Replay};
use crate::reconcile::{Action, Op};
use crate::store::Link;

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
/// all-or-nothing, reference §2.4) bisects it, so each rejected row is named with Moodle's errorcode and the
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

// ---- users -----------------------------------------------------------------------------------------------

pub async fn users(ctx: &Ctx, ops: &[&Op]) -> Result<(), ApplyError> {
    if ops.is_empty() {
        return Ok(());
    }
    let creates: Vec<&Op> = ops.iter().copied().filter(|o| o.action == Action::Create).collect();
    let updates: Vec<&Op> = ops.iter().copied().filter(|o| o.action != Action::Create).collect();
    create_users(ctx, &creates).await?;
    update_users(ctx, &updates).await
}

/// Users by id number: `idnumber → id`.
async fn users_by_idnumber(ctx: &Ctx, idnumbers: Vec<String>) -> Result<HashMap<String, i64>, ApplyError> {
    if idnumbers.is_empty() {
        return Ok(HashMap::new());
    }
    let found = moodle(ctx)?.users_by_field("idnumber", &idnumbers).await?;
    Ok(found.iter().filter_map(|u| Some((u.get("idnumber")?.as_str()?.to_string(), u.get("id")?.as_i64()?))).collect())
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
    super::skip(ctx, &missing, "no Moodle user id").await?;
    send_all(ctx, "core_user_update_users", "users", rows, USERS_PER_CALL, false, async |batch| {
        settle(ctx, &sendable, batch).await
    })
    .await
}

// ---- courses ---------------------------------------------------------------------------------------------

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
    super::skip(ctx, &missing, "no Moodle course id").await?;
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

// ---- enrolments ------------------------------------------------------------------------------------------

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

/// Enrolments Moodle saved before raising (no mail for the welcome messages), to be confirmed by one read-back
/// of their courses ([`confirm_committed`]): each op (owned, so the read-back can overlap the next chunk's
/// sends), its `courseid:userid` and the errorcode Moodle raised.
#[derive(Default)]
pub struct ToConfirm(Vec<(Op, Option<String>, String)>);

/// Sends the enrolments; every outcome known is journalled as its batch completes. Batches Moodle saved before
/// raising are not bisected: they come back for [`confirm_committed`].
pub async fn enrolments(ctx: &Ctx, ops: &[&Op]) -> Result<ToConfirm, ApplyError> {
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
    super::skip(ctx, &waiting, "its user or course does not exist in Moodle (not created in this run)").await?;
    let ids: Vec<Option<String>> =
        rows.iter().map(|r| Some(format!("{}:{}", r.get("courseid")?, r.get("userid")?))).collect();
    let m = moodle(ctx)?;
    let per_call = even_rows(|max| m.batcher(ENROL, max), &rows, 200)?;
    let mut committed = ToConfirm::default();
    send_all(ctx, ENROL, "enrolments", rows, per_call, false, async |batch| {
        let mut now = Vec::with_capacity(batch.len());
        for (i, r) in batch {
            match r {
                Row::Committed(code) => committed.0.push((sendable[i].clone(), ids[i].clone(), code)),
                r => now.push((sendable[i], outcome(&r, ids[i].clone()))),
            }
        }
        ctx.finish(now).await
    })
    .await?;
    Ok(committed)
}

const ENROL: &str = "enrol_manual_enrol_users";

/// Rows per call for `rows`: no more calls than `max` rows a call makes, sized evenly, so the last round of calls
/// on the site's workers is as long as the others instead of one small call with the other workers idle.
fn even_rows(batcher: impl Fn(usize) -> Batcher, rows: &[Value], max: usize) -> Result<usize, MoodleError> {
    let calls = batcher(max).split(rows, 0)?.len();
    if calls <= 1 {
        return Ok(max);
    }
    let even = rows.len().div_ceil(calls);
    Ok(if batcher(even).split(rows, 0)?.len() <= calls { even } else { max })
}

/// Reads back the enrolments of rows Moodle saved before raising, in one call for all their courses: each found
/// is applied with the warning, each missing failed (the next run sends it again).
pub async fn confirm_committed(ctx: &Ctx, committed: ToConfirm) -> Result<(), ApplyError> {
    let committed = committed.0;
    if committed.is_empty() {
        return Ok(());
    }
    tracing::warn!(
        rows = committed.len(),
        "Moodle saved enrolments and then raised \"{}\": outgoing mail is not set up for its welcome messages",
        committed[0].2
    );
    let key = |courseid: &Value, userid: &Value| format!("{courseid}:{userid}");
    let mut courses: Vec<i64> =
        committed.iter().filter_map(|(_, id, _)| id.as_deref()?.split(':').next()?.parse().ok()).collect();
    courses.sort_unstable();
    courses.dedup();
    let found: std::collections::HashSet<String> = match moodle(ctx)?.enrolments(&courses).await {
        Ok((rows, _)) => rows
            .iter()
            .map(|r| key(r.get("courseid").unwrap_or(&Value::Null), r.get("userid").unwrap_or(&Value::Null)))
            .collect(),
        Err(e) => {
            let message = format!("Moodle raised \"{}\" after saving, and reading it back failed: {e}", committed[0].2);
            let ops: Vec<&Op> = committed.iter().map(|(op, _, _)| op).collect();
            return ctx.finish_all(&ops, Outcome::Failed { message }).await;
        }
    };
    let outcomes = committed
        .iter()
        .map(|(op, id, code)| {
            let o = if id.as_deref().is_some_and(|k| found.contains(k)) {
                outcome(&Row::Committed(code.clone()), id.clone())
            } else {
                Outcome::Failed { message: format!("Moodle raised \"{code}\" and the enrolment is not there") }
            };
            (op, o)
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
    super::skip(ctx, &missing, "no Moodle user or course id").await?;
    send_all(ctx, "enrol_manual_unenrol_users", "enrolments", rows, 200, false, async |batch| {
        settle(ctx, &sendable, batch).await
    })
    .await
}

// ---- the dashboard plugin's rows -------------------------------------------------------------------------

pub async fn plugin_rows(ctx: &Ctx, ops: &[&Op]) -> Result<(), ApplyError> {
    // The four tables at once; within a table, every batch at once (the client bounds what is in flight).
    let tables = [Entity::Unit, Entity::Registration, Entity::Payment, Entity::DashboardGrade].map(|entity| {
        let mine: Vec<&Op> = ops.iter().copied().filter(|o| o.entity == entity).collect();
        plugin_table(ctx, entity, mine)
    });
    let [a, b, c, d] = tables;
    tokio::try_join!(a, b, c, d)?;
    Ok(())
}

async fn plugin_table(ctx: &Ctx, entity: Entity, mine: Vec<&Op>) -> Result<(), ApplyError> {
    if mine.is_empty() {
        return Ok(());
    }
    let (zk, _) = entity.kinds();
    let mut rows = Vec::new();
    let mut sendable = Vec::new();
    let mut refused = Vec::new();
    for op in mine {
        let fields: Fields = match op.refs.get("fields") {
            Some(Value::Object(m)) if op.action != Action::Create => m.clone().into_iter().collect(),
            _ => op.changes.clone(),
        };
        let userid = ref_i64(ctx, op, "userid", Entity::Student, "student_zoho_id")
            .or_else(|| str_field(&fields, "student").and_then(|s| ctx.moodle_id(Entity::Student, s)?.parse().ok()));
        match dashboard::plugin_row(zk, &op.key, &fields, userid) {
            Ok(row) => {
                rows.push(Value::Object(row));
                sendable.push(op);
            }
            Err(e) => refused.push((op, Outcome::Skipped { reason: format!("cannot write the row: {e}") })),
        }
    }
    ctx.finish(refused).await?;
    if rows.is_empty() {
        return Ok(());
    }
    // One request per batch; the plugin answers warnings by position within it. Each batch is journalled as
    // it completes (an upsert by zoho_id, so a batch repeated after a crash changes nothing twice).
    let m = moodle(ctx)?;
    let table = dashboard::table(zk);
    let function = format!("{}_upsert_{table}", moodle::calls::PLUGIN);
    let mut set = JoinSet::new();
    for r in m.batcher(&function, moodle::batch::PLUGIN_MAX_ROWS).split(&rows, 0)? {
        let (m, start, batch) = (m.clone(), r.start, rows[r].to_vec());
        set.spawn(async move { (start, batch.len(), m.upsert_rows(table, &batch).await) });
    }
    while let Some(joined) = set.join_next().await {
        let Ok((start, n, result)) = joined else { continue };
        let ops = &sendable[start..start + n];
        match result {
            Ok(r) => {
                let mut outs: Vec<Outcome> = ops.iter().map(|o| Outcome::applied(Some(o.key.clone()))).collect();
                for w in r.warnings {
                    if let Some(i) = w.itemid.and_then(|i| usize::try_from(i).ok()).filter(|i| *i < outs.len()) {
                        outs[i] = Outcome::Rejected { code: w.warningcode.clone(), message: w.message.clone() };
                    }
                }
                ctx.finish(ops.iter().copied().zip(outs).collect()).await?;
            }
            Err(MoodleError::Exception { errorcode, message, .. }) => {
                ctx.finish_all(ops, Outcome::Rejected { code: errorcode, message }).await?
            }
            Err(e) => ctx.finish_all(ops, Outcome::Failed { message: e.to_string() }).await?,
        }
    }
    Ok(())
}

/// The dashboard rows of grades this run just created in Zoho (from Moodle's course totals): written now, under
/// their new Zoho ids, so the next run finds them in place. A failure here is only logged: the next run plans the
/// row like any other grade recorded in Zoho.
pub async fn rows_of_new_grades(ctx: &Ctx, created: &[(&Op, Outcome)]) {
    if !Entity::DashboardGrade.enabled(&ctx.settings)
        || Entity::DashboardGrade.direction(&ctx.settings) == crate::settings::Direction::Disabled
    {
        return;
    }
    let Some(m) = ctx.moodle.as_ref() else { return };
    let mut rows = Vec::new();
    for (op, o) in created {
        let (Action::Create, Some(id)) = (op.action, o.target_id()) else { continue };
        let r = |k: &str| op.refs.get(k).cloned().unwrap_or(Value::Null);
        let userid = op.moodle_id.as_deref().and_then(|k| k.split(':').nth(1)?.parse::<i64>().ok());
        let mut fields = Fields::new();
        fields.insert("student".into(), r("student_zoho_id"));
        fields.insert("unit".into(), r("unit_id"));
        fields.insert("class".into(), r("class_zoho_id"));
        fields.insert("graded_date".into(), r("graded_date"));
        for f in ["grade", "moodle_grade"] {
            fields.insert(f.into(), op.changes.get(f).cloned().unwrap_or(Value::Null));
        }
        if let Ok(row) = dashboard::plugin_row(Kind::Grade, id, &fields, userid) {
            rows.push(Value::Object(row));
        }
    }
    if rows.is_empty() {
        return;
    }
    match m.upsert_rows(dashboard::table(Kind::Grade), &rows).await {
        Ok(r) if r.warnings.is_empty() => {}
        Ok(r) => tracing::warn!(warnings = r.warnings.len(), "dashboard rows of new Zoho grades: the next run retries"),
        Err(e) => tracing::warn!("dashboard rows of new Zoho grades not written ({e}); the next run writes them"),
    }
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
    super::skip(ctx, &missing, "no Moodle user id").await?;
    send_all(ctx, "core_user_delete_users", "userids", rows, USERS_PER_CALL, false, async |batch| {
        ctx.finish(batch.iter().map(|(i, r)| (sendable[*i], deleted_outcome(r))).collect()).await
    })
    .await
}

/// A user Moodle no longer knows (a retried call whose first attempt landed, or an admin who deleted it by hand)
/// is where the delete wanted it: gone.
fn deleted_outcome(row: &Row) -> Outcome {
    match row {
        Row::Rejected(code, _) if code == "invaliduser" || code == "invalidrecordunknown" => Outcome::applied(None),
        r => outcome(r, None),
    }
}

pub async fn delete_rows(ctx: &Ctx, ops: &[&Op]) -> Result<(), ApplyError> {
    for entity in [Entity::Unit, Entity::Registration, Entity::Payment, Entity::DashboardGrade] {
        let mine: Vec<&Op> = ops.iter().copied().filter(|o| o.entity == entity).collect();
        if mine.is_empty() {
            continue;
        }
        let ids: Vec<String> = mine.iter().map(|o| o.key.clone()).collect();
        let outcome = match moodle(ctx)?.delete_rows(dashboard::table(entity.kinds().0), &ids).await {
            Ok(_) => Outcome::applied(None),
            Err(MoodleError::Exception { errorcode, message, .. }) => Outcome::Rejected { code: errorcode, message },
            Err(e) => Outcome::Failed { message: e.to_string() },
        };
        ctx.finish_all(&mine, outcome).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeded rows of 3 to 7 form variables each (an enrolment with or without its dates and suspension).
    fn rows(n: usize, seed: u64) -> Vec<Value> {
        let mut x = seed;
        (0..n)
            .map(|i| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let mut row = Map::new();
                for k in ["roleid", "userid", "courseid", "timestart", "timeend", "suspend", "extra"]
                    .iter()
                    .take(if seed.is_multiple_of(2) { 5 } else { 3 + (x >> 33) as usize % 5 })
                {
                    row.insert((*k).into(), json!(i));
                }
                Value::Object(row)
            })
            .collect()
    }

    #[test]
    fn even_enrolment_calls_are_never_more_and_their_sizes_differ_little() {
        for seed in 0..40u64 {
            let n = 1 + (seed as usize * 997) % 6000;
            let rows = rows(n, seed);
            let vars = [1000, 5000, 20000][seed as usize % 3];
            let batcher = |max| Batcher::new(ENROL, vars, max);
            let before = batcher(200).split(&rows, 0).unwrap();
            let per_call = even_rows(batcher, &rows, 200).unwrap();
            let after = batcher(per_call).split(&rows, 0).unwrap();
            assert!(after.len() <= before.len(), "seed {seed}: {} calls, was {}", after.len(), before.len());
            assert_eq!(after.iter().map(|r| r.len()).sum::<usize>(), n, "seed {seed}: every row sent once");
            // Rows of one size (seed even): calls as even as a greedy split makes them, the last one included.
            if seed.is_multiple_of(2) {
                let (lo, hi) = after.iter().fold((usize::MAX, 0), |(lo, hi), r| (lo.min(r.len()), hi.max(r.len())));
                assert!(hi - lo < after.len(), "seed {seed}: {} calls of {lo} to {hi} rows", after.len());
            }
        }
    }
}
