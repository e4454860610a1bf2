//! Exit codes (design.md "Conventions") and the error kinds that choose them.
//!
//! Library modules return their own `thiserror` types; the command boundary wraps them in `anyhow`.
//! `exit_code_for` walks the error chain and picks the code from the first error that says what it is.

use std::fmt;

/// The process exit codes. Cron and systemd units key on these; keep them stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done.
    Done = 0,
    /// 1: failed.
    Failed = 1,
    /// 2: usage or configuration error.
    Usage = 2,
    /// 3: finished, but some records failed (cron alerts on it).
    Partial = 3,
    /// 4: refused by a safety guard; a person must look.
    Refused = 4,
    /// 5: another live run holds this store's run lock; nothing was done. Not an alarm for a scheduled run:
    /// the run holding the lock does the work (`sync --if-free` turns this into 0).
    Busy = 5,
}

impl Exit {
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// A mistake the user can fix in the command line, the config file, the environment or a setting.
/// Always exit 2. The message says what was wrong and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A refusal by a safety guard. Always exit 4.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Another live run holds the run lock. Always exit 5.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Busy(pub String);

/// Errors that know their own exit code implement this, so the boundary need not know every type.
pub trait ExitKind {
    fn exit(&self) -> Exit;
}

/// The exit code for an error that reached the command boundary.
pub fn exit_code_for(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if cause.downcast_ref::<UsageError>().is_some() {
            return Exit::Usage;
        }
        if cause.downcast_ref::<Refused>().is_some() {
            return Exit::Refused;
        }
        if cause.downcast_ref::<Busy>().is_some() {
            return Exit::Busy;
        }
        if let Some(e) = cause.downcast_ref::<crate::config::ConfigError>() {
            return e.exit();
        }
        if let Some(e) = cause.downcast_ref::<crate::store::StoreError>() {
            return e.exit();
        }
        if let Some(e) = cause.downcast_ref::<crate::settings::SettingsError>() {
            return e.exit();
        }
        if let Some(e) = cause.downcast_ref::<crate::run::RunError>() {
            return e.exit();
        }
        if let Some(e) = cause.downcast_ref::<crate::reconcile::ReconcileError>() {
            return e.exit();
        }
        if let Some(e) = cause.downcast_ref::<crate::snapshot::SnapshotError>() {
            return e.exit();
        }
        if let Some(e) = cause.downcast_ref::<crate::zoho::ZohoError>() {
            return e.exit();
        }
        if let Some(e) = cause.downcast_ref::<crate::moodle::MoodleError>() {
            return e.exit();
        }
        if let Some(e) = cause.downcast_ref::<crate::webhook::ServeError>() {
            return e.exit();
        }
    }
    Exit::Failed
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
    }
}
