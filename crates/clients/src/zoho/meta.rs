//! Metadata: which modules the org has and which fields a module has. Real
//! clients call these before touching a module; `zmsync doctor` uses them to check `mapping.fields`.

use serde::Serialize;
use serde_json::Value;

use super::{Client, Replay, ZohoError};

/// One module of `GET /crm/v8/settings/modules`, the parts we use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModuleMeta {
    pub api_name: String,
    /// `api_supported: false` modules cannot be read through the API (absent key: supported).
    pub api_supported: bool,
}

/// One field of `GET /crm/v8/settings/fields?module=M`, the parts we use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldMeta {
    pub api_name: String,
    pub data_type: String,
}

impl Client {
    /// Every module of the org.
    pub async fn modules(&self) -> Result<Vec<ModuleMeta>, ZohoError> {
        let what = "settings/modules";
        let answer =
            self.send(what, Replay::Safe, |http, base| http.get(format!("{base}/crm/v8/settings/modules"))).await?;
        match answer.status.as_u16() {
            200 => {
                let v = answer.json(what)?;
                let list = v.get("modules").and_then(Value::as_array).cloned().unwrap_or_default();
                Ok(list
                    .iter()
                    .filter_map(|m| {
                        Some(ModuleMeta {
                            api_name: m.get("api_name")?.as_str()?.to_string(),
                            api_supported: m.get("api_supported").and_then(Value::as_bool).unwrap_or(true),
                        })
                    })
                    .collect())
            }
            204 => Ok(Vec::new()),
            _ => Err(answer.error(what)),
        }
    }

    /// The fields of `module`; `None` when Zoho answers 204 (seen for some modules: skip it and
    /// warn). An unknown module is Zoho's 400 `INVALID_MODULE`.
    pub async fn fields(&self, module: &str) -> Result<Option<Vec<FieldMeta>>, ZohoError> {
        let query = [("module", module.to_string())];
        let answer = self
            .send(module, Replay::Safe, |http, base| http.get(format!("{base}/crm/v8/settings/fields")).query(&query))
            .await?;
        match answer.status.as_u16() {
            200 => {
                let v = answer.json(module)?;
                let list = v.get("fields").and_then(Value::as_array).cloned().unwrap_or_default();
                Ok(Some(
                    list.iter()
                        .filter_map(|f| {
                            Some(FieldMeta {
                                api_name: f.get("api_name")?.as_str()?.to_string(),
                                data_type: f.get("data_type").and_then(Value::as_str).unwrap_or("").to_string(),
                            })
                        })
                        .collect(),
                ))
            }
            204 | 304 => Ok(None),
            _ => Err(answer.error(module)),
        }
    }
}
