//! The run lock: one run at a time per store, and what a second one is told.

use super::RunError;
use crate::store::{RunLockGuard, Store};

/// Takes the store's run lock, held until the guard drops; a lock another run holds is
/// [`RunError::Locked`], naming that run.
pub(super) fn take(store: &dyn Store) -> Result<RunLockGuard, RunError> {
    match store.try_lock_runs()? {
        Some(lock) => Ok(lock),
        None => Err(RunError::Locked(held_by(store)?)),
    }
}

/// The message for a lock another run holds: which run, where, since when, and what to do.
fn held_by(store: &dyn Store) -> Result<String, RunError> {
    let holders = store.running_runs()?;
    let who = holders
        .first()
        .map(|r| {
            format!(
                "run {} ({}, pid {}, host {}, started {})",
                r.id,
                r.kind,
                r.pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into()),
                r.host.as_deref().unwrap_or("?"),
                r.started_at.format("%Y-%m-%d %H:%M:%S UTC")
            )
        })
        .unwrap_or_else(|| "another process".into());
    Ok(format!(
        "another sync is running: {who} holds the run lock of this store; wait for it to finish (only one run \
         at a time per store)"
    ))
}
