//! Zoho's cached access token (`zoho_tokens`) and the incremental cursors (`cursors`).
//!
//! The access token lives an hour and Zoho mints only 10 per 10 minutes, so separate runs (cron, a manual
//! sync, the receiver's incremental runs) share one through the store. The refresh token and client secret
//! never come here: they stay in the environment.

use rusqlite::{params, OptionalExtension};

use super::postgres::PgStore;
use super::sqlite::{parse_ts, ts, SqliteStore};
use super::{now, Result};
use zmsync_clients::zoho::auth::CachedToken;
use zmsync_core::model::Kind;
use zmsync_core::secret::Secret;

pub trait TokenStore {
    fn zoho_token(&self, client_id: &str) -> Result<Option<CachedToken>>;
    /// Inserts or replaces the token of its client id.
    fn put_zoho_token(&self, token: &CachedToken) -> Result<()>;
    fn delete_zoho_token(&self, client_id: &str) -> Result<()>;

    /// The incremental cursor of a kind (opaque text; the snapshot owns its format).
    fn cursor(&self, kind: Kind) -> Result<Option<String>>;
    fn put_cursor(&self, kind: Kind, cursor: &str) -> Result<()>;
}

impl TokenStore for SqliteStore {
    fn zoho_token(&self, client_id: &str) -> Result<Option<CachedToken>> {
        let row = self
            .conn()
            .query_row(
                "SELECT accounts_url, api_domain, access_token, expires_at, refreshed_at FROM zoho_tokens
                  WHERE client_id = ?1",
                [client_id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(accounts_url, api_domain, token, expires, refreshed)| {
            Ok(CachedToken {
                client_id: client_id.to_string(),
                accounts_url,
                api_domain,
                access_token: Secret::new(token),
                expires_at: parse_ts(&expires)?,
                refreshed_at: parse_ts(&refreshed)?,
            })
        })
        .transpose()
    }

    fn put_zoho_token(&self, t: &CachedToken) -> Result<()> {
        self.conn().execute(
            "INSERT INTO zoho_tokens (client_id, accounts_url, api_domain, access_token, expires_at, refreshed_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (client_id) DO UPDATE SET accounts_url = excluded.accounts_url,
                api_domain = excluded.api_domain, access_token = excluded.access_token,
                expires_at = excluded.expires_at, refreshed_at = excluded.refreshed_at",
            params![
                t.client_id,
                t.accounts_url,
                t.api_domain,
                t.access_token.expose(),
                ts(t.expires_at),
                ts(t.refreshed_at)
            ],
        )?;
        Ok(())
    }

    fn delete_zoho_token(&self, client_id: &str) -> Result<()> {
        self.conn().execute("DELETE FROM zoho_tokens WHERE client_id = ?1", [client_id])?;
        Ok(())
    }

    fn cursor(&self, kind: Kind) -> Result<Option<String>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT cursor FROM cursors WHERE source = ?1 AND entity = ?2",
                params![kind.side().name(), kind.name()],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn put_cursor(&self, kind: Kind, cursor: &str) -> Result<()> {
        self.conn().execute(
            "INSERT INTO cursors (source, entity, cursor, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (source, entity) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
            params![kind.side().name(), kind.name(), cursor, ts(now())],
        )?;
        Ok(())
    }
}

impl TokenStore for PgStore {
    fn zoho_token(&self, client_id: &str) -> Result<Option<CachedToken>> {
        let row = self.conn()?.query_opt(
            "SELECT accounts_url, api_domain, access_token, expires_at, refreshed_at FROM zoho_tokens
              WHERE client_id = $1",
            &[&client_id],
        )?;
        Ok(row.map(|r| CachedToken {
            client_id: client_id.to_string(),
            accounts_url: r.get(0),
            api_domain: r.get(1),
            access_token: Secret::new(r.get::<_, String>(2)),
            expires_at: r.get(3),
            refreshed_at: r.get(4),
        }))
    }

    fn put_zoho_token(&self, t: &CachedToken) -> Result<()> {
        self.conn()?.execute(
            "INSERT INTO zoho_tokens (client_id, accounts_url, api_domain, access_token, expires_at, refreshed_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (client_id) DO UPDATE SET accounts_url = excluded.accounts_url,
                api_domain = excluded.api_domain, access_token = excluded.access_token,
                expires_at = excluded.expires_at, refreshed_at = excluded.refreshed_at",
            &[&t.client_id, &t.accounts_url, &t.api_domain, &t.access_token.expose(), &t.expires_at, &t.refreshed_at],
        )?;
        Ok(())
    }

    fn delete_zoho_token(&self, client_id: &str) -> Result<()> {
        self.conn()?.execute("DELETE FROM zoho_tokens WHERE client_id = $1", &[&client_id])?;
        Ok(())
    }

    fn cursor(&self, kind: Kind) -> Result<Option<String>> {
        let row = self.conn()?.query_opt(
            "SELECT cursor FROM cursors WHERE source = $1 AND entity = $2",
            &[&kind.side().name(), &kind.name()],
        )?;
        Ok(row.map(|r| r.get(0)))
    }

    fn put_cursor(&self, kind: Kind, cursor: &str) -> Result<()> {
        self.conn()?.execute(
            "INSERT INTO cursors (source, entity, cursor, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (source, entity) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
            &[&kind.side().name(), &kind.name(), &cursor, &now()],
        )?;
        Ok(())
    }
}
