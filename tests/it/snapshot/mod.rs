//! Snapshots against the sandbox fakes: the library (`snapshot::run` on a SQLite store) for the behaviours,
//! and the real binary end to end for the guard, exit codes and secret hygiene.

mod cli;
mod full;
mod incremental;

use std::time::Duration;

use zmsync::model::Kind;
use zmsync::moodle;
use zmsync::sandbox::generator::{College, GenOptions, State};
use zmsync::sandbox::moodle::{FakeMoodle, MoodleOptions};
use zmsync::sandbox::zoho::{FakeZoho, ZohoOptions};
use zmsync::settings::Settings;
use zmsync::snapshot::{self, Options, SnapshotError, SnapshotSummary};
use zmsync::store::{self, Store};

use crate::fakes::{config, fast_backoff, zoho_options};

/// A synced college of `students` in both fakes, and an empty SQLite store.
pub struct Harness {
    pub zoho: FakeZoho,
    pub moodle: FakeMoodle,
    pub store: Box<dyn Store>,
    pub settings: Settings,
    _dir: tempfile::TempDir,
}

pub fn college(students: usize) -> College {
    College::generate(GenOptions { students, seed: 7, state: State::Synced, drift_count: 0 })
}

impl Harness {
    pub fn start(students: usize, zoho: ZohoOptions, moodle: MoodleOptions) -> Harness {
        let c = college(students);
        let dir = tempfile::tempdir().unwrap();
        let store = store::open(&format!("sqlite://{}", dir.path().join("s.db").display())).unwrap();
        Harness {
            zoho: FakeZoho::start(c.zoho, zoho).unwrap(),
            moodle: FakeMoodle::start(c.moodle, moodle).unwrap(),
            store,
            settings: Settings::defaults(),
            _dir: dir,
        }
    }

    /// Options with short retries, for fakes that misbehave on purpose.
    pub fn options(&self) -> Options {
        Options {
            zoho: Some(zoho_options()),
            moodle: Some(moodle::ClientOptions {
                backoff: fast_backoff(),
                timeout: Duration::from_secs(5),
                max_input_vars: self.settings.max_input_vars,
                ..Default::default()
            }),
            ..Options::default()
        }
    }

    pub fn run(&self, opts: &Options) -> Result<SnapshotSummary, SnapshotError> {
        snapshot::run(self.store.as_ref(), &self.settings, &config(&self.zoho, &self.moodle), opts)
    }
}

/// Checks that every Zoho kind of the summary holds exactly the fake's records: each one mapped, skipped or
/// reported as unmappable, none lost and none twice.
#[track_caller]
pub fn assert_zoho_complete(s: &SnapshotSummary, zoho: &FakeZoho) {
    let mut checked = 0;
    for k in s.kinds.iter().filter(|k| k.side == zmsync::model::Side::Zoho) {
        let seen = k.records + k.skipped + k.unmappable.len() as u64;
        assert_eq!(seen, zoho.records(&k.source).len() as u64, "{}: {k:?}", k.source);
        assert_eq!(k.stored, k.records, "{}", k.source);
        checked += 1;
    }
    assert!(checked > 0, "no Zoho kind in the summary");
}

pub fn kind(s: &SnapshotSummary, kind: Kind) -> &zmsync::snapshot::KindSummary {
    s.kinds.iter().find(|k| k.kind == kind).unwrap_or_else(|| panic!("{kind:?} not in the summary"))
}
