//! Reading a whole module from both ends at once.
//!
//! A listing is a chain: each page's `page_token` comes from the answer before it, so a module of 7,000
//! records is 35 calls one after the other, and with 100 ms per call it alone outlasts everything else in a
//! snapshot. [`SplitPages`] reads the module by id ascending and, once the first page says there is more, by id
//! descending too, one page of each at a time; the two meet in the middle and stop. That halves the chain for
//! one extra call at most. Each record is returned once: a page keeps only the ids the other direction has not
//! reached yet.

use std::collections::VecDeque;

use serde_json::Value;

use super::read::{ListQuery, Pages};
use super::{Client, ZohoError};

/// A full listing read from both ends. Call [`SplitPages::next`] until it returns `None`.
pub struct SplitPages {
    asc: Pages,
    desc: Option<Pages>,
    /// The descending query, until the first ascending page shows it is worth starting.
    desc_query: Option<ListQuery>,
    ready: VecDeque<Vec<Value>>,
    /// Every id up to this one has been read ascending.
    asc_reached: u64,
    /// Every id from this one up has been read descending.
    desc_reached: u64,
    done: bool,
}

fn id_of(r: &Value) -> u64 {
    r.get("id").and_then(Value::as_str).and_then(|s| s.parse().ok()).unwrap_or(0)
}

impl Client {
    /// Lists every record of a module from both ends (`q.modified_since` must be `None`: such a listing is
    /// ordered by `Modified_Time` and is read with [`Client::list`]).
    pub fn list_split(&self, q: ListQuery) -> SplitPages {
        debug_assert!(q.modified_since.is_none());
        let desc_query = ListQuery { descending: true, ..q.clone() };
        SplitPages {
            asc: self.list(ListQuery { descending: false, ..q }),
            desc: None,
            desc_query: Some(desc_query),
            ready: VecDeque::new(),
            asc_reached: 0,
            desc_reached: u64::MAX,
            done: false,
        }
    }
}

impl SplitPages {
    /// The next page of records (at most 200, possibly fewer), or `None` once both ends have met.
    pub async fn next(&mut self) -> Result<Option<Vec<Value>>, ZohoError> {
        loop {
            if let Some(page) = self.ready.pop_front() {
                return Ok(Some(page));
            }
            if self.done {
                return Ok(None);
            }
            let (asc, desc) = match self.desc.as_mut() {
                Some(desc) => {
                    let (a, d) = tokio::join!(self.asc.next(), desc.next());
                    (a?, d?)
                }
                None => {
                    let a = self.asc.next().await?;
                    // More than one page: start the other end.
                    if a.is_some() && !self.asc.finished() {
                        if let Some(q) = self.desc_query.take() {
                            self.desc = Some(self.asc_client().list(q));
                        }
                    }
                    (a, Some(Vec::new()))
                }
            };
            let (Some(asc), Some(desc)) = (asc, desc) else {
                // One end ran out: it has read everything the other had not.
                self.done = true;
                continue;
            };
            self.take(asc, desc);
        }
    }

    /// Zoho's clock when it answered the first ascending page, if it said.
    pub fn started(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.asc.started
    }

    fn asc_client(&self) -> Client {
        self.asc.client().clone()
    }

    fn take(&mut self, mut asc: Vec<Value>, mut desc: Vec<Value>) {
        let asc_last = asc.iter().map(id_of).max();
        let desc_last = desc.iter().map(id_of).min();
        let desc_before = self.desc_reached;
        asc.retain(|r| id_of(r) < desc_before);
        if let Some(a) = asc_last {
            self.asc_reached = self.asc_reached.max(a);
        }
        let asc_now = self.asc_reached;
        desc.retain(|r| id_of(r) > asc_now);
        if let Some(d) = desc_last {
            self.desc_reached = self.desc_reached.min(d);
        }
        if self.asc_reached >= self.desc_reached {
            self.done = true;
        }
        for page in [asc, desc] {
            if !page.is_empty() {
                self.ready.push_back(page);
            }
        }
    }
}
