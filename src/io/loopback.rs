//! A bounded receive buffer for TCP connections whose peer is on this host.
//!
//! Linux grows a socket's receive buffer automatically (up to `net.ipv4.tcp_rmem`'s maximum)
//! while the sender outruns the reader. On loopback a fast local client keeps that whole queue
//! full, so every byte read was written megabytes earlier and comes from main memory rather than
//! a cache. A receive buffer of [`LOOPBACK_RECEIVE_BUFFER`] keeps the queue cache-sized. It also
//! caps the TCP window, which costs nothing on loopback (a round trip of microseconds needs a
//! window of a few KiB), and is therefore applied only to loopback peers; a remote peer keeps the
//! kernel's automatic tuning (docs/performance.md "What limits each target now").

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

/// The `SO_RCVBUF` asked for on loopback connections; Linux doubles it for bookkeeping
/// (socket(7)), so the queue holds up to about 512 KiB: two 256 KiB stream messages.
pub(crate) const LOOPBACK_RECEIVE_BUFFER: usize = 256 * 1024;

/// Whether a connection to `peer` gets the bounded receive buffer: only loopback peers.
pub(crate) fn bounds_receive_buffer(peer: SocketAddr) -> bool {
    peer.ip().is_loopback()
}

/// Sets [`LOOPBACK_RECEIVE_BUFFER`] on `socket` when `peer` is on loopback; returns whether it
/// did. Call it before the connection carries data.
pub(crate) fn bound_receive_buffer(socket: &impl AsRawFd, peer: SocketAddr) -> io::Result<bool> {
    if !bounds_receive_buffer(peer) {
        return Ok(false);
    }
    // SAFETY: the descriptor belongs to `socket`, which the caller keeps open for the whole
    // borrow; the borrowed handle does not outlive this call.
    let fd = unsafe { BorrowedFd::borrow_raw(socket.as_raw_fd()) };
    rustix::net::sockopt::set_socket_recv_buffer_size(fd, LOOPBACK_RECEIVE_BUFFER)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    use super::*;

    #[test]
    fn only_loopback_peers_get_the_bounded_buffer() {
        assert!(bounds_receive_buffer("127.0.0.1:80".parse().expect("addr")));
        assert!(bounds_receive_buffer("127.8.9.1:80".parse().expect("addr")));
        assert!(bounds_receive_buffer("[::1]:80".parse().expect("addr")));
        assert!(!bounds_receive_buffer("10.0.0.1:80".parse().expect("addr")));
        assert!(!bounds_receive_buffer(
            "[2001:db8::1]:80".parse().expect("addr")
        ));
    }

    #[test]
    fn a_loopback_connection_gets_the_bounded_receive_buffer() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (accepted, peer) = listener.accept().expect("accept");
        assert!(bound_receive_buffer(&accepted, peer).expect("set"));
        // SAFETY: `accepted` stays open for the whole borrow.
        let fd = unsafe { BorrowedFd::borrow_raw(accepted.as_raw_fd()) };
        let size = rustix::net::sockopt::socket_recv_buffer_size(fd).expect("get");
        // Linux reports twice the size asked for (socket(7)).
        assert_eq!(size, 2 * LOOPBACK_RECEIVE_BUFFER);
        drop(client);
    }

    #[test]
    fn a_remote_peer_keeps_the_automatic_tuning() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let _client = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (accepted, _) = listener.accept().expect("accept");
        let remote: SocketAddr = "192.0.2.7:4000".parse().expect("addr");
        assert!(!bound_receive_buffer(&accepted, remote).expect("nothing to set"));
        // SAFETY: `accepted` stays open for the whole borrow.
        let fd = unsafe { BorrowedFd::borrow_raw(accepted.as_raw_fd()) };
        let size = rustix::net::sockopt::socket_recv_buffer_size(fd).expect("get");
        assert_ne!(size, 2 * LOOPBACK_RECEIVE_BUFFER);
    }
}
