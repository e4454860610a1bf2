//! One REST request, in the order `webservice/rest/server.php` works: protocol enabled, maintenance,
//! parse (PHP superglobals, max_input_vars), token, function name, function lookup, service membership,
//! parameter validation, execution. Faults are injected around it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rand::Rng;
use serde_json::{Map, Value};

use super::errors::{php_json, value_to_xml, WsError};
use super::functions::{self, Ctx, OUTSIDE_SERVICE};
use super::{form, params, FaultKind, LoggedRequest, Shared};
use crate::http::{Action, HttpRequest, HttpResponse, Limits, Malformed};

const HTML_503: &str = "<!DOCTYPE html><html><head><title>Site maintenance</title></head><body><h1>This site is undergoing maintenance</h1><p>Please try again later.</p></body></html>";
const HTML_500: &str = "<br />\n<b>Fatal error</b>:  Allowed memory size of 134217728 bytes exhausted (tried to allocate 20480 bytes) in <b>/var/www/moodle/public/lib/dml/moodle_database.php</b> on line <b>1227</b><br />\n";

/// The HTTP layer as Apache in front of Moodle behaves: 256 MB bodies; idle keep-alive kept 300 s, longer
/// than any client's pool idle timeout, so the server is never the side closing an idle connection; an HTML
/// page for a request that cannot be read (400, 413 or 431).
pub const LIMITS: Limits = Limits {
    name: "fake-moodle",
    max_body: 256 * 1024 * 1024,
    idle: Duration::from_secs(300),
    read: Duration::from_secs(300),
    server_header: Some("Apache"),
    malformed,
};

fn malformed(bad: Malformed) -> HttpResponse {
    HttpResponse::typed(bad.status, "text/html; charset=utf-8", b"<html><body>Bad request</body></html>".to_vec())
}

pub fn handle(shared: &Shared, req: &HttpRequest) -> Action {
    let depth = shared.inflight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_concurrent.fetch_max(depth, Ordering::SeqCst);
    let reply = route(shared, req);
    shared.inflight.fetch_sub(1, Ordering::SeqCst);
    reply
}

fn html(status: u16, body: &str) -> Action {
    Action::Respond(HttpResponse::typed(status, "text/html; charset=utf-8", body.as_bytes().to_vec()))
}

fn route(shared: &Shared, req: &HttpRequest) -> Action {
    tracing::trace!(method = %req.method, path = %req.path, "fake Moodle request");
    let opts = shared.opts();
    if opts.latency_ms > 0 {
        std::thread::sleep(Duration::from_millis(opts.latency_ms));
    }
    match req.path.as_str() {
        "/webservice/rest/server.php" => {}
        "/login/token.php" => return super::login::token(shared, &opts, req),
        _ => return html(404, "<html><body><h1>Not Found</h1></body></html>"),
    }
    if opts.protocol_disabled {
        return Action::Respond(HttpResponse::typed(403, "", Vec::new()));
    }
    if opts.maintenance {
        return html(503, HTML_503);
    }
    if let Some(kind) = draw_fault(shared, opts.fault_rate, &opts.fault_kinds) {
        shared.count_fault(kind);
        return fault_reply(kind, opts.fault_hold_ms);
    }

    // PHP fills $_POST only for form bodies: a JSON body is ignored entirely.
    let max = opts.max_input_vars;
    let query = form::parse(req.query.as_bytes(), max);
    let is_form = req
        .header("content-type")
        .is_some_and(|c| c.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded"));
    let body = if is_form { form::parse(&req.body, max) } else { form::Decoded::default() };
    shared.count_vars(query.pairs.max(body.pairs), query.truncated || body.truncated);
    let mut args = form::merge(query.vars, body.vars);

    let text = |m: &mut Map<String, Value>, k: &str| match m.remove(k) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let token = text(&mut args, "wstoken");
    let function = text(&mut args, "wsfunction").unwrap_or_default();
    let json = text(&mut args, "moodlewsrestformat").as_deref() == Some("json");
    let raw = text(&mut args, "moodlewssettingraw").is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    for k in ["moodlewssettingfilter", "moodlewssettingfileurl", "moodlewssettinglang", "moodlewssettingtimezone"] {
        args.remove(k);
    }
    if !json {
        tracing::warn!(function, "fake Moodle: request without moodlewsrestformat=json answered in XML");
    }

    // The cost model holds one PHP worker for the call's server time (after the network latency above).
    let worker = opts.cost.as_ref().map(|c| (c, shared.workers.take(c.workers)));
    let (result, written, write) = call(shared, &opts, token.as_deref(), &function, &args, raw);
    if let Some((model, _held)) = &worker {
        let rows = super::cost::rows(&function, &args, result.as_ref().ok());
        let spent = model.cost(&function, rows);
        shared.count_server_time(&function, spent);
        std::thread::sleep(spent);
    }
    drop(worker);
    if written > 0 && opts.per_record_ms > 0 {
        std::thread::sleep(Duration::from_millis(opts.per_record_ms.saturating_mul(written as u64)));
    }
    shared.record(LoggedRequest {
        function: function.clone(),
        params: Value::Object(args),
        errorcode: result.as_ref().err().map(|e| e.code_for(opts.debug).to_string()),
        written,
    });
    if write && opts.fault_after_apply > 0.0 && draw(shared, opts.fault_after_apply) {
        shared.count_fault(FaultKind::Reset);
        return Action::Reset;
    }
    let body = match (&result, json) {
        (Ok(v), true) => php_json(v),
        (Ok(v), false) => value_to_xml(v),
        (Err(e), true) => php_json(&e.to_json(opts.debug)),
        (Err(e), false) => e.to_xml(opts.debug),
    };
    let content_type = if json { "application/json" } else { "application/xml; charset=utf-8" };
    Action::Respond(HttpResponse::typed(200, content_type, body.into_bytes()))
}

fn draw(shared: &Shared, rate: f64) -> bool {
    rate > 0.0 && shared.rng.lock().map(|mut r| r.gen_bool(rate.clamp(0.0, 1.0))).unwrap_or(false)
}

fn draw_fault(shared: &Shared, rate: f64, kinds: &[FaultKind]) -> Option<FaultKind> {
    if kinds.is_empty() || !draw(shared, rate) {
        return None;
    }
    let idx = shared.rng.lock().map(|mut r| r.gen_range(0..kinds.len())).unwrap_or(0);
    kinds.get(idx).copied()
}

fn fault_reply(kind: FaultKind, hold_ms: u64) -> Action {
    match kind {
        FaultKind::Http503 => html(503, HTML_503),
        FaultKind::Http500 => html(500, HTML_500),
        FaultKind::Timeout => Action::Hold(Duration::from_millis(hold_ms)),
        FaultKind::Reset => Action::Reset,
    }
}

/// Auth, lookup, validation and execution. Returns (result, records written, is a write): an exception raised
/// after a commit comes with the records that call wrote.
fn call(
    shared: &Shared,
    opts: &super::MoodleOptions,
    token: Option<&str>,
    name: &str,
    args: &Map<String, Value>,
    raw: bool,
) -> (Result<Value, WsError>, usize, bool) {
    match run(shared, opts, token, name, args, raw) {
        Ok((v, written, write)) => (Ok(v), written, write),
        Err((e, written, write)) => (Err(e), written, write),
    }
}

type Failed = (WsError, usize, bool);

fn run(
    shared: &Shared,
    opts: &super::MoodleOptions,
    token: Option<&str>,
    name: &str,
    args: &Map<String, Value>,
    raw: bool,
) -> Result<(Value, usize, bool), Failed> {
    let before = |e: WsError| (e, 0, false);
    // Auth comes before the function lookup, as in webservice_server::run().
    shared.check_token(token).map_err(before)?;
    if name.is_empty() {
        return Err(before(WsError::invalid_parameter("Missing function name")));
    }
    let known = functions::lookup(name).filter(|f| opts.plugin_installed || !f.plugin);
    let in_service = known.is_some() && !opts.missing_functions.iter().any(|m| m == name);
    if known.is_none() && !OUTSIDE_SERVICE.contains(&name) {
        return Err(before(WsError::missing_record(
            "external_functions",
            &format!("SELECT * FROM {{external_functions}} WHERE name = ?\n[array (\n  0 => '{name}',\n)]"),
        )));
    }
    let Some(f) = known.filter(|_| in_service) else {
        return Err(before(WsError::access(format!(
            "Access to the function {name}() is not allowed. There could be multiple reasons for this: 1. The service linked to the user token does not contain the function. 2. The service is user-restricted and the user is not listed. 3. The service is IP-restricted and the user IP is not listed. 4. The service is time-restricted and the time has expired. 5. The token is time-restricted and the time has expired. 6. The service requires a specific capability which the user does not have. 7. The function is called with username/password (no user token is sent) and one of the previous reasons applies."
        ))));
    };
    let args = params::validate(&(f.schema)(), args).map_err(before)?;
    let mut state =
        shared.state.lock().map_err(|_| before(WsError::moodle("generalexceptionmessage", "Internal error")))?;
    let backup = f.transactional.then(|| state.core_backup());
    let mut ctx = Ctx {
        state: &mut state,
        opts,
        raw,
        now: chrono::Utc::now().timestamp(),
        written: 0,
        events: Vec::new(),
        siteurl: shared.url.clone(),
        after_commit: None,
    };
    let result = (f.run)(&mut ctx, &args);
    let (written, events, after_commit) = (ctx.written, std::mem::take(&mut ctx.events), ctx.after_commit.take());
    match result {
        Ok(v) => {
            state.events.extend(events.iter().cloned());
            drop(state);
            if opts.webhook_on_ws_writes {
                for e in &events {
                    shared.outbox.send(e);
                }
            }
            match after_commit {
                Some(e) => Err((e, written, f.write)),
                None => Ok((v, written, f.write)),
            }
        }
        Err(e) => {
            // A delegated transaction rolls the whole call back.
            if let Some(b) = backup {
                state.restore_core(b);
            }
            Err(before(e))
        }
    }
}
