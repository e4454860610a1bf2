//! The PostgreSQL store, for production and for several receivers sharing one database.
//!
//! A small r2d2 pool of synchronous `postgres` clients. Never call it from inside a tokio task.

use std::str::FromStr;

use postgres::NoTls;
use r2d2::ManageConnection;
use r2d2_postgres::PostgresConnectionManager;
use serde_json::Value;

use super::migrate::{LATEST_VERSION, POSTGRES};
use super::{now, Dialect, Result, SettingRow, Store, StoreError};

pub type Pool = r2d2::Pool<Manager>;
pub type Conn = r2d2::PooledConnection<Manager>;

/// A connection handed back to the pool less than this long ago is lent again untested. Testing costs a round
/// trip per store call, and a sync makes hundreds of calls back to back (on a busy machine each round trip
/// waits for the server process to be scheduled). A connection that broke within this window fails its next
/// statement, is seen broken when handed back and is dropped; the next call gets a fresh one.
const FRESH: std::time::Duration = std::time::Duration::from_secs(2);

/// r2d2's PostgreSQL manager, testing a connection on checkout only when it has been idle (see [`FRESH`]).
pub struct Manager(PostgresConnectionManager<NoTls>);

/// A pooled client and when it was last handed back. Derefs to [`postgres::Client`].
pub struct Client {
    client: postgres::Client,
    returned: std::time::Instant,
}

impl std::ops::Deref for Client {
    type Target = postgres::Client;
    fn deref(&self) -> &postgres::Client {
        &self.client
    }
}

impl std::ops::DerefMut for Client {
    fn deref_mut(&mut self) -> &mut postgres::Client {
        &mut self.client
    }
}

impl ManageConnection for Manager {
    type Connection = Client;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Client, postgres::Error> {
        Ok(Client { client: self.0.connect()?, returned: std::time::Instant::now() })
    }

    fn is_valid(&self, conn: &mut Client) -> Result<(), postgres::Error> {
        if conn.returned.elapsed() < FRESH {
            return Ok(());
        }
        self.0.is_valid(&mut conn.client)
    }

    /// Called as the connection goes back to the pool.
    fn has_broken(&self, conn: &mut Client) -> bool {
        conn.returned = std::time::Instant::now();
        self.0.has_broken(&mut conn.client)
    }
}

/// Connections a store keeps at most.
const POOL_SIZE: u32 = 8;

/// How long [`PgStore::open`]'s pool waits for a connection.
pub const CONNECT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Serialises migrations of one database across processes.
const MIGRATION_LOCK: i64 = 0x7a6d_7379_6e63; // "zmsync"

pub struct PgStore {
    location: String,
    pool: Pool,
    /// The connection that LISTENs for dirty marks (`--follow`), taken from the pool on first use and kept, so
    /// a notification sent between two waits is queued on it rather than lost.
    pub(crate) listener: std::sync::Mutex<Option<Conn>>,
    /// Snapshot pages waiting for their commit ([`super::staging`]).
    pub(crate) staging: super::staging::Staging,
}

impl PgStore {
    pub fn open(url: &str) -> Result<PgStore> {
        PgStore::open_waiting(url, CONNECT_WAIT)
    }

    /// [`PgStore::open`], but a connection is waited for at most `wait` (the pool's checkout timeout, and the
    /// connect timeout unless the URL sets one): the webhook receiver's writer answers 503 within about that
    /// when the server is gone, rather than after [`CONNECT_WAIT`].
    pub fn open_waiting(url: &str, wait: std::time::Duration) -> Result<PgStore> {
        let config = postgres::Config::from_str(url)
            .map_err(|e| StoreError::InvalidUrl { url: super::redact_url(url), reason: e.to_string() })?;
        let location = describe(&config);
        let mut config = config;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(wait.min(std::time::Duration::from_secs(5)));
        }
        // One direct connection first: it fails fast with the server's own words (refused, bad password…).
        let mut probe = config
            .connect(NoTls)
            .map_err(|e| StoreError::Connect { location: location.clone(), message: error_text(&e) })?;
        if let Some(found) = applied_version(&mut probe)? {
            if found > LATEST_VERSION {
                return Err(StoreError::SchemaTooNew { location, found, supported: LATEST_VERSION });
            }
        }
        drop(probe);
        let manager = Manager(PostgresConnectionManager::new(config, NoTls));
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            .connection_timeout(wait)
            .build(manager)
            .map_err(|e| StoreError::Connect { location: location.clone(), message: e.to_string() })?;
        let store = PgStore { location, pool, listener: std::sync::Mutex::new(None), staging: Default::default() };
        store.migrate()?;
        Ok(store)
    }

    /// Sets how much staged snapshot JSON this store holds in memory before a snapshot's pages go to
    /// `records_staging` (default [`super::staging::STAGE_MEMORY`]; 0 stages every page in the table).
    pub fn set_stage_memory(&self, bytes: usize) {
        self.staging.set_limit(bytes);
    }

    pub fn conn(&self) -> Result<Conn> {
        Ok(self.pool.get()?)
    }

    fn migrate(&self) -> Result<()> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)",
        )?;
        for m in POSTGRES {
            let done: bool = tx
                .query_one("SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE version = $1)", &[&m.version])?
                .get(0);
            if done {
                continue;
            }
            tx.batch_execute(m.sql)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                &[&m.version, &m.name, &now()],
            )?;
            tracing::info!(version = m.version, name = m.name, "applied migration");
        }
        let found: Option<i64> = tx.query_one("SELECT MAX(version) FROM schema_migrations", &[])?.get(0);
        if found.unwrap_or(0) > LATEST_VERSION {
            return Err(StoreError::SchemaTooNew {
                location: self.location.clone(),
                found: found.unwrap_or(0),
                supported: LATEST_VERSION,
            });
        }
        tx.commit()?;
        Ok(())
    }
}

fn applied_version(client: &mut postgres::Client) -> Result<Option<i64>> {
    let exists: bool = client.query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])?.get(0);
    if !exists {
        return Ok(None);
    }
    Ok(client.query_one("SELECT MAX(version) FROM schema_migrations", &[])?.get(0))
}

/// `user@host:port/db`, never the password.
fn describe(config: &postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(h) => h.clone(),
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("");
    let db = config.get_dbname().unwrap_or(user);
    format!("{user}@{host}:{port}/{db}")
}

/// The most useful words of a connection error (the `postgres` crate nests the cause).
fn error_text(e: &postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text = format!("{text}: {s}");
        source = s.source();
    }
    text
}

fn to_setting(r: &postgres::Row) -> SettingRow {
    SettingRow { key: r.get(0), value: r.get(1), updated_by: r.get(2), updated_at: r.get(3) }
}

impl Store for PgStore {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    /// Half the pool: the rest stays free for the LISTEN connection, the run lock and a receiver's writer.
    fn parallel_calls(&self) -> usize {
        POOL_SIZE as usize / 2
    }

    fn location(&self) -> String {
        self.location.clone()
    }

    fn schema_version(&self) -> Result<i64> {
        let mut conn = self.conn()?;
        Ok(applied_version(&mut conn)?.unwrap_or(0))
    }

    fn settings(&self) -> Result<Vec<SettingRow>> {
        let rows =
            self.conn()?.query("SELECT key, value, updated_by, updated_at FROM app_settings ORDER BY key", &[])?;
        Ok(rows.iter().map(to_setting).collect())
    }

    fn setting(&self, key: &str) -> Result<Option<SettingRow>> {
        let row = self
            .conn()?
            .query_opt("SELECT key, value, updated_by, updated_at FROM app_settings WHERE key = $1", &[&key])?;
        Ok(row.as_ref().map(to_setting))
    }

    fn put_setting(&self, key: &str, value: &Value, updated_by: &str) -> Result<()> {
        self.conn()?.execute(
            "INSERT INTO app_settings (key, value, updated_by, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_by = excluded.updated_by, updated_at = excluded.updated_at",
            &[&key, value, &updated_by, &now()],
        )?;
        Ok(())
    }

    fn insert_setting_if_absent(&self, key: &str, value: &Value, updated_by: &str) -> Result<bool> {
        let n = self.conn()?.execute(
            "INSERT INTO app_settings (key, value, updated_by, updated_at) VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING",
            &[&key, value, &updated_by, &now()],
        )?;
        Ok(n == 1)
    }
}
