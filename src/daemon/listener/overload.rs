//! Requests refused because a request maximum of `[limits]` is reached: the
//! relay gets a 503 `response` on the control channel at once (protocol §4.5), the sender sees 503,
//! and nothing reaches the target.

use super::admission::Exceeded;
use super::context::{ControlWriter, Hc};
use super::drain::refusal_json;
use super::hc_series::Counter;
use crate::daemon::metrics::REQUESTS_REJECTED;
use crate::logging::Escaped;
use crate::proto::hc::messages::Request;

/// The status of a request over a limit: the listener is healthy but busy (RFC 9110 §15.6.4).
pub(crate) const OVER_LIMIT: u16 = 503;

/// The reason phrase the sender sees.
pub(crate) const OVER_LIMIT_PHRASE: &str = "Too many requests in flight";

/// Answers `request` with 503 on the control channel and counts it by `exceeded`'s reason.
pub(crate) fn refuse_request(
    hc: &Hc,
    request: &Request,
    writer: &ControlWriter,
    exceeded: Exceeded,
) {
    hc.count_labelled(&REQUESTS_REJECTED, &[exceeded.reason()], 1);
    hc.count(Counter::Answered(OVER_LIMIT), 1);
    let Some(id) = request.id.clone() else {
        tracing::warn!(hybrid_connection = %hc.name, reason = %exceeded,
            "request without an id over the request limit dropped");
        return;
    };
    let json = refusal_json(id.clone(), OVER_LIMIT, OVER_LIMIT_PHRASE);
    let sent = writer.send_text(json.as_bytes());
    tracing::warn!(hybrid_connection = %hc.name, id = %Escaped(&id), status = OVER_LIMIT, sent,
        reason = %exceeded, "request refused: request limit reached");
}
