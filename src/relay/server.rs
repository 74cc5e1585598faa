//! Starting the relay and dispatching each accepted connection by what its first request asks
//! for (protocol Appendix A): a listener control channel, a sender connect, a rendezvous, or a
//! relayed HTTP request.

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;

use monoio::time::Instant;

use monoio::io::AsyncWriteRentExt;
use monoio::net::{TcpListener, TcpStream};

use super::broadcast::Broadcast;
use super::core::admission::check_target;
use super::core::Refusal;
use super::host_check::Addressed;
use super::metrics::{Refusal as RefusalMetric, WorkerMetrics};
use super::shared::{Shared, WorkerCtx, WorkerState};
use super::shed::{Shedder, SHED_MIN_IDLE};
use super::stopping::{Stopping, Wake};
use super::{admin, control, http, rendezvous, respond, stream};
use crate::auth::verify::Verifier;
use crate::io::accept_backoff::{resource_errno, AcceptBackoff};
use crate::io::read_buf::ReadBuf;
use crate::io::stream::Stream;
use crate::logging::Escaped;
use crate::proto::hc::query::{parse_action, Action};
use crate::proto::http1::{
    lines_end_with_crlf, parse_request_head, HeadError, Limits as HeadLimits, RequestHead,
};
use crate::proto::ws::handshake::{status_for, write_error_response, UpgradeRequest};
use crate::relay::config::{RelayConfig, RelayTls};
use crate::relay::self_signed::SelfSignedError;
use crate::runtime::workers;

/// The largest request head the relay reads (protocol §6.1: 32 KB of header metadata).
pub const MAX_HEAD_BYTES: usize = 32 * 1024;

/// A running relay.
pub struct RelayHandle {
    /// The main address: listeners, senders and HTTP requests connect here.
    pub local_addr: SocketAddr,
    /// The admin view's address, when enabled.
    pub admin_addr: Option<SocketAddr>,
    /// `ws://ADDR` or `wss://ADDR`.
    pub url: String,
    /// With `--self-signed`: the CA file clients must trust.
    pub ca_file: Option<PathBuf>,
    pub workers: Vec<JoinHandle<()>>,
    /// The stop sequence's shared state ([`core::drain`](super::core::drain) decides it).
    pub stopping: Arc<Stopping>,
    /// Wakes the thread that runs the stop sequence: signals, counts reaching zero.
    pub woken: flume::Receiver<Wake>,
}

/// Why the relay could not start.
#[derive(Debug)]
pub enum StartError {
    Bind { addr: SocketAddr, source: io::Error },
    Tls(crate::tls::TlsSetupError),
    SelfSigned(SelfSignedError),
    Rule(crate::auth::verify::RuleError),
    Spawn(io::Error),
    Metrics(crate::metrics::RegisterError),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            Self::Tls(e) => write!(f, "TLS: {e}"),
            Self::SelfSigned(e) => write!(f, "self_signed: {e}"),
            Self::Rule(e) => write!(f, "--rule: {e}"),
            Self::Spawn(e) => write!(f, "cannot start worker threads: {e}"),
            Self::Metrics(e) => write!(f, "cannot register the relay's metrics: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

fn bind(addr: SocketAddr) -> Result<StdListener, StartError> {
    let listener = StdListener::bind(addr).map_err(|source| StartError::Bind { addr, source })?;
    listener
        .set_nonblocking(true)
        .map_err(|source| StartError::Bind { addr, source })?;
    Ok(listener)
}

fn local_addr(l: &StdListener, addr: SocketAddr) -> Result<SocketAddr, StartError> {
    l.local_addr()
        .map_err(|source| StartError::Bind { addr, source })
}

/// Binds every socket, starts the workers and returns once each of them is accepting.
///
/// All workers accept on the main socket (cloned descriptors); each also has a rendezvous
/// socket of its own whose port goes into the rendezvous URLs it hands out, so a listener's
/// rendezvous lands on the worker that holds the waiting sender.
pub fn start(config: RelayConfig) -> Result<RelayHandle, StartError> {
    match crate::runtime::fd_limit::raise_to_hard() {
        Ok(raised) if raised.before != raised.after => {
            tracing::info!(before = ?raised.before, after = ?raised.after, "raised the soft RLIMIT_NOFILE to the hard limit");
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the soft RLIMIT_NOFILE"),
    }
    if let Err(e) = crate::runtime::fd_reserve::hold() {
        tracing::warn!(error = %e, "no spare file descriptor to answer clients when out of descriptors");
    }
    let mut verifier = Verifier::new(&config.namespace);
    verifier.add_host_alias("localhost");
    verifier.add_host_alias("127.0.0.1");
    for alias in &config.aliases {
        verifier.add_host_alias(alias);
    }
    for rule in &config.rules {
        verifier
            .add_namespace_rule(rule.to_rule())
            .map_err(StartError::Rule)?;
    }
    for entity in &config.entity_rules {
        verifier
            .add_entity_rule(&entity.entity_path, entity.rule.to_rule())
            .map_err(StartError::Rule)?;
    }
    let (tls, ca_file) = match &config.tls {
        Some(RelayTls::Files(files)) => {
            let tls =
                crate::tls::server_config(&files.cert, &files.key).map_err(StartError::Tls)?;
            (Some(tls), None)
        }
        Some(RelayTls::SelfSigned(setup)) => {
            let issued = setup.ensure().map_err(StartError::SelfSigned)?;
            tracing::info!(name = %setup.name, ca_file = %issued.ca_file.display(), created = issued.created, "self-signed certificate");
            let tls = crate::tls::server_config(&issued.cert_file, &issued.key_file)
                .map_err(StartError::Tls)?;
            (Some(tls), Some(issued.ca_file))
        }
        None => (None, None),
    };
    let main = bind(config.listen)?;
    let main_addr = local_addr(&main, config.listen)?;
    let rendezvous_addr = SocketAddr::new(main_addr.ip(), 0);
    let mut rendezvous = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..config.workers.get() {
        let l = bind(rendezvous_addr)?;
        ports.push(local_addr(&l, rendezvous_addr)?.port());
        rendezvous.push(l);
    }
    let admin = match config.admin {
        Some(addr) => {
            let l = bind(addr)?;
            let bound = local_addr(&l, addr)?;
            Some((l, bound))
        }
        None => None,
    };
    let admin_addr = admin.as_ref().map(|(_, a)| *a);
    let scheme = if tls.is_some() { "wss" } else { "ws" };
    let workers_n = config.workers;
    let mut metrics = Vec::with_capacity(workers_n.get());
    let mut metrics_requests = Vec::with_capacity(workers_n.get());
    for _ in 0..workers_n.get() {
        let paths = config.hybrid_connections.iter().map(String::as_str);
        let (tx, rx) = flume::unbounded();
        metrics.push((WorkerMetrics::new(paths).map_err(StartError::Metrics)?, rx));
        metrics_requests.push(tx);
    }
    let (stopping, woken) = Stopping::new();
    let shared = Arc::new(Shared::new(
        config,
        verifier,
        scheme,
        main_addr,
        ports,
        metrics_requests,
        stopping.clone(),
    ));

    let (ready_tx, ready_rx) = mpsc::channel::<usize>();
    let sockets: Vec<_> = rendezvous
        .into_iter()
        .zip(metrics)
        .map(|(r, metrics)| main.try_clone().map(|m| Some((m, r, metrics))))
        .collect::<io::Result<_>>()
        .map_err(StartError::Spawn)?;
    let sockets = Arc::new(std::sync::Mutex::new(sockets));
    let admin = Arc::new(std::sync::Mutex::new(admin.map(|(l, _)| l)));
    let handles = workers::spawn("relay", workers_n, {
        let shared = shared.clone();
        move |worker| {
            let shared = shared.clone();
            let ready = ready_tx.clone();
            let taken = super::shared::lock(&sockets)
                .get_mut(worker)
                .and_then(Option::take);
            let admin = if worker == 0 {
                super::shared::lock(&admin).take()
            } else {
                None
            };
            let tls = tls.clone().map(crate::tls::Acceptor::from);
            async move {
                let Some((main, rendezvous, (metrics, metrics_requests))) = taken else {
                    return;
                };
                let ctx = Rc::new(WorkerCtx {
                    shared,
                    worker,
                    state: Rc::new(WorkerState::new(metrics)),
                    tls,
                });
                monoio::spawn(answer_metrics_requests(ctx.clone(), metrics_requests));
                run_worker(ctx, main, rendezvous, admin, ready).await;
            }
        }
    })
    .map_err(StartError::Spawn)?;
    for _ in 0..workers_n.get() {
        if ready_rx.recv().is_err() {
            return Err(StartError::Spawn(io::Error::other(
                "a relay worker stopped before it was ready",
            )));
        }
    }
    Ok(RelayHandle {
        local_addr: main_addr,
        admin_addr,
        url: format!("{scheme}://{main_addr}"),
        ca_file,
        workers: handles,
        stopping,
        woken,
    })
}

/// Hands a copy of this worker's metrics to each request of the admin endpoint.
async fn answer_metrics_requests(
    ctx: Rc<WorkerCtx>,
    requests: flume::Receiver<crate::io::admin_http::SnapshotRequest>,
) {
    while let Ok(reply) = requests.recv_async().await {
        let _ = reply.send(ctx.state.metrics.borrow().snapshot());
    }
}

async fn run_worker(
    ctx: Rc<WorkerCtx>,
    main: StdListener,
    rendezvous: StdListener,
    admin: Option<StdListener>,
    ready: mpsc::Sender<usize>,
) {
    let listeners = [main, rendezvous]
        .into_iter()
        .map(TcpListener::from_std)
        .collect::<io::Result<Vec<_>>>();
    let listeners = match listeners {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(worker = ctx.worker, error = %e, "cannot register listening sockets");
            return;
        }
    };
    if let Some(admin) = admin {
        match TcpListener::from_std(admin) {
            Ok(l) => {
                monoio::spawn(admin::serve(ctx.shared.clone(), l));
            }
            Err(e) => tracing::error!(error = %e, "cannot register the admin socket"),
        }
    }
    let _ = ready.send(ctx.worker);
    let mut loops = Vec::new();
    for (index, listener) in listeners.into_iter().enumerate() {
        let port = if index == 0 {
            Port::Main
        } else {
            Port::Rendezvous
        };
        loops.push(monoio::spawn(accept_loop(ctx.clone(), listener, port)));
    }
    for l in loops {
        l.await;
    }
}

/// Which listening socket a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Port {
    /// Listeners, senders and HTTP requests: closed when the relay stops.
    Main,
    /// This worker's rendezvous port: open until the relay exits, for the work in flight.
    Rendezvous,
}

/// Accepts connections until the relay stops (the main port) or exits (a rendezvous port).
/// When the process is out of descriptors (EMFILE and friends) the worker first sheds its idle
/// connections (docs/relay.md "Out of descriptors") and accepts again once a descriptor is
/// free; when it has none to shed, it frees its spare descriptor to accept one waiting client
/// and answer it `503`, then pauses with a growing backoff instead of spinning, and accepts the
/// rest once a descriptor is free again.
async fn accept_loop(ctx: Rc<WorkerCtx>, listener: TcpListener, port: Port) {
    let mut backoff = AcceptBackoff::default();
    let shared = ctx.shared.clone();
    let stop = stopped((port == Port::Main).then_some(&shared.stopping.stop_accepting));
    let mut stop = std::pin::pin!(stop);
    loop {
        let accepted = monoio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => {
                tracing::info!(worker = ctx.worker, "stopped accepting");
                return;
            }
        };
        match accepted {
            Ok((tcp, _)) => {
                backoff.on_success();
                monoio::spawn(serve_connection(ctx.clone(), tcp, port));
            }
            Err(e) => {
                ctx.shared.accept_failures.fetch_add(1, Ordering::Relaxed);
                let errno = resource_errno(&e).unwrap_or("other");
                // At the limit, accept fails even with nobody waiting; idle connections are
                // shed only for a client that is.
                if resource_errno(&e).is_some() && client_waiting(&listener) {
                    let shed = ctx
                        .state
                        .shedder
                        .shed(SHED_MIN_IDLE, std::time::Instant::now());
                    if shed > 0 {
                        ctx.state.metrics.borrow_mut().shed(shed);
                        tracing::warn!(
                            worker = ctx.worker,
                            errno,
                            shed,
                            "out of file descriptors: closed idle connections"
                        );
                        descriptor_freed(&listener).await;
                        continue;
                    }
                    if answer_with_the_spare(&ctx, &listener) {
                        continue;
                    }
                }
                let first = !backoff.is_backing_off();
                match backoff.on_error(&e) {
                    Some(pause) => {
                        if first {
                            tracing::error!(worker = ctx.worker, error = %e, errno,
                                "accept failed: out of file descriptors; pausing accepts");
                        } else {
                            tracing::warn!(worker = ctx.worker, error = %e, errno,
                                pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
                                "accept still failing; pausing accepts");
                        }
                        monoio::time::sleep(pause).await;
                    }
                    None => tracing::warn!(worker = ctx.worker, error = %e, errno, "accept failed"),
                }
            }
        }
    }
}

/// How long [`descriptor_freed`] waits for the shed connections' descriptors at most.
const SHED_CLOSE_LIMIT: Duration = Duration::from_secs(1);

/// Waits until the process has a free descriptor again, after shedding: the shed connections
/// close their sockets when their tasks run and the ring completes the cancelled reads and the
/// closes, which takes a few turns of the runtime. Each turn checks for a free descriptor (a
/// `dup` closed at once) and yields to the runtime, which submits and completes those
/// operations; after [`SHED_CLOSE_LIMIT`] the accept loop goes on (and backs off if still out).
async fn descriptor_freed(listener: &TcpListener) {
    use std::os::fd::{AsRawFd, BorrowedFd};
    let until = Instant::now() + SHED_CLOSE_LIMIT;
    loop {
        // SAFETY: `listener` owns this descriptor and outlives the borrow, which ends with this
        // statement.
        let fd = unsafe { BorrowedFd::borrow_raw(listener.as_raw_fd()) };
        if fd.try_clone_to_owned().is_ok() || Instant::now() >= until {
            return;
        }
        YieldNow(false).await;
    }
}

/// Completes on its second poll: lets every other ready task and the ring's completions run.
struct YieldNow(bool);

impl std::future::Future for YieldNow {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

/// Whether a connection waits in `listener`'s accept queue (the socket polls readable).
fn client_waiting(listener: &TcpListener) -> bool {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    use std::os::fd::{AsRawFd, BorrowedFd};
    // SAFETY: `listener` owns this descriptor and outlives the borrow, which ends with this
    // call.
    let fd = unsafe { BorrowedFd::borrow_raw(listener.as_raw_fd()) };
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(poll(&mut fds, Some(&now)), Ok(n) if n > 0)
}

/// Out of descriptors with nothing to shed: frees the spare descriptor, accepts one waiting
/// client with it and answers `503 ServerBusy` (a TLS client is closed: it cannot be answered
/// without a handshake), then takes the spare again. Whether a client was answered: then the
/// next waiting one can be answered at once. Plain system calls on a non-blocking socket, so
/// the descriptor is closed (and the spare free to take back) before this returns.
fn answer_with_the_spare(ctx: &WorkerCtx, listener: &TcpListener) -> bool {
    use std::os::fd::{AsRawFd, BorrowedFd};
    if !crate::runtime::fd_reserve::release() {
        return false;
    }
    // SAFETY: `listener` owns this descriptor and outlives the borrow, which ends with this
    // call; nothing closes it meanwhile (the worker's accept loop is here, not in an accept).
    let fd = unsafe { BorrowedFd::borrow_raw(listener.as_raw_fd()) };
    let flags = rustix::net::SocketFlags::CLOEXEC | rustix::net::SocketFlags::NONBLOCK;
    let answered = match rustix::net::accept_with(fd, flags) {
        Ok(conn) => {
            if ctx.tls.is_none() {
                answer_busy(std::net::TcpStream::from(conn));
            }
            ctx.state.refused(RefusalMetric::OutOfDescriptors);
            tracing::warn!(
                worker = ctx.worker,
                "out of file descriptors: answered a client 503 with the spare descriptor"
            );
            true
        }
        Err(_) => false,
    };
    if let Err(e) = crate::runtime::fd_reserve::hold() {
        tracing::warn!(error = %e, "the spare file descriptor is not back yet");
        return false;
    }
    answered
}

/// Answers `503 ServerBusy` on a non-blocking socket and closes it. What the client sent so
/// far is read first, so that closing does not reset the connection and destroy the answer
/// (see [`linger`](super::linger)).
fn answer_busy(mut tcp: std::net::TcpStream) {
    use std::io::{Read, Write};
    let mut scratch = [0u8; 4096];
    for _ in 0..8 {
        if !matches!(tcp.read(&mut scratch), Ok(n) if n > 0) {
            break;
        }
    }
    let answer = respond::http_error(
        503,
        "ServerBusy",
        "The relay is out of connections; retry later.",
        false,
    );
    let _ = tcp.write_all(&answer);
    let _ = tcp.shutdown(std::net::Shutdown::Write);
}

/// A connection with its first request head read.
pub struct Incoming {
    pub stream: Stream,
    pub buf: ReadBuf,
    pub head: RequestHead,
}

/// How long [`read_head`] waits: for the first byte, then for the rest of the head.
#[derive(Debug, Clone, Copy)]
pub struct HeadDeadline {
    first_byte: Instant,
    /// Once the first byte is there, the head must be complete this much later; `None`: by
    /// `first_byte` still.
    rest: Option<Duration>,
}

impl HeadDeadline {
    /// A new connection: TLS handshake and head by `started + head`.
    pub fn fresh(started: Instant, head: Duration) -> Self {
        Self {
            first_byte: started + head,
            rest: None,
        }
    }

    /// Between two requests: the next one starts within `keepalive`, its head is complete
    /// `head` after its first byte.
    pub fn keep_alive(keepalive: Duration, head: Duration) -> Self {
        Self {
            first_byte: Instant::now() + keepalive,
            rest: Some(head),
        }
    }
}

/// Reads one request head into `buf` by `deadline`; `Ok(None)` on a clean EOF before any byte.
/// A head whose lines do not all end with CRLF is refused.
pub async fn read_head(
    stream: &mut Stream,
    buf: &mut ReadBuf,
    deadline: HeadDeadline,
    shedder: &Shedder,
    stop: Option<&Broadcast>,
) -> Result<Option<RequestHead>, HeadReadError> {
    let limits = HeadLimits {
        max_head_bytes: MAX_HEAD_BYTES,
        ..HeadLimits::default()
    };
    let mut until = deadline.first_byte;
    let mut started = !buf.is_empty();
    if started {
        if let Some(rest) = deadline.rest {
            until = Instant::now() + rest;
        }
    }
    loop {
        match parse_request_head(buf.data(), &limits) {
            Ok(Some((head, len))) => {
                if !lines_end_with_crlf(&buf.data()[..len]) {
                    return Err(HeadReadError::BareLineFeed);
                }
                buf.consume(len);
                return Ok(Some(head));
            }
            Ok(None) => {}
            Err(e) => return Err(HeadReadError::Head(e)),
        }
        let fill = monoio::time::timeout_at(until, buf.fill(stream));
        let filled = if started {
            fill.await
        } else {
            // Nothing received yet: an idle connection, shed when descriptors run out and
            // closed when the relay stops.
            monoio::select! {
                filled = fill => filled,
                () = shedder.idle() => return Err(HeadReadError::Shed),
                () = stopped(stop) => return Err(HeadReadError::Stopping),
            }
        };
        let Ok(filled) = filled else {
            return Err(HeadReadError::TimedOut { started });
        };
        match filled {
            Ok(0) if buf.is_empty() => return Ok(None),
            Ok(0) => return Err(HeadReadError::Truncated),
            Ok(_) => {
                if !started {
                    started = true;
                    if let Some(rest) = deadline.rest {
                        until = Instant::now() + rest;
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::OutOfMemory => {
                return Err(HeadReadError::Head(HeadError::HeadTooLarge {
                    max: MAX_HEAD_BYTES,
                }))
            }
            Err(e) => return Err(HeadReadError::Io(e)),
        }
    }
}

/// Completes when `stop` fires; never without one.
async fn stopped(stop: Option<&Broadcast>) {
    match stop {
        Some(stop) => stop.fired().await,
        None => std::future::pending().await,
    }
}

/// Why no request head could be read.
#[derive(Debug)]
pub enum HeadReadError {
    Io(io::Error),
    Head(HeadError),
    /// A line of the head ends with a bare LF.
    BareLineFeed,
    Truncated,
    /// The deadline passed; `started`: some bytes of the head had arrived.
    TimedOut {
        started: bool,
    },
    /// The connection was idle when the worker ran out of descriptors.
    Shed,
    /// The connection was idle when the relay stopped accepting.
    Stopping,
}

impl HeadReadError {
    /// The refusal and answer the client gets before the connection closes: 400/431 for a malformed
    /// head, 408 for one that did not come in time (RFC 9110 §15.5.9); nothing for a
    /// connection that went away, or that idled between requests without starting one.
    pub fn refusal(&self, fresh: bool) -> Option<(RefusalMetric, Vec<u8>)> {
        let (status, code, message) = match self {
            Self::Head(e) => {
                let status = match e {
                    HeadError::HeadTooLarge { .. } | HeadError::TooManyHeaders { .. } => 431,
                    _ => 400,
                };
                (status, "BadRequest", e.to_string())
            }
            Self::BareLineFeed => (
                400,
                "BadRequest",
                "Every line of the request head must end with CRLF.".to_owned(),
            ),
            Self::TimedOut { started } if *started || fresh => (
                408,
                "RequestTimeout",
                "The request head did not arrive in time.".to_owned(),
            ),
            Self::TimedOut { .. } | Self::Io(_) | Self::Truncated | Self::Shed | Self::Stopping => {
                return None
            }
        };
        let refusal = if status == 408 {
            RefusalMetric::HeadTimeout
        } else {
            RefusalMetric::BadRequest
        };
        Some((refusal, respond::http_error(status, code, &message, false)))
    }
}

async fn serve_connection(ctx: Rc<WorkerCtx>, tcp: TcpStream, port: Port) {
    let started = Instant::now();
    let _counted = ctx.shared.stopping.connection();
    // Only the main port's idle connections close when the relay stops accepting: a
    // rendezvous belongs to work in flight.
    let stop = (port == Port::Main).then_some(&ctx.shared.stopping.stop_accepting);
    let peer = match Stream::prepare(&tcp) {
        Ok(peer) => peer,
        Err(e) => {
            tracing::debug!(error = %e, "connection vanished before it was served");
            return;
        }
    };
    let deadline = HeadDeadline::fresh(started, ctx.shared.config.timeouts.head);
    let mut stream = match &ctx.tls {
        Some(acceptor) => {
            match monoio::time::timeout_at(deadline.first_byte, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => Stream::tls(tls, peer),
                Ok(Err(e)) => {
                    tracing::info!(%peer, error = %Escaped(&e), "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::info!(%peer, "TLS handshake timed out");
                    return;
                }
            }
        }
        None => Stream::from_prepared(tcp, peer),
    };
    let mut buf = ReadBuf::new(MAX_HEAD_BYTES, 0);
    let head = match read_head(&mut stream, &mut buf, deadline, &ctx.state.shedder, stop).await {
        Ok(Some(head)) => head,
        Ok(None) => return,
        Err(e) => {
            tracing::info!(%peer, error = ?e, "no valid request head");
            if let Some((refusal, answer)) = e.refusal(true) {
                ctx.state.refused(refusal);
                let _ = stream.write_all(answer).await;
            }
            return;
        }
    };
    let incoming = Incoming { stream, buf, head };
    if incoming.head.path().starts_with("/$hc/") {
        serve_websocket(ctx, incoming, peer).await;
    } else {
        // Streams and control channels close themselves with 1001 when the relay stops; an
        // HTTP connection still open then is simply closed.
        let stopping = ctx.shared.stopping.clone();
        monoio::select! {
            () = http::serve(ctx, incoming, peer) => {}
            () = stopping.close_remaining.fired() => {}
        }
    }
}

async fn serve_websocket(ctx: Rc<WorkerCtx>, incoming: Incoming, peer: SocketAddr) {
    let Incoming {
        mut stream,
        buf,
        head,
    } = incoming;
    if let Err(refusal) = check_target(&head.target) {
        tracing::info!(%peer, error = %refusal.text, "refused an upgrade: request-target");
        ctx.state.refused_with(&refusal);
        let _ = stream.write_all(refusal.handshake()).await;
        return;
    }
    let query = head.query().unwrap_or("").to_owned();
    if let Some(names) = &ctx.shared.host_names {
        let addressed = match parse_action(&query) {
            Ok(Action::Accept | Action::Request) => Addressed::Rendezvous,
            _ => Addressed::Namespace,
        };
        if let Err(description) = names.check(&head.headers, addressed) {
            tracing::info!(%peer, error = %Escaped(&description), "refused an upgrade: Host");
            let refusal = Refusal::unknown_host(description);
            ctx.state.refused_with(&refusal);
            let _ = stream.write_all(refusal.handshake()).await;
            return;
        }
    }
    let upgrade = match UpgradeRequest::from_head(head) {
        Ok(u) => u,
        Err(e) => {
            tracing::info!(%peer, error = %Escaped(&e), "refused a malformed WebSocket upgrade");
            ctx.state.refused(RefusalMetric::BadRequest);
            let mut out = Vec::new();
            let body = e.to_string();
            if write_error_response(&mut out, status_for(&e), "", body.as_bytes()).is_ok() {
                let _ = stream.write_all(out).await;
            }
            return;
        }
    };
    let leftover = buf.data().to_vec();
    match parse_action(&query) {
        Ok(Action::Listen) => control::serve(ctx, stream, upgrade, leftover, peer).await,
        Ok(Action::Connect) => stream::serve_sender(ctx, stream, upgrade, leftover, peer).await,
        Ok(action @ (Action::Accept | Action::Request)) => {
            rendezvous::deliver(ctx, stream, upgrade, leftover, peer, action).await
        }
        Err(e) => {
            tracing::info!(%peer, error = %Escaped(&e), "refused an upgrade without a valid sb-hc-action");
            let refusal = Refusal::bad_action(&e);
            ctx.state.refused_with(&refusal);
            let _ = stream.write_all(refusal.handshake()).await;
        }
    }
}
