//! What a stopping control channel does with work that still reaches it (architecture §3
//! "Lifecycle"). A channel that is stopped while requests that came on it are being answered
//! stays open until they are (their responses travel on it, protocol §4.5); the relay may send it
//! more work meanwhile, which is refused at once instead of being started:
//!
//! - an `accept` is rejected with 503 through the reject URL (protocol §5.2);
//! - a `request` is answered 503 on the control channel (protocol §4.5).

use super::context::{ControlWriter, Hc};
use super::hc_series::Counter;
use super::stream::{reject, Refusal};
use crate::logging::Escaped;
use crate::proto::hc::messages::{Accept, Request, Response};

/// The status of refused work.
const SHUTTING_DOWN: u16 = 503;

/// The reason phrase of refused requests.
const SHUTTING_DOWN_PHRASE: &str = "Listener is shutting down";

/// Rejects a stream that arrived on a stopping channel (503, protocol §5.2).
pub(crate) async fn refuse_accept(hc: Hc, accept: Accept) {
    reject(&hc, &accept, &Refusal::ShuttingDown).await;
}

/// Answers a request that arrived on a stopping channel with 503, on the channel itself.
pub(crate) fn refuse_request(hc: &Hc, request: &Request, writer: &ControlWriter) {
    let Some(id) = request.id.clone() else {
        tracing::warn!(hybrid_connection = %hc.name, "request without an id on a stopping listener dropped");
        return;
    };
    let json = refusal_json(id.clone(), SHUTTING_DOWN, SHUTTING_DOWN_PHRASE);
    let sent = writer.send_text(json.as_bytes());
    hc.count(Counter::Answered(SHUTTING_DOWN), 1);
    tracing::info!(hybrid_connection = %hc.name, id = %Escaped(&id), status = SHUTTING_DOWN, sent,
        "request refused: the listener is shutting down");
}

/// The JSON of a bodiless `response` with `status` for request `id`.
pub(super) fn refusal_json(id: String, status: u16, phrase: &str) -> String {
    Response {
        request_id: id,
        status_code: status,
        status_description: Some(phrase.to_owned()),
        response_headers: None,
        body: false,
    }
    .to_json()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_503_response_without_body() {
        let json = refusal_json("req-1_G1".to_owned(), SHUTTING_DOWN, SHUTTING_DOWN_PHRASE);
        let response: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(
            response,
            serde_json::json!({"response": {
                "requestId": "req-1_G1",
                "statusCode": 503,
                "statusDescription": "Listener is shutting down",
                "body": false
            }})
        );
    }
}
