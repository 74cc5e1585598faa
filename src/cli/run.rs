//! `hycod run --config FILE`: the listener daemon (docs/operations.md).

use std::path::Path;
use std::process::ExitCode;

use super::EXIT_ERROR;
use crate::config::Config;
use crate::daemon::{self, DaemonOptions};

/// Loads the configuration, starts the daemon and serves until the process is stopped.
pub fn run(path: &Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    crate::logging::init(config.log.format, config.log.level);
    for warning in &config.warnings {
        tracing::warn!(%warning, "configuration warning");
    }
    let handle = match daemon::start(&config, DaemonOptions::default()) {
        Ok(handle) => handle,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    if let Some(admin) = handle.admin_addr {
        tracing::info!(metrics = %format!("http://{admin}/metrics"), "admin endpoint listening");
    }
    for worker in handle.workers {
        let _ = worker.join();
    }
    ExitCode::SUCCESS
}
