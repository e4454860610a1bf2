//! The operator's view (issue #22): what happened lately (`runs`), what happened to one record (`history`), a
//! run's report re-written or drawn as one HTML page (`report`), the issues of a run by cause, and a plan that
//! undoes a run (`revert`). Everything here reads the store — the `runs` rows, the journal (which keeps each
//! op's before-values, see [`journal`]) and the last snapshot; nothing here writes to Zoho or Moodle.

pub mod history;
pub mod html;
pub mod issues;
pub mod journal;
pub mod report;
pub mod revert;
pub mod runs;
