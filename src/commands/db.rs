//! `zmsync db status`.

use anyhow::Result;
use serde_json::json;

use super::{print_json, Context};
use crate::cli::DbCommand;
use crate::exit::Exit;
use crate::store::LATEST_VERSION;

pub fn run(ctx: &Context, cmd: DbCommand) -> Result<Exit> {
    match cmd {
        DbCommand::Status => {
            let store = ctx.store()?;
            let version = store.schema_version()?;
            if ctx.json {
                print_json(&json!({"dialect": store.dialect().name(), "location": store.location(),
                                   "schema_version": version, "binary_schema_version": LATEST_VERSION}));
            } else {
                println!("dialect:        {}", store.dialect().name());
                println!("location:       {}", store.location());
                println!("schema version: {version} (this zmsync: {LATEST_VERSION})");
            }
        }
    }
    Ok(Exit::Done)
}
