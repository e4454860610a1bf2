//! `zmsync settings list | get KEY | set KEY JSON`.

use anyhow::Result;
use serde_json::{json, Value};

use super::{actor, print_json, Context};
use crate::cli::SettingsCommand;
use crate::error::Exit;
use crate::settings::{self, REGISTRY};

pub fn run(ctx: &Context, cmd: SettingsCommand) -> Result<Exit> {
    let store = ctx.store()?;
    match cmd {
        SettingsCommand::List => {
            let rows = store.settings()?;
            let mut out = Vec::new();
            for def in REGISTRY {
                let row = rows.iter().find(|r| r.key == def.key);
                out.push(json!({
                    "key": def.key,
                    "value": row.map(|r| r.value.clone()).unwrap_or_else(|| def.default_value()),
                    "default": row.is_none(),
                    "updated_by": row.map(|r| r.updated_by.clone()),
                    "updated_at": row.map(|r| r.updated_at.to_rfc3339()),
                    "description": def.description,
                }));
            }
            if ctx.json {
                print_json(&Value::Array(out));
            } else {
                for item in &out {
                    let origin = if item["default"] == true {
                        "(default)".to_string()
                    } else {
                        format!(
                            "(set by {} at {})",
                            item["updated_by"].as_str().unwrap_or(""),
                            item["updated_at"].as_str().unwrap_or("")
                        )
                    };
                    println!("{} = {}  {}", item["key"].as_str().unwrap_or(""), item["value"], origin);
                }
            }
        }
        SettingsCommand::Get { key } => {
            let def = settings::lookup(&key)?;
            let row = store.setting(&key)?;
            let value = row.as_ref().map(|r| r.value.clone()).unwrap_or_else(|| def.default_value());
            if ctx.json {
                print_json(&json!({"key": key, "value": value, "default": row.is_none(), "shape": def.shape}));
            } else {
                println!("{value}");
                eprintln!("# {}: {}; shape {}", key, def.description, def.shape);
            }
        }
        SettingsCommand::Set { key, value: raw } => {
            let def = settings::lookup(&key)?;
            let current = store.setting(&key)?.map(|r| r.value).unwrap_or_else(|| def.default_value());
            let value = settings::parse_value(&key, &raw, &current)?;
            store.put_setting(&key, &value, &actor())?;
            if ctx.json {
                print_json(&json!({"key": key, "value": value, "previous": current}));
            } else {
                println!("{key} = {value}  (was {current})");
            }
            // The Notification API channel lists modules by name: it does not follow a change by itself.
            if matches!(key.as_str(), "modules.enabled" | "mapping.fields") && value != current {
                if let Some(c) = store.zoho_channel()? {
                    eprintln!(
                        "note: Zoho channel {} still watches the old module list: run `zmsync zoho watch` to amend                          it (`zmsync doctor` shows the difference)",
                        c.channel_id
                    );
                }
            }
        }
    }
    Ok(Exit::Done)
}
