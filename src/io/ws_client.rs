//! Opening a client WebSocket: TCP (directly or through an HTTP CONNECT proxy), TLS for `wss`
//! with SNI and certificate checks against the URL's host, then the RFC 6455 handshake.
//! Used for control channels (protocol §4.1), rendezvous sockets (§5.1, §6.3) and senders (§7.1).

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use url::Url;

use super::read_buf::ReadBuf;
use super::resolve::Resolver;
use super::stream::Stream;
use crate::proto::ws::handshake::{ClientHandshake, HandshakeOutcome, HandshakeResponse};
use crate::proxy::connect::{tunnel, TunnelError};
use crate::proxy::{ProxyError, ProxyRoute};
use crate::tls::{certificate_problem, server_name, ClientConfig, Connector, TlsStreamError};

/// The largest handshake answer read (head; a refusal's body is read up to this much too).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// How to reach WebSocket servers: TLS trust, an optional HTTP CONNECT proxy, and the
/// resolver that looks host names up off the worker thread.
#[derive(Clone)]
pub struct Dialer {
    pub tls: Arc<ClientConfig>,
    /// The HTTP CONNECT proxy, for the hosts its `NO_PROXY` list does not name.
    pub proxy: Option<Arc<ProxyRoute>>,
    pub connect_timeout: Duration,
    pub resolver: Resolver,
}

/// A connected client WebSocket after `101`.
pub struct ClientConn {
    pub stream: Stream,
    /// Bytes received after the 101 head (the first frames, if any).
    pub leftover: Vec<u8>,
    pub response: HandshakeResponse,
}

/// Why a client WebSocket could not be opened.
#[derive(Debug)]
pub enum ConnectError {
    /// The URL is not `ws://` or `wss://` with a host.
    Url(String),
    /// DNS, TCP or socket failure.
    Io(io::Error),
    /// Nothing within the connect timeout.
    Timeout,
    /// The proxy did not open the tunnel (a 407 names the schemes it asked for).
    Proxy(ProxyError),
    /// TLS handshake failure other than a refused certificate.
    Tls(io::Error),
    /// The server's certificate was refused; `problem` names why (unknown issuer, name
    /// mismatch, expired, ...).
    Certificate { host: String, problem: String },
    /// The server's answer broke the handshake rules.
    Handshake(String),
    /// The server answered with a status other than 101 (e.g. 401/403/404 on listen, 410 for
    /// a delivered rejection). `description` is the reason phrase.
    Rejected { status: u16, description: String },
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url(why) => write!(f, "invalid WebSocket URL: {why}"),
            Self::Io(e) => write!(f, "connection failed: {e}"),
            Self::Timeout => f.write_str("connection timed out"),
            Self::Proxy(e) => e.fmt(f),
            Self::Tls(e) => write!(f, "TLS failed: {e}"),
            Self::Certificate { host, problem } => {
                write!(f, "TLS certificate of {host} refused: {problem}")
            }
            Self::Handshake(why) => write!(f, "WebSocket handshake failed: {why}"),
            Self::Rejected {
                status,
                description,
            } => write!(f, "server answered {status} {description}"),
        }
    }
}

impl std::error::Error for ConnectError {}

/// The parts of a `ws`/`wss` URL a connection needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// `host` or `host:port` when the port is not the scheme's default (for `Host`).
    pub host_header: String,
    pub path_and_query: String,
}

impl Endpoint {
    /// Parses `ws://` / `wss://` URLs; the path and query are kept verbatim (protocol §2.1).
    pub fn parse(url: &str) -> Result<Self, ConnectError> {
        let parsed = Url::parse(url).map_err(|e| ConnectError::Url(e.to_string()))?;
        let tls = match parsed.scheme() {
            "wss" => true,
            "ws" => false,
            other => {
                return Err(ConnectError::Url(format!(
                    "scheme {other:?} is not ws or wss"
                )))
            }
        };
        let host = match parsed.host() {
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            Some(h) => h.to_string(),
            None => return Err(ConnectError::Url("no host".to_owned())),
        };
        let default_port = if tls { 443 } else { 80 };
        let port = parsed.port().unwrap_or(default_port);
        let host_in_header = match parsed.host() {
            Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
            _ => host.clone(),
        };
        let host_header = if port == default_port {
            host_in_header
        } else {
            format!("{host_in_header}:{port}")
        };
        // The raw path and query as written: everything after the authority.
        let after_scheme = &url[url.find("://").map_or(0, |i| i + 3)..];
        let path_and_query = match after_scheme.find(['/', '?']) {
            Some(i) if after_scheme[i..].starts_with('?') => format!("/{}", &after_scheme[i..]),
            Some(i) => after_scheme[i..].to_owned(),
            None => "/".to_owned(),
        };
        let path_and_query = path_and_query
            .split_once('#')
            .map_or(path_and_query.clone(), |(p, _)| p.to_owned());
        Ok(Self {
            tls,
            host,
            port,
            host_header,
            path_and_query,
        })
    }
}

impl Dialer {
    /// Opens `url` with `extra_headers` (e.g. `ServiceBusAuthorization`) and an optional
    /// subprotocol offer.
    pub async fn connect(
        &self,
        url: &str,
        extra_headers: &[(&str, &str)],
        subprotocol: Option<&str>,
    ) -> Result<ClientConn, ConnectError> {
        let endpoint = Endpoint::parse(url)?;
        let stream = monoio::time::timeout(self.connect_timeout, self.open(&endpoint))
            .await
            .map_err(|_| ConnectError::Timeout)??;
        let mut stream = stream;
        let mut request = Vec::with_capacity(512);
        let key: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
        let handshake = ClientHandshake::new(
            &mut request,
            &endpoint.host_header,
            &endpoint.path_and_query,
            key,
            extra_headers,
            subprotocol,
        )
        .map_err(|e| ConnectError::Handshake(e.to_string()))?;
        stream
            .write_all(request)
            .await
            .0
            .map_err(ConnectError::Io)?;
        let mut buf = ReadBuf::new(MAX_ANSWER_BYTES, 0);
        loop {
            match handshake.parse_response(buf.data()) {
                Ok(Some((HandshakeOutcome::Accepted(response), used))) => {
                    buf.consume(used);
                    return Ok(ClientConn {
                        stream,
                        leftover: buf.data().to_vec(),
                        response,
                    });
                }
                Ok(Some((HandshakeOutcome::Rejected(rejection), _))) => {
                    return Err(ConnectError::Rejected {
                        status: rejection.status(),
                        description: rejection.reason().to_owned(),
                    })
                }
                Ok(None) => {}
                Err(e) => return Err(ConnectError::Handshake(e.to_string())),
            }
            match buf.fill(&mut stream).await {
                Ok(0) => {
                    return Err(ConnectError::Handshake(
                        "connection closed before the handshake answer".to_owned(),
                    ))
                }
                Ok(_) => {}
                Err(e) => return Err(ConnectError::Io(e)),
            }
        }
    }

    /// TCP (maybe through the proxy) and TLS when the endpoint asks for it.
    async fn open(&self, endpoint: &Endpoint) -> Result<Stream, ConnectError> {
        let proxy = self
            .proxy
            .as_deref()
            .filter(|route| route.applies_to(&endpoint.host, endpoint.port));
        let tcp = match proxy {
            None => self.tcp(&endpoint.host, endpoint.port).await?,
            Some(route) => {
                let mut tcp = self.tcp(&route.address.host, route.address.port).await?;
                tunnel(&mut tcp, route, &endpoint.host, endpoint.port)
                    .await
                    .map_err(|error| match error {
                        TunnelError::Io(e) => ConnectError::Io(e),
                        TunnelError::Proxy(e) => ConnectError::Proxy(e),
                    })?;
                tcp
            }
        };
        let peer = Stream::prepare(&tcp).map_err(ConnectError::Io)?;
        if !endpoint.tls {
            return Ok(Stream::from_prepared(tcp, peer));
        }
        let name = server_name(&endpoint.host).map_err(ConnectError::Url)?;
        let tls = Connector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|error| tls_error(error, &endpoint.host))?;
        Ok(Stream::tls(tls, peer))
    }
}

/// A refused certificate as [`ConnectError::Certificate`], any other TLS failure as `Tls`.
fn tls_error(error: io::Error, host: &str) -> ConnectError {
    let problem = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<TlsStreamError>())
        .and_then(|inner| match inner {
            TlsStreamError::Protocol(e) => certificate_problem(e, host),
            _ => None,
        });
    match problem {
        Some(problem) => ConnectError::Certificate {
            host: host.to_owned(),
            problem,
        },
        None => ConnectError::Tls(error),
    }
}

impl Dialer {
    /// A TCP connection to `host:port`, the name resolved off the worker thread; each address
    /// is tried in turn and the last failure is returned.
    async fn tcp(&self, host: &str, port: u16) -> Result<TcpStream, ConnectError> {
        let addrs = self
            .resolver
            .resolve_all(host, port)
            .await
            .map_err(ConnectError::Io)?;
        let mut last = None;
        for addr in addrs.iter() {
            match TcpStream::connect_addr(*addr).await {
                Ok(tcp) => return Ok(tcp),
                Err(error) => last = Some(error),
            }
        }
        Err(ConnectError::Io(last.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address"))
        })))
    }
}

/// A fresh GUID for a listener's or sender's `sb-hc-id`
/// ([`crate::proto::hc::identity::guid_from_random`]), from the system's CSPRNG. It names a
/// connection in the service's traces and grants nothing, so should the system generator fail,
/// the process's own generator fills in.
pub fn new_connection_id() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        bytes = fastrand::u128(..).to_le_bytes();
    }
    crate::proto::hc::identity::guid_from_random(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_keep_path_and_query_verbatim() {
        let e = Endpoint::parse(
            "wss://ns.servicebus.windows.net:443/$hc/hyco?sb-hc-action=listen&sb-hc-id=a%2Fb",
        )
        .expect("valid");
        assert!(e.tls);
        assert_eq!(e.port, 443);
        assert_eq!(e.host_header, "ns.servicebus.windows.net");
        assert_eq!(
            e.path_and_query,
            "/$hc/hyco?sb-hc-action=listen&sb-hc-id=a%2Fb"
        );
        let e = Endpoint::parse("ws://127.0.0.1:9000/$hc/a/b").expect("valid");
        assert!(!e.tls);
        assert_eq!(e.host_header, "127.0.0.1:9000");
        assert_eq!(e.path_and_query, "/$hc/a/b");
        let e = Endpoint::parse("ws://[::1]:81?x=1").expect("valid");
        assert_eq!(
            (
                e.host.as_str(),
                e.host_header.as_str(),
                e.path_and_query.as_str()
            ),
            ("::1", "[::1]:81", "/?x=1")
        );
    }

    #[test]
    fn endpoints_refuse_other_schemes() {
        match Endpoint::parse("http://x/") {
            Err(ConnectError::Url(why)) => assert!(why.contains("not ws or wss")),
            other => panic!("unexpected {other:?}"),
        }
    }
}
