//! `hycod forward`: the sender end of a TCP tunnel (what `azbridge -L` does, spec §5.5, §7.1).
//! Each local TCP connection becomes a Hybrid Connections sender WebSocket through the relay to
//! the listening daemon; bytes are pumped both ways with the daemon's zero-copy pump
//! (`io::tcp_pump`: payloads written straight from the decode buffer, masked in place).

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use monoio::net::{TcpListener, TcpStream};

use crate::auth::connection_string::Credential;
use crate::daemon::context::mask_key;
use crate::io::tcp_pump::pump;
use crate::io::ws_client::Dialer;
use crate::runtime::workers;

/// What a forwarder needs.
#[derive(Clone)]
pub struct ForwardConfig {
    /// The local address TCP clients connect to (port 0 picks one).
    pub listen: SocketAddr,
    /// `wss://{namespace}` or a self-hosted relay's URL, without a trailing `/`.
    pub relay_base: String,
    /// The namespace host tokens are scoped to.
    pub namespace_host: String,
    /// A credential with the Send right.
    pub credential: Credential,
    /// The hybrid connection path.
    pub entity: String,
    /// Lifetime of each connect token (one token per connection; streams outlive it, spec §4.6).
    pub token_ttl: Duration,
    pub dialer: Dialer,
    pub workers: NonZeroUsize,
}

/// A running forwarder.
pub struct ForwardHandle {
    pub local_addr: SocketAddr,
    pub workers: Vec<JoinHandle<()>>,
}

/// Binds the local port and starts the workers; every worker accepts on the same socket.
pub fn start(config: ForwardConfig) -> io::Result<ForwardHandle> {
    let listener = StdListener::bind(config.listen)?;
    listener.set_nonblocking(true)?;
    let local_addr = listener.local_addr()?;
    let listener = Arc::new(listener);
    let config = Arc::new(config);
    let handles = workers::spawn("forward", config.workers, move |worker| {
        let config = config.clone();
        let listener = listener.try_clone();
        async move {
            // Registered inside the worker's runtime: the socket belongs to its driver.
            match listener.and_then(TcpListener::from_std) {
                Ok(listener) => accept_loop(config, listener).await,
                Err(e) => tracing::error!(worker, error = %e, "cannot register the forward socket"),
            }
        }
    })?;
    Ok(ForwardHandle {
        local_addr,
        workers: handles,
    })
}

async fn accept_loop(config: Arc<ForwardConfig>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((tcp, peer)) => {
                monoio::spawn(forward_one(config.clone(), tcp, peer));
            }
            Err(e) => tracing::warn!(error = %e, "accept failed"),
        }
    }
}

/// Carries one local TCP connection through the relay as a sender WebSocket.
async fn forward_one(config: Arc<ForwardConfig>, tcp: TcpStream, peer: SocketAddr) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "TCP_NODELAY not set");
    }
    let expiry = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        + config.token_ttl.as_secs();
    let token = config
        .credential
        .token(&config.namespace_host, &config.entity, expiry);
    let id = format!("fwd-{:016x}", fastrand::u64(..));
    let url = format!(
        "{}/$hc/{}?sb-hc-action=connect&sb-hc-id={id}",
        config.relay_base, config.entity
    );
    let conn = match config
        .dialer
        .connect(&url, &[("ServiceBusAuthorization", token.expose())], None)
        .await
    {
        Ok(conn) => conn,
        Err(e) => {
            // Dropping the TCP connection tells the local client; the reason goes to the log.
            tracing::warn!(%peer, entity = %config.entity, error = %e, "relay refused the stream");
            return;
        }
    };
    tracing::info!(%peer, entity = %config.entity, id = %id, "stream forwarded");
    let report = pump(conn.stream, &conn.leftover, tcp, mask_key, |_, _| {}).await;
    tracing::info!(%peer, id = %id, sent = report.to_relay, received = report.to_target, end = %report.end, "stream closed");
}
