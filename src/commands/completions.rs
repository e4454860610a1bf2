//! `zmsync completions SHELL` and `zmsync man`: generated from the clap definitions, so they never drift.

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::Exit;

pub fn completions(shell: clap_complete::Shell) -> Result<Exit> {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "zmsync", &mut std::io::stdout());
    Ok(Exit::Done)
}

pub fn man() -> Result<Exit> {
    clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
    Ok(Exit::Done)
}
