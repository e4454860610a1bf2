//! The store: one [`Store`] trait, two implementations (SQLite, the embedded default; PostgreSQL for
//! production), the same behaviour on both, the same test suite run against both.
//!
//! The store is synchronous. Never call it from inside a tokio task: the `postgres` crate runs its own
//! runtime and panics there. Network phases hand store work to a blocking thread instead.

pub mod bridge;
pub mod events;
mod lock;
mod migrate;
pub mod postgres;
mod records;
mod runs;
pub mod sqlite;
mod tokens;
mod watch;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::exit::{Exit, ExitKind};

pub use events::EventStore;
pub use lock::{RunLock, RunLockGuard};
pub use migrate::{Migration, LATEST_VERSION};
pub use records::{Link, RecordStore, SyncState};
pub use runs::{JournalEntry, NewRun, RunRow, RunStore};
pub use tokens::{CachedToken, TokenStore};
pub use watch::{ChannelRow, WatchStore};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgresql",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL `{url}` is not understood: {reason}\n  hint: use sqlite://PATH (e.g. sqlite://zmsync.db) or postgres://USER:PASSWORD@HOST:PORT/DB")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot open the SQLite database at {path}: {message}\n  hint: check that the directory exists and is writable by this user, or pass another --database-url")]
    SqliteOpen { path: String, message: String },
    #[error("cannot connect to PostgreSQL at {location}: {message}\n  hint: check that the server is running and that the host, port, user, password and database in the URL are right")]
    Connect { location: String, message: String },
    #[error(
        "the database at {location} has schema version {found}, newer than this zmsync supports ({supported}); it was \
         not modified\n  hint: run the newer zmsync that migrated it, or restore a backup made before the upgrade"
    )]
    SchemaTooNew { location: String, found: i64, supported: i64 },
    #[error("SQLite error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("PostgreSQL error: {0}")]
    Postgres(#[from] ::postgres::Error),
    #[error("PostgreSQL connection pool: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("stored JSON is corrupt: {0}")]
    Json(#[from] serde_json::Error),
    #[error("stored timestamp is corrupt: {0}")]
    Time(String),
    #[error("the store thread has stopped")]
    Closed,
}

impl ExitKind for StoreError {
    fn exit(&self) -> Exit {
        match self {
            StoreError::InvalidUrl { .. } | StoreError::SqliteOpen { .. } | StoreError::SchemaTooNew { .. } => {
                Exit::Usage
            }
            _ => Exit::Failed,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One row of `app_settings`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SettingRow {
    pub key: String,
    pub value: Value,
    pub updated_by: String,
    pub updated_at: DateTime<Utc>,
}

/// The store's public face. Each area of the program adds its methods here, implemented for both dialects.
pub trait Store: Send + Sync + RecordStore + RunStore + RunLock + TokenStore + EventStore + WatchStore {
    fn dialect(&self) -> Dialect;
    /// Where the store lives: a file path, or `user@host:port/db`. Never a password.
    fn location(&self) -> String;
    /// The highest applied migration.
    fn schema_version(&self) -> Result<i64>;

    fn settings(&self) -> Result<Vec<SettingRow>>;
    fn setting(&self, key: &str) -> Result<Option<SettingRow>>;
    /// Inserts or replaces a setting, recording who changed it and when.
    fn put_setting(&self, key: &str, value: &Value, updated_by: &str) -> Result<()>;
    /// Inserts a setting only if the key is absent; returns whether it was inserted.
    fn insert_setting_if_absent(&self, key: &str, value: &Value, updated_by: &str) -> Result<bool>;

    /// All settings as `key → value`, for [`crate::settings::Settings::from_rows`].
    fn settings_map(&self) -> Result<BTreeMap<String, Value>> {
        Ok(self.settings()?.into_iter().map(|r| (r.key, r.value)).collect())
    }
}

/// Opens the store named by `url`, applying pending migrations. A database whose schema is newer than this
/// binary is refused untouched.
pub fn open(url: &str) -> Result<Box<dyn Store>> {
    if let Some(rest) = url.strip_prefix("sqlite://") {
        return Ok(Box::new(sqlite::SqliteStore::open(rest)?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Box::new(postgres::PgStore::open(url)?));
    }
    Err(StoreError::InvalidUrl { url: redact_url(url), reason: "the scheme must be sqlite:// or postgres://".into() })
}

/// A URL safe to print: the password (if any) replaced.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

pub(crate) fn now() -> DateTime<Utc> {
    // Whole microseconds: both dialects keep them exactly.
    let t = Utc::now();
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}
