//! Forwards on a worker (`[[forward]]`, protocol §7.1): the sender end of a TCP tunnel,
//! what `azbridge -L` does (protocol §5.5). Every worker accepts on each forward's one listening
//! socket (the main thread binds it and hands each worker a duplicate; the kernel gives every
//! connection to exactly one waiting accept). Each accepted TCP connection is carried as a
//! sender WebSocket (`sb-hc-action=connect`, protocol §2.2, §7.1) through the relay to the
//! listening daemon, and bytes are pumped both ways with the daemon's zero-copy pump
//! (`io::tcp_pump`: payloads written straight from the decode buffer, masked in place).
//!
//! With `peer = "azbridge"` each stream first announces the forward's `port_name` and goes
//! through only when the azbridge listener acknowledges it ([`super::azbridge::sender`]).
//!
//! A stopped forward (reload removed or replaced it, or the daemon drains) stops accepting at
//! once; the connections it already carries run on, counted as the worker's work in flight.

pub(super) mod setup;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use monoio::io::{AsyncWriteRentExt, Canceller};
use monoio::net::{TcpListener, TcpStream};

use super::azbridge;
use super::metrics::{SharedShard, FORWARD_BYTES, FORWARD_CONNECTIONS, FORWARD_IN_FLIGHT};
use super::plan::ForwardPlan;
use super::tracker::Tracker;
use crate::io::stream::Stream;
use crate::io::tcp_pump::{pump_with, Direction, PumpSettings};
use crate::io::ws_client::ConnectError;
use crate::logging::Escaped;
use crate::metrics::{CounterId, GaugeId};
use crate::proto::hc::identity::{CLIENT_AGENT, RELAY_USER_AGENT};
use crate::proto::ws::mask_key;
use crate::proto::ws::{CloseCode, Encoder, Role};

/// How long opening the sender WebSocket may take. The relay answers within its own rendezvous
/// timeout (about 30 s, protocol §5.1, §8.3); this only guards against a relay that never answers.
const SENDER_CONNECT_TIMEOUT: Duration = Duration::from_secs(45);

/// How long an accept loop pauses after a failed accept (e.g. out of file descriptors), so that
/// a persistent failure does not spin the worker.
const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(100);

/// The `result` label of a local connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// The relay accepted the stream and the connection was pumped.
    Forwarded,
    /// The relay answered the handshake with a refusal (e.g. 404 no listener, 401).
    Refused,
    /// The relay could not be reached or the handshake broke.
    Failed,
}

impl Outcome {
    const ALL: [Self; 3] = [Self::Forwarded, Self::Refused, Self::Failed];

    fn label(self) -> &'static str {
        match self {
            Self::Forwarded => "forwarded",
            Self::Refused => "refused",
            Self::Failed => "failed",
        }
    }
}

/// One forward as seen by one worker.
pub(super) struct ForwardContext {
    pub plan: Arc<ForwardPlan>,
    /// This worker's metrics.
    pub metrics: SharedShard,
    /// This forward's series in `metrics`, registered when the context is made.
    series: ForwardSeries,
}

/// The ids of a forward's series; `None` only if a static descriptor were invalid
/// (`every_descriptor_is_valid` checks them).
struct ForwardSeries {
    /// By [`Outcome`], in the order of [`Outcome::ALL`].
    connections: [Option<CounterId>; 3],
    in_flight: Option<GaugeId>,
    to_relay: Option<CounterId>,
    to_client: Option<CounterId>,
}

impl ForwardContext {
    /// The forward's context on this worker, its series registered (scraped as 0 before the
    /// first connection) so that connections record them by id.
    pub(super) fn new(plan: Arc<ForwardPlan>, metrics: SharedShard) -> Self {
        let series = {
            let mut shard = metrics.borrow_mut();
            let name = plan.config.name.as_str();
            let mut counter = |desc, label| shard.counter(desc, &[name, label]).ok();
            let connections = Outcome::ALL.map(|o| counter(&FORWARD_CONNECTIONS, o.label()));
            let to_relay = counter(&FORWARD_BYTES, direction_label(Direction::ToRelay));
            let to_client = counter(&FORWARD_BYTES, direction_label(Direction::ToTarget));
            ForwardSeries {
                connections,
                in_flight: shard.gauge(&FORWARD_IN_FLIGHT, &[name]).ok(),
                to_relay,
                to_client,
            }
        };
        Self {
            plan,
            metrics,
            series,
        }
    }

    /// The configured `name` (metric and log label).
    pub(super) fn name(&self) -> &str {
        &self.plan.config.name
    }

    /// Counts one local connection by its outcome.
    fn count(&self, outcome: Outcome) {
        if let Some(id) = self.series.connections[outcome as usize] {
            self.metrics.borrow_mut().inc(id);
        }
    }

    /// Adds `n` forwarded bytes in `direction`.
    fn count_bytes(&self, direction: Direction, n: usize) {
        let id = match direction {
            Direction::ToRelay => self.series.to_relay,
            Direction::ToTarget => self.series.to_client,
        };
        if let Some(id) = id {
            let n = u64::try_from(n).unwrap_or(u64::MAX);
            self.metrics.borrow_mut().inc_by(id, n);
        }
    }

    /// Adds `delta` to this forward's in-flight gauge.
    fn gauge_add(&self, delta: i64) {
        if let Some(id) = self.series.in_flight {
            self.metrics.borrow_mut().gauge_add(id, delta);
        }
    }
}

/// The `direction` label of [`FORWARD_BYTES`]: the pump's target is the local client.
fn direction_label(direction: Direction) -> &'static str {
    match direction {
        Direction::ToRelay => "to_relay",
        Direction::ToTarget => "to_client",
    }
}

/// Accepts on `listener` until `stop` is dropped; every connection is carried on its own task,
/// counted in `work`.
///
/// Stopping cancels the pending accept and still awaits it: with io_uring the accept may have
/// completed in the kernel already, and dropping it then would lose that connection (its
/// socket would never be served nor closed). Such a last connection is carried like any other.
pub(super) async fn serve(
    forward: Rc<ForwardContext>,
    listener: TcpListener,
    stop: flume::Receiver<()>,
    work: Tracker,
) {
    loop {
        let canceller = Canceller::new();
        let mut accept = std::pin::pin!(listener.cancelable_accept(canceller.handle()));
        let accepted = monoio::select! {
            accepted = &mut accept => Some(accepted),
            _ = stop.recv_async() => None,
        };
        let (accepted, stopping) = match accepted {
            Some(accepted) => (accepted, false),
            None => {
                let _ = canceller.cancel();
                (accept.await, true)
            }
        };
        match accepted {
            Ok((tcp, peer)) => {
                monoio::spawn(work.track(carry(forward.clone(), tcp, peer)));
            }
            Err(_) if stopping => {}
            Err(error) => {
                tracing::warn!(forward = %forward.name(), %error, "accept failed");
                monoio::time::sleep(ACCEPT_RETRY_PAUSE).await;
            }
        }
        if stopping {
            break;
        }
    }
    // Dropped (its close submitted) before the line is logged: once every worker has logged it,
    // the port closes as soon as the workers' drivers run the closes.
    drop(listener);
    tracing::info!(forward = %forward.name(), "forward stopped accepting");
}

/// The sender WebSocket URL of one forwarded connection (protocol §2.2, §7.1); the token travels
/// in the `ServiceBusAuthorization` header (protocol §3.1), not in the URL.
pub(super) fn connect_url(relay_base: &str, entity_path: &str, id: &str) -> String {
    format!("{relay_base}/$hc/{entity_path}?sb-hc-action=connect&sb-hc-id={id}")
}

/// The expiry (seconds since the epoch) of a token minted at `now` that lives `ttl`.
pub(super) fn token_expiry(now: SystemTime, ttl: Duration) -> u64 {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .saturating_add(ttl.as_secs())
}

/// The outcome of a sender handshake that failed.
fn failure_outcome(error: &ConnectError) -> Outcome {
    match error {
        ConnectError::Rejected { .. } | ConnectError::Proxy(_) => Outcome::Refused,
        _ => Outcome::Failed,
    }
}

/// Keeps the in-flight gauge raised while a connection is carried.
struct InFlight<'a>(&'a ForwardContext);

impl<'a> InFlight<'a> {
    fn enter(forward: &'a ForwardContext) -> Self {
        forward.gauge_add(1);
        Self(forward)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.gauge_add(-1);
    }
}

/// With `peer = "azbridge"`: announces `port_name` on the sender WebSocket `relay`
/// (`leftover`: its bytes read past the handshake) and, once the listener acknowledges it,
/// writes any payload that came with the answer to the local client `tcp`. Returns the
/// WebSocket bytes read past the answer; `None` when the connection is not forwarded (a
/// refusal is counted and logged, and the stream closed).
async fn announce(
    forward: &ForwardContext,
    relay: &mut Stream,
    leftover: &[u8],
    tcp: &mut TcpStream,
    peer: SocketAddr,
    port_name: &str,
) -> Option<Vec<u8>> {
    // What the daemon sends on the stream before the pump takes it over.
    let mut encoder = Encoder::new(Role::Client);
    let opened = azbridge::sender::open(
        relay,
        &mut encoder,
        leftover,
        port_name,
        SENDER_CONNECT_TIMEOUT,
    );
    let prefix = match opened.await {
        Ok(prefix) => prefix,
        Err(error) => {
            forward.count(Outcome::Refused);
            tracing::warn!(forward = %forward.name(), %peer,
                entity_path = %forward.plan.config.entity_path, %port_name, %error,
                "connection not forwarded: the azbridge listener refused it");
            azbridge::close(relay, &mut encoder, CloseCode::NORMAL, "").await;
            return None;
        }
    };
    if !prefix.rest().is_empty() {
        if let Err(error) = tcp.write_all(prefix.rest().to_vec()).await.0 {
            tracing::debug!(forward = %forward.name(), %peer, %error,
                "the local client left before the stream started");
            return None;
        }
    }
    Some(prefix.leftover().to_vec())
}

/// Carries one local TCP connection through the relay as a sender WebSocket. A refused or
/// failed handshake closes the local connection (the reason goes to the log).
async fn carry(forward: Rc<ForwardContext>, mut tcp: TcpStream, peer: SocketAddr) {
    let _in_flight = InFlight::enter(&forward);
    if let Err(error) = tcp.set_nodelay(true) {
        tracing::debug!(forward = %forward.name(), %peer, %error, "TCP_NODELAY not set");
    }
    if let Err(error) = crate::io::loopback::bound_receive_buffer(&tcp, peer) {
        tracing::debug!(forward = %forward.name(), %peer, %error, "receive buffer not bounded");
    }
    let plan = &forward.plan;
    let config = &plan.config;
    let token = config.connection_string.credential().token(
        config.connection_string.namespace_host(),
        &config.entity_path,
        token_expiry(SystemTime::now(), config.token_ttl),
    );
    let id = crate::io::ws_client::new_connection_id();
    let url = connect_url(&plan.relay_base, &config.entity_path, &id);
    let headers = [
        ("ServiceBusAuthorization", token.expose()),
        (RELAY_USER_AGENT, CLIENT_AGENT),
    ];
    let connected = monoio::time::timeout(
        SENDER_CONNECT_TIMEOUT,
        plan.dialer.connect(&url, &headers, None),
    )
    .await
    .unwrap_or(Err(ConnectError::Timeout));
    let mut conn = match connected {
        Ok(conn) => conn,
        Err(error) => {
            let outcome = failure_outcome(&error);
            forward.count(outcome);
            let result = outcome.label();
            tracing::warn!(forward = %forward.name(), %peer, entity_path = %config.entity_path,
                result, error = %Escaped(&error), "connection not forwarded: the relay did not open the stream");
            return;
        }
    };
    let mut leftover = std::mem::take(&mut conn.leftover);
    if let Some(port_name) = &config.port_name {
        match announce(
            &forward,
            &mut conn.stream,
            &leftover,
            &mut tcp,
            peer,
            port_name,
        )
        .await
        {
            Some(after) => leftover = after,
            None => return,
        }
    }
    forward.count(Outcome::Forwarded);
    tracing::info!(forward = %forward.name(), %peer, id = %id, "connection forwarded");
    let on_bytes = |direction: Direction, n: usize| forward.count_bytes(direction, n);
    let settings = PumpSettings {
        ping_interval: config.stream_ping_interval,
        ..PumpSettings::default()
    };
    let report = pump_with(conn.stream, &leftover, tcp, mask_key, on_bytes, &settings).await;
    tracing::info!(forward = %forward.name(), %peer, id = %id, to_relay = report.to_relay,
        to_client = report.to_target, end = %report.end, "forwarded connection closed");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::ProxyError;

    #[test]
    fn the_connect_url_carries_the_action_and_the_id_but_no_token() {
        assert_eq!(
            connect_url("ws://127.0.0.1:9000", "tunnel", "fwd-1"),
            "ws://127.0.0.1:9000/$hc/tunnel?sb-hc-action=connect&sb-hc-id=fwd-1"
        );
    }

    #[test]
    fn the_token_expires_ttl_after_now() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        assert_eq!(token_expiry(now, Duration::from_secs(600)), 1_600);
        let before_epoch = SystemTime::UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!(token_expiry(before_epoch, Duration::from_secs(60)), 60);
    }

    #[test]
    fn refusals_and_failures_are_told_apart() {
        let refused = ConnectError::Rejected {
            status: 404,
            description: "no listener".into(),
        };
        assert_eq!(failure_outcome(&refused), Outcome::Refused);
        assert_eq!(
            failure_outcome(&ConnectError::Proxy(ProxyError::Refused {
                proxy: "px:3128".into(),
                status: 403
            })),
            Outcome::Refused
        );
        assert_eq!(failure_outcome(&ConnectError::Timeout), Outcome::Failed);
        assert_eq!(
            failure_outcome(&ConnectError::Handshake("bad".into())),
            Outcome::Failed
        );
    }

    #[test]
    fn bytes_to_the_local_client_are_labelled_to_client() {
        assert_eq!(direction_label(Direction::ToTarget), "to_client");
        assert_eq!(direction_label(Direction::ToRelay), "to_relay");
    }
}
