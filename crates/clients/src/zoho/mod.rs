//! The Zoho CRM client (Zoho CRM REST API v8).
//!
//! - [`auth`]: refresh-token grant, token cache, single-flight refresh.
//! - [`read`]: paged listing (page, then page_token past 2,000), by ids, deleted records.
//! - [`split`]: a whole module read from both ends at once (ids ascending and descending), meeting in the middle.
//! - [`write`]: insert/update/upsert/delete in batches of ≤100 with per-record results in input order.
//! - [`meta`]: the org's modules and a module's fields (settings API).
//! - [`limits`]: the in-flight limiter and the run's counters; [`retry`](crate::retry): the in-run backoff
//!   shared with the Moodle client.
//!
//! Every call goes through [`Client::send`]: token, limiter, one attempt, then the decision — done, refresh
//! once on 401, back off on 429/5xx/transport failures, or stop.

pub mod auth;
pub mod channel;
pub mod limits;
pub mod meta;
pub mod read;
pub mod split;
pub mod watch;
pub mod write;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderValue, AUTHORIZATION, DATE, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode};
use serde_json::Value;

use crate::credentials::ClientConfigError;
use zmsync_core::secret::Secret;
use zmsync_core::settings::Settings;

use crate::retry;
pub use crate::retry::Backoff;
pub use auth::TokenCache;
pub use limits::ZohoStats;
pub use meta::{FieldMeta, ModuleMeta};
pub use read::{DeletedRecord, ListQuery, Pages};
pub use split::SplitPages;
pub use write::{RecordOutcome, WriteOp};

/// How to reach Zoho: region, hosts and OAuth credentials (`config` builds it from the environment).
#[derive(Debug, Clone)]
pub struct ZohoConfig {
    pub region: String,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    pub refresh_token: Option<Secret>,
    /// Token endpoint host; from the region unless `ZOHO_ACCOUNTS_URL` (or the file) overrides it.
    pub accounts_url: String,
    /// API host to use until a token answer names its own `api_domain`.
    pub api_domain: String,
}

impl ZohoConfig {
    /// The client id and both secrets, or one error naming every missing variable.
    pub fn credentials(&self) -> Result<(&str, &Secret, &Secret), ClientConfigError> {
        let mut missing = Vec::new();
        if self.client_id.is_none() {
            missing.push("ZOHO_CLIENT_ID");
        }
        if self.client_secret.is_none() {
            missing.push("ZOHO_CLIENT_SECRET");
        }
        if self.refresh_token.is_none() {
            missing.push("ZOHO_REFRESH_TOKEN");
        }
        match (&self.client_id, &self.client_secret, &self.refresh_token) {
            (Some(id), Some(secret), Some(refresh)) => Ok((id, secret, refresh)),
            _ => Err(ClientConfigError::Missing {
                missing: missing.join(", "),
                hint: "set them in the environment or in .env (a Self Client in Zoho's API console gives them)".into(),
            }),
        }
    }
}

/// Why the token endpoint refused us.
#[derive(Debug, Clone, PartialEq)]
pub enum AuthFailure {
    /// `invalid_code`: the refresh token is wrong, used up or revoked.
    InvalidCode,
    /// `invalid_client`: the client id or secret is wrong, or belongs to another data centre.
    InvalidClient,
    /// "Access Denied": more than 10 tokens minted in 10 minutes.
    Throttled,
    Other(String),
    /// The endpoint could not be reached (after retries).
    Unreachable(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ZohoError {
    #[error(transparent)]
    Config(#[from] ClientConfigError),
    #[error("{}", auth_message(.failure, .accounts_url))]
    Auth { failure: AuthFailure, accounts_url: String },
    #[error(
        "Zoho refused the access token for {module} ({code}: {message}) even after a refresh\n  hint: check that \
         ZOHO_REGION matches the data centre of the Zoho org (a token sent to another DC looks expired)"
    )]
    Unauthorized { module: String, code: String, message: String },
    #[error(
        "Zoho: the token lacks the scope for {module} (OAUTH_SCOPE_MISMATCH)\n  hint: regenerate the refresh token \
         with the scopes ZohoCRM.modules.ALL and ZohoCRM.settings.ALL"
    )]
    ScopeMismatch { module: String },
    #[error(
        "Zoho: the integration user has no permission on {module} (NO_PERMISSION {details})\n  hint: give the \
         user's profile access to the module in Zoho's Setup › Users and Control › Security Control"
    )]
    NoPermission { module: String, details: Value },
    #[error("Zoho answered HTTP {status} {code} for {module}: {message} {details}{}", api_hint(.code))]
    Api { module: String, status: u16, code: String, message: String, details: Box<Value> },
    #[error("Zoho kept answering 429 TOO_MANY_REQUESTS for {module} after {attempts} attempts\n  hint: lower zoho.limits.max_in_flight, or wait for the org's credits to come back")]
    Throttled { module: String, attempts: u32 },
    #[error("Zoho failed for {module} after {attempts} attempts: {message}\n  hint: check the network and https://status.zoho.com; the run can simply be repeated")]
    Transport { module: String, attempts: u32, message: String },
    /// A write whose connection failed after it was sent: Zoho may or may not have applied it. Inserts are not
    /// retried blindly (a second insert would duplicate the records); the caller checks identity first.
    #[error("the outcome of a write to {module} is unknown ({message}): it may have been applied")]
    UnknownOutcome { module: String, message: String },
    #[error("Zoho sent an unreadable answer for {module}: {message}")]
    Decode { module: String, message: String },
}

fn auth_message(failure: &AuthFailure, accounts_url: &str) -> String {
    let (what, hint) = match failure {
        AuthFailure::InvalidCode => (
            "the refresh token was refused (invalid_code)".to_string(),
            "check ZOHO_REFRESH_TOKEN: it may be mistyped, revoked, or made for another client".to_string(),
        ),
        AuthFailure::InvalidClient => (
            "the client was refused (invalid_client)".to_string(),
            "check ZOHO_CLIENT_ID and ZOHO_CLIENT_SECRET, and that ZOHO_REGION is the data centre the client was \
             made in"
                .to_string(),
        ),
        AuthFailure::Throttled => (
            "too many access tokens were requested (Access Denied)".to_string(),
            "Zoho allows 10 refreshes per 10 minutes per refresh token; wait 10 minutes, and make sure no other \
             program refreshes with the same token"
                .to_string(),
        ),
        AuthFailure::Other(e) => (format!("the token request failed: {e}"), "check the Zoho credentials".to_string()),
        AuthFailure::Unreachable(e) => (
            format!("the token endpoint could not be reached: {e}"),
            "check the network and ZOHO_REGION / ZOHO_ACCOUNTS_URL".to_string(),
        ),
    };
    format!("Zoho OAuth at {accounts_url}: {what}\n  hint: {hint}")
}

fn api_hint(code: &str) -> &'static str {
    match code {
        "INVALID_MODULE" => "\n  hint: check the module name in the setting mapping.fields (`module`)",
        "LIMIT_EXCEEDED" | "INVALID_URL_PATTERN" | "REQUIRED_PARAM_MISSING" => "\n  hint: this is a bug in zmsync",
        "INVALID_HOST" => "\n  hint: check ZOHO_API_DOMAIN / ZOHO_REGION",
        _ => "",
    }
}

/// How the client behaves; the defaults suit a real Zoho org.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Calls in flight at once (`zoho.limits.max_in_flight`).
    pub max_in_flight: usize,
    pub backoff: Backoff,
    /// One attempt's time limit.
    pub timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions { max_in_flight: 10, backoff: Backoff::default(), timeout: Duration::from_secs(30) }
    }
}

impl ClientOptions {
    pub fn from_settings(settings: &Settings) -> ClientOptions {
        ClientOptions { max_in_flight: settings.zoho_limits.max_in_flight as usize, ..ClientOptions::default() }
    }
}

/// Whether a request may be sent again after its connection failed mid-way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Reads, updates, upserts, deletes: applying twice is the same as once.
    Safe,
    /// Inserts: a lost answer is an unknown outcome, never a silent second insert.
    Unsafe,
}

/// A non-transient answer: any status other than 401/403/429/5xx.
pub(crate) struct Answer {
    pub status: StatusCode,
    pub body: Vec<u8>,
    /// Zoho's clock when it answered (the `Date` header, to the second), if it sent one.
    pub date: Option<chrono::DateTime<chrono::Utc>>,
}

impl Answer {
    pub fn json(&self, module: &str) -> Result<Value, ZohoError> {
        serde_json::from_slice(&self.body).map_err(|e| ZohoError::Decode {
            module: module.to_string(),
            message: format!("HTTP {}: {e}", self.status),
        })
    }

    /// The `{code,details,message,status}` envelope (§10): code, message, details.
    pub fn envelope(&self) -> (String, String, Value) {
        let v: Value = serde_json::from_slice(&self.body).unwrap_or(Value::Null);
        // Batch endpoints sometimes wrap the envelope in data[].
        let env = v.get("data").and_then(|d| d.get(0)).filter(|_| v.get("code").is_none()).unwrap_or(&v);
        (
            env.get("code").and_then(Value::as_str).unwrap_or("").to_string(),
            env.get("message").and_then(Value::as_str).unwrap_or("").to_string(),
            env.get("details").cloned().unwrap_or(Value::Null),
        )
    }

    /// The request-level error this answer carries.
    pub fn error(&self, module: &str) -> ZohoError {
        let (code, message, details) = self.envelope();
        ZohoError::Api {
            module: module.to_string(),
            status: self.status.as_u16(),
            code,
            message,
            details: Box::new(details),
        }
    }
}

pub(crate) fn counters_add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

struct Inner {
    http: reqwest::Client,
    auth: auth::Auth,
    limiter: limits::Limiter,
    counters: limits::Counters,
    backoff: Backoff,
}

/// The Zoho CRM client. Cheap to clone; clones share the token, the limiter and the counters.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// A client for `config` (credentials are checked here: missing ones are a configuration error). `cache`
    /// keeps the access token across runs.
    pub fn new(
        config: &ZohoConfig,
        opts: ClientOptions,
        cache: Option<Arc<dyn TokenCache>>,
    ) -> Result<Client, ZohoError> {
        let (client_id, secret, refresh) = config.credentials()?;
        let http = reqwest::Client::builder()
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout.min(Duration::from_secs(10)))
            .pool_max_idle_per_host(opts.max_in_flight.max(1))
            .build()
            .map_err(|e| ZohoError::Transport { module: "client".into(), attempts: 0, message: e.to_string() })?;
        let auth = auth::Auth::new(
            http.clone(),
            config.accounts_url.clone(),
            client_id.to_string(),
            secret.clone(),
            refresh.clone(),
            config.api_domain.clone(),
            cache,
            opts.backoff.clone(),
        );
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                auth,
                limiter: limits::Limiter::new(opts.max_in_flight),
                counters: limits::Counters::default(),
                backoff: opts.backoff,
            }),
        })
    }

    pub fn stats(&self) -> ZohoStats {
        self.inner.counters.snapshot()
    }

    pub fn accounts_url(&self) -> &str {
        self.inner.auth.accounts_url()
    }

    /// Makes sure a token is at hand (cached or fresh). Useful to fail fast on bad credentials.
    pub async fn authenticate(&self) -> Result<(), ZohoError> {
        self.inner.auth.token(&self.inner.counters).await.map(|_| ())
    }

    /// Refreshes the access token now, even if a cached one is still valid, and caches the new one. Returns how
    /// long until the client would refresh again and the API domain the token answer named.
    pub async fn refresh_now(&self) -> Result<(Duration, String), ZohoError> {
        self.inner.auth.refresh_now(&self.inner.counters).await
    }

    /// Sends one API call, built by `build` from the API domain (e.g. `https://www.zohoapis.eu`), with the
    /// token, the limiter and the retry rules. Returns the first answer that is neither transient nor an auth
    /// failure; 401/403 become typed errors after at most one refresh.
    pub(crate) async fn send(
        &self,
        module: &str,
        replay: Replay,
        build: impl Fn(&reqwest::Client, &str) -> RequestBuilder,
    ) -> Result<Answer, ZohoError> {
        let inner = &*self.inner;
        let mut attempt: u32 = 0;
        let mut refreshed = false;
        loop {
            let token = inner.auth.token(&inner.counters).await?;
            let permit = inner.limiter.acquire().await;
            inner.counters.call(module, 1);
            let mut auth =
                HeaderValue::from_str(&format!("Zoho-oauthtoken {}", token.access.expose())).map_err(|_| {
                    ZohoError::Decode { module: module.into(), message: "access token is not ASCII".into() }
                })?;
            auth.set_sensitive(true);
            let sent = build(&inner.http, &token.api_domain).header(AUTHORIZATION, auth).send().await;
            let (transient, retry_after) = match sent {
                Err(e) => {
                    drop(permit);
                    // A connect error means nothing reached the server; anything later may have been applied.
                    if replay == Replay::Unsafe && !e.is_connect() {
                        return Err(ZohoError::UnknownOutcome {
                            module: module.into(),
                            message: crate::transport::describe(e),
                        });
                    }
                    (crate::transport::describe(e), None)
                }
                Ok(resp) => {
                    let status = resp.status();
                    let retry_after = retry::parse_retry_after(resp.headers().get(RETRY_AFTER));
                    let date = resp
                        .headers()
                        .get(DATE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
                        .map(|t| t.to_utc());
                    let body = match resp.bytes().await {
                        Ok(b) => b.to_vec(),
                        Err(e) => {
                            drop(permit);
                            if replay == Replay::Unsafe {
                                return Err(ZohoError::UnknownOutcome {
                                    module: module.into(),
                                    message: crate::transport::describe(e),
                                });
                            }
                            self.pause(module, &mut attempt, &crate::transport::describe(e), None, false).await?;
                            continue;
                        }
                    };
                    let answer = Answer { status, body, date };
                    match status.as_u16() {
                        429 => {
                            inner.limiter.throttled(permit);
                            counters_add(&inner.counters.throttled, 1);
                            self.pause(module, &mut attempt, "429 TOO_MANY_REQUESTS", retry_after, true).await?;
                            continue;
                        }
                        500..=599 => {
                            drop(permit);
                            (format!("HTTP {status}"), retry_after)
                        }
                        401 | 403 => {
                            drop(permit);
                            let (code, message, details) = answer.envelope();
                            match code.as_str() {
                                "INVALID_TOKEN" | "AUTHENTICATION_FAILURE" if !refreshed => {
                                    tracing::debug!(module, code = %code, "Zoho refused the token; refreshing once");
                                    refreshed = true;
                                    inner.auth.invalidate(token.generation, &inner.counters).await?;
                                    continue;
                                }
                                "OAUTH_SCOPE_MISMATCH" => {
                                    return Err(ZohoError::ScopeMismatch { module: module.into() })
                                }
                                "NO_PERMISSION" => {
                                    return Err(ZohoError::NoPermission { module: module.into(), details })
                                }
                                _ => return Err(ZohoError::Unauthorized { module: module.into(), code, message }),
                            }
                        }
                        _ => {
                            inner.limiter.succeeded();
                            drop(permit);
                            return Ok(answer);
                        }
                    }
                }
            };
            self.pause(module, &mut attempt, &transient, retry_after, false).await?;
        }
    }

    /// Waits before the next attempt, or gives up with the error for what kept failing.
    async fn pause(
        &self,
        module: &str,
        attempt: &mut u32,
        what: &str,
        retry_after: Option<Duration>,
        throttled: bool,
    ) -> Result<(), ZohoError> {
        match self.inner.backoff.delay(*attempt, retry_after) {
            Some(d) => {
                tracing::debug!(
                    module,
                    attempt = *attempt + 1,
                    error = what,
                    delay_ms = d.as_millis() as u64,
                    "Zoho call failed; retrying"
                );
                counters_add(&self.inner.counters.retries, 1);
                *attempt += 1;
                tokio::time::sleep(d).await;
                Ok(())
            }
            None if throttled => Err(ZohoError::Throttled { module: module.into(), attempts: *attempt + 1 }),
            None => {
                Err(ZohoError::Transport { module: module.into(), attempts: *attempt + 1, message: what.to_string() })
            }
        }
    }
}
