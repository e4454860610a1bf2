//! `snapshot`: fetch the enabled modules from both sides concurrently, map every raw record to a canonical
//! [`Record`], stage each page in the store and swap each kind in with one transaction.
//!
//! Order of a run: check both sides' access, fetch and stage every kind (pages streamed, memory flat), run the
//! **empty-side guard** over the whole set, then commit each kind. Nothing is committed unless every kind was
//! fetched and passed the guard; a failed or refused run discards what it staged, so `records` is either the
//! new snapshot or the old one.
//!
//! Threads: the network runs on tokio; the store is served on the calling thread through a
//! [`StoreBridge`](crate::bridge::StoreBridge) (never called inside a task: the postgres crate runs its own runtime and
//! panics there).

mod fetch;
mod plan;
mod summary;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};

use crate::bridge::{self, StoreBridge};
use crate::config::Config;
use crate::model::{Entity, Kind};
use crate::moodle::{self, MoodleError};
use crate::settings::Settings;
use crate::store::{Store, StoreError};
use crate::zoho::{self, ZohoError};

pub use plan::{parse_module, valid_module_names};
pub use summary::{KindSummary, SideSummary, SnapshotSummary, Unmappable};

/// Which keys an incremental snapshot fetches.
#[derive(Debug, Clone, Default)]
pub struct Incremental {
    /// Zoho record ids per Zoho kind (fetched with `ids=`).
    pub zoho_ids: BTreeMap<Kind, Vec<String>>,
    /// Moodle keys per Moodle kind (user/course ids, `courseid:userid`, dashboard `zoho_id`s).
    pub moodle_keys: BTreeMap<Kind, Vec<String>>,
    /// Also every Zoho record modified since then (`If-Modified-Since`); `None` uses each module's stored
    /// cursor (the largest `Modified_Time` of the last good run), if any.
    pub since: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default)]
pub enum Mode {
    /// Every record of every kind; records absent from the snapshot are removed from the store.
    #[default]
    Full,
    /// Only the given keys (plus changes since the cursor), upserted (`full = false`).
    Incremental(Incremental),
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only this entity's kinds (`--module`); `None`: every enabled entity.
    pub only: Option<Entity>,
    /// Of those, only these kinds (a run re-reading what it wrote); `None`: all of them.
    pub kinds: Option<std::collections::BTreeSet<Kind>>,
    pub mode: Mode,
    /// Draw progress bars (only when stderr is a terminal).
    pub progress: bool,
    /// The run already checked the Moodle site (credentials, functions, plugin contract): an incremental
    /// snapshot skips the check (the re-read after apply). A full one checks anyway (it needs the web-service
    /// user's id).
    pub site_checked: bool,
    pub zoho: Option<zoho::ClientOptions>,
    pub moodle: Option<moodle::ClientOptions>,
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error(transparent)]
    Zoho(#[from] ZohoError),
    #[error(transparent)]
    Moodle(#[from] MoodleError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The empty-side guard refused: nothing was written.
    #[error("snapshot refused, nothing was written:\n{}", .0.iter().map(|r| format!("  - {r}")).collect::<Vec<_>>().join("\n"))]
    Refused(Vec<String>),
    #[error("cannot start the network runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// Runs one snapshot. Blocks; the store is only touched from this thread.
pub fn run(
    store: &dyn Store,
    settings: &Settings,
    config: &Config,
    opts: &Options,
) -> Result<SnapshotSummary, SnapshotError> {
    let started = Instant::now();
    let plan = plan::Plan::new(settings, opts.only, opts.kinds.as_ref());
    let settings = Arc::new(settings.clone());
    let out = bridge::serve(store, |bridge: StoreBridge| async move {
        let clients = fetch::Clients::new(&plan, config, opts, &settings, &bridge)?;
        let result = fetch::fetch_all(&plan, &clients, &settings, &bridge, opts).await;
        let staged = match result {
            Ok(staged) => staged,
            Err(e) => return Err(e),
        };
        let full = matches!(opts.mode, Mode::Full);
        let refusals = if full { fetch::guard(&staged, &bridge).await? } else { Vec::new() };
        if !refusals.is_empty() {
            fetch::discard(&staged, &bridge).await;
            return Err(SnapshotError::Refused(refusals));
        }
        // Each kind is committed in its own transaction, so the kinds go side by side (one after the other on
        // SQLite); all are waited for, so none is left staged behind an error.
        let mut commits = tokio::task::JoinSet::new();
        for (i, s) in staged.iter().enumerate() {
            let (sid, kind, cursor) = (s.snapshot_id.clone(), s.kind, s.cursor.clone());
            let removed = s.removed.clone();
            let bridge = bridge.clone();
            commits.spawn(async move {
                let stored = bridge
                    .run(move |st| {
                        // Keys asked about and gone from their side leave the store, as a full snapshot would
                        // drop them: reconcile then sees the removal (an unenrolment, a deletion).
                        if !removed.is_empty() {
                            st.delete_records(kind, &removed)?;
                        }
                        let n = st.commit_snapshot(&sid, kind, full)?;
                        if let Some(c) = cursor {
                            st.put_cursor(kind, &c)?;
                        }
                        Ok(n)
                    })
                    .await;
                (i, stored)
            });
        }
        let mut stored = vec![0; staged.len()];
        let mut failed = None;
        for (i, n) in commits.join_all().await {
            match n {
                Ok(n) => stored[i] = n,
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        if let Some(e) = failed {
            return Err(e.into());
        }
        let kinds: Vec<_> = staged.into_iter().zip(stored).map(|(s, n)| s.into_summary(n, &clients)).collect();
        Ok(SnapshotSummary::new(full, kinds, &clients, started.elapsed()))
    })?;
    out
}
