//! Zoho: the refresh token mints an access token (cached in the store like any run's), the enabled modules
//! exist, and every mapped field (`mapping.fields`) exists in its module.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::{clock, first_line, Check, NET_TIMEOUT};
use crate::config::Config;
use crate::mapping::ZohoNames;
use crate::model::Entity;
use crate::settings::Settings;
use crate::zoho::{AuthFailure, Backoff, Client, ClientOptions, TokenCache, ZohoError};

pub async fn checks(
    config: &Config,
    settings: Result<&Settings, &str>,
    cache: Option<Arc<dyn TokenCache>>,
) -> Vec<Check> {
    let mut out = Vec::new();
    let opts =
        ClientOptions { max_in_flight: 4, backoff: Backoff { tries: 2, ..Backoff::default() }, timeout: NET_TIMEOUT };
    let modules = module_plan(settings);
    let client = match Client::new(&config.zoho, opts, cache) {
        Ok(c) => c,
        Err(e) => {
            out.push(Check::skip("zoho.token", first_line(&e.to_string())));
            skip_modules(&mut out, &modules, "no Zoho credentials");
            out.push(clock::check("clock.zoho", &format!("{}/crm/v8/settings/modules", config.zoho.api_domain)).await);
            return out;
        }
    };
    let host = host_of(&config.zoho.accounts_url);
    let api_domain = match client.refresh_now().await {
        Ok((left, api_domain)) => {
            out.push(Check::pass(
                "zoho.token",
                format!(
                    "refreshed at {host}; API host {api_domain}; the new token is cached in the store (reused for {} min)",
                    left.as_secs() / 60
                ),
            ));
            Some(api_domain)
        }
        Err(e) => {
            out.push(token_failure(&host, &e));
            None
        }
    };
    match (&api_domain, &modules) {
        (None, _) => skip_modules(&mut out, &modules, "no Zoho token"),
        (Some(_), Err(why)) => {
            out.push(Check::skip("zoho.modules", format!("{why}: cannot tell which modules to check")))
        }
        (Some(_), Ok(plan)) => check_modules(&client, plan, &mut out).await,
    }
    let base = api_domain.unwrap_or_else(|| config.zoho.api_domain.clone());
    out.push(clock::check("clock.zoho", &format!("{base}/crm/v8/settings/modules")).await);
    out
}

/// One enabled entity's Zoho module and its mapped fields (`canonical → API name`).
struct ModuleToCheck {
    entity: &'static str,
    module: String,
    fields: Vec<(String, String)>,
}

fn module_plan(settings: Result<&Settings, &str>) -> Result<Vec<ModuleToCheck>, String> {
    let settings = settings.map_err(str::to_string)?;
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for e in Entity::ALL {
        let kind = e.kinds().0;
        // Teaching reads BTEC_Classes through the class entity's names: checked once, as `class`.
        if !e.enabled(settings) || !seen.insert(kind) {
            continue;
        }
        let entity = kind.field_map_entity().unwrap_or("");
        let names = ZohoNames::for_kind(settings, kind);
        let fields = settings
            .fields
            .get(entity)
            .map(|m| m.iter().filter(|(c, _)| c.as_str() != "module").map(|(c, n)| (c.clone(), n.clone())).collect())
            .unwrap_or_default();
        out.push(ModuleToCheck { entity: kind.name(), module: names.module().to_string(), fields });
    }
    Ok(out)
}

fn skip_modules(out: &mut Vec<Check>, modules: &Result<Vec<ModuleToCheck>, String>, why: &str) {
    match modules {
        Ok(plan) => {
            for m in plan {
                out.push(Check::skip(format!("zoho.module.{}", m.module), why));
            }
        }
        Err(_) => out.push(Check::skip("zoho.modules", why)),
    }
}

async fn check_modules(client: &Client, plan: &[ModuleToCheck], out: &mut Vec<Check>) {
    let org = match client.modules().await {
        Ok(m) => m,
        Err(e) => {
            out.push(api_failure("zoho.modules", &e));
            return;
        }
    };
    let names: BTreeSet<&str> = org.iter().map(|m| m.api_name.as_str()).collect();
    for m in plan {
        let name = format!("zoho.module.{}", m.module);
        let setting = format!("mapping.fields.{}.module", m.entity);
        let Some(meta) = org.iter().find(|o| o.api_name == m.module) else {
            let known: Vec<&str> = names.iter().copied().take(15).collect();
            let more = if names.len() > known.len() { ", …" } else { "" };
            out.push(Check::fail(
                &name,
                format!("module {} ({setting}) does not exist in Zoho; the org has: {}{more}", m.module, known.join(", ")),
                format!(
                    "set the module's API name with `zmsync settings set mapping.fields '{{\"{}\":{{\"module\":\"<API name>\"}}}}'`, or switch it off in modules.enabled",
                    m.entity
                ),
            ));
            continue;
        };
        if !meta.api_supported {
            out.push(Check::fail(
                &name,
                format!("module {} is not available through Zoho's API (api_supported: false)", m.module),
                format!("point {setting} at a module the API can read, or switch it off in modules.enabled"),
            ));
            continue;
        }
        match client.fields(&m.module).await {
            Ok(None) => out.push(Check::warn(
                &name,
                format!(
                    "module present, but Zoho returned no field metadata (204): {} mapped fields not checked",
                    m.fields.len()
                ),
                "check that the integration user's profile can see the module's fields",
            )),
            Ok(Some(fields)) => {
                let have: BTreeSet<&str> = fields.iter().map(|f| f.api_name.as_str()).collect();
                let missing: Vec<String> = m
                    .fields
                    .iter()
                    .filter(|(_, api)| !have.contains(api.as_str()))
                    .map(|(c, api)| format!("{api} (mapping.fields.{}.{c})", m.entity))
                    .collect();
                if missing.is_empty() {
                    out.push(Check::pass(&name, format!("module present, all {} mapped fields exist", m.fields.len())));
                } else {
                    let (c, _) = m.fields.iter().find(|(_, api)| !have.contains(api.as_str())).expect("one missing");
                    out.push(Check::fail(
                        &name,
                        format!("{}: no field {}", m.module, missing.join(", ")),
                        format!(
                            "use the field's API name (Zoho Setup › Developer Hub › APIs › API names): `zmsync settings set mapping.fields '{{\"{}\":{{\"{c}\":\"<API name>\"}}}}'`",
                            m.entity
                        ),
                    ));
                }
            }
            Err(e) => out.push(api_failure(&name, &e)),
        }
    }
}

fn token_failure(host: &str, e: &ZohoError) -> Check {
    let name = "zoho.token";
    match e {
        ZohoError::Auth { failure, .. } => match failure {
            AuthFailure::InvalidCode => Check::fail(
                name,
                format!("invalid_code from {host}: the refresh token is wrong or revoked"),
                "make a new one in the API console (Self Client) and set ZOHO_REFRESH_TOKEN",
            ),
            AuthFailure::InvalidClient => Check::fail(
                name,
                format!("invalid_client from {host}: the client id or secret is wrong, or the client belongs to another data centre"),
                "check ZOHO_CLIENT_ID and ZOHO_CLIENT_SECRET, and that ZOHO_REGION is the data centre the client was made in",
            ),
            AuthFailure::Throttled => Check::fail(
                name,
                format!("Access Denied from {host}: more than 10 access tokens were requested in 10 minutes"),
                "wait 10 minutes, and make sure no other program refreshes with this refresh token",
            ),
            AuthFailure::Other(what) => Check::fail(
                name,
                format!("{host} refused the refresh: {what}"),
                "check ZOHO_CLIENT_ID, ZOHO_CLIENT_SECRET and ZOHO_REFRESH_TOKEN",
            ),
            AuthFailure::Unreachable(what) => Check::fail(
                name,
                format!("{host} could not be reached: {what}"),
                "check the network, ZOHO_REGION and ZOHO_ACCOUNTS_URL",
            ),
        },
        other => Check::fail(name, first_line(&other.to_string()), hint_of(&other.to_string())),
    }
}

fn api_failure(name: &str, e: &ZohoError) -> Check {
    match e {
        ZohoError::ScopeMismatch { .. } => Check::fail(
            name,
            "the token lacks the scope to read Zoho's metadata (OAUTH_SCOPE_MISMATCH)",
            "make a new refresh token with the scopes ZohoCRM.modules.ALL,ZohoCRM.settings.ALL and set ZOHO_REFRESH_TOKEN",
        ),
        other => Check::fail(name, first_line(&other.to_string()), hint_of(&other.to_string())),
    }
}

/// The `hint:` line the client's errors carry, or a generic fix.
fn hint_of(s: &str) -> String {
    crate::error::split_hints(s)
        .1
        .into_iter()
        .next()
        .unwrap_or_else(|| "check the network and https://status.zoho.com, then run `zmsync doctor` again".to_string())
}

pub(crate) fn host_of(url: &str) -> String {
    url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_else(|| url.to_string())
}
