//! Command line of `hycod-load` and the bounds every run must respect.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Longest run accepted (warm-up included).
pub const MAX_DURATION: Duration = Duration::from_secs(600);
/// Highest rate accepted, requests per second.
pub const MAX_RATE: f64 = 1_000_000.0;
/// Most connections accepted.
pub const MAX_CONNECTIONS: u32 = 100_000;

/// Load generator for hycod (open-loop, coordinated-omission-corrected HDR histograms).
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Echo round trips of `--size` bytes over WebSocket streams through a relay (or plain TCP
    /// with `--direct tcp://host:port`).
    Stream {
        #[command(flatten)]
        common: Common,
        /// Bytes per round trip.
        #[arg(long, default_value_t = 64)]
        size: usize,
    },
    /// HTTP requests through a relay (or straight to `--direct http://host:port/path`).
    Http {
        #[command(flatten)]
        common: Common,
        #[arg(long, default_value = "POST")]
        method: String,
        /// Request body bytes.
        #[arg(long, default_value_t = 1024)]
        body_size: usize,
        /// Extra request header fields.
        #[arg(long, default_value_t = 0)]
        headers: usize,
        /// Path after the hybrid connection's name (relayed) or of the direct URL.
        #[arg(long, default_value = "/")]
        path: String,
    },
    /// A TCP echo target for the baseline and for relayed streams.
    ServeEcho {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// An HTTP/1.1 target that answers every request with its own body.
    ServeHttp {
        #[arg(long)]
        listen: SocketAddr,
    },
}

/// Options of both load modes.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Requests per second in total (open loop).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Send as fast as answers come back instead (latency from the actual send).
    #[arg(long)]
    pub closed_loop: bool,
    #[arg(long, default_value_t = 1)]
    pub connections: u32,
    /// Measured time, e.g. `10s`, `500ms`, `1m`.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Time before the measurement, excluded from the results.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// One monoio runtime per thread; connections are spread over them.
    #[arg(long, default_value_t = 1)]
    pub threads: u32,
    /// The relay, `ws://host:port`.
    #[arg(long)]
    pub relay: Option<String>,
    #[arg(long)]
    pub hybrid_connection: Option<String>,
    #[arg(long)]
    pub key_name: Option<String>,
    /// The rule's key (prefer --connection-string-file: arguments are visible in `ps`).
    #[arg(long)]
    pub key: Option<String>,
    /// A file holding a sender connection string (instead of `--key-name`/`--key`).
    #[arg(long)]
    pub connection_string_file: Option<PathBuf>,
    /// The baseline target without relay: `tcp://host:port` or `http://host:port/path`.
    #[arg(long)]
    pub direct: Option<String>,
    /// A non-loopback host this run may load (repeatable).
    #[arg(long)]
    pub allow_host: Vec<String>,
    /// Per-request timeout.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw the latency percentile distribution as SVG here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// Why a run was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum CliError {
    DurationTooLong { total: Duration },
    RateOutOfRange { rate: f64 },
    ConnectionsOutOfRange { connections: u32 },
    ThreadsOutOfRange { threads: u32, connections: u32 },
    NoTarget,
    BothTargets,
    MissingHybridConnection,
    MissingCredential,
    BadAddress { address: String },
    NotAllowed { host: String },
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DurationTooLong { total } => write!(
                f,
                "--duration plus --warmup is {total:?}, more than the {MAX_DURATION:?} allowed"
            ),
            Self::RateOutOfRange { rate } => {
                write!(f, "--rate {rate} is not within (0, {MAX_RATE}]")
            }
            Self::ConnectionsOutOfRange { connections } => write!(
                f,
                "--connections {connections} is not within 1..={MAX_CONNECTIONS}"
            ),
            Self::ThreadsOutOfRange {
                threads,
                connections,
            } => write!(
                f,
                "--threads {threads} must be at least 1 and at most --connections {connections}"
            ),
            Self::NoTarget => f.write_str("give --relay (with --hybrid-connection) or --direct"),
            Self::BothTargets => f.write_str("--relay and --direct exclude each other"),
            Self::MissingHybridConnection => f.write_str("--relay needs --hybrid-connection"),
            Self::MissingCredential => {
                f.write_str("--relay needs --key-name and --key, or --connection-string-file")
            }
            Self::BadAddress { address } => {
                write!(f, "cannot resolve the target address {address:?}")
            }
            Self::NotAllowed { host } => write!(
                f,
                "{host} is not a loopback address; name it with --allow-host to load it"
            ),
        }
    }
}

impl std::error::Error for CliError {}

/// Parses `10s`, `500ms`, `2m` or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((text, "s"), |i| text.split_at(i));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 10s or 500ms"))?;
    let seconds = match unit {
        "ms" => value / 1e3,
        "s" => value,
        "m" => value * 60.0,
        other => return Err(format!("unknown duration unit {other:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

impl Common {
    /// Checks the bounds of a run.
    pub fn validate(&self) -> Result<(), CliError> {
        let total = self.duration.saturating_add(self.warmup);
        if total > MAX_DURATION {
            return Err(CliError::DurationTooLong { total });
        }
        if !(self.rate > 0.0 && self.rate <= MAX_RATE) {
            return Err(CliError::RateOutOfRange { rate: self.rate });
        }
        if self.connections == 0 || self.connections > MAX_CONNECTIONS {
            return Err(CliError::ConnectionsOutOfRange {
                connections: self.connections,
            });
        }
        if self.threads == 0 || self.threads > self.connections {
            return Err(CliError::ThreadsOutOfRange {
                threads: self.threads,
                connections: self.connections,
            });
        }
        match (&self.relay, &self.direct) {
            (None, None) => Err(CliError::NoTarget),
            (Some(_), Some(_)) => Err(CliError::BothTargets),
            (Some(_), None) if self.hybrid_connection.is_none() => {
                Err(CliError::MissingHybridConnection)
            }
            _ => Ok(()),
        }
    }

    /// Resolves `host:port` and checks it is loopback or named by `--allow-host`.
    pub fn permitted_addr(&self, host: &str, port: u16) -> Result<SocketAddr, CliError> {
        let addr = (host, port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| CliError::BadAddress {
                address: format!("{host}:{port}"),
            })?;
        if addr.ip().is_loopback() || self.allow_host.iter().any(|h| h == host) {
            Ok(addr)
        } else {
            Err(CliError::NotAllowed {
                host: host.to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn common(extra: &[&str]) -> Common {
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            common: Common,
        }
        let mut args = vec!["t"];
        args.extend_from_slice(extra);
        T::parse_from(args).common
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("3h").is_err());
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn runs_are_bounded() {
        let long = common(&[
            "--direct",
            "tcp://127.0.0.1:1",
            "--duration",
            "9m",
            "--warmup",
            "2m",
        ]);
        assert!(matches!(
            long.validate(),
            Err(CliError::DurationTooLong { .. })
        ));
        let fast = common(&["--direct", "tcp://127.0.0.1:1", "--rate", "2000000"]);
        assert!(matches!(
            fast.validate(),
            Err(CliError::RateOutOfRange { .. })
        ));
        let threads = common(&["--direct", "tcp://127.0.0.1:1", "--threads", "2"]);
        assert!(matches!(
            threads.validate(),
            Err(CliError::ThreadsOutOfRange { .. })
        ));
        assert_eq!(common(&[]).validate(), Err(CliError::NoTarget));
        let no_hc = common(&["--relay", "ws://127.0.0.1:1"]);
        assert_eq!(no_hc.validate(), Err(CliError::MissingHybridConnection));
        let both = common(&[
            "--relay",
            "ws://127.0.0.1:1",
            "--direct",
            "tcp://127.0.0.1:1",
        ]);
        assert_eq!(both.validate(), Err(CliError::BothTargets));
        assert_eq!(
            common(&["--direct", "tcp://127.0.0.1:1"]).validate(),
            Ok(())
        );
    }

    #[test]
    fn only_loopback_or_allowed_hosts_are_loaded() {
        let plain = common(&[]);
        assert!(plain.permitted_addr("127.0.0.1", 80).is_ok());
        assert_eq!(
            plain.permitted_addr("192.0.2.1", 80),
            Err(CliError::NotAllowed {
                host: "192.0.2.1".to_owned()
            })
        );
        let allowed = common(&["--allow-host", "192.0.2.1"]);
        assert!(allowed.permitted_addr("192.0.2.1", 80).is_ok());
    }
}
