//! `zmsync history RECORD [--entity E]`.

use anyhow::Result;

use super::{print_json, Context};
use crate::cli::HistoryArgs;
use crate::error::{Exit, UsageError};
use crate::model::Entity;
use crate::operator::history;

pub fn run(ctx: &Context, args: HistoryArgs) -> Result<Exit> {
    let entity = match args.entity.as_deref() {
        None => None,
        Some(e) => Some(Entity::from_name(e).ok_or_else(|| {
            let names: Vec<&str> = Entity::ALL.iter().map(|e| e.name()).collect();
            UsageError(format!("unknown entity `{e}`\n  hint: one of {}", names.join(", ")))
        })?),
    };
    let store = ctx.store()?;
    let Some(h) = history::history(store.as_ref(), &args.record, entity, args.limit.max(1))? else {
        return Err(UsageError(format!(
            "nothing in the journal or the last snapshot is `{}`\n  hint: give a Zoho record id, a Moodle user id, an \
             email or a student id number as Zoho has it (the snapshot must hold the person: `zmsync snapshot`)",
            args.record
        ))
        .into());
    };
    if ctx.json {
        print_json(&serde_json::to_value(&h)?);
    } else {
        print!("{}", history::text(&h));
    }
    Ok(Exit::Done)
}
