//! One stream type for plain TCP and TLS (client or server side), so connection code is written
//! once. Every TCP socket gets `TCP_NODELAY`: Nagle's algorithm would hold back small TLS records
//! and WebSocket frames (docs/benchmarking.md, rule 5).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, CancelHandle, CancelableAsyncReadRent, Split};
use monoio::net::TcpStream;
use monoio::BufResult;

use crate::tls::TlsStream;

/// A connected byte stream: plain TCP, or TLS over TCP as client or server.
pub struct Stream {
    inner: Inner,
    peer_addr: SocketAddr,
}

enum Inner {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

// SAFETY: `Split` promises that reads and writes may run concurrently through the two owned
// halves. TcpStream is `Split`, and so is `TlsStream<TcpStream>` (see its module docs).
// The enum only forwards to one of them.
unsafe impl Split for Stream {}

impl Stream {
    /// Sets `TCP_NODELAY` on a fresh TCP socket; returns it with its peer address.
    pub fn prepare(tcp: &TcpStream) -> io::Result<SocketAddr> {
        tcp.set_nodelay(true)?;
        tcp.peer_addr()
    }

    /// A plain TCP stream (`TCP_NODELAY` set).
    pub fn plain(tcp: TcpStream) -> io::Result<Self> {
        let peer_addr = Self::prepare(&tcp)?;
        Ok(Self::from_prepared(tcp, peer_addr))
    }

    /// A plain TCP stream whose socket was set up by [`Stream::prepare`].
    pub fn from_prepared(tcp: TcpStream, peer_addr: SocketAddr) -> Self {
        Self {
            inner: Inner::Plain(tcp),
            peer_addr,
        }
    }

    /// A TLS stream (client or server side) whose TCP socket was set up by [`Stream::prepare`].
    pub fn tls(tls: TlsStream<TcpStream>, peer_addr: SocketAddr) -> Self {
        Self {
            inner: Inner::Tls(Box::new(tls)),
            peer_addr,
        }
    }

    /// The remote address of the underlying TCP connection.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer_addr
    }

    /// Whether the stream is encrypted.
    pub fn is_tls(&self) -> bool {
        !matches!(self.inner, Inner::Plain(_))
    }

    /// Whether an idle connection is still usable for a new request (RFC 9112 §9.3): nothing
    /// has arrived on it — no FIN or reset from a peer that closed it after its keep-alive
    /// timeout, and no stray bytes (or TLS alert) a new exchange would mistake for its answer.
    /// One non-blocking `recv(MSG_PEEK)`; consumes nothing.
    pub fn is_quiet(&self) -> bool {
        // SAFETY: the descriptor belongs to the TCP socket `self` owns and keeps open for the
        // whole borrow; the borrowed handle does not outlive this call.
        let fd = unsafe { BorrowedFd::borrow_raw(self.as_raw_fd()) };
        let mut probe = [0u8; 1];
        let flags = rustix::net::RecvFlags::PEEK | rustix::net::RecvFlags::DONTWAIT;
        matches!(
            rustix::net::recv(fd, &mut probe[..], flags),
            Err(rustix::io::Errno::AGAIN)
        )
    }
}

impl AsRawFd for Stream {
    /// The TCP socket's descriptor (under the TLS layer, if any).
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        match &self.inner {
            Inner::Plain(tcp) => tcp.as_raw_fd(),
            Inner::Tls(tls) => tls.get_ref().as_raw_fd(),
        }
    }
}

// The TLS operations are boxed: each future here is as large as the larger of its two arms,
// and a pump holds one read and one write state per socket for the stream's life; a plain
// socket's operations stay small (docs/performance.md "Memory per idle stream"), at one
// allocation per TLS operation.
impl AsyncReadRent for Stream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match &mut self.inner {
            Inner::Plain(s) => s.read(buf).await,
            Inner::Tls(s) => Box::pin(s.read(buf)).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match &mut self.inner {
            Inner::Plain(s) => s.readv(buf).await,
            Inner::Tls(s) => Box::pin(s.readv(buf)).await,
        }
    }
}

/// Cancelled reads for [`crate::io::quiet_release`]: a plain socket's read is monoio's; a TLS
/// read cancels its socket read.
impl CancelableAsyncReadRent for Stream {
    async fn cancelable_read<T: IoBufMut>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        match &mut self.inner {
            Inner::Plain(s) => s.cancelable_read(buf, c).await,
            Inner::Tls(s) => Box::pin(s.cancelable_read(buf, c)).await,
        }
    }

    async fn cancelable_readv<T: IoVecBufMut>(
        &mut self,
        buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        match &mut self.inner {
            Inner::Plain(s) => s.cancelable_readv(buf, c).await,
            Inner::Tls(s) => Box::pin(s.cancelable_readv(buf, c)).await,
        }
    }
}

impl AsyncWriteRent for Stream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match &mut self.inner {
            Inner::Plain(s) => s.write(buf).await,
            Inner::Tls(s) => Box::pin(s.write(buf)).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match &mut self.inner {
            Inner::Plain(s) => s.writev(buf).await,
            Inner::Tls(s) => Box::pin(s.writev(buf)).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Plain(s) => s.flush().await,
            Inner::Tls(s) => Box::pin(s.flush()).await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Plain(s) => s.shutdown().await,
            Inner::Tls(s) => Box::pin(s.shutdown()).await,
        }
    }
}
