//! Enrolments: enrol (its timing confirmed after a commit error), unenrol.

use serde_json::{json, Map, Value};

use super::{moodle, outcome, send_all, settle, Row};
use crate::apply::{ref_i64, skip, ApplyError, Ctx, Outcome};
use crate::mapping::enrollment;
use crate::model::{Entity, Fields, Kind};
use crate::moodle::{batch::Batcher, MoodleError};
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
    skip(ctx, &waiting, "its user or course does not exist in Moodle (not created in this run)").await?;
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
    skip(ctx, &missing, "no Moodle user or course id").await?;
    send_all(ctx, "enrol_manual_unenrol_users", "enrolments", rows, 200, false, async |batch| {
        settle(ctx, &sendable, batch).await
    })
    .await
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
