//! Lets a quiet read give its grown buffer back (docs/performance.md "Memory after a burst").
//!
//! A pump direction's read buffer grows to a whole chunk once a read fills it, and a read that
//! waits for the next byte holds its buffer. [`Releasable`] wraps a read half. A read into more
//! than a first-size buffer's room (a grown buffer) is armed: once [`RELEASE_AFTER`] has passed
//! since the last read that needed the room (more bytes than a first-size buffer holds; a
//! keep-alive ping does not count), it is cancelled with monoio's cancelable read, which loses
//! no byte (a read that completed first returns its bytes as usual), or not started when that
//! time has passed already. It then fails with `ECANCELED` and [`Releasable::take_released`]
//! says so once: the owner shrinks its buffer and reads again. A read into a small room is the
//! inner read, at no extra cost.

use std::cell::Cell;
use std::io;
use std::time::{Duration, Instant};

use monoio::buf::{IoBufMut, IoVecBufMut};
use monoio::io::{AsyncReadRent, CancelableAsyncReadRent, Canceller};
use monoio::BufResult;

/// How long an armed read waits for a byte before its buffer is given back.
pub const RELEASE_AFTER: Duration = Duration::from_secs(1);

/// `ECANCELED`: how a cancelled monoio operation fails.
const ECANCELED: i32 = 125;

/// A read half whose reads into large rooms give up after a quiet time (module docs).
#[derive(Debug)]
pub struct Releasable<R> {
    io: R,
    after: Duration,
    armed_above: usize,
    /// When the last read brought more than `armed_above` bytes (or the first armed read
    /// began); `None` while the buffer is small.
    last_large: Option<Instant>,
    released: bool,
}

impl<R> Releasable<R> {
    /// Wraps `io`; a read into more than `armed_above` bytes of room is cancelled after
    /// `after` without a byte.
    pub fn new(io: R, after: Duration, armed_above: usize) -> Self {
        Self {
            io,
            after,
            armed_above,
            last_large: None,
            released: false,
        }
    }

    /// Whether the last failed read was cancelled for quiet (once: the flag is cleared).
    pub fn take_released(&mut self) -> bool {
        std::mem::take(&mut self.released)
    }

    /// The wrapped read half.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.io
    }
}

impl<R: CancelableAsyncReadRent> AsyncReadRent for Releasable<R> {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        if buf.bytes_total() <= self.armed_above {
            self.last_large = None;
            return self.io.read(buf).await;
        }
        let deadline = *self.last_large.get_or_insert_with(Instant::now) + self.after;
        let (result, buf) = if deadline <= Instant::now() {
            (Err(io::Error::from_raw_os_error(ECANCELED)), buf)
        } else {
            let canceller = Canceller::new();
            let mut read = std::pin::pin!(self.io.cancelable_read(buf, canceller.handle()));
            // Boxed: a monoio `Sleep` is 640 bytes, and this future lives in every pump.
            let quiet = Box::pin(monoio::time::sleep_until(deadline.into()));
            monoio::select! {
                done = &mut read => done,
                () = quiet => {
                    drop(canceller.cancel());
                    read.await
                }
            }
        };
        match &result {
            Ok(n) if *n > self.armed_above => self.last_large = Some(Instant::now()),
            Ok(_) => {}
            Err(_) => {
                self.released = is_cancelled(&result);
                if self.released {
                    self.last_large = None;
                }
            }
        }
        (result, buf)
    }

    /// Never cancelled: the pumps read into one buffer.
    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.io.readv(buf).await
    }
}

thread_local! {
    /// Whether this worker's allocator collection is already scheduled.
    static COLLECTION_SCHEDULED: Cell<bool> = const { Cell::new(false) };
}

/// After a buffer was given back: schedules, at most once per [`RELEASE_AFTER`] on this
/// worker, a collection that hands the pages freed meanwhile back to the system. mimalloc
/// returns freed pages only when it next works, and a quiet worker may allocate nothing for
/// minutes; one collection per window covers every buffer given back in it. Needs a monoio
/// runtime on this thread.
pub fn return_freed_memory_soon() {
    if COLLECTION_SCHEDULED.replace(true) {
        return;
    }
    drop(monoio::spawn(async {
        monoio::time::sleep(RELEASE_AFTER).await;
        COLLECTION_SCHEDULED.set(false);
        // SAFETY: `mi_collect` takes only the flag and may be called at any point; it works
        // on this thread's mimalloc heap (nearly empty when mimalloc is not the global
        // allocator, as in tests).
        unsafe { libmimalloc_sys::mi_collect(true) };
    }));
}

/// Whether a read failed because it was cancelled.
fn is_cancelled(result: &io::Result<usize>) -> bool {
    matches!(result, Err(e) if e.raw_os_error() == Some(ECANCELED))
}

#[cfg(test)]
mod tests {
    use super::*;
    use monoio::io::AsyncWriteRentExt;
    use monoio::net::{TcpListener, TcpStream};

    fn run<F: std::future::Future>(f: F) -> F::Output {
        crate::runtime::workers::block_on(f).expect("runtime")
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (connected, accepted) = monoio::join!(TcpStream::connect(addr), listener.accept());
        (connected.expect("connect"), accepted.expect("accept").0)
    }

    const QUIET: Duration = Duration::from_millis(50);

    #[test]
    fn a_read_into_a_large_room_without_a_byte_is_cancelled_and_says_so_once() {
        run(async {
            let (ours, _peer) = pair().await;
            let mut io = Releasable::new(ours, QUIET, 16);
            let (result, buf) = io.read(Vec::with_capacity(64)).await;
            assert_eq!(
                result.expect_err("cancelled").raw_os_error(),
                Some(ECANCELED)
            );
            assert!(buf.is_empty());
            assert!(io.take_released());
            assert!(!io.take_released());
        });
    }

    #[test]
    fn a_cancellable_read_returns_bytes_that_arrive_before_the_quiet_time() {
        run(async {
            let (ours, mut peer) = pair().await;
            let mut io = Releasable::new(ours, Duration::from_secs(30), 16);
            peer.write_all(b"burst".to_vec()).await.0.expect("write");
            let (result, buf) = io.read(Vec::with_capacity(64)).await;
            assert_eq!(result.expect("read"), 5);
            assert_eq!(buf, b"burst");
            assert!(!io.take_released());
        });
    }

    #[test]
    fn a_read_into_a_small_room_waits_past_the_quiet_time() {
        run(async {
            let (ours, mut peer) = pair().await;
            let mut io = Releasable::new(ours, QUIET, 64);
            let read = io.read(Vec::with_capacity(64));
            let write = async {
                monoio::time::sleep(QUIET * 4).await;
                peer.write_all(b"late".to_vec()).await.0.expect("write");
            };
            let ((result, buf), ()) = monoio::join!(read, write);
            assert_eq!(result.expect("read"), 4);
            assert_eq!(buf, b"late");
            assert!(!io.take_released());
        });
    }

    #[test]
    fn small_reads_do_not_postpone_the_release() {
        run(async {
            let (ours, mut peer) = pair().await;
            let mut io = Releasable::new(ours, QUIET * 4, 16);
            let started = Instant::now();
            let mut small = 0;
            let released = loop {
                let pinging = async {
                    monoio::time::sleep(QUIET).await;
                    peer.write_all(b"ping".to_vec()).await.0.expect("write");
                };
                let ((result, _), ()) = monoio::join!(io.read(Vec::with_capacity(64)), pinging);
                assert!(small < 40, "never released while pinged every {QUIET:?}");
                match result {
                    Ok(4) => small += 1,
                    Ok(n) => panic!("read {n} bytes"),
                    Err(_) => break io.take_released(),
                }
            };
            assert!(released, "cancelled for quiet");
            assert!(small >= 2, "{small} small reads before the release");
            assert!(
                started.elapsed() < QUIET * 8,
                "released {:?} after the start, small reads every {QUIET:?}",
                started.elapsed()
            );
        });
    }

    #[test]
    fn after_a_release_the_next_read_gets_every_byte() {
        run(async {
            let (ours, mut peer) = pair().await;
            let mut io = Releasable::new(ours, QUIET, 16);
            let (result, _) = io.read(Vec::with_capacity(64)).await;
            assert!(result.is_err() && io.take_released());
            peer.write_all(b"after".to_vec()).await.0.expect("write");
            let (result, buf) = io.read(Vec::with_capacity(16)).await;
            assert_eq!(result.expect("read"), 5);
            assert_eq!(buf, b"after");
        });
    }
}
