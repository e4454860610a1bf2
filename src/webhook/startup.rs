//! What the receiver opens and watches besides its socket: the state every request shares (the writer's and
//! the reader's store connections, the rate limiter, the breakdown), the settings re-read while serving, and
//! the warning for each route left disabled.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::ratelimit::RateLimiter;
use super::timing::Breakdown;
use super::writer::{self, WriterHandle};
use super::{Secrets, ServeError, ServeOptions};
use crate::store::{self, Store};

pub(super) struct Shared {
    pub(super) secrets: Secrets,
    pub(super) replay_window: Duration,
    pub(super) limiter: RateLimiter,
    pub(super) writer: WriterHandle,
    pub(super) reader: Box<dyn Store>,
    pub(super) breakdown: Option<Breakdown>,
}

/// The state every request shares, from the options: both store connections, the limiter, the breakdown.
pub(super) fn start(opts: &ServeOptions, stop: &Arc<AtomicBool>) -> Result<Arc<Shared>, ServeError> {
    let (writer_store, retry_for) = open_writer_store(&opts.database_url, stop)?;
    let reader = open_store(&opts.database_url)?;
    let settings = crate::settings::Settings::from_rows(&reader.settings_map()?)?;
    warn_disabled(&opts.secrets);
    let writer = writer::new(writer_store, retry_for);
    Ok(Arc::new(Shared {
        secrets: opts.secrets.clone(),
        replay_window: opts.replay_window,
        limiter: RateLimiter::new(&settings.webhook_limits),
        writer,
        reader,
        breakdown: Breakdown::from_env(),
    }))
}

/// After the last request: the breakdown, if kept, and the closing line.
pub(super) fn finish(shared: Arc<Shared>) {
    tracing::info!("webhook receiver draining");
    if let Some(b) = &shared.breakdown {
        b.log();
    }
    drop(shared);
    tracing::info!("webhook receiver stopped");
}

/// How long one SQLite write attempt waits for another process's write lock.
const WRITER_BUSY_TIMEOUT: Duration = Duration::from_secs(1);

/// The writer's own connection. On SQLite its automatic WAL checkpoints are moved to a thread of their own
/// (a passive checkpoint every 250 ms), so the fsync of a checkpoint never sits between a commit and its 202.
///
/// On PostgreSQL a connection is waited for at most [`PG_WAIT`], and a failing batch retried for as long: a
/// server that is gone is answered 503 within about a second, not after the pool's usual 10 s. Returns the
/// store and how long the writer retries a failing batch.
fn open_writer_store(url: &str, stop: &Arc<AtomicBool>) -> Result<(Box<dyn Store>, Duration), ServeError> {
    let Some(path) = url.strip_prefix("sqlite://") else {
        let retry_for = if is_postgres(url) { PG_WAIT } else { writer::RETRY_FOR };
        return Ok((open_store(url)?, retry_for));
    };
    let writer = store::sqlite::SqliteStore::open(path)?;
    writer.conn().pragma_update(None, "wal_autocheckpoint", 0).map_err(store::StoreError::from)?;
    // Another process holding the write lock is waited for a second per attempt (the writer retries for a few
    // seconds more), not the store's usual 30 s: a client is answered 503 rather than kept waiting.
    writer.conn().busy_timeout(WRITER_BUSY_TIMEOUT).map_err(store::StoreError::from)?;
    let checkpointer = store::sqlite::SqliteStore::open(path)?;
    let stop = Arc::clone(stop);
    std::thread::Builder::new()
        .name("wal-checkpoint".into())
        .spawn(move || loop {
            let done = stop.load(Ordering::SeqCst);
            if let Err(e) = checkpointer.conn().query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::debug!(error = %e, "WAL checkpoint skipped");
            }
            if done {
                return;
            }
            std::thread::sleep(Duration::from_millis(250));
        })
        .expect("spawn the WAL checkpoint thread");
    Ok((Box::new(writer), writer::RETRY_FOR))
}

/// How long the receiver waits for a PostgreSQL connection, and its writer retries a failing batch.
const PG_WAIT: Duration = Duration::from_secs(1);

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The store, on PostgreSQL with a pool that waits at most [`PG_WAIT`] for a connection.
fn open_store(url: &str) -> Result<Box<dyn Store>, store::StoreError> {
    if is_postgres(url) {
        return Ok(Box::new(store::postgres::PgStore::open_waiting(url, PG_WAIT)?));
    }
    store::open(url)
}

/// How often the receiver re-reads its settings (`webhook.rate_limit`) without being asked.
pub const RELOAD_EVERY: Duration = Duration::from_secs(5);

/// Re-reads `webhook.rate_limit` every [`RELOAD_EVERY`], and at once when `reload` is set (SIGHUP), until
/// `stop`. A value that cannot be read leaves the limits as they are.
pub(super) fn reload_settings(shared: &Shared, stop: &AtomicBool, reload: &AtomicBool) {
    let mut last = std::time::Instant::now();
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
        let asked = reload.swap(false, Ordering::SeqCst);
        if !asked && last.elapsed() < RELOAD_EVERY {
            continue;
        }
        last = std::time::Instant::now();
        let limits = shared
            .reader
            .settings_map()
            .map_err(|e| e.to_string())
            .and_then(|rows| crate::settings::Settings::from_rows(&rows).map_err(|e| e.to_string()));
        match limits {
            Ok(settings) => {
                let l = &settings.webhook_limits;
                if shared.limiter.set_limits(l) {
                    tracing::info!(
                        per_source_per_second = l.per_source_per_second,
                        burst = l.burst,
                        "webhook.rate_limit changed"
                    );
                } else if asked {
                    tracing::info!(
                        per_source_per_second = l.per_source_per_second,
                        burst = l.burst,
                        "webhook.rate_limit re-read: unchanged"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot re-read the settings; the rate limit stays as it was"),
        }
    }
}

fn warn_disabled(secrets: &Secrets) {
    if secrets.zoho.is_none() {
        tracing::warn!(
            "ZOHO_WEBHOOK_HMAC_SECRET is not set: the Zoho webhook routes (/v1/events/zoho/<entity>) are DISABLED and answer 503; set it and restart"
        );
    }
    if secrets.zoho_notify.is_none() {
        tracing::warn!(
            "ZOHO_NOTIFY_TOKEN is not set: the Zoho Notification API route (/v1/events/zoho/notify) is DISABLED and answers 503; set it and restart"
        );
    }
    if secrets.moodle.is_none() {
        tracing::warn!(
            "MOODLE_WEBHOOK_HMAC_SECRET is not set: the Moodle webhook routes (/v1/events/moodle/<entity>) are DISABLED and answer 503; set it and restart"
        );
    }
}
