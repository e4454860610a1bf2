//! The Zoho side of a snapshot: each module listed (whole, or changed since the stored cursor) and staged, and
//! the cursor an incremental run starts from.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::Unmappable;
use super::{Ctx, Sink, Staged};
use crate::mapping::ZohoNames;
use crate::model::Kind;
use crate::snapshot::SnapshotError;
use crate::zoho::{self, ListQuery};

/// Where the last run stopped: the largest `Modified_Time` and the ids modified at exactly that instant
/// (`If-Modified-Since` is inclusive; these are skipped when read again).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct ZohoCursor {
    time: Option<DateTime<Utc>>,
    ids: Vec<String>,
    /// The instant `time` was over (by Zoho's clock, [`CLOSED_AFTER`] later) when the listing that found it
    /// started: every record modified at that instant was there to be read, and none can be modified at it any
    /// more. The next run then asks from the following second and does not read them all again (after a bulk
    /// write, e.g. the Moodle ids written back by a first sync, that is hundreds of records, page after page).
    #[serde(default)]
    closed: bool,
}

/// (id, `Modified_Time`) pairs a listing skips ([`ListQuery::seen`]).
type Seen = HashSet<(String, String)>;

/// How long after a cursor's instant (whole seconds, as Zoho stamps `Modified_Time` and its `Date` header) a
/// listing must have started for the instant to count as closed: one whole second after it ended.
const CLOSED_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(2);

impl ZohoCursor {
    /// Takes in another cursor (the stored one): the later instant wins, ids at the same instant add up.
    fn merge(&mut self, other: ZohoCursor) {
        match (self.time, other.time) {
            (_, None) => {}
            (Some(a), Some(b)) if a > b => {}
            (Some(a), Some(b)) if a == b => {
                let mine: HashSet<String> = self.ids.iter().cloned().collect();
                self.ids.extend(other.ids.into_iter().filter(|id| !mine.contains(id)));
                self.closed |= other.closed;
            }
            _ => *self = other,
        }
    }

    /// Where a catch-up starts: the cursor's instant and the ids read at it, or, once the instant is closed, the
    /// next second and nothing to skip.
    fn since(&self) -> Option<(DateTime<Utc>, Seen)> {
        let t = self.time?;
        if self.closed {
            return Some((t + chrono::TimeDelta::seconds(1), HashSet::new()));
        }
        Some((t, self.ids.iter().map(|id| (id.clone(), String::new())).collect()))
    }

    /// A listing that started at `started` (Zoho's clock) has read everything up to the cursor: closes its
    /// instant if that was over by then.
    fn listed(&mut self, started: Option<DateTime<Utc>>) {
        if let (Some(t), Some(d)) = (self.time, started) {
            self.closed |= d >= t + CLOSED_AFTER;
        }
    }

    fn see(&mut self, rec: &Value) {
        let Some(t) =
            rec.get("Modified_Time").and_then(Value::as_str).and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        else {
            return;
        };
        let t = t.with_timezone(&Utc);
        let id = rec.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
        match self.time {
            Some(cur) if t < cur => {}
            Some(cur) if t == cur => self.ids.push(id),
            _ => {
                self.time = Some(t);
                self.ids = vec![id];
                self.closed = false;
            }
        }
    }
}

pub(super) async fn zoho_kind(client: &zoho::Client, kind: Kind, ctx: &Ctx) -> Result<Staged, SnapshotError> {
    let names = ZohoNames::for_kind(&ctx.settings, kind);
    let module = names.module().to_string();
    let fields = names.read_fields();
    let mut sink = ctx.sink(kind, &module);
    let mut cursor = ZohoCursor::default();
    let mut query = ListQuery::new(&module, fields.clone());
    let Some(inc) = ctx.incremental() else {
        let cursor = list_into(client, query, &mut sink, &mut cursor).await?;
        return Ok(sink.finish(cursor));
    };
    // Incremental: the dirty ids by id, beside the catch-up since the cursor (one round trip, not two).
    let asked: &[String] = inc.zoho_ids.get(&kind).map(Vec::as_slice).unwrap_or(&[]);
    let by_ids = async {
        match asked {
            [] => Ok((Vec::new(), Vec::new())),
            ids => client.get_by_ids_each(&module, &fields, ids).await,
        }
    };
    let catch_up = async {
        let stored: Option<ZohoCursor> =
            ctx.bridge.run(move |s| s.cursor(kind)).await?.and_then(|c| serde_json::from_str(&c).ok());
        let from = match (inc.since, stored) {
            (Some(t), _) => Some((t, HashSet::new())),
            (None, Some(c)) => {
                let from = c.since();
                // Continue from the stored cursor: records at its instant that this run skips stay in its ids,
                // or a later run at the same instant would fetch them again.
                cursor.merge(c);
                from
            }
            (None, None) => None,
        };
        let Some((since, seen)) = from else {
            // No cursor yet: an incremental run only fetches the keys it was given.
            return Ok::<_, SnapshotError>(false);
        };
        query.modified_since = Some(since);
        query.seen = seen;
        list_into(client, query, &mut sink, &mut cursor).await?;
        Ok(true)
    };
    let (recs, listed) = tokio::join!(by_ids, catch_up);
    let ((recs, refused), listed) = (recs?, listed?);
    // The records read by id do not move the cursor: one modified after the catch-up began would put it past
    // changes the catch-up did not see. The next catch-up reads it again instead.
    sink.page(recs).await?;
    let cursor = (listed && cursor.time.is_some()).then(|| json!(cursor).to_string());
    let rejected = refused
        .into_iter()
        .map(|(key, e)| {
            tracing::warn!(kind = %kind, key = %key, "Zoho refused this id (the other ids were read): {e}");
            Unmappable { key, reason: format!("Zoho refused the id: {e}") }
        })
        .collect();
    Ok(sink.finish_asked(cursor, asked, rejected))
}

/// Reads a listing (whole, or since `query.modified_since`) into `sink`, moving `cursor` along; returns the
/// cursor to store, if any record had a `Modified_Time`.
async fn list_into(
    client: &zoho::Client,
    mut query: ListQuery,
    sink: &mut Sink,
    cursor: &mut ZohoCursor,
) -> Result<Option<String>, SnapshotError> {
    let skip_ids: HashSet<String> = query.seen.iter().map(|(id, _)| id.clone()).collect();
    let boundary = query.modified_since;
    query.seen.clear();
    // A full listing is read from both ends at once (half the chain of page tokens); a listing since the
    // cursor is ordered by Modified_Time and read oldest first.
    let mut pages = if boundary.is_none() {
        Listing::Split(Box::new(client.list_split(query)))
    } else {
        Listing::Plain(client.list(query))
    };
    while let Some(mut page) = pages.next().await? {
        // The cursor's own records come back (inclusive If-Modified-Since): skip those not modified since.
        if let Some(b) = boundary {
            page.retain(|r| {
                let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
                let at =
                    r.get("Modified_Time").and_then(Value::as_str).and_then(|t| DateTime::parse_from_rfc3339(t).ok());
                !(skip_ids.contains(id) && at.map(|t| t.with_timezone(&Utc) <= b).unwrap_or(false))
            });
        }
        page.iter().for_each(|r| cursor.see(r));
        sink.page(page).await?;
    }
    cursor.listed(pages.started());
    Ok(cursor.time.is_some().then(|| json!(cursor).to_string()))
}

enum Listing {
    Plain(zoho::Pages),
    Split(Box<zoho::SplitPages>),
}

impl Listing {
    async fn next(&mut self) -> Result<Option<Vec<Value>>, zoho::ZohoError> {
        match self {
            Listing::Plain(p) => p.next().await,
            Listing::Split(p) => p.next().await,
        }
    }

    /// Zoho's clock when it answered the first page.
    fn started(&self) -> Option<DateTime<Utc>> {
        match self {
            Listing::Plain(p) => p.started,
            Listing::Split(p) => p.started(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn rec(id: &str, t: &str) -> Value {
        json!({"id": id, "Modified_Time": t})
    }

    #[test]
    fn a_cursor_instant_closes_only_once_a_listing_started_a_second_after_it() {
        let mut c = ZohoCursor::default();
        c.see(&rec("1", "2026-11-24T08:00:00+00:00"));
        c.see(&rec("2", "2026-11-24T08:00:00+00:00"));
        // Started within the instant's second or the next one: records may still be stamped with it.
        c.listed(Some(at("2026-11-24T08:00:00Z")));
        c.listed(Some(at("2026-11-24T08:00:01Z")));
        c.listed(None);
        assert!(!c.closed);
        let (since, seen) = c.since().unwrap();
        assert_eq!(since, at("2026-11-24T08:00:00Z"), "inclusive from the instant");
        assert_eq!(seen.len(), 2, "its ids are skipped");
        c.listed(Some(at("2026-11-24T08:00:02Z")));
        assert!(c.closed);
        let (since, seen) = c.since().unwrap();
        assert_eq!(since, at("2026-11-24T08:00:01Z"), "from the next second");
        assert!(seen.is_empty());
        // The stored form keeps it; a cursor stored before the flag existed is open.
        let back: ZohoCursor = serde_json::from_str(&json!(c).to_string()).unwrap();
        assert!(back.closed);
        let old: ZohoCursor = serde_json::from_str(r#"{"time":"2026-11-24T08:00:00Z","ids":["1"]}"#).unwrap();
        assert!(!old.closed);
        // A later record opens the cursor again at its own instant.
        c.see(&rec("3", "2026-11-24T08:00:05+00:00"));
        assert!(!c.closed);
        assert_eq!(c.ids, vec!["3".to_string()]);
        // Merged with a closed cursor of the same instant (the stored one, nothing newer read): stays closed.
        let mut fresh = ZohoCursor::default();
        fresh.merge(back);
        assert!(fresh.closed);
    }
}
