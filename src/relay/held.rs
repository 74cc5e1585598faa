//! A request rendezvous held open for a sender's further requests (protocol §6.3 step 5;
//! docs/relay.md, an `[INFER]` decision): after a complete response on a rendezvous the relay opened, the relay
//! keeps it while the sender's keep-alive connection lives and sends that sender's next request
//! for the same hybrid connection over it.
//!
//! While held, a watcher task reads the rendezvous, so a listener that closes it (as the .NET
//! SDK does after each response) is noticed before a request is sent there; the watcher hands
//! the reader back with the first thing the listener sent. The reader is never taken away from
//! an unfinished read, so no byte is lost. A rendezvous given up gets Close 1000; its watcher
//! ends when the listener closes too, or after [`CLOSE_GRACE`].

use std::time::Duration;

use monoio::io::{AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf};

use super::core::pairing::{held_verdict, HeldSeen};
use crate::io::stream::Stream;
use crate::io::ws_reader::{ReadError, WsEvent, WsReader};
use crate::proto::ws::encode::{push_close, push_frame};
use crate::proto::ws::{CloseCode, DataKind, OpCode};

/// The write half of a request rendezvous.
pub(super) type RendezvousWrite = OwnedWriteHalf<Stream>;
/// The read half of a request rendezvous.
pub(super) type RendezvousRead = WsReader<OwnedReadHalf<Stream>>;
/// A reader handed back with what it read.
pub(super) type Returned = (RendezvousRead, Result<WsEvent, ReadError>);

/// How long a given-up rendezvous waits for the listener's Close before it is dropped.
pub(super) const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// A rendezvous held between two requests of one sender.
pub(super) struct Held {
    write: RendezvousWrite,
    back: flume::Receiver<Returned>,
    /// Dropped when the rendezvous is given up, which lets the watcher stop.
    _abandon: flume::Sender<()>,
    entity: String,
}

/// A held rendezvous taken for the next request.
pub(super) struct Reused {
    pub write: RendezvousWrite,
    pub reader: ReaderState,
    _abandon: flume::Sender<()>,
}

/// Where the reader of a reused rendezvous is.
pub(super) enum ReaderState {
    /// Still with the watcher, which hands it back with the listener's first frame.
    Watched(flume::Receiver<Returned>),
    /// Back in hand, nothing read yet.
    InHand(RendezvousRead),
}

impl Held {
    /// Holds the rendezvous of a complete response to a request for `entity`.
    pub(super) fn hold(write: RendezvousWrite, reader: RendezvousRead, entity: &str) -> Self {
        let (abandon, abandoned) = flume::bounded(1);
        let (tx, back) = flume::bounded(1);
        monoio::spawn(watch(reader, tx, abandoned));
        Self {
            write,
            back,
            _abandon: abandon,
            entity: entity.to_owned(),
        }
    }

    /// The rendezvous for a request to `entity`, if it still serves: the listener has not
    /// closed it or sent anything but a ping (answered here) since the last response, and it
    /// belongs to the same hybrid connection. Otherwise it is given up and `None` returned.
    pub(super) async fn reuse(mut self, entity: &str) -> Option<Reused> {
        let returned = self.back.try_recv();
        let seen = match &returned {
            Err(flume::TryRecvError::Empty) => HeldSeen::Nothing,
            Ok((_, Ok(WsEvent::Ping(_)))) => HeldSeen::Ping,
            Ok((
                _,
                Ok(WsEvent::Data {
                    kind: DataKind::Binary,
                    payload,
                    message_end: true,
                    ..
                }),
            )) if payload.is_empty() => HeldSeen::EmptyBinary,
            Ok(_) | Err(flume::TryRecvError::Disconnected) => HeldSeen::Other,
        };
        if !held_verdict(&self.entity, entity, seen) {
            self.release().await;
            return None;
        }
        let reader = match returned {
            Ok((reader, Ok(WsEvent::Ping(payload)))) => {
                let mut pong = Vec::new();
                let _ = push_frame(&mut pong, true, OpCode::Pong, reader.bytes(payload), None);
                if self.write.write_all(pong).await.0.is_err() {
                    return None;
                }
                ReaderState::InHand(reader)
            }
            Ok((reader, _)) => ReaderState::InHand(reader),
            Err(_) => ReaderState::Watched(self.back),
        };
        Some(Reused {
            write: self.write,
            reader,
            _abandon: self._abandon,
        })
    }

    /// Gives the rendezvous up with Close 1000.
    pub(super) async fn release(mut self) {
        close(&mut self.write).await;
    }
}

impl Reused {
    /// Waits up to `deadline` for the reader and the listener's first frame since the request.
    pub(super) async fn first_event(
        reader: ReaderState,
        deadline: Duration,
    ) -> Option<(RendezvousRead, Option<Result<WsEvent, ReadError>>)> {
        match reader {
            ReaderState::InHand(reader) => Some((reader, None)),
            ReaderState::Watched(back) => {
                match monoio::time::timeout(deadline, back.recv_async()).await {
                    Ok(Ok((reader, event))) => Some((reader, Some(event))),
                    _ => None,
                }
            }
        }
    }
}

/// Sends Close 1000 on a request rendezvous (its response is complete or given up).
pub(super) async fn close(write: &mut RendezvousWrite) {
    let mut frame = Vec::new();
    if push_close(&mut frame, CloseCode::NORMAL, "", None).is_ok() {
        let _ = monoio::time::timeout(CLOSE_GRACE, write.write_all(frame)).await;
    }
}

/// Reads one event and hands it back with the reader; once the rendezvous is given up, stops
/// reading after [`CLOSE_GRACE`].
async fn watch(
    mut reader: RendezvousRead,
    back: flume::Sender<Returned>,
    abandoned: flume::Receiver<()>,
) {
    let event = monoio::select! {
        event = reader.next_event() => event,
        _ = async {
            let _ = abandoned.recv_async().await;
            monoio::time::sleep(CLOSE_GRACE).await;
        } => return,
    };
    let _ = back.send((reader, event));
}
