//! The listener daemon (`hycod run`): N pinned workers, each with its own control channels
//! for every configured hybrid connection, serving the streams and requests that arrive on
//! them on the same worker (design.md §1–§3, spec Appendix B).

pub mod admin;
pub mod context;
mod control;
pub mod http;
pub mod metrics;
pub mod status;
pub mod stream;
pub mod upstream;

use std::cell::RefCell;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::num::NonZeroUsize;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use self::admin::SnapshotRequest;
use self::context::HcContext;
use self::control::ChannelSpec;
use self::status::DaemonStatus;
use crate::config::{Config, HybridConnection, Relay};
use crate::io::ws_client::Dialer;
use crate::metrics::Shard;
use crate::proto::hc::listener::ListenerConfig;
use crate::runtime::workers;
use crate::tls::{client_config, TlsSetupError, TrustRoots};

/// Settings the configuration file does not carry (tests shorten them).
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub listener: ListenerConfig,
    /// The daemon answers 504 itself when the target has not answered by then (< relay's 60 s).
    pub upstream_deadline: Duration,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        Self {
            listener: ListenerConfig::default(),
            upstream_deadline: Duration::from_secs(55),
        }
    }
}

/// A running daemon.
pub struct DaemonHandle {
    pub status: Arc<DaemonStatus>,
    pub admin_addr: Option<SocketAddr>,
    pub workers: Vec<JoinHandle<()>>,
    /// Dropping it stops every control channel.
    shutdown: Option<flume::Sender<()>>,
}

impl DaemonHandle {
    /// Takes every listener offline and lets the workers end.
    pub fn stop(&mut self) {
        self.shutdown = None;
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
            Self::Spawn(e) => write!(f, "cannot start worker threads: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// One hybrid connection's settings shared (read-only) by all workers.
#[derive(Clone)]
struct HcPlan {
    config: HybridConnection,
    dialer: Dialer,
    relay_base: String,
    channels: NonZeroUsize,
}

fn plan(
    hc: &HybridConnection,
    workers: NonZeroUsize,
    webpki: &Arc<crate::tls::ClientConfig>,
) -> Result<HcPlan, StartError> {
    let (relay_base, tls) = match &hc.relay {
        Relay::Azure => (
            format!("wss://{}", hc.connection_string.namespace_host()),
            webpki.clone(),
        ),
        Relay::SelfHosted { url, ca_file } => {
            let tls = match ca_file {
                Some(file) => {
                    client_config(&TrustRoots::CaFile(file.clone())).map_err(|error| {
                        StartError::Tls {
                            hybrid_connection: hc.name.clone(),
                            error,
                        }
                    })?
                }
                None => webpki.clone(),
            };
            (url.as_str().trim_end_matches('/').to_owned(), tls)
        }
    };
    Ok(HcPlan {
        config: hc.clone(),
        dialer: Dialer {
            tls,
            proxy: hc.proxy.as_ref().map(|p| (p.host.clone(), p.port)),
            connect_timeout: Duration::from_secs(30),
        },
        relay_base,
        channels: hc.listener_count(workers),
    })
}

/// Starts the workers and the admin endpoint; returns at once (listeners come online in the
/// background and reconnect forever; watch [`DaemonHandle::status`]).
pub fn start(config: &Config, options: DaemonOptions) -> Result<DaemonHandle, StartError> {
    let worker_count = config.runtime.workers.count();
    let webpki = client_config(&TrustRoots::WebPki).map_err(|error| StartError::Tls {
        hybrid_connection: String::new(),
        error,
    })?;
    let plans = config
        .hybrid_connections
        .iter()
        .map(|hc| plan(hc, worker_count, &webpki))
        .collect::<Result<Vec<_>, _>>()?;
    let status = Arc::new(DaemonStatus::default());
    // Channel k of a hybrid connection runs on worker k % workers.
    let mut assignments: Vec<Vec<(usize, status::ChannelStatus, String)>> =
        vec![Vec::new(); worker_count.get()];
    for (plan_index, plan) in plans.iter().enumerate() {
        for k in 0..plan.channels.get() {
            let slot = status.add_channel(&plan.config.name);
            let tracking = format!("{}-{}-{:08x}", plan.config.name, k, fastrand::u32(..));
            assignments[k % worker_count.get()].push((plan_index, slot, tracking));
        }
    }
    let admin = match config.admin.listen {
        Some(addr) => {
            let l = StdListener::bind(addr).map_err(|error| StartError::Admin { addr, error })?;
            l.set_nonblocking(true)
                .map_err(|error| StartError::Admin { addr, error })?;
            let bound = l
                .local_addr()
                .map_err(|error| StartError::Admin { addr, error })?;
            Some((l, bound))
        }
        None => None,
    };
    let admin_addr = admin.as_ref().map(|(_, a)| *a);
    let admin = Arc::new(std::sync::Mutex::new(admin.map(|(l, _)| l)));
    let (snapshot_txs, snapshot_rxs): (Vec<_>, Vec<_>) = (0..worker_count.get())
        .map(|_| flume::unbounded::<SnapshotRequest>())
        .unzip();
    let snapshot_txs = Arc::new(snapshot_txs);
    let snapshot_rxs = Arc::new(std::sync::Mutex::new(
        snapshot_rxs.into_iter().map(Some).collect::<Vec<_>>(),
    ));
    let assignments = Arc::new(std::sync::Mutex::new(
        assignments.into_iter().map(Some).collect::<Vec<_>>(),
    ));
    let (shutdown_tx, shutdown) = flume::bounded::<()>(0);
    let plans = Arc::new(plans);
    let handles = workers::spawn("hycod", worker_count, {
        let status = status.clone();
        move |worker| {
            let mine = take_slot(&assignments, worker).unwrap_or_default();
            let snapshots = take_slot(&snapshot_rxs, worker);
            let admin = if worker == 0 {
                admin.lock().unwrap_or_else(|p| p.into_inner()).take()
            } else {
                None
            };
            let plans = plans.clone();
            let options = options.clone();
            let shutdown = shutdown.clone();
            let snapshot_txs = snapshot_txs.clone();
            let status = status.clone();
            async move {
                run_worker(
                    worker,
                    &plans,
                    mine,
                    options,
                    snapshots,
                    admin,
                    snapshot_txs,
                    status,
                    shutdown,
                )
                .await;
            }
        }
    })
    .map_err(StartError::Spawn)?;
    Ok(DaemonHandle {
        status,
        admin_addr,
        workers: handles,
        shutdown: Some(shutdown_tx),
    })
}

/// Takes worker `index`'s share of something prepared for all workers.
fn take_slot<T>(slots: &std::sync::Mutex<Vec<Option<T>>>, index: usize) -> Option<T> {
    slots
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get_mut(index)
        .and_then(Option::take)
}

#[allow(clippy::too_many_arguments)]
async fn run_worker(
    worker: usize,
    plans: &[HcPlan],
    channels: Vec<(usize, status::ChannelStatus, String)>,
    options: DaemonOptions,
    snapshots: Option<flume::Receiver<SnapshotRequest>>,
    admin: Option<StdListener>,
    all_workers: Arc<Vec<flume::Sender<SnapshotRequest>>>,
    status: Arc<DaemonStatus>,
    shutdown: flume::Receiver<()>,
) {
    let shard = Rc::new(RefCell::new(Shard::new()));
    let upstream_tls = match client_config(&TrustRoots::WebPki) {
        Ok(tls) => tls,
        Err(e) => {
            tracing::error!(worker, error = %e, "no TLS configuration for upstream targets");
            return;
        }
    };
    let contexts: Vec<Rc<HcContext>> = plans
        .iter()
        .map(|plan| {
            Rc::new(HcContext {
                name: plan.config.name.clone(),
                entity_path: plan.config.entity_path.clone(),
                target: plan.config.target.clone(),
                http_target: plan.config.http_target.clone(),
                dialer: plan.dialer.clone(),
                upstream_tls: upstream_tls.clone(),
                upstream_pool: RefCell::new(Vec::new()),
                upstream_deadline: options.upstream_deadline,
                metrics: shard.clone(),
            })
        })
        .collect();
    // Every hybrid connection's online gauge exists from the start, at 0 until a channel is up.
    for hc in &contexts {
        hc.gauge_add(&self::metrics::LISTENER_ONLINE, 0);
    }
    if let Some(snapshots) = snapshots {
        let shard = shard.clone();
        monoio::spawn(async move {
            while let Ok(reply) = snapshots.recv_async().await {
                let _ = reply.send(shard.borrow().snapshot());
            }
        });
    }
    if let Some(admin) = admin {
        match monoio::net::TcpListener::from_std(admin) {
            Ok(listener) => {
                monoio::spawn(admin::serve(listener, all_workers, status));
            }
            Err(e) => tracing::error!(error = %e, "cannot serve the admin endpoint"),
        }
    }
    let mut tasks = Vec::new();
    for (plan_index, slot, tracking_id) in channels {
        let plan = &plans[plan_index];
        let spec = ChannelSpec {
            relay_base: plan.relay_base.clone(),
            namespace_host: plan.config.connection_string.namespace_host().to_owned(),
            credential: plan.config.connection_string.credential().clone(),
            token_ttl: plan.config.token_ttl,
            tracking_id,
            listener: options.listener,
        };
        tasks.push(monoio::spawn(control::run(
            contexts[plan_index].clone(),
            spec,
            slot,
            shutdown.clone(),
        )));
    }
    for task in tasks {
        task.await;
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Values the daemon's unit tests share.

    use monoio::io::AsyncReadRent;
    use monoio::net::UnixStream;

    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    use super::context::HcContext;
    use crate::config::{Config, HttpTarget};
    use crate::io::ws_client::Dialer;
    use crate::metrics::Shard;
    use crate::tls::{client_config, TrustRoots};

    /// A hybrid connection context for `http_target` (when given), entity path `hyco`.
    pub fn context(target: Option<&str>) -> HcContext {
        let tls = client_config(&TrustRoots::WebPki).expect("tls");
        HcContext {
            name: "test".into(),
            entity_path: "hyco".into(),
            target: None,
            http_target: target.map(http_target),
            dialer: Dialer {
                tls: tls.clone(),
                proxy: None,
                connect_timeout: Duration::from_secs(5),
            },
            upstream_tls: tls,
            upstream_pool: RefCell::new(Vec::new()),
            upstream_deadline: Duration::from_secs(5),
            metrics: Rc::new(RefCell::new(Shard::new())),
        }
    }

    /// Everything the peer of `stream` wrote until it closed.
    pub async fn read_to_end(mut stream: UnixStream) -> Vec<u8> {
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
    pub fn http_target(url: &str) -> HttpTarget {
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
