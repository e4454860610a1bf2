//! Snapshots (`records`, staged before they commit), identity links (`links`) and the agreed base of the 3-way
//! diff (`sync_state`).
//!
//! A snapshot streams: each page is staged as it arrives, then one transaction per module swaps the staged
//! rows into `records`. A run killed half-way leaves `records` as it was. SQLite stages each page in
//! `records_staging` in its own short transaction (memory stays flat, and a running receiver is never blocked
//! for long); PostgreSQL holds the pages in memory up to a bound and writes only what differs
//! ([`super::staging`]).

use chrono::{DateTime, Utc};
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{Json, ToSql, Type};
use rusqlite::params;

use super::postgres::PgStore;
use super::sqlite::{parse_ts, ts, SqliteStore};
use super::staging::{Row, Staged};
use super::{now, Result, StoreError};
use zmsync_core::model::{md5_hex, Entity, Fields, Kind, Record};
pub use zmsync_core::model::{Link, SyncState};
use zmsync_core::reconcile::SourceError;

pub trait RecordStore {
    /// Adds one page of a snapshot in progress. A key staged twice keeps the last version.
    fn stage_records(&self, snapshot_id: &str, kind: Kind, records: &[Record]) -> Result<()>;
    /// Moves a staged snapshot into `records` in one transaction. `full`: the snapshot is the whole module, so
    /// records it does not contain are removed; otherwise (an incremental fetch) staged records are upserted.
    /// Returns the number of records the kind holds afterwards.
    fn commit_snapshot(&self, snapshot_id: &str, kind: Kind, full: bool) -> Result<u64>;
    /// Drops a staged snapshot that will not be committed.
    fn discard_snapshot(&self, snapshot_id: &str) -> Result<()>;
    fn records(&self, kind: Kind) -> Result<Vec<Record>>;
    fn record_count(&self, kind: Kind) -> Result<u64>;
    /// Removes records (e.g. ones an incremental fetch found deleted).
    fn delete_records(&self, kind: Kind, keys: &[String]) -> Result<()>;

    fn links(&self, entity: Entity) -> Result<Vec<Link>>;
    /// Upserts links by (entity, zoho_id). A Moodle id linked to another Zoho id of the entity is moved.
    fn put_links(&self, links: &[Link]) -> Result<()>;
    fn delete_links(&self, entity: Entity, zoho_ids: &[String]) -> Result<()>;

    fn sync_states(&self, entity: Entity) -> Result<Vec<SyncState>>;
    fn put_sync_states(&self, states: &[SyncState]) -> Result<()>;
    fn delete_sync_states(&self, entity: Entity, keys: &[String]) -> Result<()>;

    /// Convenience for tests and small modules: stage and commit a whole module at once.
    fn replace_records(&self, kind: Kind, records: &[Record]) -> Result<u64> {
        let id = format!("replace-{}-{}", kind.name(), now().timestamp_micros());
        self.stage_records(&id, kind, records)?;
        self.commit_snapshot(&id, kind, true)
    }
}

/// What `records.fields` holds: a record's fields and the references apply needs beside them.
#[derive(Debug, serde::Serialize)]
struct StoredRef<'a> {
    fields: &'a Fields,
    refs: &'a Fields,
}

/// [`StoredRef`] read back.
#[derive(serde::Deserialize)]
struct Stored {
    #[serde(default)]
    fields: Fields,
    #[serde(default)]
    refs: Fields,
}

fn stored_fields(r: &Record) -> StoredRef<'_> {
    StoredRef { fields: &r.fields, refs: &r.refs }
}

fn record_from(kind: Kind, key: String, fingerprint: String, stored: Stored) -> Record {
    Record { kind, key, fields: stored.fields, refs: stored.refs, fingerprint }
}

/// What a batch of [`RecordStore::put_links`] does, as if its links were stored one after the other, so that a
/// dialect can store it as sets: every Moodle id it links is taken from any other Zoho id that held it (`claims`),
/// each Zoho id keeps its last pairing (`linked`), and the Zoho ids a later link of the batch took the Moodle id
/// of are unlinked (`gone`).
struct LinkBatch<'a> {
    /// Every (entity, Zoho id, Moodle id) the batch links, at any point.
    claims: std::collections::BTreeSet<(&'a str, &'a str, &'a str)>,
    /// (entity, Zoho id) → Moodle id at the end, one Zoho id per Moodle id.
    linked: std::collections::BTreeMap<(&'a str, &'a str), &'a str>,
    /// Zoho ids the batch linked and a later link unlinked: their stored rows go.
    gone: std::collections::BTreeSet<(&'a str, &'a str)>,
}

impl<'a> LinkBatch<'a> {
    fn of(links: &'a [Link]) -> LinkBatch<'a> {
        let mut linked = std::collections::BTreeMap::new();
        let mut holder: std::collections::HashMap<(&str, &str), &str> = std::collections::HashMap::new();
        let mut gone = std::collections::BTreeSet::new();
        let mut claims = std::collections::BTreeSet::new();
        for l in links {
            let (e, z, m) = (l.entity.name(), l.zoho_id.as_str(), l.moodle_id.as_str());
            claims.insert((e, z, m));
            if let Some(other) = holder.insert((e, m), z).filter(|other| *other != z) {
                linked.remove(&(e, other));
                gone.insert((e, other));
            }
            if let Some(old) = linked.insert((e, z), m).filter(|old| *old != m) {
                holder.remove(&(e, old));
            }
            gone.remove(&(e, z));
        }
        LinkBatch { claims, linked, gone }
    }

    fn is_empty(&self) -> bool {
        self.claims.is_empty()
    }

    /// Columns (entities, Zoho ids, Moodle ids) of every pairing the batch makes on its way.
    fn claims(&self) -> (Vec<&'a str>, Vec<&'a str>, Vec<&'a str>) {
        let c = &self.claims;
        (c.iter().map(|k| k.0).collect(), c.iter().map(|k| k.1).collect(), c.iter().map(|k| k.2).collect())
    }

    /// Columns (entities, Zoho ids, Moodle ids) of what the batch links.
    fn linked(&self) -> (Vec<&'a str>, Vec<&'a str>, Vec<&'a str>) {
        let entities = self.linked.keys().map(|k| k.0).collect();
        let zoho = self.linked.keys().map(|k| k.1).collect();
        let moodle = self.linked.values().copied().collect();
        (entities, zoho, moodle)
    }

    /// Columns (entities, Zoho ids) of the Zoho ids the batch unlinked.
    fn gone(&self) -> (Vec<&'a str>, Vec<&'a str>) {
        (self.gone.iter().map(|k| k.0).collect(), self.gone.iter().map(|k| k.1).collect())
    }
}

// ---- SQLite ----------------------------------------------------------------------------------------------

impl RecordStore for SqliteStore {
    fn stage_records(&self, snapshot_id: &str, kind: Kind, records: &[Record]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO records_staging (snapshot_id, source, entity, key, source_id, fingerprint, fields, fetched_at)
                 VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, ?7)
                 ON CONFLICT (snapshot_id, key) DO UPDATE SET fingerprint = excluded.fingerprint, fields = excluded.fields",
            )?;
            let at = ts(now());
            for r in records {
                stmt.execute(params![
                    snapshot_id,
                    kind.side().name(),
                    kind.name(),
                    r.key,
                    r.fingerprint,
                    serde_json::to_string(&stored_fields(r))?,
                    at
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn commit_snapshot(&self, snapshot_id: &str, kind: Kind, full: bool) -> Result<u64> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (source, entity) = (kind.side().name(), kind.name());
        if full {
            tx.execute("DELETE FROM records WHERE source = ?1 AND entity = ?2", params![source, entity])?;
        }
        tx.execute(
            "INSERT INTO records (source, entity, key, source_id, fingerprint, fields, fetched_at)
             SELECT source, entity, key, source_id, fingerprint, fields, fetched_at FROM records_staging
              WHERE snapshot_id = ?1 AND source = ?2 AND entity = ?3
             ON CONFLICT (source, entity, key) DO UPDATE SET source_id = excluded.source_id,
                fingerprint = excluded.fingerprint, fields = excluded.fields, fetched_at = excluded.fetched_at",
            params![snapshot_id, source, entity],
        )?;
        tx.execute("DELETE FROM records_staging WHERE snapshot_id = ?1", params![snapshot_id])?;
        let n: i64 = tx.query_row(
            "SELECT COUNT(*) FROM records WHERE source = ?1 AND entity = ?2",
            params![source, entity],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok(n as u64)
    }

    fn discard_snapshot(&self, snapshot_id: &str) -> Result<()> {
        self.conn().execute("DELETE FROM records_staging WHERE snapshot_id = ?1", params![snapshot_id])?;
        Ok(())
    }

    fn records(&self, kind: Kind) -> Result<Vec<Record>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT key, fingerprint, fields FROM records WHERE source = ?1 AND entity = ?2 ORDER BY key",
        )?;
        let rows = stmt
            .query_map(params![kind.side().name(), kind.name()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(|(k, f, j)| Ok(record_from(kind, k, f, serde_json::from_str(&j)?))).collect()
    }

    fn record_count(&self, kind: Kind) -> Result<u64> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM records WHERE source = ?1 AND entity = ?2",
            params![kind.side().name(), kind.name()],
            |r| r.get(0),
        )?;
        Ok(n as u64)
    }

    fn delete_records(&self, kind: Kind, keys: &[String]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for k in keys {
            tx.execute(
                "DELETE FROM records WHERE source = ?1 AND entity = ?2 AND key = ?3",
                params![kind.side().name(), kind.name(), k],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn links(&self, entity: Entity) -> Result<Vec<Link>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT zoho_id, moodle_id FROM links WHERE entity = ?1 ORDER BY zoho_id")?;
        let rows = stmt
            .query_map([entity.name()], |r| Ok(Link { entity, zoho_id: r.get(0)?, moodle_id: r.get(1)? }))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn put_links(&self, links: &[Link]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let at = ts(now());
        for l in links {
            tx.execute(
                "DELETE FROM links WHERE entity = ?1 AND moodle_id = ?2 AND zoho_id <> ?3",
                params![l.entity.name(), l.moodle_id, l.zoho_id],
            )?;
            tx.execute(
                "INSERT INTO links (entity, zoho_id, moodle_id, created_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (entity, zoho_id) DO UPDATE SET moodle_id = excluded.moodle_id",
                params![l.entity.name(), l.zoho_id, l.moodle_id, at],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    fn delete_links(&self, entity: Entity, zoho_ids: &[String]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for z in zoho_ids {
            tx.execute("DELETE FROM links WHERE entity = ?1 AND zoho_id = ?2", params![entity.name(), z])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn sync_states(&self, entity: Entity) -> Result<Vec<SyncState>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT key, fields, fingerprint, synced_at, run_id FROM sync_state WHERE entity = ?1 ORDER BY key",
        )?;
        let rows = stmt
            .query_map([entity.name()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(key, fields, fingerprint, at, run_id)| {
                Ok(SyncState {
                    entity,
                    key,
                    fields: serde_json::from_str(&fields)?,
                    fingerprint,
                    synced_at: parse_ts(&at)?,
                    run_id,
                })
            })
            .collect()
    }

    fn put_sync_states(&self, states: &[SyncState]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO sync_state (entity, key, fields, fingerprint, synced_at, run_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (entity, key) DO UPDATE SET fields = excluded.fields, fingerprint = excluded.fingerprint,
                    synced_at = excluded.synced_at, run_id = excluded.run_id",
            )?;
            for s in states {
                stmt.execute(params![
                    s.entity.name(),
                    s.key,
                    serde_json::to_string(&s.fields)?,
                    s.fingerprint,
                    ts(s.synced_at),
                    s.run_id
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn delete_sync_states(&self, entity: Entity, keys: &[String]) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        for k in keys {
            tx.execute("DELETE FROM sync_state WHERE entity = ?1 AND key = ?2", params![entity.name(), k])?;
        }
        tx.commit()?;
        Ok(())
    }
}

// ---- PostgreSQL ------------------------------------------------------------------------------------------
// Bulk writes go as sets: one statement over arrays (UNNEST) per call, not one per row. Statements are sent
// typed, so each costs one round trip without a separate prepare.

impl RecordStore for PgStore {
    fn stage_records(&self, snapshot_id: &str, kind: Kind, records: &[Record]) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let mut page = Vec::with_capacity(records.len());
        for r in records {
            let row = Row { fingerprint: r.fingerprint.clone(), fields: serde_json::to_string(&stored_fields(r))? };
            page.push((r.key.clone(), row));
        }
        let spill = self.staging.add(snapshot_id, page);
        self.stage_in_table(snapshot_id, kind, spill)
    }

    fn commit_snapshot(&self, snapshot_id: &str, kind: Kind, full: bool) -> Result<u64> {
        match self.staging.take(snapshot_id) {
            Some(Staged::Memory(rows)) => match self.commit_rows(kind, &rows, full, true) {
                // A record of the kind appeared between the read and the copy (another writer): the copy failed
                // whole, so the commit is made again with the new records upserted.
                Err(e) if collided(&e) => {
                    tracing::debug!("a record appeared while the snapshot was committed; committing it as upserts");
                    self.commit_rows(kind, &rows, full, false)
                }
                other => other,
            },
            Some(Staged::Table) | None => self.commit_table(snapshot_id, kind, full),
        }
    }

    fn discard_snapshot(&self, snapshot_id: &str) -> Result<()> {
        if let Some(Staged::Memory(_)) = self.staging.take(snapshot_id) {
            return Ok(());
        }
        self.conn()?
            .execute_typed("DELETE FROM records_staging WHERE snapshot_id = $1", &[(&snapshot_id, Type::TEXT)])?;
        Ok(())
    }

    fn records(&self, kind: Kind) -> Result<Vec<Record>> {
        let rows = self.conn()?.query_typed(
            "SELECT key, fingerprint, fields FROM records WHERE source = $1 AND entity = $2 ORDER BY key",
            &[(&kind.side().name(), Type::TEXT), (&kind.name(), Type::TEXT)],
        )?;
        rows.into_iter()
            .map(|r| Ok(record_from(kind, r.try_get(0)?, r.try_get(1)?, r.try_get::<_, Json<Stored>>(2)?.0)))
            .collect()
    }

    fn record_count(&self, kind: Kind) -> Result<u64> {
        let n: i64 = self
            .conn()?
            .query_typed_one(
                "SELECT COUNT(*) FROM records WHERE source = $1 AND entity = $2",
                &[(&kind.side().name(), Type::TEXT), (&kind.name(), Type::TEXT)],
            )?
            .get(0);
        Ok(n as u64)
    }

    fn delete_records(&self, kind: Kind, keys: &[String]) -> Result<()> {
        self.conn()?.execute_typed(
            "DELETE FROM records WHERE source = $1 AND entity = $2 AND key = ANY($3)",
            &[(&kind.side().name(), Type::TEXT), (&kind.name(), Type::TEXT), (&keys, Type::TEXT_ARRAY)],
        )?;
        Ok(())
    }

    fn links(&self, entity: Entity) -> Result<Vec<Link>> {
        let rows = self.conn()?.query_typed(
            "SELECT zoho_id, moodle_id FROM links WHERE entity = $1 ORDER BY zoho_id",
            &[(&entity.name(), Type::TEXT)],
        )?;
        Ok(rows.into_iter().map(|r| Link { entity, zoho_id: r.get(0), moodle_id: r.get(1) }).collect())
    }

    fn put_links(&self, links: &[Link]) -> Result<()> {
        let batch = LinkBatch::of(links);
        if batch.is_empty() {
            return Ok(());
        }
        // Whatever the number of links: drop the Zoho ids the batch itself unlinked and every other holder of
        // a Moodle id the batch links, then upsert the last pairings (no row left can collide on a Moodle id).
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let (gone_entities, gone_ids) = batch.gone();
        if !gone_ids.is_empty() {
            tx.execute_typed(
                "DELETE FROM links AS l USING UNNEST($1, $2) AS g(entity, zoho_id)
                  WHERE l.entity = g.entity AND l.zoho_id = g.zoho_id",
                &[(&gone_entities, Type::TEXT_ARRAY), (&gone_ids, Type::TEXT_ARRAY)],
            )?;
        }
        let (entities, zoho_ids, moodle_ids) = batch.claims();
        tx.execute_typed(
            "DELETE FROM links AS l USING UNNEST($1, $2, $3) AS n(entity, zoho_id, moodle_id)
              WHERE l.entity = n.entity AND l.moodle_id = n.moodle_id AND l.zoho_id <> n.zoho_id",
            &[(&entities, Type::TEXT_ARRAY), (&zoho_ids, Type::TEXT_ARRAY), (&moodle_ids, Type::TEXT_ARRAY)],
        )?;
        let (entities, zoho_ids, moodle_ids) = batch.linked();
        tx.execute_typed(
            "INSERT INTO links (entity, zoho_id, moodle_id, created_at)
             SELECT entity, zoho_id, moodle_id, $4 FROM UNNEST($1, $2, $3) AS n(entity, zoho_id, moodle_id)
             ON CONFLICT (entity, zoho_id) DO UPDATE SET moodle_id = excluded.moodle_id",
            &[
                (&entities, Type::TEXT_ARRAY),
                (&zoho_ids, Type::TEXT_ARRAY),
                (&moodle_ids, Type::TEXT_ARRAY),
                (&now(), Type::TIMESTAMPTZ),
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn delete_links(&self, entity: Entity, zoho_ids: &[String]) -> Result<()> {
        self.conn()?.execute_typed(
            "DELETE FROM links WHERE entity = $1 AND zoho_id = ANY($2)",
            &[(&entity.name(), Type::TEXT), (&zoho_ids, Type::TEXT_ARRAY)],
        )?;
        Ok(())
    }

    fn sync_states(&self, entity: Entity) -> Result<Vec<SyncState>> {
        let rows = self.conn()?.query_typed(
            "SELECT key, fields, fingerprint, synced_at, run_id FROM sync_state WHERE entity = $1 ORDER BY key",
            &[(&entity.name(), Type::TEXT)],
        )?;
        rows.into_iter()
            .map(|r| {
                Ok(SyncState {
                    entity,
                    key: r.get(0),
                    fields: r.try_get::<_, Json<Fields>>(1)?.0,
                    fingerprint: r.get(2),
                    synced_at: r.get(3),
                    run_id: r.get(4),
                })
            })
            .collect()
    }

    fn put_sync_states(&self, states: &[SyncState]) -> Result<()> {
        // ON CONFLICT cannot touch a row twice in one statement: the last state of a key wins, as the
        // row-at-a-time upserts left it.
        let mut last: std::collections::BTreeMap<(&str, &str), &SyncState> = std::collections::BTreeMap::new();
        for st in states {
            last.insert((st.entity.name(), st.key.as_str()), st);
        }
        // A whole base (14,000 rows at 1,500 students) goes as chunks side by side; each row stands alone.
        let last: Vec<&SyncState> = last.into_values().collect();
        let chunks: Vec<&[&SyncState]> = last.chunks(SET_CHUNK).collect();
        super::side_by_side(self, &chunks, |chunk| self.upsert_sync_states(chunk))
    }

    fn delete_sync_states(&self, entity: Entity, keys: &[String]) -> Result<()> {
        self.conn()?.execute_typed(
            "DELETE FROM sync_state WHERE entity = $1 AND key = ANY($2)",
            &[(&entity.name(), Type::TEXT), (&keys, Type::TEXT_ARRAY)],
        )?;
        Ok(())
    }
}

/// A COPY of rows read as new met a row another writer added meanwhile (the copy failed whole).
fn collided(e: &StoreError) -> bool {
    matches!(e, StoreError::Postgres(e) if e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION))
}

/// JSON already serialised, sent as a `json` value (its binary form is the text itself).
#[derive(Debug)]
struct RawJson<'a>(&'a str);

impl ToSql for RawJson<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        <&str as ToSql>::to_sql(&self.0, ty, out)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSON
    }

    postgres::types::to_sql_checked!();
}

/// Rows one statement of a snapshot's merge carries (a kind's records go in one transaction either way).
const MERGE_CHUNK: usize = 10_000;

impl PgStore {
    /// Stages rows in `records_staging` (a snapshot that spilled from memory). Last version of a key wins.
    fn stage_in_table(&self, snapshot_id: &str, kind: Kind, rows: Vec<(String, Row)>) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        // ON CONFLICT cannot touch one row twice in one statement: keep each key's last version.
        let rows: std::collections::BTreeMap<String, Row> = rows.into_iter().collect();
        let keys: Vec<&str> = rows.keys().map(String::as_str).collect();
        let fps: Vec<&str> = rows.values().map(|r| r.fingerprint.as_str()).collect();
        let fields: Vec<&str> = rows.values().map(|r| r.fields.as_str()).collect();
        self.conn()?.execute_typed(
            "INSERT INTO records_staging (snapshot_id, source, entity, key, source_id, fingerprint, fields, fetched_at)
             SELECT $1, $2, $3, k, k, f, j::json, $4 FROM UNNEST($5, $6, $7) AS t(k, f, j)
             ON CONFLICT (snapshot_id, key) DO UPDATE SET fingerprint = excluded.fingerprint, fields = excluded.fields",
            &[
                (&snapshot_id, Type::TEXT),
                (&kind.side().name(), Type::TEXT),
                (&kind.name(), Type::TEXT),
                (&now(), Type::TIMESTAMPTZ),
                (&keys, Type::TEXT_ARRAY),
                (&fps, Type::TEXT_ARRAY),
                (&fields, Type::TEXT_ARRAY),
            ],
        )?;
        Ok(())
    }

    /// Commits a snapshot staged in memory: reads the kind's keys, fingerprints and the MD5 of their stored
    /// JSON, then writes only the records that differ and, for a full snapshot, deletes the keys that went.
    /// `copy`: new records go as one COPY (else as an upsert, which another writer's rows cannot make fail).
    fn commit_rows(
        &self,
        kind: Kind,
        rows: &std::collections::BTreeMap<String, Row>,
        full: bool,
        copy: bool,
    ) -> Result<u64> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let (source, entity) = (kind.side().name(), kind.name());
        let held: std::collections::HashMap<String, (String, String)> = tx
            .query_typed(
                "SELECT key, fingerprint, CASE WHEN source_id = key THEN md5(fields::text) END
                   FROM records WHERE source = $1 AND entity = $2",
                &[(&source, Type::TEXT), (&entity, Type::TEXT)],
            )?
            .into_iter()
            .map(|r| (r.get(0), (r.get(1), r.get::<_, Option<String>>(2).unwrap_or_default())))
            .collect();
        if full {
            let gone: Vec<&str> = held.keys().filter(|k| !rows.contains_key(*k)).map(String::as_str).collect();
            if !gone.is_empty() {
                tx.execute_typed(
                    "DELETE FROM records WHERE source = $1 AND entity = $2 AND key = ANY($3)",
                    &[(&source, Type::TEXT), (&entity, Type::TEXT), (&gone, Type::TEXT_ARRAY)],
                )?;
            }
        }
        // New keys are copied in (the server fills pages a batch of rows at a time); changed ones upserted.
        let (mut added, mut changed) = (Vec::new(), Vec::new());
        for (key, row) in rows {
            match held.get(key) {
                None if !copy => changed.push((key, row)),
                None => added.push((key, row)),
                Some((fp, md5)) if *fp != row.fingerprint || *md5 != md5_hex(row.fields.as_bytes()) => {
                    changed.push((key, row))
                }
                Some(_) => {}
            }
        }
        let at = now();
        if !added.is_empty() {
            let sink = tx.copy_in(
                "COPY records (source, entity, key, source_id, fingerprint, fields, fetched_at) FROM STDIN (FORMAT binary)",
            )?;
            let (text, json) = (Type::TEXT, Type::JSON);
            let types = [text.clone(), text.clone(), text.clone(), text.clone(), text, json, Type::TIMESTAMPTZ];
            let mut w = BinaryCopyInWriter::new(sink, &types);
            for (key, row) in added {
                w.write(&[&source, &entity, key, key, &row.fingerprint, &RawJson(&row.fields), &at])?;
            }
            w.finish()?;
        }
        for chunk in changed.chunks(MERGE_CHUNK) {
            let keys: Vec<&str> = chunk.iter().map(|(k, _)| k.as_str()).collect();
            let fps: Vec<&str> = chunk.iter().map(|(_, r)| r.fingerprint.as_str()).collect();
            let fields: Vec<&str> = chunk.iter().map(|(_, r)| r.fields.as_str()).collect();
            tx.execute_typed(
                "INSERT INTO records (source, entity, key, source_id, fingerprint, fields, fetched_at)
                 SELECT $1, $2, k, k, f, j::json, $3 FROM UNNEST($4, $5, $6) AS t(k, f, j)
                 ON CONFLICT (source, entity, key) DO UPDATE SET source_id = excluded.source_id,
                    fingerprint = excluded.fingerprint, fields = excluded.fields, fetched_at = excluded.fetched_at",
                &[
                    (&source, Type::TEXT),
                    (&entity, Type::TEXT),
                    (&at, Type::TIMESTAMPTZ),
                    (&keys, Type::TEXT_ARRAY),
                    (&fps, Type::TEXT_ARRAY),
                    (&fields, Type::TEXT_ARRAY),
                ],
            )?;
        }
        tx.commit()?;
        let n = if full { rows.len() } else { held.len() + rows.keys().filter(|k| !held.contains_key(*k)).count() };
        Ok(n as u64)
    }

    /// Commits a snapshot staged in `records_staging` in one transaction.
    fn commit_table(&self, snapshot_id: &str, kind: Kind, full: bool) -> Result<u64> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let (source, entity) = (kind.side().name(), kind.name());
        let kind_of = [(&source as &(dyn ToSql + Sync), Type::TEXT), (&entity, Type::TEXT)];
        let with_id = [kind_of[0].clone(), kind_of[1].clone(), (&snapshot_id, Type::TEXT)];
        // Only what changed is written: a sync mostly finds its records as the last one left them, and
        // rewriting every row (and its index entries) was most of a no-change run's time on PostgreSQL.
        if full {
            // The keys to remove first, then a delete by them: joined in one statement, the planner (believing
            // the freshly written rows few, as it does until autovacuum counts them) nests a loop over them per
            // record, quadratic in the module's size. A bound array is looked up through the primary key.
            let gone: Vec<String> = tx
                .query_typed(
                    "SELECT key FROM records WHERE source = $1 AND entity = $2
                     EXCEPT SELECT key FROM records_staging WHERE snapshot_id = $3",
                    &with_id,
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if !gone.is_empty() {
                tx.execute_typed(
                    "DELETE FROM records WHERE source = $1 AND entity = $2 AND key = ANY($3)",
                    &[kind_of[0].clone(), kind_of[1].clone(), (&gone, Type::TEXT_ARRAY)],
                )?;
            }
        }
        tx.execute_typed(
            "INSERT INTO records (source, entity, key, source_id, fingerprint, fields, fetched_at)
             SELECT source, entity, key, source_id, fingerprint, fields, fetched_at FROM records_staging
              WHERE snapshot_id = $3 AND source = $1 AND entity = $2
             ON CONFLICT (source, entity, key) DO UPDATE SET source_id = excluded.source_id,
                fingerprint = excluded.fingerprint, fields = excluded.fields, fetched_at = excluded.fetched_at
              WHERE records.fingerprint <> excluded.fingerprint OR records.source_id <> excluded.source_id
                 OR records.fields::text <> excluded.fields::text",
            &with_id,
        )?;
        tx.execute_typed("DELETE FROM records_staging WHERE snapshot_id = $1", &[(&snapshot_id, Type::TEXT)])?;
        let n: i64 =
            tx.query_typed_one("SELECT COUNT(*) FROM records WHERE source = $1 AND entity = $2", &kind_of)?.get(0);
        tx.commit()?;
        Ok(n as u64)
    }
}

/// Rows one PostgreSQL statement of a bulk write carries when the write is split to go side by side.
const SET_CHUNK: usize = 2_000;

impl PgStore {
    /// Writes `states`, distinct (entity, key) pairs: the rows the base does not hold yet are copied in (the
    /// server fills pages a batch of rows at a time; a first sync's base is all new), the others updated. Should
    /// another writer add one of the new rows meanwhile, the copy fails whole and the chunk goes as one upsert.
    fn upsert_sync_states(&self, states: &[&SyncState]) -> Result<()> {
        match self.copy_sync_states(states) {
            Err(e) if collided(&e) => {
                tracing::debug!("a base row appeared while it was written; writing the chunk as one upsert");
                self.merge_sync_states(states)
            }
            other => other,
        }
    }

    fn copy_sync_states(&self, states: &[&SyncState]) -> Result<()> {
        let entities: Vec<&str> = states.iter().map(|st| st.entity.name()).collect();
        let keys: Vec<&str> = states.iter().map(|st| st.key.as_str()).collect();
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        let held: std::collections::HashSet<(String, String)> = tx
            .query_typed(
                "SELECT s.entity, s.key FROM sync_state AS s JOIN UNNEST($1, $2) AS t(e, k) ON s.entity = t.e AND s.key = t.k",
                &[(&entities, Type::TEXT_ARRAY), (&keys, Type::TEXT_ARRAY)],
            )?
            .into_iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let (old, new): (Vec<&SyncState>, Vec<&SyncState>) =
            states.iter().partition(|st| held.contains(&(st.entity.name().to_string(), st.key.clone())));
        if !new.is_empty() {
            let sink = tx.copy_in(
                "COPY sync_state (entity, key, fields, fingerprint, synced_at, run_id) FROM STDIN (FORMAT binary)",
            )?;
            let types = [Type::TEXT, Type::TEXT, Type::JSON, Type::TEXT, Type::TIMESTAMPTZ, Type::INT8];
            let mut w = BinaryCopyInWriter::new(sink, &types);
            for st in new {
                w.write(&[&st.entity.name(), &st.key, &Json(&st.fields), &st.fingerprint, &st.synced_at, &st.run_id])?;
            }
            w.finish()?;
        }
        if !old.is_empty() {
            Self::write_sync_states(&mut tx, &old)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// One upsert of `states` in its own transaction.
    fn merge_sync_states(&self, states: &[&SyncState]) -> Result<()> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        Self::write_sync_states(&mut tx, states)?;
        tx.commit()?;
        Ok(())
    }

    /// The upsert of `states` (distinct (entity, key) pairs) as one statement over arrays.
    fn write_sync_states(tx: &mut postgres::Transaction<'_>, states: &[&SyncState]) -> Result<()> {
        let entities: Vec<&str> = states.iter().map(|st| st.entity.name()).collect();
        let keys: Vec<&str> = states.iter().map(|st| st.key.as_str()).collect();
        let fields: Vec<Json<&Fields>> = states.iter().map(|st| Json(&st.fields)).collect();
        let fingerprints: Vec<&str> = states.iter().map(|st| st.fingerprint.as_str()).collect();
        let synced_at: Vec<DateTime<Utc>> = states.iter().map(|st| st.synced_at).collect();
        let run_ids: Vec<Option<i64>> = states.iter().map(|st| st.run_id).collect();
        tx.execute_typed(
            "INSERT INTO sync_state (entity, key, fields, fingerprint, synced_at, run_id)
             SELECT * FROM UNNEST($1, $2, $3, $4, $5, $6)
             ON CONFLICT (entity, key) DO UPDATE SET fields = excluded.fields, fingerprint = excluded.fingerprint,
                synced_at = excluded.synced_at, run_id = excluded.run_id",
            &[
                (&entities, Type::TEXT_ARRAY),
                (&keys, Type::TEXT_ARRAY),
                (&fields, Type::JSON_ARRAY),
                (&fingerprints, Type::TEXT_ARRAY),
                (&synced_at, Type::TIMESTAMPTZ_ARRAY),
                (&run_ids, Type::INT8_ARRAY),
            ],
        )?;
        Ok(())
    }
}

/// The records of several kinds, read side by side as the store takes calls ([`super::side_by_side`]).
fn records_of(store: &dyn super::Store, kinds: &[Kind]) -> Result<Vec<Vec<Record>>> {
    let read: Vec<std::sync::Mutex<Vec<Record>>> = kinds.iter().map(|_| Default::default()).collect();
    let slots: Vec<usize> = (0..kinds.len()).collect();
    super::side_by_side(store, &slots, |i| -> Result<()> {
        *read[*i].lock().unwrap_or_else(|e| e.into_inner()) = store.records(kinds[*i])?;
        Ok(())
    })?;
    Ok(read.into_iter().map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner())).collect())
}

/// Reconcile's view of a store (declared by the core, which names no database).
macro_rules! reconcile_records {
    ($($t:ty),*) => {$(
        impl zmsync_core::reconcile::Records for $t {
            fn records(&self, kind: Kind) -> Result<Vec<Record>, SourceError> {
                RecordStore::records(self, kind).map_err(SourceError::new)
            }
            fn records_of(&self, kinds: &[Kind]) -> Result<Vec<Vec<Record>>, SourceError> {
                records_of(self, kinds).map_err(SourceError::new)
            }
            fn links(&self, entity: Entity) -> Result<Vec<Link>, SourceError> {
                RecordStore::links(self, entity).map_err(SourceError::new)
            }
            fn sync_states(&self, entity: Entity) -> Result<Vec<SyncState>, SourceError> {
                RecordStore::sync_states(self, entity).map_err(SourceError::new)
            }
            fn put_links(&self, links: &[Link]) -> Result<(), SourceError> {
                RecordStore::put_links(self, links).map_err(SourceError::new)
            }
            fn put_sync_states(&self, states: &[SyncState]) -> Result<(), SourceError> {
                RecordStore::put_sync_states(self, states).map_err(SourceError::new)
            }
        }
    )*};
}
reconcile_records!(dyn super::Store + '_, super::sqlite::SqliteStore, super::postgres::PgStore);
