//! Routing, and the order in which a call meets its gates: path, concurrency, auth, throttles, faults,
//! latency, then the handler.

use std::time::Duration;

use serde_json::json;

use super::envelope::error;
use super::schema::{self, ModuleDef};
use super::shared::Shared;
use super::write::{self, Op};
use super::{auth, coql, faults, read, ZohoOptions};
use crate::http::{Action, HttpRequest, HttpResponse, Limits, Malformed};

#[derive(Debug, PartialEq)]
enum Route {
    Token,
    Modules,
    ModuleMeta(String),
    Fields,
    Watch,
    Coql,
    List(String),
    Deleted(String),
    Upsert(String),
    One(String, String),
    NotFound,
}

fn route(path: &str) -> Route {
    if path == "/oauth/v2/token" {
        return Route::Token;
    }
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest = match segs.as_slice() {
        ["crm", version, rest @ ..]
            if version.starts_with('v') && version[1..].chars().all(|c| c.is_ascii_digit() || c == '.') =>
        {
            rest
        }
        _ => return Route::NotFound,
    };
    match rest {
        ["settings", "modules"] => Route::Modules,
        ["settings", "modules", m] => Route::ModuleMeta(m.to_string()),
        ["settings", "fields"] => Route::Fields,
        ["actions", "watch"] => Route::Watch,
        ["coql"] => Route::Coql,
        [m] if !m.is_empty() => Route::List(m.to_string()),
        [m, "deleted"] => Route::Deleted(m.to_string()),
        [m, "upsert"] => Route::Upsert(m.to_string()),
        [m, id] => Route::One(m.to_string(), id.to_string()),
        _ => Route::NotFound,
    }
}

fn endpoint(method: &str, r: &Route) -> String {
    let p = match r {
        Route::Token => "/oauth/v2/token",
        Route::Modules => "/crm/v8/settings/modules",
        Route::ModuleMeta(_) => "/crm/v8/settings/modules/{module}",
        Route::Fields => "/crm/v8/settings/fields",
        Route::Watch => "/crm/v8/actions/watch",
        Route::Coql => "/crm/v8/coql",
        Route::List(_) => "/crm/v8/{module}",
        Route::Deleted(_) => "/crm/v8/{module}/deleted",
        Route::Upsert(_) => "/crm/v8/{module}/upsert",
        Route::One(..) => "/crm/v8/{module}/{id}",
        Route::NotFound => "(unknown)",
    };
    format!("{method} {p}")
}

fn invalid_module() -> HttpResponse {
    error(400, "INVALID_MODULE", json!({"resource_path_index": 0}), "the module name given seems to be invalid")
}

fn bad_method() -> HttpResponse {
    error(400, "INVALID_REQUEST_METHOD", json!({}), "The http request method type is not a valid one")
}

/// The HTTP layer as Zoho's front ends behave: 64 MB bodies, idle keep-alive closed after 90 s (longer than a
/// client pool keeps one), 30 s between the bytes of a request, a JSON error for a request that cannot be read.
pub const LIMITS: Limits = Limits {
    name: "fake-zoho",
    max_body: 64 * 1024 * 1024,
    idle: Duration::from_secs(90),
    read: Duration::from_secs(30),
    server_header: None,
    malformed,
};

fn malformed(_: Malformed) -> HttpResponse {
    error(400, "INVALID_REQUEST", json!({}), "malformed HTTP request")
}

pub fn handle(shared: &Shared, req: &HttpRequest) -> Action {
    let r = route(&req.path);
    tracing::debug!(method = %req.method, path = %req.path, "fake zoho request");
    *shared.stats_mut().requests.entry(endpoint(&req.method, &r)).or_default() += 1;
    let action = match r {
        Route::Token => Action::Respond(auth::token_grant(shared, req)),
        Route::NotFound => Action::Respond(error(
            404,
            "INVALID_URL_PATTERN",
            json!({}),
            "Please check if the URL trying to access is a correct one",
        )),
        r => api_call(shared, req, r),
    };
    if let Action::Respond(resp) = &action {
        let mut s = shared.stats_mut();
        match resp.status {
            401 => s.unauthorized += 1,
            429 => s.throttled += 1,
            _ => {}
        }
    }
    action
}

fn api_call(shared: &Shared, req: &HttpRequest, r: Route) -> Action {
    let opts = shared.opts().clone();
    let (_in_flight, n) = shared.limits.enter();
    {
        let mut s = shared.stats_mut();
        s.max_in_flight = s.max_in_flight.max(n);
    }
    if opts.concurrency_cap.is_some_and(|cap| n > cap) {
        return Action::Respond(faults::too_many_requests(&opts));
    }
    if let Err(resp) = auth::check(shared, req) {
        return Action::Respond(resp);
    }
    let cost = if r == Route::Coql { coql::credits(&req.body) } else { 1 };
    let (throttled, spent) = shared.limits.throttled(&opts, cost);
    if throttled {
        return Action::Respond(faults::too_many_requests(&opts));
    }
    shared.stats_mut().credits_used += spent;
    if let Some(kind) = shared.limits.pick(&opts) {
        *shared.stats_mut().faults.entry(kind.name().to_string()).or_default() += 1;
        tracing::debug!(fault = kind.name(), "fake zoho: injected fault");
        return faults::action(kind, &opts);
    }
    if opts.latency_ms > 0 {
        std::thread::sleep(Duration::from_millis(opts.latency_ms));
    }
    let (resp, applied) = dispatch(shared, &opts, req, r);
    if applied && shared.limits.after_apply(&opts) {
        *shared.stats_mut().faults.entry("after_apply".into()).or_default() += 1;
        return Action::Drop;
    }
    Action::Respond(resp)
}

fn module(name: &str) -> Result<&'static ModuleDef, HttpResponse> {
    schema::module(name).ok_or_else(invalid_module)
}

fn dispatch(shared: &Shared, opts: &ZohoOptions, req: &HttpRequest, r: Route) -> (HttpResponse, bool) {
    let m = req.method.as_str();
    let read_only = |resp: HttpResponse| (resp, false);
    match r {
        Route::Modules if m == "GET" => read_only(HttpResponse::json(
            200,
            &json!({"modules": schema::MODULES.iter().map(schema::module_json).collect::<Vec<_>>()}),
        )),
        Route::ModuleMeta(name) if m == "GET" => read_only(match module(&name) {
            Ok(d) => HttpResponse::json(200, &json!({"modules": [schema::module_json(d)]})),
            Err(e) => e,
        }),
        Route::Fields if m == "GET" => read_only(fields_meta(opts, req)),
        Route::Watch => read_only(shared.notifier.watch(&shared.base_url(), req)),
        Route::Coql if m == "POST" => read_only(coql::query(shared, opts, req)),
        Route::List(name) => match (module(&name), m) {
            (Err(e), _) => (e, false),
            (Ok(d), "GET") => read_only(read::list(shared, opts, d, req)),
            (Ok(d), "POST") => write::write(shared, opts, d, req, Op::Insert, None),
            (Ok(d), "PUT") => write::write(shared, opts, d, req, Op::Update, None),
            (Ok(d), "DELETE") => write::delete(shared, opts, d, req, None),
            _ => read_only(bad_method()),
        },
        Route::Deleted(name) => match (module(&name), m) {
            (Err(e), _) => (e, false),
            (Ok(d), "GET") => read_only(read::deleted(shared, d, req)),
            _ => read_only(bad_method()),
        },
        Route::Upsert(name) => match (module(&name), m) {
            (Err(e), _) => (e, false),
            (Ok(d), "POST") => write::write(shared, opts, d, req, Op::Upsert, None),
            _ => read_only(bad_method()),
        },
        Route::One(name, id) => match (module(&name), m) {
            (Err(e), _) => (e, false),
            (Ok(d), "GET") => read_only(read::one(shared, d, &id, req)),
            (Ok(d), "PUT") => write::write(shared, opts, d, req, Op::Update, Some(&id)),
            (Ok(d), "DELETE") => write::delete(shared, opts, d, req, Some(&id)),
            _ => read_only(bad_method()),
        },
        _ => read_only(bad_method()),
    }
}

/// `GET /crm/v8/settings/fields?module=M` (§11 item 21').
fn fields_meta(opts: &ZohoOptions, req: &HttpRequest) -> HttpResponse {
    let Some((_, name)) = req.query_pairs().into_iter().find(|(k, _)| k == "module") else {
        return error(
            400,
            "REQUIRED_PARAM_MISSING",
            json!({"param_name": "module"}),
            "One of the expected parameter is missing",
        );
    };
    let Some(d) = schema::module(&name) else {
        return error(
            400,
            "INVALID_MODULE",
            json!({"param_name": "module"}),
            "the module name given seems to be invalid",
        );
    };
    if opts.metadata_204_module.as_deref() == Some(d.api_name) {
        return HttpResponse::empty(204);
    }
    HttpResponse::json(200, &schema::fields_json(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/oauth/v2/token"), Route::Token);
        assert_eq!(route("/crm/v8/BTEC_Students"), Route::List("BTEC_Students".into()));
        assert_eq!(route("/crm/v2.1/BTEC_Students/123"), Route::One("BTEC_Students".into(), "123".into()));
        assert_eq!(route("/crm/v8/BTEC_Students/deleted"), Route::Deleted("BTEC_Students".into()));
        assert_eq!(route("/crm/v8/BTEC_Students/upsert"), Route::Upsert("BTEC_Students".into()));
        assert_eq!(route("/crm/v8/settings/fields"), Route::Fields);
        assert_eq!(route("/crm/v8/actions/watch"), Route::Watch);
        assert_eq!(route("/crm/v8/a/b/c"), Route::NotFound);
        assert_eq!(route("/foo"), Route::NotFound);
        assert_eq!(route("/crm/bulk/v8/read"), Route::NotFound);
    }
}
