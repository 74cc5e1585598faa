//! What other tasks queue for a listener's control channel, from any worker, and how the
//! channel's writer takes it off.
//!
//! The queue holds at most `limit` bytes (one unit of any size fits an empty queue). A
//! `request` or `accept` that does not fit waits for the writer to make room: a listener that
//! reads slower than work arrives slows its senders down and loses nothing; one that stops
//! reading is found by the writer's stall timeout, which ends the channel and every wait with
//! it. Replies the channel itself owes (pongs) never wait: they may use [`REPLY_ROOM`] bytes
//! beyond the limit, and a listener that fills that too (pings without reading) is closed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::proto::ws::CloseCode;

/// Bytes beyond the limit that the channel's own replies may take: room for hundreds of pongs
/// of the largest ping, so a listener that pings while its queue is full is still answered.
pub(crate) const REPLY_ROOM: usize = 64 * 1024;

/// What another task asks a listener's control channel to do.
#[derive(Debug)]
pub(crate) enum ControlCommand {
    /// Write these pre-encoded frames as one uninterrupted unit (protocol §4.2); counted in the
    /// channel's queued bytes until written.
    Send(Vec<u8>),
    /// Close the channel with this code and reason (protocol §8.2).
    Close(CloseCode, String),
}

/// How other tasks reach a listener's control channel (any worker).
#[derive(Debug, Clone)]
pub(crate) struct ControlHandle {
    commands: flume::Sender<ControlCommand>,
    /// Bytes queued and not yet written.
    queued: Arc<AtomicUsize>,
    limit: usize,
    /// Tasks waiting for room.
    waiting: Arc<AtomicUsize>,
    /// The writer's word that it made room; ends when the channel ends.
    room: flume::Receiver<()>,
    /// For passing the word on to the next waiter; does not keep the channel's end open.
    room_again: flume::WeakSender<()>,
    /// Tells the channel to end at once (its writer may be stuck).
    abort: flume::Sender<&'static str>,
}

/// Why a unit was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum QueueError {
    /// A reply found even its extra room full: the listener is not reading; its channel is
    /// being closed.
    Full,
    /// The channel is gone.
    Closed,
    /// The queue stayed full for the whole wait: the listener does not read.
    TimedOut,
}

/// The receiving ends of a [`ControlHandle`], for the channel's own task.
pub(crate) struct ControlQueue {
    pub commands: flume::Receiver<ControlCommand>,
    pub abort: flume::Receiver<&'static str>,
    queued: Arc<AtomicUsize>,
    waiting: Arc<AtomicUsize>,
    room: flume::Sender<()>,
}

impl ControlHandle {
    /// A handle queueing at most `limit` bytes, and the channel's ends of it.
    pub(crate) fn new(limit: usize) -> (Self, ControlQueue) {
        let (commands, queue) = flume::unbounded();
        let (abort, aborted) = flume::bounded(1);
        // One word at a time: a waiter that takes it passes it on while room is left.
        let (room_tx, room) = flume::bounded(1);
        let queued = Arc::new(AtomicUsize::new(0));
        let waiting = Arc::new(AtomicUsize::new(0));
        let handle = Self {
            commands,
            queued: queued.clone(),
            limit,
            waiting: waiting.clone(),
            room,
            room_again: room_tx.downgrade(),
            abort,
        };
        let ends = ControlQueue {
            commands: queue,
            abort: aborted,
            queued,
            waiting,
            room: room_tx,
        };
        (handle, ends)
    }

    /// Queues pre-encoded frames as one uninterrupted unit, waiting at most `patience` while
    /// the queue is full ([`QueueError::TimedOut`]); [`QueueError::Closed`] when the channel
    /// ends first. A unit that fits arms no timer.
    pub(crate) async fn send(&self, frames: Vec<u8>, patience: Duration) -> Result<(), QueueError> {
        let len = frames.len();
        if !self.reserve(len, self.limit) {
            monoio::time::timeout(patience, self.wait_for_room(len))
                .await
                .map_err(|_| QueueError::TimedOut)??;
        }
        self.push(frames, len)
    }

    /// Reserves `len` bytes once the writer has made room for them.
    async fn wait_for_room(&self, len: usize) -> Result<(), QueueError> {
        let _waiter = Waiter::new(&self.waiting);
        // Registered before the second look, so room made after it is announced.
        while !self.reserve(len, self.limit) {
            if self.room.recv_async().await.is_err() {
                return Err(QueueError::Closed);
            }
        }
        self.pass_room_on();
        Ok(())
    }

    /// Queues a reply the channel owes (a pong) without waiting, in the extra room past the
    /// limit; when even that is full the channel is told to end ([`QueueError::Full`]).
    pub(crate) fn send_reply(&self, frames: Vec<u8>) -> Result<(), QueueError> {
        let len = frames.len();
        if !self.reserve(len, self.limit.saturating_add(REPLY_ROOM)) {
            let _ = self
                .abort
                .try_send("the listener does not read its control channel");
            return Err(QueueError::Full);
        }
        self.push(frames, len)
    }

    /// Asks the channel to close with `code` (not counted against the bound: one close per
    /// channel is written, later ones are dropped).
    pub(crate) fn close(&self, code: CloseCode, reason: &str) {
        let _ = self
            .commands
            .send(ControlCommand::Close(code, reason.to_owned()));
    }

    /// Bytes queued and not yet written.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// A handle that does not keep the channel's queue open.
    pub(crate) fn downgrade(&self) -> flume::WeakSender<ControlCommand> {
        self.commands.downgrade()
    }

    /// Counts `len` more queued bytes if they fit under `bound` (or the queue is empty).
    fn reserve(&self, len: usize, bound: usize) -> bool {
        let mut queued = self.queued.load(Ordering::SeqCst);
        loop {
            if queued != 0 && queued.saturating_add(len) > bound {
                return false;
            }
            match self.queued.compare_exchange_weak(
                queued,
                queued + len,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return true,
                Err(now) => queued = now,
            }
        }
    }

    fn push(&self, frames: Vec<u8>, len: usize) -> Result<(), QueueError> {
        self.commands
            .send(ControlCommand::Send(frames))
            .map_err(|_| {
                self.queued.fetch_sub(len, Ordering::SeqCst);
                QueueError::Closed
            })
    }

    /// Wakes the next waiter while room is left: the room this one took may not have been all.
    fn pass_room_on(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0
            && self.queued.load(Ordering::SeqCst) < self.limit
        {
            if let Some(room) = self.room_again.upgrade() {
                let _ = room.try_send(());
            }
        }
    }
}

impl ControlQueue {
    /// Takes `written` bytes off the queued count and wakes a task waiting for room.
    pub(crate) fn written(&self, written: usize) {
        self.queued.fetch_sub(written, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            let _ = self.room.try_send(());
        }
    }
}

/// Counts a task among the waiters for as long as it waits, also when its wait is dropped.
struct Waiter<'a>(&'a AtomicUsize);

impl<'a> Waiter<'a> {
    fn new(waiting: &'a AtomicUsize) -> Self {
        waiting.fetch_add(1, Ordering::SeqCst);
        Self(waiting)
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Longer than any test waits.
    const PATIENCE: Duration = Duration::from_secs(60);

    fn run<F: std::future::Future>(f: F) -> F::Output {
        crate::runtime::workers::block_on(f).expect("runtime")
    }

    /// Spawns a task that queues `unit`; the returned receiver gets a word in the same poll
    /// in which the task's first attempt to queue registers it as a waiter (or queues it).
    fn spawn_send(
        handle: &ControlHandle,
        unit: Vec<u8>,
        started: &flume::Sender<()>,
    ) -> monoio::task::JoinHandle<Result<(), QueueError>> {
        let handle = handle.clone();
        let started = started.clone();
        monoio::spawn(async move {
            let send = handle.send(unit, PATIENCE);
            let _ = started.send(());
            send.await
        })
    }

    /// Returns once `count` spawned sends have made their first attempt.
    async fn until_started(started: &flume::Receiver<()>, count: usize) {
        for _ in 0..count {
            started.recv_async().await.expect("a spawned send");
        }
    }

    /// Takes the next unit off like the writer does; its length.
    fn write_one(queue: &ControlQueue) -> usize {
        match queue.commands.try_recv().expect("a unit") {
            ControlCommand::Send(frames) => {
                queue.written(frames.len());
                frames.len()
            }
            ControlCommand::Close(..) => panic!("unexpected close"),
        }
    }

    #[test]
    fn a_unit_larger_than_the_limit_fits_an_empty_queue_only() {
        run(async {
            let (handle, queue) = ControlHandle::new(10);
            handle.send(vec![0; 25], PATIENCE).await.expect("queued");
            assert_eq!(handle.queued_bytes(), 25);
            let waiting = handle.send(vec![0; 1], Duration::from_millis(50)).await;
            assert_eq!(
                waiting,
                Err(QueueError::TimedOut),
                "a full queue makes the next unit wait"
            );
            assert_eq!(write_one(&queue), 25);
            assert_eq!(handle.queued_bytes(), 0);
        });
    }

    #[test]
    fn units_that_do_not_fit_wait_for_the_writer_and_all_arrive_in_order() {
        run(async {
            let (handle, queue) = ControlHandle::new(10);
            handle.send(vec![0; 8], PATIENCE).await.expect("queued");
            let (started_tx, started) = flume::unbounded();
            let waiters: Vec<_> = (1..=3u8)
                .map(|n| spawn_send(&handle, vec![n; 8], &started_tx))
                .collect();
            until_started(&started, 3).await;
            assert_eq!(handle.waiting.load(Ordering::SeqCst), 3);
            let mut seen = Vec::new();
            while seen.len() < 4 {
                match queue.commands.recv_async().await.expect("a unit") {
                    ControlCommand::Send(frames) => {
                        seen.push(frames[0]);
                        queue.written(frames.len());
                    }
                    ControlCommand::Close(..) => panic!("unexpected close"),
                }
            }
            for waiter in waiters {
                waiter.await.expect("queued after waiting");
            }
            seen[1..].sort_unstable();
            assert_eq!(seen, [0, 1, 2, 3]);
            assert_eq!(handle.queued_bytes(), 0);
            assert_eq!(handle.waiting.load(Ordering::SeqCst), 0);
        });
    }

    #[test]
    fn a_waiter_learns_that_the_channel_ended() {
        run(async {
            let (handle, queue) = ControlHandle::new(10);
            handle.send(vec![0; 10], PATIENCE).await.expect("queued");
            let (started_tx, started) = flume::unbounded();
            let waiter = spawn_send(&handle, vec![1; 10], &started_tx);
            until_started(&started, 1).await;
            assert_eq!(handle.waiting.load(Ordering::SeqCst), 1);
            drop(queue);
            assert_eq!(waiter.await, Err(QueueError::Closed));
        });
    }

    #[test]
    fn a_dropped_wait_is_no_longer_counted() {
        run(async {
            let (handle, _queue) = ControlHandle::new(10);
            handle.send(vec![0; 10], PATIENCE).await.expect("queued");
            let wait = handle.send(vec![1; 1], Duration::from_millis(20)).await;
            assert_eq!(wait, Err(QueueError::TimedOut));
            assert_eq!(handle.waiting.load(Ordering::SeqCst), 0);
        });
    }

    #[test]
    fn replies_use_the_extra_room_and_past_it_end_the_channel() {
        let (handle, queue) = ControlHandle::new(10);
        handle.send_reply(vec![0; 10]).expect("within the limit");
        handle
            .send_reply(vec![0; REPLY_ROOM])
            .expect("within the extra room");
        assert!(queue.abort.try_recv().is_err(), "no abort yet");
        assert_eq!(handle.send_reply(vec![0; 1]), Err(QueueError::Full));
        assert_eq!(
            queue.abort.try_recv(),
            Ok("the listener does not read its control channel")
        );
    }
}
