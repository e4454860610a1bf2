//! `zmsync runs [--limit N]` and `zmsync runs show RUN [--issues CAUSE]`.

use anyhow::Result;

use super::{print_json, Context};
use crate::cli::{RunsArgs, RunsCommand};
use crate::error::{Exit, UsageError};
use crate::operator::runs;

pub fn run(ctx: &Context, args: RunsArgs) -> Result<Exit> {
    let store = ctx.store()?;
    match args.command {
        None => {
            let lines = runs::list(store.as_ref(), args.limit)?;
            if ctx.json {
                print_json(&serde_json::to_value(&lines)?);
            } else {
                print!("{}", runs::table(&lines));
            }
        }
        Some(RunsCommand::Show { run, issues, limit }) => {
            let Some(d) = runs::show(store.as_ref(), run)? else {
                return Err(crate::operator::report::ReportError::NoRun(run).into());
            };
            if let Some(cause) = issues {
                let Some(g) = d.issues.group(&cause) else {
                    let known: Vec<&str> = d.issues.groups.iter().map(|g| g.cause.as_str()).collect();
                    return Err(UsageError(format!(
                        "run {run} has no issues of cause `{cause}`\n  hint: its causes are: {}",
                        if known.is_empty() { "none".to_string() } else { known.join(", ") }
                    ))
                    .into());
                };
                if ctx.json {
                    print_json(&serde_json::to_value(g)?);
                } else {
                    println!("{} ({}): {}", g.cause, g.count, g.meaning);
                    for r in &g.records {
                        println!(
                            "  {:<28} zoho {:<20} moodle {:<8} {}",
                            r.key,
                            r.zoho_id.as_deref().unwrap_or("-"),
                            r.moodle_id.as_deref().unwrap_or("-"),
                            r.message
                        );
                    }
                }
                return Ok(Exit::Done);
            }
            if ctx.json {
                print_json(&serde_json::to_value(&d)?);
            } else {
                print!("{}", runs::detail_text(&d, limit));
            }
        }
    }
    Ok(Exit::Done)
}
