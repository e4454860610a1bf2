//! PHP's form decoding, as Moodle sees it: `application/x-www-form-urlencoded` pairs with bracket syntax
//! (`users[0][customfields][1][value]=x`) become nested ordered maps, exactly like `$_GET`/`$_POST`.
//! `max_input_vars` is emulated here because PHP enforces it while decoding: pairs beyond the limit are
//! silently dropped, in order, which is the truncation hazard the client's batching must avoid.

use serde_json::{Map, Value};

/// The decoded form of one source (query string or body).
#[derive(Debug, Clone, Default)]
pub struct Decoded {
    /// Nested maps whose leaves are strings (PHP arrays preserve insertion order; so does `Map`).
    pub vars: Map<String, Value>,
    /// Pairs seen before truncation (what the client sent).
    pub pairs: usize,
    /// True when pairs were dropped by `max_input_vars`.
    pub truncated: bool,
}

/// PHP refuses to nest deeper than `max_input_nesting_level` (64); deeper variables are dropped.
const MAX_NESTING: usize = 64;

/// Decodes `input` with PHP semantics, keeping at most `max_vars` pairs (0 = no limit).
pub fn parse(input: &[u8], max_vars: usize) -> Decoded {
    let mut out = Decoded::default();
    let mut kept = 0usize;
    for (name, value) in form_urlencoded::parse(input) {
        // PHP skips pairs whose name is empty (`=x`, `&&`) without counting them.
        if name.is_empty() {
            continue;
        }
        out.pairs += 1;
        if max_vars > 0 && kept >= max_vars {
            out.truncated = true;
            continue;
        }
        kept += 1;
        insert(&mut out.vars, &name, value.into_owned());
    }
    out
}

/// Splits `a[b][c]` into the base name and its bracket segments, the way `php_register_variable_ex` does.
/// Returns `None` when PHP would drop the variable.
fn split_name(name: &str) -> Option<(String, Vec<String>)> {
    // Leading spaces are dropped from the base name.
    let name = name.trim_start_matches(' ');
    let Some(open) = name.find('[') else {
        return Some((php_mangle(name), Vec::new()));
    };
    if open == 0 {
        return None;
    }
    let base = php_mangle(&name[..open]);
    let mut segments = Vec::new();
    let mut rest = &name[open..];
    while let Some(stripped) = rest.strip_prefix('[') {
        let Some(close) = stripped.find(']') else {
            // An unterminated bracket: PHP keeps what it parsed so far and ignores the rest, except when it
            // is the first bracket, where the `[` becomes `_` and the whole tail is part of the name.
            if segments.is_empty() {
                return Some((format!("{}_{}", base, php_mangle(stripped)), Vec::new()));
            }
            break;
        };
        segments.push(stripped[..close].to_string());
        rest = &stripped[close + 1..];
        if segments.len() > MAX_NESTING {
            return None;
        }
    }
    Some((base, segments))
}

/// PHP turns `.` and ` ` in top-level names into `_` (register_globals heritage).
fn php_mangle(s: &str) -> String {
    s.chars().map(|c| if c == '.' || c == ' ' { '_' } else { c }).collect()
}

fn insert(root: &mut Map<String, Value>, name: &str, value: String) {
    let Some((base, segments)) = split_name(name) else { return };
    if segments.is_empty() {
        root.insert(base, Value::String(value));
        return;
    }
    let mut slot = root.entry(base).or_insert(Value::Null);
    for seg in segments {
        // A scalar (or nothing) in the way of a nested key is replaced by an array, like PHP does.
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let Value::Object(map) = slot else { return };
        let key = if seg.is_empty() { next_index(map).to_string() } else { seg };
        slot = map.entry(key).or_insert(Value::Null);
    }
    *slot = Value::String(value);
}

/// `[]` appends at one past the largest integer key, as PHP arrays do.
fn next_index(map: &Map<String, Value>) -> i64 {
    map.keys().filter_map(|k| k.parse::<i64>().ok()).max().map(|m| m + 1).unwrap_or(0)
}

/// `array_merge($_GET, $_POST)`: top-level keys only, POST wins.
pub fn merge(query: Map<String, Value>, body: Map<String, Value>) -> Map<String, Value> {
    let mut out = query;
    for (k, v) in body {
        out.insert(k, v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &str) -> Value {
        Value::Object(parse(s.as_bytes(), 0).vars)
    }

    #[test]
    fn flat_and_nested() {
        assert_eq!(
            p("a=1&users[0][username]=jdoe&users[0][customfields][0][type]=zohoid&users[1][email]=x%40y.org"),
            json!({"a":"1","users":{"0":{"username":"jdoe","customfields":{"0":{"type":"zohoid"}}},"1":{"email":"x@y.org"}}})
        );
    }

    #[test]
    fn non_contiguous_indexes_keep_order() {
        let v = p("values[5]=a&values[2]=b&values[9]=c");
        let keys: Vec<_> = v["values"].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["5", "2", "9"]);
    }

    #[test]
    fn empty_brackets_append() {
        assert_eq!(p("v[]=a&v[]=b&v[7]=c&v[]=d"), json!({"v":{"0":"a","1":"b","7":"c","8":"d"}}));
    }

    #[test]
    fn last_wins_and_scalar_replaced_by_array() {
        assert_eq!(p("a=1&a=2"), json!({"a":"2"}));
        assert_eq!(p("a=1&a[x]=2"), json!({"a":{"x":"2"}}));
    }

    #[test]
    fn plus_and_percent_decoding_and_dots() {
        assert_eq!(p("first.name=John+Smith&e=a%2Bb"), json!({"first_name":"John Smith","e":"a+b"}));
    }

    #[test]
    fn unterminated_bracket() {
        assert_eq!(p("a[b=1"), json!({"a_b":"1"}));
        assert_eq!(p("a[x][y=1"), json!({"a":{"x":"1"}}));
    }

    #[test]
    fn max_input_vars_drops_in_order() {
        let d = parse(b"a=1&b=2&c=3&d=4", 2);
        assert_eq!(Value::Object(d.vars), json!({"a":"1","b":"2"}));
        assert_eq!(d.pairs, 4);
        assert!(d.truncated);
        let d = parse(b"a=1&b=2", 2);
        assert!(!d.truncated);
    }

    #[test]
    fn empty_names_skipped_and_not_counted() {
        let d = parse(b"&&=x&a=1", 1);
        assert_eq!(Value::Object(d.vars), json!({"a":"1"}));
        assert!(!d.truncated);
    }

    #[test]
    fn merge_post_wins() {
        let q = parse(b"a=1&b=1", 0).vars;
        let b = parse(b"b=2", 0).vars;
        assert_eq!(Value::Object(merge(q, b)), json!({"a":"1","b":"2"}));
    }
}
