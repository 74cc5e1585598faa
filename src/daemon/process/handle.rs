//! The main thread's side of a running daemon (architecture §3 "Lifecycle"): it assigns hybrid
//! connections' control channels and forwards' accept loops to workers, applies reloads,
//! drains, and asks the workers whether they are alive and what they still have in flight.

use std::collections::HashMap;
use std::fmt;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::reload::{diff, Changes, RestartRequired};
use super::status::{ChannelStatus, DaemonStatus, ForwardInfo, Phase};
use super::worker::{Incarnation, WorkerCommand};
use crate::config::{Config, ConfigError};
use crate::daemon::forward::setup::{prepare, ForwardSetupError, PreparedForward};
use crate::daemon::plan::{plan, HcPlan};
use crate::daemon::DaemonOptions;
use crate::tls::{ClientConfig, TlsSetupError};

/// How long a reload waits for worker 0 to count it.
const COUNT_TIMEOUT: Duration = Duration::from_secs(2);

/// A running daemon.
pub struct DaemonHandle {
    pub status: Arc<DaemonStatus>,
    pub admin_addr: Option<SocketAddr>,
    pub workers: Vec<JoinHandle<()>>,
    commands: Vec<flume::Sender<WorkerCommand>>,
    config: Config,
    options: DaemonOptions,
    webpki: Arc<ClientConfig>,
    /// The channels running for each configured hybrid connection, by name.
    running: HashMap<String, Running>,
    /// The accept loops running for each configured forward, by name.
    forwards: HashMap<String, RunningForward>,
    next_incarnation: Incarnation,
}

/// One forward's live socket and accept loops.
struct RunningForward {
    incarnation: Incarnation,
    /// The main thread's copy of the socket; a replacement with the same `listen` reuses it.
    listener: StdListener,
    /// The configured `listen` (port 0 stays 0 here).
    listen: SocketAddr,
    /// The bound address.
    local_addr: SocketAddr,
}

/// One hybrid connection's live channels.
struct Running {
    incarnation: Incarnation,
    slots: Vec<ChannelStatus>,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub unchanged: Vec<String>,
    /// Settings that changed but keep their running value until a restart.
    pub restart_required: Vec<RestartRequired>,
    /// Replaced hybrid connections whose new channels were not all online within the handover
    /// timeout; their old channels were stopped anyway.
    pub handover_incomplete: Vec<String>,
    /// Forwards added, removed, changed (their socket kept when `listen` is unchanged) and
    /// unchanged, by name.
    pub forwards: Changes<String>,
}

/// Why a reload was rejected; the running configuration stays in effect.
#[derive(Debug)]
pub enum ReloadError {
    /// The new configuration file is invalid (names the key path).
    Config(ConfigError),
    /// A new or changed hybrid connection's TLS trust could not be set up.
    Tls { path: String, error: TlsSetupError },
    /// A new or changed forward could not be set up (`path` names its key, e.g.
    /// `forward[0].listen`).
    Forward {
        path: String,
        error: ForwardSetupError,
    },
    /// The daemon is draining; nothing is started any more.
    Draining,
}

impl fmt::Display for ReloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(error) => write!(f, "{error}"),
            Self::Tls { path, error } => write!(f, "{path}: {error}"),
            Self::Forward { path, error } => write!(f, "{path}: {error}"),
            Self::Draining => f.write_str("the daemon is draining; the reload was ignored"),
        }
    }
}

impl std::error::Error for ReloadError {}

impl DaemonHandle {
    pub(in crate::daemon) fn new(
        status: Arc<DaemonStatus>,
        admin_addr: Option<SocketAddr>,
        workers: Vec<JoinHandle<()>>,
        commands: Vec<flume::Sender<WorkerCommand>>,
        config: Config,
        options: DaemonOptions,
        webpki: Arc<ClientConfig>,
    ) -> Self {
        Self {
            status,
            admin_addr,
            workers,
            commands,
            config,
            options,
            webpki,
            running: HashMap::new(),
            forwards: HashMap::new(),
            next_incarnation: 0,
        }
    }

    /// The configuration in effect.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The lifecycle phase.
    pub fn phase(&self) -> Phase {
        self.status.phase()
    }

    /// The address forward `name` accepts on (the system's port when `listen` has port 0).
    pub fn forward_addr(&self, name: &str) -> Option<SocketAddr> {
        self.forwards.get(name).map(|running| running.local_addr)
    }

    fn worker_count(&self) -> NonZeroUsize {
        NonZeroUsize::new(self.commands.len()).unwrap_or(NonZeroUsize::MIN)
    }

    /// Starts the channels of `plan` (channel k on worker k % workers).
    pub(in crate::daemon) fn launch(&mut self, plan: HcPlan) {
        let incarnation = self.next_incarnation;
        self.next_incarnation += 1;
        let name = plan.config.name.clone();
        let workers = self.worker_count().get();
        let mut per_worker: Vec<Vec<(ChannelStatus, String)>> = vec![Vec::new(); workers];
        let mut slots = Vec::with_capacity(plan.channels.get());
        for k in 0..plan.channels.get() {
            let slot = self.status.add_channel(&name, k % workers);
            let tracking = crate::io::ws_client::new_connection_id();
            per_worker[k % workers].push((slot.clone(), tracking));
            slots.push(slot);
        }
        let plan = Arc::new(plan);
        for (worker, channels) in self.commands.iter().zip(per_worker) {
            if !channels.is_empty() {
                let _ = worker.send(WorkerCommand::Start {
                    incarnation,
                    plan: plan.clone(),
                    channels,
                });
            }
        }
        self.running.insert(name, Running { incarnation, slots });
    }

    /// Hands a prepared forward's socket to every worker, which accepts on it.
    pub(in crate::daemon) fn launch_forward(&mut self, prepared: PreparedForward) {
        let incarnation = self.next_incarnation;
        self.next_incarnation += 1;
        let name = prepared.plan.config.name.clone();
        let listen = prepared.plan.config.listen;
        let local_addr = prepared.local_addr;
        let plan = Arc::new(prepared.plan);
        for (worker, listener) in self.commands.iter().zip(prepared.per_worker) {
            let _ = worker.send(WorkerCommand::StartForward {
                incarnation,
                plan: plan.clone(),
                listener,
            });
        }
        tracing::info!(forward = %name, entity_path = %plan.config.entity_path,
            "forward {name} listening tcp://{local_addr}");
        self.status.forward_started(ForwardInfo {
            name: name.clone(),
            listen: local_addr,
            entity_path: plan.config.entity_path.clone(),
        });
        let running = RunningForward {
            incarnation,
            listener: prepared.listener,
            listen,
            local_addr,
        };
        self.forwards.insert(name, running);
    }

    /// Stops the accept loops of one forward incarnation; its connections run on. The socket
    /// closes once the workers have dropped their duplicates (unless a replacement keeps it).
    fn retire_forward(&self, running: RunningForward) {
        for worker in &self.commands {
            let _ = worker.send(WorkerCommand::Stop(running.incarnation));
        }
    }

    /// Stops the channels of one incarnation; its streams and requests run on.
    fn retire(&self, running: Running) {
        self.status.remove_channels(&running.slots);
        for worker in &self.commands {
            let _ = worker.send(WorkerCommand::Stop(running.incarnation));
        }
    }

    /// Re-reads the configuration file and applies it; see [`DaemonHandle::reload`].
    pub fn reload_file(&mut self, path: &Path) -> Result<ReloadReport, ReloadError> {
        match Config::load(path) {
            Ok(config) => self.reload(config),
            Err(error) => {
                self.record_reload(false);
                Err(ReloadError::Config(error))
            }
        }
    }

    /// Applies a new configuration: added hybrid connections start, removed ones stop taking
    /// work (their streams and requests finish), changed ones get new channels and, once those
    /// are online or the handover timeout passes, their old channels stop; unchanged ones are
    /// not touched. Nothing is applied when any part is invalid.
    pub fn reload(&mut self, new: Config) -> Result<ReloadReport, ReloadError> {
        let result = self.apply(new);
        self.record_reload(result.is_ok());
        result
    }

    fn apply(&mut self, new: Config) -> Result<ReloadReport, ReloadError> {
        if self.phase() >= Phase::Draining {
            return Err(ReloadError::Draining);
        }
        let reload = diff(&self.config, new);
        let workers = self.worker_count();
        let mut plans = Vec::new();
        for hc in reload.added.iter().chain(&reload.changed) {
            let planned = plan(hc, workers, &self.webpki).map_err(|error| {
                let index = reload
                    .effective
                    .hybrid_connections
                    .iter()
                    .position(|h| h.name == hc.name)
                    .unwrap_or_default();
                ReloadError::Tls {
                    path: format!("hybrid_connection[{index}].tls_roots"),
                    error,
                }
            })?;
            plans.push(planned);
        }
        let forwards = &reload.forwards;
        let mut prepared_forwards = Vec::new();
        for forward in forwards.added.iter().chain(&forwards.changed) {
            let kept = self
                .forwards
                .get(&forward.name)
                .filter(|running| running.listen == forward.listen)
                .map(|running| (&running.listener, running.local_addr));
            let prepared = prepare(forward, workers, &self.webpki, kept).map_err(|error| {
                let index = reload
                    .effective
                    .forwards
                    .iter()
                    .position(|f| f.name == forward.name)
                    .unwrap_or_default();
                ReloadError::Forward {
                    path: format!("forward[{index}].{}", error.key()),
                    error,
                }
            })?;
            prepared_forwards.push(prepared);
        }
        for name in &forwards.removed {
            if let Some(running) = self.forwards.remove(name) {
                self.retire_forward(running);
                self.status.forward_stopped(name);
            }
        }
        // Make before break: the new accept loops run before the old ones stop.
        for prepared in prepared_forwards {
            let old = self.forwards.remove(&prepared.plan.config.name);
            self.launch_forward(prepared);
            if let Some(old) = old {
                self.retire_forward(old);
            }
        }
        self.status
            .set_ready_without_listeners(!reload.effective.forwards.is_empty());
        for name in &reload.removed {
            if let Some(running) = self.running.remove(name) {
                self.retire(running);
            }
        }
        let mut replaced = Vec::new();
        for plan in plans {
            let name = plan.config.name.clone();
            let old = self.running.remove(&name);
            self.launch(plan);
            if let (Some(old), Some(new)) = (old, self.running.get(&name)) {
                replaced.push((name, old, new.slots.clone()));
            }
        }
        // Make before break: the old channels keep taking work until the new ones are online.
        let incoming: Vec<ChannelStatus> = replaced
            .iter()
            .flat_map(|(_, _, slots)| slots.iter().cloned())
            .collect();
        self.status
            .wait_channels_online(&incoming, self.options.handover_timeout);
        let mut handover_incomplete = Vec::new();
        for (name, old, new_slots) in replaced {
            if !self.status.wait_channels_online(&new_slots, Duration::ZERO) {
                handover_incomplete.push(name);
            }
            self.retire(old);
        }
        let report = ReloadReport {
            added: reload.added.iter().map(|hc| hc.name.clone()).collect(),
            removed: reload.removed,
            changed: reload.changed.iter().map(|hc| hc.name.clone()).collect(),
            unchanged: reload.unchanged,
            restart_required: reload.restart_required,
            handover_incomplete,
            forwards: Changes {
                added: names(&reload.forwards.added),
                removed: reload.forwards.removed,
                changed: names(&reload.forwards.changed),
                unchanged: reload.forwards.unchanged,
            },
        };
        self.config = reload.effective;
        Ok(report)
    }

    /// Counts a reload on worker 0 and waits (briefly) until it is counted, so that a scrape
    /// after the reload's log line sees it.
    fn record_reload(&self, applied: bool) {
        let (counted, done) = flume::bounded(1);
        let sent = self.commands.first().is_some_and(|first| {
            first
                .send(WorkerCommand::RecordReload { applied, counted })
                .is_ok()
        });
        if sent {
            let _ = done.recv_timeout(COUNT_TIMEOUT);
        }
    }

    /// Stops taking work: every control channel detaches at once (requests in flight on it are
    /// answered through their rendezvous, architecture §3 "Detaching"); streams and requests in flight run
    /// until they finish or `grace` passes. The phase becomes Draining, then Stopped when every
    /// worker has ended.
    pub fn drain(&mut self, grace: Duration) {
        self.status.advance_phase(Phase::Draining);
        // The main thread's socket copies go now: once the workers' accept loops stop, the
        // forwards' ports refuse new connections instead of queueing them.
        self.forwards.clear();
        let deadline = Instant::now() + grace;
        for worker in &self.commands {
            let _ = worker.send(WorkerCommand::Drain { deadline });
        }
    }

    /// Takes every listener offline and ends the workers at once, abandoning work in flight.
    pub fn stop(&mut self) {
        self.drain(Duration::ZERO);
    }

    /// Streams and requests in flight on all workers; `None` when a worker did not answer
    /// within `timeout` (or has ended).
    pub fn in_flight(&self, timeout: Duration) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        let mut total = 0;
        for worker in &self.commands {
            let (reply, answer) = flume::bounded(1);
            worker.send(WorkerCommand::InFlight(reply)).ok()?;
            total += answer.recv_deadline(deadline).ok()?;
        }
        Some(total)
    }

    /// Whether every worker answers within `timeout` (the systemd watchdog's condition). A
    /// worker that has ended counts as answering once the daemon drains (it drained), and as
    /// failed before that.
    pub fn workers_responsive(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        self.commands.iter().all(|worker| {
            let (reply, answer) = flume::bounded(1);
            if worker.send(WorkerCommand::Ping(reply)).is_err() {
                return self.phase() >= Phase::Draining;
            }
            match answer.recv_deadline(deadline) {
                Ok(()) => true,
                Err(flume::RecvTimeoutError::Disconnected) => self.phase() >= Phase::Draining,
                Err(flume::RecvTimeoutError::Timeout) => false,
            }
        })
    }
}

/// The names of `forwards`.
fn names(forwards: &[crate::config::Forward]) -> Vec<String> {
    forwards.iter().map(|f| f.name.clone()).collect()
}
