//! Where the answer to one request goes (protocol §6.1, §6.5): a request that came on the control
//! channel is answered there when the whole response fits, or through its `address` when the
//! daemon upgrades to stream it (listener-side upgrade), and through its `address` as well once
//! the control channel is detaching (architecture §3 "Detaching"); a request that came on a
//! rendezvous is answered on that rendezvous. Never on both paths. The daemon's own refusals of
//! a control-channel request ([`refuse`]) follow the same rule.

use std::fmt;
use std::io;
use std::time::Instant;

use super::frames::push_answer;
use super::rendezvous::{self, RendezvousReader, RendezvousWriter};
use super::response_text::ResponseText;
use crate::daemon::listener::context::{ControlWriter, Hc, HcContext};
use crate::daemon::tracker::Tracker;
use crate::io::ws_client::ConnectError;
use crate::logging::Escaped;
use crate::proto::hc::channel::ChannelError;
use crate::proto::hc::control_message::REQUEST;
use crate::proto::hc::messages::Response;
use crate::proto::ws::CloseCode;

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
    hc: &'a HcContext,
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
        hc: &'a HcContext,
        control: &'a ControlWriter,
        address: Option<&'a str>,
        since: Instant,
    ) -> Self {
        Self {
            hc,
            control,
            address,
            since,
            upgraded: None,
        }
    }

    /// Opens the request's rendezvous for the answer.
    async fn open(&mut self) -> Result<&mut RendezvousWriter, ReplyError> {
        let address = self.address.ok_or(ReplyError::NoAddress)?;
        let (reader, writer) = rendezvous::open(self.hc, address, self.since)
            .await
            .map_err(ReplyError::Rendezvous)?;
        let pair = self.upgraded.insert(Box::new((reader, writer)));
        Ok(&mut pair.1)
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
    /// Whether a whole answer may still go on the control channel: not once it is detaching.
    pub(crate) fn control_allowed(&self) -> bool {
        matches!(self, Self::Control(c) if c.upgraded.is_none() && c.control.is_open())
    }

    /// Sends a whole answer: on the control channel as one unit (the `response` and its body
    /// can never be split, protocol §4.2), or on the rendezvous. A request that came on a
    /// control channel which is detaching meanwhile is answered through its `address`.
    pub(crate) async fn answer(
        &mut self,
        response: &ResponseText,
        body: &[u8],
    ) -> Result<(), ReplyError> {
        match self {
            Self::Control(c) if !c.control.is_open() => {
                // Boxed: rare (a drain or reload), and inline it would enlarge every
                // control-channel request's future.
                let writer = Box::pin(c.open()).await?;
                Box::pin(writer.send_answer(response, body))
                    .await
                    .map_err(ReplyError::Write)
            }
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
        response: &ResponseText,
    ) -> Result<&mut RendezvousWriter, ReplyError> {
        match self {
            Self::Control(c) => {
                let writer = c.open().await?;
                writer
                    .send_head(response)
                    .await
                    .map_err(ReplyError::Write)?;
                Ok(writer)
            }
            Self::Rendezvous(w) => {
                w.send_head(response).await.map_err(ReplyError::Write)?;
                Ok(w)
            }
        }
    }
}

/// Sends the daemon's own bodiless answer (`response`, a refusal) to a request that came on the
/// control channel and is not served: on the control channel while it is open; once it is
/// detaching, through the request's `address` like every other answer, in a task `work` tracks
/// (a drain waits for it), the rendezvous closed with 1000 after it. False when it can go
/// nowhere (the channel is gone and the request has no `address` the policy allows).
pub(in crate::daemon) fn refuse(
    hc: &Hc,
    control: &ControlWriter,
    address: Option<&str>,
    response: &Response,
    work: &Tracker,
) -> bool {
    if control.is_open() {
        return control.send_text(response.to_json().as_bytes());
    }
    let Some(address) = address.filter(|address| hc.rendezvous_allowed(REQUEST, address)) else {
        return false;
    };
    let (hc, address, status) = (hc.clone(), address.to_owned(), response.status_code);
    let response = ResponseText::of(response);
    monoio::spawn(work.track(async move {
        let sent = match rendezvous::open(&hc, &address, Instant::now()).await {
            Ok((_reader, mut writer)) => match writer.send_answer(&response, &[]).await {
                Ok(()) => writer.close(CloseCode::NORMAL, "").await,
                Err(e) => Err(e),
            }
            .map_err(ReplyError::Write),
            Err(e) => Err(ReplyError::Rendezvous(e)),
        };
        if let Err(e) = sent {
            tracing::warn!(hybrid_connection = %hc.name, status,
                error = %Escaped(&e), "refusal not delivered through the request's rendezvous");
        }
    }));
    true
}
