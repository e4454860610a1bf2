//! The clients against the sandbox fakes on loopback: every path the snapshot and apply rely on.

use std::time::Duration;

use serde_json::{json, Value};
use zmsync::config::MoodleConfig;
use zmsync::moodle::{self, calls::RowOutcome, Client as MoodleClient};
use zmsync::sandbox::moodle::{FakeMoodle, FaultKind, MoodleOptions};
use zmsync::sandbox::seed::{MoodleCourse, MoodleEnrolment, MoodleSeed, MoodleUser, PluginTables};
use zmsync::secret::Secret;
use zmsync::zoho::Backoff;

fn fast_backoff() -> Backoff {
    Backoff { initial: Duration::from_millis(5), max: Duration::from_millis(50), tries: 8, ..Backoff::default() }
}

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

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
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

// ---- Zoho: a minimal stand-in server until the fake Zoho lands on main -------------------------------------
// It follows the reference for the behaviours tested here: the token endpoint, 401 INVALID_TOKEN, 204 on an
// empty module, page_token beyond 2,000 records (DISCRETE_PAGINATION_LIMIT_EXCEEDED without one), 429s.

pub mod zoho_stub {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    use serde_json::json;

    pub struct Stub {
        pub url: String,
        pub refreshes: Arc<AtomicU64>,
        #[allow(dead_code)] // read by some tests only
        pub calls: Arc<AtomicU64>,
        pub token: Arc<Mutex<String>>,
        server: Arc<tiny_http::Server>,
    }

    impl Drop for Stub {
        fn drop(&mut self) {
            self.server.unblock();
        }
    }

    /// `big` records in module `Big`; every `nth_429`-th API call answers 429.
    pub fn start(big: usize, nth_429: u64) -> Stub {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let url = format!("http://{}", server.server_addr().to_ip().unwrap());
        let (refreshes, calls) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let token = Arc::new(Mutex::new(String::from("none")));
        let (s, r, c, t, u) = (server.clone(), refreshes.clone(), calls.clone(), token.clone(), url.clone());
        std::thread::spawn(move || {
            for mut req in s.incoming_requests() {
                let path = req.url().to_string();
                let respond = |req: tiny_http::Request, status: u16, body: String| {
                    let _ = req.respond(tiny_http::Response::from_string(body).with_status_code(status));
                };
                if path.starts_with("/oauth/v2/token") {
                    let mut body = String::new();
                    let _ = req.as_reader().read_to_string(&mut body);
                    if !body.contains("refresh_token=good-refresh") {
                        respond(req, 200, json!({"error": "invalid_code"}).to_string());
                        continue;
                    }
                    let n = r.fetch_add(1, Ordering::SeqCst) + 1;
                    *t.lock().unwrap() = format!("tok-{n}");
                    respond(req, 200, json!({"access_token": format!("tok-{n}"), "expires_in": 3600, "api_domain": u, "token_type": "Bearer"}).to_string());
                    continue;
                }
                let auth = req.headers().iter().find(|h| h.field.equiv("Authorization")).map(|h| h.value.to_string());
                if auth.as_deref() != Some(&format!("Zoho-oauthtoken {}", t.lock().unwrap())) {
                    respond(
                        req,
                        401,
                        json!({"code":"INVALID_TOKEN","details":{},"message":"invalid oauth token","status":"error"})
                            .to_string(),
                    );
                    continue;
                }
                let n = c.fetch_add(1, Ordering::SeqCst) + 1;
                if nth_429 > 0 && n % nth_429 == 0 {
                    respond(
                        req,
                        429,
                        json!({"code":"TOO_MANY_REQUESTS","details":{},"message":"x","status":"error"}).to_string(),
                    );
                    continue;
                }
                let q: std::collections::HashMap<String, String> = url::Url::parse(&format!("http://x{path}"))
                    .unwrap()
                    .query_pairs()
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
                if path.starts_with("/crm/v8/Empty") {
                    let _ = req.respond(tiny_http::Response::empty(204));
                    continue;
                }
                let per: usize = q.get("per_page").and_then(|p| p.parse().ok()).unwrap_or(200);
                let start = match (q.get("page_token"), q.get("page")) {
                    (Some(tok), _) => tok.trim_start_matches("at-").parse::<usize>().unwrap(),
                    (None, Some(p)) => {
                        let p: usize = p.parse().unwrap();
                        if p * per > 2000 {
                            respond(req, 400, json!({"code":"DISCRETE_PAGINATION_LIMIT_EXCEEDED","details":{"limit":2000},"message":"x","status":"error"}).to_string());
                            continue;
                        }
                        (p - 1) * per
                    }
                    _ => 0,
                };
                let end = (start + per).min(big);
                let data: Vec<_> = (start..end).map(|i| json!({"id": format!("{:019}", 5847596000000000000u64 + i as u64), "Name": format!("R{i}"), "Modified_Time": "2026-01-25T10:00:00+05:30"})).collect();
                let more = end < big;
                let body = json!({"data": data, "info": {"per_page": per, "count": end - start, "more_records": more,
                    "next_page_token": if more { Some(format!("at-{end}")) } else { None }}});
                respond(req, 200, body.to_string());
            }
        });
        Stub { url, refreshes, calls, token, server }
    }
}

use std::sync::Arc;
use zmsync::config::ZohoConfig;
use zmsync::store::CachedToken;
use zmsync::zoho::{self, auth::BoxFuture, ListQuery, TokenCache, ZohoError};

#[derive(Default)]
struct MemCache(std::sync::Mutex<Option<CachedToken>>);

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

fn zoho_client(stub: &zoho_stub::Stub, refresh: &str, cache: Option<Arc<dyn TokenCache>>) -> zoho::Client {
    let cfg = ZohoConfig {
        region: "eu".into(),
        client_id: Some("1000.CLIENT".into()),
        client_secret: Some(Secret::new("client-secret")),
        refresh_token: Some(Secret::new(refresh)),
        accounts_url: stub.url.clone(),
        api_domain: stub.url.clone(),
    };
    let opts = zoho::ClientOptions { backoff: fast_backoff(), timeout: Duration::from_secs(5), max_in_flight: 10 };
    zoho::Client::new(&cfg, opts, cache).unwrap()
}

async fn read_all(c: &zoho::Client, module: &str) -> Result<Vec<Value>, ZohoError> {
    let mut pages = c.list(ListQuery::new(module, vec!["id".into(), "Name".into(), "Modified_Time".into()]));
    let mut out = Vec::new();
    while let Some(p) = pages.next().await? {
        assert!(p.len() <= 200);
        out.extend(p);
    }
    Ok(out)
}

#[test]
fn zoho_reads_past_2000_with_page_tokens_and_204_is_empty() {
    let stub = zoho_stub::start(2_345, 0);
    let c = zoho_client(&stub, "good-refresh", None);
    rt().block_on(async {
        let all = read_all(&c, "Big").await.unwrap();
        assert_eq!(all.len(), 2_345);
        let ids: std::collections::HashSet<_> = all.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
        assert_eq!(ids.len(), 2_345);
        assert!(read_all(&c, "Empty").await.unwrap().is_empty());
    });
    assert_eq!(stub.refreshes.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn zoho_concurrent_401s_refresh_once_and_the_cache_is_reused() {
    let stub = zoho_stub::start(150, 0);
    let cache: Arc<MemCache> = Arc::new(MemCache::default());
    let c = zoho_client(&stub, "good-refresh", Some(cache.clone()));
    rt().block_on(async {
        read_all(&c, "Big").await.unwrap();
        // The server forgets the token (as on expiry): twenty calls at once see 401.
        *stub.token.lock().unwrap() = "tok-expired".into();
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let c = c.clone();
            set.spawn(async move { read_all(&c, "Big").await.map(|v| v.len()) });
        }
        while let Some(r) = set.join_next().await {
            assert_eq!(r.unwrap().unwrap(), 150);
        }
    });
    let refreshes = stub.refreshes.load(std::sync::atomic::Ordering::SeqCst);
    // One at start, exactly one more for the twenty 401s. (The server's own token was replaced by a
    // dummy, so the stub counts its mints.)
    assert_eq!(refreshes, 2, "single-flight refresh");
    assert_eq!(c.stats().refreshes, 2);
    // A second "process" with the same cache reuses the token: no refresh at all.
    let c2 = zoho_client(&stub, "good-refresh", Some(cache.clone()));
    rt().block_on(async { read_all(&c2, "Big").await.unwrap() });
    assert_eq!(stub.refreshes.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert_eq!(c2.stats().refreshes, 0);
}

#[test]
fn zoho_429_storm_finishes_and_bad_refresh_token_is_clear() {
    let stub = zoho_stub::start(1_000, 3);
    let c = zoho_client(&stub, "good-refresh", None);
    rt().block_on(async { assert_eq!(read_all(&c, "Big").await.unwrap().len(), 1_000) });
    assert!(c.stats().throttled > 0 && c.stats().retries > 0);
    assert!(stub.calls.load(std::sync::atomic::Ordering::SeqCst) > c.stats().calls / 2);
    let bad = zoho_client(&stub, "wrong", None);
    let e = rt().block_on(async { bad.authenticate().await.unwrap_err() }).to_string();
    assert!(e.contains("invalid_code") && e.contains("ZOHO_REFRESH_TOKEN"), "{e}");
    assert!(!e.contains("wrong") && !e.contains("client-secret"), "{e}");
}
