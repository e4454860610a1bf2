//! The Moodle client against the fake Moodle on loopback.

use std::time::Duration;

use serde_json::{json, Value};
use zmsync::config::MoodleConfig;
use zmsync::moodle::{self, calls::RowOutcome, Client as MoodleClient};
use zmsync::sandbox::moodle::{FakeMoodle, FaultKind, MoodleOptions};
use zmsync::sandbox::seed::{MoodleCourse, MoodleEnrolment, MoodleSeed, MoodleUser, PluginTables};
use zmsync::secret::Secret;

use crate::fakes::{fast_backoff, rt};

fn moodle_client(fake: &FakeMoodle, max_input_vars: usize) -> MoodleClient {
    let cfg = MoodleConfig { url: Some(fake.url()), token: Some(Secret::new(fake.token())) };
    let opts = moodle::ClientOptions {
        backoff: fast_backoff(),
        timeout: Duration::from_secs(2),
        max_input_vars,
        ..Default::default()
    };
    MoodleClient::new(&cfg, opts).unwrap()
}

fn seed(users: i64) -> MoodleSeed {
    let mut s = MoodleSeed::default();
    for i in 0..users {
        s.users.push(MoodleUser {
            id: 100 + i,
            username: format!("stu-{i}"),
            firstname: "First".into(),
            lastname: format!("Last{i}"),
            email: format!("stu{i}@student.edu"),
            idnumber: format!("STU-{i}"),
            auth: if i % 2 == 0 { "manual".into() } else { "oauth2".into() },
            suspended: false,
            phone1: String::new(),
        });
    }
    s.courses.push(MoodleCourse {
        id: 10,
        shortname: "C&1".into(),
        fullname: "Course & one".into(),
        idnumber: "5847596000000000001".into(),
        categoryid: 1,
        startdate: 1767225600,
        enddate: 0,
        visible: true,
    });
    s.enrolments.push(MoodleEnrolment {
        courseid: 10,
        userid: 100,
        roleid: 5,
        status: 0,
        timestart: 1767225600,
        timeend: 0,
    });
    s.plugin = PluginTables::default();
    s
}

#[test]
fn moodle_reads_users_courses_enrolments_and_checks_the_site() {
    let fake = FakeMoodle::start(seed(30), MoodleOptions::default()).unwrap();
    let c = moodle_client(&fake, 1000);
    rt().block_on(async {
        let needed: Vec<String> = moodle::calls::needed_functions();
        let check = c.check_site(&needed).await.unwrap();
        assert_eq!(check.contract_version, 1);
        let users = c.users(Some(check.site.userid)).await.unwrap();
        assert_eq!(users.len(), 30, "every seeded user whatever their auth, no guest or admin");
        assert!(users.iter().all(|u| u["username"] != "guest" && u["username"] != "admin"));
        let courses = c.courses().await.unwrap();
        assert_eq!(courses.len(), 1, "the site course is skipped");
        assert_eq!(courses[0]["fullname"], "Course & one", "raw names, not HTML-escaped");
        let (enrolments, warnings) = c.enrolments(&[10]).await.unwrap();
        assert_eq!(enrolments.len(), 1);
        assert!(warnings.is_empty());
    });
}

#[test]
fn moodle_exception_surfaces_with_errorcode_and_message() {
    let fake = FakeMoodle::start(seed(2), MoodleOptions::default()).unwrap();
    let good = moodle_client(&fake, 1000);
    let bad = MoodleClient::new(
        &MoodleConfig { url: Some(fake.url()), token: Some(Secret::new("0123456789abcdef0123456789abcdef")) },
        moodle::ClientOptions::default(),
    )
    .unwrap();
    rt().block_on(async {
        let e = bad.site_info().await.unwrap_err();
        assert_eq!(e.errorcode(), Some("invalidtoken"), "{e}");
        assert!(e.to_string().contains("MOODLE_TOKEN"), "{e}");
        assert!(!e.to_string().contains(&fake.token()));
        // A duplicate username fails its row; the good row of the same batch still lands.
        let rows = vec![
            json!({"username": "fresh1", "firstname": "A", "lastname": "B", "email": "fresh1@x.edu", "createpassword": 1}),
            json!({"username": "stu-0", "firstname": "A", "lastname": "B", "email": "dup@x.edu", "createpassword": 1}),
        ];
        let out = good.create_users(&rows).await.unwrap();
        assert!(matches!(out[0], RowOutcome::Created { .. }), "{out:?}");
        match &out[1] {
            RowOutcome::Failed { errorcode, message, .. } => {
                assert_eq!(errorcode, "invalidparameter");
                assert!(!message.is_empty());
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn moodle_batches_stay_under_max_input_vars() {
    let mut s = seed(1);
    s.users[0].id = 34;
    let fake = FakeMoodle::start(s, MoodleOptions { max_input_vars: 200, ..Default::default() }).unwrap();
    let c = moodle_client(&fake, 200);
    let rows: Vec<Value> = (0..450)
        .map(|i| {
            json!({"zoho_id": format!("58475960000{i:05}"), "userid": 34, "student_zoho_id": "1", "amount": "10.00",
                        "payment_date": "2026-01-15", "status": "Paid", "method": "Card"})
        })
        .collect();
    rt().block_on(async {
        let r = c.upsert_rows("payments", &rows).await.unwrap();
        assert_eq!(r.created, 450, "{:?}", r.warnings);
        let (page, total) = c.plugin_rows("payments", 0, 1000).await.unwrap();
        assert_eq!((page.len(), total), (450, 450));
    });
    let stats = fake.stats();
    assert!(!stats.truncated, "PHP would have dropped variables");
    assert!(stats.max_form_vars <= 200, "{}", stats.max_form_vars);
    assert!(c.stats().max_vars() <= 200);
    assert!(stats.requests["local_student_dashboard_upsert_payments"] >= 450 * 7 / 180);
}

#[test]
fn moodle_transport_faults_are_retried() {
    let fake = FakeMoodle::start(
        seed(20),
        MoodleOptions {
            fault_rate: 0.3,
            fault_seed: 7,
            fault_kinds: vec![FaultKind::Http503, FaultKind::Http500, FaultKind::Reset, FaultKind::Timeout],
            fault_hold_ms: 300,
            ..Default::default()
        },
    )
    .unwrap();
    let c = moodle_client(&fake, 1000);
    rt().block_on(async {
        for _ in 0..10 {
            assert_eq!(c.users(None).await.unwrap().len(), 20);
        }
    });
    assert!(fake.stats().faults.values().sum::<u64>() > 0, "faults were injected");
    assert!(c.stats().retries > 0);
}
