//! Moodle's exceptions as the REST server renders them: HTTP 200, a JSON object with
//! `exception`, `errorcode`, `message`, and `debuginfo` only when the site debugs. On production sites a
//! missing record reports `invalidrecordunknown` instead of its table-specific code.

use serde_json::{json, Value};

pub const EX_MOODLE: &str = "core\\exception\\moodle_exception";
pub const EX_INVALID_PARAMETER: &str = "core\\exception\\invalid_parameter_exception";
pub const EX_REQUIRED_CAPABILITY: &str = "core\\exception\\required_capability_exception";
pub const EX_ACCESS: &str = "webservice_access_exception";
pub const EX_MISSING_RECORD: &str = "dml_missing_record_exception";
pub const EX_CODING: &str = "core\\exception\\coding_exception";

/// One Moodle exception. `thiserror` gives it a `Display` for logs; the wire shape comes from [`WsError::to_json`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{exception}: {errorcode}: {message}")]
pub struct WsError {
    pub exception: &'static str,
    pub errorcode: String,
    pub message: String,
    pub debuginfo: Option<String>,
    /// `dml_missing_record_exception` picks `invalidrecordunknown` when debugging is off.
    pub missing_record: bool,
}

impl WsError {
    pub fn new(exception: &'static str, errorcode: &str, message: impl Into<String>) -> WsError {
        WsError {
            exception,
            errorcode: errorcode.to_string(),
            message: message.into(),
            debuginfo: None,
            missing_record: false,
        }
    }

    pub fn with_debuginfo(mut self, d: impl Into<String>) -> WsError {
        self.debuginfo = Some(d.into());
        self
    }

    pub fn invalid_token() -> WsError {
        WsError::new(EX_MOODLE, "invalidtoken", "Invalid token - token not found")
    }

    pub fn access(debuginfo: impl Into<String>) -> WsError {
        WsError::new(EX_ACCESS, "accessexception", "Access control exception").with_debuginfo(debuginfo)
    }

    /// `invalid_parameter_exception`: the detail lives in debuginfo only.
    pub fn invalid_parameter(debuginfo: impl Into<String>) -> WsError {
        WsError::new(EX_INVALID_PARAMETER, "invalidparameter", "Invalid parameter value detected")
            .with_debuginfo(debuginfo)
    }

    /// `dml_missing_record_exception` for `table` (errorcode by table, `invalidrecordunknown` without debug).
    pub fn missing_record(table: &str, sql: &str) -> WsError {
        let (code, message) = match table {
            "user" => ("invaliduser", "Invalid user".to_string()),
            "course" => ("invalidcourseid", "Invalid course ID".to_string()),
            _ => ("invalidrecord", format!("Can't find data record in database table {table}.")),
        };
        let mut e = WsError::new(EX_MISSING_RECORD, code, message).with_debuginfo(sql);
        e.missing_record = true;
        e
    }

    /// `moodle_exception` with a code whose message comes from a language string.
    pub fn moodle(errorcode: &str, message: impl Into<String>) -> WsError {
        WsError::new(EX_MOODLE, errorcode, message)
    }

    pub fn nopermissions(capability: &str) -> WsError {
        WsError::new(
            EX_REQUIRED_CAPABILITY,
            "nopermissions",
            format!("Sorry, but you do not currently have permissions to do that ({}).", capability_name(capability)),
        )
    }

    pub fn coding(message: &str, debuginfo: impl Into<String>) -> WsError {
        WsError::new(
            EX_CODING,
            "codingerror",
            format!("Coding error detected, it must be fixed by a programmer: {message}"),
        )
        .with_debuginfo(debuginfo)
    }

    /// The errorcode as the client sees it in the given mode.
    pub fn code_for(&self, debug: bool) -> &str {
        if self.missing_record && !debug {
            "invalidrecordunknown"
        } else {
            &self.errorcode
        }
    }

    /// The REST server's JSON body.
    pub fn to_json(&self, debug: bool) -> Value {
        let (code, message) = if self.missing_record && !debug {
            ("invalidrecordunknown", "Can't find data record in database.")
        } else {
            (self.errorcode.as_str(), self.message.as_str())
        };
        let mut v = json!({"exception": self.exception, "errorcode": code, "message": message});
        if debug {
            if let Some(d) = &self.debuginfo {
                v["debuginfo"] = Value::String(d.clone());
            }
        }
        v
    }

    /// The REST server's XML body (`moodlewsrestformat` other than json).
    pub fn to_xml(&self, debug: bool) -> String {
        let v = self.to_json(debug);
        let mut s = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<EXCEPTION class=\"{}\">\n<ERRORCODE>{}</ERRORCODE>\n<MESSAGE>{}</MESSAGE>\n",
            xml_escape(self.exception),
            xml_escape(v["errorcode"].as_str().unwrap_or_default()),
            xml_escape(v["message"].as_str().unwrap_or_default())
        );
        if let Some(d) = v.get("debuginfo").and_then(Value::as_str) {
            s.push_str(&format!("<DEBUGINFO>{}</DEBUGINFO>\n", xml_escape(d)));
        }
        s.push_str("</EXCEPTION>\n");
        s
    }
}

/// English capability names (`get_capability_string`) for the capabilities the fake checks.
fn capability_name(cap: &str) -> String {
    match cap {
        "moodle/user:create" => "Create users",
        "moodle/user:update" => "Update user profiles",
        "moodle/user:delete" => "Delete users",
        "moodle/user:viewdetails" => "View user profiles",
        "moodle/course:create" => "Create courses",
        "moodle/course:update" => "Update course settings",
        "moodle/course:view" => "View courses without participation",
        "moodle/course:viewparticipants" => "View participants",
        "moodle/category:manage" => "Manage course categories",
        "enrol/manual:enrol" => "Enrol users",
        "enrol/manual:unenrol" => "Unenrol users from the course",
        "moodle/grade:viewall" => "View grades of other users",
        "gradereport/user:view" => "View your own grade report",
        "local/student_dashboard:manage" => "Manage the student dashboard data",
        other => other,
    }
    .to_string()
}

pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Moodle's XML rendering of a return value (`webservice_rest_server::xmlize_result`).
pub fn value_to_xml(v: &Value) -> String {
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::Null => out.push_str("<VALUE null=\"null\"/>\n"),
            Value::Array(items) => {
                out.push_str("<MULTIPLE>\n");
                for i in items {
                    walk(i, out);
                }
                out.push_str("</MULTIPLE>\n");
            }
            Value::Object(map) => {
                out.push_str("<SINGLE>\n");
                for (k, v) in map {
                    out.push_str(&format!("<KEY name=\"{}\">", xml_escape(k)));
                    walk(v, out);
                    out.push_str("</KEY>\n");
                }
                out.push_str("</SINGLE>\n");
            }
            Value::Bool(b) => out.push_str(&format!("<VALUE>{}</VALUE>\n", u8::from(*b))),
            Value::Number(n) => out.push_str(&format!("<VALUE>{n}</VALUE>\n")),
            Value::String(s) => out.push_str(&format!("<VALUE>{}</VALUE>\n", xml_escape(s))),
        }
    }
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\" ?>\n<RESPONSE>\n");
    if !v.is_null() {
        walk(v, &mut out);
    }
    out.push_str("</RESPONSE>\n");
    out
}

/// `json_encode` as PHP does it: `/` escaped as `\/`, non-ASCII as `\uXXXX` (UTF-16 surrogates). Both only
/// ever occur inside JSON strings, so rewriting the serialised text is safe.
pub fn php_json(v: &Value) -> String {
    let s = serde_json::to_string(v).unwrap_or_else(|_| "null".into());
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '/' => out.push_str("\\/"),
            c if c.is_ascii() => out.push(c),
            c => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_hides_debuginfo_and_collapses_missing_records() {
        let e = WsError::missing_record("external_functions", "SELECT …");
        assert_eq!(e.to_json(true)["errorcode"], "invalidrecord");
        assert_eq!(e.to_json(false)["errorcode"], "invalidrecordunknown");
        assert!(e.to_json(false).get("debuginfo").is_none());
        let e = WsError::invalid_parameter("Username already exists: a");
        assert_eq!(e.to_json(true)["debuginfo"], "Username already exists: a");
        assert!(e.to_json(false).get("debuginfo").is_none());
    }

    #[test]
    fn php_json_escapes() {
        assert_eq!(php_json(&serde_json::json!({"u":"a/b é"})), r#"{"u":"a\/b \u00e9"}"#);
    }
}
