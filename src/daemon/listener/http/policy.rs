//! Where and how a response goes back to the relay (protocol §6.1, §6.5), sans-I/O: the
//! control-channel thresholds, the route chosen from the target's response head, the status
//! class a request is counted under, and the answers the daemon gives itself.

use std::time::Duration;

use crate::proto::hc::json_headers::JsonHeaders;
use crate::proto::hc::messages::Response;
use crate::proto::http1::{reason_phrase, BodyKind};

/// The largest response body sent on the control channel. The article limits control-channel
/// bodies to "64 KB"; counting that as 64,000 bytes stays under both readings (KB and KiB) and
/// under the .NET listener's 64 KiB message buffer (protocol §4.2, §6.1).
pub(crate) const CONTROL_BODY_LIMIT: usize = 64_000;

/// The largest `response` JSON sent on the control channel: header metadata is limited to
/// 32 KB (protocol §6.1), counted as 32,000 bytes of JSON text for the same reason.
pub(crate) const CONTROL_JSON_LIMIT: usize = 32_000;

/// How long a response body that may fit the control channel is gathered before the daemon
/// stops waiting for its end and streams it through a rendezvous instead (protocol §6.5: .NET waits
/// 2 s). About what opening a rendezvous to Azure costs (TCP, TLS and WebSocket handshakes), so
/// a slow body never delays its head by much more than the detour would have.
pub(crate) const GATHER_WINDOW: Duration = Duration::from_millis(200);

/// How the response to a request goes back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// No body: the `response` goes on the control channel at once.
    ControlNow,
    /// The body may fit: gather it (up to [`CONTROL_BODY_LIMIT`] bytes, for up to
    /// [`GATHER_WINDOW`]) and answer on the control channel, or stream once it does not fit.
    Gather,
    /// Stream through a rendezvous: the request came on one, or the response is too large.
    Stream,
}

/// The route for a response whose head produced `json_len` bytes of `response` JSON and whose
/// body is framed as `kind`; `control_allowed` is false for requests that came on a rendezvous
/// (protocol §6.1: their response must use it).
pub(crate) fn route(control_allowed: bool, kind: BodyKind, json_len: usize) -> Route {
    if !control_allowed || json_len > CONTROL_JSON_LIMIT {
        return Route::Stream;
    }
    match kind {
        BodyKind::Empty => Route::ControlNow,
        BodyKind::ContentLength(len) if !usize::try_from(len).is_ok_and(fits_control_channel) => {
            Route::Stream
        }
        _ => Route::Gather,
    }
}

/// Whether `len` gathered body bytes still fit the control channel.
pub(crate) fn fits_control_channel(len: usize) -> bool {
    len <= CONTROL_BODY_LIMIT
}

/// The status label a request is counted under in `hycod_requests_total`: the class of the
/// status the sender received (`"1xx"` … `"9xx"`), or [`ABORTED`].
pub(crate) fn status_class(status: u16) -> &'static str {
    match status / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        5 => "5xx",
        6 => "6xx",
        7 => "7xx",
        8 => "8xx",
        _ => "9xx",
    }
}

/// The status label of a request whose response could not be delivered whole: the target's
/// body broke off, the rendezvous failed, or the request could not be answered at all.
pub(crate) const ABORTED: &str = "aborted";

/// Why the daemon answers a request itself (protocol §6.8, §8.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LocalAnswer {
    /// The relayed request cannot be forwarded safely (400).
    BadRequest,
    /// No `http_target` is configured (501).
    NotImplemented,
    /// The target refused, is unreachable, or sent no valid response (502).
    BadGateway,
    /// The target sent no response head within the deadline (504).
    GatewayTimeout,
}

impl LocalAnswer {
    /// The HTTP status.
    pub(crate) fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::NotImplemented => 501,
            Self::BadGateway => 502,
            Self::GatewayTimeout => 504,
        }
    }

    /// The `response` (status, standard reason, plain-text body) and its body. `detail` is
    /// shown to the sender: it must name no internal address and no header value.
    pub(crate) fn response(self, request_id: &str, detail: &str) -> (Response, Vec<u8>) {
        let status = self.status();
        let body = format!("hycod: {detail}\n").into_bytes();
        let mut headers = JsonHeaders::new();
        headers.push("Content-Type", "text/plain; charset=utf-8");
        let response = Response {
            request_id: request_id.to_owned(),
            status_code: status,
            status_description: Some(reason_phrase(status).to_owned()),
            response_headers: Some(headers),
            body: true,
        };
        (response, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_from_a_rendezvous_always_stream() {
        for kind in [
            BodyKind::Empty,
            BodyKind::ContentLength(1),
            BodyKind::Chunked,
        ] {
            assert_eq!(route(false, kind, 10), Route::Stream);
        }
    }

    #[test]
    fn bodiless_responses_go_on_the_control_channel_at_once() {
        assert_eq!(route(true, BodyKind::Empty, 100), Route::ControlNow);
    }

    #[test]
    fn known_lengths_up_to_the_limit_are_gathered_and_larger_ones_stream() {
        assert_eq!(route(true, BodyKind::ContentLength(1), 100), Route::Gather);
        assert_eq!(
            route(true, BodyKind::ContentLength(64_000), 100),
            Route::Gather
        );
        assert_eq!(
            route(true, BodyKind::ContentLength(64_001), 100),
            Route::Stream
        );
    }

    #[test]
    fn unknown_lengths_are_gathered() {
        assert_eq!(route(true, BodyKind::Chunked, 100), Route::Gather);
        assert_eq!(route(true, BodyKind::CloseDelimited, 100), Route::Gather);
    }

    #[test]
    fn large_header_metadata_streams_even_without_a_body() {
        assert_eq!(route(true, BodyKind::Empty, 32_000), Route::ControlNow);
        assert_eq!(route(true, BodyKind::Empty, 32_001), Route::Stream);
    }

    #[test]
    fn gathered_bodies_fit_up_to_the_limit() {
        assert!(fits_control_channel(0));
        assert!(fits_control_channel(CONTROL_BODY_LIMIT));
        assert!(!fits_control_channel(CONTROL_BODY_LIMIT + 1));
    }

    #[test]
    fn status_classes() {
        let cases = [
            (100, "1xx"),
            (200, "2xx"),
            (204, "2xx"),
            (302, "3xx"),
            (418, "4xx"),
            (502, "5xx"),
            (599, "5xx"),
            (999, "9xx"),
        ];
        for (status, class) in cases {
            assert_eq!(status_class(status), class, "{status}");
        }
    }

    #[test]
    fn local_answers_carry_status_reason_and_a_plain_text_body() {
        let cases = [
            (LocalAnswer::BadRequest, 400, "Bad Request"),
            (LocalAnswer::NotImplemented, 501, "Not Implemented"),
            (LocalAnswer::BadGateway, 502, "Bad Gateway"),
            (LocalAnswer::GatewayTimeout, 504, "Gateway Timeout"),
        ];
        for (answer, status, reason) in cases {
            let (response, body) = answer.response("r1", "why");
            assert_eq!(response.request_id, "r1");
            assert_eq!(response.status_code, status);
            assert_eq!(response.status_description.as_deref(), Some(reason));
            assert!(response.body);
            assert_eq!(
                response
                    .response_headers
                    .as_ref()
                    .and_then(|h| h.get("content-type")),
                Some("text/plain; charset=utf-8")
            );
            assert_eq!(body, b"hycod: why\n");
        }
    }
}
