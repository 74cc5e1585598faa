//! `hycod relay`: run the self-hostable relay until the process is stopped (docs/relay.md).

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::EXIT_ERROR;
use crate::logging::Escaped;
use crate::relay::config::RelayArgs;
use crate::relay::core::drain::{Action, Drain};
use crate::relay::{RelayHandle, Wake};
use crate::runtime::signals::{self, Signal};

/// Starts the relay, prints `listening ws://ADDR` (or `wss://`) once every worker accepts (then
/// `admin URL` and, with `--self-signed`, `trust CA_FILE`), and serves until SIGTERM or SIGINT,
/// then drains it (docs/relay.md "Stopping"). Logs go to stderr (`--log-format`, `--log-level`).
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
    let grace = config.shutdown_grace;
    let handle = match crate::relay::start(config) {
        Ok(handle) => handle,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let stopping = handle.stopping.clone();
    if let Err(e) = signals::forward(move |signal| stopping.signal(signal)) {
        eprintln!("error: cannot handle signals: {e}");
        return ExitCode::from(EXIT_ERROR);
    }
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
    ExitCode::from(serve_until_stopped(&handle, grace))
}

/// Runs the stop sequence's driver: waits for signals and for the counts of work in flight,
/// carries out what [`Drain`] decides, and returns the exit code.
fn serve_until_stopped(handle: &RelayHandle, grace: Duration) -> u8 {
    let mut drain = Drain::new(grace);
    let mut due = Vec::new();
    loop {
        for action in due.drain(..) {
            let in_flight = handle.stopping.in_flight();
            match action {
                Action::StopAccepting => {
                    tracing::info!(
                        grace_ms = millis(grace),
                        work = in_flight.work,
                        connections = in_flight.connections,
                        "draining: stopped accepting; streams and requests in flight may finish"
                    );
                    handle.stopping.stop_accepting();
                }
                Action::CloseRemaining => {
                    tracing::info!(
                        abandoned = in_flight.work,
                        connections = in_flight.connections,
                        "closing what is still open"
                    );
                    handle.stopping.close_remaining.fire();
                }
                Action::Exit(code) => {
                    tracing::info!(code, "relay stopped");
                    return code;
                }
            }
        }
        if let Some(action) = drain.poll(handle.stopping.in_flight(), Instant::now()) {
            due.push(action);
            continue;
        }
        let woken = match drain.next_deadline() {
            Some(deadline) => handle.woken.recv_deadline(deadline).ok(),
            None => handle.woken.recv().ok(),
        };
        match woken {
            Some(Wake::Signal(Signal::Hangup)) => {
                tracing::info!("SIGHUP ignored: the relay has no configuration to reload");
            }
            Some(Wake::Signal(signal)) => {
                tracing::info!(signal = signal.name(), "stop requested");
                due = drain.on_stop_signal(signal.number(), Instant::now());
            }
            Some(Wake::Counts) | None => {}
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
