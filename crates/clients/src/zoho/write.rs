//! Writing records: insert, update, upsert and delete in batches of at most 100, with one
//! result per input record, in input order. One rejected record never fails its batch (§5.5: 207 for a mix,
//! 400 with `data[]` when every record failed); only request-level problems are errors.
//!
//! Every write sends `"trigger": []` (and deletes `wf_trigger=false`) so the college's workflow rules do not
//! fire webhooks back at us for our own writes (§5.7: the sync loop).
//!
//! **Unknown outcomes.** An insert whose connection failed after it was sent may have been applied: sending it
//! again would create duplicates. Such a batch comes back as [`RecordOutcome::Unknown`] for each of its
//! records; the caller must look the records up by identity (e.g. `Name` or the email) before inserting
//! again. Updates, upserts and deletes are idempotent and are retried like reads.

use serde_json::{json, Map, Value};

use super::{Client, Replay, ZohoError};

pub const MAX_RECORDS: usize = 100;

#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    Insert,
    /// Every record carries its `id`.
    Update,
    /// Matched on these fields (empty: Zoho's default, `Name` for custom modules).
    Upsert {
        duplicate_check_fields: Vec<String>,
    },
}

impl WriteOp {
    fn name(&self) -> &'static str {
        match self {
            WriteOp::Insert => "insert",
            WriteOp::Update => "update",
            WriteOp::Upsert { .. } => "upsert",
        }
    }
}

/// What happened to one input record.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RecordOutcome {
    /// Applied. `action` is `insert`/`update` for upserts.
    Ok { id: String, action: Option<String> },
    /// Zoho rejected this record (e.g. `MANDATORY_NOT_FOUND`, `DUPLICATE_DATA`, `INVALID_DATA`).
    Rejected { code: String, message: String, details: Value },
    /// The batch may or may not have been applied (see the module notes).
    Unknown { reason: String },
}

impl RecordOutcome {
    pub fn is_ok(&self) -> bool {
        matches!(self, RecordOutcome::Ok { .. })
    }
}

impl Client {
    /// Writes `records` (field API name → value) to `module`, ≤100 per call, batches concurrently (bounded by
    /// the limiter). Returns one outcome per record, in input order.
    pub async fn write(
        &self,
        module: &str,
        op: WriteOp,
        records: Vec<Map<String, Value>>,
    ) -> Result<Vec<RecordOutcome>, ZohoError> {
        let mut set = tokio::task::JoinSet::new();
        let batches: Vec<Vec<Map<String, Value>>> = records.chunks(MAX_RECORDS).map(<[_]>::to_vec).collect();
        for (i, batch) in batches.into_iter().enumerate() {
            let (client, module, op) = (self.clone(), module.to_string(), op.clone());
            set.spawn(async move { (i, client.write_batch(&module, &op, batch).await) });
        }
        collect(set).await
    }

    async fn write_batch(
        &self,
        module: &str,
        op: &WriteOp,
        batch: Vec<Map<String, Value>>,
    ) -> Result<Vec<RecordOutcome>, ZohoError> {
        let n = batch.len();
        let mut body = json!({"data": batch, "trigger": []});
        if let WriteOp::Upsert { duplicate_check_fields } = op {
            if !duplicate_check_fields.is_empty() {
                body["duplicate_check_fields"] = json!(duplicate_check_fields);
            }
        }
        let (path, replay) = match op {
            WriteOp::Insert => (format!("/crm/v8/{module}"), Replay::Unsafe),
            WriteOp::Update => (format!("/crm/v8/{module}"), Replay::Safe),
            WriteOp::Upsert { .. } => (format!("/crm/v8/{module}/upsert"), Replay::Safe),
        };
        let put = matches!(op, WriteOp::Update);
        let sent = self
            .send(module, replay, |http, base| {
                let url = format!("{base}{path}");
                if put { http.put(url) } else { http.post(url) }.json(&body)
            })
            .await;
        let answer = match sent {
            Err(ZohoError::UnknownOutcome { message, .. }) => {
                tracing::warn!(module, op = op.name(), records = n, "write outcome unknown: {message}");
                return Ok(vec![RecordOutcome::Unknown { reason: message }; n]);
            }
            other => other?,
        };
        per_record(module, answer.status.as_u16(), &answer.body, n).ok_or_else(|| answer.error(module))
    }

    /// Deletes records by id (`wf_trigger=false`), ≤100 per call. One outcome per id, in input order.
    pub async fn delete(&self, module: &str, ids: &[String]) -> Result<Vec<RecordOutcome>, ZohoError> {
        let mut set = tokio::task::JoinSet::new();
        for (i, batch) in ids.chunks(MAX_RECORDS).enumerate() {
            let (client, module, batch) = (self.clone(), module.to_string(), batch.to_vec());
            set.spawn(async move {
                let path = format!("/crm/v8/{module}");
                let query = [("ids", batch.join(",")), ("wf_trigger", "false".to_string())];
                let r = client
                    .send(&module, Replay::Safe, |http, base| http.delete(format!("{base}{path}")).query(&query))
                    .await
                    .and_then(|a| {
                        per_record(&module, a.status.as_u16(), &a.body, batch.len()).ok_or_else(|| a.error(&module))
                    });
                (i, r)
            });
        }
        collect(set).await
    }
}

async fn collect(
    mut set: tokio::task::JoinSet<(usize, Result<Vec<RecordOutcome>, ZohoError>)>,
) -> Result<Vec<RecordOutcome>, ZohoError> {
    let mut parts: Vec<(usize, Vec<RecordOutcome>)> = Vec::new();
    while let Some(joined) = set.join_next().await {
        let (i, r) = joined.map_err(|e| ZohoError::Decode { module: "write".into(), message: e.to_string() })?;
        parts.push((i, r?));
    }
    parts.sort_by_key(|(i, _)| *i);
    Ok(parts.into_iter().flat_map(|(_, v)| v).collect())
}

/// Reads per-record results (§5.5): 200/201/207, or 400 whose `data[]` answers every input record. `None` when
/// the answer is a request-level error instead.
fn per_record(module: &str, status: u16, body: &[u8], n: usize) -> Option<Vec<RecordOutcome>> {
    if !matches!(status, 200 | 201 | 202 | 207 | 400) {
        return None;
    }
    let v: Value = serde_json::from_slice(body).ok()?;
    let data = v.get("data")?.as_array()?;
    if data.len() != n {
        if status != 400 {
            tracing::warn!(module, sent = n, answered = data.len(), "Zoho answered a different number of results");
        }
        return None;
    }
    // A single-record 400 whose code is about the request, not the record, is a request-level error.
    if status == 400 && n == 1 {
        let code = data[0].get("code").and_then(Value::as_str).unwrap_or("");
        if matches!(code, "INVALID_MODULE" | "LIMIT_EXCEEDED" | "REQUIRED_PARAM_MISSING" | "INVALID_REQUEST_METHOD") {
            return None;
        }
    }
    Some(data.iter().map(outcome).collect())
}

fn outcome(item: &Value) -> RecordOutcome {
    let text = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let details = item.get("details").cloned().unwrap_or(Value::Null);
    if text("status") == "success" {
        RecordOutcome::Ok {
            id: details.get("id").and_then(Value::as_str).unwrap_or("").to_string(),
            action: item.get("action").and_then(Value::as_str).map(str::to_string),
        }
    } else {
        RecordOutcome::Rejected { code: text("code"), message: text("message"), details }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_and_all_failed_batches_keep_input_order() {
        let body = br#"{"data":[{"code":"SUCCESS","status":"success","message":"record added","details":{"id":"58"}},
            {"code":"MANDATORY_NOT_FOUND","status":"error","message":"required field not found","details":{"api_name":"Last_Name"}}]}"#;
        let r = per_record("M", 207, body, 2).unwrap();
        assert_eq!(r[0], RecordOutcome::Ok { id: "58".into(), action: None });
        assert!(matches!(&r[1], RecordOutcome::Rejected { code, .. } if code == "MANDATORY_NOT_FOUND"));
        let all_failed = br#"{"data":[{"code":"INVALID_DATA","status":"error","message":"x","details":{}}]}"#;
        assert!(matches!(per_record("M", 400, all_failed, 1).unwrap()[0], RecordOutcome::Rejected { .. }));
    }

    #[test]
    fn request_level_errors_are_not_record_results() {
        let env = br#"{"code":"LIMIT_EXCEEDED","details":{"limit":100},"message":"x","status":"error"}"#;
        assert!(per_record("M", 400, env, 101).is_none());
        let wrapped = br#"{"data":[{"code":"INVALID_MODULE","details":{},"message":"x","status":"error"}]}"#;
        assert!(per_record("M", 400, wrapped, 1).is_none());
        assert!(per_record("M", 200, b"", 1).is_none());
        let upsert = br#"{"data":[{"code":"SUCCESS","status":"success","action":"update","duplicate_field":"Name","details":{"id":"9"}}]}"#;
        assert_eq!(
            per_record("M", 200, upsert, 1).unwrap()[0],
            RecordOutcome::Ok { id: "9".into(), action: Some("update".into()) }
        );
    }
}
