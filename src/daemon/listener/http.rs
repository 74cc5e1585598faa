//! The daemon's relayed-HTTP mode (protocol §4.4, §4.5, §6, §8.5; architecture §2): each
//! `request` becomes an HTTP/1.1 request to the hybrid connection's `http_target`, and the
//! target's response goes back to the relay.
//!
//! - A request on the control channel is answered there as one unit when the whole response fits
//!   ([`policy::CONTROL_BODY_LIMIT`] within [`policy::GATHER_WINDOW`]), else streamed through the
//!   request's `address` (protocol §6.5).
//! - A rendezvous notice: the request is read and answered there, and so are further requests
//!   until none comes for [`REQUEST_RENDEZVOUS_HOLD`], then Close 1000 (protocol §6.3, §6.4).
//! - The daemon answers itself with 400 (unsafe to forward), 501 (no `http_target`), 502 (bad or
//!   unreachable target) or 504 (`upstream_deadline`, protocol §6.8); a body that breaks off after
//!   the head leaves the body message unfinished: the sender sees a broken, not a short, response.
//!
//! Each request is counted once in `hycod_requests_total` and logged once at debug level
//! (`request served`, docs/metrics.md "Log lines"); never its headers or query (they carry tokens).

pub(crate) mod deliver;
pub(crate) mod exchange;
pub(crate) mod frames;
pub(crate) mod policy;
pub(crate) mod prepare;
pub(crate) mod rendezvous;
pub(crate) mod reply;
pub(crate) mod response_text;

use std::time::{Duration, Instant};

use exchange::{answer_locally, exchange, Body, BodyState, Served};
use policy::{status_class, LocalAnswer, ABORTED};
use prepare::prepare;
use rendezvous::{
    BodyBuffer, Buffered, Incoming, RendezvousError, RendezvousReader, RendezvousWriter,
    RELAY_IDLE_TIMEOUT,
};
use reply::{ControlReply, Reply};

use super::context::{ControlWriter, Hc, HcContext};
use super::unreadable;
use super::upstream::Framing;
use crate::daemon::listener::hc_series::{Counter, Gauge, Histogram};
use crate::io::tcp_pump::Direction;
use crate::logging::Escaped;
use crate::proto::hc::channel::ChannelError;
use crate::proto::hc::control_message::REQUEST;
use crate::proto::hc::messages::Request;
use crate::proto::hc::path::split_target;
use crate::proto::hc::received_request::ReceivedRequest;
use crate::proto::ws::CloseCode;

/// Serves one `request` from the control channel. `body` is its binary body message when
/// `request.has_body()` (the control reader reads it, protocol §4.2); `control` queues units for
/// the control channel.
pub async fn serve_request(
    hc: Hc,
    request: Request,
    body: Option<Vec<u8>>,
    control: ControlWriter,
) {
    serve_received(hc, request.into(), body, control).await;
}

/// [`serve_request`] for a request as the control reader keeps it.
pub(crate) async fn serve_received(
    hc: Hc,
    request: ReceivedRequest,
    body: Option<Vec<u8>>,
    control: ControlWriter,
) {
    let started = Instant::now();
    if request.is_rendezvous_notice() {
        // Boxed: the rendezvous path is the rare one; inline, its state would make every
        // control-channel request's future larger.
        Box::pin(serve_notice(&hc, &request, started)).await;
    } else {
        serve_on_control(
            &hc,
            &request,
            body.as_deref().unwrap_or_default(),
            &control,
            started,
        )
        .await;
    }
}

/// Shape (a): the request and its body came on the control channel.
async fn serve_on_control(
    hc: &HcContext,
    request: &ReceivedRequest,
    body: &[u8],
    control: &ControlWriter,
    started: Instant,
) {
    let body = if request.has_body() { body } else { &[] };
    // The address is dialed only to upgrade a large answer; one the policy refuses is dropped,
    // so such an answer is refused as too large for the control channel instead.
    let address = request
        .address()
        .filter(|address| hc.rendezvous_allowed(REQUEST, address));
    let mut reply = Reply::Control(ControlReply::new(hc, control, address, started));
    let served = serve_one(hc, request, Body::Known(body), &mut reply, started).await;
    let Reply::Control(control_reply) = reply else {
        return;
    };
    if let Some((reader, mut writer)) = control_reply.into_upgraded() {
        if served.complete {
            Box::pin(hold(hc, reader, writer, None)).await;
        } else {
            let _ = writer
                .close(CloseCode::INTERNAL_ERROR, "response broke off")
                .await;
        }
    }
}

/// Shape (b): the request waits on a rendezvous.
async fn serve_notice(hc: &HcContext, notice: &ReceivedRequest, started: Instant) {
    let Some(address) = notice.address() else {
        tracing::warn!(hybrid_connection = %hc.name, "request notice without an address ignored");
        hc.count(Counter::Aborted, 1);
        return;
    };
    if !hc.rendezvous_allowed(REQUEST, address) {
        hc.count(Counter::Aborted, 1);
        return;
    }
    match rendezvous::open(hc, address, started).await {
        Ok((reader, writer)) => hold(hc, reader, writer, Some(started)).await,
        Err(e) => {
            tracing::warn!(hybrid_connection = %hc.name, error = %Escaped(&e), "request rendezvous failed");
            hc.count(Counter::Aborted, 1);
        }
    }
}

/// How long a request rendezvous is kept open after a response for a further request of the
/// same sender (protocol §6.3 step 5). The .NET listener closes it with 1000 right after the
/// response (docs/architecture.md "Request rendezvous lifetime"); this short hold lets a relay
/// that sends a sender's next request on the same rendezvous use it, without keeping sockets
/// open.
pub const REQUEST_RENDEZVOUS_HOLD: Duration = Duration::from_secs(1);

/// Serves the requests the relay sends on a rendezvous until it closes it, or closes it with
/// 1000 once no request came for [`REQUEST_RENDEZVOUS_HOLD`] after a response. `announced` is
/// when the notice that opened it arrived: one request is owed (waited for up to
/// [`RELAY_IDLE_TIMEOUT`]), and counted as aborted if it never comes. A message that is not a
/// usable `request` is counted, and answered 502 when it names an `id` ([`unreadable`]).
async fn hold(
    hc: &HcContext,
    mut reader: RendezvousReader,
    mut writer: RendezvousWriter,
    mut announced: Option<Instant>,
) {
    loop {
        let wait = if announced.is_some() {
            RELAY_IDLE_TIMEOUT
        } else {
            REQUEST_RENDEZVOUS_HOLD
        };
        let request = match reader.next(wait).await {
            Ok(Incoming::Request(request)) => request,
            Ok(Incoming::Pong(frames)) => {
                if writer.send_built(frames).await.is_err() {
                    return;
                }
                continue;
            }
            Ok(Incoming::Closed) => {
                if announced.is_some() {
                    hc.count(Counter::Aborted, 1);
                }
                let _ = writer.close(CloseCode::NORMAL, "").await;
                return;
            }
            Err(e) => {
                tracing::debug!(hybrid_connection = %hc.name, error = %Escaped(&e), "rendezvous ended");
                if let Some(answer) = e
                    .unusable_text()
                    .and_then(|text| unreadable::answer_on_rendezvous(hc, text, &e))
                {
                    if writer
                        .send_answer(&response_text::ResponseText::of(&answer), &[])
                        .await
                        .is_ok()
                    {
                        let _ = writer.close(CloseCode::NORMAL, "").await;
                    }
                    return;
                }
                if let RendezvousError::Channel(ChannelError::MessageTooLarge { .. }) = e {
                    unreadable::count_oversized(hc, reader.oversized_command());
                }
                if announced.is_some() {
                    hc.count(Counter::Aborted, 1);
                }
                let code = match e {
                    RendezvousError::Idle { .. } => CloseCode::NORMAL,
                    RendezvousError::Channel(e) => e.close_code(),
                    _ => CloseCode::PROTOCOL_ERROR,
                };
                let _ = writer.close(code, "").await;
                return;
            }
        };
        let started = announced.take().unwrap_or_else(Instant::now);
        let buffering = request.has_body() && hc.request_buffer > 0 && hc.http_target.is_some();
        let body = if buffering {
            match reader
                .buffer_body(hc.request_buffer, RELAY_IDLE_TIMEOUT)
                .await
            {
                Ok(Buffered::Whole(held)) => Body::Held(held),
                Ok(Buffered::Overflowed(first)) => Body::Streamed {
                    reader: &mut reader,
                    first,
                },
                Err(e) => {
                    tracing::debug!(hybrid_connection = %hc.name, error = %Escaped(&e), "request body from the relay broke off");
                    record(hc, &request, &Served::aborted(BodyState::Broken), started);
                    let _ = writer.close(CloseCode::PROTOCOL_ERROR, "").await;
                    return;
                }
            }
        } else if request.has_body() {
            Body::Streamed {
                reader: &mut reader,
                first: BodyBuffer::default(),
            }
        } else {
            Body::Known(&[])
        };
        let held_bytes = HeldBytes::enter(hc, &body);
        let served = serve_one(
            hc,
            &request,
            body,
            &mut Reply::Rendezvous(&mut writer),
            started,
        )
        .await;
        drop(held_bytes);
        let reusable = served.complete
            && match served.body {
                BodyState::Consumed => true,
                BodyState::Unread => reader.drain_body(RELAY_IDLE_TIMEOUT).await.is_ok(),
                BodyState::Broken => false,
            };
        if !reusable {
            let _ = writer
                .close(CloseCode::INTERNAL_ERROR, "request failed")
                .await;
            return;
        }
        if hc.detached.get() {
            // Held, it would keep bringing this sender's requests to a draining listener.
            let _ = writer.close(CloseCode::NORMAL, "").await;
            return;
        }
    }
}

/// Serves one full request (from the control channel or a rendezvous) and records it.
async fn serve_one(
    hc: &HcContext,
    request: &ReceivedRequest,
    body: Body<'_>,
    reply: &mut Reply<'_>,
    started: Instant,
) -> Served {
    let _in_flight = InFlight::enter(hc);
    let untouched = if body.is_whole() {
        BodyState::Consumed
    } else {
        BodyState::Unread
    };
    let Some(request_id) = request.id() else {
        tracing::warn!(hybrid_connection = %hc.name, "request without an id cannot be answered");
        let served = Served::aborted(untouched);
        record(hc, request, &served, started);
        return served;
    };
    let served = match hc.http_target.as_ref() {
        None => {
            let detail = "no http_target is configured for this hybrid connection";
            answer_locally(
                reply,
                request_id,
                LocalAnswer::NotImplemented,
                detail,
                untouched,
            )
            .await
        }
        Some(target) => {
            let framing = match &body {
                Body::Known(bytes) => {
                    Framing::for_known_body(request.method().unwrap_or_default(), bytes.len())
                }
                Body::Held(held) => {
                    Framing::for_known_body(request.method().unwrap_or_default(), held.len())
                }
                Body::Streamed { .. } => Framing::Chunked,
            };
            match prepare(request, &hc.entity_path, target, framing) {
                Ok(prepared) => {
                    exchange(hc, target, request_id, &prepared, body, reply, started).await
                }
                Err(e) => {
                    tracing::info!(hybrid_connection = %hc.name, request_id, error = %Escaped(&e), "request refused");
                    let detail = format!("the request cannot be forwarded: {e}");
                    answer_locally(
                        reply,
                        request_id,
                        LocalAnswer::BadRequest,
                        &detail,
                        untouched,
                    )
                    .await
                }
            }
        }
    };
    record(hc, request, &served, started);
    served
}

/// Counts a finished request — its status class (or `aborted`), its duration and its bytes —
/// and logs its one `request served` line (debug level, see the module docs).
/// The target of the `request served` line: fixed, not this module's path, so that the
/// documented `RUST_LOG=info,hycod::daemon::http=debug` turns it on (docs/metrics.md "Log lines").
const ACCESS_LOG_TARGET: &str = "hycod::daemon::http";

fn record(hc: &HcContext, request: &ReceivedRequest, served: &Served, started: Instant) {
    let (counter, label) = match served.status {
        Some(status) if served.complete => (Counter::Answered(status), status_class(status)),
        _ => (Counter::Aborted, ABORTED),
    };
    let elapsed = started.elapsed();
    hc.count(counter, 1);
    hc.observe(Histogram::Request, elapsed);
    tracing::debug!(
        target: ACCESS_LOG_TARGET,
        hybrid_connection = %hc.name,
        method = request.method().unwrap_or_default(),
        path = loggable_path(request),
        status = served.status,
        outcome = label,
        latency_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        to_target = served.to_target,
        to_relay = served.to_relay,
        "request served"
    );
    if served.to_target > 0 {
        hc.count(Counter::Bytes(Direction::ToTarget), served.to_target);
    }
    if served.to_relay > 0 {
        hc.count(Counter::Bytes(Direction::ToRelay), served.to_relay);
    }
}

/// The request's path for log lines: its `requestTarget` without the query, which may carry
/// `sb-hc-token` (protocol §2.3, §3.1) or an application's own secrets.
fn loggable_path(request: &ReceivedRequest) -> &str {
    split_target(request.request_target().unwrap_or_default()).0
}

/// Holds one unit of `hycod_requests_in_flight` while a request is served.
struct InFlight<'a> {
    hc: &'a HcContext,
}

impl<'a> InFlight<'a> {
    fn enter(hc: &'a HcContext) -> Self {
        hc.gauge_add(Gauge::RequestsInFlight, 1);
        Self { hc }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.hc.gauge_add(Gauge::RequestsInFlight, -1);
    }
}

/// Holds a request's buffered body bytes in `hycod_request_body_buffered_bytes` while the
/// request is served.
struct HeldBytes<'a> {
    hc: &'a HcContext,
    bytes: i64,
}

impl<'a> HeldBytes<'a> {
    fn enter(hc: &'a HcContext, body: &Body<'_>) -> Self {
        let held = match body {
            Body::Held(held) | Body::Streamed { first: held, .. } => held.len(),
            Body::Known(_) => 0,
        };
        let bytes = i64::try_from(held).unwrap_or(i64::MAX);
        if bytes > 0 {
            hc.gauge_add(Gauge::RequestBodyBuffered, bytes);
        }
        Self { hc, bytes }
    }
}

impl Drop for HeldBytes<'_> {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.hc.gauge_add(Gauge::RequestBodyBuffered, -self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(target: Option<&str>) -> ReceivedRequest {
        ReceivedRequest::from(Request {
            request_target: target.map(str::to_owned),
            ..Request::default()
        })
    }

    #[test]
    fn the_logged_path_has_no_query() {
        let r = request(Some(
            "/hyco/api?sb-hc-token=SharedAccessSignature%20sr%3Dx&top=5",
        ));
        assert_eq!(loggable_path(&r), "/hyco/api");
    }

    #[test]
    fn a_request_without_a_target_logs_an_empty_path() {
        assert_eq!(loggable_path(&request(None)), "");
    }

    /// A log sink the tests read back.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log sink").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// What `record` logs for one served request when the log level is `level`.
    fn logged_at(level: tracing::Level) -> String {
        let sink = Captured::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let hc = crate::daemon::test_support::context(None);
        let served = Served {
            status: Some(200),
            complete: true,
            to_target: 3,
            to_relay: 5,
            body: BodyState::Consumed,
        };
        tracing::subscriber::with_default(subscriber, || {
            record(&hc, &request(Some("/hyco/x?q=1")), &served, Instant::now());
        });
        let text = sink.0.lock().expect("log sink").clone();
        String::from_utf8(text).expect("utf-8 log")
    }

    #[test]
    fn the_request_line_is_debug_so_info_logs_stay_quiet_per_request() {
        assert_eq!(logged_at(tracing::Level::INFO), "");
        let debug = logged_at(tracing::Level::DEBUG);
        assert!(debug.contains("DEBUG"), "{debug}");
        assert!(debug.contains("request served"), "{debug}");
        assert!(debug.contains(r#"path="/hyco/x""#), "{debug}");
    }
}
