//! The Zoho client against the fake Zoho CRM  on loopback.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Map, Value};
use zmsync::sandbox::zoho::{FakeZoho, FaultKind, ZohoOptions};
use zmsync::store::CachedToken;
use zmsync::zoho::{self, auth::BoxFuture, ListQuery, RecordOutcome, TokenCache, WriteOp, ZohoError};

use crate::fakes::{ids, rt, zoho_client, zoho_config, zoho_options, zoho_record, zoho_seed};

#[derive(Default)]
struct MemCache(Mutex<Option<CachedToken>>);

impl TokenCache for MemCache {
    fn load(&self, _client_id: String) -> BoxFuture<'_, Option<CachedToken>> {
        Box::pin(async move { self.0.lock().unwrap().clone() })
    }
    fn save(&self, token: CachedToken) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            *self.0.lock().unwrap() = Some(token);
        })
    }
}

fn fields() -> Vec<String> {
    vec!["id".into(), "Name".into(), "Modified_Time".into()]
}

async fn read_all(c: &zoho::Client, module: &str) -> Result<Vec<Value>, ZohoError> {
    let mut pages = c.list(ListQuery::new(module, fields()));
    let mut out = Vec::new();
    while let Some(p) = pages.next().await? {
        assert!(p.len() <= 200);
        out.extend(p);
    }
    Ok(out)
}

#[test]
fn zoho_reads_past_2000_with_page_tokens_and_204_is_empty() {
    let fake = FakeZoho::start(zoho_seed("BTEC_Payments", 2_345), ZohoOptions::default()).unwrap();
    let c = zoho_client(&fake, None);
    rt().block_on(async {
        let all = read_all(&c, "BTEC_Payments").await.unwrap();
        assert_eq!(all.len(), 2_345);
        assert_eq!(ids(&all), ids(&fake.records("BTEC_Payments")), "every record once");
        // BTEC_Attendance holds nothing: Zoho answers 204 with no body, which is an empty module, not an error.
        assert!(read_all(&c, "BTEC_Attendance").await.unwrap().is_empty());
    });
    let stats = fake.stats();
    assert!(stats.page_token_reads >= 2, "records past 2,000 need page_token: {}", stats.page_token_reads);
    assert_eq!(stats.token_refreshes, 1);
}

#[test]
fn zoho_expiry_mid_listing_refreshes_once_and_the_cache_is_reused() {
    let fake = FakeZoho::start(zoho_seed("BTEC_Students", 450), ZohoOptions::default()).unwrap();
    let cache: Arc<MemCache> = Arc::new(MemCache::default());
    let c = zoho_client(&fake, Some(cache.clone()));
    rt().block_on(async {
        let mut pages = c.list(ListQuery::new("BTEC_Students", fields()));
        let mut got = pages.next().await.unwrap().unwrap();
        // The token dies between two pages, and twenty other listings start at the same moment: all of them
        // see 401 INVALID_TOKEN, and only one refresh may happen (Zoho throttles refreshes, §1.3).
        fake.expire_all_tokens();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let c = c.clone();
            set.spawn(async move { read_all(&c, "BTEC_Students").await.map(|v| v.len()) });
        }
        while let Some(p) = pages.next().await.unwrap() {
            got.extend(p);
        }
        assert_eq!(got.len(), 450, "the interrupted listing completes");
        while let Some(r) = set.join_next().await {
            assert_eq!(r.unwrap().unwrap(), 450);
        }
    });
    let stats = fake.stats();
    assert!(stats.unauthorized >= 1, "the fake refused the expired token");
    assert_eq!(stats.token_refreshes, 2, "one at start, exactly one more for every 401");
    assert_eq!(c.stats().refreshes, 2);
    // A second "process" with the same cache reuses the token: no refresh at all.
    let c2 = zoho_client(&fake, Some(cache.clone()));
    rt().block_on(async { read_all(&c2, "BTEC_Students").await.unwrap() });
    assert_eq!(fake.stats().token_refreshes, 2);
    assert_eq!(c2.stats().refreshes, 0);
}

#[test]
fn zoho_short_lived_token_is_refreshed_once_when_it_runs_out() {
    let opts = ZohoOptions { token_ttl: Duration::from_secs(2), ..ZohoOptions::default() };
    let fake = FakeZoho::start(zoho_seed("BTEC_Teachers", 300), opts).unwrap();
    let c = zoho_client(&fake, None);
    rt().block_on(async {
        assert_eq!(read_all(&c, "BTEC_Teachers").await.unwrap().len(), 300);
        // Generous: well past the token's lifetime.
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        assert_eq!(read_all(&c, "BTEC_Teachers").await.unwrap().len(), 300);
    });
    assert_eq!(fake.stats().token_refreshes, 2, "one at start, one for the expired token");
}

#[test]
fn zoho_429_storm_and_transport_faults_finish_with_the_full_data_set() {
    const MODULES: [&str; 3] = ["BTEC_Students", "BTEC_Enrollments", "BTEC_Payments"];
    let modules = MODULES;
    let mut seed = zoho_seed("BTEC_Students", 900);
    for (k, m) in modules.iter().enumerate().skip(1) {
        seed.modules.insert(m.to_string(), (0..700).map(|i| zoho_record(m, 10_000 * k + i).into()).collect());
    }
    let fake = FakeZoho::start(
        seed,
        ZohoOptions { timeout_hold: Duration::from_millis(300), fault_seed: 11, ..ZohoOptions::default() },
    )
    .unwrap();
    fake.set_every_nth_429(Some(4));
    fake.set_concurrency_cap(Some(3));
    fake.set_fault_kinds(&[FaultKind::InternalError, FaultKind::BadGateway, FaultKind::Timeout, FaultKind::Reset]);
    fake.set_fault_rate(0.10);
    let c = zoho_client(&fake, None);
    let got: Vec<Vec<Value>> = rt().block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for (i, m) in MODULES.into_iter().enumerate() {
            // Two listings of each module at once: more callers than the fake's cap.
            for _ in 0..2 {
                let c = c.clone();
                set.spawn(async move { (i, read_all(&c, m).await) });
            }
        }
        let mut out = vec![Vec::new(); modules.len()];
        while let Some(r) = set.join_next().await {
            let (i, recs) = r.unwrap();
            out[i] = recs.unwrap();
        }
        out
    });
    for (m, recs) in modules.iter().zip(&got) {
        assert_eq!(ids(recs), ids(&fake.records(m)), "{m}: the full data set");
    }
    let stats = fake.stats();
    assert!(stats.throttled > 0, "the fake answered 429s");
    let faults: u64 = stats.faults.values().sum();
    assert!(faults > 0, "faults were injected: {:?}", stats.faults);
    assert!(c.stats().throttled > 0 && c.stats().retries > 0);
}

#[test]
fn zoho_writes_of_250_records_go_in_batches_of_at_most_100() {
    let fake = FakeZoho::start(zoho_seed("BTEC_Units", 0), ZohoOptions::default()).unwrap();
    let c = zoho_client(&fake, None);
    let rows: Vec<Map<String, Value>> =
        (0..250).map(|i| json!({"Name": format!("UNIT-{i:03}")}).as_object().unwrap().clone()).collect();
    let outcomes = rt().block_on(async { c.write("BTEC_Units", WriteOp::Insert, rows).await.unwrap() });
    assert_eq!(outcomes.len(), 250);
    assert!(outcomes.iter().all(RecordOutcome::is_ok), "{:?}", outcomes.iter().find(|o| !o.is_ok()));
    let stored = fake.records("BTEC_Units");
    assert_eq!(stored.len(), 250);
    // Results come back in input order: the i-th outcome's id is the record named UNIT-i.
    for (i, o) in outcomes.iter().enumerate() {
        let RecordOutcome::Ok { id, .. } = o else { unreachable!() };
        assert_eq!(fake.record("BTEC_Units", id).unwrap()["Name"], format!("UNIT-{i:03}"));
    }
    // And 250 updates.
    let updates: Vec<Map<String, Value>> = stored
        .iter()
        .map(|r| {
            json!({"id": r["id"], "Name": format!("{}-v2", r["Name"].as_str().unwrap())}).as_object().unwrap().clone()
        })
        .collect();
    let outcomes = rt().block_on(async { c.write("BTEC_Units", WriteOp::Update, updates).await.unwrap() });
    assert!(outcomes.iter().all(RecordOutcome::is_ok));
    assert!(fake.records("BTEC_Units").iter().all(|r| r["Name"].as_str().unwrap().ends_with("-v2")));
    let stats = fake.stats();
    assert!(stats.max_write_batch <= 100, "largest batch {}", stats.max_write_batch);
    assert_eq!(stats.records_written.values().sum::<u64>(), 500);
    assert_eq!(stats.writes.len(), 6, "3 inserts and 3 updates: {:?}", stats.writes);
    assert!(stats.writes.iter().all(|w| w.trigger == Some(Vec::new())), "no workflow may fire on our writes");
}

#[test]
fn zoho_bad_refresh_token_is_clear_and_shows_no_secret() {
    let fake = FakeZoho::start(zoho_seed("BTEC_Units", 1), ZohoOptions::default()).unwrap();
    let mut cfg = zoho_config(&fake);
    cfg.refresh_token = Some(zmsync::secret::Secret::new("1000.wrongwrongwrong.wrongwrongwrong"));
    let bad = zoho::Client::new(&cfg, zoho_options(), None).unwrap();
    let e = rt().block_on(async { bad.authenticate().await.unwrap_err() }).to_string();
    assert!(e.contains("invalid_code") && e.contains("ZOHO_REFRESH_TOKEN"), "{e}");
    assert!(!e.contains("wrongwrongwrong") && !e.contains(fake.client_secret().expose()), "{e}");
}

#[test]
fn zoho_split_listing_reads_every_record_once_from_both_ends() {
    for n in [0usize, 1, 200, 201, 399, 401, 2_345] {
        let fake = FakeZoho::start(zoho_seed("BTEC_Grades", n), ZohoOptions::default()).unwrap();
        let c = zoho_client(&fake, None);
        let got = rt().block_on(async {
            let mut pages = c.list_split(ListQuery::new("BTEC_Grades", fields()));
            let mut out = Vec::new();
            while let Some(p) = pages.next().await.unwrap() {
                out.extend(p);
            }
            out
        });
        let mut unique = ids(&got);
        unique.dedup();
        assert_eq!(unique.len(), got.len(), "{n}: a record came twice");
        assert_eq!(unique, ids(&fake.records("BTEC_Grades")), "{n}: every record");
        let calls = fake.stats().requests["GET /crm/v8/{module}"];
        assert!(calls as usize <= n.div_ceil(200) + 2, "{n}: {calls} calls");
    }
}
