//! Turning a relayed `request` (protocol §4.4) into the head of the upstream request, sans-I/O:
//! the path mapped onto the target's base path with the query byte-exact (protocol §6.7), the
//! relayed headers filtered and checked (protocol §6.6), `Host` set to the target's authority and
//! the body framing the daemon knows. A request that cannot be sent safely is refused here,
//! before any byte reaches the target (the daemon answers it with 400).

use std::fmt;

use crate::config::HttpTarget;
use crate::daemon::listener::upstream::{host_header, request, Framing};
use crate::proto::hc::headers::{request_pairs_for_upstream, HeaderError};
use crate::proto::hc::path::{upstream_target, PathError};
use crate::proto::hc::received_request::ReceivedRequest;
use crate::proto::http1::WriteError;

/// A request ready for the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Prepared<'a> {
    /// The request method, as relayed.
    pub method: &'a str,
    /// The complete request head (request line, headers, blank line).
    pub head: Vec<u8>,
}

/// Why a relayed request cannot be forwarded; the daemon answers 400 itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PrepareError {
    /// The request has no `method` (protocol §4.4: shape (a) always carries one).
    MissingMethod,
    /// The request has no `requestTarget`.
    MissingRequestTarget,
    /// The `requestTarget` does not map onto the target (protocol §6.7).
    Path(PathError),
    /// A relayed header cannot be forwarded (CR/LF injection, bad name or value).
    Header(HeaderError),
    /// The request line cannot be written (method not a token, target with whitespace).
    Head(WriteError),
}

impl fmt::Display for PrepareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingMethod => f.write_str("the request has no method"),
            Self::MissingRequestTarget => f.write_str("the request has no requestTarget"),
            Self::Path(e) => e.fmt(f),
            Self::Header(e) => e.fmt(f),
            Self::Head(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PrepareError {}

/// Builds the upstream request head for `request`, sent to `target` for the hybrid connection
/// at `entity_path`, with a body framed as `framing`.
pub(crate) fn prepare<'a>(
    request: &'a ReceivedRequest,
    entity_path: &str,
    target: &HttpTarget,
    framing: Framing,
) -> Result<Prepared<'a>, PrepareError> {
    let method = request.method().ok_or(PrepareError::MissingMethod)?;
    let request_target = request
        .request_target()
        .ok_or(PrepareError::MissingRequestTarget)?;
    let path = upstream_target(request_target, entity_path, target.base_path())
        .map_err(PrepareError::Path)?;
    let headers = request_pairs_for_upstream(request.headers()).map_err(PrepareError::Header)?;
    let mut head = Vec::with_capacity(256);
    request::write_head(
        &mut head,
        method,
        &path,
        host_header(target),
        &headers,
        framing,
    )
    .map_err(PrepareError::Head)?;
    Ok(Prepared { method, head })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::test_support::http_target;
    use crate::proto::hc::messages::Request;

    fn request(method: &str, target: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            address: Some("ws://relay/$hc/hyco?sb-hc-action=request".into()),
            id: Some("r1".into()),
            request_target: Some(target.into()),
            method: Some(method.into()),
            remote_endpoint: None,
            request_headers: Some(headers.iter().copied().collect()),
            body: Some(false),
        }
    }

    fn head_text<'p>(prepared: &'p Prepared<'_>) -> &'p str {
        std::str::from_utf8(&prepared.head).unwrap()
    }

    #[test]
    fn maps_path_keeps_query_and_sets_the_targets_host() {
        let target = http_target("http://sap.local:8065/ErpConnect/");
        let req = request(
            "POST",
            "/hyco/api/orders?top=5&%2Fx=a+b",
            &[
                ("Host", "ns.servicebus.windows.net"),
                ("X-Multi", "a, b"),
                ("Content-Length", "999"),
                ("Expect", "100-continue"),
            ],
        );
        let req = ReceivedRequest::from(req);
        let prepared = prepare(&req, "hyco", &target, Framing::Length(3)).unwrap();
        assert_eq!(prepared.method, "POST");
        assert_eq!(
            head_text(&prepared),
            "POST /ErpConnect/api/orders?top=5&%2Fx=a+b HTTP/1.1\r\nHost: sap.local:8065\r\nX-Multi: a, b\r\nContent-Length: 3\r\n\r\n"
        );
    }

    #[test]
    fn default_ports_are_left_out_of_host_and_ipv6_keeps_brackets() {
        let req = ReceivedRequest::from(request("GET", "/hyco", &[]));
        let plain = prepare(
            &req,
            "hyco",
            &http_target("http://a.example/"),
            Framing::None,
        )
        .unwrap();
        assert!(
            head_text(&plain).starts_with("GET / HTTP/1.1\r\nHost: a.example\r\n"),
            "{}",
            head_text(&plain)
        );
        let tls = prepare(
            &req,
            "hyco",
            &http_target("https://[::1]:8443/b"),
            Framing::None,
        )
        .unwrap();
        assert!(
            head_text(&tls).starts_with("GET /b HTTP/1.1\r\nHost: [::1]:8443\r\n"),
            "{}",
            head_text(&tls)
        );
    }

    #[test]
    fn crlf_in_a_header_value_is_refused() {
        let target = http_target("http://up/");
        let req = request("GET", "/hyco/x", &[("X-Evil", "a\r\nInjected: yes")]);
        let err = prepare(&ReceivedRequest::from(req), "hyco", &target, Framing::None).unwrap_err();
        assert_eq!(
            err,
            PrepareError::Header(HeaderError::HeaderInjection {
                name: "X-Evil".into()
            })
        );
        assert!(!err.to_string().contains("Injected"), "{err}");
    }

    #[test]
    fn bad_names_methods_and_targets_are_refused() {
        let target = http_target("http://up/");
        let cases = [
            (
                request("GET", "/hyco", &[("Bad Name", "v")]),
                PrepareError::Header(HeaderError::InvalidName {
                    name: "Bad Name".into(),
                }),
            ),
            (
                request("GE T", "/hyco", &[]),
                PrepareError::Head(WriteError::InvalidMethod {
                    method: "GE T".into(),
                }),
            ),
            (
                request("GET", "/hyco/a b", &[]),
                PrepareError::Head(WriteError::InvalidTarget),
            ),
            (
                request("GET", "/other/x", &[]),
                PrepareError::Path(PathError::TargetOutsideEntity {
                    entity_path: "hyco".into(),
                }),
            ),
            (
                Request {
                    method: None,
                    ..request("GET", "/hyco", &[])
                },
                PrepareError::MissingMethod,
            ),
            (
                Request {
                    request_target: None,
                    ..request("GET", "/hyco", &[])
                },
                PrepareError::MissingRequestTarget,
            ),
        ];
        for (req, expected) in cases {
            let err =
                prepare(&ReceivedRequest::from(req), "hyco", &target, Framing::None).unwrap_err();
            assert_eq!(err, expected);
        }
    }

    #[test]
    fn missing_headers_are_an_empty_set() {
        let target = http_target("http://up/");
        let req = Request {
            request_headers: None,
            ..request("DELETE", "/hyco/x", &[])
        };
        let req = ReceivedRequest::from(req);
        let prepared = prepare(&req, "hyco", &target, Framing::None).unwrap();
        assert_eq!(
            head_text(&prepared),
            "DELETE /x HTTP/1.1\r\nHost: up\r\n\r\n"
        );
    }
}
