//! One load connection and its round trip: a WebSocket sender stream (protocol §7.1) or plain TCP
//! for echo round trips, an HTTP/1.1 keep-alive connection to the relay (§7.2; over TLS for a
//! `wss://` relay) or the target. Failures are reported by kind, the key of the summary's error
//! table.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRentExt, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;

use hycod::demo::http_io::{read_body, read_response_head, BUFFER_BYTES};
use hycod::demo::stream_sender::{connect_url, EchoCheck};
use hycod::io::read_buf::ReadBuf;
use hycod::io::stream::Stream;
use hycod::io::ws_client::{ConnectError, Dialer};
use hycod::io::ws_reader::{WsEvent, WsReader, DEFAULT_READ_BUFFER};
use hycod::proto::hc::identity::{CLIENT_AGENT, RELAY_USER_AGENT};
use hycod::proto::http1::{response_body_kind, write_request_head};
use hycod::proto::ws::encode::push_frame;
use hycod::proto::ws::mask_key;
use hycod::proto::ws::{Limits, OpCode, Role};
use hycod::proxy::connect::{tunnel, TunnelError};
use hycod::proxy::ProxyRoute;
use hycod::tls::{client_config, Connector, TrustRoots};

use crate::failure::Failure;
use crate::target::{Endpoint, RelayTls};

/// The largest HTTP response body accepted.
pub(crate) const MAX_RESPONSE_BODY: usize = 16 * 1024 * 1024;

/// What each request carries.
#[derive(Debug, Clone)]
pub(crate) enum Workload {
    /// Echo round trips of this payload.
    Echo { payload: Rc<Vec<u8>> },
    /// HTTP requests: method, body, extra header count, path.
    Http {
        method: String,
        body: Rc<Vec<u8>>,
        headers: usize,
        path: String,
    },
}

/// An open connection.
pub(crate) enum Conn {
    Ws {
        write: OwnedWriteHalf<Stream>,
        reader: WsReader<OwnedReadHalf<Stream>>,
        frame: Vec<u8>,
    },
    Tcp {
        stream: TcpStream,
        buf: Vec<u8>,
    },
    Http {
        stream: Stream,
        buf: ReadBuf,
        request: Vec<u8>,
    },
}

/// Opens a connection for `workload` to `endpoint`.
pub(crate) async fn open(endpoint: &Endpoint, workload: &Workload) -> Result<Conn, Failure> {
    match (endpoint, workload) {
        (
            Endpoint::Relayed {
                relay_url,
                hc,
                token,
                ..
            },
            Workload::Echo { .. },
        ) => {
            let (write, reader) = open_ws(&dialer(endpoint)?, relay_url, hc, token).await?;
            Ok(Conn::Ws {
                write,
                reader,
                frame: Vec::new(),
            })
        }
        (Endpoint::Direct { addr, .. }, Workload::Echo { .. }) => {
            let stream = connect(*addr).await?;
            Ok(Conn::Tcp {
                stream,
                buf: Vec::new(),
            })
        }
        (endpoint, Workload::Http { .. }) => {
            let stream = match endpoint {
                Endpoint::Relayed {
                    relay_url,
                    relay_addr,
                    tls,
                    proxy,
                    ..
                } => connect_relay(relay_url, *relay_addr, tls, proxy.as_deref()).await?,
                Endpoint::Direct { addr, .. } => {
                    Stream::plain(connect(*addr).await?).map_err(|_| Failure::Connect)?
                }
            };
            Ok(Conn::Http {
                stream,
                buf: ReadBuf::new(BUFFER_BYTES, 0),
                request: http_request(endpoint, workload)?,
            })
        }
    }
}

/// The WebSocket client the relayed streams of `endpoint` use: trusting what the relay's
/// [`RelayTls`] trusts (`--ca-file`, or the webpki roots; `ws://` relays need none).
pub(crate) fn dialer(endpoint: &Endpoint) -> Result<Dialer, Failure> {
    let (tls, proxy) = match endpoint {
        Endpoint::Relayed { tls, proxy, .. } => (Arc::clone(&tls.config), proxy.clone()),
        Endpoint::Direct { .. } => (
            client_config(&TrustRoots::WebPki).map_err(|_| Failure::TlsConfig)?,
            None,
        ),
    };
    Ok(Dialer {
        tls,
        proxy,
        connect_timeout: Duration::from_secs(10),
        resolver: Default::default(),
    })
}

/// An HTTP connection to the relay at `addr` (through `proxy` unless its `NO_PROXY` names the
/// relay's host): TLS (rustls, verified against `tls`) for a `wss://` relay, plain TCP
/// otherwise; `TCP_NODELAY` either way.
async fn connect_relay(
    relay_url: &str,
    addr: SocketAddr,
    tls: &RelayTls,
    proxy: Option<&ProxyRoute>,
) -> Result<Stream, Failure> {
    let (host, port) = url::Url::parse(relay_url)
        .ok()
        .and_then(|url| {
            let host = url
                .host_str()?
                .trim_start_matches('[')
                .trim_end_matches(']');
            Some((host.to_owned(), url.port_or_known_default()?))
        })
        .ok_or(Failure::Connect)?;
    let tcp = match proxy.filter(|route| route.applies_to(&host, port)) {
        None => connect(addr).await?,
        Some(route) => {
            let (proxy_host, proxy_port) = (route.address.host.as_str(), route.address.port);
            let proxy_addr = std::net::ToSocketAddrs::to_socket_addrs(&(proxy_host, proxy_port))
                .ok()
                .and_then(|mut addrs| addrs.next())
                .ok_or(Failure::Connect)?;
            let mut tcp = connect(proxy_addr).await?;
            tunnel(&mut tcp, route, &host, port)
                .await
                .map_err(|error| match error {
                    TunnelError::Io(_) => Failure::Connect,
                    TunnelError::Proxy(e) => {
                        crate::proxy::report(&e);
                        Failure::Proxy
                    }
                })?;
            tcp
        }
    };
    let Some(name) = &tls.server_name else {
        return Stream::plain(tcp).map_err(|_| Failure::Connect);
    };
    let peer = Stream::prepare(&tcp).map_err(|_| Failure::Connect)?;
    let encrypted = Connector::from(Arc::clone(&tls.config))
        .connect(name.clone(), tcp)
        .await
        .map_err(|_| Failure::TlsHandshake)?;
    Ok(Stream::tls(encrypted, peer))
}

/// The two halves of a relayed sender stream.
pub(crate) type WsHalves = (OwnedWriteHalf<Stream>, WsReader<OwnedReadHalf<Stream>>);

/// Opens a sender stream to hybrid connection `hc` through `relay_url` (protocol §7.1).
pub(crate) async fn open_ws(
    dialer: &Dialer,
    relay_url: &str,
    hc: &str,
    token: &hycod::secret::Secret,
) -> Result<WsHalves, Failure> {
    let id = hycod::io::ws_client::new_connection_id();
    let url = connect_url(relay_url, hc, &id);
    let headers = [
        ("ServiceBusAuthorization", token.expose()),
        (RELAY_USER_AGENT, CLIENT_AGENT),
    ];
    let conn = dialer
        .connect(&url, &headers, None)
        .await
        .map_err(|error| match error {
            ConnectError::Proxy(e) => {
                crate::proxy::report(&e);
                Failure::Proxy
            }
            _ => Failure::Connect,
        })?;
    let (read, write) = conn.stream.into_split();
    let reader = WsReader::new(
        read,
        Role::Client,
        Limits::default(),
        &conn.leftover,
        DEFAULT_READ_BUFFER,
    );
    Ok((write, reader))
}

/// `len` bytes out and back, as a byte count.
fn both_ways(len: usize) -> u64 {
    u64::try_from(len).map_or(u64::MAX, |n| n.saturating_mul(2))
}

/// A TCP connection with TCP_NODELAY (benchmarking.md rule 5).
pub(crate) async fn connect(addr: SocketAddr) -> Result<TcpStream, Failure> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|_| Failure::Connect)?;
    stream.set_nodelay(true).map_err(|_| Failure::Connect)?;
    Ok(stream)
}

/// The bytes of one HTTP request of `workload` (the same for every request of a connection).
pub(crate) fn http_request(endpoint: &Endpoint, workload: &Workload) -> Result<Vec<u8>, Failure> {
    let Workload::Http {
        method,
        body,
        headers,
        path,
    } = workload
    else {
        return Err(Failure::Encode);
    };
    let (host, target, token) = match endpoint {
        Endpoint::Relayed {
            relay_url,
            relay_addr,
            hc,
            token,
            ..
        } => (
            host_header(relay_url).unwrap_or_else(|| relay_addr.to_string()),
            format!("/{hc}{path}"),
            Some(token.expose()),
        ),
        Endpoint::Direct { addr, path: base } => {
            let base = if base.is_empty() { "/" } else { base.as_str() };
            (addr.to_string(), base.to_owned(), None)
        }
    };
    let length = body.len().to_string();
    let extra: Vec<(String, String)> = (0..*headers)
        .map(|i| (format!("X-Load-{i}"), format!("value-{i:08}")))
        .collect();
    let mut fields: Vec<(&str, &str)> = vec![("Host", host.as_str())];
    if let Some(token) = token {
        fields.push(("ServiceBusAuthorization", token));
    }
    if !body.is_empty() || method != "GET" {
        fields.push(("Content-Length", length.as_str()));
    }
    fields.extend(extra.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    let mut out = Vec::with_capacity(256 + body.len());
    write_request_head(&mut out, method, &target, fields).map_err(|_| Failure::Encode)?;
    out.extend_from_slice(body);
    Ok(out)
}

/// The `Host` of a request through the relay: the relay URL's host (and its port when not the
/// scheme's default). Azure's front end routes by that name, so the address it resolved to
/// would not reach the namespace.
fn host_header(relay_url: &str) -> Option<String> {
    let url = url::Url::parse(relay_url).ok()?;
    let host = match url.host()? {
        url::Host::Ipv6(ip) => format!("[{ip}]"),
        other => other.to_string(),
    };
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host,
    })
}

impl Conn {
    /// One round trip; the payload bytes moved (sent plus received).
    pub(crate) async fn round_trip(&mut self, workload: &Workload) -> Result<u64, Failure> {
        match (self, workload) {
            (
                Conn::Ws {
                    write,
                    reader,
                    frame,
                },
                Workload::Echo { payload },
            ) => {
                frame.clear();
                push_frame(frame, true, OpCode::Binary, payload, mask_key())
                    .map_err(|_| Failure::Encode)?;
                let taken = std::mem::take(frame);
                let (sent, back) = write.write_all(taken).await;
                *frame = back;
                sent.map_err(|_| Failure::Send)?;
                let mut check = EchoCheck::new(payload);
                while !check.is_complete() {
                    match reader.next_event().await.map_err(|_| Failure::Receive)? {
                        WsEvent::Data { payload, .. } => check
                            .accept(reader.bytes(payload))
                            .map_err(|_| Failure::EchoMismatch)?,
                        WsEvent::Close { .. } => return Err(Failure::Closed),
                        WsEvent::Ping(_) | WsEvent::Pong(_) => {}
                    }
                }
                Ok(both_ways(payload.len()))
            }
            (Conn::Tcp { stream, buf }, Workload::Echo { payload }) => {
                let (sent, _) = stream.write_all(Rc::clone(payload)).await;
                sent.map_err(|_| Failure::Send)?;
                let mut back = std::mem::take(buf);
                back.clear();
                back.reserve(payload.len());
                let (read, back) = stream.read_exact(back.slice_mut(0..payload.len())).await;
                let back = back.into_inner();
                let ok = read.is_ok() && back[..] == payload[..];
                *buf = back;
                read.map_err(|_| Failure::Receive)?;
                if !ok {
                    return Err(Failure::EchoMismatch);
                }
                Ok(both_ways(payload.len()))
            }
            (
                Conn::Http {
                    stream,
                    buf,
                    request,
                },
                Workload::Http { method, body, .. },
            ) => {
                let (sent, back) = stream.write_all(std::mem::take(request)).await;
                *request = back;
                sent.map_err(|_| Failure::Send)?;
                let head = read_response_head(stream, buf)
                    .await
                    .map_err(|_| Failure::Receive)?;
                let kind = response_body_kind(method, &head).map_err(|_| Failure::Receive)?;
                let answer = read_body(stream, buf, kind, MAX_RESPONSE_BODY)
                    .await
                    .map_err(|_| Failure::Receive)?;
                if !(200..300).contains(&head.status) {
                    return Err(Failure::Status);
                }
                if !head.keep_alive() {
                    return Err(Failure::NotKeepAlive);
                }
                Ok(u64::try_from(body.len() + answer.len()).unwrap_or(u64::MAX))
            }
            _ => Err(Failure::Encode),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hycod::secret::Secret;

    fn http(headers: usize) -> Workload {
        Workload::Http {
            method: "POST".to_owned(),
            body: Rc::new(vec![b'x'; 4]),
            headers,
            path: "/orders".to_owned(),
        }
    }

    #[test]
    fn relayed_requests_name_the_hybrid_connection_and_carry_the_token() {
        let endpoint = Endpoint::Relayed {
            relay_url: "ws://127.0.0.1:9".to_owned(),
            relay_addr: "127.0.0.1:9".parse().expect("addr"),
            hc: "erp".to_owned(),
            token: Secret::new("SharedAccessSignature sr=x"),
            tls: crate::target::relay_tls(None, None).expect("tls"),
            proxy: None,
        };
        let wire =
            String::from_utf8(http_request(&endpoint, &http(2)).expect("request")).expect("text");
        assert!(wire.starts_with("POST /erp/orders HTTP/1.1\r\n"), "{wire}");
        assert!(wire.contains("ServiceBusAuthorization: SharedAccessSignature sr=x\r\n"));
        assert!(wire.contains("Content-Length: 4\r\n"));
        assert!(wire.contains("X-Load-1: value-00000001\r\n"));
        assert!(wire.ends_with("\r\n\r\nxxxx"));
    }

    /// Azure's front end routes by host name: the `Host` is the relay URL's, never the address
    /// it resolved to.
    #[test]
    fn relayed_requests_carry_the_relay_url_host_not_its_address() {
        for (relay_url, host) in [
            (
                "wss://ns.servicebus.windows.net",
                "ns.servicebus.windows.net",
            ),
            (
                "wss://ns.servicebus.windows.net:443/",
                "ns.servicebus.windows.net",
            ),
            ("ws://relay.example:9000", "relay.example:9000"),
            ("ws://[::1]:9000", "[::1]:9000"),
        ] {
            let endpoint = Endpoint::Relayed {
                relay_url: relay_url.to_owned(),
                relay_addr: "127.0.0.1:9".parse().expect("addr"),
                hc: "erp".to_owned(),
                token: Secret::new("SharedAccessSignature sr=x"),
                tls: crate::target::relay_tls(None, None).expect("tls"),
                proxy: None,
            };
            let wire = String::from_utf8(http_request(&endpoint, &http(0)).expect("request"))
                .expect("text");
            assert!(
                wire.contains(&format!("\r\nHost: {host}\r\n")),
                "{relay_url}: {wire}"
            );
            assert!(!wire.contains("127.0.0.1"), "{wire}");
        }
    }

    #[test]
    fn direct_requests_use_the_url_path_without_a_token() {
        let endpoint = Endpoint::Direct {
            addr: "127.0.0.1:9".parse().expect("addr"),
            path: "/api".to_owned(),
        };
        let wire =
            String::from_utf8(http_request(&endpoint, &http(0)).expect("request")).expect("text");
        assert!(wire.starts_with("POST /api HTTP/1.1\r\n"), "{wire}");
        assert!(!wire.contains("ServiceBusAuthorization"));
        assert!(!wire.contains("X-Load"));
    }
}
