//! `hycod completions SHELL`: the shell completion script, generated from the clap definition
//! so it always matches the subcommands and options of this binary.

use std::io::Write;
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

use super::{Cli, EXIT_ERROR};

/// Writes the completion script for `shell` to stdout.
pub(super) fn run(shell: Shell) -> ExitCode {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "hycod", &mut script);
    match std::io::stdout().lock().write_all(&script) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: cannot write the completion script: {error}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
