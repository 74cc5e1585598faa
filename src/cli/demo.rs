//! `hycod demo`: start a relay, the daemon and sample services on loopback, push relayed HTTP
//! requests and streams through them, print what happened (see [`crate::demo`]).

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use super::EXIT_ERROR;
use crate::config::{LogFormat, LogLevel};
use crate::demo::{report, DemoOptions, Stack};

/// Flags of `hycod demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Relayed HTTP requests to send.
    #[arg(long, default_value_t = 300)]
    pub requests: usize,
    /// WebSocket streams to open and echo through.
    #[arg(long, default_value_t = 5)]
    pub streams: usize,
    /// Keep everything running after the summary (until Ctrl-C) and print how to poke it.
    #[arg(long)]
    pub keep_running: bool,
}

/// Runs the demo; exit code 0 when every request and stream succeeded.
pub(super) fn run(args: DemoArgs) -> ExitCode {
    crate::logging::init(LogFormat::Text, LogLevel::Warn);
    let stack = match Stack::start() {
        Ok(stack) => stack,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    print(&report::started(&stack.started));
    let options = DemoOptions {
        requests: args.requests,
        streams: args.streams,
    };
    let traffic = match stack.send(options) {
        Ok(traffic) => traffic,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let counts = stack.daemon_counts();
    print(&report::results(&stack.started, &traffic, counts.as_ref()));
    let passed = traffic.passed();
    if !passed {
        eprintln!("error: the demo failed; the failures are listed above");
    }
    if args.keep_running {
        print(&stack.poke());
        stack.serve_forever();
    }
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_ERROR)
    }
}

/// Writes a section to stdout at once (the demo's output is read by people and by tests).
fn print(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(text.as_bytes());
    let _ = stdout.flush();
}
