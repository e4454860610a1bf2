//! The agreed base: for every pair that agrees, its link and its `sync_state` row, recorded after a run or by
//! tests before drifting.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use super::diff::Agreed;
use super::source::Records;
use super::{analyse, groups, select, Inputs, Options, ReconcileError};
use crate::model::{Entity, Kind};
use crate::model::{Link, SyncState};
use crate::settings::Settings;

/// What [`baseline`] recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BaselineSummary {
    pub links: u64,
    pub states: u64,
}

/// Records, for every pair that agrees, its link and its `sync_state` base. Apply calls this after a run;
/// tests use it to establish a base before drifting.
pub fn baseline<S: Records + ?Sized>(
    store: &S,
    settings: &Settings,
    run_id: Option<i64>,
) -> Result<BaselineSummary, ReconcileError> {
    baseline_of(store, settings, select(None, settings).unwrap_or_default(), run_id)
}

/// [`baseline`] for these entities only (an incremental run records the ones it reconciled).
pub fn baseline_of<S: Records + ?Sized>(
    store: &S,
    settings: &Settings,
    entities: Vec<Entity>,
    run_id: Option<i64>,
) -> Result<BaselineSummary, ReconcileError> {
    let inputs = Inputs::load(store, &entities)?;
    let analysis =
        analyse(&inputs, settings, &Options { entities, run_id, allow_mass_change: true, collect_agreed: true });
    record_agreed(store, &inputs, analysis.agreed, run_id)
}

/// [`baseline_of`] one group at a time, to hold less at once: students, teachers and classes together (the
/// records every entity resolves through, read once and kept), then each other entity with its own records,
/// dropped before the next (teaching and enrolments share Moodle's enrolments and go together).
pub fn baseline_each<S: Records + ?Sized>(
    store: &S,
    settings: &Settings,
    entities: &[Entity],
    run_id: Option<i64>,
) -> Result<BaselineSummary, ReconcileError> {
    let mut inputs = Inputs::load(store, &[])?;
    let identity: Vec<Kind> = inputs.records.keys().copied().collect();
    let mut sum = BaselineSummary::default();
    for group in groups(entities) {
        inputs.load_group(store, &group)?;
        let opts = Options { entities: group.clone(), run_id, allow_mass_change: true, collect_agreed: true };
        let analysis = analyse(&inputs, settings, &opts);
        let s = record_agreed(store, &inputs, analysis.agreed, run_id)?;
        sum.links += s.links;
        sum.states += s.states;
        inputs.unload_group(&identity);
    }
    Ok(sum)
}

/// Stores the links and `sync_state` rows of `agreed` that differ from what `inputs` read (a pair whose base
/// already has this fingerprint, and whose link is already stored, is not written again).
pub(super) fn record_agreed<S: Records + ?Sized>(
    store: &S,
    inputs: &Inputs,
    agreed: BTreeMap<Entity, Vec<Agreed>>,
    run_id: Option<i64>,
) -> Result<BaselineSummary, ReconcileError> {
    let (links, states) = base_rows(inputs, agreed, run_id);
    // Two tables, written side by side (on SQLite one after the other, by its one connection).
    let (linked, based) = std::thread::scope(|scope| {
        let linking = scope.spawn(|| store.put_links(&links));
        let based = store.put_sync_states(&states);
        (linking.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)), based)
    });
    linked?;
    based?;
    Ok(BaselineSummary { links: links.len() as u64, states: states.len() as u64 })
}

/// The links and `sync_state` rows of `agreed` that differ from what `inputs` read.
pub(super) fn base_rows(
    inputs: &Inputs,
    agreed: BTreeMap<Entity, Vec<Agreed>>,
    run_id: Option<i64>,
) -> (Vec<Link>, Vec<SyncState>) {
    let now = chrono::Utc::now();
    let mut links = Vec::new();
    let mut states = Vec::new();
    for (entity, agreed) in agreed {
        let linked: FxHashMap<&str, &str> =
            inputs.links(entity).iter().map(|l| (l.zoho_id.as_str(), l.moodle_id.as_str())).collect();
        let based: FxHashMap<&str, &str> =
            inputs.states(entity).iter().map(|s| (s.key.as_str(), s.fingerprint.as_str())).collect();
        for a in agreed {
            if let (Some(z), Some(m)) = (&a.zoho_id, &a.moodle_id) {
                if linked.get(z.as_str()) != Some(&m.as_str()) {
                    links.push(Link { entity, zoho_id: z.clone(), moodle_id: m.clone() });
                }
            }
            if based.get(a.key.as_str()) == Some(&a.fingerprint.as_str()) {
                continue;
            }
            states.push(SyncState {
                entity,
                key: a.key,
                fields: a.fields,
                fingerprint: a.fingerprint,
                synced_at: now,
                run_id,
            });
        }
    }
    (links, states)
}
