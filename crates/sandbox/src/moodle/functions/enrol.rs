//! Manual enrolments: transactional upsert enrol, no-op unenrol, and the participants list
//! with roles whose `name` is "" (built-in roles) and no enrolment status.

use serde_json::{json, Map, Value};

use super::{i, items, oi, s, Ctx, Function, CORE_VERSION};
use crate::moodle::errors::WsError;
use crate::moodle::params::{list, opt, req, single, with, Desc, Req, P};
use crate::moodle::state::{Enrolment, Event, ROLES};

pub static FUNCTIONS: &[Function] = &[
    Function {
        name: "enrol_manual_enrol_users",
        component_version: CORE_VERSION,
        schema: enrol_schema,
        run: enrol_users,
        write: true,
        transactional: true,
        plugin: false,
    },
    Function {
        name: "enrol_manual_unenrol_users",
        component_version: CORE_VERSION,
        schema: unenrol_schema,
        run: unenrol_users,
        write: true,
        transactional: true,
        plugin: false,
    },
    Function {
        name: "core_enrol_get_enrolled_users",
        component_version: CORE_VERSION,
        schema: enrolled_schema,
        run: get_enrolled_users,
        write: false,
        transactional: false,
        plugin: false,
    },
];

pub const CREATED: &str = "\\core\\event\\user_enrolment_created";
pub const UPDATED: &str = "\\core\\event\\user_enrolment_updated";
pub const DELETED: &str = "\\core\\event\\user_enrolment_deleted";

fn enrol_schema() -> Vec<(&'static str, Desc)> {
    vec![(
        "enrolments",
        list(single(vec![
            ("roleid", req(P::Int)),
            ("userid", req(P::Int)),
            ("courseid", req(P::Int)),
            ("timestart", opt(P::Int)),
            ("timeend", opt(P::Int)),
            ("suspend", opt(P::Int)),
        ])),
    )]
}

/// One manual enrolment as `enrol_manual_enrol_users` receives it (status 0 active, 1 suspended).
#[derive(Debug, Clone, Copy)]
pub struct EnrolSpec {
    pub courseid: i64,
    pub userid: i64,
    pub roleid: i64,
    pub timestart: i64,
    pub timeend: i64,
    pub status: i64,
}

/// Upserts one manual enrolment plus its role, returning the event a plugin observer would see (if any).
/// Shared by the web service and the inspection API.
pub fn upsert(ctx_state: &mut crate::moodle::state::State, spec: EnrolSpec, now: i64) -> Option<Event> {
    let EnrolSpec { courseid, userid, roleid, timestart, timeend, status } = spec;
    let enrolid = ctx_state.courses.get(&courseid)?.manual_enrolid?;
    let event = match ctx_state.enrolments.get_mut(&(courseid, userid)) {
        Some(e) => {
            let changed = e.timestart != timestart || e.timeend != timeend || e.status != status;
            e.timestart = timestart;
            e.timeend = timeend;
            e.status = status;
            if changed {
                e.timemodified = now;
            }
            changed.then_some(UPDATED)
        }
        None => {
            let id = ctx_state.next_enrolment_id();
            ctx_state.enrolments.insert(
                (courseid, userid),
                Enrolment {
                    id,
                    enrolid,
                    courseid,
                    userid,
                    status,
                    timestart,
                    timeend,
                    timecreated: now,
                    timemodified: now,
                },
            );
            Some(CREATED)
        }
    };
    // The role is added; an older different role stays.
    ctx_state.roles.entry((courseid, userid)).or_default().insert(roleid);
    event.map(|name| Event { eventname: name.into(), courseid, userid, timecreated: now, grade_id: None, grade: None })
}

fn enrol_users(ctx: &mut Ctx, args: &Map<String, Value>) -> Result<Value, WsError> {
    let mut welcomed = false;
    for e in items(args, "enrolments") {
        let (roleid, userid, courseid) = (i(e, "roleid"), i(e, "userid"), i(e, "courseid"));
        if !ctx.state.courses.contains_key(&courseid) {
            return Err(WsError::invalid_parameter("Context does not exist"));
        }
        ctx.require("enrol/manual:enrol")?;
        let assignable = ROLES.iter().any(|(id, _)| *id == roleid) && !ctx.opts.wsusercannotassign.contains(&roleid);
        if !assignable {
            return Err(WsError::moodle(
                "wsusercannotassign",
                format!(
                    "You don't have the permission to assign this role ({roleid}) to this user ({userid}) in this course({courseid})."
                ),
            ));
        }
        if ctx.state.courses.get(&courseid).and_then(|c| c.manual_enrolid).is_none() {
            return Err(WsError::moodle(
                "wsnoinstance",
                format!(
                    "Manual enrolment plugin instance doesn't exist or is disabled for the course (id = {courseid})"
                ),
            ));
        }
        if ctx.state.live_user(userid).is_none() {
            return Err(WsError::missing_record("user", "SELECT * FROM {user} WHERE id = ? AND deleted = ?"));
        }
        let status = i64::from(oi(e, "suspend").unwrap_or(0) != 0);
        let (ts, te) = (oi(e, "timestart").unwrap_or(0), oi(e, "timeend").unwrap_or(0));
        if let Some(ev) =
            upsert(ctx.state, EnrolSpec { courseid, userid, roleid, timestart: ts, timeend: te, status }, ctx.now)
        {
            welcomed |= ev.eventname == CREATED;
            ctx.events.push(ev);
        }
        ctx.written += 1;
    }
    // Moodle 4.4+: each new enrolment queues the course welcome message, sent when the transaction commits.
    // Without working mail the first one fails and `message_send` throws, after the enrolments are saved
    // (lib/classes/message/manager.php: `new \moodle_exception("Message was not sent.")`, a code with no
    // language string, so the message is `error/` + the code).
    if welcomed && ctx.opts.welcome_fails() {
        ctx.after_commit = Some(WsError::moodle(MESSAGE_NOT_SENT, format!("error/{MESSAGE_NOT_SENT}")));
    }
    Ok(Value::Null)
}

/// The errorcode of the exception a stock site raises after committing an enrolment it could not mail.
pub const MESSAGE_NOT_SENT: &str = "Message was not sent.";

fn unenrol_schema() -> Vec<(&'static str, Desc)> {
    vec![(
        "enrolments",
        list(single(vec![("userid", req(P::Int)), ("courseid", req(P::Int)), ("roleid", opt(P::Int))])),
    )]
}

fn unenrol_users(ctx: &mut Ctx, args: &Map<String, Value>) -> Result<Value, WsError> {
    for e in items(args, "enrolments") {
        let (userid, courseid) = (i(e, "userid"), i(e, "courseid"));
        if !ctx.state.courses.contains_key(&courseid) {
            return Err(WsError::missing_record(
                "context",
                "SELECT * FROM {context} WHERE instanceid = ? AND contextlevel = ?",
            ));
        }
        ctx.require("enrol/manual:unenrol")?;
        if ctx.state.courses.get(&courseid).and_then(|c| c.manual_enrolid).is_none() {
            return Err(WsError::moodle(
                "wsnoinstance",
                format!(
                    "Manual enrolment plugin instance doesn't exist or is disabled for the course (id = {courseid})"
                ),
            ));
        }
        // Not enrolled: silently nothing to do.
        if ctx.state.unenrol(courseid, userid).is_some() {
            ctx.events.push(Event {
                eventname: DELETED.into(),
                courseid,
                userid,
                timecreated: ctx.now,
                grade_id: None,
                grade: None,
            });
            ctx.written += 1;
        }
    }
    Ok(Value::Null)
}

fn enrolled_schema() -> Vec<(&'static str, Desc)> {
    vec![
        ("courseid", req(P::Int)),
        (
            "options",
            with(list(single(vec![("name", req(P::AlphaNumExt)), ("value", req(P::Raw))])), Req::Default(json!([]))),
        ),
    ]
}

const USERFIELDS: &[&str] = &[
    "id",
    "username",
    "fullname",
    "firstname",
    "lastname",
    "email",
    "address",
    "phone1",
    "phone2",
    "department",
    "institution",
    "interests",
    "firstaccess",
    "lastaccess",
    "auth",
    "confirmed",
    "idnumber",
    "lang",
    "theme",
    "timezone",
    "mailformat",
    "description",
    "descriptionformat",
    "city",
    "country",
    "profileimageurlsmall",
    "profileimageurl",
    "customfields",
    "groups",
    "roles",
    "preferences",
    "enrolledcourses",
    "suspended",
    "lastcourseaccess",
    "trackforums",
];

/// Roles of a user in a course, as `user_get_user_details` lists them (`name` "" for built-in roles).
pub fn roles_json(state: &crate::moodle::state::State, courseid: i64, userid: i64) -> Value {
    let roles: Vec<Value> = state
        .roles
        .get(&(courseid, userid))
        .map(|set| {
            set.iter()
                .map(|r| {
                    let short = ROLES.iter().find(|(id, _)| id == r).map(|(_, s)| *s).unwrap_or("");
                    json!({"roleid": r, "name": "", "shortname": short, "sortorder": r})
                })
                .collect()
        })
        .unwrap_or_default();
    Value::Array(roles)
}

fn get_enrolled_users(ctx: &mut Ctx, args: &Map<String, Value>) -> Result<Value, WsError> {
    let courseid = i(args, "courseid");
    if !ctx.state.courses.contains_key(&courseid) {
        return Err(WsError::missing_record("course", "SELECT * FROM {course} WHERE id = ?"));
    }
    ctx.require("moodle/course:viewparticipants")?;
    let (mut onlyactive, mut onlysuspended, mut from, mut limit) = (false, false, 0usize, 0usize);
    let mut fields: Option<Vec<String>> = None;
    let mut sort_desc = false;
    for o in items(args, "options") {
        let v = s(o, "value");
        let flag = !matches!(v.trim(), "" | "0" | "false" | "no" | "off");
        match s(o, "name") {
            "onlyactive" => onlyactive = flag,
            "onlysuspended" => onlysuspended = flag,
            "limitfrom" => from = v.trim().parse().unwrap_or(0),
            "limitnumber" => limit = v.trim().parse().unwrap_or(0),
            "sortdirection" => sort_desc = v.eq_ignore_ascii_case("desc"),
            "userfields" => {
                let list: Vec<String> = v.split(',').map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect();
                if let Some(bad) = list.iter().find(|f| !USERFIELDS.contains(&f.as_str())) {
                    return Err(WsError::moodle("invaliduserfield", format!("Invalid user field: {bad}")));
                }
                fields = Some(list);
            }
            _ => {}
        }
    }
    if onlyactive && onlysuspended {
        return Err(WsError::invalid_parameter("Both onlyactive and onlysuspended are set, this is not allowed"));
    }
    if ctx.opts.zero_records {
        return Ok(json!([]));
    }
    let now = ctx.now;
    let mut enrolled: Vec<&Enrolment> = ctx
        .state
        .enrolments
        .values()
        .filter(|e| e.courseid == courseid)
        .filter(|e| ctx.state.live_user(e.userid).is_some())
        .filter(|e| {
            let active = e.status == 0 && e.timestart <= now && (e.timeend == 0 || e.timeend > now);
            (!onlyactive || active) && (!onlysuspended || !active)
        })
        .collect();
    enrolled.sort_by_key(|e| e.userid);
    if sort_desc {
        enrolled.reverse();
    }
    let page = enrolled.into_iter().skip(from).take(if limit == 0 { usize::MAX } else { limit });
    let course = ctx.state.courses.get(&courseid);
    let out: Vec<Value> = page
        .filter_map(|e| {
            let u = ctx.state.live_user(e.userid)?;
            let courses = json!([{"id": courseid, "fullname": course.map(|c| c.fullname.clone()).unwrap_or_default(),
                                  "shortname": course.map(|c| c.shortname.clone()).unwrap_or_default()}]);
            let extra = [
                ("groups", json!([])),
                ("roles", roles_json(ctx.state, courseid, e.userid)),
                ("preferences", json!([])),
                ("enrolledcourses", courses),
            ];
            Some(super::users::describe(u, fields.as_deref(), &extra, ctx.opts))
        })
        .collect();
    Ok(Value::Array(out))
}
