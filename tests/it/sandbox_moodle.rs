//! The fake Moodle's own tests: one per behaviour of Moodle's REST server and
//! docs/plugin-contract.md, spoken over real HTTP on loopback with a tiny std-only client.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use serde_json::{json, Value};
use zmsync::sandbox::moodle::{FakeMoodle, FaultKind, MoodleOptions};
use zmsync::sandbox::seed::{MoodleCourse, MoodleEnrolment, MoodleGrade, MoodleSeed, MoodleUser};

// ---------- a tiny HTTP client ----------

#[derive(Debug)]
struct Resp {
    status: u16,
    ctype: String,
    body: String,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

/// One request on a fresh connection. `Err` is a transport failure (reset, closed without an answer).
fn request(addr: SocketAddr, method: &str, target: &str, ctype: Option<&str>, body: &[u8]) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(c) = ctype {
        head.push_str(&format!("Content-Type: {c}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    if buf.is_empty() {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed without an answer"));
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let ctype = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: ").or_else(|| l.strip_prefix("content-type: ")))
        .unwrap_or("")
        .to_string();
    Ok(Resp { status, ctype, body: body.to_string() })
}

fn encode(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// POST with the reserved parameters in the query string and the arguments in the body.
fn post(fake: &FakeMoodle, function: &str, args: &[(&str, &str)]) -> Resp {
    post_raw(
        fake,
        &encode(&[("wstoken", &fake.token()), ("wsfunction", function), ("moodlewsrestformat", "json")]),
        &encode(args),
    )
}

fn post_raw(fake: &FakeMoodle, query: &str, body: &str) -> Resp {
    request(
        fake.addr(),
        "POST",
        &format!("/webservice/rest/server.php?{query}"),
        Some("application/x-www-form-urlencoded"),
        body.as_bytes(),
    )
    .expect("transport")
}

fn call(fake: &FakeMoodle, function: &str, args: &[(&str, &str)]) -> Value {
    let r = post(fake, function, args);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.ctype, "application/json");
    r.json()
}

#[track_caller]
fn assert_error(v: &Value, code: &str) {
    assert_eq!(v["errorcode"], code, "{v}");
    assert!(v["exception"].is_string(), "{v}");
    assert!(v["message"].is_string(), "{v}");
}

fn user(id: i64, username: &str, email: &str, idnumber: &str) -> MoodleUser {
    MoodleUser {
        id,
        username: username.into(),
        firstname: "First".into(),
        lastname: format!("Last{id}"),
        email: email.into(),
        idnumber: idnumber.into(),
        auth: "manual".into(),
        suspended: false,
        phone1: String::new(),
    }
}

fn course(id: i64, shortname: &str, fullname: &str, idnumber: &str) -> MoodleCourse {
    MoodleCourse {
        id,
        shortname: shortname.into(),
        fullname: fullname.into(),
        idnumber: idnumber.into(),
        categoryid: 1,
        startdate: 0,
        enddate: 0,
        visible: true,
    }
}

/// Users 10–12, courses 20 ("Maths & Physics") and 21, user 10 student in 20 with a grade.
fn seed() -> MoodleSeed {
    MoodleSeed {
        users: vec![
            user(10, "alice", "alice@example.org", "STU-1"),
            user(11, "a_b", "a_b@example.org", ""),
            user(12, "axb", "axb@example.org", "STU-3"),
        ],
        courses: vec![course(20, "MP101", "Maths & Physics", "5847596000000020"), course(21, "CS101", "Computing", "")],
        enrolments: vec![MoodleEnrolment { courseid: 20, userid: 10, roleid: 5, status: 0, timestart: 0, timeend: 0 }],
        grades: vec![MoodleGrade {
            courseid: 20,
            userid: 10,
            finalgrade: Some(85.5),
            grademin: 0.0,
            grademax: 100.0,
            scaleitem: None,
            timemodified: 1767261600,
        }],
        ..MoodleSeed::default()
    }
}

fn start(opts: MoodleOptions) -> FakeMoodle {
    FakeMoodle::start(seed(), opts).expect("start fake Moodle")
}

fn debug() -> MoodleOptions {
    MoodleOptions { debug: true, ..MoodleOptions::default() }
}

fn new_user<'a>(i: &'a str, name: &'a str, email: &'a str) -> Vec<(String, &'a str)> {
    vec![
        (format!("users[{i}][username]"), name),
        (format!("users[{i}][password]"), "Secret-123"),
        (format!("users[{i}][firstname]"), "New"),
        (format!("users[{i}][lastname]"), "User"),
        (format!("users[{i}][email]"), email),
    ]
}

fn pairs(v: &[(String, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(k, v)| (k.clone(), v.to_string())).collect()
}

fn as_refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn create_users(fake: &FakeMoodle, users: &[(&str, &str, &str)]) -> Value {
    let mut args = Vec::new();
    for (i, name, email) in users {
        args.extend(pairs(&new_user(i, name, email)));
    }
    call(fake, "core_user_create_users", &as_refs(&args))
}

// ---------- transport ----------

#[test]
fn sandbox_moodle_bracket_form_with_non_contiguous_indexes() {
    let fake = start(MoodleOptions { profile_fields: vec!["zohoid".into()], ..MoodleOptions::default() });
    let mut args = pairs(&new_user("7", "zed", "zed@example.org"));
    args.extend(pairs(&new_user("3", "yan", "yan@example.org")));
    args.push(("users[7][customfields][0][type]".into(), "zohoid".into()));
    args.push(("users[7][customfields][0][value]".into(), "4242".into()));
    let out = call(&fake, "core_user_create_users", &as_refs(&args));
    // Lists iterate values in the order sent, whatever the indexes.
    assert_eq!(out, json!([{"id": 13, "username": "zed"}, {"id": 14, "username": "yan"}]));
    let log = fake.request_log();
    assert_eq!(log[0].params["users"]["7"]["customfields"]["0"]["value"], "4242");
    let zed = fake.users().into_iter().find(|u| u.username == "zed").unwrap();
    assert_eq!(zed.customfields.get("zohoid").map(String::as_str), Some("4242"));
}

#[test]
fn sandbox_moodle_max_input_vars_at_record_boundary_drops_records_silently() {
    let fake = start(MoodleOptions { max_input_vars: 10, ..MoodleOptions::default() });
    let out = create_users(&fake, &[("0", "u0", "u0@x.org"), ("1", "u1", "u1@x.org"), ("2", "u2", "u2@x.org")]);
    assert_eq!(out.as_array().unwrap().len(), 2, "third user silently dropped: {out}");
    let st = fake.stats();
    assert!(st.truncated);
    assert_eq!(st.max_form_vars, 15);
}

#[test]
fn sandbox_moodle_max_input_vars_mid_record_is_invalidparameter() {
    let fake = start(MoodleOptions { max_input_vars: 8, debug: true, ..MoodleOptions::default() });
    let out = create_users(&fake, &[("0", "u0", "u0@x.org"), ("1", "u1", "u1@x.org")]);
    assert_error(&out, "invalidparameter");
    assert!(out["debuginfo"].as_str().unwrap().contains("Missing required key in single structure: lastname"), "{out}");
    assert_eq!(fake.users().len(), 5);
}

#[test]
fn sandbox_moodle_max_input_vars_counts_query_and_body_separately() {
    let fake = start(MoodleOptions { max_input_vars: 5, ..MoodleOptions::default() });
    // 3 reserved vars in the query + 5 in the body: neither source is over the limit.
    let out = create_users(&fake, &[("0", "u0", "u0@x.org")]);
    assert_eq!(out[0]["username"], "u0");
    assert!(!fake.stats().truncated);
}

#[test]
fn sandbox_moodle_get_and_post_merge_post_wins() {
    let fake = start(MoodleOptions::default());
    let q = encode(&[
        ("wstoken", &fake.token()),
        ("wsfunction", "core_webservice_get_site_info"),
        ("moodlewsrestformat", "json"),
    ]);
    let r = request(fake.addr(), "GET", &format!("/webservice/rest/server.php?{q}"), None, b"").unwrap();
    assert_eq!(r.json()["release"], "5.1+ (Build: 20251017)");
    // The body's wsfunction overrides the query's.
    let r = post_raw(&fake, &q, &encode(&[("wsfunction", "core_grades_get_grades")]));
    assert_error(&r.json(), "invalidrecordunknown");
}

#[test]
fn sandbox_moodle_json_body_is_ignored() {
    let fake = start(debug());
    let q = encode(&[
        ("wstoken", &fake.token()),
        ("wsfunction", "core_user_get_users_by_field"),
        ("moodlewsrestformat", "json"),
    ]);
    let body = br#"{"field":"id","values":[10]}"#;
    let r = request(fake.addr(), "POST", &format!("/webservice/rest/server.php?{q}"), Some("application/json"), body)
        .unwrap();
    let v = r.json();
    assert_error(&v, "invalidparameter");
    assert_eq!(v["debuginfo"], "Missing required key in single structure: field");
}

#[test]
fn sandbox_moodle_answers_xml_without_json_format() {
    let fake = start(MoodleOptions::default());
    let r = post_raw(&fake, &encode(&[("wstoken", "nope"), ("wsfunction", "core_webservice_get_site_info")]), "");
    assert_eq!(r.status, 200);
    assert!(r.body.contains("<EXCEPTION class=\"core\\exception\\moodle_exception\">"), "{}", r.body);
    assert!(r.body.contains("<ERRORCODE>invalidtoken</ERRORCODE>"));
}

#[test]
fn sandbox_moodle_php_json_escapes_slashes() {
    let fake = start(MoodleOptions::default());
    let r = post(&fake, "core_webservice_get_site_info", &[]);
    assert!(r.body.contains(r#""siteurl":"http:\/\/127.0.0.1"#), "{}", r.body);
}

#[test]
fn sandbox_moodle_protocol_disabled_is_403_empty_and_maintenance_503_html() {
    let fake = start(MoodleOptions::default());
    fake.set_protocol_disabled(true);
    let r = post(&fake, "core_webservice_get_site_info", &[]);
    assert_eq!((r.status, r.body.as_str()), (403, ""));
    fake.set_protocol_disabled(false);
    fake.set_maintenance(true);
    let r = post(&fake, "core_webservice_get_site_info", &[]);
    assert_eq!(r.status, 503);
    assert!(r.ctype.starts_with("text/html") && r.body.contains("<html>"));
    fake.set_maintenance(false);
    assert_eq!(post(&fake, "core_webservice_get_site_info", &[]).status, 200);
}

// ---------- auth and errors ----------

#[test]
fn sandbox_moodle_invalidtoken_shape_and_auth_before_lookup() {
    let fake = start(MoodleOptions::default());
    for function in ["core_webservice_get_site_info", "no_such_function", ""] {
        let r = post_raw(
            &fake,
            &encode(&[
                ("wstoken", "0123456789abcdef0123456789abcdef"),
                ("wsfunction", function),
                ("moodlewsrestformat", "json"),
            ]),
            "",
        );
        assert_eq!(
            r.body,
            r#"{"exception":"core\\exception\\moodle_exception","errorcode":"invalidtoken","message":"Invalid token - token not found"}"#
        );
    }
    let r = post_raw(
        &fake,
        &encode(&[("wsfunction", "core_webservice_get_site_info"), ("moodlewsrestformat", "json")]),
        "",
    );
    assert_error(&r.json(), "invalidtoken");
}

#[test]
fn sandbox_moodle_token_is_random_per_start() {
    let (a, b) = (start(MoodleOptions::default()), start(MoodleOptions::default()));
    assert_eq!(a.token().len(), 32);
    assert_ne!(a.token(), b.token());
}

#[test]
fn sandbox_moodle_expired_token_then_forgotten() {
    let fake = start(MoodleOptions::default());
    let token = fake.token();
    fake.expire_token();
    let q =
        encode(&[("wstoken", &token), ("wsfunction", "core_webservice_get_site_info"), ("moodlewsrestformat", "json")]);
    assert_error(&post_raw(&fake, &q, "").json(), "accessexception");
    assert_error(&post_raw(&fake, &q, "").json(), "invalidtoken");
}

#[test]
fn sandbox_moodle_missing_function_name_is_invalidparameter() {
    let fake = start(debug());
    let v = post_raw(&fake, &encode(&[("wstoken", &fake.token()), ("moodlewsrestformat", "json")]), "").json();
    assert_error(&v, "invalidparameter");
    assert_eq!(v["debuginfo"], "Missing function name");
}

#[test]
fn sandbox_moodle_unknown_function_debug_vs_production() {
    let fake = start(debug());
    let v = call(&fake, "core_grades_get_grades", &[("courseid", "20")]);
    assert_eq!(v["exception"], "dml_missing_record_exception");
    assert_error(&v, "invalidrecord");
    assert!(v["debuginfo"].as_str().unwrap().contains("external_functions"));
    fake.set_debug(false);
    let v = call(&fake, "core_grades_get_grades", &[("courseid", "20")]);
    assert_eq!(
        v,
        json!({"exception":"dml_missing_record_exception","errorcode":"invalidrecordunknown","message":"Can't find data record in database."})
    );
}

#[test]
fn sandbox_moodle_function_outside_service_is_accessexception() {
    let fake =
        start(MoodleOptions { missing_functions: vec!["core_user_create_users".into()], ..MoodleOptions::default() });
    let v = call(&fake, "core_user_create_users", &[]);
    assert_eq!(
        v,
        json!({"exception":"webservice_access_exception","errorcode":"accessexception","message":"Access control exception"})
    );
    assert_error(&call(&fake, "core_role_assign_roles", &[]), "accessexception");
    let info = call(&fake, "core_webservice_get_site_info", &[]);
    let names: Vec<&str> = info["functions"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert!(!names.contains(&"core_user_create_users") && names.contains(&"core_user_update_users"));
}

#[test]
fn sandbox_moodle_site_info() {
    let fake = start(MoodleOptions::default());
    let v = call(&fake, "core_webservice_get_site_info", &[]);
    assert_eq!(v["release"], "5.1+ (Build: 20251017)");
    assert_eq!(v["version"], "2025100600.02");
    assert_eq!(v["siteurl"], fake.url());
    let names: Vec<&str> = v["functions"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 31, "16 core + 15 plugin functions of the zmsync service");
    assert!(names.contains(&"local_student_dashboard_get_info"));
    assert!(!names.contains(&"core_grades_get_grades"));
}

#[test]
fn sandbox_moodle_invalidparameter_with_and_without_debuginfo() {
    let fake = start(debug());
    let v = create_users(&fake, &[("0", "alice", "new@x.org")]);
    assert_eq!(v["exception"], "core\\exception\\invalid_parameter_exception");
    assert_eq!(v["debuginfo"], "Username already exists: alice");
    fake.set_debug(false);
    let v = create_users(&fake, &[("0", "alice", "new@x.org")]);
    assert_eq!(
        v,
        json!({"exception":"core\\exception\\invalid_parameter_exception","errorcode":"invalidparameter","message":"Invalid parameter value detected"})
    );
}

#[test]
fn sandbox_moodle_nopermissions() {
    let fake = start(MoodleOptions { nopermissions: vec!["moodle/user:create".into()], ..MoodleOptions::default() });
    let v = create_users(&fake, &[("0", "neo", "neo@x.org")]);
    assert_eq!(v["exception"], "core\\exception\\required_capability_exception");
    assert_error(&v, "nopermissions");
    assert!(v["message"].as_str().unwrap().contains("(Create users)"));
}

// ---------- strict validation ----------

#[test]
fn sandbox_moodle_strict_validation() {
    let fake = start(debug());
    let base = |k: &str, v: &str| {
        let mut a = pairs(&new_user("0", "neo", "neo@x.org"));
        if let Some(p) = a.iter_mut().find(|(key, _)| key == k) {
            p.1 = v.to_string();
        } else {
            a.push((k.to_string(), v.to_string()));
        }
        a
    };
    let cases = [
        (base("users[0][username]", "Neo"), "the value is \"Neo\", the server was expecting \"username\" type"),
        (base("users[0][email]", " neo@x.org"), "expecting \"raw_trimmed\" type"),
        (base("users[0][email]", "neo@x.org\n"), "expecting \"raw_trimmed\" type"),
        (base("users[0][createpassword]", "true"), "expecting \"bool\" type"),
        (base("users[0][maildisplay]", "012"), "expecting \"int\" type"),
        (base("users[0][maildisplay]", " 1"), "expecting \"int\" type"),
        (base("users[0][suspended]", "0"), "Unexpected keys (suspended) detected in parameter array."),
        (base("stray", "1"), "Unexpected keys (stray) detected in parameter array."),
    ];
    for (args, expected) in cases {
        let v = call(&fake, "core_user_create_users", &as_refs(&args));
        assert_error(&v, "invalidparameter");
        assert!(v["debuginfo"].as_str().unwrap().contains(expected), "{expected}: {v}");
    }
    assert_eq!(fake.users().len(), 5, "nothing created");
}

// ---------- users ----------

#[test]
fn sandbox_moodle_create_users_all_or_nothing() {
    let fake = start(debug());
    let v = create_users(&fake, &[("0", "new1", "new1@x.org"), ("1", "axb", "other@x.org")]);
    assert_error(&v, "invalidparameter");
    assert_eq!(v["debuginfo"], "Username already exists: axb");
    assert!(!fake.users().iter().any(|u| u.username == "new1"), "first user rolled back");
    // Duplicates inside one batch are caught too.
    let v = create_users(&fake, &[("0", "dup", "d1@x.org"), ("1", "dup", "d2@x.org")]);
    assert_eq!(v["debuginfo"], "Username already exists: dup");
    let v = create_users(&fake, &[("0", "ok1", "ok1@x.org"), ("1", "ok2", "ok2@x.org")]);
    assert_eq!(v, json!([{"id": 13, "username": "ok1"}, {"id": 14, "username": "ok2"}]));
}

#[test]
fn sandbox_moodle_duplicate_email_rule() {
    let fake = start(debug());
    let v = create_users(&fake, &[("0", "neo", "ALICE@example.org")]);
    assert_eq!(v["debuginfo"], "Email address already exists: ALICE@example.org");
    let fake = FakeMoodle::start(seed(), MoodleOptions { allow_accounts_same_email: true, ..debug() }).unwrap();
    let v = create_users(&fake, &[("0", "neo", "ALICE@example.org")]);
    assert_eq!(v[0]["username"], "neo");
}

#[test]
fn sandbox_moodle_create_users_password_rules() {
    let fake = start(debug());
    let v = call(
        &fake,
        "core_user_create_users",
        &[
            ("users[0][username]", "neo"),
            ("users[0][firstname]", "N"),
            ("users[0][lastname]", "O"),
            ("users[0][email]", "neo@x.org"),
        ],
    );
    assert_eq!(v["debuginfo"], "Invalid password: you must provide a password, or set createpassword.");
    let v = call(
        &fake,
        "core_user_create_users",
        &[
            ("users[0][username]", "neo"),
            ("users[0][password]", "weak"),
            ("users[0][firstname]", "N"),
            ("users[0][lastname]", "O"),
            ("users[0][email]", "neo@x.org"),
        ],
    );
    assert!(v["errorcode"].as_str().unwrap().starts_with("<div>Passwords must"), "{v}");
    let v = call(
        &fake,
        "core_user_create_users",
        &[
            ("users[0][username]", "neo"),
            ("users[0][createpassword]", "1"),
            ("users[0][firstname]", "N"),
            ("users[0][lastname]", "O"),
            ("users[0][email]", "neo@x.org"),
        ],
    );
    assert_eq!(v[0]["username"], "neo");
    let neo = fake.users().into_iter().find(|u| u.username == "neo").unwrap();
    assert_eq!((neo.auth.as_str(), neo.idnumber.as_str()), ("manual", ""));
}

#[test]
fn sandbox_moodle_update_users_warnings() {
    let fake = start(MoodleOptions::default());
    let v = call(
        &fake,
        "core_user_update_users",
        &[
            ("users[0][id]", "999"),
            ("users[1][id]", "11"),
            ("users[1][email]", "Alice@Example.org"),
            ("users[2][id]", "12"),
            ("users[2][suspended]", "1"),
            ("users[2][firstname]", "Renamed"),
        ],
    );
    assert_eq!(
        v,
        json!({"warnings": [
            {"item": "user", "itemid": 999, "warningcode": "invaliduserid", "message": "Invalid user ID"},
            {"item": "user", "itemid": 11, "warningcode": "useremailduplicate", "message": "Duplicate address"}
        ]})
    );
    let u = fake.users().into_iter().find(|u| u.id == 12).unwrap();
    assert!(u.suspended && u.firstname == "Renamed");
    assert_eq!(
        call(&fake, "core_user_update_users", &[("users[0][id]", "10"), ("users[0][city]", "Leeds")]),
        json!({"warnings": []})
    );
    // A type error is still a whole-call failure.
    assert_error(&call(&fake, "core_user_update_users", &[("users[0][id]", "x")]), "invalidparameter");
}

#[test]
fn sandbox_moodle_get_users_like_warnings_and_keyalreadyset() {
    let fake = start(MoodleOptions::default());
    let v =
        call(&fake, "core_user_get_users", &[("criteria[0][key]", "email"), ("criteria[0][value]", "A_B@example.org")]);
    let ids: Vec<i64> = v["users"].as_array().unwrap().iter().map(|u| u["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [11, 12], "LIKE: `_` matches any character, case-insensitively");
    assert!(v["users"][0].get("idnumber").is_none(), "empty idnumber omitted");
    assert_eq!(v["users"][1]["idnumber"], "STU-3");
    let v = call(&fake, "core_user_get_users", &[("criteria[0][key]", "email"), ("criteria[0][value]", "a\\_b@%")]);
    assert_eq!(v["users"].as_array().unwrap().len(), 1);
    let v = call(
        &fake,
        "core_user_get_users",
        &[
            ("criteria[0][key]", "username"),
            ("criteria[0][value]", "ALICE"),
            ("criteria[1][key]", "phone"),
            ("criteria[1][value]", "1"),
        ],
    );
    assert_eq!(v["users"][0]["username"], "alice", "username criteria are lowercased");
    assert_eq!(v["warnings"][0]["warningcode"], "invalidfieldparameter");
    assert_eq!(v["warnings"][0]["item"], "phone");
    let v = call(
        &fake,
        "core_user_get_users",
        &[
            ("criteria[0][key]", "id"),
            ("criteria[0][value]", "10"),
            ("criteria[1][key]", "id"),
            ("criteria[1][value]", "11"),
        ],
    );
    assert_error(&v, "keyalreadyset");
    assert_error(&call(&fake, "core_user_get_users", &[]), "invalidparameter");
}

#[test]
fn sandbox_moodle_get_users_by_field() {
    let fake = start(debug());
    let v = call(
        &fake,
        "core_user_get_users_by_field",
        &[("field", "idnumber"), ("values[0]", "STU-1"), ("values[1]", "nobody")],
    );
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["username"], "alice");
    assert_eq!(
        call(&fake, "core_user_get_users_by_field", &[("field", "username"), ("values[0]", "ghost")]),
        json!([])
    );
    let v = call(&fake, "core_user_get_users_by_field", &[("field", "username"), ("values[0]", "Alice")]);
    assert_error(&v, "invalidparameter");
    assert_eq!(v["debuginfo"], "The field 'username' value is invalid: Alice(cleaned value: alice)");
    let v = call(&fake, "core_user_get_users_by_field", &[("field", "email"), ("values[0]", "alice@example.org ")]);
    assert_error(&v, "invalidparameter");
    assert_error(&call(&fake, "core_user_get_users_by_field", &[("field", "city"), ("values[0]", "1")]), "codingerror");
}

#[test]
fn sandbox_moodle_delete_users_soft() {
    let fake = start(MoodleOptions::default());
    let r = post(&fake, "core_user_delete_users", &[("userids[0]", "12")]);
    assert_eq!(r.body, "null");
    let u = fake.users().into_iter().find(|u| u.id == 12).unwrap();
    assert!(u.deleted && u.idnumber.is_empty() && u.username != "axb");
    assert_eq!(call(&fake, "core_user_get_users_by_field", &[("field", "username"), ("values[0]", "axb")]), json!([]));
    assert_eq!(
        call(&fake, "core_user_get_users", &[("criteria[0][key]", "idnumber"), ("criteria[0][value]", "STU-3")])
            ["users"],
        json!([])
    );
    assert_error(&call(&fake, "core_user_delete_users", &[("userids[0]", "12")]), "invalidrecordunknown");
    assert_error(
        &call(&fake, "core_user_get_users_by_field", &[("field", "id"), ("values[0]", "12")]),
        "invalidrecordunknown",
    );
}

// ---------- courses ----------

#[test]
fn sandbox_moodle_get_courses_site_course_and_escaping() {
    let fake = start(MoodleOptions::default());
    let v = call(&fake, "core_course_get_courses", &[]);
    assert_eq!(v[0]["id"], 1);
    assert_eq!(v[0]["format"], "site");
    assert_eq!(v[0]["categoryid"], 0);
    let mp = v.as_array().unwrap().iter().find(|c| c["id"] == 20).unwrap();
    assert_eq!(mp["fullname"], "Maths &amp; Physics");
    assert_eq!(mp["idnumber"], "5847596000000020");
    let r = post_raw(
        &fake,
        &encode(&[
            ("wstoken", &fake.token()),
            ("wsfunction", "core_course_get_courses"),
            ("moodlewsrestformat", "json"),
            ("moodlewssettingraw", "1"),
        ]),
        &encode(&[("options[ids][0]", "20")]),
    );
    let v = r.json();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["fullname"], "Maths & Physics");
    let v = call(&fake, "core_course_get_courses_by_field", &[("field", "idnumber"), ("value", "5847596000000020")]);
    assert_eq!(v["courses"][0]["id"], 20);
    assert_eq!(v["warnings"], json!([]));
}

#[test]
fn sandbox_moodle_create_courses_errors_and_manual_instance() {
    let fake = start(MoodleOptions::permissive());
    let c = |i: &str, sn: &str, idn: &str, cat: &str| {
        vec![
            (format!("courses[{i}][fullname]"), format!("Course {sn}")),
            (format!("courses[{i}][shortname]"), sn.to_string()),
            (format!("courses[{i}][categoryid]"), cat.to_string()),
            (format!("courses[{i}][idnumber]"), idn.to_string()),
        ]
    };
    let mut args = c("0", "NEW1", "z1", "1");
    args.extend(c("1", "MP101", "z2", "1"));
    let v = call(&fake, "core_course_create_courses", &as_refs(&args));
    assert_eq!(
        v,
        json!({"exception":"core\\exception\\moodle_exception","errorcode":"shortnametaken","message":"Short name is already used for another course (MP101)"})
    );
    assert!(!fake.courses().iter().any(|c| c.shortname == "NEW1"), "rolled back");
    assert_error(
        &call(&fake, "core_course_create_courses", &as_refs(&c("0", "NEW2", "5847596000000020", "1"))),
        "courseidnumbertaken",
    );
    assert_error(
        &call(&fake, "core_course_create_courses", &as_refs(&c("0", "NEW3", "", "99"))),
        "errorcatcontextnotvalid",
    );
    let v = call(&fake, "core_course_create_courses", &as_refs(&c("0", "A&B", "z9", "1")));
    assert_eq!(v, json!([{"id": 22, "shortname": "A&B"}]), "create echoes the raw shortname");
    // The new course has a manual enrol instance: enrolling works at once.
    assert_eq!(
        post(
            &fake,
            "enrol_manual_enrol_users",
            &[("enrolments[0][roleid]", "5"), ("enrolments[0][userid]", "11"), ("enrolments[0][courseid]", "22")]
        )
        .body,
        "null"
    );
}

#[test]
fn sandbox_moodle_update_courses_warnings() {
    let fake = start(MoodleOptions::default());
    let v = call(
        &fake,
        "core_course_update_courses",
        &[
            ("courses[0][id]", "21"),
            ("courses[0][shortname]", "MP101"),
            ("courses[1][id]", "20"),
            ("courses[1][fullname]", "Maths"),
            ("courses[2][id]", "999"),
        ],
    );
    let w = v["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 2, "{v}");
    assert_eq!(
        (w[0]["item"].as_str(), w[0]["itemid"].as_i64(), w[0]["warningcode"].as_str()),
        (Some("course"), Some(21), Some("shortnametaken"))
    );
    assert_eq!(w[1]["warningcode"], "invalidrecordunknown");
    assert!(fake.courses().iter().any(|c| c.id == 20 && c.fullname == "Maths"));
}

#[test]
fn sandbox_moodle_categories() {
    let fake = start(MoodleOptions::default());
    let v = call(
        &fake,
        "core_course_create_categories",
        &[("categories[0][name]", "BTEC & Co"), ("categories[0][idnumber]", "btec")],
    );
    assert_eq!(v, json!([{"id": 2, "name": "BTEC & Co"}]));
    let v = call(
        &fake,
        "core_course_create_categories",
        &[("categories[0][name]", "Sub"), ("categories[0][parent]", "77")],
    );
    assert_error(&v, "unknowcategory");
    let v =
        call(&fake, "core_course_get_categories", &[("criteria[0][key]", "idnumber"), ("criteria[0][value]", "btec")]);
    assert_eq!(v[0]["name"], "BTEC &amp; Co");
    assert_eq!(v[0]["path"], "/2");
}

// ---------- enrolments ----------

#[test]
fn sandbox_moodle_enrol_upsert_and_unenrol_noop() {
    let fake = start(MoodleOptions::permissive());
    let enrol = |extra: &[(&str, &str)]| {
        let mut a =
            vec![("enrolments[0][roleid]", "5"), ("enrolments[0][userid]", "11"), ("enrolments[0][courseid]", "21")];
        a.extend_from_slice(extra);
        post(&fake, "enrol_manual_enrol_users", &a)
    };
    assert_eq!(enrol(&[("enrolments[0][timeend]", "1800000000")]).body, "null");
    assert_eq!(enrol(&[("enrolments[0][suspend]", "1")]).body, "null");
    let e = fake.enrolments().into_iter().find(|(e, _)| e.courseid == 21 && e.userid == 11).unwrap();
    assert_eq!((e.0.status, e.0.timeend), (1, 0), "re-enrol resets dates, suspend=1 suspends");
    enrol(&[]);
    let e = fake.enrolments().into_iter().find(|(e, _)| e.courseid == 21 && e.userid == 11).unwrap();
    assert_eq!(e.0.status, 0, "re-sending reactivates");
    post(
        &fake,
        "enrol_manual_enrol_users",
        &[("enrolments[0][roleid]", "3"), ("enrolments[0][userid]", "11"), ("enrolments[0][courseid]", "21")],
    );
    let e = fake.enrolments().into_iter().find(|(e, _)| e.courseid == 21 && e.userid == 11).unwrap();
    assert_eq!(e.1, vec![3, 5], "the role is added, the old one stays");
    let r = post(
        &fake,
        "enrol_manual_unenrol_users",
        &[("enrolments[0][userid]", "12"), ("enrolments[0][courseid]", "21")],
    );
    assert_eq!(r.body, "null", "not enrolled: silent no-op");
    let r = post(
        &fake,
        "enrol_manual_unenrol_users",
        &[("enrolments[0][userid]", "11"), ("enrolments[0][courseid]", "21")],
    );
    assert_eq!(r.body, "null");
    assert!(!fake.enrolments().iter().any(|(e, _)| e.courseid == 21));
    assert_error(
        &call(
            &fake,
            "enrol_manual_unenrol_users",
            &[("enrolments[0][userid]", "11"), ("enrolments[0][courseid]", "999")],
        ),
        "invalidrecordunknown",
    );
    let names: Vec<String> = fake.events().iter().map(|e| e.eventname.clone()).collect();
    assert_eq!(names.first().map(String::as_str), Some("\\core\\event\\user_enrolment_created"));
    assert_eq!(names.last().map(String::as_str), Some("\\core\\event\\user_enrolment_deleted"));
}

#[test]
fn sandbox_moodle_enrol_errors_roll_back_the_batch() {
    let fake = start(MoodleOptions { wsusercannotassign: vec![1], ..MoodleOptions::default() });
    let batch = |uid: &str, cid: &str, role: &str| {
        call(
            &fake,
            "enrol_manual_enrol_users",
            &[
                ("enrolments[0][roleid]", "5"),
                ("enrolments[0][userid]", "11"),
                ("enrolments[0][courseid]", "21"),
                ("enrolments[1][roleid]", role),
                ("enrolments[1][userid]", uid),
                ("enrolments[1][courseid]", cid),
            ],
        )
    };
    assert_error(&batch("999", "21", "5"), "invalidrecordunknown");
    assert_error(&batch("12", "999", "5"), "invalidparameter");
    let v = batch("12", "21", "1");
    assert_error(&v, "wsusercannotassign");
    assert_eq!(
        v["message"],
        "You don't have the permission to assign this role (1) to this user (12) in this course(21)."
    );
    assert!(!fake.enrolments().iter().any(|(e, _)| e.courseid == 21), "whole batch rolled back");
    let v =
        call(&fake, "enrol_manual_enrol_users", &[("enrolments[0][userid]", "11"), ("enrolments[0][courseid]", "21")]);
    assert_error(&v, "invalidparameter");
}

#[test]
fn sandbox_moodle_get_enrolled_users_roles_shape_and_options() {
    let fake = start(MoodleOptions::default());
    fake.enrol(20, 11, 5);
    fake.enrol(20, 12, 3);
    fake.set_enrolment_status(20, 12, true);
    let v = call(&fake, "core_enrol_get_enrolled_users", &[("courseid", "20")]);
    let users = v.as_array().unwrap();
    assert_eq!(users.len(), 3, "suspended enrolments included by default");
    assert_eq!(users[0]["roles"], json!([{"roleid": 5, "name": "", "shortname": "student", "sortorder": 5}]));
    assert!(users.iter().all(|u| u.get("status").is_none()));
    let v = call(
        &fake,
        "core_enrol_get_enrolled_users",
        &[
            ("courseid", "20"),
            ("options[0][name]", "userfields"),
            ("options[0][value]", "id,username,idnumber,email,roles"),
            ("options[1][name]", "limitfrom"),
            ("options[1][value]", "1"),
            ("options[2][name]", "limitnumber"),
            ("options[2][value]", "1"),
        ],
    );
    assert_eq!(
        v,
        json!([{"id": 11, "username": "a_b", "email": "a_b@example.org", "roles": [{"roleid": 5, "name": "", "shortname": "student", "sortorder": 5}]}])
    );
    let active = call(
        &fake,
        "core_enrol_get_enrolled_users",
        &[("courseid", "20"), ("options[0][name]", "onlyactive"), ("options[0][value]", "1")],
    );
    assert_eq!(active.as_array().unwrap().len(), 2);
    let susp = call(
        &fake,
        "core_enrol_get_enrolled_users",
        &[("courseid", "20"), ("options[0][name]", "onlysuspended"), ("options[0][value]", "1")],
    );
    assert_eq!(susp[0]["id"], 12);
    let bad = call(
        &fake,
        "core_enrol_get_enrolled_users",
        &[("courseid", "20"), ("options[0][name]", "userfields"), ("options[0][value]", "id,shoesize")],
    );
    assert_error(&bad, "invaliduserfield");
}

// ---------- grades ----------

#[test]
fn sandbox_moodle_grade_items_shape_and_no_get_grades() {
    let fake = start(MoodleOptions::default());
    let v = call(&fake, "gradereport_user_get_grade_items", &[("courseid", "20")]);
    assert_eq!(v["warnings"], json!([]));
    let ug = &v["usergrades"][0];
    assert_eq!(
        (ug["courseid"].as_i64(), ug["userid"].as_i64(), ug["courseidnumber"].as_str()),
        (Some(20), Some(10), Some("5847596000000020"))
    );
    let item = &ug["gradeitems"][0];
    assert!(item["itemname"].is_null());
    assert_eq!(item["itemtype"], "course");
    assert_eq!(item["graderaw"], 85.5);
    assert_eq!(item["grademax"], 100.0);
    assert_error(&call(&fake, "core_grades_get_grades", &[("courseid", "20")]), "invalidrecordunknown");
}

// ---------- plugin ----------

fn reg<'a>(i: &str, zoho: &'a str, userid: &'a str, fee: &'a str) -> Vec<(String, String)> {
    [
        ("zoho_id", zoho),
        ("userid", userid),
        ("student_zoho_id", "5847596000012345"),
        ("program", "BTEC Level 5 Diploma in IT"),
        ("registration_date", "2025-09-01"),
        ("total_fee", fee),
        ("scholarship_percent", "20"),
        ("currency", "USD"),
        ("status", "Active"),
    ]
    .iter()
    .map(|(k, v)| (format!("registrations[{i}][{k}]"), v.to_string()))
    .collect()
}

#[test]
fn sandbox_moodle_plugin_get_info_and_not_installed() {
    let fake = start(MoodleOptions::default());
    assert_eq!(
        call(&fake, "local_student_dashboard_get_info", &[]),
        json!({"component":"local_student_dashboard","version":2026040100,"release":"1.0.0","contract_version":1,
               "identity_fields":"email","mail":"php","welcome_default":true,"welcome_courses":2})
    );
    let fake = start(MoodleOptions { plugin_installed: false, ..MoodleOptions::default() });
    assert_error(&call(&fake, "local_student_dashboard_get_info", &[]), "invalidrecordunknown");
    let fake = start(MoodleOptions {
        nopermissions: vec!["local/student_dashboard:manage".into()],
        ..MoodleOptions::default()
    });
    assert_error(&call(&fake, "local_student_dashboard_get_info", &[]), "nopermissions");
}

#[test]
fn sandbox_moodle_plugin_upsert_is_idempotent() {
    let fake = start(MoodleOptions::default());
    let mut args = reg("0", "5847596000020001", "10", "10000");
    args.extend(reg("1", "5847596000020002", "11", "19.5"));
    let v = call(&fake, "local_student_dashboard_upsert_registrations", &as_refs(&args));
    assert_eq!(
        (v["created"].as_i64(), v["updated"].as_i64(), v["unchanged"].as_i64()),
        (Some(2), Some(0), Some(0)),
        "{v}"
    );
    assert_eq!(v["results"][0], json!({"zoho_id": "5847596000020001", "id": 1, "status": "created"}));
    // Same values, other spelling of the same amount: unchanged.
    let mut again = reg("0", "5847596000020001", "10", "10000.00");
    again.extend(reg("1", "5847596000020002", "11", "19.60"));
    let v = call(&fake, "local_student_dashboard_upsert_registrations", &as_refs(&again));
    assert_eq!(v["results"][0]["status"], "unchanged");
    assert_eq!(v["results"][1]["status"], "updated");
    assert_eq!(v["warnings"], json!([]));
    let rows = call(&fake, "local_student_dashboard_get_registrations", &[]);
    assert_eq!(rows["total"], 2);
    let r0 = &rows["rows"][0];
    assert_eq!((r0["total_fee"].as_str(), r0["scholarship_percent"].as_str()), (Some("10000.00"), Some("20.00")));
    assert_eq!(rows["rows"][1]["total_fee"], "19.60");
    let page = call(&fake, "local_student_dashboard_get_registrations", &[("limitfrom", "1"), ("limitnumber", "1")]);
    assert_eq!((page["rows"].as_array().unwrap().len(), page["total"].as_i64()), (1, Some(2)));
    assert_eq!(page["rows"][0]["zoho_id"], "5847596000020002");
    assert_error(&call(&fake, "local_student_dashboard_get_registrations", &[("limitfrom", "-1")]), "invalidparameter");
}

#[test]
fn sandbox_moodle_plugin_per_row_warnings() {
    let fake = start(MoodleOptions::default());
    let set = |mut row: Vec<(String, String)>, key: &str, val: &str| {
        for p in row.iter_mut() {
            if p.0.ends_with(&format!("[{key}]")) {
                p.1 = val.to_string();
            }
        }
        row
    };
    let cases: Vec<(Vec<(String, String)>, &str)> = vec![
        (reg("0", "z-ok", "10", "100"), ""),
        (reg("1", "z-ok", "10", "100"), "duplicatezohoid"),
        (reg("2", &"9".repeat(101), "10", "100"), "invalidzohoid"),
        (reg("3", "z3", "999", "100"), "invaliduserid"),
        (reg("4", "z4", "1", "100"), "invaliduserid"),
        (set(reg("5", "z5", "10", "100"), "registration_date", "2026-02-30"), "invaliddate"),
        (reg("6", "z6", "10", "1,000"), "invalidamount"),
        (reg("7", "z7", "10", "10.555"), "invalidamount"),
        (set(reg("8", "z8", "10", "100"), "scholarship_percent", "100.5"), "invalidpercent"),
        (set(reg("9", "z9", "10", "100"), "currency", "usd"), "invalidcurrency"),
        (set(reg("10", "z10", "10", "100"), "status", &"x".repeat(51)), "invalidvalue"),
    ];
    let mut args = Vec::new();
    for (row, _) in &cases {
        args.extend(row.iter().cloned());
    }
    let v = call(&fake, "local_student_dashboard_upsert_registrations", &as_refs(&args));
    assert_eq!(v["created"], 1, "{v}");
    let got: Vec<(i64, String)> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["itemid"].as_i64().unwrap(), w["warningcode"].as_str().unwrap().to_string()))
        .collect();
    let want: Vec<(i64, String)> =
        cases.iter().enumerate().filter(|(_, c)| !c.1.is_empty()).map(|(i, c)| (i as i64, c.1.to_string())).collect();
    assert_eq!(got, want);
    assert_eq!(v["warnings"][2]["item"], "z3");
    // A PARAM type failure is still a whole-call invalidparameter.
    let bad = set(reg("0", "z.bad", "10", "100"), "zoho_id", "z.bad");
    assert_error(&call(&fake, "local_student_dashboard_upsert_registrations", &as_refs(&bad)), "invalidparameter");
}

#[test]
fn sandbox_moodle_plugin_other_row_types_and_delete() {
    let fake = start(MoodleOptions::default());
    let v = call(
        &fake,
        "local_student_dashboard_upsert_payments",
        &[
            ("payments[0][zoho_id]", "p1"),
            ("payments[0][userid]", "10"),
            ("payments[0][student_zoho_id]", "s1"),
            ("payments[0][amount]", "2000"),
            ("payments[0][status]", "Paid"),
            ("payments[1][zoho_id]", "p2"),
            ("payments[1][userid]", "10"),
            ("payments[1][student_zoho_id]", "s1"),
            ("payments[1][amount]", "2000"),
            ("payments[1][status]", "paid"),
        ],
    );
    assert_eq!(v["warnings"][0]["warningcode"], "invalidstatus");
    let p = &fake.plugin_rows("payments")[0];
    assert_eq!(Value::Object(p.clone())["payment_date"], Value::Null);
    assert_eq!(p["registration_zoho_id"], "");
    let v = call(
        &fake,
        "local_student_dashboard_upsert_grades",
        &[
            ("grades[0][zoho_id]", "g1"),
            ("grades[0][userid]", "10"),
            ("grades[0][student_zoho_id]", "s1"),
            ("grades[0][grade]", "Merit"),
            ("grades[0][moodle_grade]", "65.5"),
        ],
    );
    assert_eq!(v["created"], 1);
    assert_eq!(fake.plugin_rows("grades")[0]["moodle_grade"], 65.5);
    let v = call(
        &fake,
        "local_student_dashboard_upsert_units",
        &[
            ("units[0][zoho_id]", "u1"),
            ("units[0][unit_code]", "Unit 1"),
            ("units[0][unit_name]", "Programming"),
            ("units[0][credits]", "1000"),
        ],
    );
    assert_eq!(v["warnings"][0]["warningcode"], "invalidvalue");
    let v = call(&fake, "local_student_dashboard_delete_payments", &[("zoho_ids[0]", "p1"), ("zoho_ids[1]", "nope")]);
    assert_eq!(v, json!({"deleted": 1, "warnings": []}));
    let v = call(&fake, "local_student_dashboard_delete_payments", &[("zoho_ids[0]", "p1")]);
    assert_eq!(v, json!({"deleted": 0, "warnings": []}), "repeatable");
    let many: Vec<(String, String)> = (0..501).map(|i| (format!("zoho_ids[{i}]"), format!("z{i}"))).collect();
    let fake2 = start(MoodleOptions { max_input_vars: 0, ..MoodleOptions::default() });
    assert_error(&call(&fake2, "local_student_dashboard_delete_units", &as_refs(&many)), "batchtoolarge");
}

#[test]
fn sandbox_moodle_plugin_course_grades_and_enrolments() {
    let fake = start(MoodleOptions::default());
    let v = call(
        &fake,
        "local_student_dashboard_get_course_grades",
        &[("courseids[0]", "20"), ("courseids[1]", "99"), ("courseids[2]", "1")],
    );
    assert_eq!(
        v["grades"],
        json!([{"courseid": 20, "userid": 10, "finalgrade": 85.5, "grademin": 0.0, "grademax": 100.0, "scaleid": null, "scaleitem": null, "timemodified": 1767261600}])
    );
    let codes: Vec<(i64, &str)> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["itemid"].as_i64().unwrap(), w["warningcode"].as_str().unwrap()))
        .collect();
    assert_eq!(codes, [(99, "invalidcourseid"), (1, "invalidcourseid")]);
    let v = call(&fake, "local_student_dashboard_get_enrolments", &[]);
    assert_eq!(v["enrolments"].as_array().unwrap().len(), 1);
    let e = &v["enrolments"][0];
    assert_eq!((e["courseid"].as_i64(), e["userid"].as_i64(), e["status"].as_i64()), (Some(20), Some(10), Some(0)));
    assert_eq!(e["roleids"], json!([5]));
    let fake = start(MoodleOptions { nopermissions: vec!["moodle/grade:viewall".into()], ..MoodleOptions::default() });
    let v = call(&fake, "local_student_dashboard_get_course_grades", &[("courseids[0]", "20")]);
    assert_eq!(v["warnings"][0]["warningcode"], "nopermissions");
}

#[test]
fn sandbox_moodle_zero_records_switch() {
    let fake = start(MoodleOptions::default());
    fake.set_zero_records(true);
    assert_eq!(call(&fake, "core_course_get_courses", &[]), json!([]));
    assert_eq!(call(&fake, "core_enrol_get_enrolled_users", &[("courseid", "20")]), json!([]));
    assert_eq!(call(&fake, "local_student_dashboard_get_enrolments", &[])["enrolments"], json!([]));
    fake.set_zero_records(false);
    assert_eq!(call(&fake, "core_enrol_get_enrolled_users", &[("courseid", "20")]).as_array().unwrap().len(), 1);
}

// ---------- faults ----------

fn faulty(kind: FaultKind) -> FakeMoodle {
    start(MoodleOptions { fault_rate: 1.0, fault_kinds: vec![kind], fault_hold_ms: 200, ..MoodleOptions::default() })
}

fn raw_post(fake: &FakeMoodle) -> std::io::Result<Resp> {
    let q = encode(&[
        ("wstoken", &fake.token()),
        ("wsfunction", "core_webservice_get_site_info"),
        ("moodlewsrestformat", "json"),
    ]);
    request(
        fake.addr(),
        "POST",
        &format!("/webservice/rest/server.php?{q}"),
        Some("application/x-www-form-urlencoded"),
        b"",
    )
}

#[test]
fn sandbox_moodle_faults_reach_each_kind() {
    let r = raw_post(&faulty(FaultKind::Http503)).unwrap();
    assert_eq!(r.status, 503);
    assert!(r.body.contains("<html>"));
    let r = raw_post(&faulty(FaultKind::Http500)).unwrap();
    assert_eq!(r.status, 500);
    assert!(r.body.contains("Fatal error"));
    let fake = faulty(FaultKind::Timeout);
    assert!(raw_post(&fake).is_err(), "held, then dropped without an answer");
    let fake = faulty(FaultKind::Reset);
    let err = raw_post(&fake).unwrap_err();
    assert!(matches!(err.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof), "{err:?}");
    assert_eq!(fake.stats().faults.get("Reset"), Some(&1));
    fake.set_fault_rate(0.0);
    assert_eq!(raw_post(&fake).unwrap().status, 200);
}

#[test]
fn sandbox_moodle_fault_after_apply_is_the_duplicate_hazard() {
    let fake = start(MoodleOptions { fault_after_apply: 1.0, ..MoodleOptions::default() });
    let mut args = pairs(&new_user("0", "neo", "neo@x.org"));
    args.push(("wstoken".into(), fake.token()));
    args.push(("wsfunction".into(), "core_user_create_users".into()));
    args.push(("moodlewsrestformat".into(), "json".into()));
    let body = encode(&as_refs(&args));
    let r = request(
        fake.addr(),
        "POST",
        "/webservice/rest/server.php",
        Some("application/x-www-form-urlencoded"),
        body.as_bytes(),
    );
    assert!(r.is_err(), "the client saw no answer");
    assert!(fake.users().iter().any(|u| u.username == "neo"), "but the write was applied");
    // Reads are not affected.
    assert_eq!(raw_post(&fake).unwrap().status, 200);
}

#[test]
fn sandbox_moodle_concurrent_calls_do_not_serialise() {
    let fake = std::sync::Arc::new(start(MoodleOptions { latency_ms: 300, ..MoodleOptions::default() }));
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let f = fake.clone();
            std::thread::spawn(move || raw_post(&f).unwrap().status)
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 200);
    }
    assert!(fake.stats().max_concurrent >= 2, "{:?}", fake.stats());
    assert_eq!(fake.stats().requests.get("core_webservice_get_site_info"), Some(&6));
}

// ---------- login and webhooks ----------

#[test]
fn sandbox_moodle_login_token() {
    let fake = start(MoodleOptions::default());
    let login = |u: &str, p: &str, s: &str| {
        request(
            fake.addr(),
            "POST",
            "/login/token.php",
            Some("application/x-www-form-urlencoded"),
            encode(&[("username", u), ("password", p), ("service", s)]).as_bytes(),
        )
        .unwrap()
        .json()
    };
    assert_eq!(login("admin", &fake.admin_password(), "zmsync"), json!({"token": fake.token(), "privatetoken": null}));
    assert_eq!(
        login("admin", "wrong", "zmsync"),
        json!({"error": "Invalid login, please try again", "errorcode": "invalidlogin", "stacktrace": null, "debuginfo": null, "reproductionlink": null})
    );
    assert_eq!(login("admin", &fake.admin_password(), "other")["errorcode"], "servicenotavailable");
}

#[test]
fn sandbox_moodle_webhooks_are_signed() {
    let receiver = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1/events/moodle", receiver.local_addr().unwrap());
    let secret = "test-secret-for-hmac";
    let fake = start(MoodleOptions {
        webhook_url: Some(url),
        webhook_hmac_secret: Some(zmsync::secret::Secret::new(secret)),
        ..MoodleOptions::default()
    });
    assert!(fake.set_grade(20, 10, Some(91.0)));
    let (mut conn, _) = receiver.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = vec![0u8; 8192];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("\"grade\":") {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    conn.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(text.starts_with("POST /v1/events/moodle/grade HTTP/1.1"), "{text}");
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let sig = head.lines().find_map(|l| l.strip_prefix("X-Moodle-Signature: ")).unwrap();
    assert_eq!(sig, zmsync::sandbox::moodle::webhook::sign(secret, body));
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        (v["event_type"].as_str(), v["student_id"].as_i64(), v["course_id"].as_i64()),
        (Some("grade_updated"), Some(10), Some(20))
    );
    assert_eq!(v["grade"], 91.0);
    assert!(v["event_id"].as_str().unwrap().starts_with("moodle-"));
}

// ---------- a stock Moodle 5.0 ----------

/// Seed user 10 with a phone.
fn seed_with_phone() -> MoodleSeed {
    let mut s = seed();
    s.users[0].phone1 = "+44 20 7946 0000".into();
    s
}

#[test]
fn stock_moodle_hides_phone1_from_a_token_that_is_not_admin_unless_shown() {
    let fake = FakeMoodle::start(seed_with_phone(), MoodleOptions::default()).unwrap();
    let by_id = |fake: &FakeMoodle| {
        let v = call(fake, "core_user_get_users_by_field", &[("field", "id"), ("values[0]", "10")]);
        v[0].clone()
    };
    let all = |fake: &FakeMoodle| {
        let v = call(fake, "core_user_get_users", &[("criteria[0][key]", "email"), ("criteria[0][value]", "%")]);
        v["users"].as_array().unwrap().iter().find(|u| u["id"] == 10).cloned().unwrap()
    };
    // Stock: Show user identity = email; the phone is set but not returned, by either function.
    assert!(by_id(&fake).get("phone1").is_none(), "{}", by_id(&fake));
    assert!(all(&fake).get("phone1").is_none());
    assert_eq!(by_id(&fake)["email"], "alice@example.org");
    fake.set_show_identity(&["email", "phone1"]);
    assert_eq!(by_id(&fake)["phone1"], "+44 20 7946 0000");
    assert_eq!(all(&fake)["phone1"], "+44 20 7946 0000");
    fake.set_show_identity(&["email"]);
    fake.update_options(|o| o.token_is_admin = true);
    assert_eq!(by_id(&fake)["phone1"], "+44 20 7946 0000", "a site admin reads every field");
}

#[test]
fn stock_moodle_commits_new_enrolments_then_raises_message_was_not_sent() {
    let fake = start(MoodleOptions::default());
    let enrol = |fake: &FakeMoodle, user: &str, course: &str| {
        call(
            fake,
            "enrol_manual_enrol_users",
            &[("enrolments[0][roleid]", "5"), ("enrolments[0][userid]", user), ("enrolments[0][courseid]", course)],
        )
    };
    // A new enrolment: saved, then the welcome message fails after the commit.
    let v = enrol(&fake, "11", "20");
    assert_error(&v, "Message was not sent.");
    assert!(fake.enrolments().iter().any(|(e, _)| e.courseid == 20 && e.userid == 11), "the enrolment was kept");
    // An existing enrolment sends no welcome: no error.
    assert_eq!(enrol(&fake, "10", "20"), Value::Null);
    // With mail working, or the welcome message off, a new enrolment answers null.
    fake.set_mail_configured(true);
    assert_eq!(enrol(&fake, "12", "20"), Value::Null);
    fake.set_mail_configured(false);
    fake.set_welcome_message(false);
    assert_eq!(enrol(&fake, "11", "21"), Value::Null);
    // A failing call still rolls back as a whole (nothing committed, so no message either).
    fake.set_welcome_message(true);
    let v = call(
        &fake,
        "enrol_manual_enrol_users",
        &[
            ("enrolments[0][roleid]", "5"),
            ("enrolments[0][userid]", "12"),
            ("enrolments[0][courseid]", "21"),
            ("enrolments[1][roleid]", "5"),
            ("enrolments[1][userid]", "999"),
            ("enrolments[1][courseid]", "21"),
        ],
    );
    assert_ne!(v["errorcode"], "Message was not sent.", "{v}");
    assert!(!fake.enrolments().iter().any(|(e, _)| e.courseid == 21 && e.userid == 12));
}

#[test]
fn stock_moodle_cost_model_holds_at_most_its_workers() {
    use zmsync::sandbox::moodle::CostModel;
    let fake =
        start(MoodleOptions { cost: Some(CostModel { workers: 2, per_call_ms: 30.0 }), ..MoodleOptions::default() });
    let addr = fake.addr();
    let token = fake.token();
    let threads: Vec<_> = (0..6)
        .map(|_| {
            let token = token.clone();
            std::thread::spawn(move || {
                let q = encode(&[
                    ("wstoken", &token),
                    ("wsfunction", "core_webservice_get_site_info"),
                    ("moodlewsrestformat", "json"),
                ]);
                request(
                    addr,
                    "POST",
                    &format!("/webservice/rest/server.php?{q}"),
                    Some("application/x-www-form-urlencoded"),
                    b"",
                )
                .expect("transport")
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap().status, 200);
    }
    let stats = fake.stats();
    assert_eq!(stats.requests["core_webservice_get_site_info"], 6);
    assert!(stats.max_concurrent > 2, "the requests arrived together: {}", stats.max_concurrent);
    assert_eq!(stats.max_workers_busy, 2, "but only two PHP workers served them at once");
}
