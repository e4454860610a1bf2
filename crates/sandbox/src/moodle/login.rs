//! `/login/token.php`: username + password + service shortname → the existing token.
//! Errors use the AJAX shape, not the REST one.

use serde_json::{json, Value};

use super::errors::php_json;
use super::state::ADMIN_ID;
use super::{form, MoodleOptions, Shared};
use crate::http::{Action, HttpRequest, HttpResponse};

fn ajax_error(code: &str, message: &str) -> Value {
    json!({"error": message, "errorcode": code, "stacktrace": null, "debuginfo": null, "reproductionlink": null})
}

pub fn token(shared: &Shared, opts: &MoodleOptions, req: &HttpRequest) -> Action {
    let q = form::parse(req.query.as_bytes(), opts.max_input_vars).vars;
    let b = form::parse(&req.body, opts.max_input_vars).vars;
    let args = form::merge(q, b);
    let get = |k: &str| args.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let (username, password, service) = (get("username"), get("password"), get("service"));
    let body = if opts.protocol_disabled {
        ajax_error("enablewsdescription", "Web services must be enabled in Advanced features.")
    } else {
        let user = shared.state.lock().ok().and_then(|s| {
            s.users.values().find(|u| u.username == username && !u.deleted).map(|u| (u.id, u.password.clone()))
        });
        match user {
            Some((id, pw)) => {
                let ok = if id == ADMIN_ID {
                    password == shared.admin_password
                } else {
                    pw.as_deref() == Some(password.as_str())
                };
                if !ok {
                    ajax_error("invalidlogin", "Invalid login, please try again")
                } else if service != "zmsync" {
                    ajax_error(
                        "servicenotavailable",
                        "Web service is not available (it doesn't exist or might be disabled)",
                    )
                } else if id != ADMIN_ID {
                    // Only the sync user holds a token for the service; others may not create one.
                    ajax_error("cannotcreatetoken", "Cannot create a web service token for the service zmsync.")
                } else {
                    match shared.current_token() {
                        Some(t) => json!({"token": t, "privatetoken": null}),
                        None => {
                            ajax_error("cannotcreatetoken", "Cannot create a web service token for the service zmsync.")
                        }
                    }
                }
            }
            None => ajax_error("invalidlogin", "Invalid login, please try again"),
        }
    };
    Action::Respond(HttpResponse::typed(200, "application/json", php_json(&body).into_bytes()))
}
