//! The command layer's error model (jj's): exit codes and hints are decided here, once.
//!
//! Library modules (config, settings, store, zoho, moodle, snapshot, reconcile, apply, operator, webhook) return
//! their own `thiserror` types that say what happened and know nothing of exit codes. Commands pass them up in
//! `anyhow`; at the boundary [`CommandError::from`] maps an error once to its kind (the exit code, by
//! [`kind_of`]) and its hints, and [`CommandError::render`] prints `error: <message>` with the cause chain once,
//! then each hint once. A run's outcome (done or partial) is mapped by [`Exit::of_run`].

use std::fmt;

use crate::config::ConfigError;
use crate::credentials::ClientConfigError;
use crate::moodle::MoodleError;
use crate::operator::report::ReportError;
use crate::operator::revert::RevertError;
use crate::reconcile::{ReconcileError, Refusal, UnknownEntity};
use crate::run::{RunError, RunReport};
use crate::settings::SettingsError;
use crate::snapshot::SnapshotError;
use crate::store::StoreError;
use crate::webhook::ServeError;
use crate::zoho::{AuthFailure, ZohoError};

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

    /// A finished run: partial (3) when records were rejected or failed, dirty marks failed, or its report
    /// could not be written; done (0) otherwise.
    pub fn of_run(report: &RunReport) -> Exit {
        if report.is_partial() {
            Exit::Partial
        } else {
            Exit::Done
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code())
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

/// An error that reached the command boundary, mapped once: its kind (the exit code), the error with its
/// cause chain, and the hints to print after it.
#[derive(Debug)]
pub struct CommandError {
    pub kind: Exit,
    pub error: anyhow::Error,
    pub hints: Vec<String>,
}

impl From<anyhow::Error> for CommandError {
    fn from(error: anyhow::Error) -> Self {
        let kind = kind_of(&error);
        let (_, hints) = split(&error);
        CommandError { kind, error, hints }
    }
}

impl CommandError {
    /// What the user sees on stderr: `error: <message>: <cause>…` once, then `hint: …` lines, each once.
    pub fn render(&self) -> String {
        self.render_as("error")
    }

    /// [`render`](Self::render) with another lead than `error`, e.g. `incremental run failed`.
    pub fn render_as(&self, lead: &str) -> String {
        let (message, _) = split(&self.error);
        let mut out = format!("{lead}: {message}\n");
        for hint in &self.hints {
            out.push_str(&format!("hint: {hint}\n"));
        }
        out
    }
}

/// The message (the cause chain joined by `: `, a cause left out when the text before already says it) and
/// the hints, which library errors end their text with as `\n  hint: …` lines, each hint once.
fn split(error: &anyhow::Error) -> (String, Vec<String>) {
    let mut parts: Vec<String> = Vec::new();
    let mut hints: Vec<String> = Vec::new();
    for cause in error.chain() {
        let (text, said_hints) = split_hints(&cause.to_string());
        for h in said_hints {
            if !hints.contains(&h) {
                hints.push(h);
            }
        }
        let said = text.trim().is_empty() || parts.iter().any(|p| p.contains(text.trim()));
        if !said {
            parts.push(text);
        }
    }
    (parts.join(": "), hints)
}

/// One error's text split into its message and the hints it ends with (`\n  hint: …` lines, the form
/// library errors use). `doctor` shows them the same way.
pub fn split_hints(text: &str) -> (String, Vec<String>) {
    let mut message: Vec<&str> = Vec::new();
    let mut hints = Vec::new();
    for line in text.lines() {
        match line.trim_start().strip_prefix("hint: ") {
            Some(h) => hints.push(h.trim().to_string()),
            None => message.push(line),
        }
    }
    (message.join("\n"), hints)
}

/// The exit code for an error that reached the command boundary: from the first error in the chain that says
/// what it is; 1 (failed) when none does.
pub fn kind_of(err: &anyhow::Error) -> Exit {
    err.chain().find_map(kind_of_one).unwrap_or(Exit::Failed)
}

/// The kind one error of a chain says it is, if it says.
fn kind_of_one(cause: &(dyn std::error::Error + 'static)) -> Option<Exit> {
    if cause.is::<UsageError>()
        || cause.is::<UnknownEntity>()
        || cause.is::<SettingsError>()
        || cause.is::<ClientConfigError>()
    {
        return Some(Exit::Usage);
    }
    if cause.is::<Refused>() || cause.is::<Refusal>() {
        return Some(Exit::Refused);
    }
    if cause.is::<Busy>() {
        return Some(Exit::Busy);
    }
    None.or_else(|| cause.downcast_ref().map(config))
        .or_else(|| cause.downcast_ref().map(store))
        .or_else(|| cause.downcast_ref().map(run))
        .or_else(|| cause.downcast_ref().map(reconcile))
        .or_else(|| cause.downcast_ref().map(snapshot))
        .or_else(|| cause.downcast_ref().map(zoho))
        .or_else(|| cause.downcast_ref().map(moodle))
        .or_else(|| cause.downcast_ref().map(serve))
        .or_else(|| cause.downcast_ref().map(report))
        .or_else(|| cause.downcast_ref().map(revert))
}

fn config(e: &ConfigError) -> Exit {
    match e {
        ConfigError::Read { .. }
        | ConfigError::Parse { .. }
        | ConfigError::SecretInFile { .. }
        | ConfigError::Invalid { .. }
        | ConfigError::DotEnv { .. } => Exit::Usage,
    }
}

fn store(e: &StoreError) -> Exit {
    match e {
        StoreError::InvalidUrl { .. } | StoreError::SqliteOpen { .. } | StoreError::SchemaTooNew { .. } => Exit::Usage,
        _ => Exit::Failed,
    }
}

fn run(e: &RunError) -> Exit {
    match e {
        RunError::Locked(_) => Exit::Busy,
        RunError::Refused(_) => Exit::Refused,
        RunError::Usage(_) => Exit::Usage,
        RunError::Store(e) => store(e),
        RunError::Snapshot(e) => snapshot(e),
        RunError::Reconcile(e) => reconcile(e),
        _ => Exit::Failed,
    }
}

fn reconcile(e: &ReconcileError) -> Exit {
    match e {
        ReconcileError::Store(e) => e.downcast_ref::<StoreError>().map(store).unwrap_or(Exit::Failed),
        ReconcileError::Refused(_) => Exit::Refused,
    }
}

fn snapshot(e: &SnapshotError) -> Exit {
    match e {
        SnapshotError::Zoho(e) => zoho(e),
        SnapshotError::Moodle(e) => moodle(e),
        SnapshotError::Store(e) => store(e),
        SnapshotError::Refused(_) => Exit::Refused,
        SnapshotError::Runtime(_) => Exit::Failed,
    }
}

fn zoho(e: &ZohoError) -> Exit {
    match e {
        ZohoError::Config(_)
        | ZohoError::Auth {
            failure: AuthFailure::InvalidCode | AuthFailure::InvalidClient | AuthFailure::Other(_),
            ..
        }
        | ZohoError::ScopeMismatch { .. }
        | ZohoError::NoPermission { .. } => Exit::Usage,
        _ => Exit::Failed,
    }
}

fn moodle(e: &MoodleError) -> Exit {
    match e {
        MoodleError::Config(_) | MoodleError::SiteNotReady { .. } | MoodleError::RowTooLarge { .. } => Exit::Usage,
        MoodleError::Exception { errorcode, .. } if errorcode == "invalidtoken" || errorcode == "accessexception" => {
            Exit::Usage
        }
        _ => Exit::Failed,
    }
}

fn serve(e: &ServeError) -> Exit {
    match e {
        ServeError::Bind { .. } => Exit::Usage,
        ServeError::Store(e) => store(e),
        ServeError::Settings(_) => Exit::Usage,
    }
}

fn report(e: &ReportError) -> Exit {
    match e {
        ReportError::Store(e) => store(e),
        ReportError::NoRun(_) | ReportError::NoRuns => Exit::Usage,
        ReportError::Write { .. } => Exit::Failed,
    }
}

fn revert(e: &RevertError) -> Exit {
    match e {
        RevertError::Store(e) => store(e),
        RevertError::NoRun(_) | RevertError::DryRun(_) => Exit::Usage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_error_prints_once_and_its_hint_after_it() {
        let inner = ClientConfigError::Missing { missing: "ZOHO_CLIENT_ID".into(), hint: "set it in .env".into() };
        // The shape that printed everything twice: a wrapper whose text is its source's.
        #[derive(Debug, thiserror::Error)]
        #[error("{0}")]
        struct Wrapper(#[source] ClientConfigError);
        let e = CommandError::from(anyhow::Error::from(Wrapper(inner)).context("run 3 (full) failed"));
        assert_eq!(e.kind, Exit::Usage);
        assert_eq!(
            e.render(),
            "error: run 3 (full) failed: missing configuration: ZOHO_CLIENT_ID\nhint: set it in .env\n"
        );
    }

    #[test]
    fn an_error_nobody_names_is_a_failure() {
        let e = CommandError::from(anyhow::anyhow!("disk on fire"));
        assert_eq!((e.kind, e.render()), (Exit::Failed, "error: disk on fire\n".to_string()));
    }

    #[test]
    fn library_errors_map_to_their_codes() {
        let bad_url = StoreError::InvalidUrl { url: "x".into(), reason: "y".into() };
        assert_eq!(kind_of(&bad_url.into()), Exit::Usage);
        assert_eq!(kind_of(&RunError::Locked("held".into()).into()), Exit::Busy);
        assert_eq!(kind_of(&Refusal("mass change".into()).into()), Exit::Refused);
        assert_eq!(kind_of(&SnapshotError::Refused(vec!["empty".into()]).into()), Exit::Refused);
        let token = MoodleError::Exception {
            function: "f".into(),
            errorcode: "invalidtoken".into(),
            message: "m".into(),
            debuginfo: None,
        };
        assert_eq!(kind_of(&token.into()), Exit::Usage);
        assert_eq!(kind_of(&ReportError::NoRuns.into()), Exit::Usage);
        assert_eq!(kind_of(&StoreError::Closed.into()), Exit::Failed);
    }
}
