//! An HTTP sender (protocol §7.2): plain HTTP/1.1 to the relay's address, path `/{hc}/...`, the
//! token in `ServiceBusAuthorization` (§2.5, §3.1), over one keep-alive connection. Each
//! exchange is timed and its answer checked byte for byte against what the sample ERP service
//! computes for the same request.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;

use super::erp;
use super::http_io::{read_body, read_response_head, HttpIoError, BUFFER_BYTES};
use super::workload::PlannedRequest;
use crate::io::read_buf::ReadBuf;
use crate::io::stream::Stream;
use crate::proto::http1::{response_body_kind, write_request_head, WriteError};
use crate::secret::Secret;

/// The largest response body a sender accepts.
pub(crate) const MAX_RESPONSE_BODY: usize = 16 * 1024 * 1024;

/// Why one relayed request failed.
#[derive(Debug)]
pub enum RequestFailure {
    /// No TCP connection to the relay.
    Connect(io::Error),
    /// The request could not be encoded (a bug in the workload).
    Encode(WriteError),
    /// Writing the request failed.
    Send(io::Error),
    /// The response could not be read.
    Receive(HttpIoError),
    /// No complete response within the sender's timeout.
    Timeout { after: Duration },
    /// The status is not the one the sample service gives.
    Status { expected: u16, got: u16 },
    /// The body differs from the sample service's answer.
    Body {
        expected_len: usize,
        got_len: usize,
        first_difference: usize,
    },
}

impl fmt::Display for RequestFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "cannot connect to the relay: {e}"),
            Self::Encode(e) => write!(f, "cannot encode the request: {e}"),
            Self::Send(e) => write!(f, "sending the request failed: {e}"),
            Self::Receive(e) => write!(f, "reading the response failed: {e}"),
            Self::Timeout { after } => write!(f, "no complete response within {after:?}"),
            Self::Status { expected, got } => write!(f, "status {got}, expected {expected}"),
            Self::Body {
                expected_len,
                got_len,
                first_difference,
            } => write!(
                f,
                "body differs from the service's answer at byte {first_difference} \
                 ({got_len} bytes, expected {expected_len})"
            ),
        }
    }
}

impl std::error::Error for RequestFailure {}

/// A received response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exchange {
    pub status: u16,
    pub body: Vec<u8>,
    /// Whether the connection may carry the next request.
    pub keep_alive: bool,
}

/// The request's bytes: head and body (`Content-Length` framing).
pub(crate) fn encode_request(
    request: &PlannedRequest,
    hc: &str,
    host: &str,
    token: &Secret,
) -> Result<Vec<u8>, WriteError> {
    let length = request.body.len().to_string();
    let mut fields = vec![
        ("Host", host),
        ("ServiceBusAuthorization", token.expose()),
        ("Accept", "application/json"),
    ];
    if !request.body.is_empty() {
        fields.push(("Content-Type", "application/json"));
        fields.push(("Content-Length", length.as_str()));
    }
    let mut out = Vec::with_capacity(512 + request.body.len());
    write_request_head(&mut out, request.method, &request.sender_target(hc), fields)?;
    out.extend_from_slice(&request.body);
    Ok(out)
}

/// Compares a response with the sample service's answer.
pub(crate) fn check(exchange: &Exchange, expected: &erp::Answer) -> Result<(), RequestFailure> {
    if exchange.status != expected.status {
        return Err(RequestFailure::Status {
            expected: expected.status,
            got: exchange.status,
        });
    }
    if exchange.body != expected.body {
        let first_difference = exchange
            .body
            .iter()
            .zip(&expected.body)
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| exchange.body.len().min(expected.body.len()));
        return Err(RequestFailure::Body {
            expected_len: expected.body.len(),
            got_len: exchange.body.len(),
            first_difference,
        });
    }
    Ok(())
}

/// One keep-alive connection to the relay.
pub(crate) struct Connection {
    stream: Stream,
    buf: ReadBuf,
}

impl Connection {
    /// Connects to the relay.
    pub(crate) async fn open(relay: SocketAddr) -> Result<Self, RequestFailure> {
        let tcp = TcpStream::connect(relay)
            .await
            .map_err(RequestFailure::Connect)?;
        let stream = Stream::plain(tcp).map_err(RequestFailure::Connect)?;
        Ok(Self {
            stream,
            buf: ReadBuf::new(BUFFER_BYTES, 0),
        })
    }

    /// Sends `wire` (a `method` request) and reads the whole response.
    pub(crate) async fn exchange(
        &mut self,
        method: &str,
        wire: Vec<u8>,
    ) -> Result<Exchange, RequestFailure> {
        self.stream
            .write_all(wire)
            .await
            .0
            .map_err(RequestFailure::Send)?;
        let head = read_response_head(&mut self.stream, &mut self.buf)
            .await
            .map_err(RequestFailure::Receive)?;
        let kind = response_body_kind(method, &head)
            .map_err(|e| RequestFailure::Receive(HttpIoError::Framing(e)))?;
        let body = read_body(&mut self.stream, &mut self.buf, kind, MAX_RESPONSE_BODY)
            .await
            .map_err(RequestFailure::Receive)?;
        Ok(Exchange {
            status: head.status,
            keep_alive: head.keep_alive(),
            body,
        })
    }
}

/// One request sent and checked: its latency and status, or why it failed.
pub(crate) struct Outcome {
    pub latency: Duration,
    pub status: Option<u16>,
    pub result: Result<(), RequestFailure>,
    /// Whether the connection can be used again.
    pub reusable: bool,
}

/// Sends `request` on `connection` (opening one if there is none) within `timeout` and checks
/// the answer against `expected`; drops the connection when it cannot carry another request.
pub(crate) async fn send(
    connection: &mut Option<Connection>,
    relay: SocketAddr,
    request: &PlannedRequest,
    expected: &erp::Answer,
    hc: &str,
    token: &Secret,
    timeout: Duration,
) -> Outcome {
    let started = Instant::now();
    let host = relay.to_string();
    let exchanged = monoio::time::timeout(timeout, async {
        let wire = encode_request(request, hc, &host, token).map_err(RequestFailure::Encode)?;
        let open = match connection {
            Some(open) => open,
            None => connection.insert(Connection::open(relay).await?),
        };
        open.exchange(request.method, wire).await
    })
    .await
    .unwrap_or(Err(RequestFailure::Timeout { after: timeout }));
    let latency = started.elapsed();
    let outcome = match exchanged {
        Ok(exchange) => Outcome {
            latency,
            status: Some(exchange.status),
            reusable: exchange.keep_alive,
            result: check(&exchange, expected),
        },
        Err(failure) => Outcome {
            latency,
            status: None,
            reusable: false,
            result: Err(failure),
        },
    };
    if !outcome.reusable {
        *connection = None;
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::workload;
    use crate::proto::http1::{parse_request_head, Limits};

    #[test]
    fn requests_carry_the_token_header_and_the_hybrid_connection_path() {
        let planned = workload::request(1);
        let token = Secret::new("SharedAccessSignature sr=x&sig=y&se=1&skn=root");
        let wire = encode_request(&planned, "erp-api", "127.0.0.1:1", &token).expect("encode");
        let (head, len) = parse_request_head(&wire, &Limits::default())
            .expect("valid")
            .expect("complete");
        assert_eq!(head.method, "POST");
        assert_eq!(head.target, "/erp-api/api/bapi");
        assert_eq!(
            head.headers.get("servicebusauthorization"),
            Some(token.expose().as_bytes())
        );
        assert_eq!(&wire[len..], planned.body.as_slice());
        let get = encode_request(&workload::request(0), "erp-api", "h", &token).expect("encode");
        let (head, _) = parse_request_head(&get, &Limits::default())
            .expect("valid")
            .expect("complete");
        assert!(!head.headers.contains("content-length"));
    }

    fn exchange(status: u16, body: &[u8]) -> Exchange {
        Exchange {
            status,
            body: body.to_vec(),
            keep_alive: true,
        }
    }

    #[test]
    fn the_exact_answer_passes() {
        let expected = erp::Answer {
            status: 200,
            body: b"{\"a\":1}".to_vec(),
        };
        assert!(check(&exchange(200, b"{\"a\":1}"), &expected).is_ok());
    }

    #[test]
    fn another_status_fails_with_both_codes() {
        let expected = erp::Answer {
            status: 200,
            body: Vec::new(),
        };
        let failure = check(&exchange(502, b""), &expected);
        assert!(
            matches!(
                failure,
                Err(RequestFailure::Status {
                    expected: 200,
                    got: 502
                })
            ),
            "{failure:?}"
        );
    }

    #[test]
    fn another_body_fails_at_the_first_different_byte() {
        let expected = erp::Answer {
            status: 200,
            body: b"abcdef".to_vec(),
        };
        let differs = check(&exchange(200, b"abXdef"), &expected);
        assert!(
            matches!(
                differs,
                Err(RequestFailure::Body {
                    first_difference: 2,
                    ..
                })
            ),
            "{differs:?}"
        );
        let short = check(&exchange(200, b"abc"), &expected);
        assert!(
            matches!(
                short,
                Err(RequestFailure::Body {
                    expected_len: 6,
                    got_len: 3,
                    first_difference: 3
                })
            ),
            "{short:?}"
        );
    }

    #[test]
    fn a_relay_that_does_not_answer_times_out() {
        crate::runtime::workers::block_on(async {
            let silent = monoio::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = silent.local_addr().expect("addr");
            let mut connection = None;
            let outcome = send(
                &mut connection,
                addr,
                &workload::request(1),
                &workload::request(1).expected(),
                "erp-api",
                &Secret::new("t"),
                Duration::from_millis(50),
            )
            .await;
            assert!(
                matches!(outcome.result, Err(RequestFailure::Timeout { .. })),
                "{:?}",
                outcome.result.err()
            );
            assert!(!outcome.reusable);
            assert!(connection.is_none());
            drop(silent);
        })
        .expect("runtime");
    }
}
