//! `zmsync diff [--module M] [--out diff.csv] [--format csv|json|table]`.

use std::io::{IsTerminal, Write};

use anyhow::{Context as _, Result};

use super::Context;
use crate::cli::{DiffArgs, DiffFormat};
use crate::error::{Exit, Refused};
use crate::reconcile::plan::{counts_table, Guard, GuardOutcome};
use crate::reconcile::{self, report, Options};
use crate::settings::Settings;

pub fn run(ctx: &Context, args: DiffArgs) -> Result<Exit> {
    let store = ctx.store()?;
    let settings = Settings::from_rows(&store.settings_map()?)?;
    let entities = reconcile::select(args.reconcile.module.as_deref(), &settings)?;
    super::plan::refresh(ctx, store.as_ref(), &settings, &args.reconcile)?;
    // A diff is how a mass change is reviewed, so that guard only warns here; an empty side means the
    // snapshot is not to be trusted and the report would be nonsense.
    let opts = Options { entities, run_id: None, allow_mass_change: true, collect_agreed: false };
    let plan = reconcile::reconcile(&*store, &settings, &opts)?;
    let empty: Vec<&str> = plan
        .guards
        .iter()
        .filter(|g| g.guard == Guard::EmptySide && g.outcome == GuardOutcome::Refused)
        .map(|g| g.message.as_str())
        .collect();
    if !empty.is_empty() {
        return Err(Refused(empty.join("\n")).into());
    }
    let stdout_tty = std::io::stdout().is_terminal();
    let format = match (args.format, &args.out) {
        (Some(f), _) => f,
        (None, Some(_)) => DiffFormat::Csv,
        (None, None) if stdout_tty && !ctx.json => DiffFormat::Table,
        (None, None) if ctx.json => DiffFormat::Json,
        (None, None) => DiffFormat::Csv,
    };
    let mut sink: Box<dyn Write> = match &args.out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let summary = counts_table(&plan.counts);
    match format {
        DiffFormat::Csv => {
            report::write_csv(&report::rows(&plan), &mut sink, args.out.is_some() && !args.no_bom)?;
            eprint!("{summary}");
        }
        DiffFormat::Json => {
            serde_json::to_writer_pretty(&mut sink, &report::to_json(&plan))?;
            writeln!(sink)?;
        }
        DiffFormat::Table => {
            write!(sink, "{}", report::table(&plan, args.out.is_none() && stdout_tty))?;
            write!(sink, "\n{summary}")?;
        }
    }
    sink.flush()?;
    for g in &plan.guards {
        eprintln!("warning: {}", g.message.replacen("allowed: ", "", 1));
    }
    if let Some(out) = &args.out {
        eprintln!("diff written to {}", out.display());
    }
    Ok(Exit::Done)
}
