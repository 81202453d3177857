//! `patchtrail completions SHELL` and `patchtrail man`: the shell completion script and the
//! man page, generated from the same clap definition as the parser, so they cannot drift.

use super::write_stdout;
use crate::cli::Cli;
use crate::failure::Failure;
use clap::CommandFactory;
use std::process::ExitCode;

pub fn completions(shell: clap_complete::Shell) -> Result<ExitCode, Failure> {
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "patchtrail", &mut script);
    write_stdout(&script)?;
    Ok(ExitCode::SUCCESS)
}

pub fn man() -> Result<ExitCode, Failure> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|e| Failure::other(format!("cannot render the man page: {e}")))?;
    write_stdout(&page)?;
    Ok(ExitCode::SUCCESS)
}
