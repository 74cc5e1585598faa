//! The pump's three timers on one sleep: the idle timeout, the write-stall check and the
//! keep-alive ping (module docs of [`super`]). Completes with the end it found; never when no
//! timer is set.
//!
//! One sleep because each stream holds this future for its whole life, and a monoio `Sleep`
//! is 640 bytes aligned to 128; boxed, so that its alignment does not pad every future that
//! holds this one (docs/performance.md "Memory per idle stream"). The keep-alive's ping is
//! written by a boxed future polled next to the sleep, so the idle and stall checks go on
//! while a ping waits for its turn on the relay socket.

use std::cell::Cell;
use std::future::Future;
use std::time::{Duration, Instant};

use monoio::io::AsyncWriteRent;

use super::{PumpEnd, RelayWriter, Side};
use crate::io::watched_write::SharedProgress;
use crate::io::write_stall::{check, StallCheck};

/// What the timers watch.
pub(super) struct Timers<'a, W> {
    /// End the stream when `last_moved` (set by every forwarded chunk) lies this far back.
    pub(super) idle: Option<Duration>,
    pub(super) last_moved: &'a Cell<Option<Instant>>,
    /// End the stream when a write in `writes` (to the side at the same position of
    /// `written_to`) waited this long.
    pub(super) stall: Option<Duration>,
    pub(super) writes: &'a [SharedProgress],
    pub(super) written_to: &'a [Side],
    /// Ping the relay after this much silence (`heard`: when it last sent a frame, `None`
    /// once it closed), and end the stream when the next interval brings nothing back.
    pub(super) ping_interval: Option<Duration>,
    pub(super) heard: Option<&'a Cell<Option<Instant>>>,
    pub(super) writer: &'a RelayWriter<W>,
}

/// Where the keep-alive stands.
#[derive(Clone, Copy)]
enum KeepAlive {
    /// Waiting for `interval` of silence from the relay.
    Listening,
    /// A ping sent at this instant is being written.
    Pinging(Instant),
    /// A ping went at this instant; the relay must be heard from within the interval.
    Awaiting(Instant),
}

/// Runs the timers until one ends the stream: [`PumpEnd::Idle`], [`PumpEnd::WriteStalled`],
/// [`PumpEnd::KeepaliveTimeout`], or [`PumpEnd::RelayWrite`] for a ping that could not be
/// written. The keep-alive stops (never ends the stream) once either side's Close went out.
pub(super) async fn run<W: AsyncWriteRent>(timers: Timers<'_, W>) -> PumpEnd {
    let keep_alive = timers.ping_interval.zip(timers.heard);
    let mut state = KeepAlive::Listening;
    let mut ping = None;
    loop {
        let now = Instant::now();
        let mut wait: Option<Duration> = None;
        let mut wake_after = |after: Duration| wait = Some(wait.map_or(after, |w| w.min(after)));
        if let (Some(idle), Some(last)) = (timers.idle, timers.last_moved.get()) {
            let quiet = now.saturating_duration_since(last);
            if quiet >= idle {
                return PumpEnd::Idle(idle);
            }
            wake_after(idle - quiet);
        }
        if let Some(limit) = timers.stall {
            match check(timers.writes.iter().map(|w| w.get()), limit, now) {
                StallCheck::Stalled(index) => {
                    return PumpEnd::WriteStalled {
                        side: timers.written_to.get(index).copied().unwrap_or(Side::Relay),
                        after: limit,
                    }
                }
                StallCheck::RecheckAfter(after) => wake_after(after),
            }
        }
        if let Some((interval, heard)) = keep_alive {
            match state {
                KeepAlive::Listening => {
                    if let Some(last) = heard.get().filter(|_| !timers.writer.close_sent()) {
                        let quiet = now.saturating_duration_since(last);
                        if quiet < interval {
                            wake_after(interval - quiet);
                        } else {
                            state = KeepAlive::Pinging(now);
                            // Boxed: a ping is rare, and this future lasts the stream's life.
                            ping =
                                Some(Box::pin(timers.writer.send_control(
                                    |encoder, out, mask| encoder.ping(out, b"", mask),
                                )));
                        }
                    }
                }
                KeepAlive::Pinging(_) => {}
                KeepAlive::Awaiting(pinged) => {
                    let waited = now.saturating_duration_since(pinged);
                    if waited < interval {
                        wake_after(interval - waited);
                    } else {
                        if heard.get().is_some_and(|last| last < pinged)
                            && !timers.writer.close_sent()
                        {
                            return PumpEnd::KeepaliveTimeout(interval);
                        }
                        state = KeepAlive::Listening;
                        continue;
                    }
                }
            }
        }
        let sleep = async {
            match wait {
                Some(wait) => Box::pin(monoio::time::sleep(wait)).await,
                None => std::future::pending().await,
            }
        };
        let sent = monoio::select! {
            () = sleep => None,
            sent = in_flight(ping.as_mut()) => Some(sent),
        };
        if let Some(sent) = sent {
            ping = None;
            if let Err(e) = sent {
                return PumpEnd::RelayWrite(e);
            }
            if let KeepAlive::Pinging(pinged) = state {
                state = KeepAlive::Awaiting(pinged);
            }
        }
    }
}

/// Completes with `future`'s output; never without one.
async fn in_flight<F: Future + Unpin>(future: Option<&mut F>) -> F::Output {
    match future {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}
