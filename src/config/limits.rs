//! `[limits]` (docs/configuration.md `[limits]`, docs/reliability.md "Limits"): what one hybrid
//! connection, one worker and one stream may cost, and how long handshakes and idle streams may
//! take.
//!
//! Every key has a safe default and an accepted range; a value outside it is a
//! [`Reason::LimitOutOfRange`] (counts and sizes) or [`Reason::DurationTooShort`] /
//! [`Reason::DurationTooLong`] (times) naming the key. `[[hybrid_connection]]` may override the
//! two per-hybrid-connection maxima with `max_streams` and `max_requests`; each hybrid
//! connection carries its resolved [`Limits`], so a reload that changes any of them replaces the
//! hybrid connections it affects (architecture §3 "Lifecycle").

use std::num::NonZeroUsize;
use std::time::Duration;

use super::duration;
use super::error::{ConfigError, Reason};
use super::raw::RawLimits;

/// Default `max_streams_per_hybrid_connection` and `max_requests_per_hybrid_connection`.
pub(crate) const DEFAULT_MAX_PER_HYBRID_CONNECTION: usize = 1024;
/// Default `max_streams_per_worker` and `max_requests_per_worker`.
pub(crate) const DEFAULT_MAX_PER_WORKER: usize = 4096;
/// Largest accepted stream or request maximum.
pub(crate) const MAX_CONCURRENCY: usize = 1_000_000;
/// Default `stream_buffer`: one 256 KiB buffer per direction (the stream pump's own default
/// chunk), grown to that size only once reads fill it (docs/performance.md, "Optimisations").
pub(crate) const DEFAULT_STREAM_BUFFER: usize = 512 * 1024;
/// Smallest accepted `stream_buffer` (4 KiB per direction).
pub(crate) const MIN_STREAM_BUFFER: usize = 8 * 1024;
/// Largest accepted `stream_buffer`.
pub(crate) const MAX_STREAM_BUFFER: usize = 16 * 1024 * 1024;
/// Smallest accepted non-zero `max_frame` and `max_message`.
pub(crate) const MIN_MAX_FRAME: u64 = 1024;
/// Largest accepted `max_frame` and `max_message`: RFC 6455 §5.2 allows 2^63 - 1.
pub(crate) const MAX_MAX_FRAME: u64 = i64::MAX.unsigned_abs();
/// Default `max_http_head`: protocol §6.1's 32 KB of header metadata.
pub(crate) const DEFAULT_MAX_HTTP_HEAD: usize = crate::proto::http1::head::DEFAULT_MAX_HEAD_BYTES;
/// Smallest accepted `max_http_head`.
pub(crate) const MIN_MAX_HTTP_HEAD: usize = 1024;
/// Largest accepted `max_http_head`.
pub(crate) const MAX_MAX_HTTP_HEAD: usize = 1024 * 1024;
/// Default `max_header_count`.
pub(crate) const DEFAULT_MAX_HEADER_COUNT: usize = crate::proto::http1::head::DEFAULT_MAX_HEADERS;
/// Largest accepted `max_header_count`.
pub(crate) const MAX_MAX_HEADER_COUNT: usize = 10_000;
/// Default `handshake_timeout`: a target connect plus a rejection fit in the ~30 s a sender
/// waits for its accept (protocol §5.1).
pub(crate) const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Smallest accepted `handshake_timeout`.
pub(crate) const MIN_HANDSHAKE_TIMEOUT: Duration = Duration::from_millis(100);
/// Largest accepted `handshake_timeout`.
pub(crate) const MAX_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default `idle_timeout`: two hours, like Linux's TCP keep-alive idle time.
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(2 * 3600);
/// Smallest accepted non-zero `idle_timeout`.
pub(crate) const MIN_IDLE_TIMEOUT: Duration = Duration::from_secs(1);
/// Default `write_stall_timeout`: a minute without the peer taking a byte ends the stream
/// (docs/reliability.md "Faults").
pub(crate) const DEFAULT_WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Smallest accepted non-zero `write_stall_timeout`.
pub(crate) const MIN_WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(1);

/// The resolved limits of one hybrid connection (`[limits]` with its overrides applied).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Relayed WebSocket streams open at once on one hybrid connection, over all workers.
    pub max_streams_per_hybrid_connection: NonZeroUsize,
    /// Relayed HTTP requests in flight at once on one hybrid connection, over all workers.
    pub max_requests_per_hybrid_connection: NonZeroUsize,
    /// Relayed WebSocket streams open at once on one worker, over all hybrid connections.
    pub max_streams_per_worker: NonZeroUsize,
    /// Relayed HTTP requests in flight at once on one worker, over all hybrid connections.
    pub max_requests_per_worker: NonZeroUsize,
    /// Bytes of buffer one relayed stream may hold, split evenly between its two directions.
    pub stream_buffer: usize,
    /// The largest WebSocket frame payload accepted from the relay, in bytes; `None` = any
    /// size (the default: a .NET sender sends each `Write` as one frame, and payloads are
    /// streamed, never assembled).
    pub max_frame: Option<u64>,
    /// The largest WebSocket message accepted from the relay; `None` = unbounded (relayed
    /// messages are streamed, never assembled).
    pub max_message: Option<u64>,
    /// The largest HTTP head accepted from an `http_target`, in bytes.
    pub max_http_head: usize,
    /// The most header fields accepted in one HTTP head from an `http_target`.
    pub max_header_count: usize,
    /// How long a WebSocket upgrade to the relay (control channel, rendezvous, rejection) or a
    /// target's TCP connect may take.
    pub handshake_timeout: Duration,
    /// A stream that forwarded no byte either way for this long is closed; `None` = never.
    pub idle_timeout: Option<Duration>,
    /// A stream whose write to the target or the relay made no progress for this long is
    /// closed (the peer stopped reading); `None` = never.
    pub write_stall_timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_streams_per_hybrid_connection: non_zero(DEFAULT_MAX_PER_HYBRID_CONNECTION),
            max_requests_per_hybrid_connection: non_zero(DEFAULT_MAX_PER_HYBRID_CONNECTION),
            max_streams_per_worker: non_zero(DEFAULT_MAX_PER_WORKER),
            max_requests_per_worker: non_zero(DEFAULT_MAX_PER_WORKER),
            stream_buffer: DEFAULT_STREAM_BUFFER,
            max_frame: None,
            max_message: None,
            max_http_head: DEFAULT_MAX_HTTP_HEAD,
            max_header_count: DEFAULT_MAX_HEADER_COUNT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            write_stall_timeout: Some(DEFAULT_WRITE_STALL_TIMEOUT),
        }
    }
}

impl Limits {
    /// The WebSocket decoder limits for frames and messages from the relay.
    pub fn websocket(&self) -> crate::proto::ws::Limits {
        crate::proto::ws::Limits {
            max_frame_size: self.max_frame.unwrap_or(u64::MAX),
            max_message_size: self.max_message.unwrap_or(u64::MAX),
        }
    }

    /// The HTTP head limits for responses from an `http_target`.
    pub fn http_head(&self) -> crate::proto::http1::Limits {
        crate::proto::http1::Limits {
            max_head_bytes: self.max_http_head,
            max_headers: self.max_header_count,
        }
    }

    /// This hybrid connection's limits with its `max_streams` / `max_requests` overrides.
    pub(super) fn with_overrides(
        self,
        max_streams: Option<NonZeroUsize>,
        max_requests: Option<NonZeroUsize>,
    ) -> Self {
        Self {
            max_streams_per_hybrid_connection: max_streams
                .unwrap_or(self.max_streams_per_hybrid_connection),
            max_requests_per_hybrid_connection: max_requests
                .unwrap_or(self.max_requests_per_hybrid_connection),
            ..self
        }
    }
}

/// Descriptors `hycod run` holds besides streams and requests: control channels, the admin
/// endpoint, the runtime's rings and event descriptors, standard streams.
pub(crate) const BASE_DESCRIPTORS: u64 = 64;
/// Descriptors one relayed stream holds: target, target duplicate, rendezvous.
pub(crate) const DESCRIPTORS_PER_STREAM: u64 = 3;
/// Descriptors one relayed request holds at most: target and rendezvous.
pub(crate) const DESCRIPTORS_PER_REQUEST: u64 = 2;

/// The file descriptors the daemon may hold with every stream and request maximum reached:
/// three per stream (the target, its duplicate kept to reset it when the relay side fails —
/// `daemon::listener::target_reset` — and the rendezvous) and two per request (the target and the
/// rendezvous), at most the per-worker maxima over `workers` and at most the sum of the
/// per-hybrid-connection maxima, plus [`BASE_DESCRIPTORS`]. `per_hybrid_connection` holds each
/// hybrid connection's limits.
pub(crate) fn descriptors_needed(per_hybrid_connection: &[Limits], workers: usize) -> u64 {
    let widen = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let descriptors = |streams: usize, requests: usize| {
        widen(streams)
            .saturating_mul(DESCRIPTORS_PER_STREAM)
            .saturating_add(widen(requests).saturating_mul(DESCRIPTORS_PER_REQUEST))
    };
    let by_hybrid_connections = per_hybrid_connection.iter().fold(0u64, |sum, limits| {
        sum.saturating_add(descriptors(
            limits.max_streams_per_hybrid_connection.get(),
            limits.max_requests_per_hybrid_connection.get(),
        ))
    });
    let by_workers = per_hybrid_connection
        .first()
        .map_or(0, |limits| {
            descriptors(
                limits.max_streams_per_worker.get(),
                limits.max_requests_per_worker.get(),
            )
        })
        .saturating_mul(widen(workers));
    by_hybrid_connections
        .min(by_workers)
        .saturating_add(BASE_DESCRIPTORS)
}

/// A default that is non-zero by construction.
const fn non_zero(value: usize) -> NonZeroUsize {
    match NonZeroUsize::new(value) {
        Some(value) => value,
        None => NonZeroUsize::MIN,
    }
}

/// Converts `[limits]`.
pub(super) fn convert(raw: &RawLimits) -> Result<Limits, ConfigError> {
    let defaults = Limits::default();
    let count = |key: &str, got: Option<usize>, default: NonZeroUsize| {
        concurrency(&format!("limits.{key}"), got).map(|got| got.unwrap_or(default))
    };
    Ok(Limits {
        max_streams_per_hybrid_connection: count(
            "max_streams_per_hybrid_connection",
            raw.max_streams_per_hybrid_connection,
            defaults.max_streams_per_hybrid_connection,
        )?,
        max_requests_per_hybrid_connection: count(
            "max_requests_per_hybrid_connection",
            raw.max_requests_per_hybrid_connection,
            defaults.max_requests_per_hybrid_connection,
        )?,
        max_streams_per_worker: count(
            "max_streams_per_worker",
            raw.max_streams_per_worker,
            defaults.max_streams_per_worker,
        )?,
        max_requests_per_worker: count(
            "max_requests_per_worker",
            raw.max_requests_per_worker,
            defaults.max_requests_per_worker,
        )?,
        stream_buffer: size(
            "limits.stream_buffer",
            raw.stream_buffer,
            MIN_STREAM_BUFFER,
            MAX_STREAM_BUFFER,
        )?
        .unwrap_or(defaults.stream_buffer),
        max_frame: match raw.max_frame {
            None => defaults.max_frame,
            Some(0) => None,
            got => in_range("limits.max_frame", got, MIN_MAX_FRAME, MAX_MAX_FRAME)?,
        },
        max_message: match raw.max_message {
            None | Some(0) => None,
            got => in_range("limits.max_message", got, MIN_MAX_FRAME, MAX_MAX_FRAME)?,
        },
        max_http_head: size(
            "limits.max_http_head",
            raw.max_http_head,
            MIN_MAX_HTTP_HEAD,
            MAX_MAX_HTTP_HEAD,
        )?
        .unwrap_or(defaults.max_http_head),
        max_header_count: size(
            "limits.max_header_count",
            raw.max_header_count,
            1,
            MAX_MAX_HEADER_COUNT,
        )?
        .unwrap_or(defaults.max_header_count),
        handshake_timeout: time(
            "limits.handshake_timeout",
            raw.handshake_timeout.as_deref(),
            MIN_HANDSHAKE_TIMEOUT,
            Some(MAX_HANDSHAKE_TIMEOUT),
        )?
        .unwrap_or(defaults.handshake_timeout),
        idle_timeout: optional_time(
            "limits.idle_timeout",
            raw.idle_timeout.as_deref(),
            defaults.idle_timeout,
            MIN_IDLE_TIMEOUT,
        )?,
        write_stall_timeout: optional_time(
            "limits.write_stall_timeout",
            raw.write_stall_timeout.as_deref(),
            defaults.write_stall_timeout,
            MIN_WRITE_STALL_TIMEOUT,
        )?,
    })
}

/// A duration that may be switched off: absent = `default`, zero = `None`, otherwise at least
/// `min`.
fn optional_time(
    path: &str,
    text: Option<&str>,
    default: Option<Duration>,
    min: Duration,
) -> Result<Option<Duration>, ConfigError> {
    match text {
        None => Ok(default),
        Some(text) => time(path, Some(text), Duration::ZERO, None)?
            .filter(|got| !got.is_zero())
            .map(|got| at_least(path, got, min))
            .transpose(),
    }
}

/// A stream or request maximum: `1..=`[`MAX_CONCURRENCY`].
pub(super) fn concurrency(
    path: &str,
    got: Option<usize>,
) -> Result<Option<NonZeroUsize>, ConfigError> {
    Ok(size(path, got, 1, MAX_CONCURRENCY)?.and_then(NonZeroUsize::new))
}

/// A count or byte size within `min..=max`.
fn size(
    path: &str,
    got: Option<usize>,
    min: usize,
    max: usize,
) -> Result<Option<usize>, ConfigError> {
    let widen = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    in_range(path, got.map(widen), widen(min), widen(max))?
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
        .map_or(Ok(None), |n| Ok(Some(n)))
}

/// A number within `min..=max`.
fn in_range(path: &str, got: Option<u64>, min: u64, max: u64) -> Result<Option<u64>, ConfigError> {
    match got {
        Some(got) if !(min..=max).contains(&got) => Err(ConfigError::new(
            path,
            Reason::LimitOutOfRange { got, min, max },
        )),
        got => Ok(got),
    }
}

/// A duration text within `min..=max` (`max` `None`: unbounded).
fn time(
    path: &str,
    text: Option<&str>,
    min: Duration,
    max: Option<Duration>,
) -> Result<Option<Duration>, ConfigError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let got = duration::parse(text).map_err(|error| {
        ConfigError::new(
            path,
            Reason::InvalidDuration {
                got: text.to_owned(),
                error,
            },
        )
    })?;
    let got = at_least(path, got, min)?;
    match max {
        Some(max) if got > max => Err(ConfigError::new(path, Reason::DurationTooLong { got, max })),
        _ => Ok(Some(got)),
    }
}

fn at_least(path: &str, got: Duration, min: Duration) -> Result<Duration, ConfigError> {
    if got < min {
        return Err(ConfigError::new(
            path,
            Reason::DurationTooShort { got, min },
        ));
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_needed_counts_three_per_stream_two_per_request_under_the_tighter_maximum() {
        let defaults = Limits::default();
        // Two hybrid connections of 1024 streams + 1024 requests each, below 2 workers ×
        // (4096 + 4096).
        assert_eq!(
            descriptors_needed(&[defaults, defaults], 2),
            2 * (3 * 1024 + 2 * 1024) + 64
        );
        // One worker of 4096 streams + 4096 requests, below 8 hybrid connections.
        assert_eq!(
            descriptors_needed(&[defaults; 8], 1),
            3 * 4096 + 2 * 4096 + 64
        );
        assert_eq!(descriptors_needed(&[], 4), 64);
    }
}
