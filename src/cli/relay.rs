//! `hycod relay`: run the self-hostable relay until the process is stopped (docs/relay.md).

use std::io::Write;
use std::process::ExitCode;

use super::EXIT_ERROR;
use crate::logging::Escaped;
use crate::relay::config::RelayArgs;

/// Starts the relay, prints `listening ws://ADDR` (or `wss://`) once every worker accepts (then
/// `admin URL` and, with `--self-signed`, `trust CA_FILE`), and serves until the process is
/// killed. Logs go to stderr (`--log-format`, `--log-level`).
pub(super) fn run(args: RelayArgs) -> ExitCode {
    let config = match args.into_config() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    crate::logging::init(config.log_format, config.log_level);
    for rule in config.command_line_rules() {
        tracing::warn!(rule = %Escaped(rule),
            "a shared access key was given on the command line, where every local user can read it; use --config with key_file or key_env");
    }
    for hybrid_connection in &config.anonymous_senders {
        tracing::info!(hybrid_connection = %Escaped(hybrid_connection),
            "senders need no token here (requires_client_authorization = false)");
    }
    let handle = match crate::relay::start(config) {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    tracing::info!(url = %handle.url, admin = ?handle.admin_addr, "relay listening");
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening {}", handle.url);
    if let Some(admin) = handle.admin_addr {
        let _ = writeln!(stdout, "admin http://{admin}/$status");
    }
    if let Some(ca_file) = &handle.ca_file {
        let _ = writeln!(stdout, "trust {}", ca_file.display());
    }
    let _ = stdout.flush();
    drop(stdout);
    for worker in handle.workers {
        let _ = worker.join();
    }
    ExitCode::SUCCESS
}
