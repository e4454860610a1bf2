//! Reads: `GET /{module}` with paging and page tokens, `GET /{module}/{id}`, `GET /{module}/deleted` (§3).

use std::time::Instant;

use chrono::{DateTime, FixedOffset};
use serde_json::{json, Value};

use super::envelope::error;
use super::pages::{PageToken, SortKey, TokenError};
use super::schema::ModuleDef;
use super::shared::Shared;
use super::store::{self, Id, Rec};
use super::ZohoOptions;
use crate::http::{HttpRequest, HttpResponse};

pub const MAX_FIELDS: usize = 50;
pub const MAX_PER_PAGE: usize = 200;
pub const DISCRETE_LIMIT: usize = 2000;
const MAX_IDS: usize = 100;

/// What a page token is bound to: the module, every query parameter except the paging ones, and
/// `If-Modified-Since`. A continuation that changes any of them is refused.
pub fn binding(module: &str, params: &[(String, String)], if_modified_since: Option<&str>) -> String {
    let mut kept: Vec<String> =
        params.iter().filter(|(k, _)| k != "page" && k != "page_token").map(|(k, v)| format!("{k}={v}")).collect();
    kept.sort();
    format!("{module}?{}#ims={}", kept.join("&"), if_modified_since.unwrap_or(""))
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn invalid_param(name: &str, message: &str) -> HttpResponse {
    error(400, "INVALID_DATA", json!({"param_name": name}), message)
}

/// The `fields` list: required, at most 50.
fn parse_fields(params: &[(String, String)], required: bool) -> Result<Option<Vec<String>>, HttpResponse> {
    let Some(raw) = param(params, "fields") else {
        return if required {
            Err(error(
                400,
                "REQUIRED_PARAM_MISSING",
                json!({"param_name": "fields"}),
                "One of the expected parameter is missing",
            ))
        } else {
            Ok(None)
        };
    };
    let mut fields: Vec<String> = Vec::new();
    for f in raw.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        if !fields.iter().any(|g| g == f) {
            fields.push(f.to_string());
        }
    }
    if fields.is_empty() && required {
        return Err(error(
            400,
            "REQUIRED_PARAM_MISSING",
            json!({"param_name": "fields"}),
            "One of the expected parameter is missing",
        ));
    }
    if fields.len() > MAX_FIELDS {
        return Err(error(
            400,
            "LIMIT_EXCEEDED",
            json!({"limit": MAX_FIELDS, "param_name": "fields"}),
            "the given fields count exceeds the limit",
        ));
    }
    Ok(Some(fields))
}

fn parse_paging(params: &[(String, String)]) -> Result<(usize, usize), HttpResponse> {
    let per_page = match param(params, "per_page") {
        None => MAX_PER_PAGE,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_PER_PAGE).contains(&n) => n,
            _ => return Err(invalid_param("per_page", "per_page must be between 1 and 200")),
        },
    };
    let page = match param(params, "page") {
        None => 1,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => n,
            _ => return Err(invalid_param("page", "invalid page number")),
        },
    };
    Ok((page, per_page))
}

fn parse_ims(req: &HttpRequest) -> Result<Option<DateTime<FixedOffset>>, HttpResponse> {
    match req.header("if-modified-since") {
        None => Ok(None),
        Some(v) => store::parse_time(v).map(Some).ok_or_else(|| {
            error(
                400,
                "INVALID_DATA",
                json!({"param_name": "If-Modified-Since"}),
                "If-Modified-Since must be an ISO-8601 datetime with an offset",
            )
        }),
    }
}

fn is_record_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit())
}

fn reads_empty(opts: &ZohoOptions, module: &str) -> bool {
    opts.zero_records || opts.zero_records_modules.contains(module)
}

fn count_read(shared: &Shared, module: &str, n: usize) {
    *shared.stats_mut().records_read.entry(module.to_string()).or_default() += n as u64;
}

/// `GET /crm/v8/{module}`.
pub fn list(shared: &Shared, opts: &ZohoOptions, m: &ModuleDef, req: &HttpRequest) -> HttpResponse {
    let params = req.query_pairs();
    let fields = match parse_fields(&params, true) {
        Ok(f) => f.unwrap_or_default(),
        Err(e) => return e,
    };
    {
        let mut s = shared.stats_mut();
        s.max_fields_requested = s.max_fields_requested.max(fields.len());
    }
    let (page, per_page) = match parse_paging(&params) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let sort_by = param(&params, "sort_by").unwrap_or("id");
    if !["id", "Created_Time", "Modified_Time"].contains(&sort_by) {
        return error(
            400,
            "INVALID_DATA",
            json!({"param_name": "sort_by", "supported_values": ["id", "Created_Time", "Modified_Time"]}),
            "invalid sort_by",
        );
    }
    let sort_order = param(&params, "sort_order").unwrap_or("asc");
    if sort_order != "asc" && sort_order != "desc" {
        return invalid_param("sort_order", "sort_order must be asc or desc");
    }
    let ids: Option<Vec<String>> =
        param(&params, "ids").map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect());
    if let Some(ids) = &ids {
        if ids.len() > MAX_IDS {
            return error(400, "LIMIT_EXCEEDED", json!({"limit": MAX_IDS, "param_name": "ids"}), "too many ids");
        }
        if let Some(bad) = ids.iter().find(|i| !is_record_id(i)) {
            return error(400, "INVALID_DATA", json!({"param_name": "ids", "id": bad}), "invalid id");
        }
    }
    let ims = match parse_ims(req) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let bind = binding(m.api_name, &params, req.header("if-modified-since"));

    let resume = match param(&params, "page_token") {
        None => {
            if page * per_page > DISCRETE_LIMIT {
                return error(
                    400,
                    "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
                    json!({"limit": DISCRETE_LIMIT}),
                    "You can only get the first 2000 records without using page_token param",
                );
            }
            None
        }
        Some(token) => {
            let found = shared.pages().resolve(token, &bind, opts.page_token_record_limit);
            match found {
                Ok(t) => {
                    shared.stats_mut().page_token_reads += 1;
                    Some(t)
                }
                Err(TokenError::Unknown) => return invalid_param("page_token", "invalid page_token"),
                Err(TokenError::Mismatch) => {
                    return error(
                        400,
                        "TOKEN_BOUND_DATA_MISMATCH",
                        json!({"param_name": "page_token"}),
                        "the given page_token is bound to other data",
                    )
                }
                Err(TokenError::Expired) => {
                    return error(
                        400,
                        "EXPIRED_VALUE",
                        json!({"api_name": "page_token", "json_path": "$.query.page_token"}),
                        "the given page_token has expired",
                    )
                }
                Err(TokenError::PastLimit) => {
                    return error(
                        400,
                        "PAGINATION_LIMIT_EXCEEDED",
                        json!({"param_name": "page_token"}),
                        "pagination limit exceeded",
                    )
                }
            }
        }
    };

    let key_of = |id: &Id, r: &Rec| -> SortKey {
        let primary = match sort_by {
            "Created_Time" => r.created.timestamp(),
            "Modified_Time" => r.modified.timestamp(),
            _ => 0,
        };
        (primary, id.clone())
    };
    let desc = sort_order == "desc";

    let data = shared.data();
    let recs = shared_module(&data, m.api_name);
    let mut rows: Vec<(SortKey, &Id, &Rec)> = if reads_empty(opts, m.api_name) {
        Vec::new()
    } else {
        match &ids {
            Some(ids) => ids
                .iter()
                .filter_map(|i| recs.and_then(|r| r.get_key_value(&Id(i.clone()))))
                .map(|(id, r)| (key_of(id, r), id, r))
                .collect(),
            None => recs.into_iter().flatten().map(|(id, r)| (key_of(id, r), id, r)).collect(),
        }
    };
    if let Some(ims) = ims {
        rows.retain(|(_, _, r)| r.modified >= ims);
    }
    rows.sort_by(|a, b| if desc { b.0.cmp(&a.0) } else { a.0.cmp(&b.0) });
    rows.dedup_by(|a, b| a.1 == b.1);

    let (start, delivered_before) = match &resume {
        Some(t) => {
            let after = rows.partition_point(|(k, _, _)| if desc { *k >= t.last } else { *k <= t.last });
            (after, t.delivered)
        }
        None => ((page - 1) * per_page, (page - 1) * per_page),
    };
    let end = (start + per_page).min(rows.len());
    if start >= rows.len() {
        drop(data);
        let status = if ims.is_some() { opts.not_modified_status } else { 204 };
        return HttpResponse::empty(status);
    }
    let slice = &rows[start..end];
    let out: Vec<Value> = slice.iter().map(|(_, id, r)| data.render_fields(m, id, r, &fields)).collect();
    let more = end < rows.len();
    let last = slice.last().map(|(k, _, _)| k.clone());
    drop(data);

    let (next_token, token_expiry) = match (more, last) {
        (true, Some(last)) => {
            let expires = Instant::now() + opts.page_token_ttl;
            let expiry_text =
                store::fmt_time(&(store::now() + chrono::Duration::from_std(opts.page_token_ttl).unwrap_or_default()));
            let tok = shared.pages().issue(PageToken {
                binding: bind,
                last,
                delivered: delivered_before + out.len(),
                expires,
            });
            (Value::String(tok), Value::String(expiry_text))
        }
        _ => (Value::Null, Value::Null),
    };
    count_read(shared, m.api_name, out.len());
    let count = out.len();
    HttpResponse::json(
        200,
        &json!({
            "data": out,
            "info": {
                "per_page": per_page,
                "count": count,
                "page": delivered_before / per_page + 1,
                "sort_by": sort_by,
                "sort_order": sort_order,
                "more_records": more,
                "next_page_token": next_token,
                "previous_page_token": null,
                "page_token_expiry": token_expiry,
                "call": false,
                "email": false,
            }
        }),
    )
}

fn shared_module<'a>(data: &'a store::Store, module: &str) -> Option<&'a std::collections::BTreeMap<Id, Rec>> {
    data.modules.get(module)
}

/// `GET /crm/v8/{module}/{id}`: a one-element `data`, 204 for an unknown id.
pub fn one(shared: &Shared, m: &ModuleDef, id: &str, req: &HttpRequest) -> HttpResponse {
    if !is_record_id(id) {
        return error(
            400,
            "INVALID_DATA",
            json!({"api_name": "id", "json_path": "$.path.id"}),
            "the id given seems to be invalid",
        );
    }
    let params = req.query_pairs();
    let fields = match parse_fields(&params, false) {
        Ok(f) => f,
        Err(e) => return e,
    };
    let data = shared.data();
    let key = Id(id.to_string());
    let Some(rec) = data.modules.get(m.api_name).and_then(|r| r.get(&key)) else {
        return HttpResponse::empty(204);
    };
    let rendered = match &fields {
        Some(f) => data.render_fields(m, &key, rec, f),
        None => data.render_full(m, &key, rec),
    };
    drop(data);
    count_read(shared, m.api_name, 1);
    HttpResponse::json(200, &json!({"data": [rendered]}))
}

/// `GET /crm/v8/{module}/deleted?type=all|recycle|permanent`, newest first.
pub fn deleted(shared: &Shared, m: &ModuleDef, req: &HttpRequest) -> HttpResponse {
    let params = req.query_pairs();
    let kind = param(&params, "type").unwrap_or("all");
    if !["all", "recycle", "permanent"].contains(&kind) {
        return invalid_param("type", "type must be all, recycle or permanent");
    }
    let (page, per_page) = match parse_paging(&params) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let ims = match parse_ims(req) {
        Ok(t) => t,
        Err(e) => return e,
    };
    let data = shared.data();
    let mut rows: Vec<&store::DeletedEntry> = data
        .deleted
        .get(m.api_name)
        .into_iter()
        .flatten()
        .filter(|d| kind == "all" || d.kind == kind)
        .filter(|d| ims.is_none_or(|t| d.deleted_time >= t))
        .collect();
    rows.sort_by_key(|d| std::cmp::Reverse(d.deleted_time));
    let start = (page - 1) * per_page;
    if start >= rows.len() {
        return HttpResponse::empty(204);
    }
    let end = (start + per_page).min(rows.len());
    let out: Vec<Value> = rows[start..end].iter().map(|d| store::render_deleted(d)).collect();
    let more = end < rows.len();
    HttpResponse::json(
        200,
        &json!({"data": out, "info": {"per_page": per_page, "count": end - start, "page": page, "more_records": more}}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn binding_ignores_paging_and_order_of_params_but_nothing_else() {
        let a = binding("M", &p(&[("fields", "id,Name"), ("per_page", "200"), ("page", "1")]), None);
        let b = binding("M", &p(&[("per_page", "200"), ("page_token", "x"), ("fields", "id,Name")]), None);
        assert_eq!(a, b);
        let c = binding("M", &p(&[("fields", "id,Name"), ("per_page", "100")]), None);
        assert_ne!(a, c);
        let d = binding("M", &p(&[("fields", "id,Name"), ("per_page", "200")]), Some("2026-01-01T00:00:00+00:00"));
        assert_ne!(a, d);
        assert_ne!(a, binding("N", &p(&[("fields", "id,Name"), ("per_page", "200")]), None));
    }
}
