//! Courses and categories: the site course in listings, `format_string` escaping unless
//! `moodlewssettingraw=1`, all-or-nothing creation with `shortnametaken` / `courseidnumbertaken`, per-course
//! update warnings.

use serde_json::{json, Map, Value};

use super::{i, ints, items, oi, os, s, warning, Ctx, Function, CORE_VERSION};
use crate::moodle::errors::WsError;
use crate::moodle::params::{def, list, opt, req, single, with, Desc, Req, P};
use crate::moodle::state::{format_string, Category, Course, SITE_COURSE_ID};

pub static FUNCTIONS: &[Function] = &[
    Function {
        name: "core_course_get_courses",
        component_version: CORE_VERSION,
        schema: get_courses_schema,
        run: get_courses,
        write: false,
        transactional: false,
        plugin: false,
    },
    Function {
        name: "core_course_get_courses_by_field",
        component_version: CORE_VERSION,
        schema: by_field_schema,
        run: get_courses_by_field,
        write: false,
        transactional: false,
        plugin: false,
    },
    Function {
        name: "core_course_create_courses",
        component_version: CORE_VERSION,
        schema: create_schema,
        run: create_courses,
        write: true,
        transactional: true,
        plugin: false,
    },
    Function {
        name: "core_course_update_courses",
        component_version: CORE_VERSION,
        schema: update_schema,
        run: update_courses,
        write: true,
        transactional: false,
        plugin: false,
    },
    Function {
        name: "core_course_get_categories",
        component_version: CORE_VERSION,
        schema: get_categories_schema,
        run: get_categories,
        write: false,
        transactional: false,
        plugin: false,
    },
    Function {
        name: "core_course_create_categories",
        component_version: CORE_VERSION,
        schema: create_categories_schema,
        run: create_categories,
        write: true,
        transactional: true,
        plugin: false,
    },
];

fn get_courses_schema() -> Vec<(&'static str, Desc)> {
    vec![("options", with(single(vec![("ids", with(list(req(P::Int)), Req::Optional))]), Req::Default(json!({}))))]
}

fn course_json(c: &Course, raw: bool) -> Value {
    let fmt = |s: &str| format_string(s, raw);
    json!({
        "id": c.id,
        "shortname": fmt(&c.shortname),
        "categoryid": c.categoryid,
        "categorysortorder": if c.id == SITE_COURSE_ID { 1 } else { 10000 + c.id },
        "fullname": fmt(&c.fullname),
        "displayname": fmt(&c.fullname),
        "idnumber": c.idnumber,
        "summary": c.summary,
        "summaryformat": c.summaryformat,
        "format": c.format,
        "showgrades": 1,
        "newsitems": if c.id == SITE_COURSE_ID { 3 } else { 5 },
        "startdate": c.startdate,
        "enddate": c.enddate,
        "numsections": if c.id == SITE_COURSE_ID { 1 } else { 4 },
        "maxbytes": 0,
        "showreports": 0,
        "visible": i64::from(c.visible),
        "groupmode": 0,
        "groupmodeforce": 0,
        "defaultgroupingid": 0,
        "timecreated": c.timecreated,
        "timemodified": c.timemodified,
        "enablecompletion": 0,
        "completionnotify": 0,
        "lang": "",
        "forcetheme": "",
        "courseformatoptions": [],
        "showactivitydates": false,
        "showcompletionconditions": null
    })
}

fn get_courses(ctx: &mut Ctx, args: &Map<String, Value>) -> Result<Value, WsError> {
    ctx.require("moodle/course:view")?;
    if ctx.opts.zero_records {
        return Ok(json!([]));
    }
    let ids = args.get("options").and_then(Value::as_object).map(|o| ints(o, "ids")).unwrap_or_default();
    let out: Vec<Value> = ctx
        .state
        .courses
        .values()
        .filter(|c| ids.is_empty() || ids.contains(&c.id))
        .map(|c| course_json(c, ctx.raw))
        .collect();
    Ok(Value::Array(out))
}

fn by_field_schema() -> Vec<(&'static str, Desc)> {
    vec![("field", def(P::Alpha, json!(""))), ("value", def(P::Raw, json!("")))]
}

fn get_courses_by_field(ctx: &mut Ctx, args: &Map<String, Value>) -> Result<Value, WsError> {
    let field = s(args, "field");
    let value = s(args, "value");
    let ids: Vec<i64> = match field {
        "id" | "category" => vec![value.trim().parse().unwrap_or(0)],
        "ids" => value.split(',').filter_map(|v| v.trim().parse().ok()).collect(),
        "" | "shortname" | "idnumber" => Vec::new(),
        "sectionid" => return Ok(json!({"courses": [], "warnings": []})),
        _ => return Err(WsError::invalid_parameter("Invalid field name")),
    };
    let courses: Vec<Value> = if ctx.opts.zero_records {
        Vec::new()
    } else {
        ctx.state
            .courses
            .values()
            .filter(|c| match field {
                "" => c.id != SITE_COURSE_ID,
                "id" | "ids" => ids.contains(&c.id),
                "category" => ids.contains(&c.categoryid),
                "shortname" => c.shortname == value,
                _ => !value.is_empty() && c.idnumber == value,
            })
            .map(|c| {
                let catname = ctx.state.categories.get(&c.categoryid).map(|k| k.name.clone()).unwrap_or_default();
                let mut v = course_json(c, ctx.raw);
                if let Value::Object(m) = &mut v {
                    m.insert("categoryname".into(), json!(format_string(&catname, ctx.raw)));
                    m.insert("sortorder".into(), json!(10000 + c.id));
                    m.insert("summaryfiles".into(), json!([]));
                    m.insert("overviewfiles".into(), json!([]));
                    m.insert("contacts".into(), json!([]));
                    m.insert("enrollmentmethods".into(), json!(["manual"]));
                    m.insert("theme".into(), json!(""));
                    m.insert("marker".into(), json!(0));
                    m.insert("calendartype".into(), json!(""));
                    m.remove("categorysortorder");
                    m.remove("numsections");
                    m.remove("forcetheme");
                }
                v
            })
            .collect()
    };
    Ok(json!({"courses": courses, "warnings": []}))
}

fn course_fields(create: bool) -> Vec<(&'static str, Desc)> {
    let r = |p: P| if create { req(p) } else { opt(p) };
    let d = |p: P, v: Value| if create { def(p, v) } else { opt(p) };
    let mut keys = Vec::new();
    if !create {
        keys.push(("id", req(P::Int)));
    }
    keys.extend([
        ("fullname", r(P::Text)),
        ("shortname", r(P::Text)),
        ("categoryid", r(P::Int)),
        ("idnumber", opt(P::Raw)),
        ("summary", opt(P::Raw)),
        ("summaryformat", d(P::Int, json!(1))),
        ("format", d(P::Plugin, json!("topics"))),
        ("showgrades", d(P::Int, json!(1))),
        ("newsitems", d(P::Int, json!(5))),
        ("startdate", opt(P::Int)),
        ("enddate", opt(P::Int)),
        ("numsections", opt(P::Int)),
        ("maxbytes", d(P::Int, json!(0))),
        ("showreports", d(P::Int, json!(0))),
        ("visible", opt(P::Int)),
        ("hiddensections", opt(P::Int)),
        ("groupmode", d(P::Int, json!(0))),
        ("groupmodeforce", d(P::Int, json!(0))),
        ("defaultgroupingid", d(P::Int, json!(0))),
        ("enablecompletion", opt(P::Int)),
        ("completionnotify", opt(P::Int)),
        ("lang", opt(P::SafeDir)),
        ("forcetheme", opt(P::Plugin)),
        (
            "courseformatoptions",
            with(list(single(vec![("name", req(P::AlphaNumExt)), ("value", req(P::Raw))])), Req::Optional),
        ),
        (
            "customfields",
            with(list(single(vec![("shortname", req(P::AlphaNumExt)), ("value", req(P::Raw))])), Req::Optional),
        ),
    ]);
    keys
}

fn create_schema() -> Vec<(&'static str, Desc)> {
    vec![("courses", list(single(course_fields(true))))]
}

fn update_schema() -> Vec<(&'static str, Desc)> {
    vec![("courses", list(single(course_fields(false))))]
}

fn catcontext_error(catid: i64) -> WsError {
    WsError::moodle(
        "errorcatcontextnotvalid",
        format!(
            "You cannot execute functions in the category context (category id:{catid}). The context error message was: Context does not exist"
        ),
    )
}

fn create_courses(ctx: &mut Ctx, args: &Map<String, Value>) -> Result<Value, WsError> {
    let mut out = Vec::new();
    for c in items(args, "courses") {
        let cat = i(c, "categoryid");
        if !ctx.state.categories.contains_key(&cat) {
            return Err(catcontext_error(cat));
        }
        ctx.require("moodle/course:create")?;
        for f in ["fullname", "shortname"] {
            if s(c, f).trim().is_empty() {
                return Err(WsError::moodle("errorinvalidparam", format!("The param \"{f}\" is invalid.")));
            }
        }
        let shortname = s(c, "shortname");
        if ctx.state.courses.values().any(|x| x.shortname == shortname) {
            return Err(WsError::moodle(
                "shortnametaken",
                format!("Short name is already used for another course ({shortname})"),
            ));
        }
        let idnumber = os(c, "idnumber").unwrap_or_default();
        if !idnumber.is_empty() && ctx.state.courses.values().any(|x| x.idnumber == idnumber) {
            return Err(WsError::moodle(
                "courseidnumbertaken",
                format!("ID number is already used for another course ({idnumber})"),
            ));
        }
        let id = ctx.state.next_course_id();
        let mut course = ctx.state.new_course(id, shortname, s(c, "fullname"), idnumber, cat, ctx.now);
        // Default start: today at midnight; default end: one year later (course duration setting).
        course.startdate = oi(c, "startdate").unwrap_or(ctx.now - ctx.now.rem_euclid(86400));
        course.enddate = oi(c, "enddate").unwrap_or(course.startdate + 365 * 86400);
        course.visible = oi(c, "visible") != Some(0);
        course.summary = os(c, "summary").unwrap_or_default().to_string();
        course.summaryformat = i(c, "summaryformat");
        course.format = s(c, "format").to_string();
        ctx.state.courses.insert(id, course);
        ctx.written += 1;
        out.push(json!({"id": id, "shortname": shortname}));
    }
    Ok(Value::Array(out))
}

fn update_one(ctx: &mut Ctx, c: &Map<String, Value>) -> Result<bool, WsError> {
    let id = i(c, "id");
    let Some(existing) = ctx.state.courses.get(&id).cloned() else {
        return Err(WsError::missing_record("course", "SELECT * FROM {course} WHERE id = ?"));
    };
    ctx.require("moodle/course:update")?;
    if let Some(cat) = oi(c, "categoryid") {
        if !ctx.state.categories.contains_key(&cat) {
            return Err(catcontext_error(cat));
        }
    }
    for f in ["fullname", "shortname"] {
        if os(c, f).is_some_and(|v| v.trim().is_empty()) {
            return Err(WsError::moodle("errorinvalidparam", format!("The param \"{f}\" is invalid.")));
        }
    }
    if let Some(sn) = os(c, "shortname") {
        if ctx.state.courses.values().any(|x| x.id != id && x.shortname == sn) {
            return Err(WsError::moodle(
                "shortnametaken",
                format!("Short name is already used for another course ({sn})"),
            ));
        }
    }
    if let Some(idn) = os(c, "idnumber").filter(|v| !v.is_empty()) {
        if ctx.state.courses.values().any(|x| x.id != id && x.idnumber == idn) {
            return Err(WsError::moodle(
                "courseidnumbertaken",
                format!("ID number is already used for another course ({idn})"),
            ));
        }
    }
    let mut course = existing.clone();
    for (k, slot) in [
        ("fullname", &mut course.fullname),
        ("shortname", &mut course.shortname),
        ("idnumber", &mut course.idnumber),
        ("summary", &mut course.summary),
        ("format", &mut course.format),
    ] {
        if let Some(v) = os(c, k) {
            *slot = v.to_string();
        }
    }
    for (k, slot) in [
        ("categoryid", &mut course.categoryid),
        ("startdate", &mut course.startdate),
        ("enddate", &mut course.enddate),
        ("summaryformat", &mut course.summaryformat),
    ] {
        if let Some(v) = oi(c, k) {
            *slot = v;
        }
    }
    if let Some(v) = oi(c, "visible") {
        course.visible = v != 0;
    }
    if course != existing {
        course.timemodified = ctx.now;
        ctx.state.courses.insert(id, course);
        return Ok(true);
    }
    Ok(false)
}

fn update_courses(ctx: &mut Ctx, args: &Map<String, Value>) -> Result<Value, WsError> {
    let mut warnings = Vec::new();
    for c in items(args, "courses") {
        match update_one(ctx, c) {
            Ok(_) => ctx.written += 1,
            Err(e) => {
                let code = e.code_for(ctx.opts.debug).to_string();
                let msg = if e.missing_record && !ctx.opts.debug {
                    "Can't find data record in database.".into()
                } else {
                    e.message
                };
                warnings.push(warning("course", i(c, "id"), &code, msg));
            }
        }
    }
    Ok(json!({"warnings": warnings}))
}

fn get_categories_schema() -> Vec<(&'static str, Desc)> {
    vec![
        ("criteria", with(list(single(vec![("key", req(P::Alpha)), ("value", req(P::Raw))])), Req::Default(json!([])))),
        ("addsubcategories", def(P::Bool, json!(true))),
    ]
}

fn path_of(cats: &std::collections::BTreeMap<i64, Category>, id: i64) -> Vec<i64> {
    let mut path = vec![id];
    let mut cur = id;
    while let Some(p) = cats.get(&cur).map(|c| c.parent).filter(|p| *p != 0 && !path.contains(p)) {
        path.push(p);
        cur = p;
    }
    path.reverse();
    path
}

fn get_categories(ctx: &mut Ctx, args: &Map<String, Value>) -> Result<Value, WsError> {
    let crit = items(args, "criteria");
    for c in &crit {
        if !["id", "ids", "name", "parent", "idnumber", "visible", "theme"].contains(&s(c, "key")) {
            return Err(WsError::moodle("criteriaerror", "Missing permissions to search on a criterion."));
        }
    }
    if ctx.opts.zero_records {
        return Ok(json!([]));
    }
    let cats = &ctx.state.categories;
    let matches = |c: &Category| {
        crit.iter().all(|k| {
            let v = s(k, "value");
            match s(k, "key") {
                "id" => c.id.to_string() == v,
                "ids" => v.split(',').any(|x| x.trim() == c.id.to_string()),
                "name" => c.name == v,
                "parent" => c.parent.to_string() == v,
                "idnumber" => c.idnumber == v,
                "visible" => i64::from(c.visible).to_string() == v,
                _ => false,
            }
        })
    };
    let direct: Vec<i64> = cats.values().filter(|c| matches(c)).map(|c| c.id).collect();
    let add_sub = args.get("addsubcategories").and_then(Value::as_bool).unwrap_or(true);
    let out: Vec<Value> = cats
        .values()
        .filter(|c| {
            direct.contains(&c.id)
                || (add_sub && !crit.is_empty() && path_of(cats, c.id).iter().any(|p| direct.contains(p)))
        })
        .map(|c| {
            let path = path_of(cats, c.id);
            let coursecount = ctx.state.courses.values().filter(|x| x.categoryid == c.id).count();
            json!({
                "id": c.id,
                "name": format_string(&c.name, ctx.raw),
                "idnumber": c.idnumber,
                "description": c.description,
                "descriptionformat": c.descriptionformat,
                "parent": c.parent,
                "sortorder": c.id * 10000,
                "coursecount": coursecount,
                "visible": i64::from(c.visible),
                "visibleold": i64::from(c.visible),
                "timemodified": c.timemodified,
                "depth": path.len(),
                "path": path.iter().map(|p| format!("/{p}")).collect::<String>(),
                "theme": ""
            })
        })
        .collect();
    Ok(Value::Array(out))
}

fn create_categories_schema() -> Vec<(&'static str, Desc)> {
    vec![(
        "categories",
        list(single(vec![
            ("name", req(P::Text)),
            ("parent", def(P::Int, json!(0))),
            ("idnumber", opt(P::Raw)),
            ("description", opt(P::Raw)),
            ("descriptionformat", def(P::Int, json!(1))),
            ("theme", opt(P::Plugin)),
        ])),
    )]
}

fn create_categories(ctx: &mut Ctx, args: &Map<String, Value>) -> Result<Value, WsError> {
    ctx.require("moodle/category:manage")?;
    let mut out = Vec::new();
    for c in items(args, "categories") {
        let parent = i(c, "parent");
        if parent != 0 && !ctx.state.categories.contains_key(&parent) {
            return Err(WsError::moodle("unknowcategory", "Unknown category"));
        }
        let name = s(c, "name");
        if name.trim().is_empty() {
            return Err(WsError::moodle("categorynamerequired", "A category name is required."));
        }
        let idnumber = os(c, "idnumber").unwrap_or_default();
        if !idnumber.is_empty() && ctx.state.categories.values().any(|x| x.idnumber == idnumber) {
            return Err(WsError::moodle("categoryidnumbertaken", "ID number is already used for another category"));
        }
        let id = ctx.state.next_category_id();
        ctx.state.categories.insert(
            id,
            Category {
                id,
                name: name.into(),
                idnumber: idnumber.into(),
                parent,
                description: os(c, "description").unwrap_or_default().into(),
                descriptionformat: i(c, "descriptionformat"),
                visible: true,
                timemodified: ctx.now,
            },
        );
        ctx.written += 1;
        out.push(json!({"id": id, "name": name}));
    }
    Ok(Value::Array(out))
}
