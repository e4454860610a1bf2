//! OAuth: the refresh-token grant on `/oauth/v2/token` and the `Zoho-oauthtoken` check on API calls (§1).

use std::time::{Duration, Instant};

use serde_json::json;

use super::envelope::error;
use super::shared::Shared;
use crate::http::{HttpRequest, HttpResponse};

const THROTTLE_WINDOW: Duration = Duration::from_secs(600);
const THROTTLE_MAX: usize = 10;

fn param(req: &HttpRequest, name: &str) -> Option<String> {
    let from_body = form_urlencoded::parse(&req.body).find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    from_body.or_else(|| req.query_pairs().into_iter().find(|(k, _)| k == name).map(|(_, v)| v))
}

/// `POST /oauth/v2/token`; parameters in a form body or the query string (both are seen in the wild).
pub fn token_grant(shared: &Shared, req: &HttpRequest) -> HttpResponse {
    let fail = |body: serde_json::Value, status: u16| {
        shared.stats_mut().token_refresh_failures += 1;
        HttpResponse::json(status, &body)
    };
    if req.method != "POST" {
        return error(405, "INVALID_REQUEST_METHOD", json!({}), "The http request method type is not a valid one");
    }
    let grant = param(req, "grant_type").unwrap_or_default();
    if grant != "refresh_token" {
        // The fake holds no grant codes, so a code grant always fails the way a spent code does.
        let err = if grant == "authorization_code" { "invalid_code" } else { "unsupported_grant_type" };
        return fail(json!({"error": err}), 200);
    }
    let creds = &shared.creds;
    if param(req, "client_id").as_deref() != Some(&creds.client_id)
        || param(req, "client_secret").as_deref() != Some(&creds.client_secret)
    {
        return fail(json!({"error": "invalid_client"}), 200);
    }
    if param(req, "refresh_token").as_deref() != Some(&creds.refresh_token) {
        return fail(json!({"error": "invalid_code"}), 200);
    }
    let opts = shared.opts().clone();
    let mut auth = shared.auth();
    let now = Instant::now();
    while auth.refreshes.front().is_some_and(|t| now.duration_since(*t) > THROTTLE_WINDOW) {
        auth.refreshes.pop_front();
    }
    if opts.refresh_throttle && auth.refreshes.len() >= THROTTLE_MAX {
        drop(auth);
        return fail(
            json!({"error": "Access Denied",
                   "error_description": "You have made too many requests continuously. Please try again after some time.",
                   "status": "failure"}),
            400,
        );
    }
    auth.refreshes.push_back(now);
    let token = auth.mint(opts.token_ttl, opts.max_active_tokens);
    drop(auth);
    shared.stats_mut().token_refreshes += 1;
    HttpResponse::json(
        200,
        &json!({
            "access_token": token,
            "scope": "ZohoCRM.modules.ALL ZohoCRM.settings.ALL ZohoCRM.notifications.ALL ZohoCRM.coql.READ",
            "api_domain": shared.base_url(),
            "token_type": "Bearer",
            "expires_in": opts.token_ttl.as_secs().max(1),
        }),
    )
}

/// Checks `Authorization: Zoho-oauthtoken <token>`; the error answer when it does not pass.
pub fn check(shared: &Shared, req: &HttpRequest) -> Result<(), HttpResponse> {
    let auth_failure = || error(401, "AUTHENTICATION_FAILURE", json!({}), "Authentication failed");
    let header = req.header("authorization").unwrap_or_default().trim();
    let Some((scheme, token)) = header.split_once(' ') else { return Err(auth_failure()) };
    if !scheme.eq_ignore_ascii_case("Zoho-oauthtoken") || token.trim().is_empty() {
        return Err(auth_failure());
    }
    match shared.auth().valid(token.trim()) {
        Some(true) => Ok(()),
        Some(false) if shared.opts().expiry_as_auth_failure => Err(auth_failure()),
        _ => Err(error(401, "INVALID_TOKEN", json!({}), "invalid oauth token")),
    }
}
