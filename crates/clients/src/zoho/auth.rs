//! OAuth for Zoho: the refresh-token grant, the access token cached in memory and in the
//! store (so separate runs share it), proactive refresh before expiry, and a single-flight refresh when
//! many calls see a 401 at once.
//!
//! Why single-flight: Zoho mints at most 10 access tokens per refresh token in 10 minutes and keeps 15 alive;
//! parallel refreshes exhaust the throttle (locking the integration out) or evict tokens other calls still
//! hold (§1.3). One async mutex guards the token; a caller that saw a 401 says which token generation failed,
//! and only refreshes if no one has replaced that token meanwhile.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio::sync::Mutex;

use super::counters_add;
use super::limits::Counters;
use super::{AuthFailure, ZohoError};
use crate::retry::Backoff;
use zmsync_core::secret::Secret;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One cached access token, keyed by the client id.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedToken {
    pub client_id: String,
    /// The token endpoint it came from; a token is reused only with the same accounts host.
    pub accounts_url: String,
    pub api_domain: String,
    pub access_token: Secret,
    pub expires_at: DateTime<Utc>,
    pub refreshed_at: DateTime<Utc>,
}

/// Where access tokens outlive the process (the store's `zoho_tokens`). Implementations must not block the
/// async runtime: the store is synchronous, so they hand the work to a store thread.
pub trait TokenCache: Send + Sync {
    fn load(&self, client_id: String) -> BoxFuture<'_, Option<CachedToken>>;
    fn save(&self, token: CachedToken) -> BoxFuture<'_, ()>;
}

/// Refresh this long before expiry, or a quarter of the token's lifetime if that is shorter
/// (a test server's 2-second tokens would otherwise never be used).
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

#[derive(Clone)]
pub(crate) struct Token {
    pub access: Secret,
    pub api_domain: String,
    /// Which token this is; a 401 names the generation that failed.
    pub generation: u64,
    refresh_at: DateTime<Utc>,
}

struct State {
    current: Option<Token>,
    generation: u64,
    cache_checked: bool,
}

pub(crate) struct Auth {
    http: reqwest::Client,
    accounts_url: String,
    client_id: String,
    client_secret: Secret,
    refresh_token: Secret,
    configured_api_domain: String,
    cache: Option<Arc<dyn TokenCache>>,
    backoff: Backoff,
    state: Mutex<State>,
}

fn refresh_at(expires_at: DateTime<Utc>, refreshed_at: DateTime<Utc>) -> DateTime<Utc> {
    let lifetime = (expires_at - refreshed_at).to_std().unwrap_or_default();
    let margin = REFRESH_MARGIN.min(lifetime / 4);
    expires_at - chrono::Duration::from_std(margin).unwrap_or_default()
}

impl Auth {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        http: reqwest::Client,
        accounts_url: String,
        client_id: String,
        client_secret: Secret,
        refresh_token: Secret,
        configured_api_domain: String,
        cache: Option<Arc<dyn TokenCache>>,
        backoff: Backoff,
    ) -> Auth {
        Auth {
            http,
            accounts_url,
            client_id,
            client_secret,
            refresh_token,
            configured_api_domain,
            cache,
            backoff,
            state: Mutex::new(State { current: None, generation: 0, cache_checked: false }),
        }
    }

    /// A usable access token: the one in memory, else the cached one, else a fresh one.
    pub async fn token(&self, counters: &Counters) -> Result<Token, ZohoError> {
        let mut st = self.state.lock().await;
        if let Some(t) = &st.current {
            if Utc::now() < t.refresh_at {
                return Ok(t.clone());
            }
        }
        if !st.cache_checked {
            st.cache_checked = true;
            if let Some(cache) = &self.cache {
                if let Some(c) = cache.load(self.client_id.clone()).await {
                    let at = refresh_at(c.expires_at, c.refreshed_at);
                    // A token from another accounts host (another DC, another test server) is not ours.
                    if c.accounts_url == self.accounts_url && Utc::now() < at {
                        tracing::debug!(expires_at = %c.expires_at, "reusing the cached Zoho access token");
                        st.generation += 1;
                        let t = Token {
                            access: c.access_token,
                            api_domain: c.api_domain,
                            generation: st.generation,
                            refresh_at: at,
                        };
                        st.current = Some(t.clone());
                        return Ok(t);
                    }
                }
            }
        }
        self.refresh_locked(&mut st, counters).await
    }

    /// Mints a new access token now, whatever is cached (`zmsync doctor`: proves the refresh token works), and
    /// caches it like any refresh. Returns its lifetime and API domain.
    pub async fn refresh_now(&self, counters: &Counters) -> Result<(Duration, String), ZohoError> {
        let mut st = self.state.lock().await;
        st.cache_checked = true;
        let t = self.refresh_locked(&mut st, counters).await?;
        let left = (t.refresh_at - Utc::now()).to_std().unwrap_or_default();
        Ok((left, t.api_domain))
    }

    /// The token of `generation` was refused (401). Refreshes unless another caller already replaced it.
    pub async fn invalidate(&self, generation: u64, counters: &Counters) -> Result<(), ZohoError> {
        let mut st = self.state.lock().await;
        if st.generation == generation {
            self.refresh_locked(&mut st, counters).await?;
        }
        Ok(())
    }

    async fn refresh_locked(&self, st: &mut State, counters: &Counters) -> Result<Token, ZohoError> {
        let started = Utc::now();
        let body = self.grant().await?;
        counters_add(&counters.refreshes, 1);
        let access = body.get("access_token").and_then(Value::as_str).unwrap_or_default();
        let expires_in = body.get("expires_in").and_then(Value::as_u64).unwrap_or(3600);
        let api_domain = match body.get("api_domain").and_then(Value::as_str) {
            Some(d) if !d.is_empty() => d.trim_end_matches('/').to_string(),
            _ => self.configured_api_domain.clone(),
        };
        if api_domain != self.configured_api_domain {
            tracing::warn!(
                configured = %self.configured_api_domain,
                token_api_domain = %api_domain,
                "Zoho's token answer names another API host than ZOHO_REGION/ZOHO_API_DOMAIN; using the token's \
                 (check ZOHO_REGION if this is unexpected)"
            );
        }
        let expires_at = started + chrono::Duration::seconds(expires_in as i64);
        st.generation += 1;
        let token = Token {
            access: Secret::new(access),
            api_domain: api_domain.clone(),
            generation: st.generation,
            refresh_at: refresh_at(expires_at, started),
        };
        st.current = Some(token.clone());
        tracing::info!(expires_in, "refreshed the Zoho access token");
        if let Some(cache) = &self.cache {
            cache
                .save(CachedToken {
                    client_id: self.client_id.clone(),
                    accounts_url: self.accounts_url.clone(),
                    api_domain,
                    access_token: token.access.clone(),
                    expires_at,
                    refreshed_at: started,
                })
                .await;
        }
        Ok(token)
    }

    /// POSTs the refresh-token grant (form body, §1.1), retrying only transport failures and 5xx. Zoho's OAuth
    /// errors come as a body with `error` (status 200 or 400), so the body decides, not the status.
    async fn grant(&self) -> Result<Value, ZohoError> {
        let url = format!("{}/oauth/v2/token", self.accounts_url);
        let mut attempt = 0;
        loop {
            let form = [
                ("grant_type", "refresh_token"),
                ("client_id", self.client_id.as_str()),
                ("client_secret", self.client_secret.expose()),
                ("refresh_token", self.refresh_token.expose()),
            ];
            let transient = match self.http.post(&url).form(&form).send().await {
                Ok(resp) => {
                    let status = resp.status();
                    match resp.bytes().await {
                        Ok(bytes) if !status.is_server_error() => {
                            return parse_grant(status.as_u16(), &bytes, &self.accounts_url)
                        }
                        Ok(_) => format!("HTTP {status}"),
                        Err(e) => crate::transport::describe(e),
                    }
                }
                Err(e) => crate::transport::describe(e),
            };
            match self.backoff.delay(attempt, None) {
                Some(d) => {
                    tracing::debug!(attempt, error = %transient, "Zoho token endpoint failed; retrying");
                    tokio::time::sleep(d).await;
                    attempt += 1;
                }
                None => {
                    return Err(ZohoError::Auth {
                        failure: AuthFailure::Unreachable(transient),
                        accounts_url: self.accounts_url.clone(),
                    })
                }
            }
        }
    }

    pub fn accounts_url(&self) -> &str {
        &self.accounts_url
    }
}

/// Reads a token-endpoint answer: the token, or the typed reason it was refused.
fn parse_grant(status: u16, bytes: &[u8], accounts_url: &str) -> Result<Value, ZohoError> {
    let body: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    if body.get("access_token").and_then(Value::as_str).is_some_and(|t| !t.is_empty()) {
        return Ok(body);
    }
    let error = body.get("error").and_then(Value::as_str).unwrap_or("").to_string();
    let failure = match error.as_str() {
        "invalid_code" => AuthFailure::InvalidCode,
        "invalid_client" => AuthFailure::InvalidClient,
        "Access Denied" => AuthFailure::Throttled,
        "" => AuthFailure::Other(format!("HTTP {status} without an access token")),
        other => AuthFailure::Other(other.to_string()),
    };
    Err(ZohoError::Auth { failure, accounts_url: accounts_url.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_answers_become_typed_errors() {
        let ok = parse_grant(
            200,
            br#"{"access_token":"1000.x","expires_in":3600,"api_domain":"https://www.zohoapis.eu"}"#,
            "x",
        );
        assert!(ok.is_ok());
        for (body, want) in [
            (&br#"{"error":"invalid_code"}"#[..], "ZOHO_REFRESH_TOKEN"),
            (br#"{"error":"invalid_client"}"#, "ZOHO_CLIENT_ID"),
            (
                br#"{"error":"Access Denied","error_description":"You have made too many requests continuously."}"#,
                "10 minutes",
            ),
            (b"<html>", "without an access token"),
        ] {
            let e = parse_grant(400, body, "https://accounts.zoho.eu").unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn refresh_margin_is_five_minutes_or_a_quarter_of_the_lifetime() {
        let t0 = Utc::now();
        assert_eq!(refresh_at(t0 + chrono::Duration::seconds(3600), t0), t0 + chrono::Duration::seconds(3300));
        assert_eq!(refresh_at(t0 + chrono::Duration::seconds(4), t0), t0 + chrono::Duration::seconds(3));
    }
}
