//! [`Fields`]: a record's canonical fields, a small map kept as one sorted vector.
//!
//! It behaves like the `BTreeMap<String, Value>` it replaced — keys in byte order, a later insert of a key
//! replaces the earlier value, serialised as a JSON object in key order (so fingerprints, stored JSON, saved plans
//! and reports are byte-identical) — but holds exactly its entries in one allocation, where a B-tree leaf has room
//! for 11 entries (≈ 1.1 KB) whatever it holds.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Index;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// Canonical fields: sorted keys, normalised values (see `mapping::canon`). `Value::Null` means empty.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Fields(Vec<(String, Value)>);

impl Fields {
    pub fn new() -> Fields {
        Fields(Vec::new())
    }

    // Generic over the borrowed key as the BTreeMap's methods were, so call sites read the same.
    fn find<Q: Ord + ?Sized>(&self, key: &Q) -> Result<usize, usize>
    where
        String: Borrow<Q>,
    {
        self.0.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&Value>
    where
        String: Borrow<Q>,
    {
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    pub fn get_mut<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<&mut Value>
    where
        String: Borrow<Q>,
    {
        self.find(key).ok().map(|i| &mut self.0[i].1)
    }

    pub fn contains_key<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        String: Borrow<Q>,
    {
        self.find(key).is_ok()
    }

    /// Sets `key`, returning the value it replaces.
    pub fn insert(&mut self, key: String, value: Value) -> Option<Value> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    pub fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<Value>
    where
        String: Borrow<Q>,
    {
        self.find(key).ok().map(|i| self.0.remove(i).1)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut Value) -> bool) {
        self.0.retain_mut(|(k, v)| keep(k, v));
    }

    /// In key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&String, &Value)> + ExactSizeIterator + Clone {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = (&String, &mut Value)> + ExactSizeIterator {
        self.0.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator + Clone {
        self.0.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Value> + ExactSizeIterator + Clone {
        self.0.iter().map(|(_, v)| v)
    }

    pub fn values_mut(&mut self) -> impl DoubleEndedIterator<Item = &mut Value> + ExactSizeIterator {
        self.0.iter_mut().map(|(_, v)| v)
    }

    /// Drops spare capacity: for fields that are kept (records held while planning and recording the base).
    pub fn shrink_to_fit(&mut self) {
        self.0.shrink_to_fit();
    }

    /// From entries in any order: sorted by key, the last of equal keys kept (as repeated inserts would).
    fn from_vec(mut v: Vec<(String, Value)>) -> Fields {
        if !v.is_sorted_by(|a, b| a.0 < b.0) {
            v.sort_by(|a, b| a.0.cmp(&b.0));
            // `dedup_by` hands (later, earlier-kept): keep the later value in the earlier slot.
            v.dedup_by(|later, kept| {
                let same = later.0 == kept.0;
                if same {
                    std::mem::swap(&mut later.1, &mut kept.1);
                }
                same
            });
        }
        v.shrink_to_fit();
        Fields(v)
    }
}

impl fmt::Debug for Fields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Index<&str> for Fields {
    type Output = Value;
    fn index(&self, key: &str) -> &Value {
        self.get(key).expect("no such field")
    }
}

impl FromIterator<(String, Value)> for Fields {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Fields {
        Fields::from_vec(iter.into_iter().collect())
    }
}

impl Extend<(String, Value)> for Fields {
    fn extend<I: IntoIterator<Item = (String, Value)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

impl IntoIterator for Fields {
    type Item = (String, Value);
    type IntoIter = std::vec::IntoIter<(String, Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Fields {
    type Item = (&'a String, &'a Value);
    type IntoIter =
        std::iter::Map<std::slice::Iter<'a, (String, Value)>, fn(&'a (String, Value)) -> (&'a String, &'a Value)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

impl Serialize for Fields {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            m.serialize_entry(k.as_str(), v)?;
        }
        m.end()
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Fields, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Fields;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of fields")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Fields, A::Error> {
                let mut v = Vec::with_capacity(map.size_hint().unwrap_or(0).min(256));
                while let Some((k, val)) = map.next_entry::<std::borrow::Cow<'de, str>, Value>()? {
                    v.push((k.into_owned(), val));
                }
                Ok(Fields::from_vec(v))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    fn mixed() -> Vec<(String, Value)> {
        [
            ("zoho_id", json!("9")),
            ("Email", json!("a@b.c")),
            ("email", json!(null)),
            ("", json!(1)),
            ("a b", json!([1, "x"])),
            ("é", json!({"z": 1, "a": 2})),
            ("_id", json!(true)),
            ("Email", json!("later wins")),
            ("10", json!(1.5)),
            ("9", json!(-3)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    #[test]
    fn behaves_and_serialises_as_the_btreemap() {
        let b: BTreeMap<String, Value> = mixed().into_iter().collect();
        let f: Fields = mixed().into_iter().collect();
        let mut inserted = Fields::new();
        for (k, v) in mixed() {
            inserted.insert(k, v);
        }
        assert_eq!(f, inserted);
        assert_eq!(f.len(), b.len());
        assert!(f.iter().map(|(k, v)| (k.to_string(), v.clone())).eq(b.clone()));
        assert!(f.keys().map(String::as_str).eq(b.keys().map(String::as_str)));
        assert_eq!(serde_json::to_string(&f).unwrap(), serde_json::to_string(&b).unwrap());
        assert_eq!(serde_json::to_vec_pretty(&f).unwrap(), serde_json::to_vec_pretty(&b).unwrap());
        assert_eq!(format!("{f:?}"), format!("{b:?}"));
        // From any JSON object, keys in any order, a repeated key's last value kept (as the BTreeMap did).
        let text = r#"{"b": 1, "a": {"y": 1, "x": 2}, "b": 3, "": null}"#;
        let back: Fields = serde_json::from_str(text).unwrap();
        let bb: BTreeMap<String, Value> = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), serde_json::to_string(&bb).unwrap());
        assert_eq!(serde_json::from_value::<Fields>(serde_json::to_value(&f).unwrap()).unwrap(), f);
        assert!(serde_json::from_str::<Fields>("[1]").is_err());
    }

    #[test]
    fn map_operations() {
        let mut f: Fields = mixed().into_iter().collect();
        assert_eq!(f.get("Email"), Some(&json!("later wins")));
        assert_eq!(f["email"], json!(null));
        assert!(f.contains_key("") && !f.contains_key("missing"));
        assert_eq!(f.insert("email".into(), json!("x")), Some(json!(null)));
        assert_eq!(f.remove("zoho_id"), Some(json!("9")));
        assert_eq!(f.remove("zoho_id"), None);
        f.retain(|k, _| k != "_id");
        assert!(!f.contains_key("_id"));
        f.extend([("m".to_string(), json!(2)), ("a b".to_string(), json!(0))]);
        let keys: Vec<&str> = f.keys().map(String::as_str).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        assert_eq!(f.get("a b"), Some(&json!(0)));
    }
}
