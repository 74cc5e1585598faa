//! One daemon worker (architecture §1, §3): a monoio runtime that runs the control channels the
//! main thread assigns to it and serves the streams and requests arriving on them. The main
//! thread steers it with [`WorkerCommand`]s: start or stop the channels of one hybrid
//! connection or the accept loop of one forward (start-up and reload), answer liveness and
//! in-flight questions, and drain.
//!
//! A worker's future ends once it is draining and both its control channels and its in-flight
//! streams and requests are done, or the drain deadline passes.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::TcpListener as StdListener;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use super::admin::{self, SnapshotRequest};
use super::status::{ChannelStatus, DaemonStatus, WorkerAlive};
use crate::daemon::forward::{self, ForwardContext};
use crate::daemon::listener::admission::{Admission, WorkerCounts};
use crate::daemon::listener::context::HcContext;
use crate::daemon::listener::control::{self, ChannelSpec};
use crate::daemon::listener::hc_series::Gauge;
use crate::daemon::metrics::{RELOADS, RELOAD_FAILURES, WORKER_INFO};
use crate::daemon::plan::{ForwardPlan, HcPlan};
use crate::daemon::tracker::Tracker;
use crate::daemon::DaemonOptions;
use crate::metrics::Shard;
use crate::proto::hc::listener::ListenerConfig;
use crate::proto::hc::rendezvous_address::RendezvousPolicy;
use crate::runtime::io_driver::{fallback_reason, Fallback, IoDriver, NO_FALLBACK};
use crate::runtime::workers::current_driver;
use crate::tls::{client_config, TrustRoots};

/// Identifies one start of a hybrid connection's channels or of a forward's accept loops; a
/// replaced one gets a new one, so its old and new tasks can be told apart.
pub(crate) type Incarnation = u64;

/// What the main thread asks of a worker.
pub(crate) enum WorkerCommand {
    /// Open these control channels of `plan` on this worker.
    Start {
        incarnation: Incarnation,
        plan: Arc<HcPlan>,
        channels: Vec<(ChannelStatus, String)>,
    },
    /// Accept on `listener` (this worker's duplicate of the forward's socket) for `plan`.
    StartForward {
        incarnation: Incarnation,
        plan: Arc<ForwardPlan>,
        listener: StdListener,
    },
    /// Close the control channels or accept loop of this incarnation; its streams, requests
    /// and forwarded connections run on.
    Stop(Incarnation),
    /// Answer at once (the watchdog's liveness check).
    Ping(flume::Sender<()>),
    /// Answer with the streams and requests in flight on this worker.
    InFlight(flume::Sender<usize>),
    /// Count a configuration reload (worker 0 holds the daemon-wide counters); answers on
    /// `counted` once the counter moved.
    RecordReload {
        applied: bool,
        counted: flume::Sender<()>,
    },
    /// Close every control channel and end once in-flight work is done or at `deadline`.
    Drain { deadline: Instant },
}

/// What a worker is given when it starts.
pub(crate) struct WorkerSetup {
    pub index: usize,
    /// Counts this worker as running until the worker ends.
    pub alive: WorkerAlive,
    pub commands: flume::Receiver<WorkerCommand>,
    pub options: DaemonOptions,
    pub status: Arc<DaemonStatus>,
    /// This worker's metrics requests (None when the admin endpoint is off).
    pub snapshots: Option<flume::Receiver<SnapshotRequest>>,
    /// The admin endpoint's socket, on the worker that serves it.
    pub admin: Option<StdListener>,
    /// How long an admin client has to send its request head (`[admin] head_timeout`).
    pub admin_head_timeout: std::time::Duration,
    /// Every worker's metrics queue, for the admin endpoint.
    pub all_workers: Arc<Vec<flume::Sender<SnapshotRequest>>>,
}

/// A worker's state between commands.
struct Worker {
    index: usize,
    options: DaemonOptions,
    shard: Rc<RefCell<Shard>>,
    upstream_tls: Arc<crate::tls::ClientConfig>,
    /// The stop signal of each running incarnation's channels or accept loop (dropping it
    /// stops them).
    running: HashMap<Incarnation, flume::Sender<()>>,
    /// Control channel and accept loop tasks, including stopped channels still finishing
    /// their requests.
    channels: Tracker,
    /// Streams, requests and forwarded connections in flight.
    work: Tracker,
    /// Streams and requests in flight on this worker, against the per-worker maxima.
    counts: WorkerCounts,
}

/// Runs one worker until it has drained (or its handle is gone and it has drained).
pub(crate) async fn run(setup: WorkerSetup) {
    let _alive = setup.alive;
    let upstream_tls = match client_config(&TrustRoots::WebPki) {
        Ok(tls) => tls,
        Err(e) => {
            tracing::error!(worker = setup.index, error = %e, "no TLS configuration for upstream targets");
            return;
        }
    };
    let shard = Rc::new(RefCell::new(Shard::new()));
    register_worker_info(&mut shard.borrow_mut(), setup.index);
    if setup.index == 0 {
        // Registered up front so that both counters are scraped as 0 before the first reload.
        let mut shard = shard.borrow_mut();
        let _ = shard.counter(&RELOADS, &[]);
        let _ = shard.counter(&RELOAD_FAILURES, &[]);
    }
    if let Some(snapshots) = setup.snapshots {
        let shard = shard.clone();
        monoio::spawn(async move {
            while let Ok(reply) = snapshots.recv_async().await {
                let _ = reply.send(shard.borrow().snapshot());
            }
        });
    }
    if let Some(admin) = setup.admin {
        match monoio::net::TcpListener::from_std(admin) {
            Ok(listener) => {
                monoio::spawn(admin::serve(
                    listener,
                    setup.admin_head_timeout,
                    setup.all_workers,
                    setup.status,
                ));
            }
            Err(e) => tracing::error!(error = %e, "cannot serve the admin endpoint"),
        }
    }
    let mut worker = Worker {
        index: setup.index,
        options: setup.options,
        shard,
        upstream_tls,
        running: HashMap::new(),
        channels: Tracker::default(),
        work: Tracker::default(),
        counts: WorkerCounts::default(),
    };
    worker.serve(setup.commands).await;
}

/// Sets `hycod_worker_info{worker, driver, fallback}` to 1: the I/O driver this worker's runtime
/// got and, for epoll, why (docs/metrics.md).
fn register_worker_info(shard: &mut Shard, index: usize) {
    let Some(driver) = current_driver() else {
        return;
    };
    let fallback = match driver {
        IoDriver::IoUring => NO_FALLBACK,
        IoDriver::Epoll => fallback_reason().map_or(Fallback::Unknown.label(), |f| f.label()),
    };
    let worker = index.to_string();
    if let Ok(id) = shard.gauge(&WORKER_INFO, &[&worker, driver.as_str(), fallback]) {
        shard.gauge_set(id, 1);
    }
}

impl Worker {
    async fn serve(&mut self, commands: flume::Receiver<WorkerCommand>) {
        let mut draining: Option<Instant> = None;
        let mut commands_open = true;
        loop {
            let command = match draining {
                None => commands.recv_async().await.ok(),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    monoio::select! {
                        _ = self.drained() => {
                            tracing::info!(worker = self.index, "worker drained");
                            return;
                        }
                        _ = monoio::time::sleep(left) => {
                            tracing::warn!(worker = self.index, abandoned = self.work.count(),
                                "drain deadline reached; ending with work in flight");
                            return;
                        }
                        command = next_command(&commands, commands_open) => command,
                    }
                }
            };
            match command {
                Some(command) => self.handle(command, &mut draining),
                None => {
                    // The handle is gone: nobody can steer this worker any more.
                    commands_open = false;
                    self.drain(Instant::now(), &mut draining);
                }
            }
        }
    }

    /// Completes when no control channel task and no stream or request is left.
    async fn drained(&self) {
        self.channels.idle().await;
        self.work.idle().await;
    }

    fn handle(&mut self, command: WorkerCommand, draining: &mut Option<Instant>) {
        match command {
            WorkerCommand::Start {
                incarnation,
                plan,
                channels,
            } => {
                if draining.is_none() {
                    self.start(incarnation, &plan, channels);
                }
            }
            WorkerCommand::StartForward {
                incarnation,
                plan,
                listener,
            } => {
                if draining.is_none() {
                    self.start_forward(incarnation, plan, listener);
                }
            }
            WorkerCommand::Stop(incarnation) => {
                self.running.remove(&incarnation);
            }
            WorkerCommand::Ping(reply) => {
                let _ = reply.send(());
            }
            WorkerCommand::InFlight(reply) => {
                let _ = reply.send(self.work.count());
            }
            WorkerCommand::RecordReload { applied, counted } => {
                let desc = if applied { &RELOADS } else { &RELOAD_FAILURES };
                let mut shard = self.shard.borrow_mut();
                if let Ok(id) = shard.counter(desc, &[]) {
                    shard.inc(id);
                }
                let _ = counted.send(());
            }
            WorkerCommand::Drain { deadline } => self.drain(deadline, draining),
        }
    }

    /// Stops every channel (dropping their stop senders) and starts the drain clock.
    fn drain(&mut self, deadline: Instant, draining: &mut Option<Instant>) {
        self.running.clear();
        let deadline = match *draining {
            Some(earlier) => earlier.min(deadline),
            None => deadline,
        };
        *draining = Some(deadline);
    }

    fn start(
        &mut self,
        incarnation: Incarnation,
        plan: &HcPlan,
        channels: Vec<(ChannelStatus, String)>,
    ) {
        let context = Rc::new(HcContext {
            name: plan.config.name.clone(),
            entity_path: plan.config.entity_path.clone(),
            target: plan.config.target.clone(),
            port_targets: (plan.config.peer == crate::config::Peer::Azbridge)
                .then(|| plan.config.targets.clone()),
            http_target: plan.config.http_target.clone(),
            dialer: plan.dialer.clone(),
            rendezvous: RendezvousPolicy::new(&plan.relay_base, &plan.config.rendezvous_hosts),
            stream_ping_interval: plan.config.stream_ping_interval,
            upstream_tls: self.upstream_tls.clone(),
            upstream_pool: RefCell::new(Vec::new()),
            upstream_deadline: self.options.upstream_deadline,
            request_buffer: plan.config.request_buffer,
            metrics: self.shard.clone(),
            series: Default::default(),
            limits: plan.config.limits,
            admission: Admission::new(&plan.config.limits, &plan.counts, &self.counts),
            detached: Cell::new(false),
        });
        // The online gauge exists from the start, at 0 until a channel is up.
        context.gauge_add(Gauge::ListenerOnline, 0);
        let (stop, stopped) = flume::bounded::<()>(0);
        for (slot, tracking_id) in channels {
            let spec = ChannelSpec {
                relay_base: plan.relay_base.clone(),
                namespace_host: plan.config.connection_string.namespace_host().to_owned(),
                credential: plan.config.connection_string.credential().clone(),
                token_ttl: plan.config.token_ttl,
                tracking_id,
                listener: ListenerConfig {
                    ping_interval: plan.config.ping_interval,
                    ..self.options.listener
                },
                work: self.work.clone(),
            };
            monoio::spawn(self.channels.track(control::run(
                context.clone(),
                spec,
                slot,
                stopped.clone(),
            )));
        }
        self.running.insert(incarnation, stop);
    }

    /// Registers this worker's duplicate of a forward's socket and accepts on it.
    fn start_forward(
        &mut self,
        incarnation: Incarnation,
        plan: Arc<ForwardPlan>,
        listener: StdListener,
    ) {
        let forward = Rc::new(ForwardContext::new(plan, self.shard.clone()));
        // Registered inside this worker's runtime: the socket belongs to its driver.
        let listener = match monoio::net::TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(worker = self.index, forward = %forward.name(), %error,
                    "cannot accept on the forward's socket");
                return;
            }
        };
        let (stop, stopped) = flume::bounded::<()>(0);
        monoio::spawn(self.channels.track(forward::serve(
            forward,
            listener,
            stopped,
            self.work.clone(),
        )));
        self.running.insert(incarnation, stop);
    }
}

/// The next command, or `None` once the handle is gone; never completes after that.
async fn next_command(
    commands: &flume::Receiver<WorkerCommand>,
    open: bool,
) -> Option<WorkerCommand> {
    if !open {
        std::future::pending::<()>().await;
    }
    commands.recv_async().await.ok()
}
