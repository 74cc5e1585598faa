//! The `hycod` command line (clap derive): one subcommand per job. Subcommands of features that
//! have not landed yet are absent, not stubs.
//!
//! Exit codes: 0 on success, 2 on any error (an invalid configuration, an unusable connection
//! string, or a usage error reported by clap). Errors go to stderr and never contain a secret.

mod check;
mod completions;
mod demo;
mod forward;
mod manpages;
mod relay;
mod run;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::duration;

pub use check::check;
pub use demo::DemoArgs;
pub use token::{mint_token, TokenCommandError};

/// The exit code of every failure.
pub const EXIT_ERROR: u8 = 2;

/// Azure Relay Hybrid Connections listener daemon for on-prem SAP, HTTP and TCP services.
#[derive(Debug, Parser)]
#[command(name = "hycod", version = crate::VERSION, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the listener daemon: keep listeners online and forward relayed streams and requests
    Run {
        /// The configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Validate a configuration file and print it with defaults filled in and secrets redacted
    Check {
        /// The configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Print a SAS token for a hybrid connection, signed with a connection string's key
    Token {
        /// A file holding the connection string (Endpoint, SharedAccessKeyName, SharedAccessKey).
        #[arg(long, value_name = "FILE")]
        connection_string_file: PathBuf,
        /// The hybrid connection path; defaults to the connection string's EntityPath.
        #[arg(long, value_name = "PATH")]
        entity: Option<String>,
        /// How long the token is valid, e.g. 30m or 1h.
        #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = token_ttl)]
        ttl: Duration,
    },
    /// Forward local TCP connections through the relay to a listening daemon (a tunnel's sender end)
    Forward(Box<forward::ForwardArgs>),
    /// Run a self-hosted Hybrid Connections relay (the service side) for tests or Azure-free use
    Relay(Box<crate::relay::config::RelayArgs>),
    /// See it work: relay, daemon and sample services on loopback, traffic through them, a report
    Demo(DemoArgs),
    /// Print the shell completion script for bash, zsh or fish (also elvish, powershell)
    Completions {
        /// The shell.
        #[arg(value_enum, value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Write the manual pages (hycod.1 and hycod-SUBCOMMAND.1 for each subcommand) into DIR
    Manpages {
        /// The directory; created if missing.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

/// Parses the command line and runs the command; the process exit code.
pub fn main() -> ExitCode {
    run(Cli::parse())
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run { config } => run::run(&config),
        Command::Check { config } => check(&config),
        Command::Token {
            connection_string_file,
            entity,
            ttl,
        } => token::run(&connection_string_file, entity.as_deref(), ttl),
        Command::Relay(args) => relay::run(*args),
        Command::Forward(args) => forward::run(*args),
        Command::Demo(args) => demo::run(args),
        Command::Completions { shell } => completions::run(shell),
        Command::Manpages { dir } => manpages::run(&dir),
    }
}

/// `--ttl`: a duration of at least one second.
fn token_ttl(text: &str) -> Result<Duration, String> {
    let ttl = duration::parse(text).map_err(|error| error.to_string())?;
    if ttl < Duration::from_secs(1) {
        return Err("the token lifetime must be at least 1s".to_owned());
    }
    Ok(ttl)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn token_ttl_parses_durations_of_at_least_a_second() {
        assert_eq!(token_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(token_ttl("1s"), Ok(Duration::from_secs(1)));
        assert!(token_ttl("500ms").is_err_and(|e| e.contains("at least 1s")));
        assert!(token_ttl("1 hour").is_err_and(|e| e.contains("unknown unit")));
    }

    #[test]
    fn token_defaults_to_one_hour() {
        let cli = Cli::try_parse_from(["hycod", "token", "--connection-string-file", "f"])
            .expect("valid command line");
        match cli.command {
            Command::Token { ttl, entity, .. } => {
                assert_eq!(ttl, Duration::from_secs(3600));
                assert_eq!(entity, None);
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn relay_rule_and_hybrid_connection_repeat() {
        let cli = Cli::try_parse_from([
            "hycod",
            "relay",
            "--listen",
            "127.0.0.1:0",
            "--rule",
            "a=k1==",
            "--rule",
            "b=k2==:send",
            "--hybrid-connection",
            "one",
            "--hybrid-connection",
            "two",
        ])
        .expect("valid command line");
        match cli.command {
            Command::Relay(args) => {
                assert_eq!(args.rules, ["a=k1==", "b=k2==:send"]);
                assert_eq!(args.hybrid_connections, ["one", "two"]);
                assert_eq!(args.namespace, None);
                let config = args.into_config().expect("valid");
                assert_eq!(config.namespace, "localhost");
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn demo_defaults_to_300_requests_and_5_streams() {
        let cli = Cli::try_parse_from(["hycod", "demo"]).expect("valid command line");
        match cli.command {
            Command::Demo(args) => {
                assert_eq!((args.requests, args.streams), (300, 5));
                assert!(!args.keep_running);
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli = Cli::try_parse_from([
            "hycod",
            "demo",
            "--requests",
            "50",
            "--streams",
            "2",
            "--keep-running",
        ])
        .expect("valid command line");
        match cli.command {
            Command::Demo(args) => {
                assert_eq!((args.requests, args.streams), (50, 2));
                assert!(args.keep_running);
            }
            other => panic!("parsed as {other:?}"),
        }
        let error =
            Cli::try_parse_from(["hycod", "demo", "--requests", "many"]).expect_err("not a number");
        assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation);
    }

    #[test]
    fn check_requires_a_config() {
        let error = Cli::try_parse_from(["hycod", "check"]).expect_err("missing --config");
        assert_eq!(
            error.kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
    }
}
