//! `hycod demo`: the whole product on loopback in one process, with no Azure account. It starts
//! the self-hosted relay (protocol Appendix A), the listener daemon (Appendix B), a sample ERP web
//! service and a TCP echo service as the on-prem targets, then sends relayed HTTP requests
//! (protocol §7.2) and WebSocket streams (§7.1) through relay and daemon, checks every answer and
//! reports what happened with a latency histogram.
//!
//! - [`credentials`]: the per-run random key and the senders' tokens;
//! - [`setup`]: the relay's and the daemon's configuration;
//! - [`erp`]: the sample ERP API (which request gets which answer), pure;
//! - [`upstream`], [`echo`], [`services`]: the on-prem services and their thread;
//! - [`http_io`]: reading HTTP/1.1 heads and bodies off a socket;
//! - [`workload`]: what the senders send;
//! - [`http_sender`], [`stream_sender`], [`traffic`]: the senders;
//! - [`metrics_probe`]: reading the daemon's `/metrics` afterwards;
//! - [`report`]: the printed text.
//!
//! The relay, daemon and service threads run until the process ends; the demo is a command,
//! not a library service, so it never tears them down.

pub(crate) mod credentials;
pub(crate) mod echo;
pub(crate) mod erp;
pub(crate) mod error;
pub mod http_io;
pub(crate) mod http_sender;
pub(crate) mod metrics_probe;
pub(crate) mod report;
pub(crate) mod services;
pub(crate) mod setup;
pub mod stream_sender;
pub(crate) mod traffic;
pub(crate) mod upstream;
pub(crate) mod workload;

use std::time::{Duration, SystemTime};

pub use error::DemoError;

use crate::daemon::{DaemonHandle, DaemonOptions};
use crate::relay::RelayHandle;
use crate::secret::Secret;
use report::Started;
use traffic::{TrafficPlan, TrafficResults};

/// How long the daemon's listeners get to come online.
pub const LISTENERS_ONLINE_TIMEOUT: Duration = Duration::from_secs(10);

/// Lifetime of the token printed for poking the running demo by hand.
pub const POKE_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// How much traffic to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoOptions {
    pub requests: usize,
    pub streams: usize,
}

/// Everything the demo started, running.
pub struct Stack {
    key: Secret,
    relay: RelayHandle,
    daemon: DaemonHandle,
    /// The addresses, for the report.
    pub started: Started,
}

impl Stack {
    /// Starts the services, the relay and the daemon, and waits until every listener is online.
    pub fn start() -> Result<Stack, DemoError> {
        let key = credentials::random_key();
        let on_prem = services::start()?;
        let relay = crate::relay::start(setup::relay_config(&key)).map_err(DemoError::Relay)?;
        let config = setup::daemon_config(&relay.url, &key, &on_prem).map_err(DemoError::Config)?;
        let options = DaemonOptions {
            upstream_deadline: setup::UPSTREAM_DEADLINE,
            ..DaemonOptions::default()
        };
        let daemon = crate::daemon::start(&config, options).map_err(DemoError::Daemon)?;
        if !daemon.status.wait_all_online(LISTENERS_ONLINE_TIMEOUT) {
            return Err(DemoError::ListenersOffline {
                waited: LISTENERS_ONLINE_TIMEOUT,
                readiness: daemon.status.readiness(),
            });
        }
        let started = Started {
            relay_url: relay.url.clone(),
            relay_admin: relay.admin_addr,
            daemon_workers: config.runtime.workers.count().get(),
            daemon_admin: daemon.admin_addr,
            listeners: daemon.status.readiness(),
            upstream: on_prem.upstream,
            echo: on_prem.echo,
        };
        Ok(Stack {
            key,
            relay,
            daemon,
            started,
        })
    }

    /// Sends the traffic of `options` through the running stack.
    pub fn send(&self, options: DemoOptions) -> Result<TrafficResults, DemoError> {
        traffic::run(&TrafficPlan {
            relay: self.relay.local_addr,
            relay_url: self.relay.url.clone(),
            key: self.key.clone(),
            requests: options.requests,
            streams: options.streams,
            now: SystemTime::now(),
        })
    }

    /// The daemon's view of the run, from its `/metrics`.
    pub fn daemon_counts(
        &self,
    ) -> Option<Result<metrics_probe::DaemonCounts, metrics_probe::ProbeError>> {
        let admin = self.daemon.admin_addr?;
        Some(metrics_probe::fetch(admin).map(|text| metrics_probe::counts(&text)))
    }

    /// How to poke the running stack by hand, with tokens valid for a day.
    pub fn poke(&self) -> String {
        let now = SystemTime::now();
        let tokens = report::PokeTokens {
            http: credentials::sender_token(&self.key, setup::HTTP_HC, now, POKE_TOKEN_TTL),
            stream: credentials::sender_token(&self.key, setup::STREAM_HC, now, POKE_TOKEN_TTL),
            valid_for: POKE_TOKEN_TTL,
        };
        report::poke(
            self.relay.local_addr,
            &tokens,
            self.started.metrics_url().as_deref(),
        )
    }

    /// Serves until the process is stopped (Ctrl-C).
    pub fn serve_forever(self) {
        for worker in self.daemon.workers {
            let _ = worker.join();
        }
        for worker in self.relay.workers {
            let _ = worker.join();
        }
    }
}
