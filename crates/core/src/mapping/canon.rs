//! Canonical values: what both sides' fields are normalised to before comparing and fingerprinting.
//! Text is trimmed, emails lower-cased, dates `YYYY-MM-DD`, decimals fixed-point strings, empty = null.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use super::MapError;

/// Trimmed text; empty or absent → null. Numbers and booleans become their text.
pub fn text(v: Option<&Value>) -> Value {
    match v {
        Some(Value::String(s)) => {
            let t = s.trim();
            if t.is_empty() {
                Value::Null
            } else {
                Value::String(t.to_string())
            }
        }
        Some(Value::Number(n)) => Value::String(n.to_string()),
        Some(Value::Bool(b)) => Value::String(b.to_string()),
        _ => Value::Null,
    }
}

/// Trimmed, lower-cased email; empty → null.
pub fn email(v: Option<&Value>) -> Value {
    match text(v) {
        Value::String(s) => Value::String(s.to_lowercase()),
        other => other,
    }
}

/// A calendar date as `YYYY-MM-DD`. Accepts a date, or a datetime (its UTC date). Empty → null.
pub fn date(v: Option<&Value>, field: &str) -> Result<Value, MapError> {
    let Value::String(s) = text(v) else { return Ok(Value::Null) };
    if is_canonical_date(&s) {
        return Ok(Value::String(s));
    }
    if let Ok(d) = NaiveDate::parse_from_str(&s, "%Y-%m-%d") {
        return Ok(Value::String(d.format("%Y-%m-%d").to_string()));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(&s) {
        return Ok(Value::String(t.with_timezone(&Utc).format("%Y-%m-%d").to_string()));
    }
    Err(MapError::BadValue { field: field.into(), value: s, expected: "a date YYYY-MM-DD".into() })
}

/// Already `YYYY-MM-DD` (zero-padded) and a real date: what [`date`] would give back unchanged, without
/// the format parser (most dates Zoho returns look like this).
fn is_canonical_date(s: &str) -> bool {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() });
    let n = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap_or(0);
    shape && NaiveDate::from_ymd_opt(n(0..4) as i32, n(5..7), n(8..10)).is_some()
}

/// A Unix timestamp (Moodle) as a UTC calendar date; 0 or absent → null.
pub fn date_from_unix(v: Option<&Value>) -> Value {
    match v.and_then(Value::as_i64) {
        Some(0) | None => Value::Null,
        Some(t) => DateTime::from_timestamp(t, 0)
            .map(|d| Value::String(d.format("%Y-%m-%d").to_string()))
            .unwrap_or(Value::Null),
    }
}

/// Midnight UTC of a canonical date, as Moodle's Unix timestamp; null → 0.
pub fn unix_from_date(v: &Value) -> i64 {
    v.as_str()
        .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp())
        .unwrap_or(0)
}

/// A decimal as a fixed-point string with `places` decimals, rounded half away from zero, computed on the
/// digits (never through binary floating point, so 2.675 stays 2.68). Empty → null.
pub fn decimal(v: Option<&Value>, places: usize, field: &str) -> Result<Value, MapError> {
    let raw = match v {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        _ => return Ok(Value::Null),
    };
    fixed_point(&raw, places).map(Value::String).ok_or_else(|| MapError::BadValue {
        field: field.into(),
        value: raw,
        expected: "a decimal number".into(),
    })
}

fn fixed_point(raw: &str, places: usize) -> Option<String> {
    let (neg, body) = match raw.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, raw.strip_prefix('+').unwrap_or(raw)),
    };
    // Exponent forms (1e3) come from JSON numbers only; expand them through the digits.
    let body = if body.contains(['e', 'E']) {
        format!("{:.*}", places + 2, body.parse::<f64>().ok()?)
    } else {
        body.to_string()
    };
    let (int_part, frac_part) = body.split_once('.').unwrap_or((&body, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part.chars().all(|c| c.is_ascii_digit()) || !frac_part.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut digits: Vec<u8> = int_part.bytes().map(|b| b - b'0').collect();
    if digits.is_empty() {
        digits.push(0);
    }
    let mut frac: Vec<u8> = frac_part.bytes().map(|b| b - b'0').collect();
    let round_up = frac.len() > places && frac[places] >= 5;
    frac.resize(places, 0);
    digits.extend(frac);
    if round_up {
        let mut i = digits.len();
        loop {
            if i == 0 {
                digits.insert(0, 1);
                break;
            }
            i -= 1;
            if digits[i] == 9 {
                digits[i] = 0;
            } else {
                digits[i] += 1;
                break;
            }
        }
    }
    // A carry may have added one digit at the front; the last `places` digits are always the fraction.
    let (i, f) = digits.split_at(digits.len() - places);
    let mut int_str: String =
        i.iter().map(|d| (d + b'0') as char).collect::<String>().trim_start_matches('0').to_string();
    if int_str.is_empty() {
        int_str.push('0');
    }
    let frac_str: String = f.iter().map(|d| (d + b'0') as char).collect();
    let zero = int_str == "0" && frac_str.chars().all(|c| c == '0');
    let sign = if neg && !zero { "-" } else { "" };
    Some(if places == 0 { format!("{sign}{int_str}") } else { format!("{sign}{int_str}.{frac_str}") })
}

/// A whole number as text; empty → null.
pub fn integer(v: Option<&Value>, field: &str) -> Result<Value, MapError> {
    decimal(v, 0, field)
}

/// Booleans from JSON booleans, 0/1 numbers or strings.
pub fn boolean(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0) != 0,
        Some(Value::String(s)) => matches!(s.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"),
        _ => false,
    }
}

/// A Zoho lookup's id (`{"id": "...", "name": "..."}`), or a bare id string.
pub fn lookup_id(v: Option<&Value>) -> Value {
    match v {
        Some(Value::Object(o)) => text(o.get("id")),
        other => text(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_and_email() {
        assert_eq!(text(Some(&json!("  Zoë  "))), json!("Zoë"));
        assert_eq!(text(Some(&json!("   "))), Value::Null);
        assert_eq!(text(None), Value::Null);
        assert_eq!(text(Some(&json!(12))), json!("12"));
        assert_eq!(email(Some(&json!("  John.Smith@Student.EDU "))), json!("john.smith@student.edu"));
    }

    #[test]
    fn dates() {
        assert_eq!(date(Some(&json!("2026-01-05")), "d").unwrap(), json!("2026-01-05"));
        assert_eq!(date(Some(&json!("2026-01-05T23:30:00-05:00")), "d").unwrap(), json!("2026-01-06"));
        assert_eq!(date(Some(&json!("")), "d").unwrap(), Value::Null);
        assert!(date(Some(&json!("05/01/2026")), "d").is_err());
        assert!(date(Some(&json!("2026-02-30")), "d").is_err());
        assert_eq!(date(Some(&json!("2026-1-5")), "d").unwrap(), json!("2026-01-05"));
        assert_eq!(date(Some(&json!(" 2024-02-29 ")), "d").unwrap(), json!("2024-02-29"));
        assert_eq!(date_from_unix(Some(&json!(0))), Value::Null);
        let ts = unix_from_date(&json!("2026-01-05"));
        assert_eq!(date_from_unix(Some(&json!(ts))), json!("2026-01-05"));
    }

    #[test]
    fn decimals_are_exact() {
        let d = |v: Value, p| decimal(Some(&v), p, "x").unwrap();
        assert_eq!(d(json!(2000), 2), json!("2000.00"));
        assert_eq!(d(json!("2000.5"), 2), json!("2000.50"));
        assert_eq!(d(json!(2.675), 2), json!("2.68"));
        assert_eq!(d(json!("9.995"), 2), json!("10.00"));
        assert_eq!(d(json!("99.999"), 2), json!("100.00"));
        assert_eq!(d(json!(".5"), 2), json!("0.50"));
        assert_eq!(d(json!("-0.001"), 2), json!("0.00"));
        assert_eq!(d(json!("-12.345"), 2), json!("-12.35"));
        assert_eq!(d(json!("007"), 0), json!("7"));
        assert_eq!(d(json!(1e3), 2), json!("1000.00"));
        assert_eq!(d(json!("12.4"), 0), json!("12"));
        assert_eq!(d(json!("12.5"), 0), json!("13"));
        assert!(decimal(Some(&json!("1,000")), 2, "x").is_err());
        assert!(decimal(Some(&json!("abc")), 2, "x").is_err());
        assert_eq!(decimal(Some(&json!("")), 2, "x").unwrap(), Value::Null);
    }

    #[test]
    fn booleans_and_lookups() {
        assert!(boolean(Some(&json!(1))) && boolean(Some(&json!("true"))) && boolean(Some(&json!(true))));
        assert!(!boolean(Some(&json!(0))) && !boolean(None));
        assert_eq!(lookup_id(Some(&json!({"id": "58", "name": "x"}))), json!("58"));
        assert_eq!(lookup_id(Some(&json!(null))), Value::Null);
    }
}
