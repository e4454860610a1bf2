//! Users: lookups with Moodle's exact matching rules, all-or-nothing creation,
//! per-user update warnings, soft deletion.

use serde_json::{json, Map, Value};

use super::{i, ints, items, ob, oi, os, s, strs, warning, Ctx, Function, CORE_VERSION};
use crate::moodle::errors::{WsError, EX_MOODLE};
use crate::moodle::params::{clean_text, def, list, opt, req, single, valid_email, with, Desc, Req, P};
use crate::moodle::state::{User, ADMIN_ID, GUEST_ID};
use crate::moodle::MoodleOptions;

pub static FUNCTIONS: &[Function] = &[
    Function {
        name: "core_user_get_users",
        component_version: CORE_VERSION,
        schema: get_users_schema,
        run: get_users,
        write: false,
        transactional: false,
        plugin: false,
    },
    Function {
        name: "core_user_get_users_by_field",
        component_version: CORE_VERSION,
        schema: by_field_schema,
        run: get_users_by_field,
        write: false,
        transactional: false,
        plugin: false,
    },
    Function {
        name: "core_user_create_users",
        component_version: CORE_VERSION,
        schema: create_schema,
        run: create_users,
        write: true,
        transactional: true,
        plugin: false,
    },
    Function {
        name: "core_user_update_users",
        component_version: CORE_VERSION,
        schema: update_schema,
        run: update_users,
        write: true,
        transactional: false,
        plugin: false,
    },
    Function {
        name: "core_user_delete_users",
        component_version: CORE_VERSION,
        schema: delete_schema,
        run: delete_users,
        write: true,
        transactional: true,
        plugin: false,
    },
];

/// The auth plugins enabled on the fake site (`mnet` and `webservice` are refused by create_users).
const AUTHS: &[&str] = &["manual", "nologin", "email", "oauth2", "ldap", "db", "cas", "shibboleth", "lti"];
const THEMES: &[&str] = &["boost", "classic"];

/// `user_description` as the user's details are returned (keys in the declared order; optional keys absent
/// when empty, like `user_get_user_details`). `fields` filters as `userfields` does (`id` always present).
/// `phone1` and `phone2` are there only for a site admin's token or when *Show user identity* lists them
/// (`user/lib.php`: no capability grants them), so a stock site leaves them out even when they are set.
pub fn describe(u: &User, fields: Option<&[String]>, extra: &[(&str, Value)], opts: &MoodleOptions) -> Value {
    let want = |k: &str| match fields {
        Some(f) => f.iter().any(|x| x == k),
        None => true,
    };
    let mut m = Map::new();
    m.insert("id".into(), json!(u.id));
    let mut put = |k: &str, v: Value| {
        if want(k) {
            m.insert(k.into(), v);
        }
    };
    put("username", json!(u.username));
    put("firstname", json!(u.firstname));
    put("lastname", json!(u.lastname));
    put("fullname", json!(u.fullname()));
    put("email", json!(u.email));
    for (k, v) in [("address", &u.address), ("phone1", &u.phone1), ("phone2", &u.phone2)] {
        let shown = k == "address" || opts.shows(k);
        if !v.is_empty() && shown {
            put(k, json!(v));
        }
    }
    for (k, v) in [("department", &u.department), ("institution", &u.institution), ("idnumber", &u.idnumber)] {
        if !v.is_empty() {
            put(k, json!(v));
        }
    }
    put("firstaccess", json!(0));
    put("lastaccess", json!(0));
    put("auth", json!(u.auth));
    put("suspended", json!(u.suspended));
    put("confirmed", json!(u.confirmed));
    put("lang", json!(u.lang));
    put("theme", json!(""));
    put("timezone", json!(u.timezone));
    put("mailformat", json!(u.mailformat));
    put("description", json!(u.description));
    put("descriptionformat", json!(1));
    for (k, v) in [("city", &u.city), ("country", &u.country)] {
        if !v.is_empty() {
            put(k, json!(v));
        }
    }
    put("profileimageurlsmall", json!("https://sandbox.invalid/theme/image.php/boost/core/1/u/f2"));
    put("profileimageurl", json!("https://sandbox.invalid/theme/image.php/boost/core/1/u/f1"));
    if !u.customfields.is_empty() {
        let cf: Vec<Value> = u
            .customfields
            .iter()
            .map(|(k, v)| json!({"type": "text", "value": v, "displayvalue": v, "name": k, "shortname": k}))
            .collect();
        put("customfields", Value::Array(cf));
    }
    for (k, v) in extra {
        put(k, v.clone());
    }
    Value::Object(m)
}

fn get_users_schema() -> Vec<(&'static str, Desc)> {
    vec![("criteria", list(single(vec![("key", req(P::Alpha)), ("value", req(P::Raw))])))]
}

/// SQL `LIKE` without case: `%` any run, `_` one character, `\` escapes.
pub fn like(value: &str, pattern: &str) -> bool {
    fn go(v: &[char], p: &[char]) -> bool {
        match p.first() {
            None => v.is_empty(),
            Some('%') => (0..=v.len()).any(|k| go(&v[k..], &p[1..])),
            Some('_') => !v.is_empty() && go(&v[1..], &p[1..]),
            Some('\\') if p.len() > 1 => v.first() == Some(&p[1]) && go(&v[1..], &p[2..]),
            Some(c) => v.first() == Some(c) && go(&v[1..], &p[1..]),
        }
    }
    let v: Vec<char> = value.to_lowercase().chars().collect();
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    go(&v, &p)
}

fn get_users(ctx: &mut Ctx, args: &Map<String, Value>) -> Result<Value, WsError> {
    ctx.require("moodle/user:viewdetails")?;
    let mut warnings = Vec::new();
    let mut used: Vec<String> = Vec::new();
    let mut filters: Vec<(String, String)> = Vec::new();
    for c in items(args, "criteria") {
        let key = s(c, "key").to_string();
        if used.contains(&key) {
            return Err(WsError::moodle("keyalreadyset", "error/keyalreadyset")
                .with_debuginfo(format!("The key {key} can only be sent once")));
        }
        used.push(key.clone());
        let value = s(c, "value");
        let cleaned = match key.as_str() {
            "id" => value.trim().parse::<i64>().unwrap_or(0).to_string(),
            "idnumber" => value.to_string(),
            "username" => clean_text(P::Username, value),
            "email" => clean_text(P::RawTrimmed, value),
            "auth" => clean_text(P::Plugin, value),
            "firstname" | "lastname" => clean_text(P::NoTags, value),
            _ => {
                warnings.push(warning(
                    key.clone(),
                    0,
                    "invalidfieldparameter",
                    format!("The search key '{key}' is not supported, look at the web service documentation"),
                ));
                continue;
            }
        };
        filters.push((key, cleaned));
    }
    let users: Vec<Value> = if filters.is_empty() || ctx.opts.zero_records {
        Vec::new()
    } else {
        ctx.state
            .users
            .values()
            .filter(|u| !u.deleted)
            .filter(|u| {
                filters.iter().all(|(k, v)| match k.as_str() {
                    "id" => u.id.to_string() == *v,
                    "idnumber" => u.idnumber == *v,
                    "username" => u.username == *v,
                    "auth" => u.auth == *v,
                    "email" => like(&u.email, v),
                    "firstname" => like(&u.firstname, v),
                    "lastname" => like(&u.lastname, v),
                    _ => false,
                })
            })
            .map(|u| describe(u, None, &[], ctx.opts))
            .collect()
    };
    Ok(json!({"users": users, "warnings": warnings}))
}

fn by_field_schema() -> Vec<(&'static str, Desc)> {
    vec![("field", req(P::Alpha)), ("values", list(req(P::Raw)))]
}

fn get_users_by_field(ctx: &mut Ctx, args: &Map<String, Value>) -> Result<Value, WsError> {
    ctx.require("moodle/user:viewdetails")?;
    let field = s(args, "field");
    let values = strs(args, "values");
    let ptype = match field {
        "id" | "idnumber" => None,
        "username" => Some(P::Username),
        "email" => Some(P::RawTrimmed),
        _ => {
            return Err(WsError::coding(
                "invalid field parameter",
                format!("The search field '{field}' is not supported, look at the web service documentation"),
            ))
        }
    };
    let mut wanted = Vec::new();
    for v in &values {
        let cleaned = match (field, ptype) {
            // PHP compares loosely (`$value != $cleanedvalue`): " 12" equals 12, "12abc" does not.
            ("id", _) => v.trim().parse::<i64>().map(|n| n.to_string()).unwrap_or_else(|_| "0".into()),
            (_, Some(p)) => clean_text(p, v),
            _ => v.clone(),
        };
        let same = if field == "id" { v.trim().parse::<i64>().is_ok() } else { cleaned == *v };
        if !same {
            return Err(WsError::invalid_parameter(format!(
                "The field '{field}' value is invalid: {v}(cleaned value: {cleaned})"
            )));
        }
        wanted.push(cleaned);
    }
    if ctx.opts.zero_records {
        return Ok(json!([]));
    }
    let mut out = Vec::new();
    for u in ctx.state.users.values() {
        let hit = match field {
            "id" => wanted.contains(&u.id.to_string()),
            "idnumber" => !u.idnumber.is_empty() && wanted.contains(&u.idnumber),
            "username" => wanted.contains(&u.username),
            // Exact, case-sensitive: PostgreSQL's collation (the college runs PostgreSQL).
            _ => wanted.contains(&u.email),
        };
        if hit {
            if u.deleted && field == "id" {
                // context_user::instance(MUST_EXIST) on a deleted user.
                return Err(WsError::missing_record(
                    "user",
                    "SELECT * FROM {context} WHERE instanceid = ? AND contextlevel = 30",
                ));
            }
            out.push(describe(u, None, &[], ctx.opts));
        }
    }
    Ok(Value::Array(out))
}

fn customfields() -> Desc {
    with(list(single(vec![("type", req(P::AlphaNumExt)), ("value", req(P::Raw))])), Req::Optional)
}

fn preferences() -> Desc {
    with(list(single(vec![("type", req(P::Raw)), ("value", req(P::Raw))])), Req::Optional)
}

fn create_schema() -> Vec<(&'static str, Desc)> {
    vec![(
        "users",
        list(single(vec![
            ("createpassword", opt(P::Bool)),
            ("username", req(P::Username)),
            ("auth", def(P::Plugin, json!("manual"))),
            ("password", opt(P::Raw)),
            ("firstname", req(P::NoTags)),
            ("lastname", req(P::NoTags)),
            ("email", req(P::RawTrimmed)),
            ("maildisplay", opt(P::Int)),
            ("city", opt(P::NoTags)),
            ("country", opt(P::Alpha)),
            ("timezone", opt(P::Timezone)),
            ("description", opt(P::Raw)),
            ("firstnamephonetic", opt(P::NoTags)),
            ("lastnamephonetic", opt(P::NoTags)),
            ("middlename", opt(P::NoTags)),
            ("alternatename", opt(P::NoTags)),
            ("interests", opt(P::Text)),
            ("idnumber", def(P::Raw, json!(""))),
            ("institution", opt(P::Text)),
            ("department", opt(P::Text)),
            ("phone1", opt(P::NoTags)),
            ("phone2", opt(P::NoTags)),
            ("address", opt(P::Text)),
            ("lang", def(P::SafeDir, json!("en"))),
            ("calendartype", def(P::Plugin, json!("gregorian"))),
            ("theme", opt(P::Plugin)),
            ("mailformat", opt(P::Int)),
            ("customfields", customfields()),
            ("preferences", preferences()),
        ])),
    )]
}

/// The site's default password policy (8+ characters, a digit, a lower and an upper case letter, a symbol);
/// the failure is a `moodle_exception` whose errorcode is the HTML list of broken rules.
fn password_policy(pw: &str) -> Option<String> {
    let mut err = String::new();
    if pw.chars().count() < 8 {
        err.push_str("<div>Passwords must be at least 8 characters long.</div>");
    }
    if !pw.chars().any(|c| c.is_ascii_digit()) {
        err.push_str("<div>Passwords must have at least 1 digit(s).</div>");
    }
    if !pw.chars().any(char::is_lowercase) {
        err.push_str("<div>Passwords must have at least 1 lower case letter(s).</div>");
    }
    if !pw.chars().any(char::is_uppercase) {
        err.push_str("<div>Passwords must have at least 1 upper case letter(s).</div>");
    }
    if !pw.chars().any(|c| !c.is_alphanumeric()) {
        err.push_str("<div>Passwords must have at least 1 special character(s) such as as *, -, or #.</div>");
    }
    (!err.is_empty()).then_some(err)
}

fn email_taken(ctx: &Ctx, email: &str, except: i64) -> bool {
    let e = email.to_lowercase();
    ctx.state.users.values().any(|u| u.id != except && !u.deleted && u.email.to_lowercase() == e)
}

fn apply_optional(u: &mut User, m: &Map<String, Value>, profile_fields: &[String]) {
    for (k, slot) in [
        ("city", &mut u.city),
        ("country", &mut u.country),
        ("timezone", &mut u.timezone),
        ("description", &mut u.description),
        ("institution", &mut u.institution),
        ("department", &mut u.department),
        ("phone1", &mut u.phone1),
        ("phone2", &mut u.phone2),
        ("address", &mut u.address),
        ("lang", &mut u.lang),
        ("idnumber", &mut u.idnumber),
        ("firstname", &mut u.firstname),
        ("lastname", &mut u.lastname),
        ("email", &mut u.email),
        ("username", &mut u.username),
        ("auth", &mut u.auth),
    ] {
        if let Some(v) = os(m, k) {
            *slot = v.to_string();
        }
    }
    if let Some(v) = oi(m, "mailformat") {
        u.mailformat = v;
    }
    if let Some(v) = os(m, "password") {
        u.password = Some(v.to_string());
    }
    // Unknown profile field shortnames are silently ignored, as on a real site.
    for cf in items(m, "customfields") {
        if profile_fields.iter().any(|f| f == s(cf, "type")) {
            u.customfields.insert(s(cf, "type").to_string(), s(cf, "value").to_string());
        }
    }
}

fn create_users(ctx: &mut Ctx, args: &Map<String, Value>) -> Result<Value, WsError> {
    ctx.require("moodle/user:create")?;
    let mut out = Vec::new();
    for u in items(args, "users") {
        for f in ["username", "firstname", "lastname"] {
            if s(u, f).trim().is_empty() {
                return Err(WsError::invalid_parameter(format!("The field {f} cannot be blank")));
            }
        }
        let username = s(u, "username");
        if ctx.state.users.values().any(|x| x.username == username) {
            return Err(WsError::invalid_parameter(format!("Username already exists: {username}")));
        }
        let auth = s(u, "auth");
        if !AUTHS.contains(&auth) {
            return Err(WsError::invalid_parameter(format!("Invalid authentication type: {auth}")));
        }
        if s(u, "lang") != "en" {
            return Err(WsError::invalid_parameter(format!("Invalid language code: {}", s(u, "lang"))));
        }
        if let Some(t) = os(u, "theme").filter(|t| !t.is_empty() && !THEMES.contains(t)) {
            return Err(WsError::invalid_parameter(format!("Invalid theme: {t}")));
        }
        let createpassword = ob(u, "createpassword").unwrap_or(false);
        let internal = matches!(auth, "manual" | "nologin" | "email");
        if !createpassword && internal && os(u, "password").unwrap_or_default().is_empty() {
            return Err(WsError::invalid_parameter(
                "Invalid password: you must provide a password, or set createpassword.",
            ));
        }
        let email = s(u, "email");
        if !valid_email(email) {
            return Err(WsError::invalid_parameter(format!("Email address is invalid: {email}")));
        }
        if !ctx.opts.allow_accounts_same_email && email_taken(ctx, email, 0) {
            return Err(WsError::invalid_parameter(format!("Email address already exists: {email}")));
        }
        if !createpassword {
            if let Some(msg) = os(u, "password").filter(|p| !p.is_empty()).and_then(password_policy) {
                return Err(WsError::new(EX_MOODLE, &msg, format!("error/{msg}")));
            }
        }
        let id = ctx.state.next_user_id();
        let mut user = User::new(id, username, "", "", "", ctx.now);
        apply_optional(&mut user, u, &ctx.opts.profile_fields);
        ctx.state.users.insert(id, user);
        ctx.written += 1;
        out.push(json!({"id": id, "username": username}));
    }
    Ok(Value::Array(out))
}

fn update_schema() -> Vec<(&'static str, Desc)> {
    vec![(
        "users",
        list(single(vec![
            ("id", req(P::Int)),
            ("username", opt(P::Username)),
            ("auth", opt(P::Plugin)),
            ("suspended", opt(P::Bool)),
            ("password", opt(P::Raw)),
            ("firstname", opt(P::NoTags)),
            ("lastname", opt(P::NoTags)),
            ("email", opt(P::RawTrimmed)),
            ("maildisplay", opt(P::Int)),
            ("city", opt(P::NoTags)),
            ("country", opt(P::Alpha)),
            ("timezone", opt(P::Timezone)),
            ("description", opt(P::Raw)),
            ("userpicture", opt(P::Int)),
            ("firstnamephonetic", opt(P::NoTags)),
            ("lastnamephonetic", opt(P::NoTags)),
            ("middlename", opt(P::NoTags)),
            ("alternatename", opt(P::NoTags)),
            ("interests", opt(P::Text)),
            ("idnumber", opt(P::Raw)),
            ("institution", opt(P::Text)),
            ("department", opt(P::Text)),
            ("phone1", opt(P::NoTags)),
            ("phone2", opt(P::NoTags)),
            ("address", opt(P::Text)),
            ("lang", opt(P::SafeDir)),
            ("calendartype", opt(P::Plugin)),
            ("theme", opt(P::Plugin)),
            ("mailformat", opt(P::Int)),
            ("customfields", customfields()),
            ("preferences", preferences()),
        ])),
    )]
}

/// One user's update; an error becomes that user's warning.
fn update_one(ctx: &mut Ctx, u: &Map<String, Value>) -> Result<bool, (&'static str, String)> {
    let id = i(u, "id");
    let Some(existing) = ctx.state.users.get(&id).cloned() else {
        return Err(("invaliduserid", "Invalid user ID".into()));
    };
    if existing.deleted {
        return Err(("usernotupdateddeleted", "User is a deleted user".into()));
    }
    if id == GUEST_ID {
        return Err(("usernotupdatedguest", "Cannot update guest account".into()));
    }
    if let Some(email) = os(u, "email").filter(|e| *e != existing.email) {
        if !valid_email(email) {
            return Err(("useremailinvalid", "Invalid email address".into()));
        }
        if !ctx.opts.allow_accounts_same_email && email_taken(ctx, email, id) {
            return Err(("useremailduplicate", "Duplicate address".into()));
        }
    }
    if let Some(name) = os(u, "username") {
        if ctx.state.users.values().any(|x| x.id != id && x.username == name) {
            // Not pre-checked by Moodle: the unique index refuses the write.
            return Err(("dmlwriteexception", "Error writing to database".into()));
        }
    }
    if let Some(msg) = os(u, "password").filter(|p| !p.is_empty()).and_then(password_policy) {
        return Err(("dmlwriteexception", msg));
    }
    let mut user = existing.clone();
    apply_optional(&mut user, u, &ctx.opts.profile_fields);
    if let Some(sus) = ob(u, "suspended") {
        user.suspended = sus;
    }
    if user != existing {
        user.timemodified = ctx.now;
        ctx.state.users.insert(id, user);
        return Ok(true);
    }
    Ok(false)
}

fn update_users(ctx: &mut Ctx, args: &Map<String, Value>) -> Result<Value, WsError> {
    ctx.require("moodle/user:update")?;
    let mut warnings = Vec::new();
    for u in items(args, "users") {
        match update_one(ctx, u) {
            Ok(_) => ctx.written += 1,
            Err((code, msg)) => warnings.push(warning("user", i(u, "id"), code, msg)),
        }
    }
    Ok(json!({"warnings": warnings}))
}

fn delete_schema() -> Vec<(&'static str, Desc)> {
    vec![("userids", list(req(P::Int)))]
}

fn delete_users(ctx: &mut Ctx, args: &Map<String, Value>) -> Result<Value, WsError> {
    ctx.require("moodle/user:delete")?;
    for id in ints(args, "userids") {
        let Some(user) = ctx.state.live_user(id).cloned() else {
            return Err(WsError::missing_record("user", "SELECT * FROM {user} WHERE id = ? AND deleted = ?"));
        };
        if id == ADMIN_ID {
            return Err(WsError::moodle("useradminodelete", "You can not delete an admin account"));
        }
        // Soft delete: the row stays, identity fields are mangled so lookups no longer find it.
        let mut base = clean_text(P::Username, &format!("{}.{}", user.email, ctx.now));
        while ctx.state.users.values().any(|u| u.username == base) {
            base.push('1');
        }
        let md5 = format!("{:x}", md5_hex(&user.username));
        let u = ctx.state.users.get_mut(&id).ok_or_else(|| WsError::missing_record("user", ""))?;
        u.deleted = true;
        u.username = base;
        u.email = md5;
        u.idnumber.clear();
        u.timemodified = ctx.now;
        let courses: Vec<i64> = ctx.state.enrolments.keys().filter(|(_, uid)| *uid == id).map(|(c, _)| *c).collect();
        for c in courses {
            ctx.state.unenrol(c, id);
        }
        ctx.written += 1;
    }
    Ok(Value::Null)
}

/// Moodle stores md5(old username) as a deleted user's email (change detection style, not security).
fn md5_hex(s: &str) -> md5::digest::Output<md5::Md5> {
    use md5::Digest;
    md5::Md5::digest(s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::like;

    #[test]
    fn like_semantics() {
        assert!(like("A_B@x.org", "a_b@x.org"));
        assert!(like("axb@x.org", "a_b@x.org"));
        assert!(!like("axb@x.org", "a\\_b@x.org"));
        assert!(like("john.smith@x.org", "%smith%"));
        assert!(!like("john", "jo"));
    }
}
