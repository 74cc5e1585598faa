//! `hycod check --config FILE`: validate a configuration and print the effective configuration
//! with every secret redacted (architecture §5).

use std::path::Path;
use std::process::ExitCode;

use crate::config::{render, Config};

use super::EXIT_ERROR;

/// Prints the effective configuration to stdout and any warnings to stderr (exit 0), or the
/// error to stderr (exit 2).
pub fn check(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok(config) => {
            for warning in &config.warnings {
                eprintln!("warning: {warning}");
            }
            print!(
                "{}",
                render::effective(&config, config.runtime.workers.count())
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
