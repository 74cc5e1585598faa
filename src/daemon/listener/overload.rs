//! Requests refused because a request maximum of `[limits]` is reached: the
//! relay gets a 503 `response` on the control channel at once (protocol §4.5), or through the
//! request's rendezvous once the channel is detaching ([`refuse`]); the sender sees 503, and
//! nothing reaches the target.

use super::admission::Exceeded;
use super::context::{ControlWriter, Hc};
use super::hc_series::Counter;
use super::http::reply::refuse;
use crate::daemon::metrics::REQUESTS_REJECTED;
use crate::daemon::tracker::Tracker;
use crate::logging::Escaped;
use crate::proto::hc::messages::Response;
use crate::proto::hc::received_request::ReceivedRequest;

/// The status of a request over a limit: the listener is healthy but busy (RFC 9110 §15.6.4).
pub(crate) const OVER_LIMIT: u16 = 503;

/// The reason phrase the sender sees.
pub(crate) const OVER_LIMIT_PHRASE: &str = "Too many requests in flight";

/// Answers `request` with 503 ([`refuse`]: on the control channel, or through its rendezvous
/// once the channel is detaching) and counts it by `exceeded`'s reason.
pub(crate) fn refuse_request(
    hc: &Hc,
    request: &ReceivedRequest,
    writer: &ControlWriter,
    exceeded: Exceeded,
    work: &Tracker,
) {
    hc.count_labelled(&REQUESTS_REJECTED, &[exceeded.reason()], 1);
    hc.count(Counter::Answered(OVER_LIMIT), 1);
    let Some(id) = request.id().map(str::to_owned) else {
        tracing::warn!(hybrid_connection = %hc.name, reason = %exceeded,
            "request without an id over the request limit dropped");
        return;
    };
    let response = refusal(id.clone(), OVER_LIMIT, OVER_LIMIT_PHRASE);
    let sent = refuse(hc, writer, request.address(), &response, work);
    tracing::warn!(hybrid_connection = %hc.name, id = %Escaped(&id), status = OVER_LIMIT, sent,
        reason = %exceeded, "request refused: request limit reached");
}

/// A bodiless `response` with `status` for request `id` (the daemon's own answers: over a
/// limit here, unreadable in [`super::unreadable`]).
pub(super) fn refusal(id: String, status: u16, phrase: &str) -> Response {
    Response {
        request_id: id,
        status_code: status,
        status_description: Some(phrase.to_owned()),
        response_headers: None,
        body: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_503_response_without_body() {
        let json = refusal("req-1_G1".to_owned(), OVER_LIMIT, OVER_LIMIT_PHRASE).to_json();
        let response: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(
            response,
            serde_json::json!({"response": {
                "requestId": "req-1_G1",
                "statusCode": 503,
                "statusDescription": "Too many requests in flight",
                "body": false
            }})
        );
    }
}
