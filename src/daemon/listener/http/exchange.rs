//! One relayed request against the HTTP target (protocol §6.6–§6.8, §8.5): a connection from
//! the worker's pool or a new one, the request sent while its response is read, the response
//! delivered as soon as its head arrives, and the daemon's own 502/504 when the target fails —
//! always before the relay's 60 s deadline.
//!
//! The request body and the response run concurrently: a body streaming in from a rendezvous
//! keeps flowing to the target while the target's answer already goes back.
//!
//! Deadlines: the target's response head must arrive within `upstream_deadline` of the
//! request message (504 otherwise), connection set-up included. While a body is still
//! streaming in from the rendezvous that deadline waits; it restarts when the body has been
//! sent. Each body read and write may stall for at most `upstream_deadline` (target side) or
//! [`super::rendezvous::RELAY_IDLE_TIMEOUT`] (relay side).

use std::pin::pin;
use std::time::Instant;

use monoio::io::AsyncWriteRentExt;

use super::deliver::{deliver, Delivery, DeliveryFailure};
use super::policy::LocalAnswer;
use super::prepare::Prepared;
use super::rendezvous::{
    write_within, BodyBuffer, PumpError, RendezvousReader, RELAY_IDLE_TIMEOUT,
};
use super::reply::Reply;
use super::response_text::ResponseText;
use crate::config::HttpTarget;
use crate::daemon::listener::context::HcContext;
use crate::daemon::listener::hc_series::Histogram;
use crate::daemon::listener::upstream::{
    self, is_idempotent, ConnectError, ResponseError, UpstreamWrite,
};
use crate::logging::Escaped;
use crate::proto::http1::{BodyKind, ResponseHead};

/// The request body.
pub(crate) enum Body<'a> {
    /// Held whole (a control-channel request, or none): sent with `Content-Length` and may be
    /// sent again on a fresh connection.
    Known(&'a [u8]),
    /// The body message of a rendezvous request, read whole within `request_buffer`: sent
    /// with `Content-Length` and may be sent again, like [`Body::Known`].
    Held(BodyBuffer),
    /// The body message that follows the request on a rendezvous: streamed with chunked coding
    /// as it arrives (protocol §6.4), `first` (the bytes already read) in front; never retried.
    Streamed {
        reader: &'a mut RendezvousReader,
        first: BodyBuffer,
    },
}

impl Body<'_> {
    /// Whether the body is in memory whole, so the request can be sent again.
    pub(crate) fn is_whole(&self) -> bool {
        !matches!(self, Self::Streamed { .. })
    }
}

/// What became of a request body message on a rendezvous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyState {
    /// Read to its end (or there was none): the rendezvous can carry the next request.
    Consumed,
    /// Not read at all: drain it before the next request.
    Unread,
    /// Read partly: the rendezvous cannot be used any more.
    Broken,
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Served {
    /// The status the sender received, when a response went out.
    pub status: Option<u16>,
    /// Whether the whole response reached the relay.
    pub complete: bool,
    /// Request body bytes sent to the target.
    pub to_target: u64,
    /// Response body bytes sent to the relay.
    pub to_relay: u64,
    /// The request's body message on a rendezvous.
    pub body: BodyState,
}

impl Served {
    /// A request that got no answer.
    pub(crate) fn aborted(body: BodyState) -> Self {
        Self {
            status: None,
            complete: false,
            to_target: 0,
            to_relay: 0,
            body,
        }
    }
}

/// The result of one attempt on one connection.
enum Attempt {
    /// Finished, answered or not.
    Done(Served),
    /// Failed before any response byte on a pooled connection; try once more on a new one.
    Retry,
    /// The daemon answers itself.
    Failed {
        answer: LocalAnswer,
        detail: &'static str,
        body: BodyState,
    },
}

/// How waiting for the response head ended.
enum HeadWait {
    Head(ResponseHead, BodyKind),
    Failed(ResponseError),
    TimedOut,
}

/// What every attempt at one request shares.
#[derive(Clone, Copy)]
struct Job<'a> {
    hc: &'a HcContext,
    target: &'a HttpTarget,
    request_id: &'a str,
    prepared: &'a Prepared<'a>,
}

/// Sends `prepared` (with `body`) to `target` and delivers the response through `reply`, or
/// answers 502/504 itself. `started` is when the request message arrived.
pub(crate) async fn exchange(
    hc: &HcContext,
    target: &HttpTarget,
    request_id: &str,
    prepared: &Prepared<'_>,
    mut body: Body<'_>,
    reply: &mut Reply<'_>,
    started: Instant,
) -> Served {
    let job = Job {
        hc,
        target,
        request_id,
        prepared,
    };
    let deadline = monoio::time::Instant::from_std(started) + hc.upstream_deadline;
    let mut allow_idle = body.is_whole();
    loop {
        match attempt(job, &mut body, reply, deadline, allow_idle).await {
            Attempt::Done(served) => return served,
            Attempt::Retry => allow_idle = false,
            Attempt::Failed {
                answer,
                detail,
                body,
            } => return answer_locally(reply, request_id, answer, detail, body).await,
        }
    }
}

/// Answers the request with the daemon's own `answer`.
pub(crate) async fn answer_locally(
    reply: &mut Reply<'_>,
    request_id: &str,
    answer: LocalAnswer,
    detail: &str,
    body: BodyState,
) -> Served {
    let (response, text) = answer.response(request_id, detail);
    match reply.answer(&ResponseText::of(&response), &text).await {
        Ok(()) => Served {
            status: Some(answer.status()),
            complete: true,
            to_target: 0,
            to_relay: 0,
            body,
        },
        Err(e) => {
            tracing::debug!(request_id, error = %e, "local answer not delivered");
            Served::aborted(body)
        }
    }
}

/// One attempt on one connection: a pooled one when `allow_idle`, otherwise a new one.
async fn attempt(
    job: Job<'_>,
    body: &mut Body<'_>,
    reply: &mut Reply<'_>,
    mut deadline: monoio::time::Instant,
    allow_idle: bool,
) -> Attempt {
    let Job {
        hc,
        target,
        request_id,
        prepared,
    } = job;
    let replayable = body.is_whole();
    let untouched = if replayable {
        BodyState::Consumed
    } else {
        BodyState::Unread
    };
    let Some(left) = deadline.checked_duration_since(monoio::time::Instant::now()) else {
        return timed_out(untouched);
    };
    let mut conn = match upstream::acquire(
        hc,
        target,
        allow_idle,
        left.min(hc.limits.handshake_timeout),
    )
    .await
    {
        Ok(conn) => conn,
        Err(e) => {
            tracing::warn!(hybrid_connection = %hc.name, request_id, error = %Escaped(&e), "HTTP target unreachable");
            return match e {
                ConnectError::Timeout { .. } => timed_out(untouched),
                _ => Attempt::Failed {
                    answer: LocalAnswer::BadGateway,
                    detail: "the listener could not reach its HTTP target",
                    body: untouched,
                },
            };
        }
    };
    let reused = conn.reused;
    let sent_at = Instant::now();
    let (outcome, sent) = {
        let upstream::Connection {
            reader,
            writer,
            request_buf,
            ..
        } = &mut conn;
        let mut send = pin!(send_request(
            (writer, request_buf),
            prepared,
            body,
            hc.upstream_deadline
        ));
        let mut sent: Option<Result<u64, PumpError>> = None;
        let head = {
            let mut read_head = pin!(reader.read_head(prepared.method));
            // One timer for the whole wait, made in its box: inline, monoio's timer state (640
            // bytes, 128-aligned) would enlarge this future and every one around it, which are
            // copied whole when the request's task is set up.
            let mut timer = Box::into_pin(Box::write(
                Box::new_uninit(),
                monoio::time::sleep_until(deadline),
            ));
            loop {
                let streaming = !replayable && sent.is_none();
                // Biased: a finished request is noticed before the head that answers it.
                monoio::select! {
                    biased;
                    result = &mut send, if sent.is_none() => {
                        if let Err(PumpError::Relay(e)) = &result {
                            tracing::debug!(request_id, error = %Escaped(&e), "request body from the relay broke off");
                            return Attempt::Done(Served::aborted(BodyState::Broken));
                        }
                        if !replayable {
                            deadline = deadline.max(monoio::time::Instant::now() + hc.upstream_deadline);
                            timer.as_mut().reset(deadline);
                        }
                        sent = Some(result);
                    }
                    head = &mut read_head => break match head {
                        Ok((head, kind)) => HeadWait::Head(head, kind),
                        Err(e) => HeadWait::Failed(e),
                    },
                    _ = &mut timer, if !streaming => break HeadWait::TimedOut,
                }
            }
        };
        let outcome = match head {
            HeadWait::Head(head, kind) => {
                hc.observe(Histogram::TargetFirstByte, sent_at.elapsed());
                let mut delivering = pin!(deliver(hc, request_id, &head, kind, reader, reply));
                loop {
                    // Biased, so a request finished by now is never missed: only then is
                    // the connection reusable.
                    monoio::select! {
                        biased;
                        result = &mut send, if sent.is_none() => sent = Some(result),
                        delivery = &mut delivering => break Ok(delivery),
                    }
                }
            }
            HeadWait::Failed(e) => Err(Some(e)),
            HeadWait::TimedOut => Err(None),
        };
        (outcome, sent)
    };
    let body_state = match (&sent, replayable) {
        (Some(Ok(_)), _) | (_, true) => BodyState::Consumed,
        _ => BodyState::Broken,
    };
    let to_target = match &sent {
        Some(Ok(len)) => *len,
        _ => 0,
    };
    match outcome {
        Ok(Delivery::Complete { status, body_bytes }) => {
            if matches!(sent, Some(Ok(_))) {
                conn.release(hc);
            }
            Attempt::Done(Served {
                status: Some(status),
                complete: true,
                to_target,
                to_relay: body_bytes,
                body: body_state,
            })
        }
        Ok(Delivery::Broken {
            status,
            body_bytes,
            failure,
        }) => {
            tracing::warn!(hybrid_connection = %hc.name, request_id, error = %failure, "response broke off");
            Attempt::Done(Served {
                status: Some(status),
                complete: false,
                to_target,
                to_relay: body_bytes,
                body: body_state,
            })
        }
        Ok(Delivery::NotSent(failure)) => {
            tracing::warn!(hybrid_connection = %hc.name, request_id, error = %failure, "response not delivered");
            let detail = match failure {
                DeliveryFailure::Reply(_) => {
                    "the listener could not relay its HTTP target's response"
                }
                _ => "the listener's HTTP target sent an incomplete response",
            };
            Attempt::Failed {
                answer: LocalAnswer::BadGateway,
                detail,
                body: body_state,
            }
        }
        Err(None) => timed_out(body_state),
        Err(Some(e)) => {
            if reused && !conn.reader.received_any() && replayable && is_idempotent(prepared.method)
            {
                tracing::debug!(request_id, error = %e, "pooled connection failed; retrying on a new one");
                return Attempt::Retry;
            }
            tracing::warn!(hybrid_connection = %hc.name, request_id, error = %Escaped(&e), "HTTP target failed");
            if let Some(limit) = e.exceeded_limit() {
                hc.limit_exceeded(limit);
            }
            Attempt::Failed {
                answer: LocalAnswer::BadGateway,
                detail: "the listener's HTTP target sent no valid response",
                body: body_state,
            }
        }
    }
}

fn timed_out(body: BodyState) -> Attempt {
    Attempt::Failed {
        answer: LocalAnswer::GatewayTimeout,
        detail: "the listener's HTTP target did not respond in time",
        body,
    }
}

/// Writes the request: the head and a known body in one write (from the connection's
/// `request_buf`, which is given back after the write), the head and then a held body, or the
/// head and then the body streamed from the rendezvous. Returns the body's length. Writes to
/// the target may stall for `target_idle`.
async fn send_request(
    (writer, request_buf): (&mut UpstreamWrite, &mut Vec<u8>),
    prepared: &Prepared<'_>,
    body: &mut Body<'_>,
    target_idle: std::time::Duration,
) -> Result<u64, PumpError> {
    match body {
        Body::Known(bytes) => {
            let mut out = std::mem::take(request_buf);
            out.clear();
            out.reserve(prepared.head.len() + bytes.len());
            out.extend_from_slice(&prepared.head);
            out.extend_from_slice(bytes);
            write_within(target_idle, async {
                let (written, out) = writer.write_all(out).await;
                *request_buf = out;
                written.map(|_| ())
            })
            .await
            .map_err(PumpError::Upstream)?;
            Ok(u64::try_from(bytes.len()).unwrap_or(u64::MAX))
        }
        // Boxed here and below: rare (bodies over 64 KiB or of unknown length), and inline
        // it would enlarge every control-channel request's future.
        Body::Held(held) => Box::pin(send_held(writer, prepared, held, target_idle)).await,
        Body::Streamed { reader, first } => {
            let first = std::mem::take(first);
            Box::pin(send_streamed(writer, prepared, reader, first, target_idle)).await
        }
    }
}

/// Writes the head, then the held body; the body stays held for a retry.
async fn send_held(
    writer: &mut UpstreamWrite,
    prepared: &Prepared<'_>,
    held: &mut BodyBuffer,
    target_idle: std::time::Duration,
) -> Result<u64, PumpError> {
    let head = prepared.head.clone();
    write_within(target_idle, async {
        writer.write_all(head).await.0?;
        held.write_whole(writer).await
    })
    .await
    .map_err(PumpError::Upstream)?;
    Ok(u64::try_from(held.len()).unwrap_or(u64::MAX))
}

/// Writes the head, then streams the body from the rendezvous as it arrives.
async fn send_streamed(
    writer: &mut UpstreamWrite,
    prepared: &Prepared<'_>,
    rendezvous: &mut RendezvousReader,
    first: BodyBuffer,
    target_idle: std::time::Duration,
) -> Result<u64, PumpError> {
    let head = prepared.head.clone();
    write_within(target_idle, async {
        writer.write_all(head).await.0.map(|_| ())
    })
    .await
    .map_err(PumpError::Upstream)?;
    rendezvous
        .pump_body(writer, first, RELAY_IDLE_TIMEOUT, target_idle)
        .await
}
