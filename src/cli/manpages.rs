//! `hycod manpages DIR`: the manual pages, generated from the clap definition — `hycod.1` and
//! one `hycod-SUBCOMMAND.1` per subcommand — written into DIR (created if missing). Packaging
//! runs it against the built binary; nothing generates them at compile time.

use std::path::Path;
use std::process::ExitCode;

use clap::CommandFactory;

use super::{Cli, EXIT_ERROR};

/// Writes every page into `dir` and lists the files written on stdout.
pub(super) fn run(dir: &Path) -> ExitCode {
    match write_pages(dir) {
        Ok(files) => {
            for file in files {
                println!("{}", file.display());
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!(
                "error: cannot write manual pages to {}: {error}",
                dir.display()
            );
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// `hycod.1` and `hycod-NAME.1` for every visible subcommand; the paths written.
fn write_pages(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    let page = |command: &clap::Command| {
        clap_mangen::Man::new(command.clone())
            .source(format!("hycod {}", crate::VERSION))
            .manual("hycod manual")
            .generate_to(dir)
    };
    let mut files = vec![page(&command)?];
    for sub in command.get_subcommands().filter(|sub| !sub.is_hide_set()) {
        files.push(page(sub)?);
    }
    Ok(files)
}
