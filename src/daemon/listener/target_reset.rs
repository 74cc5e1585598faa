//! A stream the relay side cut must not look finished to the TCP target (protocol §5.3, §5.4;
//! docs/reliability.md "Nothing lost").
//!
//! A FIN tells the target "the sender is done": after a relay connection was lost mid-stream,
//! a FIN would make a truncated upload look complete. So the daemon keeps a second descriptor
//! of the target socket while the pump runs; when the pump ended because of the relay, it sets
//! `SO_LINGER` to zero on that descriptor and closes it, and the kernel answers with a reset
//! (RFC 9293 §3.6, "abort"), which the target sees as an error. Otherwise closing the second
//! descriptor changes nothing: the pump's own close (after its half-closes) ends the
//! connection normally.
//!
//! This needs the pump not to send a FIN of its own when it gives up: monoio's
//! `OwnedWriteHalf` calls `shutdown` when dropped, and a bare `monoio::net::TcpStream` shuts
//! down eagerly in that call. The daemon therefore hands the pump the target wrapped in
//! [`Stream`](crate::io::stream::Stream), whose `shutdown` does nothing until awaited, so only
//! the pump's explicit half-close (the relay's Close, protocol §5.3) sends a FIN. The test
//! `dropping_a_stream_write_half_sends_no_fin` holds that invariant.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use crate::io::tcp_pump::PumpEnd;

/// Whether a pump ending means the relay side failed, so the target must see a reset. A write
/// stall counts too: a stalled relay socket is a relay failure, and a target that stopped
/// reading is aborted rather than left holding a FIN behind unsent bytes.
pub(crate) fn relay_failed(end: &PumpEnd) -> bool {
    matches!(
        end,
        PumpEnd::RelayRead(_)
            | PumpEnd::RelayWrite(_)
            | PumpEnd::WriteStalled { .. }
            | PumpEnd::KeepaliveTimeout(_)
    )
}

/// A second descriptor of a target socket, held while the pump runs.
pub(crate) struct TargetHandle {
    fd: OwnedFd,
}

impl TargetHandle {
    /// Duplicates `socket`'s descriptor.
    pub(crate) fn new(socket: &impl AsRawFd) -> io::Result<Self> {
        // SAFETY: the descriptor belongs to `socket`, which is borrowed for this call, so it
        // is open while the borrowed handle is used; `try_clone_to_owned` duplicates it and
        // the duplicate has its own lifetime.
        let borrowed = unsafe { BorrowedFd::borrow_raw(socket.as_raw_fd()) };
        Ok(Self {
            fd: borrowed.try_clone_to_owned()?,
        })
    }

    /// Closes the second descriptor; when the pump ended because of the relay, aborts the
    /// connection first, so the target sees a reset instead of an end of stream. Returns
    /// whether it aborted.
    pub(crate) fn finish(self, end: &PumpEnd) -> io::Result<bool> {
        if !relay_failed(end) {
            return Ok(false);
        }
        rustix::net::sockopt::set_socket_linger(&self.fd, Some(Duration::ZERO))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{ErrorKind, Read};

    use super::*;
    use crate::io::tcp_pump::Side;
    use crate::io::ws_reader::ReadError;

    #[test]
    fn only_relay_failures_reset_the_target() {
        assert!(relay_failed(&PumpEnd::RelayRead(ReadError::Eof)));
        assert!(relay_failed(&PumpEnd::RelayWrite(
            io::ErrorKind::BrokenPipe.into()
        )));
        assert!(!relay_failed(&PumpEnd::Closed { first: Side::Relay }));
        assert!(relay_failed(&PumpEnd::KeepaliveTimeout(
            Duration::from_secs(1)
        )));
        for side in [Side::Target, Side::Relay] {
            assert!(relay_failed(&PumpEnd::WriteStalled {
                side,
                after: Duration::from_secs(1)
            }));
        }
        assert!(!relay_failed(&PumpEnd::TargetRead(
            io::ErrorKind::ConnectionReset.into()
        )));
        assert!(!relay_failed(&PumpEnd::TargetWrite(
            io::ErrorKind::BrokenPipe.into()
        )));
    }

    /// The target's view when the daemon's socket closes after `finish(end)`.
    fn target_sees(end: PumpEnd) -> (bool, io::Result<usize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let daemon_side =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (mut target, _) = listener.accept().expect("accept");
        let handle = TargetHandle::new(&daemon_side).expect("dup");
        drop(daemon_side);
        let aborted = handle.finish(&end).expect("finish");
        let mut buf = [0u8; 16];
        (aborted, target.read(&mut buf))
    }

    #[test]
    fn a_relay_failure_ends_the_target_connection_with_a_reset() {
        let (aborted, read) = target_sees(PumpEnd::RelayRead(ReadError::Eof));
        assert!(aborted);
        assert_eq!(read.map_err(|e| e.kind()), Err(ErrorKind::ConnectionReset));
    }

    #[test]
    fn a_clean_end_closes_the_target_connection_normally() {
        let (aborted, read) = target_sees(PumpEnd::Closed {
            first: Side::Target,
        });
        assert!(!aborted);
        assert_eq!(read.map_err(|e| e.kind()), Ok(0));
    }

    /// As in the daemon: a monoio socket with a read in flight is dropped, then the handle
    /// finishes.
    #[test]
    fn a_relay_failure_resets_a_monoio_socket_dropped_mid_read() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (accepted_tx, accepted) = std::sync::mpsc::channel();
        let target = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            accepted_tx.send(()).expect("test waits");
            let mut buf = [0u8; 1024];
            let mut got = 0;
            loop {
                match conn.read(&mut buf) {
                    Ok(0) => return Ok(got),
                    Ok(n) => got += n,
                    Err(e) => return Err(e.kind()),
                }
            }
        });
        crate::runtime::workers::block_on(async move {
            use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
            let mut tcp = monoio::net::TcpStream::connect_addr(addr)
                .await
                .expect("connect");
            accepted.recv().expect("accepted");
            let (written, _) = tcp.write_all(vec![7u8; 100]).await;
            written.expect("write");
            let handle = TargetHandle::new(&tcp).expect("dup");
            let read = monoio::time::timeout(Duration::from_millis(20), tcp.read(vec![0u8; 64]));
            assert!(read.await.is_err(), "nothing to read");
            drop(tcp);
            assert!(handle
                .finish(&PumpEnd::RelayRead(ReadError::Eof))
                .expect("finish"));
        })
        .expect("runtime");
        assert_eq!(
            target.join().expect("target"),
            Err(ErrorKind::ConnectionReset)
        );
    }

    /// The invariant the module relies on: the pump dropping the write half of a [`Stream`]
    /// (as it does when a direction fails) sends no FIN, while an awaited shutdown does.
    #[test]
    fn dropping_a_stream_write_half_sends_no_fin() {
        use monoio::io::{AsyncWriteRent, Splitable};

        use crate::io::stream::Stream;

        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (mut peer_of_dropped, mut peer_of_shut) = crate::runtime::workers::block_on(async {
            let dropped = monoio::net::TcpStream::connect_addr(addr)
                .await
                .expect("connect");
            let (peer_of_dropped, _) = listener.accept().expect("accept");
            let (read, write) = Stream::plain(dropped).expect("stream").into_split();
            drop(write);
            // Still open for reading: the socket lives on in `read`.
            let shut = monoio::net::TcpStream::connect_addr(addr)
                .await
                .expect("connect");
            let (peer_of_shut, _) = listener.accept().expect("accept");
            let (_, mut write) = Stream::plain(shut).expect("stream").into_split();
            write.shutdown().await.expect("shutdown");
            // Kept open past the runtime (dropping it would close the socket with a FIN).
            std::mem::forget(read);
            (peer_of_dropped, peer_of_shut)
        })
        .expect("runtime");
        let mut buf = [0u8; 8];
        assert_eq!(
            peer_of_shut.read(&mut buf).map_err(|e| e.kind()),
            Ok(0),
            "awaited: FIN"
        );
        peer_of_dropped
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let quiet = loop {
            match peer_of_dropped.read(&mut buf) {
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                other => break other.map_err(|e| e.kind()),
            }
        };
        assert!(
            matches!(quiet, Err(ErrorKind::WouldBlock | ErrorKind::TimedOut)),
            "dropped: no FIN, the connection is still open; got {quiet:?}"
        );
    }
}
