//! Connections to the HTTP target: TCP with `TCP_NODELAY`, TLS for `https` with SNI and
//! certificate checks against the target's host, and the worker's keep-alive pool of idle
//! connections (architecture §1: everything a worker uses is owned by that worker).

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use monoio::net::TcpStream;

use crate::config::HttpTarget;
use crate::daemon::listener::context::HcContext;
use crate::io::read_buf::ReadBuf;
use crate::io::resolve::Resolver;
use crate::io::stream::Stream;
use crate::tls::{server_name, ClientConfig, Connector};

/// Idle connections kept per hybrid connection and worker; the oldest goes when it is full.
pub const MAX_IDLE_CONNECTIONS: usize = 32;

/// Why no connection to the target could be opened.
#[derive(Debug)]
pub enum ConnectError {
    /// The target's host name did not resolve.
    Resolve { host: String, source: io::Error },
    /// The TCP connection failed (refused, unreachable, reset).
    Tcp { address: String, source: io::Error },
    /// The TCP and TLS handshakes did not finish within the time allowed.
    Timeout { address: String, after: Duration },
    /// The target's host is not a valid TLS server name.
    ServerName { reason: String },
    /// The TLS handshake failed (certificate, protocol).
    Tls { address: String, source: io::Error },
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Resolve { host, source } => {
                write!(f, "target host {host} did not resolve: {source}")
            }
            Self::Tcp { address, source } => {
                write!(f, "target {address} refused or is unreachable: {source}")
            }
            Self::Timeout { address, after } => {
                write!(
                    f,
                    "target {address} did not accept a connection within {after:?}"
                )
            }
            Self::ServerName { reason } => f.write_str(reason),
            Self::Tls { address, source } => {
                write!(f, "TLS with target {address} failed: {source}")
            }
        }
    }
}

impl std::error::Error for ConnectError {}

/// The host to connect to: the URL's host without the brackets of an IPv6 literal.
fn connect_host(target: &HttpTarget) -> String {
    match target.url().host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(host) => host.to_string(),
        None => String::new(),
    }
}

/// The `Host` header for the target: its host and, when the URL names one, its port
/// (RFC 9110 §7.2); made once per target, not per request.
pub fn host_header(target: &HttpTarget) -> &str {
    target.host_header()
}

/// Opens a new connection to `target` within `timeout`: the host resolved by `resolver` (off
/// the worker thread), TCP (`TCP_NODELAY`), then TLS for `https`, trusting `tls` and naming
/// the target's host for SNI and the certificate check.
pub(crate) async fn connect(
    target: &HttpTarget,
    tls: &Arc<ClientConfig>,
    resolver: &Resolver,
    timeout: Duration,
) -> Result<Stream, ConnectError> {
    let host = connect_host(target);
    let port = target.port();
    let address = format!("{}:{port}", target.host());
    let opened = monoio::time::timeout(timeout, async {
        let socket =
            resolver
                .resolve(&host, port)
                .await
                .map_err(|source| ConnectError::Resolve {
                    host: host.clone(),
                    source,
                })?;
        let tcp_error = |source| ConnectError::Tcp {
            address: address.clone(),
            source,
        };
        let tcp = TcpStream::connect_addr(socket).await.map_err(tcp_error)?;
        let peer = Stream::prepare(&tcp).map_err(tcp_error)?;
        if !target.is_tls() {
            return Ok(Stream::from_prepared(tcp, peer));
        }
        let name = server_name(&host).map_err(|reason| ConnectError::ServerName { reason })?;
        let stream = Connector::from(tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| ConnectError::Tls {
                address: address.clone(),
                source: e,
            })?;
        Ok(Stream::tls(stream, peer))
    })
    .await;
    opened.unwrap_or_else(|_| {
        Err(ConnectError::Timeout {
            address: address.clone(),
            after: timeout,
        })
    })
}

/// A keep-alive connection in the worker's pool: the stream, and the buffers of its last
/// exchange, which the next exchange on it uses instead of making new ones: the (empty) read
/// buffer its response was read with
/// ([`crate::daemon::listener::upstream::ResponseReader::with_buffer`]) and the buffer its
/// request was written from.
pub struct IdleConnection {
    stream: Stream,
    read_buf: ReadBuf,
    request_buf: Vec<u8>,
}

impl IdleConnection {
    /// The pooled `stream` with the buffers of its last exchange.
    pub(crate) fn new(stream: Stream, read_buf: ReadBuf, request_buf: Vec<u8>) -> Self {
        Self {
            stream,
            read_buf,
            request_buf,
        }
    }

    /// The connection.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// The stream, the read buffer and the request buffer, for the next exchange.
    pub(crate) fn into_parts(self) -> (Stream, ReadBuf, Vec<u8>) {
        (self.stream, self.read_buf, self.request_buf)
    }
}

impl AsRawFd for IdleConnection {
    /// The descriptor of the pooled stream ([`Stream`]'s).
    fn as_raw_fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }
}

/// The most recently used idle connection that is still quiet ([`Stream::is_quiet`]), if any;
/// idle connections the target closed (or wrote to) meanwhile are dropped on the way.
pub(crate) fn take_idle(hc: &HcContext) -> Option<IdleConnection> {
    let mut pool = hc.upstream_pool.borrow_mut();
    while let Some(idle) = pool.pop() {
        if idle.stream.is_quiet() {
            return Some(idle);
        }
    }
    None
}

/// Keeps a connection whose last exchange ended cleanly for the next request.
pub(crate) fn put_idle(hc: &HcContext, idle: IdleConnection) {
    let mut pool = hc.upstream_pool.borrow_mut();
    if pool.len() >= MAX_IDLE_CONNECTIONS {
        pool.remove(0);
    }
    pool.push(idle);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::test_support::{context, http_target};

    fn run<F: std::future::Future>(f: F) -> F::Output {
        crate::runtime::workers::block_on(f).expect("runtime")
    }

    #[test]
    fn host_header_names_the_port_only_when_the_url_does() {
        assert_eq!(host_header(&http_target("http://sap.local/")), "sap.local");
        assert_eq!(
            host_header(&http_target("http://sap.local:80/")),
            "sap.local"
        );
        assert_eq!(
            host_header(&http_target("https://sap.local:8443/x")),
            "sap.local:8443"
        );
        assert_eq!(host_header(&http_target("http://[::1]:81/")), "[::1]:81");
        assert_eq!(host_header(&http_target("http://10.0.0.1/")), "10.0.0.1");
    }

    #[test]
    fn a_refused_connection_is_a_tcp_error() {
        let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target = http_target(&format!("http://{}/", unused.local_addr().unwrap()));
        drop(unused);
        let hc = context(None);
        let result = run(connect(
            &target,
            &hc.upstream_tls,
            &hc.dialer.resolver,
            Duration::from_secs(5),
        ));
        assert!(
            matches!(result, Err(ConnectError::Tcp { .. })),
            "{:?}",
            result.err()
        );
    }

    #[test]
    fn plain_connections_reach_the_target() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let target = http_target(&format!("http://{addr}/"));
        let hc = context(None);
        let stream = run(connect(
            &target,
            &hc.upstream_tls,
            &hc.dialer.resolver,
            Duration::from_secs(5),
        ))
        .unwrap();
        assert_eq!(stream.peer_addr(), addr);
        assert!(!stream.is_tls());
    }

    #[test]
    fn the_pool_hands_out_the_most_recent_and_drops_the_oldest_when_full() {
        // One listener per connection, so each pooled stream has its own peer address.
        let listeners: Vec<_> = (0..=MAX_IDLE_CONNECTIONS)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        let addrs: Vec<_> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
        let hc = context(None);
        run(async {
            for addr in &addrs {
                let tcp = monoio::net::TcpStream::connect_addr(*addr).await.unwrap();
                put_idle(&hc, idle(Stream::plain(tcp).unwrap()));
            }
        });
        let pool = hc.upstream_pool.borrow();
        assert_eq!(pool.len(), MAX_IDLE_CONNECTIONS);
        assert_eq!(
            pool[0].stream().peer_addr(),
            addrs[1],
            "the oldest was dropped"
        );
        drop(pool);
        assert_eq!(
            take_idle(&hc).map(|idle| idle.stream().peer_addr()),
            Some(addrs[MAX_IDLE_CONNECTIONS])
        );
        assert_eq!(hc.upstream_pool.borrow().len(), MAX_IDLE_CONNECTIONS - 1);
    }

    /// `stream` as the pool keeps it, with a small read buffer.
    fn idle(stream: Stream) -> IdleConnection {
        IdleConnection::new(stream, ReadBuf::new(16, 0), Vec::new())
    }

    #[test]
    fn a_pooled_connection_keeps_its_buffer_and_names_its_descriptor() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hc = context(None);
        run(async {
            let tcp = monoio::net::TcpStream::connect_addr(addr).await.unwrap();
            let stream = Stream::plain(tcp).unwrap();
            let fd = stream.as_raw_fd();
            let mut buf = ReadBuf::new(1024, 14);
            buf.extend_from_slice(b"kept");
            put_idle(
                &hc,
                IdleConnection::new(stream, buf, Vec::with_capacity(100)),
            );
            assert_eq!(hc.upstream_pool.borrow()[0].as_raw_fd(), fd);
            let (stream, buf, request_buf) = take_idle(&hc).expect("quiet").into_parts();
            assert_eq!((stream.peer_addr(), buf.data()), (addr, &b"kept"[..]));
            assert_eq!((buf.capacity(), request_buf.capacity()), (1024, 100));
        });
    }

    /// Pools one connection to a fresh listener; the pool and the target's end of it.
    fn pooled_connection(hc: &HcContext) -> std::net::TcpStream {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        run(async {
            let tcp = monoio::net::TcpStream::connect_addr(addr).await.unwrap();
            put_idle(hc, idle(Stream::plain(tcp).unwrap()));
        });
        listener.accept().unwrap().0
    }

    /// Blocks until the pooled connection has received something (peeked, not consumed).
    fn wait_until_readable(hc: &HcContext) {
        use std::os::fd::{AsRawFd, BorrowedFd};
        let pool = hc.upstream_pool.borrow();
        let stream = pool.last().expect("pooled");
        // SAFETY: the pooled stream owns the descriptor and outlives this borrow.
        let fd = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) };
        let mut poll = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        rustix::event::poll(&mut poll, None).expect("poll");
    }

    #[test]
    fn an_idle_connection_the_target_closed_is_not_reused() {
        let hc = context(None);
        let target_end = pooled_connection(&hc);
        drop(target_end);
        wait_until_readable(&hc);
        assert!(
            take_idle(&hc).is_none(),
            "a closed connection was handed out"
        );
        assert!(hc.upstream_pool.borrow().is_empty(), "it was dropped");
    }

    #[test]
    fn an_idle_connection_with_stray_bytes_is_not_reused() {
        let hc = context(None);
        let mut target_end = pooled_connection(&hc);
        std::io::Write::write_all(&mut target_end, b"HTTP/1.1 200 OK\r\n").unwrap();
        wait_until_readable(&hc);
        assert!(
            take_idle(&hc).is_none(),
            "stray bytes would be read as the next answer"
        );
    }

    #[test]
    fn a_quiet_idle_connection_is_reused() {
        let hc = context(None);
        let _target_end = pooled_connection(&hc);
        assert!(take_idle(&hc).is_some());
    }
}
