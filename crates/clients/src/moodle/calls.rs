//! Typed calls: what snapshot reads and what apply will write. Reads return raw JSON objects (mapping turns
//! them into records); writes return per-row results and Moodle's warnings, never swallowed.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::batch::PLUGIN_MAX_ROWS;
use super::{Client, MoodleError, Replay};

/// The plugin's contract version this zmsync speaks (plugin-contract.md §2).
pub const CONTRACT_VERSION: i64 = 1;
pub const PLUGIN: &str = "local_student_dashboard";
/// Course ids per `get_enrolments` / `get_course_grades` call when snapshotting (contract max 500; smaller
/// keeps each answer, and our memory, small).
pub const COURSES_PER_CALL: usize = 50;
/// Rows per page of the plugin's `get_*` (the contract caps at 5000).
pub const PLUGIN_PAGE: usize = 1000;
/// Users per create/update call (all-or-nothing creates, so keep batches modest).
pub const USERS_PER_CALL: usize = 50;

/// The plugin's row tables (`get_<table>`, `upsert_<table>`, `delete_<table>`).
pub const PLUGIN_TABLES: &[&str] = &["registrations", "payments", "units", "grades"];

/// Every function zmsync may call: `check_site` verifies the token's service allows them.
pub fn needed_functions() -> Vec<String> {
    let mut f: Vec<String> = [
        "core_webservice_get_site_info",
        "core_user_get_users",
        "core_user_create_users",
        "core_user_update_users",
        "core_course_get_courses",
        "core_course_create_courses",
        "core_course_update_courses",
        "core_course_get_categories",
        "core_course_create_categories",
        "enrol_manual_enrol_users",
        "enrol_manual_unenrol_users",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    f.push(format!("{PLUGIN}_get_info"));
    f.push(format!("{PLUGIN}_get_enrolments"));
    f.push(format!("{PLUGIN}_get_course_grades"));
    for t in PLUGIN_TABLES {
        for op in ["get", "upsert", "delete"] {
            f.push(format!("{PLUGIN}_{op}_{t}"));
        }
    }
    f
}

/// `core_webservice_get_site_info`, the parts we use.
#[derive(Debug, Clone, Serialize)]
pub struct SiteInfo {
    pub sitename: String,
    pub username: String,
    pub userid: i64,
    pub release: String,
    pub functions: BTreeSet<String>,
    /// The token's user is a site admin (reads every user field).
    pub userissiteadmin: bool,
}

/// `local_student_dashboard_get_info`.
#[derive(Debug, Clone, Serialize)]
pub struct PluginInfo {
    pub version: i64,
    pub release: String,
    pub contract_version: i64,
    /// Optional fields of newer plugins (`None` from older ones), for `doctor`.
    pub site: PluginSite,
}

/// What the plugin reports of the site's settings (all optional in the contract, added after version 1.0).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PluginSite {
    /// `$CFG->showuseridentity`, e.g. `["email"]`.
    pub identity_fields: Option<Vec<String>>,
    /// How Moodle sends mail: `smtp` (SMTP hosts set), `php` (none set: PHP's mail()), `disabled` (noemailever).
    pub mail: Option<String>,
    /// New manual enrolment instances send the course welcome message (`enrol_manual | sendcoursewelcomemessage`).
    pub welcome_default: Option<bool>,
    /// Manual enrolment instances that send it now.
    pub welcome_courses: Option<i64>,
}

/// The result of [`Client::check_site`].
#[derive(Debug, Clone, Serialize)]
pub struct SiteCheck {
    pub site: SiteInfo,
    pub plugin_version: i64,
    pub contract_version: i64,
}

/// Moodle's `external_warnings` item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Warning {
    #[serde(default)]
    pub item: String,
    #[serde(default)]
    pub itemid: Option<i64>,
    #[serde(default)]
    pub warningcode: String,
    #[serde(default)]
    pub message: String,
}

/// What happened to one row of a create call.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RowOutcome {
    Created {
        id: i64,
    },
    Failed {
        errorcode: String,
        message: String,
        debuginfo: Option<String>,
    },
    /// The connection failed after sending: check identity before creating again.
    Unknown {
        reason: String,
    },
}

/// The answer of a plugin `upsert_*`, with warnings' `itemid` re-based to positions in the caller's list.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UpsertResult {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub results: Vec<Value>,
    pub warnings: Vec<Warning>,
}

fn decode<T: for<'de> Deserialize<'de>>(function: &str, v: Value) -> Result<T, MoodleError> {
    serde_json::from_value(v).map_err(|e| MoodleError::Decode { function: function.into(), message: e.to_string() })
}

fn warnings(function: &str, v: &Value) -> Result<Vec<Warning>, MoodleError> {
    match v.get("warnings") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(w) => decode(function, w.clone()),
    }
}

fn take_array(function: &str, v: Value, key: Option<&str>) -> Result<Vec<Value>, MoodleError> {
    let v = match key {
        Some(k) => v.get(k).cloned().unwrap_or(Value::Null),
        None => v,
    };
    match v {
        Value::Array(a) => Ok(a),
        other => Err(MoodleError::Decode {
            function: function.into(),
            message: format!(
                "expected a list{}, got {}",
                key.map(|k| format!(" under `{k}`")).unwrap_or_default(),
                kind(&other)
            ),
        }),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

impl Client {
    pub async fn site_info(&self) -> Result<SiteInfo, MoodleError> {
        let f = "core_webservice_get_site_info";
        let v = self.call(f, &json!({})).await?;
        let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let functions = v
            .get("functions")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|f| f.get("name").and_then(Value::as_str).map(str::to_string)).collect())
            .unwrap_or_default();
        Ok(SiteInfo {
            sitename: text("sitename"),
            username: text("username"),
            userid: v.get("userid").and_then(Value::as_i64).unwrap_or(0),
            release: text("release"),
            functions,
            userissiteadmin: v.get("userissiteadmin").and_then(Value::as_bool).unwrap_or(false),
        })
    }

    /// The dashboard plugin's `get_info` (plugin-contract.md §2).
    pub async fn plugin_info(&self) -> Result<PluginInfo, MoodleError> {
        let info = self.call(&format!("{PLUGIN}_get_info"), &json!({})).await?;
        let identity_fields = info
            .get("identity_fields")
            .and_then(Value::as_str)
            .map(|f| f.split(',').map(str::trim).filter(|f| !f.is_empty()).map(str::to_string).collect::<Vec<_>>());
        let flag = |k: &str| info.get(k).and_then(|v| v.as_bool().or_else(|| v.as_i64().map(|n| n != 0)));
        Ok(PluginInfo {
            version: info.get("version").and_then(Value::as_i64).unwrap_or(0),
            release: info.get("release").and_then(Value::as_str).unwrap_or("").to_string(),
            contract_version: info.get("contract_version").and_then(Value::as_i64).unwrap_or(0),
            site: PluginSite {
                identity_fields,
                mail: info.get("mail").and_then(Value::as_str).map(str::to_string),
                welcome_default: flag("welcome_default"),
                welcome_courses: info.get("welcome_courses").and_then(Value::as_i64),
            },
        })
    }

    /// The token works, the service allows every function in `needed`, and the dashboard plugin is installed
    /// with `contract_version == 1`. Every problem found is listed in one error.
    pub async fn check_site(&self, needed: &[String]) -> Result<SiteCheck, MoodleError> {
        // Both questions at once: one round trip, not two.
        let (site, plugin) = tokio::join!(self.site_info(), self.plugin_info());
        let site = site?;
        let mut problems = Vec::new();
        let missing: Vec<&str> =
            needed.iter().filter(|f| !site.functions.contains(f.as_str())).map(String::as_str).collect();
        if !missing.is_empty() {
            problems.push(format!(
                "the token's service does not allow: {} (add them to the service, or use the plugin's `zmsync` service)",
                missing.join(", ")
            ));
        }
        let (mut plugin_version, mut contract_version) = (0, 0);
        match plugin {
            Ok(info) => {
                (plugin_version, contract_version) = (info.version, info.contract_version);
                if contract_version != CONTRACT_VERSION {
                    problems.push(format!(
                        "the {PLUGIN} plugin speaks contract version {contract_version}; this zmsync needs \
                         {CONTRACT_VERSION} (upgrade the plugin or zmsync so they match)"
                    ));
                }
            }
            Err(MoodleError::Exception { errorcode, message, .. }) => problems.push(format!(
                "the {PLUGIN} plugin did not answer ({errorcode}: {message}); install it (moodle-plugin/) and add \
                 its functions to the token's service"
            )),
            Err(e) => return Err(e),
        }
        if problems.is_empty() {
            Ok(SiteCheck { site, plugin_version, contract_version })
        } else {
            Err(MoodleError::SiteNotReady { problems })
        }
    }

    /// Every user except the guest, site admins named `admin`, and the web-service user itself; deleted users are
    /// never returned by Moodle. One call: `core_user_get_users` with `email LIKE '%'`, which matches every
    /// user (the email criterion is a case-insensitive LIKE), whatever their auth method —
    /// an `auth=` criterion would miss users created by hand or by SSO.
    pub async fn users(&self, exclude_userid: Option<i64>) -> Result<Vec<Value>, MoodleError> {
        let f = "core_user_get_users";
        let v = self.call(f, &json!({"criteria": [{"key": "email", "value": "%"}]})).await?;
        for w in warnings(f, &v)? {
            tracing::warn!(function = f, code = %w.warningcode, "{}", w.message);
        }
        let mut users = take_array(f, v, Some("users"))?;
        users.retain(|u| {
            let name = u.get("username").and_then(Value::as_str).unwrap_or("");
            let id = u.get("id").and_then(Value::as_i64);
            name != "guest" && name != "admin" && (exclude_userid.is_none() || id != exclude_userid)
        });
        Ok(users)
    }

    /// Users by one field (`id`, `idnumber`, `username`, `email`), exact match, batched.
    pub async fn users_by_field(&self, field: &str, values: &[String]) -> Result<Vec<Value>, MoodleError> {
        let f = "core_user_get_users_by_field";
        let vals: Vec<Value> = values.iter().map(|v| json!(v)).collect();
        let mut out = Vec::new();
        for r in self.batcher(f, 500).split(&vals, 1)? {
            out.extend(take_array(f, self.call(f, &json!({"field": field, "values": &vals[r]})).await?, None)?);
        }
        Ok(out)
    }

    /// The users with these ids, where one id does not sink the others: Moodle refuses a whole read for one
    /// id it cannot take (a deleted user, an id that is no user: `invaliduser`), so a refused read is split in
    /// halves down to that id. An id Moodle says is no (live) user is simply absent from the answer (the caller
    /// sees it gone); any other error on one id comes back with it; a transport or access error fails the read.
    pub async fn users_by_id_each(
        &self,
        ids: &[String],
    ) -> Result<(Vec<Value>, Vec<(String, MoodleError)>), MoodleError> {
        let mut out = Vec::new();
        let mut refused = Vec::new();
        let mut todo: Vec<Vec<String>> = if ids.is_empty() { Vec::new() } else { vec![ids.to_vec()] };
        while let Some(batch) = todo.pop() {
            match self.users_by_field("id", &batch).await {
                Ok(users) => out.extend(users),
                Err(e @ MoodleError::Exception { .. }) if !access_error(&e) => match batch.as_slice() {
                    [_] if matches!(e.errorcode(), Some("invaliduser" | "invalidrecord" | "invalidrecordunknown")) => {}
                    [one] => refused.push((one.clone(), e)),
                    _ => {
                        let (a, b) = batch.split_at(batch.len() / 2);
                        todo.push(a.to_vec());
                        todo.push(b.to_vec());
                    }
                },
                Err(e) => return Err(e),
            }
        }
        Ok((out, refused))
    }

    /// Every course but the site course, with stored (not HTML-escaped) names (`moodlewssettingraw=1`).
    pub async fn courses(&self) -> Result<Vec<Value>, MoodleError> {
        let f = "core_course_get_courses";
        let v = self.call_with(f, &json!({}), Replay::Safe, &[("moodlewssettingraw", "1")]).await?;
        let mut courses = take_array(f, v, None)?;
        courses.retain(|c| {
            c.get("format").and_then(Value::as_str) != Some("site") && c.get("id").and_then(Value::as_i64) != Some(1)
        });
        Ok(courses)
    }

    pub async fn categories(&self) -> Result<Vec<Value>, MoodleError> {
        let f = "core_course_get_categories";
        take_array(f, self.call_with(f, &json!({}), Replay::Safe, &[("moodlewssettingraw", "1")]).await?, None)
    }

    /// Manual enrolments (status, dates, roles) of these courses, from the plugin (one call per ≤500 ids).
    pub async fn enrolments(&self, courseids: &[i64]) -> Result<(Vec<Value>, Vec<Warning>), MoodleError> {
        self.per_course(&format!("{PLUGIN}_get_enrolments"), "enrolments", courseids).await
    }

    /// Course-total grades of these courses, from the plugin.
    pub async fn course_grades(&self, courseids: &[i64]) -> Result<(Vec<Value>, Vec<Warning>), MoodleError> {
        self.per_course(&format!("{PLUGIN}_get_course_grades"), "grades", courseids).await
    }

    async fn per_course(
        &self,
        f: &str,
        key: &str,
        courseids: &[i64],
    ) -> Result<(Vec<Value>, Vec<Warning>), MoodleError> {
        let (mut rows, mut warns) = (Vec::new(), Vec::new());
        let ids: Vec<Value> = courseids.iter().map(|i| json!(i)).collect();
        for r in self.batcher(f, PLUGIN_MAX_ROWS).split(&ids, 0)? {
            let v = self.call(f, &json!({"courseids": &ids[r]})).await?;
            warns.extend(warnings(f, &v)?);
            rows.extend(take_array(f, v, Some(key))?);
        }
        Ok((rows, warns))
    }

    /// One page of a plugin table (`get_registrations|payments|units|grades`): the rows and the table's total.
    pub async fn plugin_rows(
        &self,
        table: &str,
        limitfrom: usize,
        limitnumber: usize,
    ) -> Result<(Vec<Value>, u64), MoodleError> {
        let f = format!("{PLUGIN}_get_{table}");
        let v = self.call(&f, &json!({"limitfrom": limitfrom, "limitnumber": limitnumber})).await?;
        let total = v.get("total").and_then(Value::as_u64).unwrap_or(0);
        Ok((take_array(&f, v, Some("rows"))?, total))
    }

    // ---- writes -----------------------------------------------------------------------------------------

    /// `core_user_create_users`; one outcome per user, in order.
    pub async fn create_users(&self, users: &[Value]) -> Result<Vec<RowOutcome>, MoodleError> {
        self.create_rows("core_user_create_users", "users", users, USERS_PER_CALL).await
    }

    /// `core_course_create_courses`; one outcome per course, in order.
    pub async fn create_courses(&self, courses: &[Value]) -> Result<Vec<RowOutcome>, MoodleError> {
        self.create_rows("core_course_create_courses", "courses", courses, USERS_PER_CALL).await
    }

    pub async fn create_categories(&self, categories: &[Value]) -> Result<Vec<RowOutcome>, MoodleError> {
        self.create_rows("core_course_create_categories", "categories", categories, USERS_PER_CALL).await
    }

    /// Create calls are all-or-nothing per request : when a batch fails, each of its rows is
    /// sent alone so the one bad row is named and the good ones still land.
    async fn create_rows(
        &self,
        f: &str,
        list: &str,
        rows: &[Value],
        max_rows: usize,
    ) -> Result<Vec<RowOutcome>, MoodleError> {
        let mut out = Vec::with_capacity(rows.len());
        for r in self.batcher(f, max_rows).split(rows, 0)? {
            let batch = &rows[r];
            match self.create_batch(f, list, batch).await? {
                Ok(done) => out.extend(done),
                Err(_) if batch.len() > 1 => {
                    for row in batch {
                        match self.create_batch(f, list, std::slice::from_ref(row)).await? {
                            Ok(done) => out.extend(done),
                            Err(failed) => out.push(failed),
                        }
                    }
                }
                Err(failed) => out.push(failed),
            }
        }
        Ok(out)
    }

    /// Ok(outcomes) when applied, Err(the failure as a row outcome) on a Moodle exception.
    async fn create_batch(
        &self,
        f: &str,
        list: &str,
        batch: &[Value],
    ) -> Result<Result<Vec<RowOutcome>, RowOutcome>, MoodleError> {
        match self.call_with(f, &json!({ list: batch }), Replay::Unsafe, &[]).await {
            Ok(v) => {
                let created = take_array(f, v, None)?;
                Ok(Ok(batch
                    .iter()
                    .enumerate()
                    .map(|(i, _)| match created.get(i).and_then(|c| c.get("id")).and_then(Value::as_i64) {
                        Some(id) => RowOutcome::Created { id },
                        None => RowOutcome::Unknown { reason: "Moodle answered fewer created rows than sent".into() },
                    })
                    .collect()))
            }
            Err(MoodleError::Exception { errorcode, message, debuginfo, .. }) => {
                Ok(Err(RowOutcome::Failed { errorcode, message, debuginfo }))
            }
            Err(MoodleError::UnknownOutcome { message, .. }) => {
                Ok(Ok(vec![RowOutcome::Unknown { reason: message }; batch.len()]))
            }
            Err(e) => Err(e),
        }
    }

    /// `core_user_update_users`: per-user failures come back as warnings (`itemid` = the user id).
    pub async fn update_users(&self, users: &[Value]) -> Result<Vec<Warning>, MoodleError> {
        self.warned_rows("core_user_update_users", "users", users, USERS_PER_CALL).await
    }

    /// `core_course_update_courses`: per-course failures come back as warnings (`itemid` = the course id).
    pub async fn update_courses(&self, courses: &[Value]) -> Result<Vec<Warning>, MoodleError> {
        self.warned_rows("core_course_update_courses", "courses", courses, USERS_PER_CALL).await
    }

    /// `enrol_manual_enrol_users` (an upsert on Moodle's side; answers `null`).
    pub async fn enrol(&self, enrolments: &[Value]) -> Result<Vec<Warning>, MoodleError> {
        self.warned_rows("enrol_manual_enrol_users", "enrolments", enrolments, 200).await
    }

    /// `enrol_manual_unenrol_users` (not enrolled is a no-op; answers `null`).
    pub async fn unenrol(&self, enrolments: &[Value]) -> Result<Vec<Warning>, MoodleError> {
        self.warned_rows("enrol_manual_unenrol_users", "enrolments", enrolments, 200).await
    }

    async fn warned_rows(
        &self,
        f: &str,
        list: &str,
        rows: &[Value],
        max_rows: usize,
    ) -> Result<Vec<Warning>, MoodleError> {
        let mut out = Vec::new();
        for r in self.batcher(f, max_rows).split(rows, 0)? {
            let v = self.call(f, &json!({ list: &rows[r] })).await?;
            out.extend(warnings(f, &v)?);
        }
        Ok(out)
    }

    /// The plugin's `upsert_<table>`: counts, per-row results, and warnings whose `itemid` is the row's position
    /// in `rows` (the plugin numbers within one request; we re-base across batches).
    pub async fn upsert_rows(&self, table: &str, rows: &[Value]) -> Result<UpsertResult, MoodleError> {
        let f = format!("{PLUGIN}_upsert_{table}");
        let mut out = UpsertResult::default();
        for r in self.batcher(&f, PLUGIN_MAX_ROWS).split(rows, 0)? {
            let offset = r.start as i64;
            let v = self.call(&f, &json!({ table: &rows[r] })).await?;
            let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
            out.created += n("created");
            out.updated += n("updated");
            out.unchanged += n("unchanged");
            out.results.extend(v.get("results").and_then(Value::as_array).cloned().unwrap_or_default());
            out.warnings.extend(warnings(&f, &v)?.into_iter().map(|mut w| {
                w.itemid = w.itemid.map(|i| i + offset);
                w
            }));
        }
        Ok(out)
    }

    /// The plugin's `delete_<table>`: how many rows were removed (unknown ids are a silent no-op).
    pub async fn delete_rows(&self, table: &str, zoho_ids: &[String]) -> Result<(u64, Vec<Warning>), MoodleError> {
        let f = format!("{PLUGIN}_delete_{table}");
        let ids: Vec<Value> = zoho_ids.iter().map(|i| json!(i)).collect();
        let (mut deleted, mut warns) = (0, Vec::new());
        for r in self.batcher(&f, PLUGIN_MAX_ROWS).split(&ids, 0)? {
            let v = self.call(&f, &json!({"zoho_ids": &ids[r]})).await?;
            deleted += v.get("deleted").and_then(Value::as_u64).unwrap_or(0);
            warns.extend(warnings(&f, &v)?);
        }
        Ok((deleted, warns))
    }
}

/// An error about the token, the service or the site, which no split of the request cures.
fn access_error(e: &MoodleError) -> bool {
    matches!(
        e.errorcode(),
        Some(
            "invalidtoken"
                | "accessexception"
                | "nopermissions"
                | "required_capability_exception"
                | "webservicesnotenabled"
                | "sitemaintenance"
                | "servicerequireslogin"
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needed_functions_cover_the_plugin_and_core() {
        let f = needed_functions();
        assert!(f.contains(&"local_student_dashboard_get_payments".to_string()));
        assert!(f.contains(&"core_user_get_users".to_string()));
        assert_eq!(f.len(), 11 + 3 + 12);
        let w: Warning =
            serde_json::from_value(json!({"item":"x","itemid":2,"warningcode":"invaliduserid","message":"m"})).unwrap();
        assert_eq!(w.itemid, Some(2));
    }
}
