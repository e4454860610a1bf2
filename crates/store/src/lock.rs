//! One sync run at a time per store. SQLite: an exclusive file lock beside the database file. PostgreSQL: a
//! session advisory lock on a connection the guard keeps. Both are released by the operating system or the
//! server when the process dies, so a killed run never leaves a stale lock behind.

use std::fs::{File, OpenOptions};

use super::postgres::{Conn, PgStore};
use super::sqlite::SqliteStore;
use super::{Result, StoreError};

/// First half of the advisory lock key; the second is a hash of the store's schema, so stores sharing one
/// database (one schema each) lock independently.
const RUN_LOCK_CLASS: i32 = 0x7a6d_7379; // "zmsy"

/// Held while a run works; dropping it releases the lock.
pub struct RunLockGuard {
    _inner: Inner,
}

enum Inner {
    /// Held only for its lock; closing the file releases it.
    File(#[allow(dead_code)] File),
    Pg(Box<Conn>),
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Inner::Pg(conn) = self {
            // The connection goes back to the pool: the session lock must not go with it.
            if let Err(e) =
                conn.execute("SELECT pg_advisory_unlock($1, hashtext(current_schema()))", &[&RUN_LOCK_CLASS])
            {
                tracing::warn!("could not release the run lock: {e}");
            }
        }
    }
}

pub trait RunLock {
    /// Takes the run lock, or `None` when another process holds it.
    fn try_lock_runs(&self) -> Result<Option<RunLockGuard>>;
}

impl RunLock for SqliteStore {
    fn try_lock_runs(&self) -> Result<Option<RunLockGuard>> {
        let mut path = self.path().as_os_str().to_owned();
        path.push(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::SqliteOpen { path: format!("{path:?}"), message: e.to_string() })?;
        match file.try_lock() {
            Ok(()) => Ok(Some(RunLockGuard { _inner: Inner::File(file) })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(StoreError::SqliteOpen { path: format!("{path:?}"), message: format!("cannot lock: {e}") })
            }
        }
    }
}

impl RunLock for PgStore {
    fn try_lock_runs(&self) -> Result<Option<RunLockGuard>> {
        let mut conn = self.conn()?;
        let got: bool =
            conn.query_one("SELECT pg_try_advisory_lock($1, hashtext(current_schema()))", &[&RUN_LOCK_CLASS])?.get(0);
        Ok(got.then(|| RunLockGuard { _inner: Inner::Pg(Box::new(conn)) }))
    }
}
