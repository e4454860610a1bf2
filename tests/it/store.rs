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
    assert_eq!(n, 2);
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
