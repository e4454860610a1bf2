//! The SQLite store: the embedded default. WAL, a busy timeout, foreign keys on.
//!
//! One connection behind a mutex: SQLite has one writer at a time anyway, and WAL lets other processes
//! (a running `zmsync serve` beside a sync) read while we write. The busy timeout absorbs their writes.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde_json::Value;

use super::migrate::{LATEST_VERSION, SQLITE};
use super::{now, Dialect, Result, SettingRow, Store, StoreError};

pub struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
}

pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub(crate) fn parse_ts(s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).map_err(|e| StoreError::Time(format!("{s}: {e}")))
}

impl SqliteStore {
    /// Opens (creating if needed) the database file at `path` and migrates it.
    pub fn open(path: &str) -> Result<SqliteStore> {
        if path.is_empty() {
            return Err(StoreError::InvalidUrl {
                url: "sqlite://".into(),
                reason: "no file path after sqlite://".into(),
            });
        }
        let path = PathBuf::from(path);
        let open_err =
            |e: rusqlite::Error| StoreError::SqliteOpen { path: path.display().to_string(), message: e.to_string() };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.is_dir() {
                return Err(StoreError::SqliteOpen {
                    path: path.display().to_string(),
                    message: format!("the directory {} does not exist", parent.display()),
                });
            }
        }
        let existed = path.exists();
        // Check the schema before touching anything: a newer database is refused unmodified (no WAL switch,
        // no pragma writes, no new file).
        if existed {
            let ro = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(open_err)?;
            if let Some(found) = applied_version(&ro).map_err(open_err)? {
                if found > LATEST_VERSION {
                    return Err(StoreError::SchemaTooNew {
                        location: path.display().to_string(),
                        found,
                        supported: LATEST_VERSION,
                    });
                }
            }
        }
        let conn = Connection::open(&path).map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(open_err)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(open_err)?;
        let store = SqliteStore { path, conn: Mutex::new(conn) };
        store.migrate()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection itself, for the receiver's writer tuning (its own WAL checkpoints).
    pub fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn migrate(&self) -> Result<()> {
        let mut conn = self.conn();
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
        )?;
        for m in SQLITE {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let done: bool =
                tx.query_row("SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = ?1)", [m.version], |r| {
                    r.get(0)
                })?;
            if done {
                continue;
            }
            tx.execute_batch(m.sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)",
                params![m.version, m.name, ts(now())],
            )?;
            tx.commit()?;
            tracing::info!(version = m.version, name = m.name, "applied migration");
        }
        let found = applied_version(&conn)?.unwrap_or(0);
        if found > LATEST_VERSION {
            return Err(StoreError::SchemaTooNew { location: self.location(), found, supported: LATEST_VERSION });
        }
        Ok(())
    }
}

fn applied_version(conn: &Connection) -> rusqlite::Result<Option<i64>> {
    let has_table: bool = conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations')",
        [],
        |r| r.get(0),
    )?;
    if !has_table {
        return Ok(None);
    }
    conn.query_row("SELECT MAX(version) FROM schema_migrations", [], |r| r.get(0))
}

fn setting_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, String, String, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn to_setting((key, value, updated_by, updated_at): (String, String, String, String)) -> Result<SettingRow> {
    Ok(SettingRow { key, value: serde_json::from_str(&value)?, updated_by, updated_at: parse_ts(&updated_at)? })
}

impl Store for SqliteStore {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn location(&self) -> String {
        std::fs::canonicalize(&self.path).unwrap_or_else(|_| self.path.clone()).display().to_string()
    }

    fn schema_version(&self) -> Result<i64> {
        Ok(applied_version(&self.conn())?.unwrap_or(0))
    }

    fn settings(&self) -> Result<Vec<SettingRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT key, value, updated_by, updated_at FROM app_settings ORDER BY key")?;
        let rows = stmt.query_map([], setting_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
        rows.into_iter().map(to_setting).collect()
    }

    fn setting(&self, key: &str) -> Result<Option<SettingRow>> {
        let row = self
            .conn()
            .query_row("SELECT key, value, updated_by, updated_at FROM app_settings WHERE key = ?1", [key], setting_row)
            .optional()?;
        row.map(to_setting).transpose()
    }

    fn put_setting(&self, key: &str, value: &Value, updated_by: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO app_settings (key, value, updated_by, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            params![key, value.to_string(), updated_by, ts(now())],
        )?;
        Ok(())
    }

    fn insert_setting_if_absent(&self, key: &str, value: &Value, updated_by: &str) -> Result<bool> {
        let n = self.conn().execute(
            "INSERT INTO app_settings (key, value, updated_by, updated_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT (key) DO NOTHING",
            params![key, value.to_string(), updated_by, ts(now())],
        )?;
        Ok(n == 1)
    }
}
