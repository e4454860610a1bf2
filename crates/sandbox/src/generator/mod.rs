//! The college data generator: a BTEC college as docs/sandbox.md describes, deterministic for a seed, in one of
//! three states (see [`State`]). The Zoho side is raw JSON as Zoho returns it; the Moodle side of `synced` is
//! built only through `mapping::*` (the same functions the sync writes with), so the rules live in one place
//! and "what a completed sync leaves behind" cannot drift from what the sync does.
//!
//! Real-world mess is deliberate: mixed-case and padded emails, students without an email, duplicate emails,
//! Unicode and apostrophe names, several phone formats, timestamps in `+00:00` and `+05:30`.

mod dashboard_rows;
mod moodle_side;
mod names;
mod raw_fields;
mod record;
mod zoho_side;

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use self::moodle_side::{default_category, synced_moodle};
use self::zoho_side::Gen;
use super::drift;
use super::seed::{Drift, MoodleSeed, ZohoSeed};
use super::world::AS_OF;
use zmsync_core::settings::Settings;

pub use self::dashboard_rows::stored_row;
pub use self::moodle_side::{students_with_users, DEFAULT_CATEGORY_ID, SYNC_CATEGORY_ID};
pub use names::ascii_fold;

/// Which state both systems start in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Zoho full of data; Moodle fresh (a default category, no users but the guest and admin, no courses).
    /// Zoho has no `*_Moodle_ID` values and no BTEC_Grades (grades come from Moodle).
    Empty,
    /// Moodle exactly as a completed sync leaves it; Zoho carries the written-back Moodle ids.
    Synced,
    /// `synced`, then the drift applied (see `College::drift` for the expected changes).
    Drifted,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Empty => "empty",
            State::Synced => "synced",
            State::Drifted => "drifted",
        }
    }
}

#[derive(Debug, Clone)]
pub struct GenOptions {
    pub students: usize,
    pub seed: u64,
    pub state: State,
    /// K: how many differences `drifted` seeds; at least one of every `DriftKind` when K ≥ 11.
    pub drift_count: usize,
}

impl Default for GenOptions {
    fn default() -> Self {
        GenOptions { students: 1500, seed: 1, state: State::Empty, drift_count: 30 }
    }
}

/// A generated college: what each fake starts with, and (for `drifted`) the changes a reconcile must plan.
#[derive(Debug, Clone, Serialize)]
pub struct College {
    pub zoho: ZohoSeed,
    pub moodle: MoodleSeed,
    pub drift: Vec<Drift>,
}

/// How many teachers and classes a college of `students` has: the college's 50 and 200 up to 1,500 students,
/// growing in proportion beyond (so a class never holds thousands).
pub fn shape(students: usize) -> (usize, usize) {
    (50.max(students / 30), 200.max(students * 2 / 15))
}

impl College {
    pub fn generate(opts: GenOptions) -> College {
        let settings = Settings::defaults();
        let start = std::time::Instant::now();
        let phase = |what: &str| {
            if tracing::enabled!(tracing::Level::DEBUG) {
                let (rss_kib, peak_kib) = crate::memory::resident_kib().unwrap_or_default();
                let (rss_mib, peak_mib) = (rss_kib / 1024, peak_kib / 1024);
                tracing::debug!(ms = start.elapsed().as_millis() as u64, rss_mib, peak_mib, "generator: {what} done")
            }
        };
        let mut g = Gen::new(&opts, &settings);
        g.zoho_side();
        phase("Zoho side");
        let Gen { mut zoho, pending, .. } = g;
        if opts.state == State::Empty {
            let moodle = MoodleSeed { categories: vec![default_category()], ..MoodleSeed::default() };
            return College { zoho, moodle, drift: Vec::new() };
        }
        let (mut moodle, students) = synced_moodle(&mut zoho, pending, &settings, &phase);
        let mut drift = Vec::new();
        if opts.state == State::Drifted {
            let (count, seed) = (opts.drift_count, opts.seed);
            let plans = drift::plan_mapped(&zoho, &moodle, students, count, seed, &HashSet::new(), &settings);
            phase("drift plan");
            for p in &plans {
                drift::apply_to_seeds(&mut zoho, &mut moodle, &p.mutations, AS_OF + 3600);
            }
            drift = plans.into_iter().map(|p| p.drift).collect();
            phase("drift applied");
        }
        College { zoho, moodle, drift }
    }

    /// Records per Zoho module and Moodle object, for the sandbox's one-line summary.
    pub fn summary(&self) -> String {
        let n = |m: &str| self.zoho.modules.get(m).map(Vec::len).unwrap_or(0);
        format!(
            "zoho: {} students, {} teachers, {} units, {} classes, {} enrollments, {} registrations, {} payments, {} grades; \
             moodle: {} users, {} courses, {} enrolments, {} grades, {} dashboard rows; {} drift",
            n("BTEC_Students"),
            n("BTEC_Teachers"),
            n("BTEC_Units"),
            n("BTEC_Classes"),
            n("BTEC_Enrollments"),
            n("BTEC_Registrations"),
            n("BTEC_Payments"),
            n("BTEC_Grades"),
            self.moodle.users.len(),
            self.moodle.courses.len(),
            self.moodle.enrolments.len(),
            self.moodle.grades.len(),
            self.moodle.plugin.units.len() + self.moodle.plugin.registrations.len() + self.moodle.plugin.payments.len(),
            self.drift.len(),
        )
    }
}

#[cfg(test)]
mod tests;
