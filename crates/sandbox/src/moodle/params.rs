//! Moodle's `external_api::validate_parameters`: strict schemas. A scalar is cleaned with
//! its `PARAM_*` type and rejected unless the cleaned value prints exactly like the raw one, so a client
//! that sends `" 12"`, `"true"` or `"JDoe"` learns it here, as it would against a real site.

use serde_json::{Map, Value};

use super::errors::WsError;

/// The `PARAM_*` types the fake's functions use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum P {
    Int,
    Bool,
    Float,
    Raw,
    RawTrimmed,
    Text,
    NoTags,
    Alpha,
    AlphaNum,
    AlphaNumExt,
    Username,
    Plugin,
    SafeDir,
    Timezone,
    Component,
}

impl P {
    /// The type name Moodle prints in debuginfo.
    fn name(self) -> &'static str {
        match self {
            P::Int => "int",
            P::Bool => "bool",
            P::Float => "float",
            P::Raw => "raw",
            P::RawTrimmed => "raw_trimmed",
            P::Text => "text",
            P::NoTags => "notags",
            P::Alpha => "alpha",
            P::AlphaNum => "alphanum",
            P::AlphaNumExt => "alphanumext",
            P::Username => "username",
            P::Plugin => "plugin",
            P::SafeDir => "safedir",
            P::Timezone => "timezone",
            P::Component => "component",
        }
    }
}

/// `VALUE_REQUIRED`, `VALUE_OPTIONAL`, `VALUE_DEFAULT` (the default is already a cleaned value).
#[derive(Debug, Clone, PartialEq)]
pub enum Req {
    Required,
    Optional,
    Default(Value),
}

/// An external description: `external_value`, `external_single_structure`, `external_multiple_structure`.
#[derive(Debug, Clone)]
pub enum Desc {
    Value(P, Req),
    Single(Vec<(&'static str, Desc)>, Req),
    Multiple(Box<Desc>, Req),
}

impl Desc {
    fn req(&self) -> &Req {
        match self {
            Desc::Value(_, r) | Desc::Single(_, r) | Desc::Multiple(_, r) => r,
        }
    }
}

/// Shorthands for writing schemas.
pub fn req(p: P) -> Desc {
    Desc::Value(p, Req::Required)
}
pub fn opt(p: P) -> Desc {
    Desc::Value(p, Req::Optional)
}
pub fn def(p: P, v: Value) -> Desc {
    Desc::Value(p, Req::Default(v))
}
pub fn single(keys: Vec<(&'static str, Desc)>) -> Desc {
    Desc::Single(keys, Req::Required)
}
pub fn list(content: Desc) -> Desc {
    Desc::Multiple(Box::new(content), Req::Required)
}
pub fn with(d: Desc, r: Req) -> Desc {
    match d {
        Desc::Value(p, _) => Desc::Value(p, r),
        Desc::Single(k, _) => Desc::Single(k, r),
        Desc::Multiple(c, _) => Desc::Multiple(c, r),
    }
}

/// Validates the function's arguments (the top level is an `external_function_parameters`, i.e. a single
/// structure, so stray top-level parameters are "Unexpected keys").
pub fn validate(keys: &[(&'static str, Desc)], args: &Map<String, Value>) -> Result<Map<String, Value>, WsError> {
    match validate_single(keys, &Value::Object(args.clone())) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Ok(Map::new()),
        Err(d) => Err(WsError::invalid_parameter(d)),
    }
}

/// The debuginfo of a nested failure, as `invalid_parameter_exception` composes it.
fn nested(key: &str, inner: String) -> String {
    format!("{key} => Invalid parameter value detected: {inner}")
}

fn validate_desc(desc: &Desc, raw: &Value) -> Result<Value, String> {
    match desc {
        Desc::Value(p, _) => validate_scalar(*p, raw),
        Desc::Single(keys, _) => validate_single(keys, raw),
        Desc::Multiple(content, _) => {
            let Value::Object(items) = raw else {
                return Err(format!("Only arrays accepted. The bad value is: '{}'", print_r(raw)));
            };
            // Lists iterate the values: indexes need not be contiguous.
            items.values().map(|v| validate_desc(content, v)).collect::<Result<Vec<_>, _>>().map(Value::Array)
        }
    }
}

fn validate_single(keys: &[(&'static str, Desc)], raw: &Value) -> Result<Value, String> {
    let Value::Object(given) = raw else {
        return Err(format!("Only arrays accepted. The bad value is: '{}'", print_r(raw)));
    };
    let mut out = Map::new();
    for (key, sub) in keys {
        match given.get(*key) {
            None => match sub.req() {
                Req::Required => return Err(format!("Missing required key in single structure: {key}")),
                Req::Default(v) => {
                    out.insert(key.to_string(), v.clone());
                }
                Req::Optional => {}
            },
            Some(v) => {
                let cleaned = validate_desc(sub, v).map_err(|e| nested(key, e))?;
                out.insert(key.to_string(), cleaned);
            }
        }
    }
    let unexpected: Vec<&str> =
        given.keys().filter(|k| !keys.iter().any(|(n, _)| n == k)).map(String::as_str).collect();
    if !unexpected.is_empty() {
        return Err(format!("Unexpected keys ({}) detected in parameter array.", unexpected.join(", ")));
    }
    Ok(Value::Object(out))
}

fn print_r(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(_) => "Array".into(),
        other => other.to_string(),
    }
}

fn validate_scalar(p: P, raw: &Value) -> Result<Value, String> {
    let Value::String(s) = raw else {
        // An array where a scalar is expected.
        return Err("Invalid external api parameter: the value is \"Array\", the server was expecting a scalar".into());
    };
    let bad = || {
        format!("Invalid external api parameter: the value is \"{s}\", the server was expecting \"{}\" type", p.name())
    };
    match p {
        P::Int => parse_int(s).map(Value::from).ok_or_else(bad),
        P::Bool => match s.as_str() {
            "0" => Ok(Value::Bool(false)),
            "1" => Ok(Value::Bool(true)),
            _ => Err(bad()),
        },
        P::Float => parse_float(s).map(Value::from).ok_or_else(bad),
        other => {
            let cleaned = clean_text(other, s);
            if cleaned == *s {
                Ok(Value::String(cleaned))
            } else {
                Err(bad())
            }
        }
    }
}

/// `(int)` in PHP, then compared as strings: only canonical decimal integers survive.
pub fn parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    if s == "-0" {
        return None;
    }
    s.parse().ok()
}

/// PARAM_FLOAT: numeric and matching `^[+-]?[0-9]*\.?[0-9]*(e[-+]?[0-9]+)?$` (case-insensitive).
fn parse_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let mut digits = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
        digits += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    s.parse::<f64>().ok().filter(|f| f.is_finite())
}

const PHP_TRIM: &[char] = &[' ', '\t', '\n', '\r', '\0', '\x0B'];

/// `clean_param` for the string types.
pub fn clean_text(p: P, s: &str) -> String {
    match p {
        P::Raw => s.to_string(),
        P::RawTrimmed => s.trim_matches(PHP_TRIM).to_string(),
        P::Text | P::NoTags => strip_tags(s),
        P::Alpha => s.chars().filter(|c| c.is_ascii_alphabetic()).collect(),
        P::AlphaNum => s.chars().filter(|c| c.is_ascii_alphanumeric()).collect(),
        P::AlphaNumExt => s.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect(),
        P::Username => s
            .trim_matches(PHP_TRIM)
            .to_lowercase()
            .chars()
            .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '@' | '_'))
            .collect(),
        P::Plugin | P::Component => {
            let ok = s.is_empty()
                || (s.starts_with(|c: char| c.is_ascii_lowercase())
                    && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    && !s.contains("__"));
            if ok {
                s.to_string()
            } else {
                String::new()
            }
        }
        P::SafeDir => s.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect(),
        P::Timezone => {
            let ok = s == "99"
                || s.split('/').all(|part| {
                    !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
                });
            if ok {
                s.to_string()
            } else {
                String::new()
            }
        }
        P::Int | P::Bool | P::Float => s.to_string(),
    }
}

/// `strip_tags`: removes `<tag …>`-like runs (a `<` followed by a letter, `/`, `!` or `?`).
fn strip_tags(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '<' && chars.peek().is_some_and(|n| n.is_ascii_alphabetic() || matches!(n, '/' | '!' | '?')) {
            for n in chars.by_ref() {
                if n == '>' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Moodle's `validate_email` (the classic address pattern; `<` and `>` refused).
pub fn valid_email(s: &str) -> bool {
    const SPECIAL: &str = "-!#$%&'*+/=?^_`{|}~";
    let atom = |c: char| c.is_ascii_alphanumeric() || SPECIAL.contains(c);
    let Some((local, domain)) = s.split_once('@') else { return false };
    if local.is_empty() || domain.is_empty() || domain.contains('@') {
        return false;
    }
    if !local.split('.').all(|a| !a.is_empty() && a.chars().all(atom)) {
        return false;
    }
    let Some((head, tail)) = domain.split_once('.') else { return false };
    !head.is_empty() && head.chars().all(atom) && !tail.is_empty() && tail.chars().all(|c| atom(c) || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn users_schema() -> Vec<(&'static str, Desc)> {
        vec![(
            "users",
            list(single(vec![
                ("username", req(P::Username)),
                ("email", req(P::RawTrimmed)),
                ("auth", def(P::Plugin, json!("manual"))),
                ("idnumber", def(P::Raw, json!(""))),
                ("createpassword", opt(P::Bool)),
                ("maildisplay", opt(P::Int)),
            ])),
        )]
    }

    #[test]
    fn defaults_optional_and_types() {
        let out = validate(
            &users_schema(),
            &m(json!({"users":{"3":{"username":"jdoe","email":"j@x.org","createpassword":"1","maildisplay":"-2"}}})),
        )
        .unwrap();
        assert_eq!(
            Value::Object(out),
            json!({"users":[{"username":"jdoe","email":"j@x.org","auth":"manual","idnumber":"","createpassword":true,"maildisplay":-2}]})
        );
    }

    fn err(args: Value) -> String {
        validate(&users_schema(), &m(args)).unwrap_err().debuginfo.unwrap()
    }

    #[test]
    fn rejections() {
        assert_eq!(
            err(json!({"users":{"0":{"username":"JDoe","email":"j@x.org"}}})),
            "users => Invalid parameter value detected: username => Invalid parameter value detected: Invalid external api parameter: the value is \"JDoe\", the server was expecting \"username\" type"
        );
        assert!(err(json!({"users":{"0":{"username":"jdoe","email":" j@x.org"}}})).contains("raw_trimmed"));
        assert!(err(json!({"users":{"0":{"username":"jdoe","email":"j@x.org","createpassword":"true"}}}))
            .contains("\"bool\""));
        assert!(
            err(json!({"users":{"0":{"username":"jdoe","email":"j@x.org","maildisplay":"012"}}})).contains("\"int\"")
        );
        assert!(err(json!({"users":{"0":{"username":"jdoe"}}}))
            .ends_with("Missing required key in single structure: email"));
        assert!(err(json!({"users":{"0":{"username":"jdoe","email":"e@x.org","suspended":"0"}}}))
            .ends_with("Unexpected keys (suspended) detected in parameter array."));
        assert_eq!(
            err(json!({"users":{"0":{"username":"a","email":"b"}},"x":"1"})),
            "Unexpected keys (x) detected in parameter array."
        );
        assert!(err(json!({"users":"x"})).contains("Only arrays accepted"));
        assert_eq!(err(json!({})), "Missing required key in single structure: users");
    }

    #[test]
    fn ints() {
        for ok in ["0", "12", "-5", "9223372036854775807"] {
            assert!(parse_int(ok).is_some(), "{ok}");
        }
        for bad in ["", " 12", "12abc", "+5", "012", "-0", "1.0", "99999999999999999999"] {
            assert!(parse_int(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn floats_and_text() {
        assert_eq!(parse_float("85.5"), Some(85.5));
        assert_eq!(parse_float("-1e3"), Some(-1000.0));
        assert_eq!(parse_float(".5"), Some(0.5));
        assert!(parse_float("").is_none() && parse_float("abc").is_none() && parse_float("1,5").is_none());
        assert_eq!(clean_text(P::Text, "a <b>bold</b> & < 3"), "a bold & < 3");
        assert_eq!(clean_text(P::AlphaNumExt, "58-47_x.y"), "58-47_xy");
    }

    #[test]
    fn emails() {
        assert!(valid_email("jdoe@example.org") && valid_email("a.b+c@x.co.uk"));
        assert!(!valid_email("jdoe") && !valid_email("a@b") && !valid_email("a b@x.org") && !valid_email("<a>@x.org"));
        assert!(!valid_email("a@x.org\n"));
    }
}
