//! Where the answer to one request goes (protocol §6.1, §6.5): a request that came on the control
//! channel is answered there when the whole response fits, or through its `address` when the
//! daemon upgrades to stream it (listener-side upgrade); a request that came on a rendezvous is
//! answered on that rendezvous. Never on both paths.

use std::fmt;
use std::io;
use std::time::Instant;

use super::frames::push_answer;
use super::rendezvous::{self, RendezvousReader, RendezvousWriter};
use crate::daemon::listener::context::{ControlWriter, HcContext};
use crate::io::ws_client::ConnectError;
use crate::proto::hc::channel::ChannelError;
use crate::proto::hc::messages::Response;

/// Why an answer could not be sent.
#[derive(Debug)]
pub(crate) enum ReplyError {
    /// The control channel closed (its writer is gone, or a close was sent or received).
    ControlChannelGone,
    /// The frames could not be encoded.
    Encode(ChannelError),
    /// The request has no `address` to upgrade to.
    NoAddress,
    /// The rendezvous for the upgrade could not be opened.
    Rendezvous(ConnectError),
    /// Writing to the rendezvous failed or stalled.
    Write(io::Error),
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ControlChannelGone => f.write_str("the control channel is gone"),
            Self::Encode(e) => write!(f, "the answer could not be encoded: {e}"),
            Self::NoAddress => f.write_str("the request has no address to answer through"),
            Self::Rendezvous(e) => write!(f, "opening the rendezvous failed: {e}"),
            Self::Write(e) => write!(f, "writing to the rendezvous failed: {e}"),
        }
    }
}

impl std::error::Error for ReplyError {}

/// A request that came on the control channel: its answer goes there or, upgraded, through
/// the request's `address`.
pub(crate) struct ControlReply<'a> {
    control: &'a ControlWriter,
    address: Option<&'a str>,
    /// When the request arrived (rendezvous set-up time is measured from it).
    since: Instant,
    /// Boxed: rarely present, and it would make every [`Reply`] large.
    upgraded: Option<Box<(RendezvousReader, RendezvousWriter)>>,
}

impl<'a> ControlReply<'a> {
    /// The reply to a request received at `since` with the rendezvous `address`.
    pub(crate) fn new(
        control: &'a ControlWriter,
        address: Option<&'a str>,
        since: Instant,
    ) -> Self {
        Self {
            control,
            address,
            since,
            upgraded: None,
        }
    }

    /// The writer of the rendezvous opened by an upgrade.
    pub(crate) fn upgraded_writer(&mut self) -> Option<&mut RendezvousWriter> {
        self.upgraded.as_mut().map(|pair| &mut pair.1)
    }

    /// The rendezvous the answer was streamed through, if the daemon upgraded; the daemon
    /// keeps serving requests the relay sends on it (protocol §11 item 19).
    pub(crate) fn into_upgraded(self) -> Option<(RendezvousReader, RendezvousWriter)> {
        self.upgraded.map(|pair| *pair)
    }
}

/// Where the answer to one request goes.
pub(crate) enum Reply<'a> {
    /// The request came on the control channel.
    Control(ControlReply<'a>),
    /// The request came on this rendezvous.
    Rendezvous(&'a mut RendezvousWriter),
}

impl Reply<'_> {
    /// Whether a whole answer may still go on the control channel.
    pub(crate) fn control_allowed(&self) -> bool {
        matches!(self, Self::Control(c) if c.upgraded.is_none())
    }

    /// Sends a whole answer: on the control channel as one unit (the `response` and its body
    /// can never be split, protocol §4.2), or on the rendezvous.
    pub(crate) async fn answer(
        &mut self,
        response: &Response,
        body: &[u8],
    ) -> Result<(), ReplyError> {
        match self {
            Self::Control(c) => {
                let capacity = body.len() + 512;
                let sent = c
                    .control
                    .send_with(capacity, |out, unit| push_answer(out, unit, response, body));
                sent.map_err(|e| match e {
                    ChannelError::Encode(e) => ReplyError::Encode(ChannelError::Encode(e)),
                    _ => ReplyError::ControlChannelGone,
                })
            }
            // Boxed: rare (requests with streamed bodies), and inline it would enlarge every
            // control-channel request's future.
            Self::Rendezvous(w) => Box::pin(w.send_answer(response, body))
                .await
                .map_err(ReplyError::Write),
        }
    }

    /// Starts a streamed answer: sends `response` on the rendezvous (opening the request's
    /// `address` first when the request came on the control channel) and returns the writer
    /// for its body frames.
    pub(crate) async fn open_stream(
        &mut self,
        hc: &HcContext,
        response: &Response,
    ) -> Result<&mut RendezvousWriter, ReplyError> {
        match self {
            Self::Control(c) => {
                let address = c.address.ok_or(ReplyError::NoAddress)?;
                let (reader, mut writer) = rendezvous::open(hc, address, c.since)
                    .await
                    .map_err(ReplyError::Rendezvous)?;
                writer
                    .send_head(response)
                    .await
                    .map_err(ReplyError::Write)?;
                let pair = c.upgraded.insert(Box::new((reader, writer)));
                Ok(&mut pair.1)
            }
            Self::Rendezvous(w) => {
                w.send_head(response).await.map_err(ReplyError::Write)?;
                Ok(w)
            }
        }
    }
}
