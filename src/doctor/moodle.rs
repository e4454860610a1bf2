//! Moodle: the token works (site info), the token's service allows every function the sync calls (the list
//! lives in the Moodle client), and the dashboard plugin answers with the contract version this zmsync speaks.

use super::zoho::host_of;
use super::{clock, first_line, Check, NET_TIMEOUT};
use crate::config::Config;
use crate::mapping::person::IDENTITY_FIELDS;
use crate::moodle::calls::{needed_functions, PluginInfo, PluginSite, CONTRACT_VERSION, PLUGIN};
use crate::moodle::{Client, ClientOptions, MoodleError};
use crate::retry::Backoff;
use crate::settings::Settings;

pub async fn checks(config: &Config, settings: Result<&Settings, &str>) -> Vec<Check> {
    let mut out = Vec::new();
    let opts = ClientOptions {
        max_in_flight: 2,
        backoff: Backoff { tries: 2, ..Backoff::default() },
        timeout: NET_TIMEOUT,
        max_input_vars: settings.map(|s| s.max_input_vars).unwrap_or(1000),
    };
    let skip_rest = |out: &mut Vec<Check>, why: &str| {
        out.push(Check::skip("moodle.functions", why));
        out.push(Check::skip("moodle.plugin", why));
        out.push(Check::skip("moodle.identity", why));
        out.push(Check::skip("moodle.mail", why));
    };
    let client = match Client::new(&config.moodle, opts) {
        Ok(c) => c,
        Err(e) => {
            let why = e.to_string().lines().next().unwrap_or_default().to_string();
            out.push(Check::skip("moodle.site", why));
            skip_rest(&mut out, "no Moodle credentials");
            out.push(Check::skip("clock.moodle", "MOODLE_URL is not set"));
            return out;
        }
    };
    let url = config.moodle.url.clone().unwrap_or_default();
    let host = host_of(&url);
    match client.site_info().await {
        Err(e) => {
            out.push(site_failure(&host, &e));
            skip_rest(&mut out, "no site info");
        }
        Ok(site) => {
            out.push(Check::pass(
                "moodle.site",
                format!(
                    "'{}' (Moodle {}) as web-service user {} (id {})",
                    site.sitename, site.release, site.username, site.userid
                ),
            ));
            let needed = needed_functions();
            let missing: Vec<&str> =
                needed.iter().filter(|f| !site.functions.contains(f.as_str())).map(String::as_str).collect();
            if missing.is_empty() {
                out.push(Check::pass(
                    "moodle.functions",
                    format!("all {} functions zmsync calls are allowed", needed.len()),
                ));
            } else {
                out.push(Check::fail(
                    "moodle.functions",
                    format!("the token's service does not allow: {}", missing.join(", ")),
                    "add them to the token's service, or use the plugin's `zmsync` service, which has them all (docs/moodle-setup.md)",
                ));
            }
            let get_info = format!("{PLUGIN}_get_info");
            if missing.contains(&get_info.as_str()) {
                let why = format!("{get_info} is not allowed, so the plugin cannot be asked");
                out.push(Check::skip("moodle.plugin", &why));
                out.push(Check::skip("moodle.identity", &why));
                out.push(Check::skip("moodle.mail", why));
            } else {
                let info = client.plugin_info().await;
                out.push(plugin(&info));
                let site_info = info.as_ref().ok().map(|i| &i.site);
                out.push(identity(site.userissiteadmin, site_info));
                out.push(mail(site_info));
            }
        }
    }
    // The clock from the answer of the tokened calls above: a call without a token would be logged by Moodle as
    // an `invalidtoken` exception on every run.
    out.push(match client.server_date() {
        Some((server, local)) => clock::verdict("clock.moodle", &host, server, local),
        None => Check::skip("clock.moodle", format!("no answer from {host} with a Date header")),
    });
    out
}

/// Mapped user fields Moodle returns only when *Show user identity* lists them (or to a site admin's token).
fn identity(admin: bool, site: Option<&PluginSite>) -> Check {
    let name = "moodle.identity";
    let mapped: Vec<&str> = IDENTITY_FIELDS.iter().map(|(_, f)| *f).collect();
    if admin {
        return Check::pass(name, "the token's user is a site admin: it reads every mapped user field");
    }
    let Some(shown) = site.and_then(|s| s.identity_fields.as_ref()) else {
        return Check::skip(
            name,
            format!("the plugin does not report Show user identity (upgrade it to check {})", mapped.join(", ")),
        );
    };
    let hidden: Vec<&str> = mapped.iter().copied().filter(|f| !shown.iter().any(|s| s == f)).collect();
    if hidden.is_empty() {
        return Check::pass(name, format!("Show user identity ({}) includes every mapped field", shown.join(",")));
    }
    let mut wanted = shown.clone();
    wanted.extend(hidden.iter().map(|f| f.to_string()));
    Check::warn(
        name,
        format!(
            "the token cannot read {} (Show user identity is `{}`): zmsync treats it as unknown, so it is set on new \
             users but never compared or updated",
            hidden.join(", "),
            shown.join(",")
        ),
        format!(
            "add it to Site administration › Users › Permissions › User policies › Show user identity, or \
             `php admin/cli/cfg.php --name=showuseridentity --set={}` (docs/moodle-setup.md)",
            wanted.join(",")
        ),
    )
}

/// Manual enrolments send a course welcome message (Moodle 4.4+); without outgoing mail each new enrolment is
/// saved and then answered with "Message was not sent.".
fn mail(site: Option<&PluginSite>) -> Check {
    let name = "moodle.mail";
    let Some((Some(mail), Some(default), Some(courses))) =
        site.map(|s| (s.mail.as_deref(), s.welcome_default, s.welcome_courses))
    else {
        return Check::skip(name, "the plugin does not report the mail settings (upgrade it to check them)");
    };
    if mail != "php" || (!default && courses == 0) {
        let welcome = if default || courses > 0 { "on" } else { "off" };
        return Check::pass(name, format!("outgoing mail: {mail}; course welcome messages {welcome}"));
    }
    Check::warn(
        name,
        format!(
            "manual enrolments send a course welcome message ({courses} courses now{}) but no SMTP server is set up: \
             if PHP cannot mail, Moodle saves each new enrolment and then answers \"Message was not sent.\" \
             (zmsync reports them applied, with a warning)",
            if default { ", and new courses by default" } else { "" }
        ),
        "set up outgoing mail (Site administration › Server › Email › Outgoing mail configuration), or turn the \
         welcome message off (Site administration › Plugins › Enrolments › Manual enrolments › Send course welcome \
         message, and on each course's manual enrolment method); see docs/moodle-setup.md",
    )
}

fn plugin(info: &Result<PluginInfo, MoodleError>) -> Check {
    match info {
        Ok(info) if info.contract_version == CONTRACT_VERSION => Check::pass(
            "moodle.plugin",
            format!("{PLUGIN} {} (version {}), contract version {}", info.release, info.version, info.contract_version),
        ),
        Ok(info) => Check::fail(
            "moodle.plugin",
            format!("{PLUGIN} speaks contract version {}; this zmsync needs {CONTRACT_VERSION}", info.contract_version),
            "upgrade the plugin or zmsync so that they match (docs/plugin-contract.md)",
        ),
        Err(MoodleError::Exception { errorcode, message, .. }) => Check::fail(
            "moodle.plugin",
            format!("{PLUGIN} did not answer ({errorcode}: {message})"),
            "copy moodle-plugin/local/student_dashboard into Moodle as local/student_dashboard (docs/moodle-plugin.md §1) and add its functions to the token's service",
        ),
        Err(e) => Check::fail("moodle.plugin", first_line(&e.to_string()), "check MOODLE_URL and that the site is up"),
    }
}

fn site_failure(host: &str, e: &MoodleError) -> Check {
    let name = "moodle.site";
    match e {
        MoodleError::Exception { errorcode, .. } if errorcode == "invalidtoken" => Check::fail(
            name,
            format!("invalidtoken from {host}: Moodle does not know this MOODLE_TOKEN"),
            "create a token for the sync user and the `zmsync` service (Site administration › Server › Web services › Manage tokens) and set MOODLE_TOKEN",
        ),
        MoodleError::Exception { errorcode, message, .. } if errorcode == "accessexception" => Check::fail(
            name,
            format!("accessexception from {host} ({message}): the token expired, is IP-restricted, or its service lacks core_webservice_get_site_info"),
            "check the token in Site administration › Server › Web services › Manage tokens (valid until, IP restriction) and the service's functions",
        ),
        MoodleError::Exception { errorcode, message, .. } => Check::fail(
            name,
            format!("{errorcode} from {host}: {message}"),
            "see docs/moodle-setup.md; add the web-service user to $CFG->debugusers for details",
        ),
        MoodleError::Transport { message, .. } => Check::fail(
            name,
            format!("{host} did not answer: {message}"),
            "check MOODLE_URL, that the site is up, and that web services and the REST protocol are enabled",
        ),
        other => Check::fail(name, first_line(&other.to_string()), "check MOODLE_URL and the site"),
    }
}
