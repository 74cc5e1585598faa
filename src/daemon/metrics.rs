//! The daemon's metric set (architecture §4, docs/metrics.md). Each worker owns one
//! [`Shard`]; these descriptors name what it records. Times are histograms in seconds.

use std::cell::RefCell;
use std::rc::Rc;

use crate::metrics::{MetricDesc, Shard};

/// A worker's shard, shared by the tasks of that worker (never across threads).
pub type SharedShard = Rc<RefCell<Shard>>;

pub static LISTENER_ONLINE: MetricDesc = MetricDesc::gauge(
    "hycod_listener_online",
    "Control channels currently online.",
    &["hybrid_connection"],
);
pub static RECONNECTS: MetricDesc = MetricDesc::counter(
    "hycod_reconnects_total",
    "Control channel reconnects, by reason.",
    &["hybrid_connection", "reason"],
);
pub static TOKEN_RENEWALS: MetricDesc = MetricDesc::counter(
    "hycod_token_renewals_total",
    "Token renewals sent on live control channels, by result.",
    &["hybrid_connection", "result"],
);
pub static STREAMS_ACCEPTED: MetricDesc = MetricDesc::counter(
    "hycod_streams_accepted_total",
    "Relayed WebSocket streams joined to their target.",
    &["hybrid_connection"],
);
pub static STREAMS_REJECTED: MetricDesc = MetricDesc::counter(
    "hycod_streams_rejected_total",
    "Relayed WebSocket streams refused, by reason.",
    &["hybrid_connection", "reason"],
);
pub static REQUESTS_REJECTED: MetricDesc = MetricDesc::counter(
    "hycod_requests_rejected_total",
    "Relayed HTTP requests refused with 503 before reaching the target, by reason.",
    &["hybrid_connection", "reason"],
);
pub static LIMIT_EXCEEDED: MetricDesc = MetricDesc::counter(
    "hycod_limit_exceeded_total",
    "Streams and requests ended by a [limits] key they exceeded, by key.",
    &["hybrid_connection", "limit"],
);
pub static STREAMS_IN_FLIGHT: MetricDesc = MetricDesc::gauge(
    "hycod_streams_in_flight",
    "Relayed WebSocket streams open now.",
    &["hybrid_connection"],
);
pub static REQUESTS: MetricDesc = MetricDesc::counter(
    "hycod_requests_total",
    "Relayed HTTP requests answered, by status class (1xx..9xx) or aborted.",
    &["hybrid_connection", "status"],
);
pub static REQUESTS_IN_FLIGHT: MetricDesc = MetricDesc::gauge(
    "hycod_requests_in_flight",
    "Relayed HTTP requests being served now.",
    &["hybrid_connection"],
);
pub static REQUEST_BODY_BUFFERED: MetricDesc = MetricDesc::gauge(
    "hycod_request_body_buffered_bytes",
    "Request body bytes held in memory now to send them with a Content-Length (request_buffer).",
    &["hybrid_connection"],
);
pub static BYTES: MetricDesc = MetricDesc::counter(
    "hycod_bytes_total",
    "Payload bytes forwarded, by direction (to_target, to_relay).",
    &["hybrid_connection", "direction"],
);
pub static CONTROL_CONNECT_SECONDS: MetricDesc = MetricDesc::histogram(
    "hycod_control_connect_seconds",
    "Time to open a control channel (TCP, TLS and WebSocket handshake).",
    &["hybrid_connection"],
);
pub static RENDEZVOUS_SECONDS: MetricDesc = MetricDesc::histogram(
    "hycod_rendezvous_seconds",
    "Time from an accept or request message to the rendezvous socket being open.",
    &["hybrid_connection"],
);
pub static TARGET_CONNECT_SECONDS: MetricDesc = MetricDesc::histogram(
    "hycod_target_connect_seconds",
    "Time to connect to the TCP or HTTP target.",
    &["hybrid_connection"],
);
pub static TARGET_FIRST_BYTE_SECONDS: MetricDesc = MetricDesc::histogram(
    "hycod_target_first_byte_seconds",
    "Time from sending a request upstream to its response head.",
    &["hybrid_connection"],
);
pub static REQUEST_SECONDS: MetricDesc = MetricDesc::histogram(
    "hycod_request_seconds",
    "Whole relayed HTTP request, from the request message to the last response byte.",
    &["hybrid_connection"],
);
pub static RELOADS: MetricDesc = MetricDesc::counter(
    "hycod_reloads_total",
    "Configuration reloads (SIGHUP) applied.",
    &[],
);
pub static RELOAD_FAILURES: MetricDesc = MetricDesc::counter(
    "hycod_reload_failures_total",
    "Configuration reloads rejected; the running configuration stayed in effect.",
    &[],
);

pub static FORWARD_CONNECTIONS: MetricDesc = MetricDesc::counter(
    "hycod_forward_connections_total",
    "Local TCP connections accepted by a forward, by result (forwarded, refused, failed).",
    &["forward", "result"],
);
pub static FORWARD_IN_FLIGHT: MetricDesc = MetricDesc::gauge(
    "hycod_forward_in_flight",
    "Forwarded connections open now (opening the relay stream or pumping).",
    &["forward"],
);
pub static FORWARD_BYTES: MetricDesc = MetricDesc::counter(
    "hycod_forward_bytes_total",
    "Payload bytes carried by forwarded connections, by direction (to_relay, to_client).",
    &["forward", "direction"],
);
pub static UNUSABLE_MESSAGES: MetricDesc = MetricDesc::counter(
    "hycod_unusable_messages_total",
    "Control-channel messages the daemon could not read, by command (accept, request, other).",
    &["hybrid_connection", "command"],
);
pub static RENDEZVOUS_REFUSED: MetricDesc = MetricDesc::counter(
    "hycod_rendezvous_refused_total",
    "Rendezvous addresses not dialed, by command (accept, request) and reason.",
    &["hybrid_connection", "command", "reason"],
);
pub static WORKER_INFO: MetricDesc = MetricDesc::gauge(
    "hycod_worker_info",
    "Always 1: the I/O driver of each worker (io_uring, epoll) and why it fell back to epoll.",
    &["worker", "driver", "fallback"],
);

/// Every descriptor, for documentation tests.
pub static ALL: [&MetricDesc; 25] = [
    &LISTENER_ONLINE,
    &RECONNECTS,
    &TOKEN_RENEWALS,
    &STREAMS_ACCEPTED,
    &STREAMS_REJECTED,
    &REQUESTS_REJECTED,
    &LIMIT_EXCEEDED,
    &STREAMS_IN_FLIGHT,
    &REQUESTS,
    &REQUESTS_IN_FLIGHT,
    &REQUEST_BODY_BUFFERED,
    &BYTES,
    &CONTROL_CONNECT_SECONDS,
    &RENDEZVOUS_SECONDS,
    &TARGET_CONNECT_SECONDS,
    &TARGET_FIRST_BYTE_SECONDS,
    &REQUEST_SECONDS,
    &RELOADS,
    &RELOAD_FAILURES,
    &FORWARD_CONNECTIONS,
    &FORWARD_IN_FLIGHT,
    &FORWARD_BYTES,
    &UNUSABLE_MESSAGES,
    &RENDEZVOUS_REFUSED,
    &WORKER_INFO,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_descriptor_is_valid() {
        for desc in ALL {
            desc.validate()
                .unwrap_or_else(|e| panic!("{}: {e}", desc.name));
        }
    }
}
