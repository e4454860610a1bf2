//! The payload parsers on sample Zoho and Moodle bodies.

use serde_json::json;

use super::*;

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// 2026-01-25T10:00:00Z, the examples' time.
const NOW: i64 = 1_769_335_200_000;

fn at(body: &[u8]) -> Receipt<'_> {
    Receipt { body, now_ms: NOW, window: DEFAULT_WINDOW }
}

const R: Receipt<'static> = Receipt { body: b"{}", now_ms: NOW, window: DEFAULT_WINDOW };

#[test]
fn content_types() {
    assert_eq!(body_format(Some("application/json; charset=utf-8")), Ok(BodyFormat::Json));
    assert_eq!(body_format(Some("Application/JSON")), Ok(BodyFormat::Json));
    assert_eq!(body_format(Some("text/plain")), Ok(BodyFormat::Json));
    assert_eq!(body_format(Some("application/x-www-form-urlencoded")), Ok(BodyFormat::Form));
    assert_eq!(body_format(Some("application/xml")).unwrap_err().status(), 415);
    assert_eq!(body_format(None).unwrap_err().status(), 415);
}

#[test]
fn zoho_first_shape() {
    let m = obj(json!({"event_id":"evt_123_456","event_type":"created","module":"BTEC_Students",
                       "record_id":"5847596000012345","changed_fields":["all"],"timestamp":"2026-01-25T10:00:00Z"}));
    let e = zoho_workflow("student", "BTEC_Students", m.clone(), &R).unwrap();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].event_id, "zoho:evt_123_456");
    assert_eq!(e[0].event_type, "created");
    assert_eq!(e[0].record_id, "5847596000012345");
    assert_eq!(e[0].entity_type, "student");
    assert_eq!(e[0].module.as_deref(), Some("BTEC_Students"));
    assert_eq!(e[0].payload, Value::Object(m));
}

#[test]
fn zoho_second_shape_and_numbers() {
    let m = obj(json!({"notification_id":"event_12345","timestamp":"2026-01-25T10:00:00Z","module":"BTEC_Students",
                       "operation":"update","record_id":5398830000123893227u64,"data":{"Name":"John Doe"}}));
    let e = zoho_workflow("student", "BTEC_Students", m, &R).unwrap();
    assert_eq!((e[0].event_id.as_str(), e[0].event_type.as_str()), ("zoho:event_12345", "update"));
    assert_eq!(e[0].record_id, "5398830000123893227");
}

#[test]
fn zoho_form_encoded_and_derived_id() {
    let body: &[u8] = b"zoho_id=5847596000012345&module=BTEC_Classes&timestamp=2026-01-25T10%3A00%3A00Z";
    let m = object(BodyFormat::Form, body).unwrap();
    let e = zoho_workflow("class", "BTEC_Classes", m.clone(), &at(body)).unwrap();
    assert_eq!(e[0].record_id, "5847596000012345");
    // No id: the hash of the signed bytes, the same at any later time (a replay is a duplicate)...
    use sha2::Digest;
    assert_eq!(e[0].event_id, format!("zoho:sha256:{}", hex::encode(sha2::Sha256::digest(body))));
    let later = Receipt { now_ms: NOW + 3_600_000, ..at(body) };
    assert_eq!(zoho_workflow("class", "BTEC_Classes", m.clone(), &later).unwrap()[0].event_id, e[0].event_id);
    // ...and another body another event.
    let other: &[u8] = b"zoho_id=5847596000012345&module=BTEC_Classes";
    let m2 = object(BodyFormat::Form, other).unwrap();
    assert_ne!(zoho_workflow("class", "BTEC_Classes", m2, &at(other)).unwrap()[0].event_id, e[0].event_id);
}

#[test]
fn ids_are_unique_per_source() {
    let z = zoho_workflow(
        "student",
        "BTEC_Students",
        obj(json!({"event_id":"moodle:777","module":"BTEC_Students","record_id":"5847596000012345"})),
        &R,
    )
    .unwrap();
    let m = moodle("enrollment", obj(json!({"eventid":"777","eventname":"x","courseid":12,"userid":34})), &R).unwrap();
    assert_eq!((z[0].event_id.as_str(), m.event_id.as_str()), ("zoho:moodle:777", "moodle:777"));
    let m2 = moodle("grade", obj(json!({"event_id":"777","event_type":"g","entity_id":"5"})), &R).unwrap();
    assert_eq!(m2.event_id, "moodle:777");
}

#[test]
fn the_replay_window_on_every_shape_with_a_time() {
    let day = 86_400_000i64;
    let zoho = |ts: Value| {
        let m = obj(json!({"event_id":"e","module":"BTEC_Students","record_id":"1","timestamp":ts}));
        zoho_workflow("student", "BTEC_Students", m, &R)
    };
    let notify = |t: i64| {
        let m =
            obj(json!({"server_time":t,"module":"BTEC_Students","ids":["1"],"operation":"update","channel_id":"9"}));
        zoho_notification(m, &R)
    };
    let moodle1 =
        |t: i64| moodle("enrollment", obj(json!({"eventname":"x","courseid":1,"userid":2,"timecreated":t})), &R);
    for ok in [
        json!("2026-01-25T10:00:00Z"),
        json!("2026-01-25T15:00:00+05:30"),
        json!("2026-01-24 11:00:00"),
        json!(NOW - day + 60_000),
        json!((NOW + 60_000) / 1000),
        json!(NOW.to_string()),
    ] {
        assert!(zoho(ok.clone()).is_ok(), "{ok}");
    }
    for (bad, word) in [
        (json!("2001-01-01T00:00:00Z"), "old"),
        (json!("2099-01-01T00:00:00Z"), "future"),
        (json!(NOW - day - 60_000), "old"),
        (json!(NOW + 600_000), "future"),
    ] {
        let e = zoho(bad.clone()).unwrap_err();
        assert!(matches!(e, PayloadError::OutOfWindow { .. }) && e.to_string().contains(word), "{bad}: {e}");
        assert_eq!(e.status(), 422);
    }
    assert!(matches!(zoho(json!("yesterday")).unwrap_err(), PayloadError::BadTime { .. }));
    assert!(notify(NOW).is_ok());
    assert!(matches!(notify(NOW - 2 * day).unwrap_err(), PayloadError::OutOfWindow { .. }));
    assert!(matches!(notify(NOW + day).unwrap_err(), PayloadError::OutOfWindow { .. }));
    assert!(moodle1(NOW / 1000).is_ok());
    assert!(matches!(moodle1(NOW / 1000 - 2 * 86_400).unwrap_err(), PayloadError::OutOfWindow { .. }));
    let wide = Receipt { window: Duration::from_secs(3 * 86_400), ..R };
    let m = obj(json!({"eventname":"x","courseid":1,"userid":2,"timecreated":NOW / 1000 - 2 * 86_400}));
    assert!(moodle("enrollment", m, &wide).is_ok(), "the window is configurable");
}

#[test]
fn record_ids_must_be_ids() {
    let zoho = |id: Value| {
        zoho_workflow("student", "BTEC_Students", obj(json!({"event_id":"e","record_id":id})), &R)
            .map(|e| e[0].record_id.clone())
    };
    assert_eq!(zoho(json!("5847596000012345")).unwrap(), "5847596000012345");
    assert_eq!(zoho(json!(5847596000012345u64)).unwrap(), "5847596000012345");
    for bad in
        [json!("../../x"), json!("12a"), json!("1".repeat(26)), json!("x".repeat(30_000)), json!(-5), json!("1 2")]
    {
        let e = zoho(bad.clone()).unwrap_err();
        assert!(matches!(e, PayloadError::BadRecordId { .. }), "{bad}: {e}");
        assert_eq!(e.status(), 400);
        assert!(e.to_string().len() < 200, "the value is cut: {e}");
    }
    let notify = |ids: Value| {
        zoho_notification(
            obj(json!({"server_time":NOW,"module":"BTEC_Students","ids":ids,"operation":"u","channel_id":"9"})),
            &R,
        )
    };
    assert!(notify(json!(["1", 2])).is_ok());
    assert!(matches!(notify(json!(["1", "../x"])).unwrap_err(), PayloadError::BadRecordId { .. }));
    assert!(matches!(notify(json!([null])).unwrap_err(), PayloadError::BadRecordId { .. }));
    let m1 = |c: Value, u: Value| {
        moodle("enrollment", obj(json!({"eventid":"1","eventname":"x","courseid":c,"userid":u})), &R)
    };
    assert_eq!(m1(json!(12), json!("34")).unwrap().record_id, "12:34");
    for (c, u) in [(json!(0), json!(1)), (json!(-1), json!(1)), (json!("1"), json!("x")), (json!("1.5"), json!(2))] {
        assert!(matches!(m1(c.clone(), u.clone()).unwrap_err(), PayloadError::BadRecordId { .. }), "{c} {u}");
    }
    let m2 = |id: Value| moodle("grade", obj(json!({"event_id":"1","event_type":"g","entity_id":id})), &R);
    assert!(m2(json!("12345")).is_ok());
    assert!(matches!(m2(json!("../../x")).unwrap_err(), PayloadError::BadRecordId { .. }));
}

#[test]
fn zoho_bad_inputs() {
    let err = |v: Value| zoho_workflow("student", "BTEC_Students", obj(v), &R).unwrap_err();
    assert!(matches!(err(json!({"event_id":"e","module":"BTEC_Students"})), PayloadError::MissingRecordId { .. }));
    assert!(matches!(
        err(json!({"event_id":"e","module":"Leads","record_id":"1"})),
        PayloadError::UnknownModule { .. }
    ));
    assert!(matches!(
        err(json!({"event_id":"e","module":"BTEC_Teachers","record_id":"1"})),
        PayloadError::ModuleMismatch { .. }
    ));
    let p = err(json!({"zoho_id":"${!BTEC_Students.Id}","module":"BTEC_Students"}));
    assert!(matches!(p, PayloadError::Placeholder { ref field, .. } if field == "zoho_id"), "{p}");
    assert_eq!(p.status(), 422);
    let p = err(json!({"event_id":"e","record_id":"1","data":{"Name":"${Name}"}}));
    assert!(matches!(p, PayloadError::Placeholder { ref field, .. } if field == "data.Name"), "{p}");
    assert_eq!(object(BodyFormat::Json, b"{not json").unwrap_err().status(), 400);
    assert_eq!(object(BodyFormat::Json, b"[1]").unwrap_err().status(), 400);
    assert_eq!(object(BodyFormat::Form, b"").unwrap_err().status(), 400);
}

#[test]
fn notification_splits_ids_and_drops_token() {
    let m = obj(json!({"server_time":1769335200473u64,"query_params":{"src":"watch"},"module":"BTEC_Students",
        "resource_uri":"https://www.zohoapis.eu/crm/v8/BTEC_Students","ids":["5847596000012345001","5847596000012345002"],
        "affected_fields":[],"operation":"update","channel_id":"1000000068001","token":"s3cr3t"}));
    assert!(is_notification(&m));
    assert_eq!(notification_token(&m), Some("s3cr3t"));
    let e = zoho_notification(m.clone(), &R).unwrap();
    assert_eq!(e.len(), 2);
    assert_eq!(e[0].event_id, "zoho:1000000068001:5847596000012345001:update:1769335200473");
    assert_eq!(e[1].record_id, "5847596000012345002");
    assert_eq!(e[1].entity_type, "student");
    assert!(e[0].payload.get("token").is_none(), "the token must never be stored");
    assert!(!e[0].payload.to_string().contains("s3cr3t"));
    let mut bad = m.clone();
    bad.insert("ids".into(), json!([]));
    assert!(matches!(zoho_notification(bad, &R).unwrap_err(), PayloadError::MissingRecordId { .. }));
    let mut bad = m;
    bad.insert("module".into(), json!("Leads"));
    assert!(matches!(zoho_notification(bad, &R).unwrap_err(), PayloadError::UnknownModule { .. }));
}

#[test]
fn moodle_first_shape() {
    let m = obj(json!({"eventid":"991","eventname":"\\core\\event\\user_enrolment_created","courseid":12,"userid":34,
                       "timecreated":1769331600}));
    let e = moodle("enrollment", m.clone(), &R).unwrap();
    assert_eq!(e.event_id, "moodle:991");
    assert_eq!(e.record_id, "12:34");
    assert_eq!(e.event_type, "\\core\\event\\user_enrolment_created");
    let mut no_id = m.clone();
    no_id.remove("eventid");
    let e1 = moodle("enrollment", no_id.clone(), &at(b"body")).unwrap();
    assert!(e1.event_id.starts_with("moodle:sha256:"), "{}", e1.event_id);
    assert_eq!(moodle("enrollment", no_id, &at(b"body")).unwrap().event_id, e1.event_id, "derived ids are stable");
    let mut related = m;
    related.insert("relateduserid".into(), json!(56));
    assert_eq!(moodle("enrollment", related, &R).unwrap().record_id, "12:56");
}

#[test]
fn moodle_second_shape_and_bad_inputs() {
    let m = obj(json!({"event_id":"moodle_evt_789","event_type":"grade_submitted","entity_type":"grade",
                       "entity_id":"12345","student_id":1234,"course_id":567,"grade":85.5}));
    let e = moodle("grade", m.clone(), &R).unwrap();
    assert_eq!(
        (e.event_id.as_str(), e.record_id.as_str(), e.event_type.as_str()),
        ("moodle:moodle_evt_789", "567:1234", "grade_submitted")
    );
    let mut only_entity = m.clone();
    only_entity.remove("student_id");
    assert_eq!(moodle("grade", only_entity, &R).unwrap().record_id, "12345");
    assert!(matches!(moodle("enrollment", m.clone(), &R).unwrap_err(), PayloadError::EntityMismatch { .. }));
    let mut none = m;
    for k in ["student_id", "course_id", "entity_id"] {
        none.remove(k);
    }
    assert!(matches!(moodle("grade", none, &R).unwrap_err(), PayloadError::MissingRecordId { .. }));
    assert!(matches!(
        moodle("grade", obj(json!({"eventname":"x","courseid":1})), &R).unwrap_err(),
        PayloadError::MissingRecordId { .. }
    ));
    assert!(matches!(moodle("grade", obj(json!({"hello":"x"})), &R).unwrap_err(), PayloadError::Unrecognised(_)));
}
