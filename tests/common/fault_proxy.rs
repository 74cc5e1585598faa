//! A fault-injecting TCP proxy for the fault tests (docs/reliability.md "Faults"): it listens on
//! loopback (port 0) and forwards every connection either to one fixed upstream or, as an HTTP
//! CONNECT proxy (RFC 9110 §9.3.6), to whatever `host:port` the client asks for — the daemon's
//! `proxy` key then routes its control channels AND its rendezvous connections through it.
//!
//! While traffic flows, the test thread can:
//! * [`FaultProxy::reset_all`]: abort every open connection with a TCP RST on both sides
//!   (`SO_LINGER` 0, then close);
//! * [`FaultProxy::black_hole`]: stop forwarding both ways without closing anything (no FIN, no
//!   RST, bytes stay queued), new connections included; [`FaultProxy::restore`] resumes;
//! * [`FaultProxy::refuse_new`]: reset new connections as soon as they are accepted;
//! * [`FaultProxy::throttle`]: forward at most so many bytes per second in each direction of each
//!   connection;
//! * [`FaultProxy::split_bytes`]: forward every byte with its own `write` (`TCP_NODELAY` set), so
//!   the peers see frames and heads cut at every byte boundary.
//!
//! Two threads per connection, one per direction. Socket reads and writes use a short timeout so
//! that a thread notices a reset or a peer's abort promptly; a held (black-holed) thread waits on
//! a condition variable.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How often a blocked read or write looks at the controls.
const TICK: Duration = Duration::from_millis(25);
/// Largest read per step.
const BUF: usize = 64 * 1024;
/// Fixed kernel socket buffer sizes of the proxy's sockets (no autotuning up to `tcp_rmem`'s
/// maximum), so that a held or throttled direction queues little inside the proxy's own
/// sockets and backpressure reaches the peers soon.
const SOCKET_BUFFER: usize = 256 * 1024;

/// Where accepted connections go.
#[derive(Debug, Clone, Copy)]
enum Upstream {
    Fixed(SocketAddr),
    HttpConnect,
}

/// The controls, changed by the test thread and read by the pumps.
#[derive(Debug, Clone, Copy, Default)]
struct Controls {
    black_holed: bool,
    refuse_new: bool,
    /// Bytes per second client → upstream, per connection; `None` = unlimited.
    throttle_to_upstream: Option<u64>,
    /// Bytes per second upstream → client, per connection; `None` = unlimited.
    throttle_to_client: Option<u64>,
    split_bytes: bool,
    /// Bumped by `reset_all`: connections of an older epoch abort.
    epoch: u64,
}

struct Shared {
    upstream: Upstream,
    controls: Mutex<Controls>,
    changed: Condvar,
    closed: AtomicBool,
    accepted: AtomicU64,
    refused: AtomicU64,
    open: AtomicU64,
    to_upstream: AtomicU64,
    to_client: AtomicU64,
}

impl Shared {
    fn controls(&self) -> MutexGuard<'_, Controls> {
        self.controls.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn change(&self, edit: impl FnOnce(&mut Controls)) {
        edit(&mut self.controls());
        self.changed.notify_all();
    }
}

/// A running proxy; resets every connection and stops accepting when dropped.
pub(crate) struct FaultProxy {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl FaultProxy {
    /// Forwards every connection to `upstream`.
    pub(crate) fn to(upstream: SocketAddr) -> Self {
        Self::start(Upstream::Fixed(upstream))
    }

    /// Forwards to the `host:port` named in each connection's leading HTTP `CONNECT` request.
    pub(crate) fn http_connect() -> Self {
        Self::start(Upstream::HttpConnect)
    }

    fn start(upstream: Upstream) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        let addr = listener.local_addr().expect("proxy address");
        let shared = Arc::new(Shared {
            upstream,
            controls: Mutex::new(Controls::default()),
            changed: Condvar::new(),
            closed: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            open: AtomicU64::new(0),
            to_upstream: AtomicU64::new(0),
            to_client: AtomicU64::new(0),
        });
        let accepting = shared.clone();
        std::thread::spawn(move || accept_loop(listener, accepting));
        Self { shared, addr }
    }

    /// The address clients connect to.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `127.0.0.1:port`.
    pub(crate) fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// Aborts every open connection with an RST to both of its peers.
    pub(crate) fn reset_all(&self) {
        self.shared.change(|c| c.epoch += 1);
    }

    /// Stops forwarding in both directions on every connection, old and new; nothing is closed.
    pub(crate) fn black_hole(&self) {
        self.shared.change(|c| c.black_holed = true);
    }

    /// Undoes [`Self::black_hole`], [`Self::throttle`], [`Self::split_bytes`] and
    /// [`Self::refuse_new`]: plain forwarding again, held bytes go on.
    pub(crate) fn restore(&self) {
        self.shared.change(|c| {
            c.black_holed = false;
            c.throttle_to_upstream = None;
            c.throttle_to_client = None;
            c.split_bytes = false;
            c.refuse_new = false;
        });
    }

    /// Whether new connections are reset right after they are accepted.
    pub(crate) fn refuse_new(&self, refuse: bool) {
        self.shared.change(|c| c.refuse_new = refuse);
    }

    /// Forwards at most `bytes_per_second` in each direction of each connection.
    pub(crate) fn throttle(&self, bytes_per_second: u64) {
        self.throttle_to_upstream(bytes_per_second);
        self.throttle_to_client(bytes_per_second);
    }

    /// Forwards at most `bytes_per_second` from each client to its upstream: a slow reader on
    /// the upstream side.
    pub(crate) fn throttle_to_upstream(&self, bytes_per_second: u64) {
        self.shared
            .change(|c| c.throttle_to_upstream = Some(bytes_per_second.max(1)));
    }

    /// Forwards at most `bytes_per_second` from each upstream to its client: a slow reader on
    /// the client side.
    pub(crate) fn throttle_to_client(&self, bytes_per_second: u64) {
        self.shared
            .change(|c| c.throttle_to_client = Some(bytes_per_second.max(1)));
    }

    /// Forwards every byte with a write of its own.
    pub(crate) fn split_bytes(&self, on: bool) {
        self.shared.change(|c| c.split_bytes = on);
    }

    /// Connections accepted and forwarded so far.
    pub(crate) fn connections(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Connections reset on arrival because of [`Self::refuse_new`] (or an unreachable upstream).
    pub(crate) fn refused(&self) -> u64 {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// Connections with at least one direction still forwarding.
    pub(crate) fn open_connections(&self) -> u64 {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Bytes forwarded from clients to upstreams so far.
    pub(crate) fn bytes_to_upstream(&self) -> u64 {
        self.shared.to_upstream.load(Ordering::SeqCst)
    }

    /// Bytes forwarded from upstreams to clients so far.
    pub(crate) fn bytes_to_client(&self) -> u64 {
        self.shared.to_client.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::SeqCst);
        self.reset_all();
        // Wake the accept loop so it sees `closed` and drops the listener.
        let _ = TcpStream::connect(self.addr);
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.closed.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let shared = shared.clone();
        std::thread::spawn(move || open_connection(client, shared));
    }
}

/// Sets up one connection: refusal, CONNECT, upstream dial, then the two pumps.
fn open_connection(mut client: TcpStream, shared: Arc<Shared>) {
    if shared.controls().refuse_new {
        shared.refused.fetch_add(1, Ordering::SeqCst);
        abort(&client);
        return;
    }
    let epoch = match wait_forwarding(&shared, None) {
        Some(epoch) => epoch,
        None => return,
    };
    let target = match shared.upstream {
        Upstream::Fixed(addr) => Some(addr.to_string()),
        Upstream::HttpConnect => read_connect_head(&mut client),
    };
    let upstream = target.and_then(|t| TcpStream::connect(t).ok());
    let Some(upstream) = upstream else {
        shared.refused.fetch_add(1, Ordering::SeqCst);
        if matches!(shared.upstream, Upstream::HttpConnect) {
            let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        }
        abort(&client);
        return;
    };
    if matches!(shared.upstream, Upstream::HttpConnect)
        && client
            .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            .is_err()
    {
        abort(&upstream);
        return;
    }
    for socket in [&client, &upstream] {
        let sock = socket2::SockRef::from(socket);
        let _ = sock.set_recv_buffer_size(SOCKET_BUFFER);
        let _ = sock.set_send_buffer_size(SOCKET_BUFFER);
        let _ = socket.set_nodelay(true);
        let _ = socket.set_read_timeout(Some(TICK));
        let _ = socket.set_write_timeout(Some(TICK));
    }
    shared.accepted.fetch_add(1, Ordering::SeqCst);
    shared.open.fetch_add(1, Ordering::SeqCst);
    let connection = Arc::new(Connection {
        epoch,
        aborted: AtomicBool::new(false),
        directions_left: AtomicU64::new(2),
    });
    let (Ok(client2), Ok(upstream2)) = (client.try_clone(), upstream.try_clone()) else {
        abort(&client);
        abort(&upstream);
        return;
    };
    {
        let (shared, connection) = (shared.clone(), connection.clone());
        std::thread::spawn(move || {
            pump(
                client,
                upstream,
                Direction::ToUpstream,
                &shared,
                &connection,
            )
        });
    }
    pump(
        upstream2,
        client2,
        Direction::ToClient,
        &shared,
        &connection,
    );
}

/// Reads `CONNECT host:port HTTP/1.1` and its header lines, byte by byte (nothing past the
/// head is consumed); the `host:port`.
fn read_connect_head(client: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 8192 || client.read(&mut byte).ok()? != 1 {
            return None;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8(head).ok()?;
    let mut words = text.lines().next()?.split(' ');
    (words.next()? == "CONNECT").then_some(())?;
    words.next().map(str::to_owned)
}

#[derive(Debug, Clone, Copy)]
enum Direction {
    ToUpstream,
    ToClient,
}

impl Direction {
    fn throttle(self, controls: &Controls) -> Option<u64> {
        match self {
            Self::ToUpstream => controls.throttle_to_upstream,
            Self::ToClient => controls.throttle_to_client,
        }
    }
}

/// What the two pumps of one connection share.
struct Connection {
    epoch: u64,
    /// One side failed or the proxy reset it: both pumps stop, the sockets close with an RST.
    aborted: AtomicBool,
    directions_left: AtomicU64,
}

/// Sets `SO_LINGER` 0 so that the last close of `socket` sends an RST instead of a FIN.
fn linger_zero(socket: &TcpStream) {
    let _ = socket2::SockRef::from(socket).set_linger(Some(Duration::ZERO));
}

/// Makes `socket`'s close an RST (the caller drops its last handle).
fn abort(socket: &TcpStream) {
    linger_zero(socket);
}

/// Waits while the proxy is black-holed; the controls' epoch, or `None` once `connection`
/// must stop (reset, aborted or proxy closed).
fn wait_forwarding(shared: &Shared, connection: Option<&Connection>) -> Option<u64> {
    let mut controls = shared.controls();
    loop {
        let stale = connection
            .is_some_and(|c| c.aborted.load(Ordering::SeqCst) || c.epoch != controls.epoch);
        if stale || shared.closed.load(Ordering::SeqCst) {
            return None;
        }
        if !controls.black_holed {
            return Some(controls.epoch);
        }
        controls = shared
            .changed
            .wait_timeout(controls, TICK)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// Copies `from` → `to` until EOF (then half-closes `to`) or an abort (then both sockets are
/// closed with an RST).
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    direction: Direction,
    shared: &Shared,
    connection: &Connection,
) {
    let counter = match direction {
        Direction::ToUpstream => &shared.to_upstream,
        Direction::ToClient => &shared.to_client,
    };
    let mut buf = vec![0u8; BUF];
    let ended_cleanly = loop {
        if wait_forwarding(shared, Some(connection)).is_none() {
            break false;
        }
        let throttle = direction.throttle(&shared.controls());
        let want = throttle.map_or(BUF, |rate| {
            usize::try_from(rate / 20).unwrap_or(BUF).clamp(1, BUF)
        });
        let n = match from.read(&mut buf[..want]) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                break true;
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break false,
        };
        let started = Instant::now();
        if !forward(&buf[..n], &mut to, shared, connection, counter) {
            break false;
        }
        if let Some(rate) = direction.throttle(&shared.controls()) {
            let due = Duration::from_nanos(
                u64::try_from(n)
                    .unwrap_or(u64::MAX)
                    .saturating_mul(1_000_000_000)
                    / rate,
            );
            if let Some(left) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(left);
            }
        }
    };
    if !ended_cleanly {
        connection.aborted.store(true, Ordering::SeqCst);
        linger_zero(&from);
        linger_zero(&to);
    }
    if connection.directions_left.fetch_sub(1, Ordering::SeqCst) == 1 {
        shared.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Writes `bytes` to `to`, one byte per write in split mode, holding while black-holed; false
/// when the connection must abort.
fn forward(
    bytes: &[u8],
    to: &mut TcpStream,
    shared: &Shared,
    connection: &Connection,
    counter: &AtomicU64,
) -> bool {
    let mut rest = bytes;
    while !rest.is_empty() {
        if wait_forwarding(shared, Some(connection)).is_none() {
            return false;
        }
        let piece = if shared.controls().split_bytes {
            &rest[..1]
        } else {
            rest
        };
        match to.write(piece) {
            Ok(0) => return false,
            Ok(n) => {
                rest = &rest[n..];
                counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::SeqCst);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return false,
        }
    }
    true
}
