//! Configuration and secrets: what can be checked without a network or a store.

use super::{Check, Report};
use crate::config::Config;
use crate::secret::Secret;
use crate::store::redact_url;

pub fn checks(config: &Config, r: &mut Report) {
    let file = config.config_file.as_ref().map(|p| format!(", config file {}", p.display())).unwrap_or_default();
    r.push(Check::pass(
        "config",
        format!(
            "loaded (Zoho region {}, accounts {}, API {}{file}); store {}",
            config.zoho.region,
            config.zoho.accounts_url,
            config.zoho.api_domain,
            redact_url(&config.database_url)
        ),
    ));
    r.push(match &config.zoho.client_id {
        Some(id) => Check::pass("config.ZOHO_CLIENT_ID", format!("set ({id})")),
        None => Check::fail(
            "config.ZOHO_CLIENT_ID",
            "not set",
            "copy the Client ID of the Self Client from Zoho's API console into ZOHO_CLIENT_ID (environment or .env)",
        ),
    });
    r.push(match &config.moodle.url {
        Some(url) => Check::pass("config.MOODLE_URL", format!("set ({url})")),
        None => Check::fail(
            "config.MOODLE_URL",
            "not set",
            "set MOODLE_URL to the site's base URL, e.g. https://moodle.college.example",
        ),
    });
    let required = |name: &str, value: &Option<Secret>, how: &str| match value {
        Some(s) if !s.is_empty() => Check::pass(format!("secret.{name}"), "set (hidden)"),
        _ => Check::fail(
            format!("secret.{name}"),
            "not set",
            format!("{how}, then set {name} in the environment or .env"),
        ),
    };
    r.push(required("ZOHO_CLIENT_SECRET", &config.zoho.client_secret, "copy the Client Secret of the Self Client"));
    r.push(required(
        "ZOHO_REFRESH_TOKEN",
        &config.zoho.refresh_token,
        "make one in the API console (Self Client, scopes ZohoCRM.modules.ALL,ZohoCRM.settings.ALL; docs/zoho-setup.md)",
    ));
    r.push(required(
        "MOODLE_TOKEN",
        &config.moodle.token,
        "create a token for the sync user and the `zmsync` service (Site administration › Server › Web services › Manage tokens)",
    ));
    // The receiver runs without them, but the routes they guard are switched off: a warning, not a failure.
    let optional = |name: &str, value: &Option<Secret>, effect: &str, doc: &str| match value {
        Some(s) if !s.is_empty() => Check::pass(format!("secret.{name}"), "set (hidden)"),
        _ => Check::warn(
            format!("secret.{name}"),
            format!("not set: {effect}"),
            format!("set {name} if that source posts events ({doc})"),
        ),
    };
    r.push(optional(
        "ZOHO_WEBHOOK_HMAC_SECRET",
        &config.webhook.zoho,
        "`zmsync serve` answers 503 on the Zoho workflow webhook routes",
        "docs/zoho-setup.md",
    ));
    r.push(optional(
        "ZOHO_NOTIFY_TOKEN",
        &config.webhook.zoho_notify,
        "`zmsync serve` answers 503 on the Zoho Notification API route",
        "docs/zoho-setup.md",
    ));
    r.push(optional(
        "MOODLE_WEBHOOK_HMAC_SECRET",
        &config.webhook.moodle,
        "`zmsync serve` answers 503 on the Moodle event routes",
        "docs/moodle-setup.md",
    ));
}
