//! `zmsync doctor`: is this installation ready to sync? Each check gives one line — what was found and, when
//! it fails, what to do. A failed prerequisite turns the checks that depend on it into `Skip` with the reason
//! (no Zoho token → no module checks), so the first failing line is the one to fix.
//!
//! Groups: [`local`] (configuration, secrets present), [`store`] (reachable, migrated, settings, disk),
//! [`zoho`] (token refresh, modules and mapped fields), [`moodle`] (site, functions, plugin), [`clock`] (skew
//! against both servers' `Date`). Secrets are only ever reported as `set (hidden)`.

mod clock;
mod disk;
mod local;
mod moodle;
mod runs;
mod store;
mod watch;
mod zoho;

use std::time::Duration;

use serde::Serialize;

use crate::bridge;
use crate::config::Config;

/// How long one network check may take before it is reported as failing (doctor must answer quickly, even
/// when a host swallows packets).
pub const NET_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
    Skip,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }
}

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    /// What was found (never a secret value).
    pub detail: String,
    /// What to do about it (failures and warnings).
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check { name: name.into(), status: Status::Pass, detail: detail.into(), fix: None }
    }
    pub fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { name: name.into(), status: Status::Fail, detail: detail.into(), fix: Some(fix.into()) }
    }
    pub fn warn(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { name: name.into(), status: Status::Warn, detail: detail.into(), fix: Some(fix.into()) }
    }
    pub fn skip(name: impl Into<String>, reason: impl Into<String>) -> Check {
        Check { name: name.into(), status: Status::Skip, detail: reason.into(), fix: None }
    }

    /// `FAIL zoho.token  <detail> → <fix>`, on one line (newlines in upstream messages are folded).
    pub fn line(&self, name_width: usize) -> String {
        let mut s = format!("{} {:<w$}  {}", self.status.label(), self.name, fold(&self.detail), w = name_width);
        if let Some(fix) = &self.fix {
            s.push_str(" → ");
            s.push_str(&fold(fix));
        }
        s
    }
}

/// An error's first line: its message without the hint lines (the check says its own fix).
fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

fn fold(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every check, in order.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn push(&mut self, c: Check) {
        self.checks.push(c);
    }

    /// True when nothing failed (warnings and skips allowed).
    pub fn ok(&self) -> bool {
        !self.checks.iter().any(|c| c.status == Status::Fail)
    }

    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    pub fn text(&self) -> String {
        let w = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        let mut out: String = self.checks.iter().map(|c| c.line(w) + "\n").collect();
        out.push_str(&format!(
            "{} passed, {} warnings, {} failed, {} skipped\n",
            self.count(Status::Pass),
            self.count(Status::Warn),
            self.count(Status::Fail),
            self.count(Status::Skip)
        ));
        out
    }
}

/// Runs every check. Blocks; network checks run on a private tokio runtime while the store (if reachable) is
/// served from this thread, so the Zoho token is read from and written to the store as on any run.
pub fn run(config: &Config) -> Report {
    let mut report = Report::default();
    local::checks(config, &mut report);
    let opened = store::checks(config, &mut report);
    runs::checks(opened.store.as_deref(), opened.settings.as_ref().map_err(String::as_str), &mut report);
    let settings = opened.settings.clone();
    let channel = watch::expected(opened.store.as_deref());
    let net = |cache: Option<std::sync::Arc<dyn crate::zoho::TokenCache>>| async move {
        let settings = settings.as_ref().map_err(String::as_str);
        let (z, m) = tokio::join!(zoho::checks(config, settings, cache.clone()), moodle::checks(config, settings));
        // After the token check, so that it reuses the token that check cached.
        let w = watch::checks(config, settings, &channel, cache).await;
        z.into_iter().chain(m).chain(w).collect::<Vec<Check>>()
    };
    let checks = match &opened.store {
        Some(store) => bridge::serve(store.as_ref(), |b| net(Some(bridge::token_cache(&b)))),
        None => bridge::runtime().map(|rt| rt.block_on(net(None))),
    };
    match checks {
        Ok(checks) => report.checks.extend(checks),
        Err(e) => report.push(Check::fail("runtime", format!("cannot start the network runtime: {e}"), "report this")),
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_fold_newlines_and_show_the_fix() {
        let c = Check::fail("zoho.token", "refused\n  hint: x", "set ZOHO_REFRESH_TOKEN");
        assert_eq!(c.line(12), "FAIL zoho.token    refused hint: x → set ZOHO_REFRESH_TOKEN");
        let mut r = Report::default();
        r.push(Check::pass("a", "ok"));
        r.push(Check::warn("b", "meh", "look"));
        assert!(r.ok());
        r.push(Check::skip("c", "because"));
        r.push(c);
        assert!(!r.ok());
        assert!(r.text().ends_with("1 passed, 1 warnings, 1 failed, 1 skipped\n"), "{}", r.text());
    }
}
