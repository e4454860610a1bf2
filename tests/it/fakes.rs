//! Helpers for tests against the sandbox fakes: runtimes, clients pointed at a fake, small seeds, and the
//! configuration a library-level snapshot needs.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use zmsync::config::{Config, MoodleConfig, WebhookSecrets, ZohoConfig};
use zmsync::sandbox::moodle::FakeMoodle;
use zmsync::sandbox::seed::{ZohoSeed, ZOHO_MODULES};
use zmsync::sandbox::zoho::FakeZoho;
use zmsync::secret::Secret;
use zmsync::zoho::{self, Backoff, TokenCache};

use crate::support::Scratch;

pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Short delays, many tries: storms finish quickly, and a test that keeps failing still fails.
pub fn fast_backoff() -> Backoff {
    Backoff { initial: Duration::from_millis(5), max: Duration::from_millis(50), tries: 12, ..Backoff::default() }
}

pub fn zoho_config(fake: &FakeZoho) -> ZohoConfig {
    ZohoConfig {
        region: "eu".into(),
        client_id: Some(fake.client_id()),
        client_secret: Some(fake.client_secret()),
        refresh_token: Some(fake.refresh_token()),
        accounts_url: fake.url(),
        api_domain: fake.url(),
    }
}

pub fn zoho_options() -> zoho::ClientOptions {
    zoho::ClientOptions { backoff: fast_backoff(), timeout: Duration::from_secs(5), max_in_flight: 10 }
}

pub fn zoho_client(fake: &FakeZoho, cache: Option<Arc<dyn TokenCache>>) -> zoho::Client {
    zoho::Client::new(&zoho_config(fake), zoho_options(), cache).unwrap()
}

pub fn config(zoho: &FakeZoho, moodle: &FakeMoodle) -> Config {
    Config {
        config_file: None,
        database_url: String::new(),
        zoho: zoho_config(zoho),
        moodle: MoodleConfig { url: Some(moodle.url()), token: Some(Secret::new(moodle.token())) },
        webhook: WebhookSecrets::default(),
    }
}

/// The binary in a scratch directory, configured for both fakes.
pub fn scratch(zoho: &FakeZoho, moodle: &FakeMoodle) -> Scratch {
    Scratch::new()
        .env("ZOHO_CLIENT_ID", &zoho.client_id())
        .env("ZOHO_CLIENT_SECRET", zoho.client_secret().expose())
        .env("ZOHO_REFRESH_TOKEN", zoho.refresh_token().expose())
        .env("ZOHO_ACCOUNTS_URL", &zoho.url())
        .env("ZOHO_API_DOMAIN", &zoho.url())
        .env("MOODLE_URL", &moodle.url())
        .env("MOODLE_TOKEN", &moodle.token())
}

/// A Zoho seed with every module present and `n` plain records in `module` (ids in ascending order).
pub fn zoho_seed(module: &str, n: usize) -> ZohoSeed {
    let mut seed = ZohoSeed::default();
    for m in ZOHO_MODULES {
        seed.modules.insert(m.to_string(), Vec::new());
    }
    seed.modules.insert(module.to_string(), (0..n).map(|i| zoho_record(module, i).into()).collect());
    seed
}

pub fn zoho_record(module: &str, i: usize) -> Value {
    json!({
        "id": format!("{}", 5_847_596_000_100_000_000u64 + i as u64),
        "Name": format!("{module}-{i:05}"),
        "Created_Time": "2026-01-10T09:00:00+00:00",
        "Modified_Time": "2026-01-25T10:00:00+05:30",
    })
}

/// The ids of a list of Zoho records, sorted.
pub fn ids(records: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = records.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    v.sort();
    v
}
