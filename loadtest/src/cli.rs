//! Command line of `hycod-load` and the bounds every run must respect.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Longest run accepted (warm-up included).
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(600);
/// Highest rate accepted, requests per second.
pub(crate) const MAX_RATE: f64 = 1_000_000.0;
/// Most connections accepted.
pub(crate) const MAX_CONNECTIONS: u32 = 100_000;
/// Most bulk streams accepted.
pub(crate) const MAX_STREAMS: u32 = 1024;
/// Largest bulk write accepted, bytes.
pub(crate) const MAX_CHUNK: usize = 16 * 1024 * 1024;
/// Most re-runs of a failed `--find-max` try.
pub(crate) const MAX_STEP_RETRIES: u32 = 5;

/// Load generator for hycod (open-loop, coordinated-omission-corrected HDR histograms).
#[derive(Parser, Debug)]
#[command(version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
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
    /// Streams pushing data one way (or both) as fast as they can, through a relay or to
    /// `--direct tcp://host:port` (a `serve-bulk` target); reports Gbit/s and, with
    /// `--cpu-pids`, CPU-seconds per GiB of the named processes.
    Bulk {
        #[command(flatten)]
        args: BulkArgs,
    },
    /// Opens `--connections` echo streams, holds them and reports the resident memory each one
    /// costs the process `--rss-pid`.
    Idle {
        #[command(flatten)]
        args: IdleArgs,
    },
    /// A TCP echo target for the baseline and for relayed streams.
    ServeEcho {
        #[arg(long)]
        listen: SocketAddr,
    },
    /// An HTTP/1.1 target that answers every request with its own body, or with
    /// `--response-size` bytes.
    ServeHttp {
        #[arg(long)]
        listen: SocketAddr,
        /// Answer every request with this many bytes instead of its own body.
        #[arg(long)]
        response_size: Option<usize>,
    },
    /// The `bulk` target: the first byte of each connection asks it to discard what it reads
    /// (`U`), write endlessly (`D`) or both (`B`).
    ServeBulk {
        #[arg(long)]
        listen: SocketAddr,
    },
}

/// Where a run sends its load: a relay (as a Hybrid Connections sender) or a direct target.
#[derive(Args, Debug, Clone)]
pub(crate) struct TargetArgs {
    /// The relay, `ws://host:port` or `wss://host:port`.
    #[arg(long)]
    pub relay: Option<String>,
    /// A PEM file of the CA certificates a `wss://` relay's certificate is verified against
    /// (instead of the webpki roots), e.g. a self-hosted relay's own CA.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
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
    /// HTTP CONNECT proxy to the relay, `http://[USER@]HOST:PORT` (no password in it), or
    /// `none`; without it the environment's proxy variables and `NO_PROXY` apply.
    #[arg(long, value_name = "URL|none")]
    pub proxy: Option<String>,
    /// A file holding the password of the `--proxy` user.
    #[arg(long, value_name = "FILE", conflicts_with = "proxy_password_env")]
    pub proxy_password_file: Option<PathBuf>,
    /// An environment variable holding the password of the `--proxy` user.
    #[arg(long, value_name = "VAR")]
    pub proxy_password_env: Option<String>,
}

/// Options of the open-loop modes (`stream`, `http`).
#[derive(Args, Debug, Clone)]
pub(crate) struct Common {
    #[command(flatten)]
    pub target: TargetArgs,
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
    /// Per-request timeout.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw the latency percentile distribution as SVG here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Search for the highest rate sustained with p99 under `--max-p99` and no errors,
    /// starting at `--rate` (doubling, then bisecting).
    #[arg(long)]
    pub find_max: bool,
    /// The p99 bound of `--find-max`.
    #[arg(long, default_value = "5ms", value_parser = parse_duration)]
    pub max_p99: Duration,
    /// Bisection steps of `--find-max` after the first failing rate.
    #[arg(long, default_value_t = 4)]
    pub refine_steps: u32,
    /// Re-runs of a failed `--find-max` try before its rate counts as not sustained (one
    /// noisy try on a shared machine then does not end the search).
    #[arg(long, default_value_t = 1)]
    pub step_retries: u32,
}

/// Options of `bulk`: streams pushing data as fast as they can.
#[derive(Args, Debug, Clone)]
pub(crate) struct BulkArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Streams, each on its own connection.
    #[arg(long, default_value_t = 1)]
    pub streams: u32,
    /// Which way data flows: `up` (to the target), `down` (from it) or `both`.
    #[arg(long, default_value = "up", value_parser = crate::bulk::Direction::parse)]
    pub direction: crate::bulk::Direction,
    /// Bytes per write (and per WebSocket frame when relayed).
    #[arg(long, default_value_t = 64 * 1024)]
    pub chunk: usize,
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Processes whose CPU time (user+sys) is charged per GiB moved: `PID` or `NAME=PID`,
    /// comma-separated (e.g. `relay=123,daemon=456`).
    #[arg(long, value_delimiter = ',', value_parser = crate::procstat::parse_pid)]
    pub cpu_pids: Vec<crate::procstat::NamedPid>,
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Options of `idle`: many open, quiet streams.
#[derive(Args, Debug, Clone)]
pub(crate) struct IdleArgs {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Streams to open and hold.
    #[arg(long, default_value_t = 10_000)]
    pub connections: u32,
    /// Streams being opened at once.
    #[arg(long, default_value_t = 128)]
    pub parallel: u32,
    /// The process whose resident memory (VmRSS) is measured before and after (the daemon).
    #[arg(long)]
    pub rss_pid: Option<u32>,
    /// Bytes each stream sends and gets echoed before it idles (1: a probe; more: a burst
    /// that grows the far end's buffers, as a transfer before a quiet spell would).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=MAX_ECHO_BYTES))]
    pub echo_bytes: u32,
    /// How long the streams stay quiet before the resident memory is read again (the far
    /// end gives grown buffers back after a second of quiet).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub quiet_for: Duration,
    /// Per-stream timeout for opening and the first echo.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The largest `idle --echo-bytes` (64 MiB): the burst is held in memory per stream.
pub(crate) const MAX_ECHO_BYTES: i64 = 64 * 1024 * 1024;

/// Why a run was refused.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CliError {
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
    StreamsOutOfRange { streams: u32 },
    ChunkOutOfRange { chunk: usize },
    MaxP99OutOfRange { max_p99: Duration },
    StepRetriesOutOfRange { retries: u32 },
    CaFileNeedsWss,
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
            Self::StreamsOutOfRange { streams } => {
                write!(f, "--streams {streams} is not within 1..={MAX_STREAMS}")
            }
            Self::ChunkOutOfRange { chunk } => {
                write!(f, "--chunk {chunk} is not within 1..={MAX_CHUNK}")
            }
            Self::MaxP99OutOfRange { max_p99 } => {
                write!(f, "--max-p99 {max_p99:?} must be above zero")
            }
            Self::StepRetriesOutOfRange { retries } => {
                write!(
                    f,
                    "--step-retries {retries} is not within 0..={MAX_STEP_RETRIES}"
                )
            }
            Self::CaFileNeedsWss => f.write_str("--ca-file needs a wss:// --relay"),
        }
    }
}

impl std::error::Error for CliError {}

/// Parses `10s`, `500ms`, `2m` or a plain number of seconds.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
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

fn check_duration(duration: Duration, warmup: Duration) -> Result<(), CliError> {
    let total = duration.saturating_add(warmup);
    if total > MAX_DURATION {
        return Err(CliError::DurationTooLong { total });
    }
    Ok(())
}

fn check_connections(connections: u32) -> Result<(), CliError> {
    if connections == 0 || connections > MAX_CONNECTIONS {
        return Err(CliError::ConnectionsOutOfRange { connections });
    }
    Ok(())
}

impl Common {
    /// Checks the bounds of a run.
    pub(crate) fn validate(&self) -> Result<(), CliError> {
        check_duration(self.duration, self.warmup)?;
        if !(self.rate > 0.0 && self.rate <= MAX_RATE) {
            return Err(CliError::RateOutOfRange { rate: self.rate });
        }
        check_connections(self.connections)?;
        if self.threads == 0 || self.threads > self.connections {
            return Err(CliError::ThreadsOutOfRange {
                threads: self.threads,
                connections: self.connections,
            });
        }
        if self.find_max && self.max_p99.is_zero() {
            return Err(CliError::MaxP99OutOfRange {
                max_p99: self.max_p99,
            });
        }
        if self.step_retries > MAX_STEP_RETRIES {
            return Err(CliError::StepRetriesOutOfRange {
                retries: self.step_retries,
            });
        }
        self.target.validate()
    }
}

impl BulkArgs {
    /// Checks the bounds of a bulk run.
    pub(crate) fn validate(&self) -> Result<(), CliError> {
        check_duration(self.duration, self.warmup)?;
        if self.streams == 0 || self.streams > MAX_STREAMS {
            return Err(CliError::StreamsOutOfRange {
                streams: self.streams,
            });
        }
        if self.chunk == 0 || self.chunk > MAX_CHUNK {
            return Err(CliError::ChunkOutOfRange { chunk: self.chunk });
        }
        self.target.validate()
    }
}

impl IdleArgs {
    /// Checks the bounds of an idle run.
    pub(crate) fn validate(&self) -> Result<(), CliError> {
        check_connections(self.connections)?;
        check_connections(self.parallel)?;
        self.target.validate()
    }
}

impl TargetArgs {
    /// Checks that exactly one target is named, and a relay with its hybrid connection.
    pub(crate) fn validate(&self) -> Result<(), CliError> {
        match (&self.relay, &self.direct) {
            (None, None) => Err(CliError::NoTarget),
            (Some(_), Some(_)) => Err(CliError::BothTargets),
            (Some(_), None) if self.hybrid_connection.is_none() => {
                Err(CliError::MissingHybridConnection)
            }
            (Some(relay), None) if self.ca_file.is_some() && !relay.starts_with("wss://") => {
                Err(CliError::CaFileNeedsWss)
            }
            (None, Some(_)) if self.ca_file.is_some() => Err(CliError::CaFileNeedsWss),
            _ => Ok(()),
        }
    }

    /// Resolves `host:port` and checks it is loopback or named by `--allow-host`.
    pub(crate) fn permitted_addr(&self, host: &str, port: u16) -> Result<SocketAddr, CliError> {
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
        let plain = common(&[]).target;
        assert!(plain.permitted_addr("127.0.0.1", 80).is_ok());
        assert_eq!(
            plain.permitted_addr("192.0.2.1", 80),
            Err(CliError::NotAllowed {
                host: "192.0.2.1".to_owned()
            })
        );
        let allowed = common(&["--allow-host", "192.0.2.1"]).target;
        assert!(allowed.permitted_addr("192.0.2.1", 80).is_ok());
    }

    fn bulk(extra: &[&str]) -> BulkArgs {
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            args: BulkArgs,
        }
        let mut args = vec!["t", "--direct", "tcp://127.0.0.1:1"];
        args.extend_from_slice(extra);
        T::parse_from(args).args
    }

    #[test]
    fn bulk_runs_are_bounded() {
        assert_eq!(bulk(&[]).validate(), Ok(()));
        assert_eq!(
            bulk(&["--streams", "0"]).validate(),
            Err(CliError::StreamsOutOfRange { streams: 0 })
        );
        assert_eq!(
            bulk(&["--chunk", "0"]).validate(),
            Err(CliError::ChunkOutOfRange { chunk: 0 })
        );
        assert!(matches!(
            bulk(&["--duration", "11m"]).validate(),
            Err(CliError::DurationTooLong { .. })
        ));
        let parsed = bulk(&["--direction", "both", "--cpu-pids", "relay=1,2"]);
        assert_eq!(parsed.direction, crate::bulk::Direction::Both);
        assert_eq!(parsed.cpu_pids.len(), 2);
        assert_eq!(parsed.cpu_pids[0].name, "relay");
    }

    #[test]
    fn idle_runs_are_bounded() {
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            args: IdleArgs,
        }
        let idle = |extra: &[&str]| {
            let mut args = vec!["t", "--direct", "tcp://127.0.0.1:1"];
            args.extend_from_slice(extra);
            T::parse_from(args).args
        };
        assert_eq!(idle(&[]).validate(), Ok(()));
        assert_eq!(
            idle(&["--connections", "100001"]).validate(),
            Err(CliError::ConnectionsOutOfRange {
                connections: 100_001
            })
        );
        assert_eq!(
            idle(&["--parallel", "0"]).validate(),
            Err(CliError::ConnectionsOutOfRange { connections: 0 })
        );
        assert_eq!(idle(&[]).echo_bytes, 1);
        assert_eq!(idle(&["--echo-bytes", "1048576"]).echo_bytes, 1_048_576);
        let parse = |value: &str| {
            T::try_parse_from(["t", "--direct", "tcp://127.0.0.1:1", "--echo-bytes", value])
                .map(|t| t.args.echo_bytes)
        };
        let refused = |value: &str| parse(value).unwrap_err().to_string();
        assert!(refused("0").contains("--echo-bytes"), "{}", refused("0"));
        assert!(
            refused("67108865").contains("--echo-bytes"),
            "{}",
            refused("67108865")
        );
        assert_eq!(parse("67108864").ok(), Some(64 * 1024 * 1024));
    }

    #[test]
    fn find_max_needs_a_positive_p99_bound() {
        let zero = common(&[
            "--direct",
            "http://127.0.0.1:1/",
            "--find-max",
            "--max-p99",
            "0ms",
        ]);
        assert_eq!(
            zero.validate(),
            Err(CliError::MaxP99OutOfRange {
                max_p99: Duration::ZERO
            })
        );
    }

    #[test]
    fn find_max_retries_are_bounded() {
        let args = |retries: &str| {
            common(&[
                "--direct",
                "http://127.0.0.1:1/",
                "--find-max",
                "--step-retries",
                retries,
            ])
        };
        assert_eq!(args("5").validate(), Ok(()));
        assert_eq!(
            args("6").validate(),
            Err(CliError::StepRetriesOutOfRange { retries: 6 })
        );
        assert_eq!(common(&["--direct", "tcp://127.0.0.1:1"]).step_retries, 1);
    }

    #[test]
    fn a_ca_file_needs_a_wss_relay() {
        let with_ca = |target: &[&str]| {
            let mut args = target.to_vec();
            args.extend_from_slice(&["--ca-file", "ca.pem"]);
            common(&args).validate()
        };
        assert_eq!(
            with_ca(&["--relay", "wss://127.0.0.1:1", "--hybrid-connection", "a"]),
            Ok(())
        );
        assert_eq!(
            with_ca(&["--relay", "ws://127.0.0.1:1", "--hybrid-connection", "a"]),
            Err(CliError::CaFileNeedsWss)
        );
        assert_eq!(
            with_ca(&["--direct", "http://127.0.0.1:1/"]),
            Err(CliError::CaFileNeedsWss)
        );
    }
}
