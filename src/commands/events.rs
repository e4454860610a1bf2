//! `zmsync events status | retry [--hours N] | cleanup --days N [--dry-run] [--include-failed]`.

use anyhow::Result;
use chrono::{Duration, Utc};
use serde_json::{json, Value};

use super::{print_json, Context};
use crate::cli::EventsCommand;
use crate::error::Exit;
use crate::settings::Settings;
use crate::store::events::EventRow;

pub fn run(ctx: &Context, cmd: EventsCommand) -> Result<Exit> {
    let store = ctx.store()?;
    match cmd {
        EventsCommand::Status { failures } => {
            let counts = store.event_counts()?;
            let oldest = store.oldest_pending_event()?;
            let failed = store.recent_failed_events(failures)?;
            let dirty = store.dirty_marks()?;
            let claimed = dirty.iter().filter(|(_, c)| c.is_some()).count();
            let failing = store.failing_dirty(failures)?;
            if ctx.json {
                print_json(&json!({
                    "counts": counts,
                    "total": counts.iter().map(|c| c.count).sum::<i64>(),
                    "oldest_pending": oldest,
                    "recent_failures": failed,
                    "dirty": {"marked": dirty.len(), "claimed": claimed, "failing": failing},
                }));
            } else {
                if counts.is_empty() {
                    println!("no events");
                }
                for c in &counts {
                    println!("{:<8} {:<11} {:>8}", c.source, c.status, c.count);
                }
                match &oldest {
                    Some(e) => println!(
                        "oldest pending: {} ({} {}, received {})",
                        e.event_id,
                        e.source,
                        describe(e),
                        e.created_at.to_rfc3339()
                    ),
                    None => println!("oldest pending: none"),
                }
                println!("dirty records: {} ({} claimed by a running sync)", dirty.len(), claimed);
                if !failing.is_empty() {
                    println!("dirty records whose last sync failed (retried once due):");
                    for m in &failing {
                        println!(
                            "  {} {} {}  attempts {}  retry after {}  {}",
                            m.key.source,
                            m.key.entity,
                            m.key.key,
                            m.attempts,
                            m.retry_after.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into()),
                            m.last_error.as_deref().unwrap_or("")
                        );
                    }
                }
                if !failed.is_empty() {
                    println!("last failures:");
                    for e in &failed {
                        println!(
                            "  {}  {} {}  retries {}  {}",
                            e.processed_at.unwrap_or(e.created_at).to_rfc3339(),
                            e.event_id,
                            describe(e),
                            e.retry_count,
                            e.error_message.as_deref().unwrap_or("")
                        );
                    }
                }
            }
        }
        EventsCommand::Retry { hours } => {
            let settings = Settings::from_rows(&store.settings_map()?)?;
            let max = settings.retry.max_retries;
            let out = store.retry_failed(Utc::now() - Duration::hours(i64::from(hours)), max)?;
            if ctx.json {
                print_json(
                    &json!({"retried": out.retried, "exhausted": out.exhausted, "max_retries": max, "hours": hours}),
                );
            } else {
                println!(
                    "retried {} failed event(s) of the last {hours} h: back to pending, records marked dirty",
                    out.retried
                );
                if out.exhausted > 0 {
                    println!(
                        "left {} failed event(s) alone: they already used retry.policy.max_retries = {max} \
                         (raise it with `zmsync settings set retry.policy ...` to try again)",
                        out.exhausted
                    );
                }
            }
        }
        EventsCommand::Cleanup { days, dry_run, include_failed } => {
            let before = Utc::now() - Duration::days(i64::from(days));
            let n = store.cleanup_events(before, include_failed, dry_run)?;
            let what = if include_failed { "completed and failed" } else { "completed" };
            if ctx.json {
                print_json(&json!({"deleted": if dry_run { Value::from(0) } else { Value::from(n) },
                                   "would_delete": if dry_run { Value::from(n) } else { Value::Null },
                                   "dry_run": dry_run, "days": days, "include_failed": include_failed}));
            } else if ctx.quiet && !dry_run {
                // The weekly cron job: nothing to say when it worked.
            } else if dry_run {
                println!("dry run: would delete {n} {what} event(s) older than {days} day(s); nothing was deleted");
            } else {
                println!("deleted {n} {what} event(s) older than {days} day(s)");
            }
        }
    }
    Ok(Exit::Done)
}

fn describe(e: &EventRow) -> String {
    format!(
        "{} {} {}",
        e.module.as_deref().or(e.entity_type.as_deref()).unwrap_or("-"),
        e.record_id.as_deref().unwrap_or("-"),
        e.event_type
    )
}
