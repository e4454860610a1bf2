//! Dirty marks: which keys an incremental run reads, and how each taken mark is settled once the run is over
//! (done, or failed: retried after its back-off, parked after `retry.policy.max_retries` attempts).

use std::collections::{HashMap, HashSet};

use crate::apply::Done;
use crate::model::{Entity, Kind};
use crate::settings::Settings;
use crate::snapshot::{self, Incremental};
use crate::store::events::{retry_delay, DirtyMark};
use crate::store::{Store, StoreError};

/// Step 7: settles the marks an incremental run took, per key: a key an op failed for, or the snapshot refused,
/// stays dirty with that error ([`fail_mark`]); the rest are done. Returns how many stayed dirty.
pub(super) fn settle(
    store: &dyn Store,
    settings: &Settings,
    claimed: &mut Vec<DirtyMark>,
    done: &[Done],
    refused: &HashMap<String, String>,
) -> Result<usize, StoreError> {
    if claimed.is_empty() {
        return Ok(0);
    }
    let failed_keys: HashSet<&str> =
        done.iter().filter(|d| d.outcome.is_failure()).flat_map(|d| d.key.split('|')).collect();
    let (bad, good): (Vec<DirtyMark>, Vec<DirtyMark>) = std::mem::take(claimed)
        .into_iter()
        .partition(|m| failed_keys.contains(m.key.key.as_str()) || refused.contains_key(m.key.key.as_str()));
    store.complete_dirty(&good)?;
    for m in &bad {
        let msg = refused
            .get(m.key.key.as_str())
            .cloned()
            .or_else(|| {
                done.iter()
                    .find(|d| d.outcome.is_failure() && d.key.split('|').any(|k| k == m.key.key))
                    .and_then(|d| d.outcome.message())
            })
            .unwrap_or_else(|| "sync failed".into());
        fail_mark(store, settings, m, &msg)?;
    }
    Ok(bad.len())
}

/// How long a parked dirty key waits: in effect, until a new event for its record arrives (that makes it due
/// at once) or someone runs `zmsync events retry`.
const PARKED: std::time::Duration = std::time::Duration::from_secs(366 * 86_400);

/// Settles a dirty mark whose sync failed: retried once due (`retry.policy` back-off), or, once it has used
/// `retry.policy.max_retries` attempts, parked with its error so it is no longer retried run after run; `zmsync
/// events status` lists it either way.
pub(super) fn fail_mark(store: &dyn Store, settings: &Settings, m: &DirtyMark, error: &str) -> Result<(), StoreError> {
    let attempts = m.attempts + 1;
    let max = settings.retry.max_retries as i32;
    if attempts >= max.max(1) {
        let msg = format!(
            "parked after {attempts} failed attempts (retry.policy.max_retries = {max}): {error}; a new event for \
             the record, or `zmsync events retry`, tries it again"
        );
        store.fail_dirty(m, &msg, PARKED)
    } else {
        store.fail_dirty(m, error, retry_delay(&settings.retry, attempts))
    }
}

/// The entities an incremental snapshot read records of, or that a dirty mark names.
pub(super) fn touched(entities: &[Entity], snap: &snapshot::SnapshotSummary, marks: &[DirtyMark]) -> Vec<Entity> {
    let kinds: HashSet<Kind> =
        snap.kinds.iter().filter(|k| k.records > 0 || !k.removed.is_empty()).map(|k| k.kind).collect();
    let marked: HashSet<Entity> = marks.iter().filter_map(|m| mark_entity(&m.key.entity)).collect();
    entities
        .iter()
        .copied()
        .filter(|e| {
            let (z, m) = e.kinds();
            kinds.contains(&z) || kinds.contains(&m) || marked.contains(e)
        })
        .collect()
}

/// The entity a dirty mark's entity name stands for (the receiver also uses Moodle's words).
fn mark_entity(name: &str) -> Option<Entity> {
    Entity::from_name(name).or(match name {
        "enrolment" => Some(Entity::Enrollment),
        "user" => Some(Entity::Student),
        "course" => Some(Entity::Class),
        _ => None,
    })
}

/// Dirty marks as the keys an incremental snapshot fetches.
pub(super) fn incremental_keys(marks: &[DirtyMark]) -> Incremental {
    let mut inc = Incremental::default();
    for m in marks {
        let k = &m.key;
        let Some(e) = mark_entity(&k.entity) else { continue };
        let (zk, mk) = e.kinds();
        if k.source == "moodle" {
            inc.moodle_keys.entry(mk).or_default().push(k.key.clone());
            // An enrolment or grade event names its user: read the user too, so a user deleted in Moodle
            // (which unenrols it everywhere: these events) is seen gone by this run, not only the next full one.
            if let (Kind::MoodleEnrolment | Kind::MoodleGrade, Some((_, user))) = (mk, k.key.split_once(':')) {
                inc.moodle_keys.entry(Kind::MoodleUser).or_default().push(user.to_string());
            }
        } else {
            inc.zoho_ids.entry(zk).or_default().push(k.key.clone());
        }
    }
    inc
}
