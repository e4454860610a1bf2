//! The fake's records: what Zoho stores, and how it renders them on read.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, SecondsFormat, Timelike, Utc};
use serde_json::{json, Map, Value};

use super::schema::{self, FieldType, ModuleDef};
use crate::seed::ZohoSeed;

pub const INTEGRATION_USER_ID: &str = "5847596000000411009";
pub const INTEGRATION_USER_NAME: &str = "zmsync Integration";
pub const HUMAN_USER_ID: &str = "5847596000000411001";
pub const HUMAN_USER_NAME: &str = "Registry Admin";

/// Ids handed out by the fake start here (19 digits), or after the largest seeded id.
const FIRST_ID: u64 = 5_847_596_000_100_000_001;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// An API call: the integration user.
    Integration,
    /// A person in the Zoho UI.
    Human,
}

impl Actor {
    pub fn user(self) -> Value {
        match self {
            Actor::Integration => {
                json!({"name": INTEGRATION_USER_NAME, "id": INTEGRATION_USER_ID, "email": "zmsync@college.example"})
            }
            Actor::Human => json!({"name": HUMAN_USER_NAME, "id": HUMAN_USER_ID, "email": "registry@college.example"}),
        }
    }
}

/// A record id, ordered numerically (shorter first) so that `sort_by=id` never compares digits as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Id(pub String);

impl Ord for Id {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.len().cmp(&other.0.len()).then_with(|| self.0.cmp(&other.0))
    }
}
impl PartialOrd for Id {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Clone)]
pub struct Rec {
    /// Field values as stored: lookups as `{"id", "name"?}`; no `id` or times (kept typed below).
    pub fields: Map<String, Value>,
    pub created: DateTime<FixedOffset>,
    pub modified: DateTime<FixedOffset>,
    pub created_by: Value,
    pub modified_by: Value,
}

#[derive(Debug, Clone)]
pub struct DeletedEntry {
    pub id: String,
    pub display_name: Option<String>,
    pub kind: String,
    pub deleted_time: DateTime<FixedOffset>,
    pub deleted_by: Option<Value>,
    pub created_by: Option<Value>,
}

#[derive(Debug, Default)]
pub struct Store {
    pub modules: BTreeMap<String, BTreeMap<Id, Rec>>,
    pub deleted: BTreeMap<String, Vec<DeletedEntry>>,
    next_id: u64,
}

/// Now, to the second, as Zoho stamps it.
pub fn now() -> DateTime<FixedOffset> {
    let t = Utc::now().fixed_offset();
    t.with_nanosecond(0).unwrap_or(t)
}

pub fn fmt_time(t: &DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, false)
}

/// Parses an offset datetime (ISO-8601 / RFC 3339, or the HTTP date form) into an instant.
pub fn parse_time(s: &str) -> Option<DateTime<FixedOffset>> {
    let s = s.trim();
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z"))
        .or_else(|_| DateTime::parse_from_rfc2822(s))
        .ok()
}

impl Store {
    pub fn from_seed(seed: ZohoSeed) -> Store {
        let mut store = Store { next_id: FIRST_ID, ..Store::default() };
        for m in schema::MODULES {
            store.modules.insert(m.api_name.to_string(), BTreeMap::new());
        }
        let mut max_seen = 0u64;
        let mut pending = Vec::new();
        for (module, records) in seed.modules {
            if schema::module(&module).is_none() {
                tracing::warn!(%module, "fake zoho: seed module without a schema, ignored");
                continue;
            }
            for rec in records {
                let mut obj = rec.map();
                let id = obj.remove("id").and_then(|v| v.as_str().map(str::to_string));
                if let Some(n) = id.as_deref().and_then(|s| s.parse::<u64>().ok()) {
                    max_seen = max_seen.max(n);
                }
                pending.push((module.clone(), id, obj));
            }
        }
        store.next_id = store.next_id.max(max_seen.saturating_add(1));
        for (module, id, mut obj) in pending {
            let id = id.unwrap_or_else(|| store.new_id());
            let created = obj.remove("Created_Time").and_then(|v| v.as_str().and_then(parse_time)).unwrap_or_else(now);
            let modified = obj.remove("Modified_Time").and_then(|v| v.as_str().and_then(parse_time)).unwrap_or(created);
            let created_by = obj.remove("Created_By").filter(Value::is_object).unwrap_or_else(|| Actor::Human.user());
            let modified_by = obj.remove("Modified_By").filter(Value::is_object).unwrap_or_else(|| created_by.clone());
            let rec = Rec { fields: obj, created, modified, created_by, modified_by };
            store.modules.entry(module).or_default().insert(Id(id), rec);
        }
        for (module, stubs) in seed.deleted {
            let entries = stubs
                .into_iter()
                .map(|s| {
                    let recycle = s.r#type == "recycle";
                    DeletedEntry {
                        id: s.id,
                        display_name: s.display_name,
                        kind: s.r#type,
                        deleted_time: parse_time(&s.deleted_time).unwrap_or_else(now),
                        deleted_by: recycle.then(|| Actor::Human.user()),
                        created_by: recycle.then(|| Actor::Human.user()),
                    }
                })
                .collect();
            store.deleted.insert(module, entries);
        }
        store
    }

    pub fn new_id(&mut self) -> String {
        let id = self.next_id;
        self.next_id += 1;
        id.to_string()
    }

    pub fn get(&self, module: &str, id: &str) -> Option<&Rec> {
        self.modules.get(module)?.get(&Id(id.to_string()))
    }

    pub fn exists(&self, module: &str, id: &str) -> bool {
        self.get(module, id).is_some()
    }

    /// One value as Zoho renders it on read: lookups get the target's current `Name`.
    pub fn render_value(&self, fd: Option<&schema::FieldDef>, v: &Value) -> Value {
        match (fd.map(|f| f.ty), v) {
            (Some(FieldType::Lookup(target)), Value::Object(o)) => {
                let id = o.get("id").cloned().unwrap_or(Value::Null);
                let name = id
                    .as_str()
                    .and_then(|id| self.get(target, id))
                    .and_then(|r| r.fields.get("Name").cloned())
                    .or_else(|| o.get("name").cloned())
                    .unwrap_or(Value::Null);
                json!({"name": name, "id": id})
            }
            _ => v.clone(),
        }
    }

    /// A record with the asked-for fields (`null` when empty or unknown) and always `id`.
    pub fn render_fields(&self, m: &ModuleDef, id: &Id, rec: &Rec, fields: &[String]) -> Value {
        let mut out = Map::new();
        out.insert("id".into(), Value::String(id.0.clone()));
        for f in fields {
            if f == "id" {
                continue;
            }
            let v = match f.as_str() {
                "Created_Time" => Value::String(fmt_time(&rec.created)),
                "Modified_Time" => Value::String(fmt_time(&rec.modified)),
                "Created_By" => rec.created_by.clone(),
                "Modified_By" => rec.modified_by.clone(),
                _ => rec.fields.get(f).map(|v| self.render_value(m.field(f), v)).unwrap_or(Value::Null),
            };
            out.insert(f.clone(), v);
        }
        Value::Object(out)
    }

    pub fn all_field_names(m: &ModuleDef) -> Vec<String> {
        m.fields
            .iter()
            .map(|f| f.api_name.to_string())
            .chain(["Created_Time", "Modified_Time", "Created_By", "Modified_By"].map(String::from))
            .collect()
    }

    pub fn render_full(&self, m: &ModuleDef, id: &Id, rec: &Rec) -> Value {
        self.render_fields(m, id, rec, &Self::all_field_names(m))
    }

    pub fn all_rendered(&self, module: &str) -> Vec<Value> {
        let (Some(m), Some(recs)) = (schema::module(module), self.modules.get(module)) else { return Vec::new() };
        recs.iter().map(|(id, r)| self.render_full(m, id, r)).collect()
    }

    pub fn rendered(&self, module: &str, id: &str) -> Option<Value> {
        let m = schema::module(module)?;
        let key = Id(id.to_string());
        let rec = self.modules.get(module)?.get(&key)?;
        Some(self.render_full(m, &key, rec))
    }

    pub fn deleted_rendered(&self, module: &str) -> Vec<Value> {
        self.deleted.get(module).map(|v| v.iter().map(render_deleted).collect()).unwrap_or_default()
    }

    /// Moves a record to the recycle bin.
    pub fn remove(&mut self, module: &str, id: &str, actor: Actor) -> Option<Rec> {
        let rec = self.modules.get_mut(module)?.remove(&Id(id.to_string()))?;
        let display_name = rec.fields.get("Name").and_then(Value::as_str).map(str::to_string);
        self.deleted.entry(module.to_string()).or_default().push(DeletedEntry {
            id: id.to_string(),
            display_name,
            kind: "recycle".into(),
            deleted_time: now(),
            deleted_by: Some(actor.user()),
            created_by: Some(rec.created_by.clone()),
        });
        Some(rec)
    }
}

pub fn render_deleted(d: &DeletedEntry) -> Value {
    json!({
        "id": d.id,
        "display_name": d.display_name,
        "type": d.kind,
        "deleted_time": fmt_time(&d.deleted_time),
        "deleted_by": d.deleted_by,
        "created_by": d.created_by,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_compare_across_offsets() {
        let a = parse_time("2026-01-25T15:26:49+05:30").unwrap();
        let b = parse_time("2026-01-25T09:56:49+00:00").unwrap();
        let c = parse_time("2026-01-25T10:00:00Z").unwrap();
        assert_eq!(a, b);
        assert!(c > a);
        // As strings the order would be the other way round: the reason to parse.
        assert!("2026-01-25T15:26:49+05:30" > "2026-01-25T10:00:00Z");
    }

    #[test]
    fn ids_order_numerically() {
        let mut v = [Id("100".into()), Id("99".into()), Id("5847596000000000001".into())];
        v.sort();
        assert_eq!(v[0].0, "99");
        assert_eq!(v[2].0, "5847596000000000001");
    }

    #[test]
    fn times_render_to_the_second_with_an_offset() {
        let s = fmt_time(&now());
        assert_eq!(s.len(), 25, "{s}");
        assert!(s.ends_with("+00:00"));
    }
}
