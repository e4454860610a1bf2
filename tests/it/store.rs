//! The store suite: every test runs against SQLite and, when ZMSYNC_TEST_DATABASE_URL is set, PostgreSQL.

use serde_json::json;
use zmsync::store::{self, Dialect, Store, StoreError, LATEST_VERSION};

use crate::support::{pg_required, PgSchema, PG_ENV};

/// Runs one store test body on both dialects.
macro_rules! store_test {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;

            #[test]
            fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("s.db").display());
                let store = store::open(&url).unwrap();
                assert_eq!(store.dialect(), Dialect::Sqlite);
                ($body)(store.as_ref());
            }

            #[test]
            fn postgres() {
                let Some(schema) = PgSchema::create() else { return };
                let store = store::open(&schema.url).unwrap();
                assert_eq!(store.dialect(), Dialect::Postgres);
                ($body)(store.as_ref());
            }
        }
    };
}

/// Says loudly whether the PostgreSQL half of the suite ran. In CI it must.
#[test]
fn postgres_store_tests_status() {
    match std::env::var(PG_ENV) {
        Ok(url) if !url.is_empty() => {
            let schema = PgSchema::create().expect("schema");
            store::open(&schema.url).expect("the PostgreSQL test database must be reachable");
            println!("PostgreSQL store tests RAN against {}", store::redact_url(&url));
        }
        _ => {
            let msg = format!(
                "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                 SKIPPED: the PostgreSQL store tests did not run ({PG_ENV} is not set).\n\
                 Set it, e.g. {PG_ENV}=postgres://postgres:postgres@127.0.0.1:5432/test\n\
                 !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
            );
            println!("{msg}");
            eprintln!("{msg}");
            assert!(!pg_required(), "CI requires the PostgreSQL store tests: set {PG_ENV}");
        }
    }
}

store_test!(migrated_to_latest, |s: &dyn Store| {
    assert_eq!(s.schema_version().unwrap(), LATEST_VERSION);
    assert!(!s.location().contains("postgres:postgres"), "location must not show a password: {}", s.location());
});

store_test!(settings_roundtrip_and_audit, |s: &dyn Store| {
    assert!(s.settings().unwrap().is_empty());
    assert!(s.setting("retry.policy").unwrap().is_none());
    assert!(s.insert_setting_if_absent("retry.policy", &json!({"max_retries": 3}), "a").unwrap());
    assert!(!s.insert_setting_if_absent("retry.policy", &json!({"max_retries": 9}), "b").unwrap());
    let row = s.setting("retry.policy").unwrap().unwrap();
    assert_eq!(row.value, json!({"max_retries": 3}));
    assert_eq!(row.updated_by, "a");
    let before = row.updated_at;
    s.put_setting("retry.policy", &json!({"max_retries": 5, "unicode": "Zoë"}), "cli:bob").unwrap();
    let row = s.setting("retry.policy").unwrap().unwrap();
    assert_eq!(row.value, json!({"max_retries": 5, "unicode": "Zoë"}));
    assert_eq!(row.updated_by, "cli:bob");
    assert!(row.updated_at >= before);
    s.put_setting("a.first", &json!(true), "x").unwrap();
    let keys: Vec<_> = s.settings().unwrap().into_iter().map(|r| r.key).collect();
    assert_eq!(keys, vec!["a.first", "retry.policy"]);
    let map = s.settings_map().unwrap();
    assert_eq!(map["a.first"], json!(true));
});

store_test!(reopen_is_idempotent, |s: &dyn Store| {
    s.put_setting("k", &json!(1), "x").unwrap();
    assert_eq!(s.schema_version().unwrap(), LATEST_VERSION);
});

#[test]
fn sqlite_newer_schema_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.db");
    let url = format!("sqlite://{}", path.display());
    {
        let s = store::open(&url).unwrap();
        s.put_setting("k", &json!(1), "x").unwrap();
    }
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 'x')", []).unwrap();
        c.pragma_update(None, "journal_mode", "DELETE").unwrap();
    }
    let snapshot = |p: &std::path::Path| {
        let mut names: Vec<_> = std::fs::read_dir(p).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        (names, std::fs::read(p.join("n.db")).unwrap())
    };
    let before = snapshot(dir.path());
    let err = store::open(&url).err().expect("a newer schema must be refused");
    assert!(matches!(err, StoreError::SchemaTooNew { found: 99, .. }), "{err}");
    assert!(err.to_string().contains("not modified"), "{err}");
    assert_eq!(snapshot(dir.path()), before, "the database must be left untouched");
}

#[test]
fn postgres_newer_schema_is_refused_untouched() {
    let Some(schema) = PgSchema::create() else { return };
    drop(store::open(&schema.url).unwrap());
    let mut c = schema.client();
    c.batch_execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', now())").unwrap();
    let tables = |c: &mut postgres::Client| -> i64 {
        c.query_one("SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()", &[])
            .unwrap()
            .get(0)
    };
    let before = tables(&mut c);
    let err = store::open(&schema.url).err().expect("refused");
    assert!(matches!(err, StoreError::SchemaTooNew { found: 99, .. }), "{err}");
    assert_eq!(tables(&mut c), before);
    let n: i64 = c.query_one("SELECT count(*) FROM schema_migrations", &[]).unwrap().get(0);
    assert_eq!(n, LATEST_VERSION + 1);
}

#[test]
fn unreachable_postgres_is_a_clear_error() {
    let err = store::open("postgres://postgres:sekrit@127.0.0.1:1/test").err().expect("no server on port 1");
    let msg = err.to_string();
    assert!(matches!(err, StoreError::Connect { .. }), "{msg}");
    assert!(msg.contains("127.0.0.1:1") && !msg.contains("sekrit"), "{msg}");
}

#[test]
fn bad_urls_are_usage_errors() {
    for url in ["mysql://x", "sqlite://", "postgres://[bad"] {
        let err = store::open(url).err().unwrap_or_else(|| panic!("{url} should fail"));
        assert!(matches!(err, StoreError::InvalidUrl { .. }), "{url}: {err}");
    }
}

// ---- events and dirty marks ------------------------------------------------------------------------------

mod events {
    use chrono::{Duration, Utc};
    use serde_json::json;
    use zmsync::store::events::{DirtyKey, InsertOutcome, NewEvent};
    use zmsync::store::{self, Dialect, Store};

    use crate::support::PgSchema;

    fn ev(id: &str, source: &str, entity: &str, record: &str) -> NewEvent {
        NewEvent {
            event_id: id.into(),
            source: source.into(),
            event_type: "update".into(),
            module: (source == "zoho").then(|| "BTEC_Students".to_string()),
            entity_type: entity.into(),
            record_id: record.into(),
            payload: json!({"record_id": record, "n": "Zoë"}),
        }
    }

    fn key(source: &str, entity: &str, k: &str) -> DirtyKey {
        DirtyKey { source: source.into(), entity: entity.into(), key: k.into() }
    }

    fn status(s: &dyn Store, id: &str) -> String {
        s.event(id).unwrap().unwrap().status
    }

    store_test!(insert_batch_dedups_and_marks_dirty, |s: &dyn Store| {
        let out = s
            .insert_events(&[
                ev("a", "zoho", "student", "1"),
                ev("b", "zoho", "student", "1"),
                ev("a", "zoho", "student", "9"),
                ev("c", "moodle", "grade", "5:7"),
            ])
            .unwrap();
        use InsertOutcome::*;
        assert_eq!(out, vec![Inserted, Inserted, Duplicate, Inserted]);
        assert_eq!(s.insert_events(&[ev("c", "moodle", "grade", "5:7")]).unwrap(), vec![Duplicate]);
        let a = s.event("a").unwrap().unwrap();
        assert_eq!((a.status.as_str(), a.record_id.as_deref(), a.retry_count), ("pending", Some("1"), 0));
        assert_eq!(a.module.as_deref(), Some("BTEC_Students"));
        let marks: Vec<DirtyKey> = s.dirty_marks().unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(marks.len(), 2, "{marks:?}");
        assert!(marks.contains(&key("zoho", "student", "1")) && marks.contains(&key("moodle", "grade", "5:7")));
        assert!(!marks.contains(&key("zoho", "student", "9")), "a duplicate must not mark anything");
        let counts = s.event_counts().unwrap();
        let pairs: Vec<_> = counts.iter().map(|c| (c.source.as_str(), c.status.as_str(), c.count)).collect();
        assert_eq!(pairs, vec![("moodle", "pending", 1), ("zoho", "pending", 2)]);
        assert_eq!(s.oldest_pending_event().unwrap().unwrap().event_id, "a");
        assert!(s.insert_events(&[]).unwrap().is_empty());
    });

    store_test!(claim_complete_and_fail, |s: &dyn Store| {
        s.insert_events(&[ev("a", "zoho", "student", "1"), ev("b", "zoho", "student", "2")]).unwrap();
        let claimed = s.claim_dirty(10).unwrap();
        assert_eq!(claimed.len(), 2);
        assert!(s.claim_dirty(10).unwrap().is_empty(), "claimed marks are not claimed twice");
        assert_eq!(status(s, "a"), "processing");
        // A new event for record 1 while it is being synced: it stays dirty after completion.
        s.insert_events(&[ev("a2", "zoho", "student", "1")]).unwrap();
        let (one, two) =
            if claimed[0].key.key == "1" { (&claimed[0], &claimed[1]) } else { (&claimed[1], &claimed[0]) };
        s.complete_dirty(std::slice::from_ref(one)).unwrap();
        assert_eq!(status(s, "a"), "completed");
        assert_eq!(status(s, "a2"), "pending");
        assert!(s.event("a").unwrap().unwrap().processed_at.is_some());
        s.fail_dirty(two, "Moodle said no").unwrap();
        let b = s.event("b").unwrap().unwrap();
        assert_eq!((b.status.as_str(), b.error_message.as_deref()), ("failed", Some("Moodle said no")));
        let marks: Vec<DirtyKey> = s.dirty_marks().unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(marks, vec![key("zoho", "student", "1")], "only the re-marked record stays dirty");
        let again = s.claim_dirty(10).unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(status(s, "a2"), "processing");
        s.complete_dirty(&again).unwrap();
        assert!(s.dirty_marks().unwrap().is_empty());
        assert_eq!(
            s.recent_failed_events(5).unwrap().iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>(),
            vec!["b"]
        );
    });

    store_test!(retry_respects_max_retries_and_remarks, |s: &dyn Store| {
        s.insert_events(&[ev("a", "moodle", "enrollment", "3:4")]).unwrap();
        let since = Utc::now() - Duration::hours(1);
        for round in 1..=2 {
            let m = s.claim_dirty(1).unwrap();
            s.fail_dirty(&m[0], &format!("boom {round}")).unwrap();
            assert!(s.dirty_marks().unwrap().is_empty());
            let out = s.retry_failed(since, 2).unwrap();
            assert_eq!((out.retried, out.exhausted), (1, 0));
            let e = s.event("a").unwrap().unwrap();
            assert_eq!((e.status.as_str(), e.retry_count), ("pending", round));
            assert_eq!(s.dirty_marks().unwrap().len(), 1, "a retried event marks its record dirty again");
        }
        let m = s.claim_dirty(1).unwrap();
        s.fail_dirty(&m[0], "boom 3").unwrap();
        let out = s.retry_failed(since, 2).unwrap();
        assert_eq!((out.retried, out.exhausted), (0, 1));
        assert_eq!(status(s, "a"), "failed");
        let out = s.retry_failed(Utc::now() + Duration::hours(1), 9).unwrap();
        assert_eq!((out.retried, out.exhausted), (0, 0), "outside the window nothing is touched");
    });

    store_test!(cleanup_counts_and_deletes, |s: &dyn Store| {
        s.insert_events(&[
            ev("a", "zoho", "student", "1"),
            ev("b", "zoho", "student", "2"),
            ev("c", "zoho", "student", "3"),
        ])
        .unwrap();
        let m = s.claim_dirty(10).unwrap();
        let pick = |k: &str| m.iter().find(|x| x.key.key == k).unwrap().clone();
        s.complete_dirty(&[pick("1")]).unwrap();
        s.fail_dirty(&pick("2"), "x").unwrap();
        let future = Utc::now() + Duration::days(1);
        let past = Utc::now() - Duration::days(1);
        assert_eq!(s.cleanup_events(past, true, false).unwrap(), 0, "nothing is old enough");
        assert_eq!(s.cleanup_events(future, false, true).unwrap(), 1);
        assert_eq!(s.cleanup_events(future, true, true).unwrap(), 2);
        assert!(s.event("a").unwrap().is_some() && s.event("b").unwrap().is_some(), "dry run deletes nothing");
        assert_eq!(s.cleanup_events(future, false, false).unwrap(), 1);
        assert!(s.event("a").unwrap().is_none() && s.event("b").unwrap().is_some());
        assert_eq!(s.cleanup_events(future, true, false).unwrap(), 1);
        assert_eq!(status(s, "c"), "processing", "unsettled events are never cleaned up");
    });
}
