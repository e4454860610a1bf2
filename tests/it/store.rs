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
    assert_eq!(n, LATEST_VERSION + 1, "the future row plus ours, nothing added");
}

/// A PostgreSQL store of schema 6 (JSONB columns, the journal packed full) upgrades to 7 in place: its records,
/// base and journal read back as they were written.
#[test]
fn postgres_upgrade_to_7_keeps_records_base_and_journal() {
    let Some(schema) = PgSchema::create() else { return };
    let mut c = schema.client();
    let v6 = [
        include_str!("../../crates/store/migrations/postgres/0001_init.sql"),
        include_str!("../../crates/store/migrations/postgres/0002_records_staging.sql"),
        include_str!("../../crates/store/migrations/postgres/0003_events.sql"),
        include_str!("../../crates/store/migrations/postgres/0004_dirty_retry.sql"),
        include_str!("../../crates/store/migrations/postgres/0005_journal_before.sql"),
        include_str!("../../crates/store/migrations/postgres/0006_zoho_channel.sql"),
    ];
    c.batch_execute(
        "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)",
    )
    .unwrap();
    for (i, sql) in v6.iter().enumerate() {
        c.batch_execute(sql).unwrap();
        c.execute("INSERT INTO schema_migrations VALUES ($1, 'v6', now())", &[&(i as i64 + 1)]).unwrap();
    }
    c.batch_execute(
        r#"INSERT INTO records (source, entity, key, source_id, fingerprint, fields, fetched_at)
             VALUES ('zoho', 'student', 'z1', 'z1', 'f1', '{"fields": {"email": "é@x", "n": 1.50}, "refs": {"moodle_id": "57"}}', now());
           INSERT INTO sync_state (entity, key, fields, fingerprint, synced_at) VALUES ('student', 'z1', '{"email": "é@x"}', 'f1', now());
           INSERT INTO runs (kind, status, dry_run, allow_mass_change, started_at, host, pid)
             VALUES ('sync', 'done', false, false, now(), 'h', 1);
           INSERT INTO journal (run_id, seq, entity, key, target, op, changes, fingerprints, outcome, created_at, refs, subject)
             SELECT id, 1, 'student', 'z1', 'moodle', 'update', '{"email": ["a@x", "é@x"]}', '{"zoho": "f1"}', 'applied',
                    now(), '{"userid": 57}', 'z1' FROM runs"#,
    )
    .unwrap();
    let s = store::open(&schema.url).unwrap();
    assert_eq!(s.schema_version().unwrap(), 7);
    let gone: bool = c.query_one("SELECT to_regclass('journal_entity_key') IS NULL", &[]).unwrap().get(0);
    assert!(gone, "the unused journal index is dropped");
    let got = s.records(zmsync::model::Kind::Student).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].fields["email"], json!("é@x"));
    assert_eq!(got[0].fields["n"], json!(1.5));
    assert_eq!(got[0].refs["moodle_id"], json!("57"));
    // Its JSON kept JSONB's spacing, which zmsync does not write: the next snapshot of the same record rewrites
    // it (the text differs), changed or not, and reads back the same.
    assert_eq!(s.replace_records(zmsync::model::Kind::Student, &got).unwrap(), 1);
    assert_eq!(s.records(zmsync::model::Kind::Student).unwrap(), got);
    let text: String = c.query_one("SELECT fields::text FROM records", &[]).unwrap().get(0);
    assert!(!text.contains(": "), "rewritten as zmsync writes it: {text}");
    assert_eq!(s.sync_states(zmsync::model::Entity::Student).unwrap()[0].fields["email"], json!("é@x"));
    let run_id: i64 = c.query_one("SELECT id FROM runs", &[]).unwrap().get(0);
    let journal = s.journal(run_id).unwrap();
    assert_eq!(journal[0].changes, Some(json!({"email": ["a@x", "é@x"]})));
    assert_eq!(journal[0].fingerprints, Some(json!({"zoho": "f1"})));
    // The new journal rows and outcomes work on the upgraded table too.
    s.journal_outcomes(run_id, &[(1, "failed", None, Some("later"))]).unwrap();
    assert_eq!(s.journal(run_id).unwrap()[0].outcome, "failed");
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

fn rec(kind: zmsync::model::Kind, key: &str, email: &str) -> zmsync::model::Record {
    let mut fields = zmsync::model::Fields::new();
    fields.insert("email".into(), json!(email));
    let mut refs = zmsync::model::Fields::new();
    refs.insert("moodle_id".into(), json!("57"));
    zmsync::model::Record::new(kind, key, fields, refs)
}

/// A base row of an enrolment whose one field is `v` (and whose sync time is `v` seconds into 2026).
fn base_state(key: &str, v: i64, run_id: Option<i64>) -> zmsync::store::SyncState {
    let mut fields = zmsync::model::Fields::new();
    fields.insert("v".into(), json!(v));
    zmsync::store::SyncState {
        entity: zmsync::model::Entity::Enrollment,
        fingerprint: zmsync::model::fingerprint(&fields),
        key: key.into(),
        fields,
        synced_at: chrono::DateTime::from_timestamp(1_767_261_600 + v, 0).unwrap(),
        run_id,
    }
}

store_test!(snapshot_stages_then_swaps_in_one_step, |s: &dyn Store| {
    use zmsync::model::Kind;
    s.replace_records(Kind::Student, &[rec(Kind::Student, "1", "a@x"), rec(Kind::Student, "2", "b@x")]).unwrap();
    // A snapshot in progress is invisible until committed.
    s.stage_records("snap-1", Kind::Student, &[rec(Kind::Student, "2", "b2@x")]).unwrap();
    s.stage_records("snap-1", Kind::Student, &[rec(Kind::Student, "3", "c@x"), rec(Kind::Student, "3", "c2@x")])
        .unwrap();
    assert_eq!(s.records(Kind::Student).unwrap().len(), 2);
    assert_eq!(s.commit_snapshot("snap-1", Kind::Student, true).unwrap(), 2);
    let got = s.records(Kind::Student).unwrap();
    assert_eq!(got.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(), ["2", "3"]);
    assert_eq!(got[0].field("email"), &json!("b2@x"));
    assert_eq!(got[1].field("email"), &json!("c2@x"), "the last staged version wins");
    assert_eq!(got[1].refs["moodle_id"], json!("57"));
    assert_eq!(got[1], rec(Kind::Student, "3", "c2@x"));
    // Incremental: upsert, keep the rest.
    s.stage_records("snap-2", Kind::Student, &[rec(Kind::Student, "9", "z@x")]).unwrap();
    assert_eq!(s.commit_snapshot("snap-2", Kind::Student, false).unwrap(), 3);
    // Other kinds untouched; discard drops staged rows.
    s.stage_records("snap-3", Kind::MoodleUser, &[rec(Kind::MoodleUser, "5", "m@x")]).unwrap();
    s.discard_snapshot("snap-3").unwrap();
    assert_eq!(s.commit_snapshot("snap-3", Kind::MoodleUser, false).unwrap(), 0);
    s.delete_records(Kind::Student, &["9".into()]).unwrap();
    assert_eq!(s.record_count(Kind::Student).unwrap(), 2);
});

// Generated snapshots, full and incremental, over a few keys: after every commit the store holds exactly what
// a model of the promise holds (a full snapshot is the whole kind, the last staged version of a key wins, an
// incremental one upserts), whichever of fields, references or nothing changed since the last commit. Fixed
// seeds, so a failure repeats.
store_test!(commits_agree_with_a_model_over_generated_snapshots, commits_agree_with_a_model);

fn commits_agree_with_a_model(s: &dyn Store) {
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;
    use zmsync::model::{Fields, Kind, Record};
    let record = |key: &str, email: u32, moodle_id: u32| {
        let mut fields = Fields::new();
        fields.insert("email".into(), json!(format!("{email}@x")));
        let mut refs = Fields::new();
        refs.insert("moodle_id".into(), json!(moodle_id.to_string()));
        Record::new(Kind::Student, key, fields, refs)
    };
    for seed in 0..4u64 {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let mut model: BTreeMap<String, Record> = BTreeMap::new();
        s.replace_records(Kind::Student, &[]).unwrap();
        for round in 0..12 {
            let full = rng.gen_bool(0.6);
            let id = format!("gen-{seed}-{round}");
            let mut staged: BTreeMap<String, Record> = BTreeMap::new();
            for _page in 0..rng.gen_range(1..4) {
                let page: Vec<Record> = (0..rng.gen_range(0..8))
                    .map(|_| {
                        let key = format!("k{}", rng.gen_range(0..12));
                        // Mostly what is stored (unchanged), else new fields, new references only, or both.
                        let (email, moodle_id) = match (model.get(&key), rng.gen_range(0..4)) {
                            (Some(old), 0 | 1) => (
                                old.fields["email"].as_str().unwrap().trim_end_matches("@x").parse().unwrap(),
                                old.refs["moodle_id"].as_str().unwrap().parse().unwrap(),
                            ),
                            (Some(old), 2) => (
                                old.fields["email"].as_str().unwrap().trim_end_matches("@x").parse().unwrap(),
                                rng.gen_range(0..1000),
                            ),
                            _ => (rng.gen_range(0..1000), rng.gen_range(0..1000)),
                        };
                        record(&key, email, moodle_id)
                    })
                    .collect();
                staged.extend(page.iter().map(|r| (r.key.clone(), r.clone())));
                s.stage_records(&id, Kind::Student, &page).unwrap();
            }
            if full {
                model = staged;
            } else {
                model.extend(staged);
            }
            let n = s.commit_snapshot(&id, Kind::Student, full).unwrap();
            let got = s.records(Kind::Student).unwrap();
            let want: Vec<Record> = model.values().cloned().collect();
            assert_eq!(got, want, "seed {seed} round {round} (full: {full})");
            assert_eq!(n, want.len() as u64, "seed {seed} round {round}: the count after the commit");
        }
    }
}

/// PostgreSQL stages snapshot pages in memory up to a bound, then in `records_staging`: with no memory at all,
/// with room for a few records (snapshots spill half-way) and with the default, commits agree with the model,
/// and neither a commit, a discard nor a store dropped with a snapshot staged leaves rows in the table.
#[test]
fn postgres_staging_in_memory_and_spilled_agree_and_leave_nothing() {
    use zmsync::model::Kind;
    use zmsync::store::postgres::PgStore;
    use zmsync::store::RecordStore;
    let Some(schema) = PgSchema::create() else { return };
    let mut c = schema.client();
    let staged =
        |c: &mut postgres::Client| -> i64 { c.query_one("SELECT COUNT(*) FROM records_staging", &[]).unwrap().get(0) };
    for limit in [0, 600, zmsync::store::STAGE_MEMORY] {
        let s = PgStore::open(&schema.url).unwrap();
        s.set_stage_memory(limit);
        commits_agree_with_a_model(&s);
        assert_eq!(staged(&mut c), 0, "limit {limit}: every committed snapshot left the table");
        // A spilled snapshot is in the table until it is discarded; one in memory never reaches it.
        s.stage_records("left", Kind::Student, &[rec(Kind::Student, "1", "a@x"), rec(Kind::Student, "2", "b@x")])
            .unwrap();
        assert_eq!(staged(&mut c), if limit == 0 { 2 } else { 0 }, "limit {limit}");
        s.discard_snapshot("left").unwrap();
        assert_eq!(staged(&mut c), 0, "limit {limit}: discarded");
        s.stage_records("dropped", Kind::Student, &[rec(Kind::Student, "3", "c@x")]).unwrap();
        drop(s);
        let left = if limit == 0 { 1 } else { 0 };
        assert_eq!(staged(&mut c), left, "limit {limit}: a store gone mid-snapshot leaves only what it spilled");
        c.batch_execute("DELETE FROM records_staging").unwrap();
    }
}

// The bridge between the network tasks and the store: each task's calls run in the order it makes them, and
// calls of different tasks run side by side up to what the store takes (one at a time on SQLite).
store_test!(bridge_keeps_a_tasks_order_and_serves_tasks_side_by_side, |s: &dyn Store| {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    let (inflight, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (inflight2, most2) = (inflight.clone(), most.clone());
    let seen = zmsync::bridge::serve(s, move |b| async move {
        let mut tasks = tokio::task::JoinSet::new();
        for t in 0..8 {
            let (b, inflight, most) = (b.clone(), inflight2.clone(), most2.clone());
            tasks.spawn(async move {
                let mut seen = Vec::new();
                for i in 0..5i64 {
                    let (key, inflight, most) = (format!("bridge-{t}"), inflight.clone(), most.clone());
                    let prev = b
                        .run(move |s| {
                            most.fetch_max(inflight.fetch_add(1, SeqCst) + 1, SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(10));
                            let prev = s.setting(&key).map(|r| r.map(|r| r.value));
                            let put = s.put_setting(&key, &json!(i), "test");
                            inflight.fetch_sub(1, SeqCst);
                            put?;
                            prev
                        })
                        .await
                        .unwrap();
                    seen.push((i, prev));
                }
                seen
            });
        }
        tasks.join_all().await
    })
    .unwrap();
    for task in seen {
        for (i, prev) in task {
            assert_eq!(prev, (i > 0).then(|| json!(i - 1)), "call {i} must see the task's call before it");
        }
    }
    let most = most.load(SeqCst);
    assert!(most <= s.parallel_calls(), "{most} calls at once, the store takes {}", s.parallel_calls());
    match s.dialect() {
        Dialect::Sqlite => assert_eq!(most, 1, "SQLite's one connection takes one call at a time"),
        Dialect::Postgres => assert!(most >= 2, "PostgreSQL calls of different tasks must overlap (saw {most})"),
    }
});

// A call whose task was stopped while it ran still finishes, and `settle` waits for it: what a failed snapshot
// discards after settling is not staged again behind it.
store_test!(bridge_settle_waits_for_the_calls_of_stopped_tasks, |s: &dyn Store| {
    let seen = zmsync::bridge::serve(s, |b| async move {
        let slow = b.clone();
        let task = tokio::spawn(async move {
            slow.run(|s| {
                std::thread::sleep(std::time::Duration::from_millis(150));
                s.put_setting("late", &json!(1), "test")
            })
            .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        task.abort();
        b.settle().await.unwrap();
        b.run(|s| s.setting("late")).await.unwrap().map(|r| r.value)
    })
    .unwrap();
    assert_eq!(seen, Some(json!(1)), "the stopped task's call must have finished before settle returned");
});

// `side_by_side` calls every item once, as many at once as the store takes, and stops at the first error.
store_test!(side_by_side_calls_each_item_once_and_stops_at_an_error, |s: &dyn Store| {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Mutex;
    let items: Vec<usize> = (0..24).collect();
    let (seen, inflight, most) = (Mutex::new(Vec::new()), AtomicUsize::new(0), AtomicUsize::new(0));
    store::side_by_side(s, &items, |i| -> Result<(), String> {
        most.fetch_max(inflight.fetch_add(1, SeqCst) + 1, SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(5));
        seen.lock().unwrap().push(*i);
        inflight.fetch_sub(1, SeqCst);
        Ok(())
    })
    .unwrap();
    let mut seen = seen.into_inner().unwrap();
    seen.sort();
    assert_eq!(seen, items, "every item exactly once");
    let most = most.load(SeqCst);
    assert!(most <= s.parallel_calls() && (s.parallel_calls() == 1 || most >= 2), "{most} at once");

    let started = AtomicUsize::new(0);
    let err = store::side_by_side(s, &items, |i| {
        started.fetch_add(1, SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(5));
        if *i == 3 {
            Err(format!("item {i}"))
        } else {
            Ok(())
        }
    });
    assert_eq!(err, Err("item 3".to_string()));
    let started = started.load(SeqCst);
    assert!(started <= 4 + s.parallel_calls(), "{started} items started: the rest must not be after an error");
});

// A whole base goes as several statements side by side on PostgreSQL: every row lands, the last state of a key
// given twice wins; several kinds read at once come back in the order asked.
store_test!(a_large_base_and_reads_of_several_kinds, |s: &dyn Store| {
    use zmsync::model::{Entity, Kind};
    use zmsync::reconcile::Records;
    use zmsync::store::SyncState;
    let mut states: Vec<SyncState> = (0..4_500).map(|i| base_state(&format!("k{i:05}"), i, Some(7))).collect();
    states.push(base_state("k00001", -1, Some(7)));
    s.put_sync_states(&states).unwrap();
    let got = s.sync_states(Entity::Enrollment).unwrap();
    assert_eq!(got.len(), 4_500);
    assert_eq!(got[1].fields["v"], json!(-1), "the last state given for a key wins");
    assert_eq!(got[4_499].fields["v"], json!(4_499));

    s.replace_records(Kind::Student, &[rec(Kind::Student, "s1", "a@x")]).unwrap();
    s.replace_records(Kind::MoodleUser, &[rec(Kind::MoodleUser, "m1", "b@x"), rec(Kind::MoodleUser, "m2", "c@x")])
        .unwrap();
    let read = Records::records_of(s, &[Kind::MoodleUser, Kind::Teacher, Kind::Student]).unwrap();
    let keys: Vec<Vec<&str>> = read.iter().map(|r| r.iter().map(|r| r.key.as_str()).collect()).collect();
    assert_eq!(keys, vec![vec!["m1", "m2"], vec![], vec!["s1"]]);
});

// Generated batches of the base over keys partly held, partly new, some given twice, some deleted between
// batches: after each, the base is what a model of the promise holds (the last state of a key wins). Large
// enough that PostgreSQL splits a batch, and copies the new rows of a chunk while it updates the held ones.
store_test!(the_base_agrees_with_a_model_over_generated_batches, |s: &dyn Store| {
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;
    use zmsync::model::Entity;
    use zmsync::store::SyncState;
    for seed in 0..2u64 {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let mut model: BTreeMap<String, SyncState> = BTreeMap::new();
        let held: Vec<String> = s.sync_states(Entity::Enrollment).unwrap().into_iter().map(|st| st.key).collect();
        s.delete_sync_states(Entity::Enrollment, &held).unwrap();
        for round in 0..5 {
            let batch: Vec<SyncState> = (0..rng.gen_range(0..4_500))
                .map(|_| {
                    let run_id = rng.gen_bool(0.5).then(|| rng.gen_range(1..9));
                    base_state(&format!("k{:05}", rng.gen_range(0..6_000)), rng.gen_range(0..1_000_000), run_id)
                })
                .collect();
            s.put_sync_states(&batch).unwrap();
            model.extend(batch.into_iter().map(|st| (st.key.clone(), st)));
            let gone: Vec<String> = model.keys().filter(|_| rng.gen_bool(0.1)).cloned().collect();
            s.delete_sync_states(Entity::Enrollment, &gone).unwrap();
            for k in &gone {
                model.remove(k);
            }
            let want: Vec<SyncState> = model.values().cloned().collect();
            assert_eq!(s.sync_states(Entity::Enrollment).unwrap(), want, "seed {seed} round {round}");
        }
    }
});

/// Makes a COPY into `table` collide: as the row of `key` is copied, a trigger first adds one with that key
/// (`insert`, run with `NEW` in scope), as another writer might between zmsync's read and its copy.
fn collide_during_copy(schema: &PgSchema, table: &str, key: &str, insert: &str) {
    schema
        .client()
        .batch_execute(&format!(
            "CREATE FUNCTION collide() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF pg_trigger_depth() = 1 AND current_query() LIKE 'COPY%' AND NEW.key = '{key}' THEN
                 {insert};
               END IF;
               RETURN NEW;
             END $$;
             CREATE TRIGGER collide BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION collide();"
        ))
        .unwrap();
}

/// PostgreSQL copies a snapshot's new records in. Should one of them appear meanwhile (here a trigger adds it
/// while the copy runs), the copy fails whole and the commit is made again with upserts: the snapshot lands.
#[test]
fn postgres_snapshot_copy_that_collides_is_committed_as_upserts() {
    use zmsync::model::Kind;
    let Some(schema) = PgSchema::create() else { return };
    let s = store::open(&schema.url).unwrap();
    collide_during_copy(
        &schema,
        "records",
        "2",
        "INSERT INTO records (source, entity, key, source_id, fingerprint, fields, fetched_at)
           VALUES (NEW.source, NEW.entity, '2', '2', 'x', '{}', now())",
    );
    let snapshot = [rec(Kind::Student, "1", "a@x"), rec(Kind::Student, "2", "b@x"), rec(Kind::Student, "3", "c@x")];
    assert_eq!(s.replace_records(Kind::Student, &snapshot).unwrap(), 3);
    assert_eq!(s.records(Kind::Student).unwrap(), snapshot.to_vec());
}

/// PostgreSQL copies a chunk's new base rows in. Should one of them appear meanwhile (here a trigger adds it
/// while the copy runs), the copy fails whole and the chunk is written again as an upsert: nothing is lost.
#[test]
fn postgres_base_copy_that_collides_is_written_as_an_upsert() {
    use zmsync::model::Entity;
    let Some(schema) = PgSchema::create() else { return };
    let s = store::open(&schema.url).unwrap();
    collide_during_copy(
        &schema,
        "sync_state",
        "k2",
        "INSERT INTO sync_state (entity, key, fields, fingerprint, synced_at) VALUES (NEW.entity, 'k2', '{}', 'x', now())",
    );
    s.put_sync_states(&[base_state("k1", 1, Some(3))]).unwrap();
    let batch = [base_state("k1", 10, Some(3)), base_state("k2", 20, Some(3)), base_state("k3", 30, None)];
    s.put_sync_states(&batch).unwrap();
    assert_eq!(s.sync_states(Entity::Enrollment).unwrap(), batch.to_vec());
}

store_test!(links_and_sync_state, |s: &dyn Store| {
    use zmsync::model::{Entity, Fields};
    use zmsync::store::{Link, SyncState};
    let l = |z: &str, m: &str| Link { entity: Entity::Student, zoho_id: z.into(), moodle_id: m.into() };
    s.put_links(&[l("z1", "m1"), l("z2", "m2")]).unwrap();
    s.put_links(&[l("z1", "m9")]).unwrap();
    // Moving m2 to z3 unlinks z2: one Moodle object is never linked twice.
    s.put_links(&[l("z3", "m2")]).unwrap();
    assert_eq!(s.links(Entity::Student).unwrap(), vec![l("z1", "m9"), l("z3", "m2")]);
    assert!(s.links(Entity::Teacher).unwrap().is_empty());
    s.delete_links(Entity::Student, &["z1".into()]).unwrap();
    assert_eq!(s.links(Entity::Student).unwrap(), vec![l("z3", "m2")]);

    let mut fields = Fields::new();
    fields.insert("active".into(), json!(true));
    let st = SyncState {
        entity: Entity::Enrollment,
        key: "z3|77".into(),
        fields: fields.clone(),
        fingerprint: zmsync::model::fingerprint(&fields),
        synced_at: chrono::DateTime::from_timestamp(1_767_261_600, 123_000).unwrap(),
        run_id: None,
    };
    s.put_sync_states(std::slice::from_ref(&st)).unwrap();
    assert_eq!(s.sync_states(Entity::Enrollment).unwrap(), vec![st.clone()]);
    let mut st2 = st.clone();
    st2.fields.insert("active".into(), json!(false));
    s.put_sync_states(std::slice::from_ref(&st2)).unwrap();
    assert_eq!(s.sync_states(Entity::Enrollment).unwrap()[0].fields, st2.fields);
    s.delete_sync_states(Entity::Enrollment, &["z3|77".into()]).unwrap();
    assert!(s.sync_states(Entity::Enrollment).unwrap().is_empty());
});

/// Links stored one after the other, as `put_links` promises: each link takes its Moodle id from any other Zoho
/// id of the entity, and replaces its Zoho id's pairing.
fn links_model(model: &mut std::collections::BTreeMap<(String, String), String>, links: &[zmsync::store::Link]) {
    for l in links {
        let e = l.entity.name().to_string();
        model.retain(|(me, mz), mm| !(me == &e && mm == &l.moodle_id && mz != &l.zoho_id));
        model.insert((e, l.zoho_id.clone()), l.moodle_id.clone());
    }
}

store_test!(link_batches_store_as_if_one_by_one, |s: &dyn Store| {
    use rand::{Rng, SeedableRng};
    use zmsync::model::Entity;
    use zmsync::store::Link;
    // Few ids, so batches reuse and move them: a Moodle id taken mid-batch, a Zoho id relinked, swaps.
    let mut rng = rand::rngs::SmallRng::seed_from_u64(25);
    let mut model = std::collections::BTreeMap::new();
    for round in 0..60 {
        let n = rng.gen_range(0..12);
        let batch: Vec<Link> = (0..n)
            .map(|_| Link {
                entity: if rng.gen_bool(0.8) { Entity::Student } else { Entity::Teacher },
                zoho_id: format!("z{}", rng.gen_range(0..8)),
                moodle_id: format!("m{}", rng.gen_range(0..8)),
            })
            .collect();
        s.put_links(&batch).unwrap();
        links_model(&mut model, &batch);
        let mut stored = std::collections::BTreeMap::new();
        for e in [Entity::Student, Entity::Teacher] {
            let got = s.links(e).unwrap();
            let moodle: std::collections::BTreeSet<&str> = got.iter().map(|l| l.moodle_id.as_str()).collect();
            assert_eq!(moodle.len(), got.len(), "round {round}: a Moodle id linked twice: {got:?}");
            for l in got {
                stored.insert((e.name().to_string(), l.zoho_id), l.moodle_id);
            }
        }
        assert_eq!(stored, model, "round {round}, batch {batch:?}");
    }
});

store_test!(base_and_journal_batches_keep_the_last_word, |s: &dyn Store| {
    use zmsync::model::Entity;
    use zmsync::store::{JournalEntry, NewRun, SyncState};
    // A key given twice in one batch keeps its last state; the rest of a large batch is stored as given.
    let state = base_state;
    let mut batch: Vec<SyncState> = (0..2_500).map(|i| state(&format!("k{i:05}"), i, Some(7))).collect();
    batch.push(state("k00003", -1, None));
    s.put_sync_states(&batch).unwrap();
    let got = s.sync_states(Entity::Enrollment).unwrap();
    assert_eq!(got.len(), 2_500);
    assert_eq!(got[3], state("k00003", -1, None));
    assert_eq!(got[2_499], state("k02499", 2_499, Some(7)));
    s.put_sync_states(&[]).unwrap();
    assert_eq!(s.sync_states(Entity::Enrollment).unwrap().len(), 2_500);

    let id = s.create_run(&NewRun { kind: "full", module: None, dry_run: false, allow_mass_change: false }).unwrap();
    let entry = |seq: i64| JournalEntry {
        run_id: id,
        seq,
        entity: "student".into(),
        key: format!("k{seq}"),
        target: "moodle".into(),
        op: "create".into(),
        changes: (seq % 2 == 0).then(|| json!({"email": format!("{seq}@x")})),
        fingerprints: (seq % 3 == 0).then(|| json!({"zoho": "abc"})),
        outcome: "planned".into(),
        target_id: (seq % 5 == 0).then(|| format!("t{seq}")),
        message: None,
    };
    let planned: Vec<JournalEntry> = (1..=2_000).map(entry).collect();
    s.journal_planned(&planned).unwrap();
    s.journal_planned(&[]).unwrap();
    assert_eq!(s.journal(id).unwrap(), planned, "a large chunk is journalled whole, nulls kept");
    // Outcomes of a batch: a seq given twice keeps its last outcome and the last target id given for it; a
    // target id not given keeps the stored one.
    s.journal_outcomes(
        id,
        &[
            (1, "sent", Some("57"), None),
            (2, "applied", None, None),
            (1, "applied", None, Some("done")),
            (5, "failed", None, Some("boom")),
        ],
    )
    .unwrap();
    s.journal_outcomes(id, &[]).unwrap();
    let j = s.journal(id).unwrap();
    let got =
        |seq: usize| (j[seq - 1].outcome.as_str(), j[seq - 1].target_id.as_deref(), j[seq - 1].message.as_deref());
    assert_eq!(got(1), ("applied", Some("57"), Some("done")));
    assert_eq!(got(2), ("applied", None, None));
    assert_eq!(got(5), ("failed", Some("t5"), Some("boom")));
    assert_eq!(got(3), ("planned", None, None));
    assert_eq!(j.len(), 2_000);
});

store_test!(runs_and_journal, |s: &dyn Store| {
    use zmsync::store::{JournalEntry, NewRun};
    let id = s.create_run(&NewRun { kind: "full", module: None, dry_run: false, allow_mass_change: true }).unwrap();
    let id2 = s
        .create_run(&NewRun { kind: "module", module: Some("BTEC_Students"), dry_run: true, allow_mass_change: false })
        .unwrap();
    assert!(id2 > id);
    assert_eq!(s.running_runs().unwrap().len(), 2);
    assert!(s.last_good_run(None).unwrap().is_none());
    let entry = |seq: i64| JournalEntry {
        run_id: id,
        seq,
        entity: "student".into(),
        key: format!("k{seq}"),
        target: "moodle".into(),
        op: "create".into(),
        changes: Some(json!({"email": "a@x"})),
        fingerprints: Some(json!({"zoho": "abc"})),
        outcome: "planned".into(),
        target_id: None,
        message: None,
    };
    s.journal_planned(&[entry(1), entry(2)]).unwrap();
    s.journal_outcomes(
        id,
        &[(1, "applied", Some("57"), None), (2, "rejected", None, Some("Email address already exists"))],
    )
    .unwrap();
    let j = s.journal(id).unwrap();
    assert_eq!(j.len(), 2);
    assert_eq!((j[0].outcome.as_str(), j[0].target_id.as_deref()), ("applied", Some("57")));
    assert_eq!(j[1].message.as_deref(), Some("Email address already exists"));
    assert_eq!(j[0].changes, Some(json!({"email": "a@x"})));
    s.finish_run(id, "completed", &json!({"created": 1}), None).unwrap();
    s.finish_run(id2, "failed", &json!({}), Some("boom")).unwrap();
    let run = s.run(id).unwrap().unwrap();
    assert_eq!(run.status, "completed");
    assert!(run.allow_mass_change && run.finished_at.is_some());
    assert_eq!(run.summary, Some(json!({"created": 1})));
    assert_eq!(s.last_good_run(Some("full")).unwrap().unwrap().id, id);
    assert!(s.last_good_run(Some("module")).unwrap().is_none(), "dry runs and failures are not good runs");
    assert_eq!(s.recent_runs(1).unwrap()[0].id, id2);
    assert_eq!(s.run(id2).unwrap().unwrap().error.as_deref(), Some("boom"));
    assert!(s.running_runs().unwrap().is_empty());
});

#[test]
fn sqlite_run_lock_is_exclusive_and_released() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("l.db").display());
    let a = store::open(&url).unwrap();
    let b = store::open(&url).unwrap();
    let guard = a.try_lock_runs().unwrap().expect("first lock");
    assert!(b.try_lock_runs().unwrap().is_none(), "a second holder must be refused");
    drop(guard);
    assert!(b.try_lock_runs().unwrap().is_some(), "released on drop");
}

#[test]
fn postgres_run_lock_is_exclusive_and_released() {
    let Some(schema) = PgSchema::create() else { return };
    let a = store::open(&schema.url).unwrap();
    let b = store::open(&schema.url).unwrap();
    let guard = a.try_lock_runs().unwrap().expect("first lock");
    assert!(b.try_lock_runs().unwrap().is_none());
    drop(guard);
    // The connection went back to a's pool without the lock: b can take it, and so can a again.
    let g2 = b.try_lock_runs().unwrap().expect("released on drop");
    drop(g2);
    assert!(a.try_lock_runs().unwrap().is_some());
}

#[test]
fn postgres_run_locks_of_two_schemas_are_independent() {
    let (Some(one), Some(two)) = (PgSchema::create(), PgSchema::create()) else { return };
    let a = store::open(&one.url).unwrap();
    let b = store::open(&two.url).unwrap();
    let _g = a.try_lock_runs().unwrap().expect("lock in schema one");
    assert!(b.try_lock_runs().unwrap().is_some(), "another store in the same database is not blocked");
}

store_test!(zoho_token_cache_roundtrips_and_cursors_upsert, |s: &dyn Store| {
    use chrono::{Duration, TimeZone, Utc};
    use zmsync::model::Kind;
    use zmsync::secret::Secret;
    use zmsync::store::CachedToken;
    assert!(s.zoho_token("1000.ABC").unwrap().is_none());
    let at = Utc.with_ymd_and_hms(2026, 1, 25, 10, 0, 0).unwrap();
    let mut t = CachedToken {
        client_id: "1000.ABC".into(),
        accounts_url: "https://accounts.zoho.eu".into(),
        api_domain: "https://www.zohoapis.eu".into(),
        access_token: Secret::new("1000.token-one"),
        expires_at: at + Duration::seconds(3600),
        refreshed_at: at,
    };
    s.put_zoho_token(&t).unwrap();
    assert_eq!(s.zoho_token("1000.ABC").unwrap(), Some(t.clone()));
    t.access_token = Secret::new("1000.token-two");
    t.expires_at = at + Duration::seconds(7200);
    s.put_zoho_token(&t).unwrap();
    assert_eq!(s.zoho_token("1000.ABC").unwrap().unwrap().access_token.expose(), "1000.token-two");
    s.delete_zoho_token("1000.ABC").unwrap();
    assert!(s.zoho_token("1000.ABC").unwrap().is_none());

    assert_eq!(s.cursor(Kind::Payment).unwrap(), None);
    s.put_cursor(Kind::Payment, r#"{"time":"2026-01-25T10:00:00Z","ids":["1"]}"#).unwrap();
    s.put_cursor(Kind::Payment, r#"{"time":"2026-01-26T10:00:00Z","ids":["2"]}"#).unwrap();
    assert_eq!(s.cursor(Kind::Payment).unwrap().unwrap(), r#"{"time":"2026-01-26T10:00:00Z","ids":["2"]}"#);
    assert_eq!(s.cursor(Kind::Student).unwrap(), None);
});

// ---- events and dirty marks ------------------------------------------------------------------------------

mod events {
    use chrono::{Duration, Utc};
    use serde_json::json;
    use zmsync::store::events::{DirtyKey, InsertOutcome, NewEvent};
    use zmsync::store::{self, Dialect, Store};

    use crate::support::PgSchema;

    /// A back-off no test waits out.
    const LATER: std::time::Duration = std::time::Duration::from_secs(3600);

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
        s.fail_dirty(two, "Moodle said no", LATER).unwrap();
        let b = s.event("b").unwrap().unwrap();
        assert_eq!((b.status.as_str(), b.error_message.as_deref()), ("failed", Some("Moodle said no")));
        let mut marks: Vec<DirtyKey> = s.dirty_marks().unwrap().into_iter().map(|(k, _)| k).collect();
        marks.sort();
        assert_eq!(marks, vec![key("zoho", "student", "1"), key("zoho", "student", "2")], "a failed key stays dirty");
        assert_eq!(s.claimable_dirty().unwrap(), 1, "the failed key is not due for an hour");
        let again = s.claim_dirty(10).unwrap();
        assert_eq!(again.iter().map(|m| m.key.key.as_str()).collect::<Vec<_>>(), vec!["1"]);
        assert_eq!(status(s, "a2"), "processing");
        s.complete_dirty(&again).unwrap();
        let marks: Vec<DirtyKey> = s.dirty_marks().unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(marks, vec![key("zoho", "student", "2")]);
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
            s.fail_dirty(&m[0], &format!("boom {round}"), LATER).unwrap();
            assert_eq!(s.claimable_dirty().unwrap(), 0, "failed: not due before its back-off");
            let out = s.retry_failed(since, 2).unwrap();
            assert_eq!((out.retried, out.exhausted), (1, 0));
            let e = s.event("a").unwrap().unwrap();
            assert_eq!((e.status.as_str(), e.retry_count), ("pending", round));
            assert_eq!(s.claimable_dirty().unwrap(), 1, "a retried event makes its record due again");
        }
        let m = s.claim_dirty(1).unwrap();
        s.fail_dirty(&m[0], "boom 3", LATER).unwrap();
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
        s.fail_dirty(&pick("2"), "x", LATER).unwrap();
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

    // Issue #7: a key whose sync fails stays dirty with its error, is not retried before its time, is retried
    // after it (or at once when a new event arrives), and clears once it succeeds.
    store_test!(failed_key_stays_dirty_with_back_off, |s: &dyn Store| {
        s.insert_events(&[ev("a", "zoho", "student", "1")]).unwrap();
        let m = s.claim_dirty(10).unwrap();
        assert_eq!((m.len(), m[0].attempts, m[0].last_error.as_deref()), (1, 0, None));
        s.fail_dirty(&m[0], "invalidparameter: email", LATER).unwrap();
        assert_eq!(s.dirty_marks().unwrap(), vec![(key("zoho", "student", "1"), None)], "unclaimed, still dirty");
        let failing = s.failing_dirty(10).unwrap();
        assert_eq!(failing.len(), 1);
        assert_eq!((failing[0].attempts, failing[0].last_error.as_deref()), (1, Some("invalidparameter: email")));
        let due = failing[0].retry_after.expect("a retry time");
        assert!(due > Utc::now() + Duration::minutes(59), "{due}");
        assert_eq!((s.claimable_dirty().unwrap(), s.claim_dirty(10).unwrap().len()), (0, 0), "not before its time");
        assert_eq!(status(s, "a"), "failed");

        // A new event for the key: due at once, the failure history kept until it succeeds.
        s.insert_events(&[ev("b", "zoho", "student", "1")]).unwrap();
        let m = s.claim_dirty(10).unwrap();
        assert_eq!((m.len(), m[0].attempts, m[0].last_error.as_deref()), (1, 1, Some("invalidparameter: email")));
        // Fails again with a back-off already over: retried by the next claim, with two attempts counted.
        s.fail_dirty(&m[0], "still rejected", std::time::Duration::ZERO).unwrap();
        assert_eq!(s.claimable_dirty().unwrap(), 1, "due once its retry time has passed");
        let m = s.claim_dirty(10).unwrap();
        assert_eq!((m[0].attempts, m[0].last_error.as_deref()), (2, Some("still rejected")));
        s.complete_dirty(&m).unwrap();
        assert!(s.dirty_marks().unwrap().is_empty() && s.failing_dirty(10).unwrap().is_empty(), "cleared");
        assert_eq!(status(s, "b"), "completed");
    });

    store_test!(failed_key_remarked_during_its_sync_is_due_at_once, |s: &dyn Store| {
        s.insert_events(&[ev("a", "zoho", "student", "1")]).unwrap();
        let m = s.claim_dirty(10).unwrap();
        s.insert_events(&[ev("b", "zoho", "student", "1")]).unwrap();
        s.fail_dirty(&m[0], "boom", LATER).unwrap();
        assert_eq!(s.claimable_dirty().unwrap(), 1, "changed since the failed attempt began: try it now");
        assert_eq!(s.failing_dirty(10).unwrap()[0].attempts, 1);
    });

    #[test]
    fn retry_delay_backs_off_and_is_capped() {
        use zmsync::settings::RetryPolicy;
        use zmsync::store::events::{retry_delay, DIRTY_RETRY_CAP, DIRTY_RETRY_MIN};
        let p = RetryPolicy { max_retries: 3, backoff_factor: 2.0, initial_delay_seconds: 60 };
        let secs = |a| retry_delay(&p, a).as_secs();
        assert_eq!((secs(1), secs(2), secs(3), secs(4)), (60, 120, 240, 480));
        assert_eq!(retry_delay(&p, 40), DIRTY_RETRY_CAP);
        let zero = RetryPolicy { initial_delay_seconds: 0, ..p };
        assert_eq!(retry_delay(&zero, 1), DIRTY_RETRY_MIN, "never a hot loop");
    }
}

/// `--follow` on PostgreSQL sleeps on LISTEN: a committed dirty mark wakes it, a quiet wait times out.
#[test]
fn postgres_dirty_marks_wake_a_listener_on_commit() {
    use std::time::Duration;
    use zmsync::store::events::NewEvent;
    let Some(schema) = PgSchema::create() else { return };
    let follower = store::open(&schema.url).unwrap();
    let receiver = store::open(&schema.url).unwrap();
    assert!(follower.wait_for_dirty(Duration::from_millis(10)).unwrap(), "the first call arms LISTEN and says look");
    assert!(!follower.wait_for_dirty(Duration::from_millis(200)).unwrap(), "nothing committed: the wait times out");
    let ev = NewEvent {
        event_id: "evt-listen-1".into(),
        source: "zoho".into(),
        event_type: "updated".into(),
        module: Some("BTEC_Students".into()),
        entity_type: "student".into(),
        record_id: "5847596000012345".into(),
        payload: json!({}),
    };
    receiver.insert_events(std::slice::from_ref(&ev)).unwrap();
    assert!(follower.wait_for_dirty(Duration::from_secs(30)).unwrap(), "the commit's NOTIFY wakes the follower");
    // A duplicate marks nothing and sends nothing.
    receiver.insert_events(&[ev]).unwrap();
    assert!(!follower.wait_for_dirty(Duration::from_millis(300)).unwrap());
}

/// SQLite has no notifications: `wait_for_dirty` is one short poll (now, then after SQLITE_DIRTY_POLL),
/// whatever the timeout, and the follow loop calls it again. So a 10-minute timeout on an empty store comes
/// back (false) after one poll — were it to wait out the timeout, this test would hang — and a claimable mark
/// is seen at once, a failing one not yet due is not.
#[test]
fn sqlite_wait_for_dirty_is_a_short_poll() {
    use zmsync::store::events::NewEvent;
    let dir = tempfile::tempdir().unwrap();
    let s = store::open(&format!("sqlite://{}", dir.path().join("w.db").display())).unwrap();
    let ten_minutes = std::time::Duration::from_secs(600);
    assert!(!s.wait_for_dirty(ten_minutes).unwrap(), "no marks: one poll, then false");
    let ev = NewEvent {
        event_id: "w-1".into(),
        source: "zoho".into(),
        event_type: "updated".into(),
        module: Some("BTEC_Students".into()),
        entity_type: "student".into(),
        record_id: "1".into(),
        payload: json!({}),
    };
    s.insert_events(&[ev]).unwrap();
    assert!(s.wait_for_dirty(ten_minutes).unwrap(), "a claimable mark");
    let m = s.claim_dirty(1).unwrap();
    assert!(!s.wait_for_dirty(ten_minutes).unwrap(), "claimed: nothing to take");
    s.fail_dirty(&m[0], "rejected", std::time::Duration::from_secs(3600)).unwrap();
    assert!(!s.wait_for_dirty(ten_minutes).unwrap(), "failing, not due: nothing to take");
}
