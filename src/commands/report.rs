//! `zmsync report [RUN] [--out FILE] [--html FILE]`.

use anyhow::Result;
use serde_json::json;

use super::{print_json, Context};
use crate::cli::ReportArgs;
use crate::error::Exit;
use crate::operator::{html, report};

pub fn run(ctx: &Context, args: ReportArgs) -> Result<Exit> {
    let store = ctx.store()?;
    let row = report::run_row(store.as_ref(), args.run)?;
    if let Some(out) = &args.html {
        html::write(store.as_ref(), &row, out, args.trend_runs.max(1))?;
        if ctx.json {
            print_json(&json!({"run_id": row.id, "html": out}));
        } else {
            println!("run {}: HTML report written to {}", row.id, out.display());
        }
        return Ok(Exit::Done);
    }
    let out = args.out.clone().unwrap_or_else(|| report::csv_path(store.as_ref(), &row));
    let n = report::write_csv(store.as_ref(), &row, &out)?;
    if ctx.json {
        print_json(&json!({"run_id": row.id, "report": out, "rows": n}));
    } else {
        println!("run {}: {n} ops written to {} (from the journal)", row.id, out.display());
        if n == 0 {
            println!("the journal holds no ops of this run (a dry run, a refused run or one that planned nothing)");
        }
    }
    Ok(Exit::Done)
}
