//! One stream type for plain TCP and TLS (client or server side), so connection code is written
//! once. Every TCP socket gets `TCP_NODELAY` (benchmarking.md rule 5: Nagle costs ~44 ms per TLS
//! round trip).

use std::io;
use std::net::SocketAddr;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, Split};
use monoio::net::TcpStream;
use monoio::BufResult;

use crate::tls::{ClientTlsStream, ServerTlsStream};

/// A connected byte stream: plain TCP, or TLS over TCP as client or server.
pub struct Stream {
    inner: Inner,
    peer_addr: SocketAddr,
}

enum Inner {
    Plain(TcpStream),
    ClientTls(Box<ClientTlsStream<TcpStream>>),
    ServerTls(Box<ServerTlsStream<TcpStream>>),
}

// SAFETY: `Split` promises that reads and writes may run concurrently through the two owned
// halves. TcpStream is `Split`; monoio-rustls marks its streams `Split` when the inner IO is.
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

    /// A client TLS stream whose TCP socket was set up by [`Stream::prepare`].
    pub fn client_tls(tls: ClientTlsStream<TcpStream>, peer_addr: SocketAddr) -> Self {
        Self {
            inner: Inner::ClientTls(Box::new(tls)),
            peer_addr,
        }
    }

    /// A server TLS stream whose TCP socket was set up by [`Stream::prepare`].
    pub fn server_tls(tls: ServerTlsStream<TcpStream>, peer_addr: SocketAddr) -> Self {
        Self {
            inner: Inner::ServerTls(Box::new(tls)),
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
}

impl AsyncReadRent for Stream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match &mut self.inner {
            Inner::Plain(s) => s.read(buf).await,
            Inner::ClientTls(s) => s.read(buf).await,
            Inner::ServerTls(s) => s.read(buf).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match &mut self.inner {
            Inner::Plain(s) => s.readv(buf).await,
            Inner::ClientTls(s) => s.readv(buf).await,
            Inner::ServerTls(s) => s.readv(buf).await,
        }
    }
}

impl AsyncWriteRent for Stream {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match &mut self.inner {
            Inner::Plain(s) => s.write(buf).await,
            Inner::ClientTls(s) => s.write(buf).await,
            Inner::ServerTls(s) => s.write(buf).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match &mut self.inner {
            Inner::Plain(s) => s.writev(buf).await,
            Inner::ClientTls(s) => s.writev(buf).await,
            Inner::ServerTls(s) => s.writev(buf).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Plain(s) => s.flush().await,
            Inner::ClientTls(s) => s.flush().await,
            Inner::ServerTls(s) => s.flush().await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Plain(s) => s.shutdown().await,
            Inner::ClientTls(s) => s.shutdown().await,
            Inner::ServerTls(s) => s.shutdown().await,
        }
    }
}
