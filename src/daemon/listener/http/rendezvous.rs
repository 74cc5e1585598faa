//! Request rendezvous sockets (protocol §6.3, §6.5): WebSocket connections the daemon opens to a
//! request's `address`, either because the relay delivers the request there (shape (b) of
//! protocol §4.4) or because the daemon upgrades its answer to stream a large response. The daemon
//! is the WebSocket client, so everything it writes is masked.
//!
//! - [`reader`]: the requests and request bodies the relay sends on it;
//! - [`body_buffer`]: request body bytes held to send them with a length, or gathered into
//!   chunks;
//! - [`writer`]: the `response` and its body message going back.

pub(crate) mod body_buffer;
pub(crate) mod reader;
pub(crate) mod writer;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::io::Splitable;

pub(crate) use body_buffer::BodyBuffer;
pub(crate) use reader::{Buffered, Incoming, PumpError, RendezvousError, RendezvousReader};
pub(crate) use writer::RendezvousWriter;

use crate::daemon::listener::context::HcContext;
use crate::daemon::listener::hc_series::Histogram;
use crate::io::lazy_timeout::within;
use crate::io::ws_client::ConnectError;
use crate::proto::hc::channel::Outbound;
use crate::proto::ws::fresh_mask_key;

/// How long the daemon waits on the relay: for a body frame, for a write to drain, or for the
/// next request on a rendezvous it holds. The service ends a response body idle for longer than
/// 60 s (protocol §6.8), so waiting longer would be pointless.
pub(crate) const RELAY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Connects `address` verbatim (protocol §6.3 step 2, §11 item 17) within `[limits]
/// handshake_timeout` and records the time from `since` (the request message) to the open
/// socket.
pub(crate) async fn open(
    hc: &HcContext,
    address: &str,
    since: Instant,
) -> Result<(RendezvousReader, RendezvousWriter), ConnectError> {
    let conn = monoio::time::timeout(
        hc.limits.handshake_timeout,
        hc.dialer.connect(address, &[], None),
    )
    .await
    .unwrap_or(Err(ConnectError::Timeout))?;
    hc.observe(Histogram::Rendezvous, since.elapsed());
    let (read, write) = conn.stream.into_split();
    let outbound = Rc::new(RefCell::new(Outbound::client(fresh_mask_key)));
    Ok((
        RendezvousReader::new(read, &conn.leftover, outbound.clone()),
        RendezvousWriter::new(write, RELAY_IDLE_TIMEOUT, outbound),
    ))
}

/// Runs a write, failing it with `TimedOut` when it has not finished within `idle`. A write
/// that timed out leaves its connection unusable. A write the socket takes at once arms no
/// timer ([`within`]).
pub(crate) async fn write_within(
    idle: Duration,
    write: impl std::future::Future<Output = std::io::Result<()>>,
) -> std::io::Result<()> {
    within(idle, write).await.unwrap_or_else(|_| {
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("write stalled for {idle:?}"),
        ))
    })
}
