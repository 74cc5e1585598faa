//! A request rendezvous held open for a sender's further requests (protocol §6.3 step 5;
//! docs/relay.md, an `[INFER]` decision): after a complete response on a rendezvous the relay opened, the relay
//! keeps it while the sender's keep-alive connection lives and sends that sender's next request
//! for the same hybrid connection over it.
//!
//! While held, a watcher task reads the rendezvous, so a listener that closes it (as the .NET
//! SDK does after each response) is noticed before a request is sent there; the watcher hands
//! the reader back with the first thing the listener sent. The reader is never taken away from
//! an unfinished read, so no byte is lost. A listener may also close a held rendezvous once it
//! has been idle a while (hycod's daemon after a second), and that close can cross the next
//! request; so a request goes there only after the listener answered a ping on it
//! ([`PONG_WAIT`]), which tells that it still reads and restarts its idle time. A rendezvous
//! given up gets Close 1000; its watcher ends when the listener closes too, or after
//! [`CLOSE_GRACE`].

use std::time::Duration;

use monoio::io::{AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf};

use super::core::pairing::{held_verdict, HeldSeen};
use super::registry::ListenerId;
use crate::io::stream::Stream;
use crate::io::ws_reader::{ReadError, WsEvent, WsReader};
use crate::proto::hc::channel::Outbound;
use crate::proto::ws::{CloseCode, DataKind};

/// The write half of a request rendezvous.
pub(super) type RendezvousWrite = OwnedWriteHalf<Stream>;
/// The read half of a request rendezvous.
pub(super) type RendezvousRead = WsReader<OwnedReadHalf<Stream>>;
/// A reader handed back with what it read.
pub(super) type Returned = (RendezvousRead, Result<WsEvent, ReadError>);

/// How long a given-up rendezvous waits for the listener's Close before it is dropped.
pub(super) const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// How long the relay waits for the pong to its ping before it gives a held rendezvous up and
/// routes the request afresh (which is always safe: nothing of the request was sent yet).
pub(super) const PONG_WAIT: Duration = Duration::from_secs(1);

/// A rendezvous held between two requests of one sender.
pub(super) struct Held {
    write: RendezvousWrite,
    back: flume::Receiver<Returned>,
    /// Dropped when the rendezvous is given up, which lets the watcher stop.
    _abandon: flume::Sender<()>,
    entity: String,
    listener: ListenerId,
}

/// A held rendezvous taken for the next request: the listener has just answered a ping on it.
pub(super) struct Reused {
    pub write: RendezvousWrite,
    pub reader: RendezvousRead,
    /// The listener at the other end, which the request counts for.
    pub listener: ListenerId,
    _abandon: flume::Sender<()>,
}

impl Held {
    /// Holds the rendezvous of a complete response by `listener` to a request for `entity`.
    pub(super) fn hold(
        write: RendezvousWrite,
        reader: RendezvousRead,
        entity: &str,
        listener: ListenerId,
    ) -> Self {
        let (abandon, abandoned) = flume::bounded(1);
        let (tx, back) = flume::bounded(1);
        monoio::spawn(watch(reader, tx, abandoned));
        Self {
            write,
            back,
            _abandon: abandon,
            entity: entity.to_owned(),
            listener,
        }
    }

    /// The rendezvous for a request to `entity`, if it still serves: it belongs to the same
    /// hybrid connection, the listener has not closed it or sent anything but a ping (answered
    /// here) or an empty binary message since the last response, and it answers a ping within
    /// [`PONG_WAIT`]. Otherwise it is given up and `None` returned.
    pub(super) async fn reuse(mut self, entity: &str) -> Option<Reused> {
        let returned = self.back.try_recv();
        let so_far = match &returned {
            Err(flume::TryRecvError::Empty) => HeldSeen::Nothing,
            Ok((_, event)) => seen_as(event),
            Err(flume::TryRecvError::Disconnected) => HeldSeen::Other,
        };
        if !held_verdict(&self.entity, entity, so_far) {
            self.release().await;
            return None;
        }
        // A fresh server side: an empty ping and the pong of a ping's (at most 125) bytes
        // always encode.
        let mut out = Outbound::server();
        let mut ping = Vec::new();
        let _ = out.ping(&mut ping);
        if self.write.write_all(ping).await.0.is_err() {
            return None;
        }
        let answered = monoio::time::timeout(PONG_WAIT, async {
            let (mut reader, mut event) = match returned {
                Ok(returned) => returned,
                Err(_) => self.back.recv_async().await.ok()?,
            };
            loop {
                match event {
                    Ok(WsEvent::Pong(_)) => return Some(reader),
                    Ok(WsEvent::Ping(payload)) => {
                        let mut pong = Vec::new();
                        let _ = out.pong(&mut pong, reader.bytes(payload));
                        self.write.write_all(pong).await.0.ok()?;
                    }
                    ref other if seen_as(other) == HeldSeen::EmptyBinary => {}
                    _ => return None,
                }
                event = reader.next_event().await;
            }
        })
        .await;
        match answered {
            Ok(Some(reader)) => Some(Reused {
                write: self.write,
                reader,
                listener: self.listener,
                _abandon: self._abandon,
            }),
            _ => {
                self.release().await;
                None
            }
        }
    }

    /// Gives the rendezvous up with Close 1000.
    pub(super) async fn release(mut self) {
        close(&mut self.write).await;
    }
}

/// Sends Close 1000 on a request rendezvous (its response is complete or given up).
pub(super) async fn close(write: &mut RendezvousWrite) {
    close_with(write, CloseCode::NORMAL, "").await;
}

/// Sends a close frame with `code` and `reason` on a request rendezvous, within
/// [`CLOSE_GRACE`].
pub(super) async fn close_with(write: &mut RendezvousWrite, code: CloseCode, reason: &str) {
    let mut frame = Vec::new();
    if Outbound::server().close(&mut frame, code, reason).is_ok() {
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

/// What a listener's event on a held rendezvous counts as for [`held_verdict`].
fn seen_as(event: &Result<WsEvent, ReadError>) -> HeldSeen {
    match event {
        Ok(WsEvent::Ping(_)) => HeldSeen::Ping,
        Ok(WsEvent::Data {
            kind: DataKind::Binary,
            payload,
            message_end: true,
            ..
        }) if payload.is_empty() => HeldSeen::EmptyBinary,
        _ => HeldSeen::Other,
    }
}
