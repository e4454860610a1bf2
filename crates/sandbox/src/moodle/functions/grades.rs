//! `gradereport_user_get_grade_items`: one user report per graded user (active student
//! enrolments), the course total as an item whose `itemname` is null. The fake's gradebook has only the
//! course-total item. `core_grades_get_grades` does not exist in 5.1 and is deliberately not here.

use serde_json::{json, Map, Value};

use super::{i, Ctx, Function, CORE_VERSION};
use crate::moodle::errors::WsError;
use crate::moodle::params::{def, req, Desc, P};
use crate::moodle::state::{BTEC_SCALE, SITE_COURSE_ID};

pub static FUNCTIONS: &[Function] = &[Function {
    name: "gradereport_user_get_grade_items",
    component_version: CORE_VERSION,
    schema,
    run,
    write: false,
    transactional: false,
    plugin: false,
}];

const STUDENT_ROLE: i64 = 5;

fn schema() -> Vec<(&'static str, Desc)> {
    vec![("courseid", req(P::Int)), ("userid", def(P::Int, json!(0))), ("groupid", def(P::Int, json!(0)))]
}

/// A grade as the user report formats it (2 decimals, or the scale item's name).
fn formatted(g: Option<f64>, scaled: bool) -> String {
    match g {
        None => "-".into(),
        Some(v) if scaled => {
            let idx = v.round() as usize;
            BTEC_SCALE.get(idx.wrapping_sub(1)).map(|s| s.to_string()).unwrap_or_else(|| "-".into())
        }
        Some(v) => format!("{v:.2}"),
    }
}

fn run(ctx: &mut Ctx, args: &Map<String, Value>) -> Result<Value, WsError> {
    let courseid = i(args, "courseid");
    let Some(course) = ctx.state.courses.get(&courseid).filter(|c| c.id != SITE_COURSE_ID).cloned() else {
        return Err(WsError::missing_record("course", "SELECT * FROM {course} WHERE id = ?"));
    };
    ctx.require("gradereport/user:view")?;
    ctx.require("moodle/grade:viewall")?;
    let only = i(args, "userid");
    if only != 0 && ctx.state.live_user(only).is_none() {
        return Err(WsError::missing_record("user", "SELECT * FROM {user} WHERE id = ?"));
    }
    if ctx.opts.zero_records {
        return Ok(json!({"usergrades": [], "warnings": []}));
    }
    let now = ctx.now;
    let item = &course.grade_item;
    let scaled = item.scaleid.is_some();
    let mut usergrades = Vec::new();
    for e in ctx.state.enrolments.values().filter(|e| e.courseid == courseid) {
        let active = e.status == 0 && e.timestart <= now && (e.timeend == 0 || e.timeend > now);
        let student = ctx.state.roles.get(&(courseid, e.userid)).is_some_and(|r| r.contains(&STUDENT_ROLE));
        if !active || !student || (only != 0 && e.userid != only) {
            continue;
        }
        let Some(u) = ctx.state.live_user(e.userid) else { continue };
        let grade = ctx.state.grades.get(&(courseid, e.userid));
        let raw = grade.and_then(|g| g.finalgrade);
        let range = item.grademax - item.grademin;
        let pct = raw.filter(|_| range > 0.0).map(|v| (v - item.grademin) * 100.0 / range);
        usergrades.push(json!({
            "courseid": courseid,
            "courseidnumber": course.idnumber,
            "userid": u.id,
            "userfullname": u.fullname(),
            "useridnumber": u.idnumber,
            "maxdepth": 1,
            "gradeitems": [{
                "id": item.id,
                "itemname": null,
                "itemtype": "course",
                "itemmodule": null,
                "iteminstance": courseid,
                "itemnumber": null,
                "idnumber": null,
                "categoryid": null,
                "outcomeid": null,
                "scaleid": null,
                "locked": false,
                "weightraw": 0,
                "weightformatted": "-",
                "graderaw": raw,
                "gradedatesubmitted": null,
                "gradedategraded": grade.filter(|g| g.finalgrade.is_some()).map(|g| g.timemodified),
                "gradehiddenbydate": false,
                "gradeneedsupdate": false,
                "gradeishidden": false,
                "gradeislocked": false,
                "gradeisoverridden": false,
                "gradeformatted": formatted(raw, scaled),
                "grademin": item.grademin,
                "grademax": item.grademax,
                "rangeformatted": if scaled { format!("{}–{}", BTEC_SCALE[0], BTEC_SCALE[BTEC_SCALE.len() - 1]) } else { format!("{:.2}–{:.2}", item.grademin, item.grademax) },
                "percentageformatted": pct.map(|p| format!("{p:.2} %")).unwrap_or_else(|| "-".into()),
                "feedback": "",
                "feedbackformat": 0
            }]
        }));
    }
    Ok(json!({"usergrades": usergrades, "warnings": []}))
}
