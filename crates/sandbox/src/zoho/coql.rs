//! A small COQL subset (§4.1, §11 item 20): `select f, ... from Module where c [and|or c]... [order by f
//! [asc|desc]] [limit n | limit offset, n]`, with conditions `f op value`, `f is [not] null` and
//! `f [not] in (v, ...)`. No parentheses, no joins in WHERE; `Lookup.Field` works in the select list.

use std::cmp::Ordering;

use serde_json::{json, Map, Value};

use super::envelope::error;
use super::schema::{self, FieldType, ModuleDef};
use super::shared::Shared;
use super::store::{self, Id, Rec, Store};
use super::ZohoOptions;
use crate::http::{HttpRequest, HttpResponse};

const MAX_LIMIT: i64 = 2000;
const MAX_ROWS: i64 = 100_000;
const MAX_SELECT: usize = 50;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(f64),
    Sym(String),
}

fn syntax(near: &str) -> HttpResponse {
    error(400, "SYNTAX_ERROR", json!({"near": near}), "error occured while parsing the query")
}

fn tokenize(q: &str) -> Result<Vec<Tok>, HttpResponse> {
    let chars: Vec<char> = q.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(syntax("'")),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(s));
        } else if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            out.push(Tok::Num(s.parse().map_err(|_| syntax(&s))?));
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || "_.$".contains(chars[i])) {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else if "<>!=".contains(c) {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if ["<=", ">=", "!=", "<>"].contains(&two.as_str()) {
                out.push(Tok::Sym(two));
                i += 2;
            } else {
                out.push(Tok::Sym(c.to_string()));
                i += 1;
            }
        } else if "(),*".contains(c) {
            out.push(Tok::Sym(c.to_string()));
            i += 1;
        } else {
            return Err(syntax(&c.to_string()));
        }
    }
    Ok(out)
}

#[derive(Debug)]
enum Cond {
    Cmp(String, String, Value),
    Null(String, bool),
    In(String, Vec<Value>, bool),
}

#[derive(Debug)]
struct Query {
    select: Vec<String>,
    module: String,
    /// OR of ANDs.
    filter: Vec<Vec<Cond>>,
    order: Option<(String, bool)>,
    offset: i64,
    limit: i64,
}

struct P {
    toks: Vec<Tok>,
    pos: usize,
}

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }
    fn kw(&mut self, kw: &str) -> Result<(), HttpResponse> {
        if self.is_kw(kw) {
            self.pos += 1;
            Ok(())
        } else {
            Err(syntax(&self.near()))
        }
    }
    fn sym(&mut self, s: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Sym(x)) if x == s) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn near(&self) -> String {
        match self.peek() {
            Some(Tok::Word(w)) | Some(Tok::Sym(w)) | Some(Tok::Str(w)) => w.clone(),
            Some(Tok::Num(n)) => n.to_string(),
            None => "end of query".into(),
        }
    }
    fn word(&mut self) -> Result<String, HttpResponse> {
        match self.next() {
            Some(Tok::Word(w)) => Ok(w),
            _ => {
                self.pos -= 1;
                Err(syntax(&self.near()))
            }
        }
    }
    fn value(&mut self) -> Result<Value, HttpResponse> {
        match self.next() {
            Some(Tok::Str(s)) => Ok(Value::String(s)),
            Some(Tok::Num(n)) => Ok(json!(n)),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            _ => {
                self.pos -= 1;
                Err(syntax(&self.near()))
            }
        }
    }
    fn int(&mut self) -> Result<i64, HttpResponse> {
        match self.next() {
            Some(Tok::Num(n)) if n.fract() == 0.0 => Ok(n as i64),
            other => Err(error(
                400,
                "INVALID_QUERY",
                json!({"limit": format!("{other:?}")}),
                "limit given seems to be invalid",
            )),
        }
    }
}

fn parse(q: &str) -> Result<Query, HttpResponse> {
    let mut p = P { toks: tokenize(q)?, pos: 0 };
    p.kw("select")?;
    let mut select = vec![p.word()?];
    while p.sym(",") {
        select.push(p.word()?);
    }
    p.kw("from")?;
    let module = p.word()?;
    if !p.is_kw("where") {
        return Err(error(
            400,
            "SYNTAX_ERROR",
            json!({"clause": "where", "near": p.near()}),
            "where clause is missing",
        ));
    }
    p.kw("where")?;
    let mut filter = vec![Vec::new()];
    loop {
        let field = p.word()?;
        let cond = if p.is_kw("is") {
            p.pos += 1;
            let not = p.is_kw("not");
            if not {
                p.pos += 1;
            }
            p.kw("null")?;
            Cond::Null(field, !not)
        } else if p.is_kw("in") || p.is_kw("not") {
            let not = p.is_kw("not");
            if not {
                p.pos += 1;
            }
            p.kw("in")?;
            if !p.sym("(") {
                return Err(syntax(&p.near()));
            }
            let mut vals = vec![p.value()?];
            while p.sym(",") {
                vals.push(p.value()?);
            }
            if !p.sym(")") {
                return Err(syntax(&p.near()));
            }
            Cond::In(field, vals, not)
        } else {
            let op = match p.next() {
                Some(Tok::Sym(s)) if ["=", "!=", "<>", "<", "<=", ">", ">="].contains(&s.as_str()) => s,
                Some(Tok::Word(w)) if w.eq_ignore_ascii_case("like") => "like".into(),
                _ => {
                    p.pos -= 1;
                    return Err(syntax(&p.near()));
                }
            };
            Cond::Cmp(field, op, p.value()?)
        };
        if let Some(g) = filter.last_mut() {
            g.push(cond);
        }
        if p.is_kw("and") {
            p.pos += 1;
        } else if p.is_kw("or") {
            p.pos += 1;
            filter.push(Vec::new());
        } else {
            break;
        }
    }
    let mut order = None;
    if p.is_kw("order") {
        p.pos += 1;
        p.kw("by")?;
        let f = p.word()?;
        let desc = if p.is_kw("desc") {
            p.pos += 1;
            true
        } else {
            if p.is_kw("asc") {
                p.pos += 1;
            }
            false
        };
        order = Some((f, desc));
    }
    let (mut offset, mut limit) = (0, 200);
    if p.is_kw("limit") {
        p.pos += 1;
        let first = p.int()?;
        if p.sym(",") {
            offset = first;
            limit = p.int()?;
        } else {
            limit = first;
        }
        if p.is_kw("offset") {
            p.pos += 1;
            offset = p.int()?;
        }
    }
    if p.peek().is_some() {
        return Err(syntax(&p.near()));
    }
    Ok(Query { select, module, filter, order, offset, limit })
}

/// Credits a COQL call costs, by LIMIT (§4.1).
pub fn credits(body: &[u8]) -> u64 {
    let limit = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("select_query").and_then(Value::as_str).map(str::to_string))
        .and_then(|q| parse(&q).ok())
        .map_or(200, |q| q.limit);
    match limit {
        ..=200 => 1,
        201..=1000 => 2,
        _ => 3,
    }
}

/// The comparable form of a record's field: instants for times, numbers for numbers, ids for lookups.
fn field_value(store: &Store, m: &ModuleDef, id: &Id, r: &Rec, field: &str) -> Value {
    match field {
        "id" => Value::String(id.0.clone()),
        _ => {
            let v = store.render_fields(m, id, r, &[field.to_string()]);
            match v.get(field) {
                Some(Value::Object(o)) if o.contains_key("id") => o.get("id").cloned().unwrap_or(Value::Null),
                Some(v) => v.clone(),
                None => Value::Null,
            }
        }
    }
}

fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (a.as_str().and_then(store::parse_time), b.as_str().and_then(store::parse_time)) {
        return Some(x.cmp(&y));
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::Number(y)) | (Value::Number(y), Value::String(x)) if x.parse::<f64>().is_ok() => {
            let ord = x.parse::<f64>().ok()?.partial_cmp(&y.as_f64()?)?;
            Some(if matches!(a, Value::String(_)) { ord } else { ord.reverse() })
        }
        (Value::String(x), Value::String(y)) => {
            if x.bytes().all(|c| c.is_ascii_digit()) && y.bytes().all(|c| c.is_ascii_digit()) {
                Some(Id(x.clone()).cmp(&Id(y.clone())))
            } else {
                Some(x.to_lowercase().cmp(&y.to_lowercase()))
            }
        }
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn like(v: &Value, pattern: &Value) -> bool {
    let (Some(s), Some(p)) = (v.as_str(), pattern.as_str()) else { return false };
    let s = s.to_lowercase();
    let p = p.to_lowercase();
    match (p.strip_prefix('%'), p.strip_suffix('%')) {
        (Some(rest), _) if rest.ends_with('%') => s.contains(&rest[..rest.len() - 1]),
        (Some(rest), _) => s.ends_with(rest),
        (None, Some(rest)) => s.starts_with(rest),
        (None, None) => s == p,
    }
}

fn matches(c: &Cond, get: &dyn Fn(&str) -> Value) -> bool {
    match c {
        Cond::Null(f, want_null) => get(f).is_null() == *want_null,
        Cond::In(f, vals, not) => {
            let v = get(f);
            vals.iter().any(|x| compare(&v, x) == Some(Ordering::Equal)) != *not
        }
        Cond::Cmp(f, op, x) => {
            let v = get(f);
            if op == "like" {
                return like(&v, x);
            }
            match compare(&v, x) {
                None => op == "!=" || op == "<>",
                Some(o) => match op.as_str() {
                    "=" => o == Ordering::Equal,
                    "!=" | "<>" => o != Ordering::Equal,
                    "<" => o == Ordering::Less,
                    "<=" => o != Ordering::Greater,
                    ">" => o == Ordering::Greater,
                    _ => o != Ordering::Less,
                },
            }
        }
    }
}

fn select_value(store: &Store, m: &ModuleDef, id: &Id, r: &Rec, f: &str) -> Value {
    if let Some((lookup, sub)) = f.split_once('.') {
        let target = match m.field(lookup).map(|d| d.ty) {
            Some(FieldType::Lookup(t)) => t,
            _ => return Value::Null,
        };
        let Some(tid) = r.fields.get(lookup).and_then(|v| v.get("id")).and_then(Value::as_str) else {
            return Value::Null;
        };
        let (Some(tm), Some(tr)) = (schema::module(target), store.get(target, tid)) else { return Value::Null };
        return field_value(store, tm, &Id(tid.to_string()), tr, sub);
    }
    store.render_fields(m, id, r, &[f.to_string()]).get(f).cloned().unwrap_or(Value::Null)
}

/// `POST /crm/v8/coql`.
pub fn query(shared: &Shared, opts: &ZohoOptions, req: &HttpRequest) -> HttpResponse {
    let q = match serde_json::from_slice::<Value>(&req.body).ok().and_then(|v| v.get("select_query").cloned()) {
        Some(Value::String(q)) => q,
        _ => {
            return error(
                400,
                "REQUIRED_PARAM_MISSING",
                json!({"param_name": "select_query"}),
                "One of the expected parameter is missing",
            )
        }
    };
    let q = match parse(&q) {
        Ok(q) => q,
        Err(e) => return e,
    };
    let Some(m) = schema::module(&q.module) else {
        return error(400, "INVALID_QUERY", json!({"clause": "from", "near": q.module}), "invalid module given");
    };
    if q.select.len() > MAX_SELECT {
        return error(
            400,
            "LIMIT_EXCEEDED",
            json!({"clause": "select", "limit": MAX_SELECT}),
            "select columns limit exceeded",
        );
    }
    if q.limit <= 0 {
        return error(400, "INVALID_DATA", json!({"clause": "limit"}), "limit should be greater than 0");
    }
    if q.limit > MAX_LIMIT || q.offset < 0 || q.offset + q.limit > MAX_ROWS {
        return error(400, "LIMIT_EXCEEDED", json!({"clause": "limit", "limit": MAX_LIMIT}), "limit exceeded");
    }
    let store = shared.data();
    let empty = opts.zero_records || opts.zero_records_modules.contains(m.api_name);
    let mut rows: Vec<(&Id, &Rec)> = if empty {
        Vec::new()
    } else {
        store
            .modules
            .get(m.api_name)
            .into_iter()
            .flatten()
            .filter(|(id, r)| {
                let get = |f: &str| field_value(&store, m, id, r, f);
                q.filter.iter().any(|group| group.iter().all(|c| matches(c, &get)))
            })
            .collect()
    };
    if let Some((f, desc)) = &q.order {
        rows.sort_by(|a, b| {
            let o = compare(&field_value(&store, m, a.0, a.1, f), &field_value(&store, m, b.0, b.1, f))
                .unwrap_or(Ordering::Equal)
                .then_with(|| a.0.cmp(b.0));
            if *desc {
                o.reverse()
            } else {
                o
            }
        });
    }
    let start = q.offset as usize;
    if start >= rows.len() {
        return HttpResponse::empty(204);
    }
    let end = (start + q.limit as usize).min(rows.len());
    let data: Vec<Value> = rows[start..end]
        .iter()
        .map(|(id, r)| {
            let mut o = Map::new();
            o.insert("id".into(), Value::String(id.0.clone()));
            for f in &q.select {
                o.insert(f.clone(), select_value(&store, m, id, r, f));
            }
            Value::Object(o)
        })
        .collect();
    let more = end < rows.len();
    drop(store);
    let n = data.len();
    *shared.stats_mut().records_read.entry(m.api_name.to_string()).or_default() += n as u64;
    HttpResponse::json(200, &json!({"data": data, "info": {"count": n, "more_records": more}}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_supported_subset() {
        let q = parse("select id, Name from BTEC_Students where Modified_Time >= '2026-01-25T00:00:00+00:00' and Status in ('Active','Inactive') or Name is not null order by id asc limit 10, 2000").unwrap();
        assert_eq!(q.select, ["id", "Name"]);
        assert_eq!(q.module, "BTEC_Students");
        assert_eq!(q.filter.len(), 2);
        assert_eq!((q.offset, q.limit), (10, 2000));
        assert!(parse("select id from BTEC_Students").is_err(), "WHERE is required");
        assert!(parse("select id from BTEC_Students where Name = ").is_err());
    }

    #[test]
    fn credits_by_limit() {
        let body = |l: u32| format!(r#"{{"select_query":"select id from M where id is not null limit {l}"}}"#);
        assert_eq!(credits(body(200).as_bytes()), 1);
        assert_eq!(credits(body(1000).as_bytes()), 2);
        assert_eq!(credits(body(2000).as_bytes()), 3);
    }
}
