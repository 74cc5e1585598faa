//! State the relay's workers share (control plane only) and state each worker keeps to itself.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use local_sync::oneshot;
use rustc_hash::FxHashMap;

use super::answer_head::{AnswerHead, HeadFailure};
use super::core::pairing::Expected;
use super::core::pending::PendingRequests;
use super::core::Admission;
use super::handoff;
use super::stopping::Stopping;
use crate::auth::verify::{TokenCache, Verifier};
use crate::io::admin_http::SnapshotRequest;
use crate::io::stream::Stream;
use crate::proto::ws::handshake::UpgradeRequest;
use crate::relay::config::RelayConfig;
use crate::relay::host_check::HostNames;
use crate::relay::ids::SecretIds;
use crate::relay::metrics::{Refusal, WorkerMetrics};
use crate::relay::registry::Registry;

pub(crate) use super::control_queue::{ControlCommand, ControlHandle, ControlQueue, QueueError};

/// What a listener sends back for one relayed HTTP request on its control channel.
#[derive(Debug)]
pub(crate) enum ResponseEvent {
    /// The head made from the `response` message, with its whole body (empty when it announced
    /// none); a body on the control channel is at most 64 KiB (protocol §6.1), so it is
    /// collected first.
    Complete(Result<AnswerHead, HeadFailure>, Bytes),
    /// The response broke one of Azure's control-channel limits (protocol §6.1, §9): the request
    /// fails.
    TooLarge(&'static str),
    /// The listener's control channel broke before the response was complete.
    ListenerGone,
    /// The listener closed its control channel (a Close frame) before answering: it may still
    /// answer through the request's rendezvous until the deadline.
    ListenerDetached,
}

/// Everything the workers share. Only the control plane touches the mutexes: once per
/// control channel, sender connect and HTTP request, never per frame.
pub(crate) struct Shared {
    pub config: RelayConfig,
    pub verifier: Verifier,
    /// The admission rules: namespace and configured hybrid connections (fixed for the relay's
    /// lifetime, read without a lock).
    pub admission: Admission,
    pub registry: Mutex<Registry<ControlHandle>>,
    /// Relayed HTTP requests waiting for a `response` on a control channel.
    pub pending_requests: Mutex<PendingRequests<handoff::Sender<ResponseEvent>>>,
    /// `ws` or `wss`.
    pub scheme: &'static str,
    /// The `Via` value of every relayed response, `1.1 {namespace}` (protocol §6.6).
    pub via: String,
    /// Each worker's [`Shared::rendezvous_base`] (its own rendezvous port), by worker index;
    /// made once, as every relayed request names it.
    rendezvous_bases: Vec<String>,
    /// The host of the rendezvous addresses handed out: `--rendezvous-host`, else the IP
    /// address of the main port (bracketed if IPv6).
    pub rendezvous_host: String,
    /// With `--namespace`: the `Host` names requests must carry.
    pub host_names: Option<HostNames>,
    /// Failed `accept` calls on the main and rendezvous ports (e.g. EMFILE), for `/$status`.
    pub accept_failures: AtomicU64,
    /// Asks each worker for a copy of its metrics, by worker index.
    pub metrics_requests: Vec<flume::Sender<SnapshotRequest>>,
    /// The stop sequence: what the workers await and count for it.
    pub stopping: Arc<Stopping>,
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it: the registry and the
/// pending map stay consistent per operation, so their content is still valid.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub(crate) fn new(
        config: RelayConfig,
        verifier: Verifier,
        scheme: &'static str,
        local_addr: SocketAddr,
        rendezvous_ports: Vec<u16>,
        metrics_requests: Vec<flume::Sender<SnapshotRequest>>,
        stopping: Arc<Stopping>,
    ) -> Self {
        let registry = Registry::new(
            config.hybrid_connections.iter().map(String::as_str),
            config.max_listeners,
        );
        let rendezvous_host = match (&config.rendezvous_host, local_addr.ip()) {
            (Some(name), _) => name.clone(),
            (None, std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
            (None, std::net::IpAddr::V4(ip)) => ip.to_string(),
        };
        let host_names = config.host_check.clone().map(|namespace| HostNames {
            namespace,
            rendezvous: rendezvous_host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        });
        let rendezvous_bases = rendezvous_ports
            .iter()
            .map(|port| format!("{scheme}://{rendezvous_host}:{port}"))
            .collect();
        let admission = Admission::new(
            &config.namespace,
            registry.paths().map(str::to_owned),
            &config.anonymous_senders,
        );
        let via = format!("1.1 {}", config.namespace);
        Self {
            config,
            verifier,
            admission,
            registry: Mutex::new(registry),
            pending_requests: Mutex::new(PendingRequests::default()),
            scheme,
            via,
            rendezvous_bases,
            rendezvous_host,
            host_names,
            accept_failures: AtomicU64::new(0),
            metrics_requests,
            stopping,
        }
    }

    /// The base of rendezvous URLs handed out by `worker`: the rendezvous host and the
    /// worker's own port, so the listener's rendezvous connection lands on the worker that
    /// holds the sender (architecture §1).
    pub(crate) fn rendezvous_base(&self, worker: usize) -> std::borrow::Cow<'_, str> {
        match self.rendezvous_bases.get(worker) {
            Some(base) => base.as_str().into(),
            None => format!("{}://{}:0", self.scheme, self.rendezvous_host).into(),
        }
    }
}

/// A listener's rendezvous connection, handed to the task that waits for it on this worker.
pub(super) struct Rendezvous {
    pub stream: Stream,
    /// Bytes read past the handshake head.
    pub leftover: Vec<u8>,
    pub upgrade: UpgradeRequest,
    /// Present when the listener rejected the connection (protocol §5.2).
    pub rejection: Option<(u16, String)>,
}

/// Who waits for a rendezvous, and the path and action its address named. The waiter is a
/// task of the same worker (a rendezvous lands on the worker that handed its address out), so
/// a single-threaded channel carries it.
pub(super) struct Waiter {
    pub tx: oneshot::Sender<Rendezvous>,
    pub expected: Expected,
}

/// What one worker keeps to itself: rendezvous ids it handed out and who waits for them, the
/// tokens it accepted and its metrics.
pub(super) struct WorkerState {
    /// Keyed with the unseeded `FxHash`: every id entered is one this worker made from CSPRNG
    /// bits; a listener's rendezvous only looks its `sb-hc-id` up (docs/relay.md "Hash maps").
    pub waiting: RefCell<FxHashMap<Arc<str>, Waiter>>,
    /// This worker's connections waiting idle for a request head, shed when descriptors run out.
    pub shedder: super::shed::Shedder,
    /// Accepted tokens of relayed HTTP requests, for [`Shared::verifier`] (whose rules are fixed
    /// for the relay's lifetime; the cache clears itself if it is handed another verifier).
    pub token_cache: RefCell<TokenCache>,
    /// Where this worker's rendezvous and request ids come from.
    pub secret_ids: RefCell<SecretIds>,
    /// This worker's metrics, merged with the others' on the admin endpoint.
    pub metrics: RefCell<WorkerMetrics>,
}

impl WorkerState {
    pub(super) fn new(metrics: WorkerMetrics) -> Self {
        Self {
            waiting: RefCell::default(),
            shedder: super::shed::Shedder::default(),
            token_cache: RefCell::default(),
            secret_ids: RefCell::default(),
            metrics: RefCell::new(metrics),
        }
    }

    /// Counts a refusal the relay carried out.
    pub(super) fn refused(&self, refusal: Refusal) {
        self.metrics.borrow_mut().refused(refusal);
    }

    /// Counts a refusal of the relay core under its metric reason, if it has one.
    pub(super) fn refused_with(&self, refusal: &super::core::Refusal) {
        if let Some(reason) = Refusal::of(refusal.reason) {
            self.refused(reason);
        }
    }
}

/// Removes a waiting entry when the waiter ends, however it ends.
pub(super) struct WaitGuard {
    pub state: Rc<WorkerState>,
    pub id: Arc<str>,
}

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.state.waiting.borrow_mut().remove(&self.id);
    }
}

/// Shared state plus this worker's own.
pub(super) struct WorkerCtx {
    pub shared: Arc<Shared>,
    pub worker: usize,
    pub state: Rc<WorkerState>,
    pub tls: Option<crate::tls::Acceptor>,
}
