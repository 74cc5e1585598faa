//! Taking the target's response back to the relay (protocol §4.5, §6.2, §6.4, §6.5): the
//! `response` from the target's head, then its body — gathered and sent whole on the control
//! channel when it fits, otherwise streamed through a rendezvous as one fragmented binary
//! message, each piece framed in place where it was read.

use std::fmt;
use std::future::Future;
use std::pin::{pin, Pin};
use std::time::Duration;

use monoio::io::AsyncReadRent;
use monoio::time::error::Elapsed;

use super::policy::{fits_control_channel, route, Route, GATHER_WINDOW};
use super::rendezvous::RendezvousWriter;
use super::reply::{Reply, ReplyError};
use super::response_text::ResponseText;
use crate::daemon::listener::context::HcContext;
use crate::daemon::listener::upstream::{ResponseError, ResponseReader};
use crate::io::lazy_timeout::poll_once;
use crate::proto::http1::{BodyKind, ResponseHead};

/// Why a response did not reach the relay whole.
#[derive(Debug)]
pub(crate) enum DeliveryFailure {
    /// The target's body is malformed, or the connection failed or ended early.
    Upstream(ResponseError),
    /// The target sent no body byte for this long.
    UpstreamIdle(Duration),
    /// The answer could not be sent.
    Reply(ReplyError),
}

impl fmt::Display for DeliveryFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Upstream(e) => e.fmt(f),
            Self::UpstreamIdle(after) => {
                write!(f, "the target's response body stalled for {after:?}")
            }
            Self::Reply(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for DeliveryFailure {}

/// How delivering a response ended.
#[derive(Debug)]
pub(crate) enum Delivery {
    /// The whole response reached the relay.
    Complete { status: u16, body_bytes: u64 },
    /// The `response` went out but its body did not finish; the body message was left
    /// unfinished so the relay ends the sender's response as broken.
    Broken {
        status: u16,
        body_bytes: u64,
        failure: DeliveryFailure,
    },
    /// Nothing went out: the daemon may still answer the request itself.
    NotSent(DeliveryFailure),
}

fn len_u64(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}

/// Delivers the response whose `head` (body framed as `kind`) was read from `reader`. Body
/// reads may stall for at most the hybrid connection's `upstream_deadline` each.
pub(crate) async fn deliver<R: AsyncReadRent>(
    hc: &HcContext,
    request_id: &str,
    head: &ResponseHead,
    kind: BodyKind,
    reader: &mut ResponseReader<R>,
    reply: &mut Reply<'_>,
) -> Delivery {
    let mut response = ResponseText::for_head(request_id, head, kind != BodyKind::Empty);
    match route(reply.control_allowed(), kind, response.text().len()) {
        Route::ControlNow => answer_whole(reply, &response, &[]).await,
        // Boxed here and below: streaming (opening a rendezvous) is the rare path, and its
        // state inline would make every request's future several KiB larger, copied whole
        // each time a request's task is set up.
        Route::Stream => Box::pin(stream_all(hc, &response, reader, reply)).await,
        Route::Gather => {
            response.set_body(true);
            gather(hc, response, reader, reply).await
        }
    }
}

/// Streams the whole response through a rendezvous: the `response`, then its body frames.
async fn stream_all<R: AsyncReadRent>(
    hc: &HcContext,
    response: &ResponseText,
    reader: &mut ResponseReader<R>,
    reply: &mut Reply<'_>,
) -> Delivery {
    let status = response.status();
    let writer = match reply.open_stream(response).await {
        Ok(writer) => writer,
        Err(e) => return Delivery::NotSent(DeliveryFailure::Reply(e)),
    };
    if !response.body() {
        return Delivery::Complete {
            status,
            body_bytes: 0,
        };
    }
    stream_rest(writer, reader, hc.upstream_deadline, status, 0).await
}

/// Gathers the body for the control channel; streams it instead once it outgrows
/// [`super::policy::CONTROL_BODY_LIMIT`] or is not complete within [`GATHER_WINDOW`]. A read
/// still pending when the window closes is not abandoned: the rendezvous is opened meanwhile
/// and the read's piece becomes its next frame.
/// A body whose first piece is the whole of it is answered from the read buffer as it lies.
async fn gather<R: AsyncReadRent>(
    hc: &HcContext,
    mut response: ResponseText,
    reader: &mut ResponseReader<R>,
    reply: &mut Reply<'_>,
) -> Delivery {
    let idle = hc.upstream_deadline;
    let status = response.status();
    let window_end = monoio::time::Instant::now() + GATHER_WINDOW;
    let mut gathered = Vec::new();
    loop {
        let (piece, late) = {
            let mut next = pin!(reader.next_piece());
            match poll_once(next.as_mut()).await {
                Some(piece) => (Ok(piece), false),
                // Boxed: only a read that has to wait gets the timers, and the state of every
                // request's future stays free of them.
                None => {
                    let waited =
                        wait_for_piece(next, idle, window_end, &response, &gathered, reply);
                    match Box::pin(waited).await {
                        Ok(waited) => waited,
                        Err(failure) => return failure,
                    }
                }
            }
        };
        let piece = match piece {
            Err(_) => Err(DeliveryFailure::UpstreamIdle(idle)),
            Ok(result) => result.map_err(DeliveryFailure::Upstream),
        };
        let sent = len_u64(gathered.len());
        if late {
            let Some(writer) = upgraded_writer(reply) else {
                return Delivery::NotSent(DeliveryFailure::Reply(ReplyError::NoAddress));
            };
            return Box::pin(continue_stream(writer, reader, piece, idle, status, sent)).await;
        }
        match piece {
            Err(failure) => return Delivery::NotSent(failure),
            Ok(None) => {
                response.set_body(!gathered.is_empty());
                return answer_whole(reply, &response, &gathered).await;
            }
            Ok(Some(range))
                if gathered.is_empty()
                    && reader.is_body_done()
                    && fits_control_channel(range.len()) =>
            {
                // The whole body in one piece: answered from the read buffer, without
                // gathering a copy first.
                return answer_whole(reply, &response, reader.bytes(range)).await;
            }
            Ok(Some(range)) if fits_control_channel(gathered.len() + range.len()) => {
                gathered.extend_from_slice(reader.bytes(range));
            }
            Ok(Some(range)) => {
                if let Err(failure) = Box::pin(upgrade(&response, &gathered, reply)).await {
                    return failure;
                }
                let Some(writer) = upgraded_writer(reply) else {
                    return Delivery::NotSent(DeliveryFailure::Reply(ReplyError::NoAddress));
                };
                return Box::pin(continue_stream(
                    writer,
                    reader,
                    Ok(Some(range)),
                    idle,
                    status,
                    sent,
                ))
                .await;
            }
        }
    }
}

/// Answers on the control channel with the `response` and its whole `body`.
async fn answer_whole(reply: &mut Reply<'_>, response: &ResponseText, body: &[u8]) -> Delivery {
    match reply.answer(response, body).await {
        Ok(()) => Delivery::Complete {
            status: response.status(),
            body_bytes: len_u64(body.len()),
        },
        Err(e) => Delivery::NotSent(DeliveryFailure::Reply(e)),
    }
}

/// Waits for the body read in flight, `next`, for up to `idle`. When the gather window closes
/// first, the read is not abandoned: the rendezvous is opened meanwhile ([`upgrade`]) and the
/// read's result comes back `late` (true), to become the stream's next frame.
async fn wait_for_piece<F: Future>(
    next: Pin<&mut F>,
    idle: Duration,
    window_end: monoio::time::Instant,
    response: &ResponseText,
    gathered: &[u8],
    reply: &mut Reply<'_>,
) -> Result<(Result<F::Output, Elapsed>, bool), Delivery> {
    let mut next = pin!(monoio::time::timeout(idle, next));
    monoio::select! {
        piece = &mut next => Ok((piece, false)),
        _ = monoio::time::sleep_until(window_end) => {
            Box::pin(upgrade(response, gathered, reply)).await?;
            Ok((next.await, true))
        }
    }
}

/// Opens the rendezvous for a response that will not fit the control channel and sends what
/// was gathered so far as its first body frame.
async fn upgrade(
    response: &ResponseText,
    gathered: &[u8],
    reply: &mut Reply<'_>,
) -> Result<(), Delivery> {
    let writer = reply
        .open_stream(response)
        .await
        .map_err(|e| Delivery::NotSent(DeliveryFailure::Reply(e)))?;
    writer
        .send_body_copy(gathered)
        .await
        .map_err(|e| Delivery::Broken {
            status: response.status(),
            body_bytes: 0,
            failure: DeliveryFailure::Reply(ReplyError::Write(e)),
        })
}

/// The writer of the rendezvous an upgrade opened.
fn upgraded_writer<'r>(reply: &'r mut Reply<'_>) -> Option<&'r mut RendezvousWriter> {
    match reply {
        Reply::Control(c) => c.upgraded_writer(),
        Reply::Rendezvous(w) => Some(w),
    }
}

/// Sends `piece` (the result of the read in flight when streaming began), then the rest.
async fn continue_stream<R: AsyncReadRent>(
    writer: &mut RendezvousWriter,
    reader: &mut ResponseReader<R>,
    piece: Result<Option<std::ops::Range<usize>>, DeliveryFailure>,
    idle: Duration,
    status: u16,
    sent: u64,
) -> Delivery {
    let broken = |body_bytes, failure| Delivery::Broken {
        status,
        body_bytes,
        failure,
    };
    match piece {
        Err(failure) => broken(sent, failure),
        Ok(None) => match writer.end_body().await {
            Ok(()) => Delivery::Complete {
                status,
                body_bytes: sent,
            },
            Err(e) => broken(sent, DeliveryFailure::Reply(ReplyError::Write(e))),
        },
        Ok(Some(range)) => {
            let sent = sent + len_u64(range.len());
            if let Err(e) = writer.send_body_in_place(reader, range).await {
                return broken(sent, DeliveryFailure::Reply(ReplyError::Write(e)));
            }
            stream_rest(writer, reader, idle, status, sent).await
        }
    }
}

/// Streams the remaining body pieces as frames of the body message, then ends it.
async fn stream_rest<R: AsyncReadRent>(
    writer: &mut RendezvousWriter,
    reader: &mut ResponseReader<R>,
    idle: Duration,
    status: u16,
    mut sent: u64,
) -> Delivery {
    let broken = |body_bytes, failure| Delivery::Broken {
        status,
        body_bytes,
        failure,
    };
    loop {
        let piece = match monoio::time::timeout(idle, reader.next_piece()).await {
            Err(_) => return broken(sent, DeliveryFailure::UpstreamIdle(idle)),
            Ok(Err(e)) => return broken(sent, DeliveryFailure::Upstream(e)),
            Ok(Ok(piece)) => piece,
        };
        let Some(range) = piece else {
            return match writer.end_body().await {
                Ok(()) => Delivery::Complete {
                    status,
                    body_bytes: sent,
                },
                Err(e) => broken(sent, DeliveryFailure::Reply(ReplyError::Write(e))),
            };
        };
        sent += len_u64(range.len());
        if let Err(e) = writer.send_body_in_place(reader, range).await {
            return broken(sent, DeliveryFailure::Reply(ReplyError::Write(e)));
        }
    }
}
