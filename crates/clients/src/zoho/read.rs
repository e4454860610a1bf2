//! Reading records: `GET /crm/v8/{module}` page by page, by ids, and `/deleted`.
//!
//! [`Pages`] pulls one page at a time, so memory does not grow with the module: the caller stores a page
//! before asking for the next. Rules it follows: `fields` always sent and split into calls of ≤50 names
//! (merged by id); `per_page=200`; `page_token` whenever Zoho gives one (beyond record 2,000 it is the only
//! way on); a listing restarts from page 1 if its token is refused (`TOKEN_BOUND_DATA_MISMATCH`,
//! `EXPIRED_VALUE`); 204/304 mean "nothing" and are checked before any parsing; records are de-duplicated by
//! (id, Modified_Time), which absorbs both a restart and the inclusive `If-Modified-Since`.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Client, Replay, ZohoError};

/// Zoho's limits: names per `fields=`, records per page, ids per `ids=`.
pub const MAX_FIELDS: usize = 50;
pub const PER_PAGE: usize = 200;
pub const MAX_IDS: usize = 100;
/// Restarts of one listing after its page token was refused, before giving up.
const MAX_RESTARTS: u32 = 3;

/// What to list.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub module: String,
    /// Field API names (`id` is added if missing).
    pub fields: Vec<String>,
    /// Only records modified at or after this instant (`If-Modified-Since`), sorted by `Modified_Time`.
    pub modified_since: Option<DateTime<Utc>>,
    /// (id, Modified_Time) pairs already seen (e.g. at the cursor of the last run): not returned again.
    pub seen: HashSet<(String, String)>,
    /// Newest ids first (`sort_order=desc`); ignored with `modified_since`, which always reads oldest first.
    pub descending: bool,
}

impl ListQuery {
    pub fn new(module: impl Into<String>, fields: Vec<String>) -> ListQuery {
        ListQuery { module: module.into(), fields, modified_since: None, seen: HashSet::new(), descending: false }
    }
}

/// Splits a field list into calls of at most [`MAX_FIELDS`] names, each with `id` (to merge by).
pub fn field_chunks(fields: &[String]) -> Vec<Vec<String>> {
    let mut rest: Vec<&String> = Vec::new();
    for f in fields {
        if f != "id" && !rest.contains(&f) {
            rest.push(f);
        }
    }
    let mut chunks: Vec<Vec<String>> = rest
        .chunks(MAX_FIELDS - 1)
        .map(|c| std::iter::once("id".to_string()).chain(c.iter().map(|s| s.to_string())).collect())
        .collect();
    if chunks.is_empty() {
        chunks.push(vec!["id".into()]);
    }
    chunks
}

enum Cursor {
    Page(u32),
    Token(String),
    Done,
}

/// A listing in progress. Call [`Pages::next`] until it returns `None`.
pub struct Pages {
    client: Client,
    q: ListQuery,
    chunks: Vec<Vec<String>>,
    cursor: Cursor,
    restarts: u32,
    /// API calls this listing made.
    pub calls: u64,
    /// Zoho's clock when it answered the listing's first page (of its last restart), if it said.
    pub started: Option<DateTime<Utc>>,
}

impl Client {
    /// Starts listing a module. Nothing is sent until [`Pages::next`].
    pub fn list(&self, q: ListQuery) -> Pages {
        let chunks = field_chunks(&q.fields);
        Pages { client: self.clone(), q, chunks, cursor: Cursor::Page(1), restarts: 0, calls: 0, started: None }
    }

    /// The records with these ids (any order; unknown ids are simply absent), ≤100 ids per call.
    pub async fn get_by_ids(&self, module: &str, fields: &[String], ids: &[String]) -> Result<Vec<Value>, ZohoError> {
        let chunks = field_chunks(fields);
        let mut out = Vec::with_capacity(ids.len());
        for batch in ids.chunks(MAX_IDS) {
            let mut page = self.ids_call(module, &chunks[0], batch).await?;
            merge_extra(self, module, &chunks[1..], &mut page).await?;
            out.extend(page);
        }
        Ok(out)
    }

    /// [`Client::get_by_ids`] where one bad id does not sink the others: Zoho answers 400 for a whole by-ids
    /// read when one id in it is malformed, so a rejected batch is split in halves, read again
    /// (the halves of a level side by side), down to the id it rejects. Returns the records and each rejected
    /// id with Zoho's error; any other error (network, auth, permission) fails the whole read. With one bad id
    /// in a batch of 100 that is 14 more calls, 7 round trips (issue #19).
    pub async fn get_by_ids_each(
        &self,
        module: &str,
        fields: &[String],
        ids: &[String],
    ) -> Result<(Vec<Value>, Vec<(String, ZohoError)>), ZohoError> {
        let chunks = std::sync::Arc::new(field_chunks(fields));
        let mut out = Vec::with_capacity(ids.len());
        let mut rejected = Vec::new();
        let mut level: Vec<Vec<String>> = ids.chunks(MAX_IDS).map(<[String]>::to_vec).collect();
        while !level.is_empty() {
            let mut set = tokio::task::JoinSet::new();
            for batch in level.drain(..) {
                let (client, module, chunks) = (self.clone(), module.to_string(), chunks.clone());
                set.spawn(async move {
                    let read = async {
                        let mut page = client.ids_call(&module, &chunks[0], &batch).await?;
                        merge_extra(&client, &module, &chunks[1..], &mut page).await?;
                        Ok::<_, ZohoError>(page)
                    }
                    .await;
                    (batch, read)
                });
            }
            while let Some(joined) = set.join_next().await {
                let (batch, read) = joined.map_err(|e| ZohoError::Transport {
                    module: module.to_string(),
                    attempts: 1,
                    message: format!("a by-ids read stopped: {e}"),
                })?;
                match read {
                    Ok(page) => out.extend(page),
                    Err(e) if rejects_request(&e) => {
                        if let [one] = batch.as_slice() {
                            rejected.push((one.clone(), e));
                        } else {
                            let (a, b) = batch.split_at(batch.len() / 2);
                            level.push(a.to_vec());
                            level.push(b.to_vec());
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok((out, rejected))
    }

    async fn ids_call(&self, module: &str, fields: &[String], ids: &[String]) -> Result<Vec<Value>, ZohoError> {
        let path = format!("/crm/v8/{module}");
        let query = [("fields", fields.join(",")), ("ids", ids.join(","))];
        let answer =
            self.send(module, Replay::Safe, |http, base| http.get(format!("{base}{path}")).query(&query)).await?;
        match answer.status.as_u16() {
            204 | 304 | 404 => Ok(Vec::new()),
            200 => Ok(take_data(answer.json(module)?)),
            _ => Err(answer.error(module)),
        }
    }

    /// Deleted-record stubs (`/deleted?type=all`), optionally only those deleted since an instant.
    pub async fn deleted(&self, module: &str, since: Option<DateTime<Utc>>) -> Result<Vec<DeletedRecord>, ZohoError> {
        let path = format!("/crm/v8/{module}/deleted");
        let mut out = Vec::new();
        let mut page = 1u32;
        loop {
            let query = [("type", "all".to_string()), ("per_page", PER_PAGE.to_string()), ("page", page.to_string())];
            let answer = self
                .send(module, Replay::Safe, |http, base| {
                    let mut r = http.get(format!("{base}{path}")).query(&query);
                    if let Some(t) = since {
                        r = r.header("If-Modified-Since", zoho_time(t));
                    }
                    r
                })
                .await?;
            match answer.status.as_u16() {
                204 | 304 => break,
                200 => {}
                _ => return Err(answer.error(module)),
            }
            let body = answer.json(module)?;
            let more = body.pointer("/info/more_records").and_then(Value::as_bool).unwrap_or(false);
            for stub in take_data(body) {
                out.push(DeletedRecord {
                    id: stub.get("id").and_then(Value::as_str).unwrap_or_default().to_string(),
                    kind: stub.get("type").and_then(Value::as_str).unwrap_or_default().to_string(),
                    deleted_time: stub.get("deleted_time").and_then(Value::as_str).map(str::to_string),
                });
            }
            if !more {
                break;
            }
            page += 1;
        }
        Ok(out)
    }
}

/// One entry of `/deleted`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeletedRecord {
    pub id: String,
    /// `recycle` or `permanent`.
    pub kind: String,
    pub deleted_time: Option<String>,
}

/// ISO-8601 with an offset, to the second, as Zoho wants it (`+00:00`, not `Z`).
pub fn zoho_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

fn take_data(mut body: Value) -> Vec<Value> {
    match body.get_mut("data").map(Value::take) {
        Some(Value::Array(a)) => a,
        _ => Vec::new(),
    }
}

fn id_of(v: &Value) -> Option<&str> {
    v.get("id").and_then(Value::as_str)
}

/// Fetches the fields of the extra chunks for the records of `page` (by ids) and merges them in by id.
/// Zoho refused something in the request (HTTP 400, e.g. `INVALID_DATA` for a malformed id), not the network,
/// the token, the module or the request's form, which splitting would not cure.
fn rejects_request(e: &ZohoError) -> bool {
    const WHOLE: [&str; 5] =
        ["INVALID_MODULE", "REQUIRED_PARAM_MISSING", "LIMIT_EXCEEDED", "INVALID_REQUEST_METHOD", "INVALID_HOST"];
    matches!(e, ZohoError::Api { status: 400, code, .. } if !WHOLE.contains(&code.as_str()))
}

async fn merge_extra(
    client: &Client,
    module: &str,
    extra: &[Vec<String>],
    page: &mut [Value],
) -> Result<(), ZohoError> {
    if extra.is_empty() || page.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = page.iter().filter_map(id_of).map(str::to_string).collect();
    for fields in extra {
        let mut by_id: HashMap<String, Value> = HashMap::new();
        for batch in ids.chunks(MAX_IDS) {
            for rec in client.ids_call(module, fields, batch).await? {
                if let Some(id) = id_of(&rec) {
                    by_id.insert(id.to_string(), rec);
                }
            }
        }
        for rec in page.iter_mut() {
            let Some(id) = id_of(rec).map(str::to_string) else { continue };
            if let (Some(Value::Object(more)), Some(obj)) = (by_id.remove(&id), rec.as_object_mut()) {
                for (k, v) in more {
                    obj.entry(k).or_insert(v);
                }
            }
        }
    }
    Ok(())
}

impl Pages {
    pub fn module(&self) -> &str {
        &self.q.module
    }

    /// Whether the last page has been read.
    pub fn finished(&self) -> bool {
        matches!(self.cursor, Cursor::Done)
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    /// The next page of records (possibly fewer than 200 after de-duplication), or `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Vec<Value>>, ZohoError> {
        loop {
            let (page_param, token) = match &self.cursor {
                Cursor::Done => return Ok(None),
                Cursor::Page(n) => (Some(*n), None),
                Cursor::Token(t) => (None, Some(t.clone())),
            };
            let module = self.q.module.clone();
            let path = format!("/crm/v8/{module}");
            let since_none = self.q.modified_since.is_none();
            let sort_by = if since_none { "id" } else { "Modified_Time" };
            let mut query = vec![
                ("fields", self.chunks[0].join(",")),
                ("per_page", PER_PAGE.to_string()),
                ("sort_by", sort_by.to_string()),
                ("sort_order", if self.q.descending && since_none { "desc" } else { "asc" }.to_string()),
            ];
            match (page_param, token) {
                (_, Some(t)) => query.push(("page_token", t)),
                (Some(n), None) => query.push(("page", n.to_string())),
                (None, None) => {}
            }
            let since = self.q.modified_since;
            self.calls += 1;
            let answer = self
                .client
                .send(&module, Replay::Safe, |http, base| {
                    let mut r = http.get(format!("{base}{path}")).query(&query);
                    if let Some(t) = since {
                        r = r.header("If-Modified-Since", zoho_time(t));
                    }
                    r
                })
                .await?;
            if page_param == Some(1) {
                self.started = answer.date;
            }
            match answer.status.as_u16() {
                // No body: never parse it.
                204 | 304 => {
                    self.cursor = Cursor::Done;
                    return Ok(None);
                }
                200 => {}
                400 if matches!(self.cursor, Cursor::Token(_)) => {
                    let (code, _, _) = answer.envelope();
                    if matches!(code.as_str(), "TOKEN_BOUND_DATA_MISMATCH" | "EXPIRED_VALUE")
                        && self.restarts < MAX_RESTARTS
                    {
                        self.restarts += 1;
                        tracing::warn!(module = %module, code = %code, "Zoho refused the page token; restarting the listing from page 1");
                        self.cursor = Cursor::Page(1);
                        continue;
                    }
                    return Err(answer.error(&module));
                }
                _ => return Err(answer.error(&module)),
            }
            let body = answer.json(&module)?;
            let more = body.pointer("/info/more_records").and_then(Value::as_bool).unwrap_or(false);
            let next_token = body
                .pointer("/info/next_page_token")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            self.cursor = match (more, next_token, page_param) {
                (false, _, _) => Cursor::Done,
                (true, Some(t), _) => Cursor::Token(t),
                (true, None, Some(n)) => Cursor::Page(n + 1),
                (true, None, None) => {
                    return Err(ZohoError::Decode {
                        module,
                        message: "more_records is true but no next_page_token came with a page_token listing".into(),
                    })
                }
            };
            let mut records = take_data(body);
            records.retain(|r| {
                let id = id_of(r).unwrap_or_default().to_string();
                let modified = r.get("Modified_Time").and_then(Value::as_str).unwrap_or_default().to_string();
                self.q.seen.insert((id, modified))
            });
            merge_extra(&self.client, &module, &self.chunks[1..], &mut records).await?;
            if records.is_empty() && !matches!(self.cursor, Cursor::Done) {
                continue;
            }
            if records.is_empty() {
                return Ok(None);
            }
            return Ok(Some(records));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_split_at_fifty_with_id_in_each() {
        let fields: Vec<String> = std::iter::once("id".to_string()).chain((0..120).map(|i| format!("F{i}"))).collect();
        let chunks = field_chunks(&fields);
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.len() <= MAX_FIELDS && c[0] == "id"));
        assert_eq!(chunks.iter().map(|c| c.len() - 1).sum::<usize>(), 120);
        assert_eq!(field_chunks(&["id".into(), "Name".into()]), vec![vec!["id".to_string(), "Name".to_string()]]);
    }

    #[test]
    fn zoho_time_has_an_explicit_offset() {
        let t = DateTime::parse_from_rfc3339("2026-01-25T15:26:49+05:30").unwrap().with_timezone(&Utc);
        assert_eq!(zoho_time(t), "2026-01-25T09:56:49+00:00");
    }
}
