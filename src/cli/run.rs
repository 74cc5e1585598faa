//! `hycod run --config FILE`: the listener daemon (docs/operations.md). Runs until SIGTERM or
//! SIGINT has drained it; SIGHUP re-reads FILE; systemd is notified when `$NOTIFY_SOCKET` is set.

use std::path::Path;
use std::process::ExitCode;

use super::EXIT_ERROR;
use crate::config::Config;
use crate::daemon::process::supervisor::Supervisor;
use crate::daemon::{self, DaemonOptions};
use crate::runtime::systemd::{self, Notifier};

/// Loads the configuration, starts the daemon and serves until it is stopped.
pub(super) fn run(path: &Path) -> ExitCode {
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
    let notifier = Notifier::from_env().unwrap_or_else(|error| {
        tracing::warn!(%error, "systemd notifications disabled");
        Notifier::disabled()
    });
    let watchdog = systemd::watchdog_interval(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    );
    let supervisor = match Supervisor::install() {
        Ok(supervisor) => supervisor,
        Err(error) => {
            eprintln!("error: cannot install signal handlers: {error}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
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
    tracing::info!(
        hybrid_connections = config.hybrid_connections.len(),
        forwards = config.forwards.len(),
        workers = config.runtime.workers.count().get(),
        systemd = notifier.is_enabled(),
        watchdog_ms = watchdog.map(|w| u64::try_from(w.as_millis()).unwrap_or(u64::MAX)),
        "daemon started"
    );
    ExitCode::from(supervisor.run(handle, path, &notifier, watchdog))
}
