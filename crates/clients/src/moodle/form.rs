//! PHP form encoding of nested arguments: `users[0][username]=jdoe`, explicit numeric indexes
//! (never `[]`), booleans as 1/0, `null` omitted (form encoding cannot send it: an absent optional key is how
//! Moodle spells "not set").

use serde_json::Value;

/// Flattens `args` (a JSON object) into `name=value` pairs in order.
pub fn pairs(args: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Value::Object(map) = args {
        for (k, v) in map {
            push(&mut out, k.clone(), v);
        }
    }
    out
}

fn push(out: &mut Vec<(String, String)>, name: String, v: &Value) {
    match v {
        Value::Null => {}
        Value::Bool(b) => out.push((name, if *b { "1" } else { "0" }.into())),
        Value::Number(n) => out.push((name, n.to_string())),
        Value::String(s) => out.push((name, s.clone())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                push(out, format!("{name}[{i}]"), item);
            }
        }
        Value::Object(map) => {
            for (k, item) in map {
                push(out, format!("{name}[{k}]"), item);
            }
        }
    }
}

/// How many pairs one value contributes (what PHP's `max_input_vars` counts).
pub fn count(v: &Value) -> usize {
    match v {
        Value::Null => 0,
        Value::Array(items) => items.iter().map(count).sum(),
        Value::Object(map) => map.values().map(count).sum(),
        _ => 1,
    }
}

/// The `application/x-www-form-urlencoded` body for `pairs`.
pub fn encode(pairs: &[(String, String)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_arrays_get_explicit_indexes() {
        let args = json!({"users": [{"username": "jdoe", "suspended": true, "idnumber": null,
            "customfields": [{"type": "zohoid", "value": "4242"}]}], "field": "idnumber", "values": ["Z1", "Z2"]});
        let p = pairs(&args);
        let want = [
            ("users[0][username]", "jdoe"),
            ("users[0][suspended]", "1"),
            ("users[0][customfields][0][type]", "zohoid"),
            ("users[0][customfields][0][value]", "4242"),
            ("field", "idnumber"),
            ("values[0]", "Z1"),
            ("values[1]", "Z2"),
        ];
        assert_eq!(p, want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>());
        assert_eq!(count(&args), p.len());
        let body = encode(&p[..1]);
        assert_eq!(body, "users%5B0%5D%5Busername%5D=jdoe");
        assert_eq!(encode(&[("e".into(), "a+b@x.org".into())]), "e=a%2Bb%40x.org");
    }
}
