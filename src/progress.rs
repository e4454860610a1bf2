//! Progress bars on stderr, drawn only when asked (a terminal, never with `--json`): the one place that
//! builds them, for the snapshot's kinds and a run's steps and apply phases.

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A set of bars drawn together (hidden when not shown: every call is then a no-op).
#[derive(Debug, Clone)]
pub struct Bars(MultiProgress);

impl Bars {
    pub fn new(show: bool) -> Bars {
        Bars(MultiProgress::with_draw_target(if show {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        }))
    }

    fn add(&self, bar: ProgressBar, template: &str, prefix: String) -> ProgressBar {
        let bar = self.0.add(bar);
        bar.set_style(ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_spinner()));
        bar.set_prefix(prefix);
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    /// Records counted as they come, the total not known yet (`set_length` once it is).
    pub fn records(&self, prefix: impl Into<String>) -> ProgressBar {
        self.add(ProgressBar::new_spinner(), "{prefix:>24.bold} {spinner} {pos:>7} records {msg}", prefix.into())
    }

    /// `done of total` items of a phase.
    pub fn phase(&self, prefix: impl Into<String>, total: u64, unit: &str) -> ProgressBar {
        let template = format!("{{prefix:>24.bold}} [{{bar:30}}] {{pos:>7}}/{{len}} {unit} {{msg}}");
        self.add(ProgressBar::new(total), &template, prefix.into())
    }

    /// A step with no count: a spinner until it is finished.
    pub fn step(&self, prefix: impl Into<String>) -> ProgressBar {
        self.add(ProgressBar::new_spinner(), "{prefix:>24.bold} {spinner} {elapsed} {msg}", prefix.into())
    }
}
