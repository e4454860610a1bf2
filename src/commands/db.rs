//! `zmsync db status`.

use anyhow::Result;
use serde_json::json;

use super::{print_json, Context};
use crate::cli::DbCommand;
use crate::error::Exit;
use crate::store::LATEST_VERSION;

pub fn run(ctx: &Context, cmd: DbCommand) -> Result<Exit> {
    match cmd {
        DbCommand::Status => {
            let store = ctx.store()?;
            let version = store.schema_version()?;
            // Killed runs a later run found (and finished the work of); none before the schema exists.
            let interrupted = if version > 0 { store.interrupted_runs(5)? } else { Vec::new() };
            let brief: Vec<_> = interrupted
                .iter()
                .map(|r| {
                    json!({"id": r.id, "kind": r.kind, "started_at": r.started_at, "found_at": r.finished_at,
                                "note": r.error})
                })
                .collect();
            if ctx.json {
                print_json(&json!({"dialect": store.dialect().name(), "location": store.location(),
                                   "schema_version": version, "binary_schema_version": LATEST_VERSION,
                                   "interrupted_runs": brief}));
            } else {
                println!("dialect:        {}", store.dialect().name());
                println!("location:       {}", store.location());
                println!("schema version: {version} (this zmsync: {LATEST_VERSION})");
                for r in &interrupted {
                    let found =
                        r.finished_at.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or_default();
                    println!(
                        "interrupted:    run {} ({}, started {}), found {found}; the next run finished its work",
                        r.id,
                        r.kind,
                        r.started_at.format("%Y-%m-%d %H:%M:%S UTC")
                    );
                }
            }
        }
    }
    Ok(Exit::Done)
}
