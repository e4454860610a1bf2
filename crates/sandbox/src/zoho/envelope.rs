//! Zoho's error envelope, the body of every refused call.

use serde_json::{json, Value};

use crate::http::HttpResponse;

/// Zoho's error envelope (§10).
pub fn error(status: u16, code: &str, details: Value, message: &str) -> HttpResponse {
    HttpResponse::json(status, &json!({"code": code, "details": details, "message": message, "status": "error"}))
}
