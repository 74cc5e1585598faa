//! The listener daemon (`hycod run`): N pinned workers, each with its own control channels
//! for every configured hybrid connection, serving the streams and requests that arrive on
//! them on the same worker (architecture §1–§3, protocol Appendix B); and, for every configured
//! forward, accepting local TCP connections and carrying them through the relay as a sender
//! (protocol §7.1).

pub(crate) mod azbridge;
mod forward;
pub mod listener;
pub mod metrics;
mod plan;
pub(crate) mod process;
mod tracker;

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;
use std::time::Duration;

use self::process::admin::SnapshotRequest;
use self::process::status::DaemonStatus;
use self::process::worker::{WorkerCommand, WorkerSetup};
use crate::config::Config;
use crate::proto::hc::listener::ListenerConfig;
use crate::runtime::workers;
use crate::tls::{client_config, TlsSetupError, TrustRoots};

pub use self::forward::setup::ForwardSetupError;
pub use self::process::handle::{DaemonHandle, ReloadError, ReloadReport};
pub use self::process::status::Phase;

/// Settings the configuration file does not carry (tests shorten them).
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub listener: ListenerConfig,
    /// The daemon answers 504 itself when the target has not answered by then (< relay's 60 s).
    pub upstream_deadline: Duration,
    /// On reload, how long the old channels of a changed hybrid connection keep taking work
    /// while its new channels come online.
    pub handover_timeout: Duration,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        Self {
            listener: ListenerConfig::default(),
            upstream_deadline: Duration::from_secs(55),
            handover_timeout: Duration::from_secs(10),
        }
    }
}

/// Why the daemon could not start.
#[derive(Debug)]
pub enum StartError {
    Tls {
        hybrid_connection: String,
        error: TlsSetupError,
    },
    Admin {
        addr: SocketAddr,
        error: io::Error,
    },
    /// Forward `index` (named `name`) could not be set up.
    Forward {
        index: usize,
        name: String,
        error: ForwardSetupError,
    },
    Spawn(io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tls {
                hybrid_connection,
                error,
            } => write!(f, "hybrid_connection {hybrid_connection}: {error}"),
            Self::Admin { addr, error } => write!(f, "admin.listen {addr}: {error}"),
            Self::Forward { index, name, error } => {
                write!(f, "forward[{index}].{} ({name}): {error}", error.key())
            }
            Self::Spawn(e) => write!(f, "cannot start worker threads: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Warns when `RLIMIT_NOFILE` is below what the stream and request maxima allow
/// ([`crate::config::limits::descriptors_needed`]): the daemon would reject streams with 503
/// (EMFILE) before reaching them.
fn warn_if_descriptors_are_short(config: &Config, workers: usize) {
    let per_hc: Vec<_> = config
        .hybrid_connections
        .iter()
        .map(|hc| hc.limits)
        .collect();
    let needed = crate::config::limits::descriptors_needed(&per_hc, workers);
    let current = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    if let Some(limit) = current.filter(|&limit| limit < needed) {
        tracing::warn!(limit, needed,
            "RLIMIT_NOFILE is below what [limits] allows; raise LimitNOFILE or lower the max_streams_*/max_requests_* limits, or streams beyond it are rejected with 503");
    }
}

/// Starts the workers and the admin endpoint; returns at once (listeners come online in the
/// background and reconnect forever; watch [`DaemonHandle::status`]).
pub fn start(config: &Config, options: DaemonOptions) -> Result<DaemonHandle, StartError> {
    let worker_count = config.runtime.workers.count();
    if let Err(error) = crate::runtime::fd_reserve::hold() {
        tracing::warn!(%error, "no spare file descriptor for rejections when out of descriptors");
    }
    warn_if_descriptors_are_short(config, worker_count.get());
    let webpki = client_config(&TrustRoots::WebPki).map_err(|error| StartError::Tls {
        hybrid_connection: String::new(),
        error,
    })?;
    let plans = config
        .hybrid_connections
        .iter()
        .map(|hc| {
            plan::plan(hc, worker_count, &webpki).map_err(|error| StartError::Tls {
                hybrid_connection: hc.name.clone(),
                error,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let forwards = config
        .forwards
        .iter()
        .enumerate()
        .map(|(index, forward)| {
            forward::setup::prepare(forward, worker_count, &webpki, None).map_err(|error| {
                StartError::Forward {
                    index,
                    name: forward.name.clone(),
                    error,
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let status = Arc::new(DaemonStatus::default());
    let admin = match config.admin.listen {
        Some(addr) => Some(bind_admin(addr)?),
        None => None,
    };
    let admin_addr = admin.as_ref().map(|(_, a)| *a);
    let mut admin = admin.map(|(l, _)| l);
    let (snapshot_txs, snapshot_rxs): (Vec<_>, Vec<_>) = (0..worker_count.get())
        .map(|_| flume::unbounded::<SnapshotRequest>())
        .unzip();
    let (command_txs, command_rxs): (Vec<_>, Vec<_>) = (0..worker_count.get())
        .map(|_| flume::unbounded::<WorkerCommand>())
        .unzip();
    let all_workers = Arc::new(snapshot_txs);
    let setups: Vec<WorkerSetup> = command_rxs
        .into_iter()
        .zip(snapshot_rxs)
        .enumerate()
        .map(|(index, (commands, snapshots))| WorkerSetup {
            index,
            alive: status.worker_alive(),
            commands,
            options: options.clone(),
            status: status.clone(),
            snapshots: admin_addr.map(|_| snapshots),
            admin: if index == 0 { admin.take() } else { None },
            admin_head_timeout: config.admin.head_timeout,
            all_workers: all_workers.clone(),
        })
        .collect();
    let setups = Arc::new(std::sync::Mutex::new(
        setups.into_iter().map(Some).collect::<Vec<_>>(),
    ));
    let handles = workers::spawn("hycod", worker_count, move |index| {
        let setup = take_slot(&setups, index);
        async move {
            if let Some(setup) = setup {
                process::worker::run(setup).await;
            }
        }
    })
    .map_err(StartError::Spawn)?;
    let mut handle = DaemonHandle::new(
        status,
        admin_addr,
        handles,
        command_txs,
        config.clone(),
        options,
        webpki,
    );
    for plan in plans {
        handle.launch(plan);
    }
    for forward in forwards {
        handle.launch_forward(forward);
    }
    handle
        .status
        .set_ready_without_listeners(!config.forwards.is_empty());
    Ok(handle)
}

/// Binds the admin endpoint's socket (non-blocking, for the worker that serves it).
fn bind_admin(addr: SocketAddr) -> Result<(StdListener, SocketAddr), StartError> {
    forward::setup::bind(addr).map_err(|error| StartError::Admin { addr, error })
}

/// Takes worker `index`'s share of something prepared for all workers.
fn take_slot<T>(slots: &std::sync::Mutex<Vec<Option<T>>>, index: usize) -> Option<T> {
    slots
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_mut(index)
        .and_then(Option::take)
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Values the daemon's unit tests share.

    use monoio::io::AsyncReadRent;
    use monoio::net::UnixStream;

    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    use super::listener::admission::Admission;
    use super::listener::context::HcContext;
    use crate::config::{Config, HttpTarget, Limits};
    use crate::io::ws_client::Dialer;
    use crate::metrics::Shard;
    use crate::tls::{client_config, TrustRoots};

    /// A hybrid connection context for `http_target` (when given), entity path `hyco`.
    pub(crate) fn context(target: Option<&str>) -> HcContext {
        let tls = client_config(&TrustRoots::WebPki).expect("tls");
        HcContext {
            name: "test".into(),
            entity_path: "hyco".into(),
            target: None,
            port_targets: None,
            http_target: target.map(http_target),
            dialer: Dialer {
                tls: tls.clone(),
                proxy: None,
                connect_timeout: Duration::from_secs(5),
                resolver: Default::default(),
            },
            rendezvous: crate::proto::hc::rendezvous_address::RendezvousPolicy::new(
                "ws://127.0.0.1",
                &[],
            ),
            stream_ping_interval: None,
            upstream_tls: tls,
            upstream_pool: RefCell::new(Vec::new()),
            upstream_deadline: Duration::from_secs(5),
            request_buffer: crate::config::DEFAULT_REQUEST_BUFFER,
            metrics: Rc::new(RefCell::new(Shard::new())),
            series: Default::default(),
            limits: Limits::default(),
            admission: Admission::standalone(&Limits::default()),
            detached: std::cell::Cell::new(false),
        }
    }

    /// Everything the peer of `stream` wrote until it closed.
    pub(crate) async fn read_to_end(mut stream: UnixStream) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let (result, chunk) = stream.read(Vec::with_capacity(64 * 1024)).await;
            match result.expect("read") {
                0 => return out,
                _ => out.extend_from_slice(&chunk),
            }
        }
    }

    /// An `http_target` parsed as the configuration parses it.
    pub(crate) fn http_target(url: &str) -> HttpTarget {
        let text = format!(
            "[[hybrid_connection]]\nname = \"t\"\nconnection_string = \"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=a2V5;EntityPath=hyco\"\nhttp_target = \"{url}\"\n"
        );
        let config = Config::from_toml_str(&text, std::path::Path::new("."))
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        config.hybrid_connections[0]
            .http_target
            .clone()
            .expect("http_target set")
    }
}
