//! The Moodle side of a snapshot: users, courses with their enrolments and grades, the dashboard plugin's
//! tables; the web-service functions each needs and the calls each made.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde_json::Value;

use super::Unmappable;
use super::{raw_key, Ctx, Staged, Task};
use crate::mapping;
use crate::model::{Kind, Side};
use crate::moodle::{self, calls};
use crate::snapshot::plan::Plan;
use crate::snapshot::SnapshotError;

pub(super) async fn moodle_users(m: &moodle::Client, ws_user: Option<i64>, ctx: &Ctx) -> Result<Staged, SnapshotError> {
    let mut sink = ctx.sink(Kind::MoodleUser, "core_user_get_users");
    let Some(keys) = ctx.keys(Kind::MoodleUser) else {
        let mut users = m.users(ws_user).await?;
        note_unreadable(&mut users);
        sink.page(users).await?;
        return Ok(sink.finish(None));
    };
    // Moodle validates the ids of a read as integers and refuses the whole call for one that is not: such a
    // key fails alone, before the call. A deleted user makes Moodle refuse the whole read too: the read is
    // split down to it, and it is gone (a removal); the others are read.
    let (mut ids, bad): (Vec<String>, Vec<String>) = keys.iter().cloned().partition(|k| k.parse::<i64>().is_ok());
    ids.sort();
    let mut rejected: Vec<Unmappable> = bad
        .into_iter()
        .map(|key| Unmappable { reason: format!("`{key}` is not a Moodle user id (a whole number)"), key })
        .collect();
    if !ids.is_empty() {
        sink.source = "core_user_get_users_by_field".into();
        let (mut users, refused) = m.users_by_id_each(&ids).await?;
        note_unreadable(&mut users);
        sink.page(users).await?;
        rejected.extend(
            refused.into_iter().map(|(key, e)| Unmappable { key, reason: format!("Moodle refused the id: {e}") }),
        );
    }
    Ok(sink.finish_asked(None, &keys, rejected))
}

/// Fields Moodle returned for no user are unknown (not shown to this token), never compared.
fn note_unreadable(users: &mut [Value]) {
    let unreadable = crate::mapping::person::settle_identity_fields(users);
    if !unreadable.is_empty() {
        tracing::info!(fields = ?unreadable, "Moodle returned these user fields for no user: unknown, not compared");
    }
}

fn keep(keys: &Option<HashSet<String>>, raw: &Value) -> bool {
    keys.as_ref().map(|k| k.contains(&raw_key(raw))).unwrap_or(true)
}

pub(super) async fn moodle_courses(m: &moodle::Client, plan: &Plan, ctx: &Ctx) -> Task {
    let kinds = [Kind::MoodleCourse, Kind::MoodleEnrolment, Kind::MoodleGrade].into_iter().filter(|k| plan.has(*k));
    if kinds.clone().all(|k| ctx.keys(k).is_some_and(|keys| keys.is_empty())) {
        // An incremental run with no course, enrolment or grade keys reads nothing here.
        return Ok(kinds.map(|k| ctx.sink(k, "core_course_get_courses").finish(None)).collect());
    }
    // An incremental run that reads enrolments or grades by key and no course needs no course list: the keys
    // name their courses (an echoed event then costs one read).
    let by_keys_only =
        [Kind::MoodleEnrolment, Kind::MoodleGrade].into_iter().filter(|k| plan.has(*k)).all(|k| ctx.keys(k).is_some())
            && (!plan.has(Kind::MoodleCourse) || ctx.keys(Kind::MoodleCourse).is_some_and(|k| k.is_empty()));
    let courses = if by_keys_only { Vec::new() } else { m.courses().await? };
    let ids: Vec<i64> = courses.iter().filter_map(|c| c.get("id").and_then(Value::as_i64)).collect();
    let mut out = Vec::new();
    if plan.has(Kind::MoodleCourse) {
        let mut sink = ctx.sink(Kind::MoodleCourse, "core_course_get_courses");
        let keys = ctx.keys(Kind::MoodleCourse);
        sink.page(courses.into_iter().filter(|c| keep(&keys, c)).collect()).await?;
        out.push(match &keys {
            Some(k) => sink.finish_asked(None, k, Vec::new()),
            None => sink.finish(None),
        });
    } else {
        drop(courses);
    }
    for kind in [Kind::MoodleEnrolment, Kind::MoodleGrade] {
        if !plan.has(kind) {
            continue;
        }
        let keys = ctx.keys(kind);
        // An incremental run reads only the courses its keys name.
        let wanted: Vec<i64> = match &keys {
            None => ids.clone(),
            Some(k) => {
                let cs: BTreeSet<i64> = k.iter().filter_map(|key| key.split(':').next()?.parse().ok()).collect();
                if by_keys_only {
                    cs.into_iter().collect()
                } else {
                    ids.iter().copied().filter(|i| cs.contains(i)).collect()
                }
            }
        };
        let source = if kind == Kind::MoodleEnrolment { "get_enrolments" } else { "get_course_grades" };
        let mut sink = ctx.sink(kind, &format!("{}_{source}", calls::PLUGIN));
        for chunk in wanted.chunks(calls::COURSES_PER_CALL) {
            let (rows, warnings) =
                if kind == Kind::MoodleEnrolment { m.enrolments(chunk).await? } else { m.course_grades(chunk).await? };
            for w in warnings {
                tracing::warn!(kind = %kind, code = %w.warningcode, item = ?w.itemid, "{}", w.message);
            }
            sink.page(rows.into_iter().filter(|r| keep(&keys, r)).collect()).await?;
        }
        out.push(match &keys {
            Some(k) => sink.finish_asked(None, k, Vec::new()),
            None => sink.finish(None),
        });
    }
    Ok(out)
}

pub(super) async fn dashboard(m: &moodle::Client, kind: Kind, ctx: &Ctx) -> Result<Staged, SnapshotError> {
    let table = mapping::dashboard::table(kind);
    let mut sink = ctx.sink(kind, &format!("{}_get_{table}", calls::PLUGIN));
    let keys = ctx.keys(kind);
    if keys.as_ref().is_some_and(HashSet::is_empty) {
        return Ok(sink.finish(None));
    }
    let mut from = 0usize;
    loop {
        let (rows, total) = m.plugin_rows(table, from, calls::PLUGIN_PAGE).await?;
        let n = rows.len();
        if let Some(total) = Some(total).filter(|t| *t > 0) {
            sink.bar.set_length(total);
        }
        sink.page(rows.into_iter().filter(|r| keep(&keys, r)).collect()).await?;
        from += n;
        if n == 0 || from as u64 >= total {
            break;
        }
    }
    Ok(match &keys {
        Some(k) => sink.finish_asked(None, k, Vec::new()),
        None => sink.finish(None),
    })
}

/// The read functions the plan's Moodle kinds need.
pub(super) fn moodle_functions(plan: &Plan) -> Vec<String> {
    let p = calls::PLUGIN;
    let mut f = BTreeSet::from(["core_webservice_get_site_info".to_string(), format!("{p}_get_info")]);
    for kind in plan.side(Side::Moodle) {
        match kind {
            Kind::MoodleUser => {
                f.insert("core_user_get_users".into());
            }
            Kind::MoodleCourse => {
                f.insert("core_course_get_courses".into());
            }
            Kind::MoodleEnrolment => {
                f.insert("core_course_get_courses".into());
                f.insert(format!("{p}_get_enrolments"));
            }
            Kind::MoodleGrade => {
                f.insert("core_course_get_courses".into());
                f.insert(format!("{p}_get_course_grades"));
            }
            k => {
                f.insert(format!("{p}_get_{}", mapping::dashboard::table(k)));
            }
        }
    }
    f.into_iter().collect()
}

/// Moodle API calls per kind, by the functions each kind's fetch uses.
pub fn moodle_calls(kind: Kind, by_function: &BTreeMap<String, moodle::FunctionStats>) -> u64 {
    let p = calls::PLUGIN;
    let names: Vec<String> = match kind {
        Kind::MoodleUser => vec!["core_user_get_users".into(), "core_user_get_users_by_field".into()],
        Kind::MoodleCourse => vec!["core_course_get_courses".into()],
        Kind::MoodleEnrolment => vec![format!("{p}_get_enrolments")],
        Kind::MoodleGrade => vec![format!("{p}_get_course_grades")],
        k => vec![format!("{p}_get_{}", mapping::dashboard::table(k))],
    };
    names.iter().filter_map(|n| by_function.get(n)).map(|f| f.calls).sum()
}
