//! The Moodle web-service client (Moodle's REST protocol; docs/plugin-contract.md).
//!
//! - this file: the REST call itself — POST form-encoded to `/webservice/rest/server.php`, a Moodle exception
//!   (HTTP 200 with `exception`) as a typed error, transport failures retried with the same short backoff
//!   as Zoho's, counters of calls and of form variables per call;
//! - [`form`]: PHP bracket encoding; [`batch`]: splitting rows so every request stays under `max_input_vars`
//!   and the plugin's 500-row limit; [`calls`]: the typed functions snapshot and apply use.
//!
//! `wsfunction` and `moodlewsrestformat` go in the query string, the arguments in the body, and so does
//! `wstoken`: a token in a URL lands in web-server access logs and in any log line that prints a URL
//! (Moodle recommends the body for exactly this reason). PHP counts `$_GET` and `$_POST` separately,
//! so the token costs one variable of the body's budget, which [`batch`] accounts for.

pub mod batch;
pub mod calls;
pub mod form;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::credentials::ClientConfigError;
use crate::retry::{self, Backoff};
use zmsync_core::secret::Secret;

pub use batch::Batcher;
pub use calls::{SiteCheck, Warning};

/// How to reach Moodle: site URL and web-service token (`config` builds it from the environment).
#[derive(Debug, Clone)]
pub struct MoodleConfig {
    pub url: Option<String>,
    pub token: Option<Secret>,
}

impl MoodleConfig {
    pub fn credentials(&self) -> Result<(&str, &Secret), ClientConfigError> {
        match (&self.url, &self.token) {
            (Some(url), Some(token)) => Ok((url, token)),
            _ => {
                let mut missing = Vec::new();
                if self.url.is_none() {
                    missing.push("MOODLE_URL");
                }
                if self.token.is_none() {
                    missing.push("MOODLE_TOKEN");
                }
                Err(ClientConfigError::Missing {
                    missing: missing.join(", "),
                    hint: "set them in the environment or in .env (docs/moodle-plugin.md shows how to make the token)"
                        .into(),
                })
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MoodleError {
    #[error(transparent)]
    Config(#[from] ClientConfigError),
    #[error("Moodle {function}: {errorcode}: {message}{}{}", .debuginfo.as_ref().map(|d| format!(" ({d})")).unwrap_or_default(), exception_hint(.errorcode))]
    Exception { function: String, errorcode: String, message: String, debuginfo: Option<String> },
    #[error("Moodle {function} failed after {attempts} attempts: {message}\n  hint: check MOODLE_URL, that the site is up and that web services and the REST protocol are enabled")]
    Transport { function: String, attempts: u32, message: String },
    /// A non-idempotent write (e.g. `core_user_create_users`) whose connection failed after it was sent: it may
    /// have been applied. The caller looks the rows up by identity before sending them again.
    #[error("the outcome of Moodle {function} is unknown ({message}): it may have been applied")]
    UnknownOutcome { function: String, message: String },
    #[error("Moodle {function} answered something unexpected: {message}")]
    Decode { function: String, message: String },
    #[error("one {function} row needs {vars} form variables, more than moodle.max_input_vars allows ({limit})\n  hint: raise PHP's max_input_vars on the Moodle server and the setting moodle.max_input_vars with it")]
    RowTooLarge { function: String, vars: usize, limit: usize },
    #[error("the Moodle site is not ready for zmsync:\n  - {}", .problems.join("\n  - "))]
    SiteNotReady { problems: Vec<String> },
}

fn exception_hint(code: &str) -> &'static str {
    match code {
        "invalidtoken" => "\n  hint: check MOODLE_TOKEN (Site administration › Server › Web services › Manage tokens)",
        "accessexception" => "\n  hint: the token's service must include this function and the token must be valid (not expired, IP allowed); see docs/moodle-plugin.md",
        "nopermissions" | "required_capability_exception" => "\n  hint: give the web-service user's role the capability named above",
        "invalidparameter" => "\n  hint: Moodle refused a value; add the web-service user to $CFG->debugusers to see which",
        _ => "",
    }
}

/// The errorcode of `\moodle_exception("Message was not sent.")` (lib/classes/message/manager.php): a message
/// queued in a transaction failed when the transaction committed, so what the call wrote is saved.
pub const MESSAGE_NOT_SENT: &str = "Message was not sent.";

/// Whether an exception was raised after the call's changes were committed (they stay): today the course
/// welcome message of a new manual enrolment on a site without working outgoing mail. Not a rejection, and
/// never a reason to split the batch.
pub fn raised_after_commit(errorcode: &str, message: &str) -> bool {
    errorcode == MESSAGE_NOT_SENT || message.trim_start_matches("error/") == MESSAGE_NOT_SENT
}

impl MoodleError {
    /// The Moodle `errorcode`, for exceptions.
    pub fn errorcode(&self) -> Option<&str> {
        match self {
            MoodleError::Exception { errorcode, .. } => Some(errorcode),
            _ => None,
        }
    }
}

/// Whether a call may be sent again after its connection failed mid-way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Reads, updates, enrolments, plugin upserts and deletes: idempotent.
    Safe,
    /// Creates (users, courses, categories): a lost answer is an unknown outcome.
    Unsafe,
}

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Requests in flight at once (a PHP site has few workers; 4 keeps it responsive for people).
    pub max_in_flight: usize,
    pub backoff: Backoff,
    pub timeout: Duration,
    /// PHP's `max_input_vars` of the site (`moodle.max_input_vars`).
    pub max_input_vars: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            max_in_flight: 4,
            backoff: Backoff::default(),
            timeout: Duration::from_secs(120),
            max_input_vars: 1000,
        }
    }
}

/// Calls and form variables per function.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FunctionStats {
    pub calls: u64,
    /// The most form variables one call sent (body).
    pub max_vars: usize,
    pub total_vars: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MoodleStats {
    pub calls: u64,
    pub retries: u64,
    pub by_function: BTreeMap<String, FunctionStats>,
}

impl MoodleStats {
    pub fn max_vars(&self) -> usize {
        self.by_function.values().map(|f| f.max_vars).max().unwrap_or(0)
    }
}

struct Inner {
    http: reqwest::Client,
    endpoint: String,
    token: Secret,
    opts: ClientOptions,
    sem: Semaphore,
    retries: AtomicU64,
    stats: Mutex<BTreeMap<String, FunctionStats>>,
    /// The `Date` of the last answer and the local time halfway through its request (for the clock check).
    last_date: Mutex<Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)>>,
}

/// The Moodle client. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    pub fn new(config: &MoodleConfig, opts: ClientOptions) -> Result<Client, MoodleError> {
        let (url, token) = config.credentials()?;
        let http = reqwest::Client::builder()
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| MoodleError::Transport { function: "client".into(), attempts: 0, message: e.to_string() })?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                endpoint: format!("{}/webservice/rest/server.php", url.trim_end_matches('/')),
                token: token.clone(),
                sem: Semaphore::new(opts.max_in_flight.max(1)),
                opts,
                retries: AtomicU64::new(0),
                stats: Mutex::new(BTreeMap::new()),
                last_date: Mutex::new(None),
            }),
        })
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.opts
    }

    pub fn stats(&self) -> MoodleStats {
        let by_function = self.inner.stats.lock().unwrap_or_else(|p| p.into_inner()).clone();
        MoodleStats {
            calls: by_function.values().map(|f| f.calls).sum(),
            retries: self.inner.retries.load(Ordering::Relaxed),
            by_function,
        }
    }

    /// Calls an idempotent function. `args` is a JSON object of arguments; the answer is the decoded JSON
    /// (`Value::Null` for functions that answer `null`).
    pub async fn call(&self, function: &str, args: &Value) -> Result<Value, MoodleError> {
        self.call_with(function, args, Replay::Safe, &[]).await
    }

    /// Calls `function` with `settings` (e.g. `moodlewssettingraw=1`) in the query string.
    pub async fn call_with(
        &self,
        function: &str,
        args: &Value,
        replay: Replay,
        settings: &[(&str, &str)],
    ) -> Result<Value, MoodleError> {
        let inner = &*self.inner;
        let mut pairs = vec![("wstoken".to_string(), inner.token.expose().to_string())];
        pairs.extend(form::pairs(args));
        let vars = pairs.len();
        let body = form::encode(&pairs);
        drop(pairs);
        let mut query: Vec<(&str, &str)> = vec![("wsfunction", function), ("moodlewsrestformat", "json")];
        query.extend_from_slice(settings);
        let mut attempt: u32 = 0;
        loop {
            let permit = inner.sem.acquire().await.expect("semaphore is never closed");
            self.count(function, vars);
            let started = chrono::Utc::now();
            let sent = inner
                .http
                .post(&inner.endpoint)
                .query(&query)
                .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body.clone())
                .send()
                .await;
            let (problem, retry_after) = match sent {
                Err(e) => {
                    if replay == Replay::Unsafe && !e.is_connect() {
                        return Err(MoodleError::UnknownOutcome {
                            function: function.into(),
                            message: crate::transport::describe(e),
                        });
                    }
                    (crate::transport::describe(e), None)
                }
                Ok(resp) => {
                    self.note_date(&resp, started);
                    let status = resp.status();
                    let retry_after = retry::parse_retry_after(resp.headers().get(reqwest::header::RETRY_AFTER));
                    match resp.bytes().await {
                        Err(e) if replay == Replay::Unsafe => {
                            return Err(MoodleError::UnknownOutcome {
                                function: function.into(),
                                message: crate::transport::describe(e),
                            })
                        }
                        Err(e) => (crate::transport::describe(e), None),
                        Ok(bytes) if status.is_success() => match serde_json::from_slice::<Value>(&bytes) {
                            Ok(v) => {
                                drop(permit);
                                return exception_or(function, v);
                            }
                            // A 200 that is not JSON: a PHP notice before the body, a proxy page…
                            Err(e) => (format!("unparsable answer ({e}): {}", snippet(&bytes)), None),
                        },
                        Ok(bytes) => (format!("HTTP {status}: {}", snippet(&bytes)), retry_after),
                    }
                }
            };
            drop(permit);
            match inner.opts.backoff.delay(attempt, retry_after) {
                Some(d) => {
                    tracing::debug!(function, attempt = attempt + 1, error = %problem, "Moodle call failed; retrying");
                    inner.retries.fetch_add(1, Ordering::Relaxed);
                    attempt += 1;
                    tokio::time::sleep(d).await;
                }
                None => {
                    return Err(MoodleError::Transport {
                        function: function.into(),
                        attempts: attempt + 1,
                        message: problem,
                    })
                }
            }
        }
    }

    fn note_date(&self, resp: &reqwest::Response, started: chrono::DateTime<chrono::Utc>) {
        let date = resp.headers().get(reqwest::header::DATE).and_then(|v| v.to_str().ok());
        if let Some(server) = date.and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok()) {
            let local = started + (chrono::Utc::now() - started) / 2;
            *self.inner.last_date.lock().unwrap_or_else(|p| p.into_inner()) = Some((server.to_utc(), local));
        }
    }

    /// The `Date` header of the last answer and the local time halfway through that request: a tokened call's
    /// answer tells the site's clock (a call without a token would be logged by Moodle as an `invalidtoken`).
    pub fn server_date(&self) -> Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> {
        *self.inner.last_date.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, function: &str, vars: usize) {
        let mut s = self.inner.stats.lock().unwrap_or_else(|p| p.into_inner());
        let f = s.entry(function.to_string()).or_default();
        f.calls += 1;
        f.max_vars = f.max_vars.max(vars);
        f.total_vars += vars as u64;
    }

    /// A batcher for `function` under this site's limits.
    pub fn batcher(&self, function: &str, max_rows: usize) -> Batcher {
        Batcher::new(function, self.inner.opts.max_input_vars, max_rows)
    }
}

/// A body with `exception` is an error (key on `errorcode`, never on the class).
fn exception_or(function: &str, v: Value) -> Result<Value, MoodleError> {
    match &v {
        Value::Object(m) if m.contains_key("exception") => {
            let text = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
            Err(MoodleError::Exception {
                function: function.to_string(),
                errorcode: text("errorcode").unwrap_or_else(|| text("exception").unwrap_or_default()),
                message: text("message").unwrap_or_default(),
                debuginfo: text("debuginfo"),
            })
        }
        _ => Ok(v),
    }
}

fn snippet(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(120)]);
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn exceptions_are_typed_and_null_is_fine() {
        let e = exception_or(
            "core_user_create_users",
            json!({"exception":"core\\exception\\invalid_parameter_exception","errorcode":"invalidparameter",
                   "message":"Invalid parameter value detected","debuginfo":"Username already exists: alice"}),
        )
        .unwrap_err();
        assert_eq!(e.errorcode(), Some("invalidparameter"));
        let text = e.to_string();
        assert!(text.contains("Username already exists: alice") && text.contains("core_user_create_users"), "{text}");
        assert_eq!(exception_or("enrol_manual_enrol_users", Value::Null).unwrap(), Value::Null);
        assert_eq!(exception_or("f", json!({"warnings": []})).unwrap(), json!({"warnings": []}));
        let e = exception_or("f", json!({"exception":"x","errorcode":"invalidtoken","message":"Invalid token"}))
            .unwrap_err();
        assert_eq!(e.errorcode(), Some("invalidtoken"));
    }
}
