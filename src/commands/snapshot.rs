//! `zmsync snapshot [--module M]`: fetch both sides into the store.

use std::io::IsTerminal;

use anyhow::Result;

use super::{print_json, Context};
use crate::error::{Exit, UsageError};
use crate::settings::Settings;
use crate::snapshot::{self, Options};

pub fn run(ctx: &Context, module: Option<String>) -> Result<Exit> {
    let store = ctx.store()?;
    let settings = Settings::from_rows(&store.settings_map()?)?;
    let only = match module.as_deref() {
        None => None,
        Some(m) => Some(snapshot::parse_module(m, &settings).ok_or_else(|| {
            UsageError(format!(
                "unknown module `{m}`\n  hint: valid names are: {}",
                snapshot::valid_module_names(&settings).join(", ")
            ))
        })?),
    };
    let opts = Options { only, progress: !ctx.json && std::io::stderr().is_terminal(), ..Options::default() };
    match snapshot::run(store.as_ref(), &settings, &ctx.config, &opts) {
        Ok(summary) => {
            if ctx.json {
                print_json(&serde_json::to_value(&summary)?);
            } else {
                print!("{}", summary.table());
            }
            Ok(Exit::Done)
        }
        Err(e) => Err(e.into()),
    }
}
