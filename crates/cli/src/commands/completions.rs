//! `patchtrail completions SHELL` and `patchtrail man`: the shell completion script and the
//! man page, generated from the same clap definition as the parser, so they cannot drift.

use crate::cli::Cli;
use crate::failure::Failure;
use clap::CommandFactory;
use std::io::Write;
use std::process::ExitCode;

pub fn completions(shell: clap_complete::Shell) -> Result<ExitCode, Failure> {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "patchtrail", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

pub fn man() -> Result<ExitCode, Failure> {
    let mut page = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(|e| Failure::other(format!("cannot render the man page: {e}")))?;
    std::io::stdout()
        .write_all(&page)
        .map_err(|e| Failure::other(format!("cannot write to stdout: {e}")))?;
    Ok(ExitCode::SUCCESS)
}
