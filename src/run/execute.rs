//! Journal every planned op, then apply them: on tokio, the store served on this thread.

use std::sync::Arc;

use serde_json::json;

use super::RunError;
use crate::apply::{self, Done, Spill};
use crate::bridge;
use crate::config::Config;
use crate::model::{Entity, Side};
use crate::reconcile;
use crate::settings::Settings;
use crate::store::{JournalEntry, Store};
use crate::{moodle, zoho};

/// Journals every planned op before anything is sent, a chunk of ops per transaction (chunks side by side on a
/// store that takes calls at once: each stands alone, and all are written before apply starts).
pub(super) fn journal(store: &dyn Store, ops: &Spill, run_id: i64) -> Result<(), RunError> {
    let chunks: Vec<_> = ops.entries().chunks(JOURNAL_CHUNK).collect();
    crate::store::side_by_side(store, &chunks, |chunk| -> Result<(), RunError> {
        let chunk = ops.read(chunk)?;
        store.journal_planned_with(&planned(&chunk, run_id), &crate::operator::journal::details(store, &chunk)?)?;
        Ok(())
    })
}

/// Planned ops journalled per transaction: the rows of one chunk are built at once, not the whole plan's.
pub(super) const JOURNAL_CHUNK: usize = 2_000;

fn planned(ops: &[reconcile::Op], run_id: i64) -> Vec<JournalEntry> {
    ops.iter()
        .map(|op| JournalEntry {
            run_id,
            seq: op.seq as i64,
            entity: op.entity.name().into(),
            key: op.key.clone(),
            target: op.target.name().into(),
            op: op.action.name().into(),
            changes: Some(json!(op.changes)),
            fingerprints: Some(json!(op.fingerprints)),
            outcome: "planned".into(),
            target_id: None,
            message: None,
        })
        .collect()
}

/// Apply on tokio, the store served on this thread.
pub(super) type Executed = (Vec<Done>, zoho::ZohoStats, moodle::MoodleStats, Vec<(Entity, String, String)>);

pub(super) fn execute(
    store: &dyn Store,
    settings: &Settings,
    config: &Config,
    plan: &Spill,
    stale: &[u64],
    run_id: i64,
    opts: &apply::Options,
) -> Result<Executed, RunError> {
    let settings = Arc::new(settings.clone());
    let needs = |side: Side| plan.entries().iter().any(|o| o.target == side && apply::sends(o.action));
    let out = bridge::serve(store, |b| async move {
        let z = if needs(Side::Zoho) || needs(Side::Moodle) {
            Some(
                zoho::Client::new(
                    &config.zoho,
                    zoho::ClientOptions::from_settings(&settings),
                    Some(bridge::token_cache(&b)),
                )
                .map_err(apply::ApplyError::from)?,
            )
        } else {
            None
        };
        // Not only Moodle writes: identity checks before creates and links read Moodle too (a fresh store
        // against an already-synced Moodle plans links and write-backs, and failed without a client).
        let m = if needs(Side::Moodle) || !plan.is_empty() {
            let o =
                moodle::ClientOptions { max_input_vars: settings.max_input_vars, ..moodle::ClientOptions::default() };
            Some(moodle::Client::new(&config.moodle, o).map_err(apply::ApplyError::from)?)
        } else {
            None
        };
        let ctx = apply::Ctx::new(z.clone(), m.clone(), b, settings.clone(), run_id, opts.clone(), plan).await?;
        let done = apply::apply(&ctx, plan, stale).await?;
        let zs = z.map(|z| z.stats()).unwrap_or_default();
        let ms = m.map(|m| m.stats()).unwrap_or_default();
        Ok::<_, apply::ApplyError>((done, zs, ms, ctx.written_back()))
    })?;
    Ok(out?)
}
