//! The fake Zoho's own tests: one per behaviour of Zoho CRM's API, so the fake cannot
//! drift from the reference unnoticed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use zmsync::sandbox::seed::{DeletedStub, ZohoSeed, ZOHO_MODULES};
use zmsync::sandbox::zoho::{FakeZoho, FaultKind, WebhookFormat, ZohoOptions, HUMAN_USER_ID, INTEGRATION_USER_ID};
use zmsync::secret::Secret;

// ---------------------------------------------------------------- helpers

struct Resp {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("status {} body not JSON ({e}): {}", self.status, String::from_utf8_lossy(&self.body))
        })
    }
    fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_string()
    }
}

struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Http {
    fn new() -> Http {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        Http { rt, client }
    }

    fn try_send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Resp, reqwest::Error> {
        let mut rb = self.client.request(method.parse().unwrap(), url);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some((ct, b)) = body {
            rb = rb.header("Content-Type", ct).body(b);
        }
        self.rt.block_on(async move {
            let r = rb.send().await?;
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            let body = r.bytes().await?.to_vec();
            Ok(Resp { status, headers, body })
        })
    }

    #[track_caller]
    fn send(&self, method: &str, url: &str, headers: &[(&str, &str)], body: Option<(&str, Vec<u8>)>) -> Resp {
        self.try_send(method, url, headers, body).unwrap_or_else(|e| panic!("{method} {url}: {e}"))
    }
}

struct Z {
    fake: FakeZoho,
    http: Http,
    token: String,
}

impl Z {
    fn start(seed: ZohoSeed, opts: ZohoOptions) -> Z {
        let fake = FakeZoho::start(seed, opts).expect("start fake zoho");
        let http = Http::new();
        let mut z = Z { fake, http, token: String::new() };
        z.token = z.grant_form().json()["access_token"].as_str().expect("a token").to_string();
        z
    }

    fn default() -> Z {
        Z::start(seed_students(5), ZohoOptions::default())
    }

    fn grant_form(&self) -> Resp {
        let body = form(&[
            ("grant_type", "refresh_token"),
            ("client_id", &self.fake.client_id()),
            ("client_secret", self.fake.client_secret().expose()),
            ("refresh_token", self.fake.refresh_token().expose()),
        ]);
        self.http.send(
            "POST",
            &format!("{}/oauth/v2/token", self.fake.url()),
            &[],
            Some(("application/x-www-form-urlencoded", body.into_bytes())),
        )
    }

    fn auth(&self) -> String {
        format!("Zoho-oauthtoken {}", self.token)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.fake.url())
    }

    #[track_caller]
    fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Option<Value>) -> Resp {
        let auth = self.auth();
        let mut h = vec![("Authorization", auth.as_str())];
        h.extend_from_slice(headers);
        self.http.send(method, &self.url(path), &h, body.map(|b| ("application/json", b.to_string().into_bytes())))
    }

    fn try_call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Resp, reqwest::Error> {
        let auth = self.auth();
        self.http.try_send(
            method,
            &self.url(path),
            &[("Authorization", auth.as_str())],
            body.map(|b| ("application/json", b.to_string().into_bytes())),
        )
    }

    #[track_caller]
    fn get(&self, path: &str) -> Resp {
        self.call("GET", path, &[], None)
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

fn sid(i: usize) -> String {
    format!("{}", 5_847_596_000_012_000_000u64 + i as u64)
}

fn student(i: usize, modified: &str) -> Value {
    json!({
        "id": sid(i),
        "Name": format!("STU-{i:05}"),
        "First_Name": format!("First{i}"),
        "Last_Name": format!("Last{i}"),
        "Academic_Email": format!("s{i}@student.example.edu"),
        "Student_ID_Number": format!("SID{i:05}"),
        "Status": "Active",
        "Created_Time": "2025-09-01T08:00:00+00:00",
        "Modified_Time": modified,
    })
}

fn empty_seed() -> ZohoSeed {
    let mut seed = ZohoSeed::default();
    for m in ZOHO_MODULES {
        seed.modules.insert(m.to_string(), Vec::new());
    }
    seed
}

fn seed_students(n: usize) -> ZohoSeed {
    let mut seed = empty_seed();
    let recs = (1..=n).map(|i| student(i, "2026-01-20T10:00:00+00:00").into()).collect();
    seed.modules.insert("BTEC_Students".into(), recs);
    seed
}

const FIELDS: &str = "fields=Name,Last_Name,Academic_Email,Status,Student_Moodle_ID,Modified_Time";

/// Path, lower-cased headers and body of one callback.
type Received = (String, Vec<(String, String)>, Vec<u8>);

/// A one-shot-per-request HTTP listener that records what it receives and answers 200.
struct Listener {
    url: String,
    rx: mpsc::Receiver<Received>,
}

impl Listener {
    fn start() -> Listener {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in l.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let target = line.split_whitespace().nth(1).unwrap_or_default().to_string();
                let mut headers = Vec::new();
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                    }
                }
                let len: usize =
                    headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                if tx.send((target, headers, body)).is_err() {
                    return;
                }
            }
        });
        Listener { url, rx }
    }

    #[track_caller]
    fn next(&self) -> Received {
        self.rx.recv_timeout(Duration::from_secs(20)).expect("a callback within 20 s")
    }

    fn none_within(&self, d: Duration) -> bool {
        self.rx.recv_timeout(d).is_err()
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

// ---------------------------------------------------------------- auth (items 1, 2)

#[test]
fn sandbox_zoho_token_grant_form_and_query() {
    let z = Z::default();
    let j = z.grant_form().json();
    assert!(j["access_token"].as_str().unwrap().len() > 20);
    assert_eq!(j["api_domain"], z.fake.url());
    assert_eq!(j["token_type"], "Bearer");
    assert_eq!(j["expires_in"], 3600);
    assert!(j.get("refresh_token").is_none(), "a refresh never returns a refresh_token");

    let q = form(&[
        ("grant_type", "refresh_token"),
        ("client_id", &z.fake.client_id()),
        ("client_secret", z.fake.client_secret().expose()),
        ("refresh_token", z.fake.refresh_token().expose()),
    ]);
    let r = z.http.send("POST", &z.url(&format!("/oauth/v2/token?{q}")), &[], None);
    let tok = r.json()["access_token"].as_str().unwrap().to_string();
    let auth = format!("Zoho-oauthtoken {tok}");
    let r = z.http.send("GET", &z.url(&format!("/crm/v8/BTEC_Students?{FIELDS}")), &[("Authorization", &auth)], None);
    assert_eq!(r.status, 200);
    assert_eq!(z.fake.stats().token_refreshes, 3, "start, form, query");
}

#[test]
fn sandbox_zoho_credentials_are_random_per_start() {
    let a = FakeZoho::start(empty_seed(), ZohoOptions::default()).unwrap();
    let b = FakeZoho::start(empty_seed(), ZohoOptions::default()).unwrap();
    assert_ne!(a.client_id(), b.client_id());
    assert_ne!(a.refresh_token().expose(), b.refresh_token().expose());
    assert_ne!(a.url(), b.url());
}

#[test]
fn sandbox_zoho_wrong_refresh_token_and_client() {
    let z = Z::default();
    let send = |id: &str, secret: &str, rt: &str| {
        let body = form(&[
            ("grant_type", "refresh_token"),
            ("client_id", id),
            ("client_secret", secret),
            ("refresh_token", rt),
        ]);
        z.http
            .send(
                "POST",
                &z.url("/oauth/v2/token"),
                &[],
                Some(("application/x-www-form-urlencoded", body.into_bytes())),
            )
            .json()
    };
    let id = z.fake.client_id();
    let secret = z.fake.client_secret();
    let j = send(&id, secret.expose(), "1000.wrong.token");
    assert_eq!(j, json!({"error": "invalid_code"}));
    let j = send("1000.OTHER", secret.expose(), z.fake.refresh_token().expose());
    assert_eq!(j, json!({"error": "invalid_client"}));
    let j = send(&id, "nope", z.fake.refresh_token().expose());
    assert_eq!(j, json!({"error": "invalid_client"}));
}

#[test]
fn sandbox_zoho_refresh_throttle_gives_access_denied() {
    let z = Z::start(seed_students(1), ZohoOptions { refresh_throttle: true, ..ZohoOptions::default() });
    for _ in 0..9 {
        assert!(z.grant_form().json().get("access_token").is_some());
    }
    let j = z.grant_form().json();
    assert_eq!(j["error"], "Access Denied");
    assert!(j.get("access_token").is_none());
    assert_eq!(j["status"], "failure");
}

#[test]
fn sandbox_zoho_expired_token_is_invalid_token_or_auth_failure() {
    let z = Z::default();
    let path = format!("/crm/v8/BTEC_Students?{FIELDS}");
    assert_eq!(z.get(&path).status, 200);
    z.fake.expire_all_tokens();
    let r = z.get(&path);
    assert_eq!(r.status, 401);
    assert_eq!(r.json(), json!({"code":"INVALID_TOKEN","details":{},"message":"invalid oauth token","status":"error"}));
    z.fake.configure(|o| o.expiry_as_auth_failure = true);
    let r = z.get(&path);
    assert_eq!((r.status, r.code()), (401, "AUTHENTICATION_FAILURE".to_string()));
    assert!(z.fake.stats().unauthorized >= 2);
}

#[test]
fn sandbox_zoho_token_ttl_expires_on_its_own() {
    let mut z = Z::start(seed_students(1), ZohoOptions { token_ttl: Duration::from_secs(1), ..ZohoOptions::default() });
    assert_eq!(z.grant_form().json()["expires_in"], 1);
    let path = format!("/crm/v8/BTEC_Students?{FIELDS}");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(z.get(&path).code(), "INVALID_TOKEN");
    z.token = z.grant_form().json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(z.get(&path).status, 200);
}

#[test]
fn sandbox_zoho_bearer_prefix_and_missing_header_refused() {
    let z = Z::default();
    let url = z.url(&format!("/crm/v8/BTEC_Students?{FIELDS}"));
    let bearer = format!("Bearer {}", z.token);
    let r = z.http.send("GET", &url, &[("Authorization", &bearer)], None);
    assert_eq!((r.status, r.code()), (401, "AUTHENTICATION_FAILURE".to_string()));
    let r = z.http.send("GET", &url, &[], None);
    assert_eq!((r.status, r.code()), (401, "AUTHENTICATION_FAILURE".to_string()));
    let r = z.http.send("GET", &url, &[("Authorization", "Zoho-oauthtoken 1000.never.issued")], None);
    assert_eq!((r.status, r.code()), (401, "INVALID_TOKEN".to_string()));
}

#[test]
fn sandbox_zoho_evicts_the_oldest_of_too_many_tokens() {
    let z = Z::start(seed_students(1), ZohoOptions { max_active_tokens: 3, ..ZohoOptions::default() });
    for _ in 0..3 {
        z.grant_form();
    }
    assert_eq!(z.get(&format!("/crm/v8/BTEC_Students?{FIELDS}")).code(), "INVALID_TOKEN");
}

// ---------------------------------------------------------------- reads (items 3–9)

#[test]
fn sandbox_zoho_fields_required_and_at_most_50() {
    let z = Z::default();
    let r = z.get("/crm/v8/BTEC_Students");
    assert_eq!((r.status, r.code()), (400, "REQUIRED_PARAM_MISSING".to_string()));
    assert_eq!(r.json()["details"], json!({"param_name": "fields"}));
    let many: Vec<String> = (0..51).map(|i| format!("F{i}")).collect();
    let r = z.get(&format!("/crm/v8/BTEC_Students?fields={}", many.join(",")));
    assert_eq!((r.status, r.code()), (400, "LIMIT_EXCEEDED".to_string()));
    assert_eq!(r.json()["details"], json!({"limit": 50, "param_name": "fields"}));
    let r = z.get(&format!("/crm/v8/BTEC_Students?fields={}", many[..50].join(",")));
    assert_eq!(r.status, 200);
    assert_eq!(z.fake.stats().max_fields_requested, 50);
}

#[test]
fn sandbox_zoho_list_envelope_ids_and_nulls() {
    let z = Z::default();
    let j =
        z.get(&format!("/crm/v8/BTEC_Students?{FIELDS}&per_page=2&page=1&sort_by=Modified_Time&sort_order=asc")).json();
    let rec = &j["data"][0];
    assert!(rec["id"].as_str().unwrap().len() == 19);
    assert_eq!(rec["Student_Moodle_ID"], Value::Null, "asked for but empty: null");
    assert!(rec.get("First_Name").is_none(), "not asked for: absent");
    let info = &j["info"];
    for k in [
        "per_page",
        "count",
        "page",
        "sort_by",
        "sort_order",
        "more_records",
        "next_page_token",
        "previous_page_token",
        "page_token_expiry",
    ] {
        assert!(info.get(k).is_some(), "info.{k} missing");
    }
    assert_eq!(
        (info["per_page"].as_u64(), info["count"].as_u64(), info["more_records"].as_bool()),
        (Some(2), Some(2), Some(true))
    );
    assert!(info["next_page_token"].is_string() && info["page_token_expiry"].is_string());
    let r = z.get(&format!("/crm/v8/BTEC_Students?{FIELDS}&sort_by=Name"));
    assert_eq!((r.status, r.code()), (400, "INVALID_DATA".to_string()));
}

#[test]
fn sandbox_zoho_per_page_over_200_refused() {
    let z = Z::default();
    let r = z.get(&format!("/crm/v8/BTEC_Students?{FIELDS}&per_page=201"));
    assert_eq!((r.status, r.code()), (400, "INVALID_DATA".to_string()));
    assert_eq!(z.get(&format!("/crm/v8/BTEC_Students?{FIELDS}&per_page=200")).status, 200);
}

#[test]
fn sandbox_zoho_discrete_page_limit_at_2000() {
    let z = Z::default();
    let r = z.get(&format!("/crm/v8/BTEC_Students?{FIELDS}&per_page=200&page=11"));
    assert_eq!((r.status, r.code()), (400, "DISCRETE_PAGINATION_LIMIT_EXCEEDED".to_string()));
    assert_eq!(r.json()["details"], json!({"limit": 2000}));
    // page 10 x 200 = 2000 is still allowed (and empty here: 204)
    assert_eq!(z.get(&format!("/crm/v8/BTEC_Students?{FIELDS}&per_page=200&page=10")).status, 204);
}

#[test]
fn sandbox_zoho_page_token_continues_past_2000() {
    let n = 2345;
    let z = Z::start(seed_students(n), ZohoOptions::default());
    let base = "/crm/v8/BTEC_Students?fields=Name&per_page=200&sort_by=id&sort_order=asc";
    let mut ids = Vec::new();
    let mut page = 1;
    let mut token: Option<String> = None;
    loop {
        let path = match &token {
            Some(t) => format!("{base}&page_token={t}"),
            None => format!("{base}&page={page}"),
        };
        let r = z.get(&path);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let j = r.json();
        ids.extend(j["data"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_string()));
        if !j["info"]["more_records"].as_bool().unwrap() {
            break;
        }
        // Switch to the token half-way, as a client reaching record 2,000 must.
        if page >= 5 {
            token = Some(j["info"]["next_page_token"].as_str().unwrap().to_string());
        }
        page += 1;
    }
    assert_eq!(ids.len(), n);
    let expected: Vec<String> = (1..=n).map(sid).collect();
    assert_eq!(ids, expected, "every record once, in id order");
}

#[test]
fn sandbox_zoho_page_token_bound_to_its_query() {
    let z = Z::start(seed_students(30), ZohoOptions::default());
    let j = z.get("/crm/v8/BTEC_Students?fields=Name&per_page=10").json();
    let t = j["info"]["next_page_token"].as_str().unwrap().to_string();
    let r = z.get(&format!("/crm/v8/BTEC_Students?fields=Name,Status&per_page=10&page_token={t}"));
    assert_eq!((r.status, r.code()), (400, "TOKEN_BOUND_DATA_MISMATCH".to_string()));
    assert_eq!(r.json()["details"], json!({"param_name": "page_token"}));
    let r = z.get(&format!("/crm/v8/BTEC_Students?fields=Name&per_page=10&page_token={t}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"][0]["id"], sid(11));
}

#[test]
fn sandbox_zoho_page_token_expires() {
    let z =
        Z::start(seed_students(30), ZohoOptions { page_token_ttl: Duration::from_secs(1), ..ZohoOptions::default() });
    let t = z.get("/crm/v8/BTEC_Students?fields=Name&per_page=10").json()["info"]["next_page_token"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_millis(2500));
    let r = z.get(&format!("/crm/v8/BTEC_Students?fields=Name&per_page=10&page_token={t}"));
    assert_eq!((r.status, r.code()), (400, "EXPIRED_VALUE".to_string()));
    assert_eq!(r.json()["details"], json!({"api_name": "page_token", "json_path": "$.query.page_token"}));
}

#[test]
fn sandbox_zoho_page_token_limit() {
    let z = Z::start(seed_students(50), ZohoOptions { page_token_record_limit: 20, ..ZohoOptions::default() });
    let p = "/crm/v8/BTEC_Students?fields=Name&per_page=10";
    let t1 = z.get(p).json()["info"]["next_page_token"].as_str().unwrap().to_string();
    let t2 = z.get(&format!("{p}&page_token={t1}")).json()["info"]["next_page_token"].as_str().unwrap().to_string();
    let r = z.get(&format!("{p}&page_token={t2}"));
    assert_eq!((r.status, r.code()), (400, "PAGINATION_LIMIT_EXCEEDED".to_string()));
}

#[test]
fn sandbox_zoho_no_match_is_204_with_no_body() {
    let z = Z::default();
    let r = z.get("/crm/v8/BTEC_Attendance?fields=Name");
    assert_eq!(r.status, 204);
    assert!(r.body.is_empty());
    z.fake.set_zero_records_for("BTEC_Students", true);
    let r = z.get(&format!("/crm/v8/BTEC_Students?{FIELDS}"));
    assert_eq!((r.status, r.body.len()), (204, 0));
    z.fake.set_zero_records_for("BTEC_Students", false);
    assert_eq!(z.get(&format!("/crm/v8/BTEC_Students?{FIELDS}")).status, 200);
    z.fake.set_zero_records(true);
    assert_eq!(z.get(&format!("/crm/v8/BTEC_Students?{FIELDS}")).status, 204);
}

#[test]
fn sandbox_zoho_if_modified_since_inclusive_across_offsets() {
    let mut seed = empty_seed();
    seed.modules.insert(
        "BTEC_Students".into(),
        vec![
            student(1, "2026-01-25T15:26:49+05:30").into(), // 09:56:49Z
            student(2, "2026-01-25T10:00:00+00:00").into(),
            student(3, "2026-01-25T09:00:00+00:00").into(),
        ],
    );
    let z = Z::start(seed, ZohoOptions::default());
    let path = format!("/crm/v8/BTEC_Students?{FIELDS}&sort_by=Modified_Time&sort_order=asc");
    // 09:56:49Z written with another offset: inclusive, compared as instants.
    let r = z.call("GET", &path, &[("If-Modified-Since", "2026-01-25T11:56:49+02:00")], None);
    let ids: Vec<String> =
        r.json()["data"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().into()).collect();
    assert_eq!(ids, [sid(1), sid(2)]);
    let r = z.call("GET", &path, &[("If-Modified-Since", "2026-01-25T10:00:01+00:00")], None);
    assert_eq!((r.status, r.body.len()), (304, 0));
    z.fake.configure(|o| o.not_modified_status = 204);
    let r = z.call("GET", &path, &[("If-Modified-Since", "2026-01-25T10:00:01+00:00")], None);
    assert_eq!((r.status, r.body.len()), (204, 0));
}

#[test]
fn sandbox_zoho_by_id_and_ids() {
    let z = Z::default();
    let j = z.get(&format!("/crm/v8/BTEC_Students/{}?fields=Name", sid(2))).json();
    assert_eq!(j["data"].as_array().unwrap().len(), 1);
    assert_eq!(j["data"][0]["Name"], "STU-00002");
    let r = z.get("/crm/v8/BTEC_Students/5847596000099999999?fields=Name");
    assert_eq!((r.status, r.body.len()), (204, 0));
    let r = z.get("/crm/v8/BTEC_Students/not-an-id");
    assert_eq!((r.status, r.code()), (400, "INVALID_DATA".to_string()));
    let j = z.get(&format!("/crm/v8/BTEC_Students?fields=Name&ids={},{},5847596000099999999", sid(3), sid(1))).json();
    let ids: Vec<&str> = j["data"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [sid(1), sid(3)]);
}

#[test]
fn sandbox_zoho_deleted_stubs() {
    let mut seed = seed_students(3);
    seed.deleted.insert(
        "BTEC_Students".into(),
        vec![DeletedStub {
            id: "5847596000012340001".into(),
            display_name: None,
            r#type: "permanent".into(),
            deleted_time: "2025-12-01T08:00:00+00:00".into(),
        }],
    );
    let z = Z::start(seed, ZohoOptions::default());
    assert_eq!(z.get("/crm/v8/BTEC_Teachers/deleted").status, 204);
    assert_eq!(z.call("DELETE", &format!("/crm/v8/BTEC_Students?ids={}", sid(2)), &[], None).status, 200);
    let j = z.get("/crm/v8/BTEC_Students/deleted?type=recycle").json();
    assert_eq!(j["data"].as_array().unwrap().len(), 1);
    let d = &j["data"][0];
    assert_eq!(
        (d["id"].as_str(), d["type"].as_str(), d["display_name"].as_str()),
        (Some(sid(2).as_str()), Some("recycle"), Some("STU-00002"))
    );
    assert_eq!(d["deleted_by"]["id"], INTEGRATION_USER_ID);
    assert_eq!(z.get("/crm/v8/BTEC_Students/deleted?type=all").json()["data"].as_array().unwrap().len(), 2);
    let j = z.get("/crm/v8/BTEC_Students/deleted?type=permanent").json();
    assert_eq!(j["data"][0]["deleted_by"], Value::Null);
    assert_eq!(j["info"]["count"], 1);
    // gone from reads
    assert_eq!(z.get(&format!("/crm/v8/BTEC_Students/{}", sid(2))).status, 204);
}

#[test]
fn sandbox_zoho_unknown_module_and_path() {
    let z = Z::default();
    let r = z.get("/crm/v8/Nope?fields=Name");
    assert_eq!((r.status, r.code()), (400, "INVALID_MODULE".to_string()));
    assert_eq!(r.json()["details"], json!({"resource_path_index": 0}));
    let r = z.get("/crm/v8/a/b/c/d");
    assert_eq!((r.status, r.code()), (404, "INVALID_URL_PATTERN".to_string()));
}

// ---------------------------------------------------------------- writes (items 9–16)

fn new_student(i: usize) -> Value {
    json!({"Name": format!("NEW-{i}"), "Last_Name": format!("New{i}"), "Student_ID_Number": format!("NSID{i}"), "Status": "Active"})
}

#[test]
fn sandbox_zoho_insert_sets_server_fields() {
    let z = Z::default();
    let r = z.call("POST", "/crm/v8/BTEC_Students", &[], Some(json!({"data": [new_student(1)], "trigger": []})));
    assert_eq!(r.status, 201);
    let res = &r.json()["data"][0];
    assert_eq!((res["code"].as_str(), res["message"].as_str()), (Some("SUCCESS"), Some("record added")));
    let id = res["details"]["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 19);
    assert!(id.bytes().all(|b| b.is_ascii_digit()));
    let rec = z.fake.record("BTEC_Students", &id).unwrap();
    assert_eq!(rec["Modified_By"]["id"], INTEGRATION_USER_ID);
    assert_eq!(rec["Created_By"]["id"], INTEGRATION_USER_ID);
    assert_eq!(rec["Modified_Time"].as_str().unwrap().len(), 25);
    assert_eq!(z.fake.stats().records_written["BTEC_Students"], 1);
}

#[test]
fn sandbox_zoho_write_limits_and_empty_data() {
    let z = Z::default();
    let data: Vec<Value> = (0..101).map(new_student).collect();
    let r = z.call("POST", "/crm/v8/BTEC_Students", &[], Some(json!({"data": data})));
    assert_eq!((r.status, r.code()), (400, "LIMIT_EXCEEDED".to_string()));
    assert_eq!(r.json()["details"], json!({"limit": 100, "param_name": "data"}));
    assert_eq!(z.fake.records("BTEC_Students").len(), 5, "nothing of a refused batch is written");
    assert_eq!(z.call("PUT", "/crm/v8/BTEC_Students", &[], Some(json!({"data": []}))).status, 400);
    assert_eq!(z.call("POST", "/crm/v8/BTEC_Students/upsert", &[], Some(json!({"trigger": []}))).status, 400);
    let r = z.http.send(
        "POST",
        &z.url("/crm/v8/BTEC_Students"),
        &[("Authorization", &z.auth())],
        Some(("application/json", b"{not json".to_vec())),
    );
    assert_eq!(r.status, 400);
    let data: Vec<Value> = (0..100).map(new_student).collect();
    assert_eq!(z.call("POST", "/crm/v8/BTEC_Students", &[], Some(json!({"data": data}))).status, 201);
    assert_eq!(z.fake.stats().max_write_batch, 100);
}

#[test]
fn sandbox_zoho_mixed_batch_is_207_in_input_order() {
    let z = Z::default();
    let data =
        json!([new_student(1), {"Name": "X"}, new_student(2), {"Name": "Y", "Last_Name": "Y", "Status": "Bogus"}]);
    let r = z.call("POST", "/crm/v8/BTEC_Students", &[], Some(json!({"data": data})));
    assert_eq!(r.status, 207);
    let codes: Vec<String> =
        r.json()["data"].as_array().unwrap().iter().map(|d| d["code"].as_str().unwrap().into()).collect();
    assert_eq!(codes, ["SUCCESS", "MANDATORY_NOT_FOUND", "SUCCESS", "INVALID_DATA"]);
    assert_eq!(r.json()["data"][1]["details"], json!({"api_name": "Last_Name", "json_path": "$.data[1].Last_Name"}));
    // all failed: 400 with data[]
    let r = z.call("POST", "/crm/v8/BTEC_Students", &[], Some(json!({"data": [{"Name": "Z"}]})));
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["data"][0]["code"], "MANDATORY_NOT_FOUND");
}

#[test]
fn sandbox_zoho_validation_codes() {
    let z = Z::default();
    let post = |rec: Value| {
        z.call("POST", "/crm/v8/BTEC_Students", &[], Some(json!({"data": [rec]}))).json()["data"][0].clone()
    };
    let r = post(json!({"Last_Name": "L"}));
    assert_eq!((r["code"].as_str(), r["details"]["api_name"].as_str()), (Some("MANDATORY_NOT_FOUND"), Some("Name")));
    let r = post(json!({"Name": "N", "Last_Name": 5}));
    assert_eq!((r["code"].as_str(), r["details"]["api_name"].as_str()), (Some("INVALID_DATA"), Some("Last_Name")));
    let r = post(json!({"Name": "N", "Last_Name": "L", "Status": "Expelled"}));
    assert_eq!(r["details"]["expected_data_type"], "picklist");
    let r = post(json!({"Name": "N", "Last_Name": "L", "Academic_Email": "not-an-email"}));
    assert_eq!(r["code"], "INVALID_DATA");
    let r = post(json!({"Name": "N", "Last_Name": "L", "Student_ID_Number": "SID00003"}));
    assert_eq!(r["code"], "DUPLICATE_DATA");
    assert_eq!(r["details"]["duplicate_record"]["id"], sid(3));
    assert_eq!(r["details"]["api_name"], "Student_ID_Number");
    // Academic_Email is not unique: real data has duplicates.
    let r = post(json!({"Name": "N", "Last_Name": "L", "Academic_Email": "s1@student.example.edu"}));
    assert_eq!(r["code"], "SUCCESS");
    // update: unknown id, missing id
    let r = z.call(
        "PUT",
        "/crm/v8/BTEC_Students",
        &[],
        Some(json!({"data": [{"id": "5847596000099999999", "Phone": "1"}, {"Phone": "2"}]})),
    );
    assert_eq!(r.status, 400);
    let j = r.json();
    assert_eq!(
        (j["data"][0]["code"].as_str(), j["data"][0]["details"]["id"].as_str()),
        (Some("INVALID_DATA"), Some("5847596000099999999"))
    );
    assert_eq!(j["data"][1]["code"], "MANDATORY_NOT_FOUND");
    assert_eq!(j["data"][1]["details"]["api_name"], "id");
    // a wrong type on other modules
    let r = z.call("POST", "/crm/v8/BTEC_Units", &[], Some(json!({"data": [{"Name": "U", "Credits": "ten"}]})));
    assert_eq!(r.json()["data"][0]["details"]["expected_data_type"], "integer");
    let r =
        z.call("POST", "/crm/v8/BTEC_Classes", &[], Some(json!({"data": [{"Name": "C", "Start_Date": "01/09/2026"}]})));
    assert_eq!(r.json()["data"][0]["details"]["expected_data_type"], "date");
}

#[test]
fn sandbox_zoho_update_changes_only_sent_fields_and_null_clears() {
    let z = Z::default();
    let r = z.call(
        "PUT",
        "/crm/v8/BTEC_Students",
        &[],
        Some(json!({"data": [{"id": sid(1), "Student_Moodle_ID": "1234", "Phone": null}], "trigger": []})),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"][0]["message"], "record updated");
    let rec = z.fake.record("BTEC_Students", &sid(1)).unwrap();
    assert_eq!((rec["Student_Moodle_ID"].as_str(), rec["Last_Name"].as_str()), (Some("1234"), Some("Last1")));
    assert_eq!(rec["Modified_By"]["id"], INTEGRATION_USER_ID);
    let r =
        z.call("PUT", &format!("/crm/v8/BTEC_Students/{}", sid(2)), &[], Some(json!({"data": [{"Phone": "+44 1"}]})));
    assert_eq!(r.status, 200);
    assert_eq!(z.fake.record("BTEC_Students", &sid(2)).unwrap()["Phone"], "+44 1");
}

#[test]
fn sandbox_zoho_upsert_actions() {
    let z = Z::default();
    let body = json!({"data": [
        {"Name": "STU-00001", "Last_Name": "Changed"},
        {"Name": "BRAND-NEW", "Last_Name": "New", "Student_ID_Number": "X1"},
        {"Name": "OTHER", "Last_Name": "ViaSid", "Student_ID_Number": "SID00004"}
    ], "trigger": []});
    let r = z.call("POST", "/crm/v8/BTEC_Students/upsert", &[], Some(body));
    assert_eq!(r.status, 200);
    let d = r.json()["data"].clone();
    assert_eq!((d[0]["action"].as_str(), d[0]["duplicate_field"].as_str()), (Some("update"), Some("Name")));
    assert_eq!(d[0]["details"]["id"], sid(1));
    assert_eq!((d[1]["action"].as_str(), d[1]["duplicate_field"].clone()), (Some("insert"), Value::Null));
    assert_eq!(
        (d[2]["action"].as_str(), d[2]["duplicate_field"].as_str()),
        (Some("update"), Some("Student_ID_Number"))
    );
    assert_eq!(z.fake.record("BTEC_Students", &sid(4)).unwrap()["Last_Name"], "ViaSid");
    let body = json!({"data": [{"Name": "Z", "Last_Name": "Z", "Academic_Email": "s5@student.example.edu"}], "duplicate_check_fields": ["Academic_Email"]});
    let d = z.call("POST", "/crm/v8/BTEC_Students/upsert", &[], Some(body)).json()["data"][0].clone();
    assert_eq!((d["action"].as_str(), d["details"]["id"].as_str()), (Some("update"), Some(sid(5).as_str())));
}

#[test]
fn sandbox_zoho_delete_207_and_required_ids() {
    let z = Z::default();
    let r = z.call("DELETE", "/crm/v8/BTEC_Students", &[], None);
    assert_eq!((r.status, r.code()), (400, "REQUIRED_PARAM_MISSING".to_string()));
    assert_eq!(r.json()["details"], json!({"param_name": "ids"}));
    let many: Vec<String> = (0..101).map(sid).collect();
    assert_eq!(z.call("DELETE", &format!("/crm/v8/BTEC_Students?ids={}", many.join(",")), &[], None).status, 400);
    let r = z.call(
        "DELETE",
        &format!("/crm/v8/BTEC_Students?ids={},5847596000099999999&wf_trigger=false", sid(1)),
        &[],
        None,
    );
    assert_eq!(r.status, 207);
    let d = r.json()["data"].clone();
    assert_eq!((d[0]["code"].as_str(), d[0]["message"].as_str()), (Some("SUCCESS"), Some("record deleted")));
    assert_eq!((d[1]["code"].as_str(), d[1]["message"].as_str()), (Some("INVALID_DATA"), Some("record not deleted")));
    assert_eq!(d[1]["details"]["id"], "5847596000099999999");
    let w = z.fake.stats().writes.last().cloned().unwrap();
    assert_eq!((w.operation.as_str(), w.wf_trigger.as_deref()), ("delete", Some("false")));
}

#[test]
fn sandbox_zoho_lookups_accept_id_and_render_name() {
    let z = Z::default();
    let class = z.call(
        "POST",
        "/crm/v8/BTEC_Classes",
        &[],
        Some(json!({"data": [{"Name": "CL-1", "Class_Short_Name": "CL1"}]})),
    );
    let class_id = class.json()["data"][0]["details"]["id"].as_str().unwrap().to_string();
    let body = json!({"data": [
        {"Name": "E1", "Student": {"id": sid(1), "name": "ignored"}, "Class": {"id": class_id}, "Status": "Active"},
        {"Name": "E2", "Student": {"id": "5847596000099999999"}, "Class": {"id": class_id}}
    ]});
    let r = z.call("POST", "/crm/v8/BTEC_Enrollments", &[], Some(body));
    assert_eq!(r.status, 207);
    let d = r.json()["data"].clone();
    assert_eq!((d[1]["code"].as_str(), d[1]["details"]["api_name"].as_str()), (Some("INVALID_DATA"), Some("Student")));
    let id = d[0]["details"]["id"].as_str().unwrap();
    let rec = z.get(&format!("/crm/v8/BTEC_Enrollments/{id}?fields=Student,Class")).json()["data"][0].clone();
    assert_eq!(rec["Student"], json!({"name": "STU-00001", "id": sid(1)}));
    assert_eq!(rec["Class"], json!({"name": "CL-1", "id": class_id}));
    // The name follows the target.
    z.fake.update_record("BTEC_Students", &sid(1), json!({"Name": "STU-RENAMED"})).unwrap();
    assert_eq!(z.fake.record("BTEC_Enrollments", id).unwrap()["Student"]["name"], "STU-RENAMED");
}

#[test]
fn sandbox_zoho_trigger_recorded_and_workflow_webhook_signed() {
    let hook = Listener::start();
    let opts = ZohoOptions {
        webhook_url: Some(format!("{}/v1/events/zoho/{{entity}}", hook.url)),
        webhook_hmac_secret: Some(Secret::new("test-hmac-secret")),
        ..ZohoOptions::default()
    };
    let z = Z::start(seed_students(3), opts);
    // trigger: [] runs no workflow
    z.call("PUT", "/crm/v8/BTEC_Students", &[], Some(json!({"data": [{"id": sid(1), "Phone": "1"}], "trigger": []})));
    assert!(z.fake.wait_for_deliveries(Duration::from_secs(10)));
    assert!(hook.none_within(Duration::from_millis(300)), "trigger: [] must not fire the workflow");
    // trigger omitted: it fires
    z.call("PUT", "/crm/v8/BTEC_Students", &[], Some(json!({"data": [{"id": sid(2), "Phone": "2"}]})));
    let (path, headers, body) = hook.next();
    assert_eq!(path, "/v1/events/zoho/student");
    let j: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(j["event_type"], "updated");
    assert_eq!(j["module"], "BTEC_Students");
    assert_eq!(j["record_id"], sid(2));
    assert_eq!(j["changed_fields"], json!(["Phone"]));
    for k in ["event_id", "timestamp"] {
        assert!(j[k].is_string(), "{k}");
    }
    let sig = header(&headers, "x-zoho-signature").expect("signed");
    let mut mac = Hmac::<Sha256>::new_from_slice(b"test-hmac-secret").unwrap();
    mac.update(&body);
    assert_eq!(sig, format!("sha256={}", hex::encode(mac.finalize().into_bytes())));
    // trigger: ["workflow"] fires too
    z.call("POST", "/crm/v8/BTEC_Students", &[], Some(json!({"data": [new_student(9)], "trigger": ["workflow"]})));
    let (_, _, body) = hook.next();
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["event_type"], "created");
    let triggers: Vec<Option<Vec<String>>> = z.fake.stats().writes.iter().map(|w| w.trigger.clone()).collect();
    assert_eq!(triggers, [Some(vec![]), None, Some(vec!["workflow".to_string()])]);
}

#[test]
fn sandbox_zoho_workflow_webhook_form_encoded_and_ui_edits() {
    let hook = Listener::start();
    let opts = ZohoOptions {
        webhook_url: Some(format!("{}/hook", hook.url)),
        webhook_format: WebhookFormat::Form,
        ..ZohoOptions::default()
    };
    let z = Z::start(seed_students(3), opts);
    z.fake.update_record("BTEC_Students", &sid(3), json!({"Status": "Suspended"})).unwrap();
    let (_, headers, body) = hook.next();
    assert!(header(&headers, "content-type").unwrap().starts_with("application/x-www-form-urlencoded"));
    assert!(header(&headers, "x-zoho-signature").is_none(), "unsigned unless a secret is set");
    let pairs: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let get = |k: &str| pairs.iter().find(|(p, _)| p == k).map(|(_, v)| v.clone());
    assert_eq!(get("record_id"), Some(sid(3)));
    assert_eq!(get("changed_fields").as_deref(), Some("Status"));
    assert_eq!(get("event_type").as_deref(), Some("updated"));
    let rec = z.fake.record("BTEC_Students", &sid(3)).unwrap();
    assert_eq!(rec["Modified_By"]["id"], HUMAN_USER_ID);
    // UI insert and delete fire too
    let id = z.fake.insert_record("BTEC_Students", json!({"Name": "UI-1", "Last_Name": "Ui"})).unwrap();
    let (_, _, body) = hook.next();
    assert!(String::from_utf8_lossy(&body).contains(&id));
    z.fake.delete_record("BTEC_Students", &id).unwrap();
    let (_, _, body) = hook.next();
    assert!(String::from_utf8_lossy(&body).contains("event_type=deleted"));
    assert!(z.fake.update_record("BTEC_Students", &sid(1), json!({"Status": "Nope"})).is_err());
}

// ---------------------------------------------------------------- notifications (item 18)

#[test]
fn sandbox_zoho_watch_channel_expiry_and_callback_shape() {
    let hook = Listener::start();
    let z = Z::default();
    let far = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let soon = (chrono::Utc::now() + chrono::Duration::days(6)).fixed_offset();
    let body = json!({"watch": [
        {"channel_id": 1000000068001u64, "events": ["BTEC_Students.all"], "notify_url": format!("{}/notify?src=watch", hook.url), "token": "tok-1", "channel_expiry": far},
        {"channel_id": "1000000068002", "events": ["BTEC_Enrollments.create"], "notify_url": format!("{}/n2", hook.url), "channel_expiry": soon.to_rfc3339()},
        {"channel_id": "3", "events": ["Nope.create"], "notify_url": "http://x"}
    ]});
    let r = z.call("POST", "/crm/v8/actions/watch", &[], Some(body));
    assert_eq!(r.status, 207);
    let w = r.json()["watch"].clone();
    assert_eq!(w[0]["code"], "SUCCESS");
    let exp =
        chrono::DateTime::parse_from_rfc3339(w[0]["details"]["events"][0]["channel_expiry"].as_str().unwrap()).unwrap();
    let in_an_hour = chrono::Utc::now() + chrono::Duration::hours(1);
    assert!((exp.timestamp() - in_an_hour.timestamp()).abs() < 300, "too far ahead becomes 1 h: {exp}");
    let exp2 =
        chrono::DateTime::parse_from_rfc3339(w[1]["details"]["events"][0]["channel_expiry"].as_str().unwrap()).unwrap();
    assert_eq!(exp2.timestamp(), soon.timestamp(), "within a week is kept");
    assert_eq!(w[2]["status"], "error");

    let listed = z.get("/crm/v8/actions/watch").json();
    assert_eq!(listed["watch"].as_array().unwrap().len(), 2);

    z.call(
        "PUT",
        "/crm/v8/BTEC_Students",
        &[],
        Some(json!({"data": [{"id": sid(1), "Phone": "9"}, {"id": sid(2), "Status": "Inactive"}], "trigger": []})),
    );
    let (path, _, body) = hook.next();
    assert_eq!(path, "/notify?src=watch");
    let j: Value = serde_json::from_slice(&body).unwrap();
    assert!(j["server_time"].as_i64().unwrap() > 1_700_000_000_000, "epoch milliseconds");
    assert_eq!(j["query_params"], json!({"src": "watch"}));
    assert_eq!(j["module"], "BTEC_Students");
    assert_eq!(j["resource_uri"], format!("{}/crm/v8/BTEC_Students", z.fake.url()));
    assert_eq!(j["ids"], json!([sid(1), sid(2)]), "batched ids");
    assert_eq!(j["operation"], "update");
    assert_eq!(j["channel_id"], json!(1000000068001u64));
    assert_eq!(j["token"], "tok-1");
    assert_eq!(j["affected_fields"], json!([{sid(1): ["Phone"]}, {sid(2): ["Status"]}]));
    assert!(j.get("data").is_none());

    // PATCH the expiry, then DELETE the channel; no more callbacks.
    let r = z.call(
        "PATCH",
        "/crm/v8/actions/watch",
        &[],
        Some(json!({"watch": [{"channel_id": 1000000068001u64, "channel_expiry": soon.to_rfc3339()}]})),
    );
    assert_eq!(r.status, 200);
    let patched = r.json()["watch"][0]["details"]["events"][0]["channel_expiry"].as_str().unwrap().to_string();
    assert_eq!(chrono::DateTime::parse_from_rfc3339(&patched).unwrap().timestamp(), soon.timestamp());
    let r = z.call(
        "PATCH",
        "/crm/v8/actions/watch",
        &[],
        Some(json!({"watch": [{"channel_id": "999", "channel_expiry": soon.to_rfc3339()}]})),
    );
    assert_eq!(r.json()["watch"][0]["code"], "NOT_SUBSCRIBED");
    let r = z.call("DELETE", "/crm/v8/actions/watch?channel_ids=1000000068001", &[], None);
    assert_eq!(r.status, 200);
    z.call("PUT", "/crm/v8/BTEC_Students", &[], Some(json!({"data": [{"id": sid(1), "Phone": "10"}]})));
    assert!(z.fake.wait_for_deliveries(Duration::from_secs(10)));
    assert!(hook.none_within(Duration::from_millis(300)));
    assert_eq!(z.get("/crm/v8/actions/watch").json()["watch"].as_array().unwrap().len(), 1);
}

// ---------------------------------------------------------------- limits and faults (item 17)

#[test]
fn sandbox_zoho_concurrency_cap_gives_429() {
    let z = Z::start(
        seed_students(3),
        ZohoOptions { latency_ms: 1500, concurrency_cap: Some(2), ..ZohoOptions::default() },
    );
    let url = z.url(&format!("/crm/v8/BTEC_Students?{FIELDS}"));
    let auth = z.auth();
    let statuses: Vec<u16> = z.http.rt.block_on(async {
        let futs =
            (0..10).map(|_| {
                let c = z.http.client.clone();
                let url = url.clone();
                let auth = auth.clone();
                async move {
                    c.get(url).header("Authorization", auth).send().await.map(|r| r.status().as_u16()).unwrap_or(0)
                }
            });
        let handles: Vec<_> = futs.map(tokio::spawn).collect();
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    });
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(z.fake.stats().max_in_flight > 2);
    assert!(z.fake.stats().throttled >= 1);
}

#[test]
fn sandbox_zoho_every_nth_credit_budget_and_retry_after() {
    let z = Z::start(seed_students(3), ZohoOptions { every_nth_429: Some(3), ..ZohoOptions::default() });
    let p = format!("/crm/v8/BTEC_Students?{FIELDS}");
    let s: Vec<u16> = (0..6).map(|_| z.get(&p).status).collect();
    assert_eq!(s, [200, 200, 429, 200, 200, 429]);
    let r = z.get(&p);
    assert_eq!(r.status, 200);
    z.fake.set_every_nth_429(None);
    z.fake.configure(|o| {
        o.credit_budget = Some(o.credit_budget.unwrap_or(0) + 10);
        o.retry_after = Some(7);
    });
    let mut last = 200;
    for _ in 0..20 {
        last = z.get(&p).status;
        if last == 429 {
            break;
        }
    }
    let r = z.get(&p);
    assert_eq!((last, r.status), (429, 429));
    assert_eq!(
        r.json(),
        json!({"code":"TOO_MANY_REQUESTS","details":{},"message":r.json()["message"],"status":"error"})
    );
    assert_eq!(r.headers.get("retry-after").unwrap(), "7");
}

#[test]
fn sandbox_zoho_fault_kinds_each_reachable() {
    let z = Z::default();
    let p = format!("/crm/v8/BTEC_Students?{FIELDS}");
    z.fake.configure(|o| o.timeout_hold = Duration::from_millis(200));
    z.fake.set_fault_rate(1.0);
    z.fake.set_fault_kinds(&[FaultKind::TooManyRequests]);
    assert_eq!(z.get(&p).code(), "TOO_MANY_REQUESTS");
    z.fake.set_fault_kinds(&[FaultKind::InternalError]);
    let r = z.get(&p);
    assert_eq!((r.status, r.code()), (500, "INTERNAL_ERROR".to_string()));
    z.fake.set_fault_kinds(&[FaultKind::BadGateway]);
    let r = z.get(&p);
    assert_eq!(r.status, 502);
    assert!(serde_json::from_slice::<Value>(&r.body).is_err(), "502 carries no JSON");
    z.fake.set_fault_kinds(&[FaultKind::Timeout]);
    assert!(z.try_call("GET", &p, None).is_err(), "held, then dropped");
    z.fake.set_fault_kinds(&[FaultKind::Reset]);
    assert!(z.try_call("GET", &p, None).is_err(), "dropped unanswered");
    // The token endpoint is never faulted.
    assert!(z.grant_form().json()["access_token"].is_string());
    z.fake.set_fault_rate(0.0);
    assert_eq!(z.get(&p).status, 200);
    let f = z.fake.stats().faults;
    for k in ["too_many_requests", "internal_error", "bad_gateway", "timeout", "reset"] {
        assert_eq!(f.get(k), Some(&1), "{k}: {f:?}");
    }
}

#[test]
fn sandbox_zoho_random_faults_are_deterministic_by_seed() {
    let run = || {
        let z = Z::start(
            seed_students(2),
            ZohoOptions {
                fault_rate: 0.5,
                fault_kinds: vec![FaultKind::InternalError],
                fault_seed: 42,
                ..ZohoOptions::default()
            },
        );
        (0..20).map(|_| z.get(&format!("/crm/v8/BTEC_Students?{FIELDS}")).status).collect::<Vec<u16>>()
    };
    let a = run();
    assert_eq!(a, run());
    assert!(a.contains(&500) && a.contains(&200), "{a:?}");
}

#[test]
fn sandbox_zoho_fault_after_apply_writes_then_drops() {
    let z = Z::default();
    z.fake.set_fault_after_apply(1.0);
    let res = z.try_call("POST", "/crm/v8/BTEC_Students", Some(json!({"data": [new_student(7)], "trigger": []})));
    assert!(res.is_err(), "no answer");
    z.fake.set_fault_after_apply(0.0);
    assert!(z.fake.records("BTEC_Students").iter().any(|r| r["Name"] == "NEW-7"), "but the write happened");
    assert_eq!(z.fake.stats().faults.get("after_apply"), Some(&1));
}

// ---------------------------------------------------------------- metadata (item 21') and COQL (item 20)

#[test]
fn sandbox_zoho_metadata_endpoints() {
    let z = Z::default();
    let j = z.get("/crm/v8/settings/modules").json();
    let names: Vec<&str> = j["modules"].as_array().unwrap().iter().map(|m| m["api_name"].as_str().unwrap()).collect();
    for m in ZOHO_MODULES {
        assert!(names.contains(m), "{m}");
    }
    let j = z.get("/crm/v8/settings/fields?module=BTEC_Attendance").json();
    assert!(j["fields"].as_array().unwrap().iter().any(|f| f["api_name"] == "Present" && f["data_type"] == "boolean"));
    let j = z.get("/crm/v8/settings/fields?module=BTEC_Students").json();
    let status = j["fields"].as_array().unwrap().iter().find(|f| f["api_name"] == "Status").unwrap().clone();
    assert_eq!(status["data_type"], "picklist");
    assert!(status["pick_list_values"].as_array().unwrap().iter().any(|v| v["actual_value"] == "Graduated"));
    let j = z.get("/crm/v8/settings/fields?module=BTEC_Enrollments").json();
    let student = j["fields"].as_array().unwrap().iter().find(|f| f["api_name"] == "Student").unwrap().clone();
    assert_eq!(student["lookup"]["module"]["api_name"], "BTEC_Students");
    assert_eq!(z.get("/crm/v8/settings/fields?module=Nope").code(), "INVALID_MODULE");
    z.fake.configure(|o| o.metadata_204_module = Some("BTEC_Grades".into()));
    let r = z.get("/crm/v8/settings/fields?module=BTEC_Grades");
    assert_eq!((r.status, r.body.len()), (204, 0));
}

#[test]
fn sandbox_zoho_coql_subset() {
    let z = Z::start(seed_students(30), ZohoOptions::default());
    let q = |s: &str| z.call("POST", "/crm/v8/coql", &[], Some(json!({"select_query": s})));
    let r = q("select Name, Status from BTEC_Students where Student_ID_Number in ('SID00003', 'SID00001') order by id desc limit 0, 10");
    assert_eq!(r.status, 200);
    let j = r.json();
    let names: Vec<&str> = j["data"].as_array().unwrap().iter().map(|d| d["Name"].as_str().unwrap()).collect();
    assert_eq!(names, ["STU-00003", "STU-00001"]);
    assert_eq!(j["info"], json!({"count": 2, "more_records": false}));
    let j = q("select id from BTEC_Students where id is not null order by id asc limit 10, 5").json();
    assert_eq!(j["data"][0]["id"], sid(11));
    assert_eq!(j["info"]["more_records"], true);
    assert_eq!(q("select id from BTEC_Students where Name = 'nobody'").status, 204);
    assert_eq!(q("select id from BTEC_Students where id is not null limit 2001").code(), "LIMIT_EXCEEDED");
    assert_eq!(q("select id from BTEC_Students where id is not null limit 99000, 2000").code(), "LIMIT_EXCEEDED");
    assert_eq!(q("select id from BTEC_Students").code(), "SYNTAX_ERROR");
    let j = q("select id from BTEC_Students where Modified_Time >= '2026-01-20T15:30:00+05:30'").json();
    assert_eq!(j["info"]["count"], 30, "instants, not strings");
}

/// Issue #24: what a college would see from Zoho — a lapsed channel is neither listed, amended nor notified; a
/// past expiry silently becomes one hour; the limits (50 watch objects, a 50-character token, 10 condition
/// fields) are refused; an unreachable notify URL is accepted and its deliveries fail; a bad access token is 401.
#[test]
fn sandbox_zoho_watch_lapses_limits_and_bad_answers() {
    let hook = Listener::start();
    let z = Z::default();
    let week = (chrono::Utc::now() + chrono::Duration::days(6)).to_rfc3339();
    let sub = |id: &str, url: &str, expiry: &str| {
        json!({"watch": [{"channel_id": id, "events": ["BTEC_Students.edit"], "notify_url": url, "token": "t",
                          "channel_expiry": expiry}]})
    };
    assert_eq!(z.call("POST", "/crm/v8/actions/watch", &[], Some(sub("11", &hook.url, &week))).status, 201);
    // Lapsed: no longer listed, no callbacks, cannot be amended (only subscribed again).
    let past = chrono::Utc::now().fixed_offset() - chrono::Duration::minutes(1);
    assert!(z.fake.set_channel_expiry("11", past));
    assert!(!z.fake.watch_channels()[0].live);
    assert_eq!(z.get("/crm/v8/actions/watch").status, 204, "a lapsed channel is not listed");
    z.call("PUT", "/crm/v8/BTEC_Students", &[], Some(json!({"data": [{"id": sid(1), "Phone": "1"}]})));
    assert!(z.fake.wait_for_deliveries(Duration::from_secs(10)));
    assert!(hook.none_within(Duration::from_millis(300)), "a lapsed channel is not notified");
    let r = z.call(
        "PATCH",
        "/crm/v8/actions/watch",
        &[],
        Some(json!({"watch": [{"channel_id": "11", "channel_expiry": week}]})),
    );
    assert_eq!(r.json()["watch"][0]["code"], "NOT_SUBSCRIBED");
    // A past expiry becomes one hour, silently.
    let yesterday = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    let r = z.call("POST", "/crm/v8/actions/watch", &[], Some(sub("11", &hook.url, &yesterday)));
    assert_eq!(r.status, 201);
    let exp = chrono::DateTime::parse_from_rfc3339(
        r.json()["watch"][0]["details"]["events"][0]["channel_expiry"].as_str().unwrap(),
    )
    .unwrap();
    assert!((exp.timestamp() - (chrono::Utc::now() + chrono::Duration::hours(1)).timestamp()).abs() < 300, "{exp}");
    // Limits.
    let long = "x".repeat(51);
    let r = z.call("POST", "/crm/v8/actions/watch", &[], Some(json!({"watch": [{"channel_id": "12", "events": ["BTEC_Students.edit"], "notify_url": hook.url, "token": long}]})));
    assert_eq!((r.status, r.json()["watch"][0]["code"].as_str()), (400, Some("INVALID_DATA")));
    assert_eq!(r.json()["watch"][0]["details"]["api_name"], "token");
    let many: Vec<Value> = (0..51)
        .map(
            |i| json!({"channel_id": format!("{}", 100 + i), "events": ["BTEC_Students.edit"], "notify_url": hook.url}),
        )
        .collect();
    let r = z.call("POST", "/crm/v8/actions/watch", &[], Some(json!({"watch": many})));
    assert_eq!((r.status, r.json()["code"].as_str()), (400, Some("LIMIT_EXCEEDED")));
    let fields: Vec<Value> = (0..11).map(|i| json!({"api_name": format!("F{i}")})).collect();
    let r = z.call("POST", "/crm/v8/actions/watch", &[], Some(json!({"watch": [{"channel_id": "13", "events": ["BTEC_Students.edit"], "notify_url": hook.url, "notification_condition": fields}]})));
    assert_eq!(r.json()["watch"][0]["details"]["api_name"], "notification_condition");
    // A notify URL nobody answers: Zoho accepts the channel; its deliveries fail, silently for the subscriber.
    let before = z.fake.stats().delivery_failures;
    let r = z.call(
        "POST",
        "/crm/v8/actions/watch",
        &[],
        Some(sub("14", "http://127.0.0.1:9/v1/events/zoho/notify", &week)),
    );
    assert_eq!(r.status, 201);
    z.call("PUT", "/crm/v8/BTEC_Students", &[], Some(json!({"data": [{"id": sid(2), "Phone": "2"}]})));
    assert!(z.fake.wait_for_deliveries(Duration::from_secs(10)));
    assert!(z.fake.stats().delivery_failures > before, "the delivery to an unreachable URL failed");
    // A bad access token.
    let r =
        z.http.send("GET", &z.url("/crm/v8/actions/watch"), &[("Authorization", "Zoho-oauthtoken 1000.nope")], None);
    assert_eq!((r.status, r.json()["code"].as_str()), (401, Some("INVALID_TOKEN")));
}
