//! `zmsync doctor`: one line per check, exit 0 only when nothing failed.

use anyhow::Result;

use super::Context;
use crate::doctor;
use crate::error::Exit;

pub fn run(ctx: &Context) -> Result<Exit> {
    let report = doctor::run(&ctx.config);
    if ctx.json {
        let v = serde_json::json!({"ok": report.ok(), "checks": report.checks});
        super::print_json(&v);
    } else {
        print!("{}", report.text());
    }
    Ok(if report.ok() { Exit::Done } else { Exit::Failed })
}
