//! How the fake site behaves: its options (latency, faults, site settings) and the transport faults it can
//! inject.

use serde::Serialize;

use super::CostModel;
use zmsync_core::secret::Secret;

/// The transport faults the fake can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum FaultKind {
    /// HTTP 503 with an HTML body (maintenance page, overloaded proxy).
    Http503,
    /// HTTP 500 with a PHP fatal error as HTML.
    Http500,
    /// No answer for `fault_hold_ms`, then the connection is closed.
    Timeout,
    /// TCP reset.
    Reset,
}

pub const ALL_FAULTS: &[FaultKind] = &[FaultKind::Http503, FaultKind::Http500, FaultKind::Timeout, FaultKind::Reset];

/// How the fake site behaves. `Default` is a realistic, healthy site.
#[derive(Debug, Clone)]
pub struct MoodleOptions {
    /// 0 = an ephemeral port.
    pub port: u16,
    /// Added to every request.
    pub latency_ms: u64,
    /// Added per record written (a real site spends ≈ 12 ms per created user).
    pub per_record_ms: u64,
    /// Probability (0–1) that a REST request fails with one of `fault_kinds` before anything is applied.
    pub fault_rate: f64,
    pub fault_seed: u64,
    pub fault_kinds: Vec<FaultKind>,
    /// How long a `Timeout` fault holds the connection before dropping it.
    pub fault_hold_ms: u64,
    /// Probability (0–1) that a write function is applied and then the connection reset: the duplicate hazard.
    pub fault_after_apply: f64,
    /// PHP's `max_input_vars` (per query string and per body); 0 = unlimited.
    pub max_input_vars: usize,
    /// Site debugging: `debuginfo` present and table-specific missing-record codes.
    pub debug: bool,
    /// REST protocol disabled: 403 with an empty body.
    pub protocol_disabled: bool,
    /// CLI maintenance mode: 503 with an HTML page.
    pub maintenance: bool,
    /// `$CFG->allowaccountssameemail`.
    pub allow_accounts_same_email: bool,
    /// Every read returns zero records (the mass-deletion guard's test case).
    pub zero_records: bool,
    /// Functions missing from the token's service (`accessexception`).
    pub missing_functions: Vec<String>,
    /// Capabilities the token's user lacks (`nopermissions`), e.g. `moodle/user:create`.
    pub nopermissions: Vec<String>,
    /// Role ids the token's user may not assign (`wsusercannotassign`).
    pub wsusercannotassign: Vec<i64>,
    /// `local_student_dashboard` installed; when false its functions are unknown.
    pub plugin_installed: bool,
    /// The receiver base for the plugin's outbound events, e.g. `http://127.0.0.1:8080/v1/events/moodle`.
    pub webhook_url: Option<String>,
    pub webhook_hmac_secret: Option<Secret>,
    /// Also post events for changes made through the web service (the real plugin's observers do: echo).
    pub webhook_on_ws_writes: bool,
    /// Custom user profile fields defined on the site (others are silently ignored on create/update).
    pub profile_fields: Vec<String>,
    /// Most recent requests kept by the request log.
    pub request_log_cap: usize,
    /// *Show user identity* (`$CFG->showuseridentity`): the identity fields a token that is not a site admin
    /// reads. Stock: `email`, so `phone1` is left out of `core_user_get_users*` answers (docs/moodle-setup.md).
    pub show_identity: Vec<String>,
    /// The token's user is a site admin (reads every field whatever `show_identity` says).
    pub token_is_admin: bool,
    /// Manual enrolment instances send the course welcome message (`customint1`; on by default since 4.4).
    pub welcome_message: bool,
    /// Outgoing mail works. Stock: not set up, so `enrol_manual_enrol_users` commits its enrolments and then
    /// raises `Message was not sent.` whenever it made a new one while `welcome_message` is on.
    pub mail_configured: bool,
    /// Server time per call on a fixed pool of PHP workers ([`CostModel`]); `None` (the default) costs nothing.
    pub cost: Option<CostModel>,
}

impl MoodleOptions {
    /// A stock site's answers turned off: `phone1` shown, mail working. What tests of other behaviour use.
    pub fn permissive() -> MoodleOptions {
        MoodleOptions {
            show_identity: vec!["email".into(), "phone1".into()],
            mail_configured: true,
            ..MoodleOptions::default()
        }
    }

    /// Whether a token reads `field` of other users (`user_get_user_details`: identity fields or a site admin).
    pub fn shows(&self, field: &str) -> bool {
        self.token_is_admin || self.show_identity.iter().any(|f| f == field)
    }

    /// Whether a new manual enrolment ends in `Message was not sent.` after its commit.
    pub fn welcome_fails(&self) -> bool {
        self.welcome_message && !self.mail_configured
    }
}

impl Default for MoodleOptions {
    fn default() -> Self {
        MoodleOptions {
            port: 0,
            latency_ms: 0,
            per_record_ms: 0,
            fault_rate: 0.0,
            fault_seed: 0,
            fault_kinds: ALL_FAULTS.to_vec(),
            fault_hold_ms: 60_000,
            fault_after_apply: 0.0,
            max_input_vars: 1000,
            debug: false,
            protocol_disabled: false,
            maintenance: false,
            allow_accounts_same_email: false,
            zero_records: false,
            missing_functions: Vec::new(),
            nopermissions: Vec::new(),
            wsusercannotassign: Vec::new(),
            plugin_installed: true,
            webhook_url: None,
            webhook_hmac_secret: None,
            webhook_on_ws_writes: false,
            profile_fields: Vec::new(),
            request_log_cap: 10_000,
            show_identity: vec!["email".into()],
            token_is_admin: false,
            welcome_message: true,
            mail_configured: false,
            cost: None,
        }
    }
}
