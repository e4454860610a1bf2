//! What both sides agree on once the ops are applied: the Moodle ids Zoho took (write-back) set on the stored
//! Zoho records, every other kind written to read back, and the agreed base recorded.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::json;

use super::report::ApiCalls;
use super::{RunError, RunOptions, Scope};
use crate::apply::{self, Done, Outcome, Spill};
use crate::config::Config;
use crate::model::{Entity, Kind, Record, Side};
use crate::progress::Bars;
use crate::reconcile;
use crate::settings::Settings;
use crate::snapshot::{self, Incremental, Mode};
use crate::store::{Store, StoreError};

/// Step 5: re-reads what was written (see [`refresh`]), counting its calls. A failure is logged, not fatal:
/// the next run reads it.
pub(super) fn reread(
    store: &dyn Store,
    settings: &Settings,
    config: &Config,
    opts: &RunOptions,
    only: Option<Entity>,
    reread: Option<(BTreeSet<Kind>, Mode)>,
    calls: &mut ApiCalls,
) {
    if let Some((kinds, mode)) = reread {
        let refresh = snapshot::Options {
            only,
            kinds: Some(kinds),
            mode,
            progress: opts.progress,
            site_checked: true,
            ..Default::default()
        };
        match snapshot::run(store, settings, config, &refresh) {
            Ok(s) => calls.refresh(&s),
            Err(e) => tracing::warn!("could not re-read what was written ({e}); the next run reads it"),
        }
    }
}

/// Step 6 after apply: records the agreed base (see [`record_base`]) and, applying a saved plan, restores the
/// bases its revert set aside.
pub(super) fn base(
    store: &dyn Store,
    settings: &Settings,
    opts: &RunOptions,
    only: Option<&Vec<Entity>>,
    based: &[Entity],
    run_id: i64,
    bars: &Bars,
) -> Result<(), RunError> {
    let bar = bars.step("baseline");
    record_base(store, settings, only, based, run_id)?;
    if matches!(opts.scope, Scope::Plan(_)) {
        crate::operator::revert::restore_bases(store, run_id)?;
    }
    bar.finish_with_message("recorded");
    Ok(())
}

/// The agreed base: of every entity, or (incremental) of the entities reconciled; `based` already has it (the
/// plan's own pass recorded it).
pub(super) fn record_base(
    store: &dyn Store,
    settings: &Settings,
    only: Option<&Vec<Entity>>,
    based: &[Entity],
    run_id: i64,
) -> Result<(), RunError> {
    let all = match only {
        None => reconcile::select(None, settings).unwrap_or_default(),
        Some(e) => e.clone(),
    };
    let rest: Vec<Entity> = all.into_iter().filter(|e| !based.contains(e)).collect();
    if !rest.is_empty() {
        reconcile::baseline_each(store, settings, &rest, Some(run_id))?;
    }
    Ok(())
}

/// What to re-read after apply: the kinds an applied op wrote to (Moodle ids written back excepted: see
/// [`patch_moodle_ids`]) — whole in a full run, the keys written in an incremental one. `None`: nothing.
pub(super) fn refresh(mode: &Mode, done: &[Done], ops: &Spill) -> std::io::Result<Option<(BTreeSet<Kind>, Mode)>> {
    let wrote: HashMap<u64, &Done> = done
        .iter()
        .filter(|d| matches!(d.outcome, Outcome::Applied { .. }) && apply::sends(d.action))
        .filter(|d| d.action != reconcile::Action::WriteBack)
        .map(|d| (d.seq, d))
        .collect();
    let mut kinds = BTreeSet::new();
    let mut inc = Incremental::default();
    ops.for_each(|op| {
        let Some(d) = wrote.get(&op.seq) else { return Ok(()) };
        let (zk, mk) = op.kinds();
        let target = d.outcome.target_id().map(str::to_string);
        match op.target {
            Side::Moodle => {
                kinds.insert(mk);
                if let Some(k) = target.or_else(|| op.moodle_id.clone()) {
                    // Moodle drops the course grade with the enrolment: re-read it too, or the store keeps it.
                    if op.action == reconcile::Action::Unenrol {
                        kinds.insert(Kind::MoodleGrade);
                        inc.moodle_keys.entry(Kind::MoodleGrade).or_default().push(k.clone());
                    }
                    inc.moodle_keys.entry(mk).or_default().push(k);
                }
            }
            Side::Zoho => {
                kinds.insert(zk);
                // A grade created in Zoho got its dashboard row in the same run (apply::moodle_side::
                // rows_of_new_grades), keyed by the new Zoho id: re-read that row too, or the store lacks it.
                if op.entity == Entity::Grade && op.action == reconcile::Action::Create {
                    if let Some(id) = &target {
                        kinds.insert(Kind::DashboardGrade);
                        inc.moodle_keys.entry(Kind::DashboardGrade).or_default().push(id.clone());
                    }
                }
                if let Some(id) = target.or_else(|| op.zoho_id.clone()) {
                    inc.zoho_ids.entry(zk).or_default().push(id);
                }
            }
        }
        Ok(())
    })?;
    if kinds.is_empty() {
        return Ok(None);
    }
    Ok(match mode {
        Mode::Full => Some((kinds, Mode::Full)),
        Mode::Incremental(_) => Some((kinds, Mode::Incremental(inc))),
    })
}

/// Sets the Moodle ids Zoho accepted on the stored Zoho records (`refs.moodle_id`, not a compared field), as
/// the next snapshot would read them, without reading every written-back record again.
pub(super) fn patch_moodle_ids(
    store: &dyn Store,
    run_id: i64,
    written: &[(Entity, String, String)],
) -> Result<(), StoreError> {
    let mut by_kind: BTreeMap<Kind, HashMap<&str, &str>> = BTreeMap::new();
    for (entity, zoho_id, moodle_id) in written {
        by_kind.entry(entity.kinds().0).or_default().insert(zoho_id, moodle_id);
    }
    for (kind, ids) in by_kind {
        let records: Vec<Record> = store
            .records(kind)?
            .into_iter()
            .filter_map(|mut r| {
                let m = ids.get(r.key.as_str())?;
                r.refs.insert("moodle_id".into(), json!(m));
                Some(r)
            })
            .collect();
        let sid = format!("write-back-{run_id}-{}", kind.name());
        store.stage_records(&sid, kind, &records)?;
        store.commit_snapshot(&sid, kind, false)?;
    }
    Ok(())
}
