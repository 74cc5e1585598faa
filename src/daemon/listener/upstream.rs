//! The daemon's HTTP/1.1 client towards a hybrid connection's `http_target` (protocol §6.6, §6.7,
//! Appendix B; RFC 9112).
//!
//! - [`connect`]: TCP (`TCP_NODELAY`) and TLS (SNI = target host) connections, and the
//!   worker's keep-alive pool of idle ones;
//! - [`request`]: the request head and the chunk framing of a streamed body (sans-I/O);
//! - [`response`]: the response head and body, read in place with frame-header headroom.
//!
//! A [`Connection`] is split into its read and write halves so a request body can stream to
//! the target while its response is already coming back.

pub(crate) mod connect;
pub(crate) mod request;
pub(crate) mod response;

use std::time::{Duration, Instant};

use monoio::io::{OwnedReadHalf, OwnedWriteHalf, Splitable};

pub use connect::{host_header, ConnectError, IdleConnection, MAX_IDLE_CONNECTIONS};
pub use request::{chunked_end, is_idempotent, ChunkPrefix, Framing};
pub use response::{ResponseError, ResponseReader};

use super::context::HcContext;
use crate::config::HttpTarget;
use crate::daemon::listener::hc_series::Histogram;
use crate::io::read_buf::ReadBuf;
use crate::io::stream::Stream;
use crate::proto::http1::Limits as HeadLimits;

/// The read half of a connection to the target.
pub type UpstreamRead = OwnedReadHalf<Stream>;
/// The write half of a connection to the target.
pub type UpstreamWrite = OwnedWriteHalf<Stream>;

/// The largest request buffer a pooled connection keeps for its next request; a larger one
/// (a large body) is freed when the connection goes back to the pool.
pub const KEPT_REQUEST_BUFFER: usize = 16 * 1024;

/// A connection to the target, in use by one exchange.
pub struct Connection {
    /// Reads the response.
    pub reader: ResponseReader<UpstreamRead>,
    /// Carries the request.
    pub writer: UpstreamWrite,
    /// Where the request head and a body held whole are put for their one write; kept with
    /// the pooled connection (up to [`KEPT_REQUEST_BUFFER`]) for its next request.
    pub request_buf: Vec<u8>,
    /// Whether it came from the pool (it may have been closed by the target meanwhile).
    pub reused: bool,
}

impl Connection {
    /// A new connection `stream`.
    fn fresh(stream: Stream, head_limits: HeadLimits) -> Self {
        Self::split(stream, false, head_limits, (None, Vec::new()))
    }

    /// A connection from the pool, with the buffers it kept.
    fn pooled(idle: IdleConnection, head_limits: HeadLimits) -> Self {
        let (stream, read_buf, request_buf) = idle.into_parts();
        Self::split(stream, true, head_limits, (Some(read_buf), request_buf))
    }

    fn split(
        stream: Stream,
        reused: bool,
        head_limits: HeadLimits,
        (read_buf, request_buf): (Option<ReadBuf>, Vec<u8>),
    ) -> Self {
        let (read, writer) = stream.into_split();
        Self {
            reader: ResponseReader::with_buffer(read, head_limits, read_buf),
            writer,
            request_buf,
            reused,
        }
    }

    /// After a complete exchange (the whole request sent, the whole response read), returns
    /// the connection to the pool when the response allows keep-alive; otherwise closes it.
    /// Returns whether it was pooled. Call only when the exchange completed: after a failed or
    /// abandoned read or write the connection's state is unknown.
    pub fn release(self, hc: &HcContext) -> bool {
        if !self.reader.is_reusable() {
            return false;
        }
        let (read, read_buf) = self.reader.into_parts();
        let mut request_buf = self.request_buf;
        if request_buf.capacity() > KEPT_REQUEST_BUFFER {
            request_buf = Vec::new();
        }
        match read.reunite(self.writer) {
            Ok(stream) => {
                connect::put_idle(hc, IdleConnection::new(stream, read_buf, request_buf));
                true
            }
            Err(_) => false,
        }
    }
}

/// A connection to `target`: the most recently used idle one when `allow_idle`, otherwise (or
/// when none is idle) a new one opened within `timeout`, its set-up time recorded.
pub async fn acquire(
    hc: &HcContext,
    target: &HttpTarget,
    allow_idle: bool,
    timeout: Duration,
) -> Result<Connection, ConnectError> {
    if allow_idle {
        if let Some(idle) = connect::take_idle(hc) {
            return Ok(Connection::pooled(idle, hc.limits.http_head()));
        }
    }
    let started = Instant::now();
    // Boxed: with a warm pool new connections are rare, and the TCP + TLS connect inline would
    // make every request's future several KiB larger.
    let stream = Box::pin(connect::connect(
        target,
        &hc.upstream_tls,
        &hc.dialer.resolver,
        timeout,
    ))
    .await?;
    hc.observe(Histogram::TargetConnect, started.elapsed());
    Ok(Connection::fresh(stream, hc.limits.http_head()))
}
