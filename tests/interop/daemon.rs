//! The listener daemon as users run it, `hycod run --config FILE` (docs/configuration.md), as a
//! child process of an interop test: one hybrid connection served by `hycod relay`, forwarded to
//! a TCP `target` (protocol §5.4) or an `http_target` (protocol §6.7).
//!
//! The configuration file lives in a temporary directory; the connection string, which holds
//! the key, reaches the daemon through `connection_string_env`, never the file or the command
//! line. The daemon logs JSON lines on stderr (`[log] format = "json"`): readiness is its
//! `admin endpoint listening` line plus one `listener online` line per control channel, then
//! `/readyz` must answer 200 with every channel counted. Every wait is bounded and event-driven.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{assert_still_running, Guarded, Relay};

/// Worker threads of the daemon (the test machines have 2 cores).
const WORKERS: usize = 2;
/// Control channels of the hybrid connection: one per worker.
const LISTENERS: usize = 2;
/// How long the daemon may take to log its admin address and bring every channel online.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one admin request may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The variable that carries the connection string to the daemon.
const CONNECTION_STRING_VARIABLE: &str = "HYCOD_INTEROP_CONNECTION_STRING";

/// Where the daemon forwards what the relay hands it.
pub(crate) enum Forward {
    /// Stream mode: each relayed WebSocket becomes a TCP connection to this address.
    Stream(SocketAddr),
    /// HTTP mode: each relayed request goes to this base URL.
    Http(String),
}

/// A running `hycod run`, killed on drop.
pub(crate) struct Daemon {
    process: Guarded,
    admin: SocketAddr,
    /// Every stderr log line read so far, parsed (lines that are not JSON become strings).
    logs: Vec<Value>,
    /// Holds the configuration file until the daemon is gone.
    _config_dir: tempfile::TempDir,
}

/// The strict relay flags of every daemon suite; the Node SDK senders answer the daemon's
/// stream pings, so its 1 s keep-alives stay under the short idle cut.
#[path = "../common/strict_relay.rs"]
mod strict_relay;
pub(crate) use strict_relay::STRICT_RELAY;

impl Daemon {
    /// Starts the daemon serving `hc` on `relay` and returns once every control channel is
    /// online and `/readyz` says so.
    pub(crate) fn start(relay: &Relay, hc: &str, forward: &Forward) -> Daemon {
        let forward_key = match forward {
            Forward::Stream(addr) => format!("target = \"tcp://{addr}\""),
            Forward::Http(url) => format!("http_target = \"{url}\""),
        };
        let config = format!(
            "[runtime]\nworkers = {WORKERS}\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
             [log]\nformat = \"json\"\nlevel = \"info\"\n\n\
             [[hybrid_connection]]\nname = \"{hc}\"\n\
             connection_string_env = \"{CONNECTION_STRING_VARIABLE}\"\n\
             relay_url = \"{}\"\n{forward_key}\nlisteners = {LISTENERS}\n\
             ping_interval = \"1s\"\nstream_ping_interval = \"1s\"\n",
            relay.url()
        );
        let config_dir = tempfile::tempdir().expect("temporary directory");
        let config_path = config_dir.path().join("hycod.toml");
        std::fs::write(&config_path, &config).expect("write the daemon configuration");

        let mut command = Command::new(env!("CARGO_BIN_EXE_hycod"));
        command
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .env(
                CONNECTION_STRING_VARIABLE,
                relay.manage_connection_string(hc),
            )
            // RUST_LOG would override the configured level and could hide the readiness lines.
            .env_remove("RUST_LOG");
        let name = format!("hycod run ({hc})");
        let mut daemon = Daemon {
            process: Guarded::spawn_logging(name, command),
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            logs: Vec::new(),
            _config_dir: config_dir,
        };
        daemon.wait_until_ready(hc, &config);
        daemon
    }

    fn wait_until_ready(&mut self, hc: &str, config: &str) {
        let started = self.wait_for_log("admin endpoint listening", 1, START_TIMEOUT);
        let metrics_url = started[0]
            .get("metrics")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no metrics URL in {}", started[0]));
        self.admin = metrics_url
            .strip_prefix("http://")
            .and_then(|rest| rest.strip_suffix("/metrics"))
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("cannot read the admin address from {metrics_url:?}"));
        let online = self.wait_for_log("listener online", LISTENERS, START_TIMEOUT);
        for line in &online {
            assert_eq!(
                line.get("hybrid_connection").and_then(Value::as_str),
                Some(hc),
                "{line}"
            );
        }
        let (status, body) = self.admin_get("/readyz");
        assert_eq!(
            (status, body.as_str()),
            (
                200,
                format!("{hc} {LISTENERS}/{LISTENERS} listeners online\n").as_str()
            ),
            "/readyz of the daemon started with:\n{config}"
        );
    }

    /// Waits until `count` log lines with `"message": message` have been logged in total;
    /// returns them.
    pub(crate) fn wait_for_log(
        &mut self,
        message: &str,
        count: usize,
        timeout: Duration,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let matching: Vec<Value> = self
                .logs
                .iter()
                .filter(|line| line.get("message").and_then(Value::as_str) == Some(message))
                .cloned()
                .collect();
            if matching.len() >= count {
                return matching;
            }
            match self.process.next_stderr_line(deadline) {
                Ok(line) => self
                    .logs
                    .push(serde_json::from_str(&line).unwrap_or(Value::String(line))),
                Err(why) => {
                    let stderr = self.process.kill_and_stderr();
                    panic!(
                        "{} did not log {count} {message:?} line(s) ({}); it logged:\n{stderr}",
                        self.process.name(),
                        match why {
                            RecvTimeoutError::Timeout => format!("timed out after {timeout:?}"),
                            RecvTimeoutError::Disconnected => "it exited".to_owned(),
                        },
                    );
                }
            }
        }
    }

    /// A GET on the admin endpoint: status and body (it answers once, then closes).
    pub(crate) fn admin_get(&self, path: &str) -> (u16, String) {
        let mut tcp = TcpStream::connect_timeout(&self.admin, ADMIN_TIMEOUT)
            .unwrap_or_else(|e| panic!("cannot connect to the admin endpoint {}: {e}", self.admin));
        tcp.set_read_timeout(Some(ADMIN_TIMEOUT))
            .expect("read timeout");
        write!(tcp, "GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.admin).expect("send");
        let mut text = String::new();
        tcp.read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("reading the admin answer to {path}: {e}"));
        let status = text
            .get(9..12)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP answer to {path}: {text:?}"));
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    /// The sum of the samples of `metric` whose labels include every pair of `labels`.
    pub(crate) fn metric(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        let (status, text) = self.admin_get("/metrics");
        assert_eq!(status, 200, "/metrics answered {status}: {text}");
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .expect("Prometheus text");
        scrape
            .samples
            .iter()
            .filter(|sample| sample.metric == metric)
            .filter(|sample| {
                labels
                    .iter()
                    .all(|(key, value)| sample.labels.get(key) == Some(*value))
            })
            .map(|sample| match sample.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    }

    /// Panics (with the daemon's log) if the daemon is no longer running.
    pub(crate) fn assert_running(&mut self) {
        assert_still_running(&mut self.process);
    }
}
