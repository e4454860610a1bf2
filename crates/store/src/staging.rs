//! PostgreSQL's staging of snapshot pages: in the process's memory until their kind commits, then one merge.
//!
//! Staging every page in `records_staging` wrote each record twice (staged, then swapped in) and made the
//! server parse its JSON twice, even when nothing had changed; that was most of the gap to SQLite (issue #25).
//! Held here, a page costs no round trip, and the commit reads the kind's keys, fingerprints and the MD5 of
//! their stored JSON, then writes only the records that differ and deletes only the keys that went.
//!
//! Memory is bounded: past [`STAGE_MEMORY`] of staged JSON (all snapshots of the store together), the snapshot
//! that crossed it moves its pages to `records_staging` and stages the rest of them there, as before. A process
//! killed while staging leaves nothing behind (pages in memory) or rows of a snapshot id no one will commit.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Staged records a PostgreSQL store holds in memory at most, for all snapshots in progress together, by
/// [`Row::size`]'s count. A college stages about 9 KB per student (1,500 students ≈ 14 MB, 5,000 ≈ 45 MB); a
/// larger one spills the snapshot that crossed it to `records_staging`.
pub const STAGE_MEMORY: usize = 64 << 20;

/// What a record costs in memory beside its text (the map's node, three string headers).
const ROW_OVERHEAD: usize = 96;

/// A staged record: its fingerprint and its stored JSON (`records.fields`), serialised once.
pub(crate) struct Row {
    pub fingerprint: String,
    pub fields: String,
}

impl Row {
    /// Bytes the row holds in memory under a key of `key_len` bytes.
    fn size(&self, key_len: usize) -> usize {
        key_len + self.fingerprint.len() + self.fields.len() + ROW_OVERHEAD
    }
}

/// Where a snapshot's pages are, when it commits or is discarded.
pub(crate) enum Staged {
    /// All in memory, each key's last version.
    Memory(BTreeMap<String, Row>),
    /// In `records_staging` (the snapshot spilled, or was staged by another store handle).
    Table,
}

#[derive(Default)]
struct Pages {
    rows: BTreeMap<String, Row>,
    bytes: usize,
    /// Crossed the limit: this snapshot's pages are in `records_staging` from then on.
    spilled: bool,
}

/// The snapshots a store is staging. Pages of one snapshot are staged one after the other (a kind's fetch
/// awaits each), so the order of its writes to `records_staging` is the order of its pages.
pub(crate) struct Staging {
    inner: Mutex<Inner>,
}

struct Inner {
    snapshots: HashMap<String, Pages>,
    bytes: usize,
    limit: usize,
}

impl Default for Staging {
    fn default() -> Staging {
        Staging { inner: Mutex::new(Inner { snapshots: HashMap::new(), bytes: 0, limit: STAGE_MEMORY }) }
    }
}

impl Staging {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn set_limit(&self, bytes: usize) {
        self.lock().limit = bytes;
    }

    /// Adds a page. Returns the rows that must go to `records_staging` now: the page itself once the snapshot
    /// has spilled, or every row it held when this page made the store cross its limit.
    pub fn add(&self, snapshot_id: &str, page: Vec<(String, Row)>) -> Vec<(String, Row)> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let pages = inner.snapshots.entry(snapshot_id.to_string()).or_default();
        if pages.spilled {
            return page;
        }
        for (key, row) in page {
            let (key_len, size) = (key.len(), row.size(key.len()));
            if let Some(old) = pages.rows.insert(key, row) {
                let freed = old.size(key_len);
                pages.bytes -= freed;
                inner.bytes -= freed;
            }
            pages.bytes += size;
            inner.bytes += size;
        }
        if inner.bytes <= inner.limit {
            return Vec::new();
        }
        pages.spilled = true;
        inner.bytes -= pages.bytes;
        pages.bytes = 0;
        std::mem::take(&mut pages.rows).into_iter().collect()
    }

    /// Takes a snapshot's pages to commit or discard them. `None`: this handle staged nothing for it.
    pub fn take(&self, snapshot_id: &str) -> Option<Staged> {
        let mut inner = self.lock();
        let pages = inner.snapshots.remove(snapshot_id)?;
        inner.bytes -= pages.bytes;
        Some(if pages.spilled { Staged::Table } else { Staged::Memory(pages.rows) })
    }
}
