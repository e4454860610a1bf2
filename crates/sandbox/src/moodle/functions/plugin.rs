//! `local_student_dashboard_*` (docs/plugin-contract.md, version 1): idempotent upserts with per-row
//! warnings, no-op deletes, paged gets, course-total grades and manual enrolments with status and dates.

use serde_json::{json, Map, Value};

use super::{ints, items, oi, os, strs, warning, Ctx, Function, PLUGIN_VERSION};
use crate::moodle::errors::WsError;
use crate::moodle::params::{def, list, opt, req, single, with, Desc, Req, P};
use crate::moodle::state::{BTEC_SCALE, GUEST_ID, SITE_COURSE_ID};

pub const CONTRACT_VERSION: i64 = 1;
pub const MAX_BATCH: usize = 500;
const MAX_PAGE: usize = 5000;
const MANAGE: &str = "local/student_dashboard:manage";

/// How a field is checked per row and normalised for storage (contract §1.1 and §3).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// The row's identity (`zoho_id`): 1–100 chars.
    Identity,
    /// Another Zoho id: longer than 100 when set is invalid.
    Ref,
    UserId,
    Date,
    Money,
    Percent,
    Currency,
    PayStatus,
    GradeLevel,
    /// Text of at most n characters (bytes for `criteria`).
    Text(usize),
    TextBytes(usize),
    Credits,
    Grade,
}

struct Field {
    name: &'static str,
    param: P,
    required: bool,
    kind: Kind,
}

const fn f(name: &'static str, param: P, required: bool, kind: Kind) -> Field {
    Field { name, param, required, kind }
}

/// One row type: its list name (also the fake's table key) and its fields in contract order.
struct RowType {
    plural: &'static str,
    fields: &'static [Field],
}

static REGISTRATIONS: RowType = RowType {
    plural: "registrations",
    fields: &[
        f("zoho_id", P::AlphaNumExt, true, Kind::Identity),
        f("userid", P::Int, true, Kind::UserId),
        f("student_zoho_id", P::AlphaNumExt, true, Kind::Ref),
        f("program", P::Text, true, Kind::Text(255)),
        f("registration_date", P::AlphaNumExt, false, Kind::Date),
        f("total_fee", P::RawTrimmed, true, Kind::Money),
        f("scholarship_percent", P::RawTrimmed, false, Kind::Percent),
        f("currency", P::Alpha, true, Kind::Currency),
        f("status", P::Text, false, Kind::Text(50)),
    ],
};

static PAYMENTS: RowType = RowType {
    plural: "payments",
    fields: &[
        f("zoho_id", P::AlphaNumExt, true, Kind::Identity),
        f("userid", P::Int, true, Kind::UserId),
        f("student_zoho_id", P::AlphaNumExt, true, Kind::Ref),
        f("registration_zoho_id", P::AlphaNumExt, false, Kind::Ref),
        f("amount", P::RawTrimmed, true, Kind::Money),
        f("payment_date", P::AlphaNumExt, false, Kind::Date),
        f("due_date", P::AlphaNumExt, false, Kind::Date),
        f("status", P::Alpha, true, Kind::PayStatus),
        f("method", P::Text, false, Kind::Text(50)),
    ],
};

static UNITS: RowType = RowType {
    plural: "units",
    fields: &[
        f("zoho_id", P::AlphaNumExt, true, Kind::Identity),
        f("unit_code", P::Text, true, Kind::Text(50)),
        f("unit_name", P::Text, true, Kind::Text(255)),
        f("level", P::Text, false, Kind::Text(50)),
        f("credits", P::Int, false, Kind::Credits),
        f("criteria", P::Text, false, Kind::TextBytes(65535)),
    ],
};

static GRADES: RowType = RowType {
    plural: "grades",
    fields: &[
        f("zoho_id", P::AlphaNumExt, true, Kind::Identity),
        f("userid", P::Int, true, Kind::UserId),
        f("student_zoho_id", P::AlphaNumExt, true, Kind::Ref),
        f("unit_zoho_id", P::AlphaNumExt, false, Kind::Ref),
        f("class_zoho_id", P::AlphaNumExt, false, Kind::Ref),
        f("grade", P::Alpha, true, Kind::GradeLevel),
        f("moodle_grade", P::Float, false, Kind::Grade),
        f("graded_date", P::AlphaNumExt, false, Kind::Date),
    ],
};

fn row_type(plural: &str) -> &'static RowType {
    match plural {
        "registrations" => &REGISTRATIONS,
        "payments" => &PAYMENTS,
        "units" => &UNITS,
        _ => &GRADES,
    }
}

macro_rules! plugin_fn {
    ($name:expr, $schema:expr, $run:expr, $write:expr) => {
        Function {
            name: $name,
            component_version: PLUGIN_VERSION,
            schema: $schema,
            run: $run,
            write: $write,
            transactional: false,
            plugin: true,
        }
    };
}

pub static FUNCTIONS: &[Function] = &[
    plugin_fn!("local_student_dashboard_get_info", no_args, get_info, false),
    plugin_fn!(
        "local_student_dashboard_upsert_registrations",
        || upsert_schema(&REGISTRATIONS),
        |c, a| upsert(c, a, "registrations"),
        true
    ),
    plugin_fn!(
        "local_student_dashboard_upsert_payments",
        || upsert_schema(&PAYMENTS),
        |c, a| upsert(c, a, "payments"),
        true
    ),
    plugin_fn!("local_student_dashboard_upsert_units", || upsert_schema(&UNITS), |c, a| upsert(c, a, "units"), true),
    plugin_fn!("local_student_dashboard_upsert_grades", || upsert_schema(&GRADES), |c, a| upsert(c, a, "grades"), true),
    plugin_fn!(
        "local_student_dashboard_delete_registrations",
        delete_schema,
        |c, a| delete(c, a, "registrations"),
        true
    ),
    plugin_fn!("local_student_dashboard_delete_payments", delete_schema, |c, a| delete(c, a, "payments"), true),
    plugin_fn!("local_student_dashboard_delete_units", delete_schema, |c, a| delete(c, a, "units"), true),
    plugin_fn!("local_student_dashboard_delete_grades", delete_schema, |c, a| delete(c, a, "grades"), true),
    plugin_fn!("local_student_dashboard_get_registrations", get_schema, |c, a| get_rows(c, a, "registrations"), false),
    plugin_fn!("local_student_dashboard_get_payments", get_schema, |c, a| get_rows(c, a, "payments"), false),
    plugin_fn!("local_student_dashboard_get_units", get_schema, |c, a| get_rows(c, a, "units"), false),
    plugin_fn!("local_student_dashboard_get_grades", get_schema, |c, a| get_rows(c, a, "grades"), false),
    plugin_fn!("local_student_dashboard_get_course_grades", course_grades_schema, get_course_grades, false),
    plugin_fn!("local_student_dashboard_get_enrolments", enrolments_schema, get_enrolments, false),
];

fn no_args() -> Vec<(&'static str, Desc)> {
    Vec::new()
}

fn batch_too_large(n: usize) -> WsError {
    WsError::moodle("batchtoolarge", format!("Too many items in one call: {n} (at most {MAX_BATCH})"))
}

fn get_info(ctx: &mut Ctx, _args: &Map<String, Value>) -> Result<Value, WsError> {
    ctx.require(MANAGE)?;
    // The site settings doctor reads (optional fields, added compatibly): Show user identity, how mail is
    // sent, and whether manual enrolments send the welcome message.
    let welcome_courses = if ctx.opts.welcome_message {
        ctx.state.courses.values().filter(|c| c.manual_enrolid.is_some()).count()
    } else {
        0
    };
    Ok(json!({"component": "local_student_dashboard", "version": 2026040100, "release": "1.0.0",
              "contract_version": CONTRACT_VERSION, "identity_fields": ctx.opts.show_identity.join(","),
              "mail": if ctx.opts.mail_configured { "smtp" } else { "php" },
              "welcome_default": ctx.opts.welcome_message, "welcome_courses": welcome_courses}))
}

fn upsert_schema(t: &RowType) -> Vec<(&'static str, Desc)> {
    let keys = t.fields.iter().map(|f| (f.name, if f.required { req(f.param) } else { opt(f.param) })).collect();
    vec![(t.plural, list(single(keys)))]
}

/// `^\d{1,10}(\.\d{1,2})?$`, normalised to exactly two places (integer cents, never a float).
fn money(s: &str) -> Option<String> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let ok = (1..=10).contains(&int.len())
        && int.bytes().all(|b| b.is_ascii_digit())
        && (!s.contains('.') || (1..=2).contains(&frac.len()))
        && frac.bytes().all(|b| b.is_ascii_digit());
    if !ok {
        return None;
    }
    let units: u64 = int.parse().ok()?;
    Some(format!("{units}.{frac:0<2}"))
}

fn valid_date(s: &str) -> bool {
    s.len() == 10
        && s.as_bytes()[4] == b'-'
        && s.as_bytes()[7] == b'-'
        && chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

/// The row in its stored (`get_*`) form, or the row's single warning (code, message).
fn check_row(
    ctx: &Ctx,
    t: &RowType,
    row: &Map<String, Value>,
    seen: &[String],
) -> Result<Map<String, Value>, (&'static str, String)> {
    let zoho = os(row, "zoho_id").unwrap_or_default();
    // The checks run in the contract's table order: the first failing check gives the warning.
    for fld in t.fields {
        let v = os(row, fld.name).unwrap_or_default();
        let bad = match fld.kind {
            Kind::Identity => v.is_empty() || v.chars().count() > 100,
            Kind::Ref => v.chars().count() > 100,
            _ => false,
        };
        if bad {
            return Err(("invalidzohoid", format!("Invalid Zoho id in {}: \"{v}\"", fld.name)));
        }
    }
    if seen.iter().any(|z| z == zoho) {
        return Err(("duplicatezohoid", format!("Zoho id {zoho} appears earlier in this request")));
    }
    if let Some(uid) = oi(row, "userid") {
        if uid == GUEST_ID || ctx.state.live_user(uid).is_none() {
            return Err(("invaliduserid", format!("Unknown or deleted Moodle user id {uid}")));
        }
    }
    let stage = |k: Kind| t.fields.iter().filter(move |f| f.kind == k);
    for fld in stage(Kind::Date) {
        if let Some(v) = os(row, fld.name).filter(|v| !v.is_empty()) {
            if !valid_date(v) {
                return Err(("invaliddate", format!("{} is not a calendar date YYYY-MM-DD: \"{v}\"", fld.name)));
            }
        }
    }
    for fld in stage(Kind::Money) {
        let v = os(row, fld.name).unwrap_or_default();
        if money(v).is_none() {
            return Err(("invalidamount", format!("{} is not an amount: \"{v}\"", fld.name)));
        }
    }
    for fld in stage(Kind::Percent) {
        if let Some(v) = os(row, fld.name).filter(|v| !v.is_empty()) {
            let ok = money(v).and_then(|m| m.parse::<f64>().ok()).is_some_and(|p| p <= 100.0);
            if !ok {
                return Err(("invalidpercent", format!("{} is not a percentage 0-100: \"{v}\"", fld.name)));
            }
        }
    }
    for fld in stage(Kind::Currency) {
        let v = os(row, fld.name).unwrap_or_default();
        if v.len() != 3 || !v.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(("invalidcurrency", format!("{} is not an ISO 4217 code: \"{v}\"", fld.name)));
        }
    }
    for fld in stage(Kind::PayStatus) {
        let v = os(row, fld.name).unwrap_or_default();
        if !["Paid", "Due", "Overdue"].contains(&v) {
            return Err(("invalidstatus", format!("{} must be Paid, Due or Overdue: \"{v}\"", fld.name)));
        }
    }
    for fld in stage(Kind::GradeLevel) {
        let v = os(row, fld.name).unwrap_or_default();
        if !BTEC_SCALE.contains(&v) {
            return Err(("invalidgrade", format!("{} must be Pass, Merit, Distinction or Refer: \"{v}\"", fld.name)));
        }
    }
    for fld in t.fields {
        let v = os(row, fld.name).unwrap_or_default();
        let bad = match fld.kind {
            Kind::Text(n) => v.chars().count() > n,
            Kind::TextBytes(n) => v.len() > n,
            Kind::Credits => oi(row, fld.name).is_some_and(|c| !(0..=999).contains(&c)),
            _ => false,
        };
        if bad {
            return Err(("invalidvalue", format!("{} is out of range or too long", fld.name)));
        }
    }
    // Normalise into the stored form: every key present, "not set" as null.
    let mut out = Map::new();
    for fld in t.fields {
        let v = row.get(fld.name);
        let text = os(row, fld.name).unwrap_or_default();
        let stored = match fld.kind {
            Kind::UserId => json!(oi(row, fld.name).unwrap_or_default()),
            Kind::Date => {
                if text.is_empty() {
                    Value::Null
                } else {
                    json!(text)
                }
            }
            Kind::Money => json!(money(text).unwrap_or_default()),
            Kind::Percent => json!(money(if text.is_empty() { "0" } else { text }).unwrap_or_default()),
            Kind::Credits => json!(oi(row, fld.name).unwrap_or(0)),
            Kind::Grade => v.and_then(Value::as_f64).map(|g| json!((g * 1e5).round() / 1e5)).unwrap_or(Value::Null),
            _ => json!(text),
        };
        out.insert(fld.name.into(), stored);
    }
    Ok(out)
}

fn upsert(ctx: &mut Ctx, args: &Map<String, Value>, plural: &str) -> Result<Value, WsError> {
    let t = row_type(plural);
    ctx.require(MANAGE)?;
    let rows = items(args, t.plural);
    if rows.len() > MAX_BATCH {
        return Err(batch_too_large(rows.len()));
    }
    let (mut created, mut updated, mut unchanged) = (0, 0, 0);
    let mut results = Vec::new();
    let mut warnings = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for (pos, row) in rows.iter().enumerate() {
        let zoho = os(row, "zoho_id").unwrap_or_default().to_string();
        let checked = check_row(ctx, t, row, &seen);
        seen.push(zoho.clone());
        let fields = match checked {
            Ok(f) => f,
            Err((code, msg)) => {
                warnings.push(warning(zoho, pos as i64, code, msg));
                continue;
            }
        };
        let now = ctx.now;
        let table = ctx.state.plugin.entry(t.plural).or_default();
        let (id, status) = match table.find(&zoho) {
            Some(id) => {
                let existing = table
                    .rows
                    .get_mut(&id)
                    .ok_or_else(|| WsError::moodle("dmlreadexception", "Error reading from database"))?;
                let same = fields.iter().all(|(k, v)| existing.get(k) == Some(v));
                if same {
                    unchanged += 1;
                    (id, "unchanged")
                } else {
                    let mut row = Map::new();
                    row.insert("id".into(), json!(id));
                    row.extend(fields);
                    row.insert("timemodified".into(), json!(now));
                    *existing = row;
                    updated += 1;
                    (id, "updated")
                }
            }
            None => {
                table.next_id += 1;
                let id = table.next_id;
                let mut row = Map::new();
                row.insert("id".into(), json!(id));
                row.extend(fields);
                row.insert("timemodified".into(), json!(now));
                table.insert(id, row);
                created += 1;
                (id, "created")
            }
        };
        if status != "unchanged" {
            ctx.written += 1;
        }
        results.push(json!({"zoho_id": zoho, "id": id, "status": status}));
    }
    Ok(
        json!({"created": created, "updated": updated, "unchanged": unchanged, "results": results, "warnings": warnings}),
    )
}

fn delete_schema() -> Vec<(&'static str, Desc)> {
    vec![("zoho_ids", list(req(P::AlphaNumExt)))]
}

fn delete(ctx: &mut Ctx, args: &Map<String, Value>, plural: &str) -> Result<Value, WsError> {
    let t = row_type(plural);
    ctx.require(MANAGE)?;
    let ids = strs(args, "zoho_ids");
    if ids.len() > MAX_BATCH {
        return Err(batch_too_large(ids.len()));
    }
    let table = ctx.state.plugin.entry(t.plural).or_default();
    let mut deleted = 0;
    for z in ids {
        if let Some(id) = table.find(&z) {
            table.remove(id);
            deleted += 1;
        }
    }
    ctx.written += deleted;
    Ok(json!({"deleted": deleted, "warnings": []}))
}

fn get_schema() -> Vec<(&'static str, Desc)> {
    vec![("limitfrom", def(P::Int, json!(0))), ("limitnumber", def(P::Int, json!(0)))]
}

fn get_rows(ctx: &mut Ctx, args: &Map<String, Value>, plural: &str) -> Result<Value, WsError> {
    let t = row_type(plural);
    let (from, number) = (oi(args, "limitfrom").unwrap_or(0), oi(args, "limitnumber").unwrap_or(0));
    if from < 0 || number < 0 {
        return Err(WsError::invalid_parameter("limitfrom and limitnumber must not be negative"));
    }
    ctx.require(MANAGE)?;
    if ctx.opts.zero_records {
        return Ok(json!({"rows": [], "total": 0}));
    }
    let table = ctx.state.plugin.entry(t.plural).or_default();
    // 0 = no limit; above 5000 reads as 5000.
    let take = if number == 0 { usize::MAX } else { (number as usize).min(MAX_PAGE) };
    let rows: Vec<Value> = table.rows.values().skip(from as usize).take(take).cloned().map(Value::Object).collect();
    Ok(json!({"rows": rows, "total": table.rows.len()}))
}

fn course_grades_schema() -> Vec<(&'static str, Desc)> {
    vec![("courseids", list(req(P::Int)))]
}

/// Course-level warnings shared by the two course functions: unknown/site course, missing capability.
fn course_warning(ctx: &Ctx, courseid: i64, cap: &str) -> Option<Value> {
    if courseid == SITE_COURSE_ID || !ctx.state.courses.contains_key(&courseid) {
        return Some(warning("course", courseid, "invalidcourseid", format!("Unknown course id {courseid}")));
    }
    if ctx.lacks(cap) {
        return Some(warning(
            "course",
            courseid,
            "nopermissions",
            format!("Missing capability {cap} in course {courseid}"),
        ));
    }
    None
}

fn get_course_grades(ctx: &mut Ctx, args: &Map<String, Value>) -> Result<Value, WsError> {
    ctx.require(MANAGE)?;
    let ids = ints(args, "courseids");
    if ids.len() > MAX_BATCH {
        return Err(batch_too_large(ids.len()));
    }
    let mut grades = Vec::new();
    let mut warnings = Vec::new();
    for cid in ids {
        if let Some(w) = course_warning(ctx, cid, "moodle/grade:viewall") {
            warnings.push(w);
            continue;
        }
        if ctx.opts.zero_records {
            continue;
        }
        let Some(course) = ctx.state.courses.get(&cid) else { continue };
        let item = &course.grade_item;
        for g in ctx.state.grades.values().filter(|g| g.courseid == cid) {
            let scaleitem = item.scaleid.and(g.finalgrade).and_then(|v| {
                let idx = v.round() as i64;
                (1..=BTEC_SCALE.len() as i64).contains(&idx).then(|| BTEC_SCALE[(idx - 1) as usize])
            });
            grades.push(json!({
                "courseid": cid, "userid": g.userid, "finalgrade": g.finalgrade,
                "grademin": item.grademin, "grademax": item.grademax,
                "scaleid": item.scaleid, "scaleitem": scaleitem, "timemodified": g.timemodified
            }));
        }
    }
    Ok(json!({"grades": grades, "warnings": warnings}))
}

fn enrolments_schema() -> Vec<(&'static str, Desc)> {
    vec![("courseids", with(list(req(P::Int)), Req::Default(json!([]))))]
}

fn get_enrolments(ctx: &mut Ctx, args: &Map<String, Value>) -> Result<Value, WsError> {
    ctx.require(MANAGE)?;
    let mut ids = ints(args, "courseids");
    if ids.len() > MAX_BATCH {
        return Err(batch_too_large(ids.len()));
    }
    if ids.is_empty() {
        ids = ctx.state.courses.keys().copied().filter(|c| *c != SITE_COURSE_ID).collect();
    }
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for cid in ids {
        if let Some(w) = course_warning(ctx, cid, "moodle/course:enrolreview") {
            warnings.push(w);
            continue;
        }
        if ctx.opts.zero_records {
            continue;
        }
        for e in ctx.state.enrolments.values().filter(|e| e.courseid == cid) {
            if ctx.state.live_user(e.userid).is_none() {
                continue;
            }
            let roleids: Vec<i64> =
                ctx.state.roles.get(&(cid, e.userid)).map(|r| r.iter().copied().collect()).unwrap_or_default();
            out.push(json!({
                "id": e.id, "courseid": cid, "userid": e.userid, "roleids": roleids, "status": e.status,
                "timestart": e.timestart, "timeend": e.timeend, "timemodified": e.timemodified
            }));
        }
    }
    Ok(json!({"enrolments": out, "warnings": warnings}))
}
