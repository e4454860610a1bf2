//! Step 1, the snapshot: both sides read into the store (incremental: the dirty keys only, plus Zoho changes
//! since the cursor), and what the later steps need of it.

use std::collections::HashMap;

use super::report::ApiCalls;
use super::{settle, RunError, RunOptions, Scope};
use crate::config::Config;
use crate::model::Entity;
use crate::settings::Settings;
use crate::snapshot::{self, Mode};
use crate::store::events::DirtyMark;
use crate::store::Store;

/// What the snapshot hands on.
pub(super) struct Read {
    /// Full, or the keys an incremental run read (its re-read after apply reads the keys it wrote).
    pub mode: Mode,
    /// An incremental run: it reconciles, and records the base of, only the entities it touched.
    pub scoped: bool,
    /// The entities to reconcile.
    pub entities: Vec<Entity>,
    /// Keys an API refused alone in the snapshot (the rest of their read was kept): they fail, the rest syncs.
    pub refused: HashMap<String, String>,
}

/// Reads both sides into the store; an incremental run first takes the dirty marks into `claimed`.
#[allow(clippy::too_many_arguments)]
pub(super) fn snapshot(
    store: &dyn Store,
    settings: &Settings,
    config: &Config,
    opts: &RunOptions,
    entities: Vec<Entity>,
    only: Option<Entity>,
    claimed: &mut Vec<DirtyMark>,
    calls: &mut ApiCalls,
) -> Result<Read, RunError> {
    let mode = if let Scope::Incremental = opts.scope {
        *claimed = store.claim_dirty(100_000)?;
        Mode::Incremental(settle::incremental_keys(claimed))
    } else {
        Mode::Full
    };
    let snap_opts = snapshot::Options { only, mode: mode.clone(), progress: opts.progress, ..Default::default() };
    let snap = snapshot::run(store, settings, config, &snap_opts)?;
    calls.snapshot(&snap);
    let refused: HashMap<String, String> =
        snap.kinds.iter().flat_map(|k| k.rejected.iter().map(|r| (r.key.clone(), r.reason.clone()))).collect();
    // An incremental run reconciles (and records the base of) only the entities it read records of or was
    // told about; the rest did not change since the last run.
    let scoped = matches!(mode, Mode::Incremental(_));
    let entities = if scoped { settle::touched(&entities, &snap, claimed) } else { entities };
    Ok(Read { mode, scoped, entities, refused })
}
