//! The daemon's metric set (architecture §4, docs/metrics.md). Each worker owns one
//! [`Shard`]; these descriptors name what it records. Times are histograms in seconds.

use std::cell::RefCell;
use std::rc::Rc;

use crate::metrics::Shard;

/// A worker's shard, shared by the tasks of that worker (never across threads).
pub type SharedShard = Rc<RefCell<Shard>>;

crate::metrics::metric_set! {
    LISTENER_ONLINE = gauge("hycod_listener_online", ["hybrid_connection"],
        "Control channels currently online.");
    RECONNECTS = counter("hycod_reconnects_total", ["hybrid_connection", "reason"],
        "Control channel reconnects, by reason.");
    TOKEN_RENEWALS = counter("hycod_token_renewals_total", ["hybrid_connection", "result"],
        "Token renewals sent on live control channels, by result.");
    STREAMS_ACCEPTED = counter("hycod_streams_accepted_total", ["hybrid_connection"],
        "Relayed WebSocket streams joined to their target.");
    STREAMS_REJECTED = counter("hycod_streams_rejected_total", ["hybrid_connection", "reason"],
        "Relayed WebSocket streams refused, by reason.");
    REQUESTS_REJECTED = counter("hycod_requests_rejected_total", ["hybrid_connection", "reason"],
        "Relayed HTTP requests refused with 503 before reaching the target, by reason.");
    LIMIT_EXCEEDED = counter("hycod_limit_exceeded_total", ["hybrid_connection", "limit"],
        "Streams and requests ended by a [limits] key they exceeded, by key.");
    STREAMS_IN_FLIGHT = gauge("hycod_streams_in_flight", ["hybrid_connection"],
        "Relayed WebSocket streams open now.");
    REQUESTS = counter("hycod_requests_total", ["hybrid_connection", "status"],
        "Relayed HTTP requests answered, by status class (1xx..9xx) or aborted.");
    REQUESTS_IN_FLIGHT = gauge("hycod_requests_in_flight", ["hybrid_connection"],
        "Relayed HTTP requests being served now.");
    REQUEST_BODY_BUFFERED = gauge("hycod_request_body_buffered_bytes", ["hybrid_connection"],
        "Request body bytes held in memory now to send them with a Content-Length (request_buffer).");
    BYTES = counter("hycod_bytes_total", ["hybrid_connection", "direction"],
        "Payload bytes forwarded, by direction (to_target, to_relay).");
    CONTROL_CONNECT_SECONDS = histogram("hycod_control_connect_seconds", ["hybrid_connection"],
        "Time to open a control channel (TCP, TLS and WebSocket handshake).");
    RENDEZVOUS_SECONDS = histogram("hycod_rendezvous_seconds", ["hybrid_connection"],
        "Time from an accept or request message to the rendezvous socket being open.");
    TARGET_CONNECT_SECONDS = histogram("hycod_target_connect_seconds", ["hybrid_connection"],
        "Time to connect to the TCP or HTTP target.");
    TARGET_FIRST_BYTE_SECONDS = histogram("hycod_target_first_byte_seconds", ["hybrid_connection"],
        "Time from sending a request upstream to its response head.");
    REQUEST_SECONDS = histogram("hycod_request_seconds", ["hybrid_connection"],
        "Whole relayed HTTP request, from the request message to the last response byte.");
    RELOADS = counter("hycod_reloads_total", [],
        "Configuration reloads (SIGHUP) applied.");
    RELOAD_FAILURES = counter("hycod_reload_failures_total", [],
        "Configuration reloads rejected; the running configuration stayed in effect.");
    FORWARD_CONNECTIONS = counter("hycod_forward_connections_total", ["forward", "result"],
        "Local TCP connections accepted by a forward, by result (forwarded, refused, failed).");
    FORWARD_IN_FLIGHT = gauge("hycod_forward_in_flight", ["forward"],
        "Forwarded connections open now (opening the relay stream or pumping).");
    FORWARD_BYTES = counter("hycod_forward_bytes_total", ["forward", "direction"],
        "Payload bytes carried by forwarded connections, by direction (to_relay, to_client).");
    UNUSABLE_MESSAGES = counter("hycod_unusable_messages_total", ["hybrid_connection", "command"],
        "Control-channel messages the daemon could not read, by command (accept, request, other).");
    RENDEZVOUS_REFUSED = counter("hycod_rendezvous_refused_total", ["hybrid_connection", "command", "reason"],
        "Rendezvous addresses not dialed, by command (accept, request) and reason.");
    WORKER_INFO = gauge("hycod_worker_info", ["worker", "driver", "fallback"],
        "Always 1: the I/O driver of each worker (io_uring, epoll) and why it fell back to epoll.");
}

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
