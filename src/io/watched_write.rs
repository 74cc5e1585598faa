//! The socket side of [`crate::io::write_stall`]: a write half that records each write
//! operation in a shared [`WriteProgress`], and [`stalled_write`], which completes when one of
//! several such halves made no progress for the `write_stall_timeout`
//! (docs/reliability.md "Faults"). The pump selects on it next to its directions, so a pump
//! blocked in a write still ends when the peer stopped reading.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::buf::{IoBuf, IoVecBuf};
use monoio::io::AsyncWriteRent;
use monoio::BufResult;

use super::write_stall::{check, StallCheck, WriteProgress};

/// The progress record a [`WatchedWrite`] shares with [`stalled_write`].
pub(crate) type SharedProgress = Rc<Cell<WriteProgress>>;

/// A write half whose operations are timed in a [`SharedProgress`]. An operation dropped
/// before it completed (its pump gave up) stays pending, so the record also tells whether the
/// socket was left in the middle of a frame.
pub(crate) struct WatchedWrite<W> {
    inner: W,
    progress: SharedProgress,
}

impl<W> WatchedWrite<W> {
    /// Wraps `inner` with a fresh record.
    pub(crate) fn new(inner: W) -> Self {
        Self {
            inner,
            progress: SharedProgress::default(),
        }
    }

    /// The record of this half's operations.
    pub(crate) fn progress(&self) -> SharedProgress {
        Rc::clone(&self.progress)
    }

    /// Runs one operation between `started` and `finished`.
    async fn timed<T>(&mut self, op: impl AsyncFnOnce(&mut W) -> T) -> T {
        let mut progress = self.progress.get();
        progress.started(Instant::now());
        self.progress.set(progress);
        let done = op(&mut self.inner).await;
        progress.finished();
        self.progress.set(progress);
        done
    }
}

impl<W: AsyncWriteRent> AsyncWriteRent for WatchedWrite<W> {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        self.timed(async |inner: &mut W| inner.write(buf).await)
            .await
    }

    async fn writev<T: IoVecBuf>(&mut self, buf_vec: T) -> BufResult<usize, T> {
        self.timed(async |inner: &mut W| inner.writev(buf_vec).await)
            .await
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.timed(async |inner: &mut W| inner.flush().await).await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.timed(async |inner: &mut W| inner.shutdown().await)
            .await
    }
}

/// Completes with the position in `writes` of the first half whose pending operation waited
/// `limit`; never completes when `limit` is `None`.
pub(crate) async fn stalled_write(limit: Option<Duration>, writes: &[SharedProgress]) -> usize {
    let Some(limit) = limit else {
        return std::future::pending().await;
    };
    loop {
        match check(writes.iter().map(|w| w.get()), limit, Instant::now()) {
            StallCheck::Stalled(index) => return index,
            StallCheck::RecheckAfter(wait) => monoio::time::sleep(wait).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use monoio::io::AsyncWriteRentExt;

    use super::*;

    /// A half that takes every byte at once, or never completes.
    struct Peer {
        reads: bool,
    }

    impl AsyncWriteRent for Peer {
        async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
            if !self.reads {
                std::future::pending::<()>().await;
            }
            (Ok(buf.bytes_init()), buf)
        }

        async fn writev<T: IoVecBuf>(&mut self, buf_vec: T) -> BufResult<usize, T> {
            std::future::pending::<()>().await;
            (Ok(0), buf_vec)
        }

        async fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }

        async fn shutdown(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn a_completed_write_leaves_nothing_pending() {
        run(async {
            let mut half = WatchedWrite::new(Peer { reads: true });
            let progress = half.progress();
            let (written, _) = half.write_all(vec![1u8; 10]).await;
            assert_eq!(written.expect("written"), 10);
            assert!(!progress.get().is_pending());
        });
    }

    #[test]
    fn a_write_the_peer_never_takes_is_reported_after_the_limit_and_not_before() {
        run(async {
            let mut fine = WatchedWrite::new(Peer { reads: true });
            let mut stuck = WatchedWrite::new(Peer { reads: false });
            let writes = [fine.progress(), stuck.progress()];
            let limit = Duration::from_millis(50);
            let started = Instant::now();
            let _ = fine.write_all(vec![1u8; 10]).await;
            let write = stuck.write_all(vec![1u8; 10]);
            monoio::select! {
                _ = write => panic!("the peer takes nothing"),
                index = stalled_write(Some(limit), &writes) => {
                    assert_eq!(index, 1);
                    assert!(started.elapsed() >= limit);
                }
            }
            // Dropped mid-operation: still marked as in the middle of a write.
            assert!(writes[1].get().is_pending());
        });
    }

    #[test]
    fn without_a_limit_nothing_is_ever_reported() {
        run(async {
            let mut stuck = WatchedWrite::new(Peer { reads: false });
            let writes = [stuck.progress()];
            let write = stuck.write_all(vec![1u8; 10]);
            monoio::select! {
                _ = write => panic!("the peer takes nothing"),
                _ = stalled_write(None, &writes) => panic!("no limit, no stall"),
                () = monoio::time::sleep(Duration::from_millis(100)) => {}
            }
        });
    }
}
