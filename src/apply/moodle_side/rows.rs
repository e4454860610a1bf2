//! The dashboard plugin's rows: upserted per table, the rows of grades created in Zoho, deleted.

use serde_json::Value;
use tokio::task::JoinSet;

use super::moodle;
use crate::apply::{ref_i64, str_field, ApplyError, Ctx, Outcome};
use crate::mapping::dashboard;
use crate::model::{Entity, Fields, Kind};
use crate::moodle::MoodleError;
use crate::reconcile::{Action, Op};

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
