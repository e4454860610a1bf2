//! The Zoho Notification API channel `zmsync zoho watch` subscribed (`zoho_channel`, at most one row): what
//! zmsync expects Zoho to hold, so that a rerun amends the same channel and `doctor` can compare.

use rusqlite::OptionalExtension;
use serde_json::Value;

use super::postgres::PgStore;
use super::sqlite::{parse_ts, ts, SqliteStore};
use super::{Result, StoreError};
use zmsync_clients::zoho::channel::ChannelRow;

pub trait WatchStore {
    fn zoho_channel(&self) -> Result<Option<ChannelRow>>;
    /// Makes `row` the one remembered channel (any other row goes).
    fn put_zoho_channel(&self, row: &ChannelRow) -> Result<()>;
    fn delete_zoho_channel(&self) -> Result<()>;
}

fn events_of(v: Value) -> Result<Vec<String>> {
    serde_json::from_value(v).map_err(StoreError::Json)
}

impl WatchStore for SqliteStore {
    fn zoho_channel(&self) -> Result<Option<ChannelRow>> {
        let row = self
            .conn()
            .query_row(
                "SELECT channel_id, notify_url, events, expiry, subscribed_at, renewed_at FROM zoho_channel
                  ORDER BY renewed_at DESC LIMIT 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Value>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(channel_id, notify_url, events, expiry, subscribed, renewed)| {
            Ok(ChannelRow {
                channel_id,
                notify_url,
                events: events_of(events)?,
                expiry: parse_ts(&expiry)?,
                subscribed_at: parse_ts(&subscribed)?,
                renewed_at: parse_ts(&renewed)?,
            })
        })
        .transpose()
    }

    fn put_zoho_channel(&self, c: &ChannelRow) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM zoho_channel WHERE channel_id <> ?1", [&c.channel_id])?;
        tx.execute(
            "INSERT INTO zoho_channel (channel_id, notify_url, events, expiry, subscribed_at, renewed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (channel_id) DO UPDATE SET notify_url = excluded.notify_url, events = excluded.events,
                expiry = excluded.expiry, renewed_at = excluded.renewed_at",
            rusqlite::params![
                c.channel_id,
                c.notify_url,
                Value::from(c.events.clone()),
                ts(c.expiry),
                ts(c.subscribed_at),
                ts(c.renewed_at)
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn delete_zoho_channel(&self) -> Result<()> {
        self.conn().execute("DELETE FROM zoho_channel", [])?;
        Ok(())
    }
}

impl WatchStore for PgStore {
    fn zoho_channel(&self) -> Result<Option<ChannelRow>> {
        let row = self.conn()?.query_opt(
            "SELECT channel_id, notify_url, events, expiry, subscribed_at, renewed_at FROM zoho_channel
              ORDER BY renewed_at DESC LIMIT 1",
            &[],
        )?;
        row.map(|r| {
            Ok(ChannelRow {
                channel_id: r.get(0),
                notify_url: r.get(1),
                events: events_of(r.get(2))?,
                expiry: r.get(3),
                subscribed_at: r.get(4),
                renewed_at: r.get(5),
            })
        })
        .transpose()
    }

    fn put_zoho_channel(&self, c: &ChannelRow) -> Result<()> {
        let mut conn = self.conn()?;
        let mut tx = conn.transaction()?;
        tx.execute("DELETE FROM zoho_channel WHERE channel_id <> $1", &[&c.channel_id])?;
        tx.execute(
            "INSERT INTO zoho_channel (channel_id, notify_url, events, expiry, subscribed_at, renewed_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (channel_id) DO UPDATE SET notify_url = excluded.notify_url, events = excluded.events,
                expiry = excluded.expiry, renewed_at = excluded.renewed_at",
            &[&c.channel_id, &c.notify_url, &Value::from(c.events.clone()), &c.expiry, &c.subscribed_at, &c.renewed_at],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn delete_zoho_channel(&self) -> Result<()> {
        self.conn()?.execute("DELETE FROM zoho_channel", &[])?;
        Ok(())
    }
}
