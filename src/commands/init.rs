//! `zmsync init`: create or migrate the store and write the default settings where absent.

use anyhow::Result;
use serde_json::json;

use super::{actor, print_json, Context};
use crate::error::Exit;
use crate::settings::REGISTRY;

pub fn run(ctx: &Context) -> Result<Exit> {
    let store = ctx.store()?;
    let by = actor();
    let mut written = Vec::new();
    for def in REGISTRY {
        if store.insert_setting_if_absent(def.key, &def.default_value(), &by)? {
            written.push(def.key);
        }
    }
    let version = store.schema_version()?;
    if ctx.json {
        print_json(&json!({"dialect": store.dialect().name(), "location": store.location(),
                           "schema_version": version, "settings_written": written}));
    } else {
        println!("store ready: {} at {} (schema version {version})", store.dialect().name(), store.location());
        if written.is_empty() {
            println!("settings: all {} keys already present, none changed", REGISTRY.len());
        } else {
            println!("settings: wrote defaults for {} key(s): {}", written.len(), written.join(", "));
        }
    }
    Ok(Exit::Done)
}
