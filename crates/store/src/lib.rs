//! The store: one [`Store`] trait, two implementations (SQLite, the embedded default; PostgreSQL for
//! production), the same behaviour on both, the same test suite run against both.
//!
//! The store is synchronous. Never call it from inside a tokio task: the `postgres` crate runs its own
//! runtime and panics there. Network phases hand store work to a blocking thread instead.

pub mod events;
mod journal;
mod lock;
mod migrate;
pub mod postgres;
mod records;
mod runs;
pub mod sqlite;
mod staging;
mod tokens;
mod watch;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use events::EventStore;
pub use journal::{JournalRow, JournalStore, OpDetail};
pub use lock::{RunLock, RunLockGuard};
pub use migrate::{Migration, LATEST_VERSION};
pub use records::{Link, RecordStore, SyncState};
pub use runs::{JournalEntry, NewRun, RunRow, RunStore};
pub use staging::STAGE_MEMORY;
pub use tokens::TokenStore;
pub use watch::WatchStore;
pub use zmsync_clients::zoho::auth::CachedToken;
pub use zmsync_clients::zoho::channel::ChannelRow;

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
    /// Not a `source`: its text is in this message already (printed as a chain, SQLite's words came out
    /// three times).
    #[error("{}", sqlite_text(.0))]
    Sqlite(rusqlite::Error),
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
pub trait Store:
    Send + Sync + RecordStore + RunStore + RunLock + TokenStore + EventStore + JournalStore + WatchStore
{
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

    /// How many calls the store serves well at the same time (from as many threads): 1 for SQLite's one
    /// connection; more for a pooled server, where a call waits on a round trip and the server's work.
    fn parallel_calls(&self) -> usize {
        1
    }

    /// All settings as `key → value`, for [`zmsync_core::settings::Settings::from_rows`].
    fn settings_map(&self) -> Result<BTreeMap<String, Value>> {
        Ok(self.settings()?.into_iter().map(|r| (r.key, r.value)).collect())
    }
}

/// Calls `f` on every item, from as many threads as the store takes calls at once ([`Store::parallel_calls`];
/// one after the other on SQLite), and returns the first error. Each item is its own call: use it for work whose
/// parts stand alone (chunks of journal rows), never for calls that must follow each other.
pub fn side_by_side<T: Sync, E: Send>(
    store: &dyn Store,
    items: &[T],
    f: impl Fn(&T) -> std::result::Result<(), E> + Sync,
) -> std::result::Result<(), E> {
    let threads = store.parallel_calls().min(items.len());
    if threads <= 1 {
        return items.iter().try_for_each(f);
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let work = || -> std::result::Result<(), E> {
        use std::sync::atomic::Ordering::Relaxed;
        while let Some(item) = items.get(next.fetch_add(1, Relaxed)).filter(|_| !failed.load(Relaxed)) {
            f(item).inspect_err(|_| failed.store(true, Relaxed))?;
        }
        Ok(())
    };
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let mine = work();
        let theirs: Vec<_> =
            helpers.into_iter().map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect();
        theirs.into_iter().fold(mine, |acc, r| acc.and(r))
    })
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

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Sqlite(e)
    }
}

/// An SQLite error as a person reads it: a full disk says so once, with what to do.
fn sqlite_text(e: &rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => {
            "the disk holding the SQLite store is full (SQLite: database or disk is \
             full); the transaction was rolled back, nothing half-written was kept\n  hint: free space on that disk \
             (df -h; `zmsync events cleanup` removes old events), then run the command again"
                .into()
        }
        Some(rusqlite::ErrorCode::ReadOnly) | Some(rusqlite::ErrorCode::CannotOpen) => format!(
            "SQLite error: {e}\n  hint: the store's file and its directory must be writable by the user zmsync runs as"
        ),
        _ => format!("SQLite error: {e}"),
    }
}

/// A URL safe to print: the password (if any) replaced by `***`, whether or not the URL parses.
///
/// Not parsed on purpose: the PostgreSQL driver accepts a raw `#` or `/` in a password, which a URL parser
/// reads as the start of a fragment or a path (and then sees no password at all, or a bad port). So: after
/// the scheme, everything from the first `:` up to the last `@` is the password (a password may hold `@`
/// too; a `:` in the host part before an `@` in the query hides a little more than needed, never less), and
/// so is every `password=` value (the query parameter, or a key=value connection string).
pub fn redact_url(url: &str) -> String {
    let mut out = match url.find("://") {
        Some(i) => {
            let (scheme, rest) = url.split_at(i + 3);
            match rest.rfind('@') {
                Some(at) => match rest[..at].find(':') {
                    Some(colon) => format!("{scheme}{}:***{}", &rest[..colon], &rest[at..]),
                    None => url.to_string(),
                },
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    };
    let mut from = 0;
    while let Some(found) = out[from..].to_ascii_lowercase().find("password=") {
        let start = from + found + "password=".len();
        let tail = &out[start..];
        let len = match tail.strip_prefix('\'') {
            Some(quoted) => quoted.find('\'').map_or(tail.len(), |q| q + 2),
            None => tail.find(['&', ' ', '\t', '\n']).unwrap_or(tail.len()),
        };
        out.replace_range(start..start + len, "***");
        from = start + 3;
    }
    out
}

pub(crate) fn now() -> DateTime<Utc> {
    // Whole microseconds: both dialects keep them exactly.
    let t = Utc::now();
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn a_full_disk_is_said_once_with_a_hint() {
        let full = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            Some("database or disk is full".into()),
        );
        let shown = format!("{:#}", anyhow::Error::from(super::StoreError::from(full)));
        assert_eq!(shown.matches("disk is full").count(), 1, "{shown}");
        assert!(shown.contains("hint: free space"), "{shown}");
    }

    #[test]
    fn no_password_survives_whether_or_not_the_url_parses() {
        let secret = "p#ss/w@rd:x";
        for url in [
            "postgres://zmsync:p#ss/w@rd:x@db.example.edu:5432/zmsync".to_string(),
            "postgres://zmsync:p#ss/w%40rd:x@db.example.edu/zmsync?sslmode=disable".to_string(),
            "postgresql://zmsync:p#ss/w@rd:x@db.example.edu:notaport/zmsync".to_string(),
            "postgres://zmsync@db.example.edu/zmsync?password=p#ss/w@rd:x".to_string(),
            "postgres://db.example.edu/zmsync?user=z&password=p#ss/w@rd:x&sslmode=require".to_string(),
            "host=db.example.edu user=zmsync password=p#ss/w@rd:x dbname=zmsync".to_string(),
            "host=db.example.edu password='p#ss/w@rd:x' dbname=zmsync".to_string(),
            "postgres://zmsync:p#ss/w@rd:x@[::1/zmsync".to_string(),
        ] {
            let shown = redact_url(&url);
            for piece in [secret, "p#ss", "w@rd", "w%40rd", "ss/w"] {
                assert!(!shown.contains(piece), "{url} → {shown}");
            }
            assert!(shown.contains("***"), "{url} → {shown}");
            assert!(shown.contains("db.example.edu") || shown.contains("::1"), "the host stays: {shown}");
        }
        for plain in ["sqlite:///var/lib/zmsync/zmsync.db", "postgres://zmsync@db/zmsync", "postgres://db:5432/z"] {
            assert_eq!(redact_url(plain), plain);
        }
        assert_eq!(redact_url("postgres://u:secret@h:5432/db"), "postgres://u:***@h:5432/db");
    }
}
