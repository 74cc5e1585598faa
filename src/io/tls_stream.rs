//! A TLS stream of our own over rustls 0.23's buffered [`Connection`] (architecture §2, "TLS";
//! docs/performance.md "wss: our own TLS stream"). rustls does the record protocol (RFC 8446 §5,
//! RFC 5246 §6); this file only moves ciphertext between rustls and the socket, in large pieces:
//!
//! - one socket read fills a ciphertext buffer of up to [`CIPHERTEXT_BUFFER`] bytes (it starts at
//!   one record and grows once a read fills it), and one `read` call decrypts as many records as
//!   fit the caller's buffer;
//! - one `write` call encrypts the whole caller's buffer and sends every record in one socket
//!   write. It hands rustls one record's worth of plaintext at a time ([`RECORD_PLAINTEXT`]) and
//!   moves that record into the outgoing buffer before encrypting the next, so rustls holds one
//!   record at a time (one allocation, reused) instead of a whole 256 KiB message in seventeen
//!   allocations next to the outgoing buffer. (The CPU cost of those copies is glibc's
//!   `rep movsb`; see the `hycod` binary's `memcpy_tuning`.)

use std::fmt;
use std::io::{self, BufRead, Write};
use std::sync::Arc;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, RawBuf};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, CancelHandle, CancelableAsyncReadRent, Split,
};
use monoio::BufResult;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};

/// Largest ciphertext read or write: one 256 KiB stream message with its frame header, as
/// 16 KiB records with their headers and AEAD tags (RFC 8446 §5.2: at most 256 bytes of
/// expansion per record), with room to spare.
pub(crate) const CIPHERTEXT_BUFFER: usize = 288 * 1024;

/// Plaintext per record (RFC 8446 §5.1: at most 2^14 bytes per TLSPlaintext fragment), the
/// unit in which [`TlsStream`] hands data to rustls for encryption.
const RECORD_PLAINTEXT: usize = 1 << 14;

/// Bytes a record adds to its plaintext: the 5-byte header, the TLS 1.3 inner content type and
/// the 16-byte AEAD tag (RFC 8446 §5.2), or TLS 1.2's explicit nonce and tag (RFC 5288 §3).
const RECORD_OVERHEAD: usize = 5 + 8 + 16;

/// First capacity of the incoming buffer: one largest record (RFC 8446 §5.2: 5-byte header and
/// at most 2^14 + 256 bytes), so an idle stream holds little memory.
const FIRST_READ: usize = 5 + (1 << 14) + 256;

/// Why a TLS stream failed.
#[derive(Debug)]
pub enum TlsStreamError {
    /// rustls rejected what the peer sent or did (a bad record, a certificate that fails
    /// verification, a fatal alert).
    Protocol(rustls::Error),
    /// The connection ended before the handshake finished.
    HandshakeEof,
    /// An earlier write was cancelled while its records were being sent: the peer may hold part
    /// of a record, so nothing more may be written.
    WriteInterrupted,
}

impl fmt::Display for TlsStreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Protocol(e) => write!(f, "TLS protocol error: {e}"),
            Self::HandshakeEof => f.write_str("connection closed during the TLS handshake"),
            Self::WriteInterrupted => f.write_str(
                "an earlier TLS write was cancelled mid-send; the stream accepts no more writes",
            ),
        }
    }
}

impl std::error::Error for TlsStreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Protocol(e) => Some(e),
            Self::HandshakeEof | Self::WriteInterrupted => None,
        }
    }
}

impl TlsStreamError {
    fn into_io(self) -> io::Error {
        let kind = match self {
            Self::Protocol(_) => io::ErrorKind::InvalidData,
            Self::HandshakeEof => io::ErrorKind::UnexpectedEof,
            Self::WriteInterrupted => io::ErrorKind::BrokenPipe,
        };
        io::Error::new(kind, self)
    }

    /// The `TlsStreamError` inside an I/O error returned by this module, if any.
    pub fn of(error: &io::Error) -> Option<&TlsStreamError> {
        error.get_ref().and_then(|e| e.downcast_ref())
    }
}

/// Opens client TLS streams with one configuration.
#[derive(Clone)]
pub struct Connector(Arc<ClientConfig>);

impl From<Arc<ClientConfig>> for Connector {
    fn from(config: Arc<ClientConfig>) -> Self {
        Self(config)
    }
}

impl Connector {
    /// Runs the client handshake over `io`, verifying the server as `name`.
    pub async fn connect<IO>(&self, name: ServerName<'static>, io: IO) -> io::Result<TlsStream<IO>>
    where
        IO: AsyncReadRent + AsyncWriteRent,
    {
        let conn = ClientConnection::new(self.0.clone(), name)
            .map_err(|e| TlsStreamError::Protocol(e).into_io())?;
        TlsStream::handshake(io, Connection::Client(conn)).await
    }
}

/// Accepts server TLS streams with one configuration.
#[derive(Clone)]
pub struct Acceptor(Arc<ServerConfig>);

impl From<Arc<ServerConfig>> for Acceptor {
    fn from(config: Arc<ServerConfig>) -> Self {
        Self(config)
    }
}

impl Acceptor {
    /// Runs the server handshake over `io`.
    pub async fn accept<IO>(&self, io: IO) -> io::Result<TlsStream<IO>>
    where
        IO: AsyncReadRent + AsyncWriteRent,
    {
        let conn = ServerConnection::new(self.0.clone())
            .map_err(|e| TlsStreamError::Protocol(e).into_io())?;
        TlsStream::handshake(io, Connection::Server(conn)).await
    }
}

/// Ciphertext received from the socket and not yet handed to rustls: `buf[consumed..]`.
/// `buf` is `None` only after a read future was dropped during a socket read.
struct Incoming {
    buf: Option<Vec<u8>>,
    consumed: usize,
}

impl Incoming {
    fn pending(&self) -> &[u8] {
        self.buf
            .as_deref()
            .and_then(|b| b.get(self.consumed..))
            .unwrap_or_default()
    }
}

/// The ciphertext write buffer (reused) and whether a send was cancelled.
struct Outgoing {
    buf: Vec<u8>,
    interrupted: bool,
}

/// A TLS stream (client or server side) over `IO`, with large buffers (module docs).
///
/// # Cancellation
/// hycod drops I/O futures inside `select!` and timeouts. The stream stays correct when it does:
/// - **read**: plaintext is moved out of rustls into the caller's buffer only in the synchronous
///   step that returns it, and the socket is read only when every received ciphertext byte has
///   been handed to rustls. A read future dropped while it waits for the socket therefore holds
///   no byte of the stream: the next read goes on where the stream is (the socket read itself is
///   cancelled by monoio exactly as a dropped `TcpStream` read is).
/// - **write**: the caller's bytes are committed to rustls and encrypted synchronously, then sent.
///   A write future dropped while its ciphertext is on the way to the socket leaves an unknown
///   part of it sent, which no retry could repair: the stream then refuses every later write and
///   flush with [`TlsStreamError::WriteInterrupted`] (and its shutdown only closes the socket)
///   instead of sending a corrupt record stream. Reads go on.
///
/// # Splitting
/// The pumps split streams into owned halves that read and write at the same time (monoio
/// `Split`). The read path keeps only `incoming` and the socket's read side across an await, the
/// write path only `outgoing` and the socket's write side; the rustls connection is touched only
/// between awaits, and both halves run on one thread. Records rustls queues while reading (a
/// TLS 1.3 key-update answer, an alert) leave with the next write. A read cancelled for quiet
/// also drops the outgoing buffer, between awaits, when no send holds it.
pub struct TlsStream<IO> {
    io: IO,
    conn: Connection,
    incoming: Incoming,
    outgoing: Outgoing,
}

// SAFETY: `Split` promises that the read half and the write half may be used concurrently. The
// read path keeps only `incoming` and the socket's read side across an await, the write path only
// `outgoing` and the socket's write side (`IO: Split` makes the socket's halves independent);
// `conn` is used only between awaits, and both halves live on one monoio thread, so no two
// accesses to it overlap.
unsafe impl<IO: Split> Split for TlsStream<IO> {}

impl<IO> TlsStream<IO> {
    /// The transport under the TLS layer.
    pub fn get_ref(&self) -> &IO {
        &self.io
    }
}

impl<IO: AsyncReadRent + AsyncWriteRent> TlsStream<IO> {
    async fn handshake(io: IO, mut conn: Connection) -> io::Result<Self> {
        conn.set_buffer_limit(Some(CIPHERTEXT_BUFFER));
        let mut stream = Self {
            io,
            conn,
            incoming: Incoming {
                buf: Some(Vec::with_capacity(FIRST_READ)),
                consumed: 0,
            },
            outgoing: Outgoing {
                buf: Vec::new(),
                interrupted: false,
            },
        };
        while stream.conn.is_handshaking() {
            if stream.conn.wants_write() {
                stream.send_queued().await?;
                continue;
            }
            if stream.incoming.pending().is_empty() && stream.fill().await? == 0 {
                return Err(TlsStreamError::HandshakeEof.into_io());
            }
            if let Err(e) = stream.feed() {
                // Best effort: tell the peer why (rustls queued an alert).
                let _ = stream.send_queued().await;
                return Err(e);
            }
        }
        stream.send_queued().await?;
        Ok(stream)
    }

    /// Reads ciphertext from the socket into the (empty) incoming buffer; `Ok(0)` at end of
    /// stream, which rustls is told.
    async fn fill(&mut self) -> io::Result<usize> {
        let buf = self.empty_incoming();
        let (result, buf) = self.io.read(buf).await;
        self.filled(result, buf)
    }

    /// The incoming buffer, emptied (every byte of it was handed to rustls), grown to
    /// [`CIPHERTEXT_BUFFER`] when the last read filled it.
    fn empty_incoming(&mut self) -> Vec<u8> {
        let mut buf = self
            .incoming
            .buf
            .take()
            .unwrap_or_else(|| Vec::with_capacity(FIRST_READ));
        let grow = buf.len() == buf.capacity() && buf.capacity() < CIPHERTEXT_BUFFER;
        buf.clear();
        self.incoming.consumed = 0;
        if grow {
            buf.reserve_exact(CIPHERTEXT_BUFFER);
        }
        buf
    }

    /// Keeps the buffer a socket read returned. A failed read left it empty: a grown one is
    /// dropped then (the next read starts at one record again), so that a read cancelled for
    /// quiet ([`crate::io::quiet_release`]) gives its memory back.
    fn filled(&mut self, result: io::Result<usize>, buf: Vec<u8>) -> io::Result<usize> {
        if result.is_err() && buf.capacity() > FIRST_READ {
            self.incoming.buf = None;
        } else {
            self.incoming.buf = Some(buf);
        }
        let n = result?;
        if n == 0 {
            self.conn.read_tls(&mut io::empty())?;
        }
        Ok(n)
    }

    /// Drops a grown outgoing buffer that no send holds (a send takes it out of the stream
    /// while it runs); the next write starts a new one. Called by a read cancelled for quiet,
    /// between awaits (see "Splitting").
    fn release_outgoing(&mut self) {
        if self.outgoing.buf.capacity() > FIRST_READ {
            self.outgoing.buf = Vec::new();
        }
    }

    /// Hands buffered ciphertext to rustls and decrypts what forms whole records.
    fn feed(&mut self) -> io::Result<()> {
        let mut pending = self.incoming.pending();
        let before = pending.len();
        let taken = self.conn.read_tls(&mut pending)?;
        self.incoming.consumed += if taken == 0 { before } else { taken };
        self.conn
            .process_new_packets()
            .map_err(|e| TlsStreamError::Protocol(e).into_io())?;
        Ok(())
    }

    /// Encrypts nothing new; sends every record rustls has queued, in one socket write.
    async fn send_queued(&mut self) -> io::Result<()> {
        if self.outgoing.interrupted {
            return Err(TlsStreamError::WriteInterrupted.into_io());
        }
        let buf = self.queued_records()?;
        self.send(buf).await
    }

    /// The reused outgoing buffer, emptied and then filled with every record rustls has queued
    /// (an alert, a key update, handshake data). On failure the buffer stays with the stream.
    fn queued_records(&mut self) -> io::Result<Vec<u8>> {
        let mut buf = std::mem::take(&mut self.outgoing.buf);
        buf.clear();
        match self.take_queued(&mut buf) {
            Ok(()) => Ok(buf),
            Err(e) => {
                self.outgoing.buf = buf;
                Err(e)
            }
        }
    }

    /// Appends every record rustls has queued to `out`.
    fn take_queued(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        while self.conn.wants_write() {
            self.conn.write_tls(out)?;
        }
        Ok(())
    }

    /// Encrypts `plaintext` into records appended to `out`, one record at a time (see the module
    /// docs); returns how many plaintext bytes rustls took.
    fn encrypt_into(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> io::Result<usize> {
        let records = plaintext.len().div_ceil(RECORD_PLAINTEXT);
        out.reserve(plaintext.len() + records * RECORD_OVERHEAD);
        let mut taken = 0;
        for chunk in plaintext.chunks(RECORD_PLAINTEXT) {
            let n = self.conn.writer().write(chunk)?;
            taken += n;
            self.take_queued(out)?;
            if n < chunk.len() {
                break;
            }
        }
        Ok(taken)
    }

    /// Sends `buf` (the reused outgoing buffer) in one socket write, marking the stream
    /// interrupted while the send is under way.
    async fn send(&mut self, buf: Vec<u8>) -> io::Result<()> {
        if buf.is_empty() {
            self.outgoing.buf = buf;
            return Ok(());
        }
        // Stays set if this future is dropped before the send completes.
        self.outgoing.interrupted = true;
        let (result, buf) = self.io.write_all(buf).await;
        self.outgoing.interrupted = false;
        self.outgoing.buf = buf;
        result.map(drop)
    }

    /// Copies decrypted plaintext into `dst[filled..]` until it is full or rustls has none left.
    fn copy_plaintext<T: IoBufMut>(&mut self, dst: &mut T, mut filled: usize) -> Copied {
        let total = dst.bytes_total();
        let mut reader = self.conn.reader();
        while filled < total {
            let chunk = match reader.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Copied::NeedMore(filled),
                Err(_) if filled > 0 => break,
                Err(e) => return Copied::Failed(e),
            };
            if chunk.is_empty() {
                break;
            }
            let n = chunk.len().min(total - filled);
            // SAFETY: `IoBufMut` guarantees `write_ptr()` is valid for `bytes_total()` bytes, and
            // `filled + n <= total`; `chunk` is rustls's memory, which cannot overlap `dst`.
            unsafe {
                std::ptr::copy_nonoverlapping(chunk.as_ptr(), dst.write_ptr().add(filled), n)
            };
            reader.consume(n);
            filled += n;
        }
        Copied::Done(filled)
    }
}

/// What [`TlsStream::copy_plaintext`] found.
enum Copied {
    /// The buffer is full, or the peer closed (`close_notify`, or an error after some bytes).
    Done(usize),
    /// rustls has no more plaintext: feed it ciphertext.
    NeedMore(usize),
    /// No bytes, and rustls reports an error (e.g. end of stream without `close_notify`).
    Failed(io::Error),
}

impl<IO: AsyncReadRent + AsyncWriteRent> TlsStream<IO> {
    /// What a read can do without the socket: `Some` result once `buf` holds plaintext (or
    /// rustls failed); `None` when every received byte was decrypted and copied, and the socket
    /// must be read. `filled` counts the plaintext bytes copied so far.
    fn read_buffered<T: IoBufMut>(
        &mut self,
        buf: &mut T,
        filled: &mut usize,
    ) -> Option<io::Result<usize>> {
        loop {
            match self.copy_plaintext(buf, *filled) {
                Copied::Failed(e) => return Some(Err(e)),
                Copied::Done(n) => {
                    // SAFETY: `copy_plaintext` initialised the first `n` bytes.
                    unsafe { buf.set_init(n) };
                    return Some(Ok(n));
                }
                Copied::NeedMore(n) => *filled = n,
            }
            if !self.incoming.pending().is_empty() {
                if let Err(e) = self.feed() {
                    return Some(Err(e));
                }
                continue;
            }
            if *filled > 0 {
                // SAFETY: `copy_plaintext` initialised the first `filled` bytes.
                unsafe { buf.set_init(*filled) };
                return Some(Ok(*filled));
            }
            return None;
        }
    }
}

impl<IO: AsyncReadRent + AsyncWriteRent> AsyncReadRent for TlsStream<IO> {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        let mut filled = 0;
        loop {
            if let Some(result) = self.read_buffered(&mut buf, &mut filled) {
                return (result, buf);
            }
            // Nothing copied and nothing buffered: dropping this future here loses no byte.
            if let Err(e) = self.fill().await {
                return (Err(e), buf);
            }
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        // SAFETY: `buf` is owned by this future and outlives the read into its first part.
        let n = match unsafe { RawBuf::new_from_iovec_mut(&mut buf) } {
            Some(raw) => self.read(raw).await.0,
            None => Ok(0),
        };
        if let Ok(n) = n {
            // SAFETY: the read initialised `n` bytes of the first part.
            unsafe { buf.set_init(n) };
        }
        (n, buf)
    }
}

/// A cancelled read fails with the socket read's error after handing rustls every byte that
/// arrived; a grown incoming buffer is dropped then ([`TlsStream::filled`]).
impl<IO: CancelableAsyncReadRent + AsyncWriteRent> CancelableAsyncReadRent for TlsStream<IO> {
    async fn cancelable_read<T: IoBufMut>(
        &mut self,
        mut buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        let mut filled = 0;
        loop {
            if let Some(result) = self.read_buffered(&mut buf, &mut filled) {
                return (result, buf);
            }
            let incoming = self.empty_incoming();
            let (result, incoming) = self.io.cancelable_read(incoming, c.clone()).await;
            if let Err(e) = self.filled(result, incoming) {
                self.release_outgoing();
                return (Err(e), buf);
            }
        }
    }

    async fn cancelable_readv<T: IoVecBufMut>(
        &mut self,
        mut buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        // SAFETY: `buf` is owned by this future and outlives the read into its first part.
        let n = match unsafe { RawBuf::new_from_iovec_mut(&mut buf) } {
            Some(raw) => self.cancelable_read(raw, c).await.0,
            None => Ok(0),
        };
        if let Ok(n) = n {
            // SAFETY: the read initialised `n` bytes of the first part.
            unsafe { buf.set_init(n) };
        }
        (n, buf)
    }
}

impl<IO: AsyncReadRent + AsyncWriteRent> AsyncWriteRent for TlsStream<IO> {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        if self.outgoing.interrupted {
            return (Err(TlsStreamError::WriteInterrupted.into_io()), buf);
        }
        // SAFETY: `IoBuf` guarantees `read_ptr()` is valid for `bytes_init()` initialised bytes
        // while `buf` lives; the slice is dropped before `buf` is returned.
        let plaintext = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        // Records rustls queued while reading (an alert, a key update) go first.
        let mut out = match self.queued_records() {
            Ok(out) => out,
            Err(e) => return (Err(e), buf),
        };
        let n = match self.encrypt_into(plaintext, &mut out) {
            Ok(n) => n,
            Err(e) => {
                self.outgoing.buf = out;
                return (Err(e), buf);
            }
        };
        match self.send(out).await {
            Ok(()) => (Ok(n), buf),
            Err(e) => (Err(e), buf),
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: `buf` is owned by this future and outlives the write of its first part.
        let n = match unsafe { RawBuf::new_from_iovec(&buf) } {
            Some(raw) => self.write(raw).await.0,
            None => Ok(0),
        };
        (n, buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.send_queued().await?;
        self.io.flush().await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        if !self.outgoing.interrupted {
            self.conn.send_close_notify();
            self.send_queued().await?;
        }
        self.io.shutdown().await
    }
}

#[cfg(test)]
mod tests;
