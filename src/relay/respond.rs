//! Answers the relay itself gives (not a listener): handshake refusals and HTTP errors, shaped
//! like the real service's (protocol Appendix A "Error texts", §7.2): a description followed by
//! `TrackingId:…, SystemTracker:sb://{ns}/{path}, Timestamp:…`, and for HTTP a JSON body
//! `{"error":{"code":…,"message":…}}`.

use std::time::SystemTime;

use serde::Serialize;

use crate::proto::http1::reason_phrase;
use crate::proto::http1::write_response_head;

/// Where an error happened, for the tracking suffix.
pub(super) struct Tracking<'a> {
    pub id: &'a str,
    pub namespace: &'a str,
    pub path: &'a str,
}

/// `{description} TrackingId:{id}, SystemTracker:sb://{ns}/{path}, Timestamp:{utc}`.
pub(super) fn described(description: &str, tracking: &Tracking<'_>, now: SystemTime) -> String {
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "{description} TrackingId:{}, SystemTracker:sb://{}/{}, Timestamp:{secs}",
        tracking.id, tracking.namespace, tracking.path
    )
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
}

/// A complete HTTP error response with a JSON error body; `Connection: close` unless
/// `keep_alive`. The reason phrase is the standard one: descriptions go in the body (and in the
/// status line of handshake refusals, see [`handshake_refusal`]).
pub(super) fn http_error(status: u16, code: &str, message: &str, keep_alive: bool) -> Vec<u8> {
    let body = serde_json::to_vec(&ErrorBody {
        error: ErrorDetail { code, message },
    })
    .unwrap_or_default();
    let mut out = Vec::with_capacity(160 + body.len());
    let len = body.len().to_string();
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", len.as_str()),
        ("Connection", connection),
    ];
    if write_response_head(&mut out, status, reason_phrase(status), headers).is_err() {
        out.clear();
        out.extend_from_slice(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n");
        return out;
    }
    out.extend_from_slice(&body);
    out
}

/// A refused WebSocket handshake: the description is the reason phrase (where the WebSocket
/// clients of the SDKs surface it) and the JSON body; the connection closes.
pub(super) fn handshake_refusal(status: u16, code: &str, description: &str) -> Vec<u8> {
    let reason: String = description
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let body = serde_json::to_vec(&ErrorBody {
        error: ErrorDetail {
            code,
            message: description,
        },
    })
    .unwrap_or_default();
    let len = body.len().to_string();
    let headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", len.as_str()),
        ("Connection", "close"),
    ];
    let mut out = Vec::with_capacity(200 + body.len());
    if write_response_head(&mut out, status, &reason, headers).is_err() {
        return http_error(status, code, description, false);
    }
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn descriptions_carry_the_tracking_suffix() {
        let t = Tracking {
            id: "abc_G1",
            namespace: "localhost",
            path: "hyco",
        };
        let text = described(
            "Endpoint does not exist.",
            &t,
            SystemTime::UNIX_EPOCH + Duration::from_secs(5),
        );
        assert_eq!(
            text,
            "Endpoint does not exist. TrackingId:abc_G1, SystemTracker:sb://localhost/hyco, Timestamp:5"
        );
    }

    #[test]
    fn http_error_is_a_complete_json_response() {
        let out = String::from_utf8(http_error(502, "NoListener", "none", false)).expect("utf8");
        assert!(out.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{out}");
        assert!(out.contains("Connection: close\r\n"));
        assert!(out.ends_with("\r\n\r\n{\"error\":{\"code\":\"NoListener\",\"message\":\"none\"}}"));
    }

    #[test]
    fn handshake_refusal_puts_the_description_in_the_status_line() {
        let out = String::from_utf8(handshake_refusal(
            404,
            "EndpointNotFound",
            "No\r\nlisteners",
        ))
        .expect("utf8");
        assert!(out.starts_with("HTTP/1.1 404 No  listeners\r\n"), "{out}");
    }
}
