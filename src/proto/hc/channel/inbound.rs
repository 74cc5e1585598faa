//! The receiving side of a channel ([`super`]): decoded frames in, protocol events out.
//!
//! - text messages are control messages: collected across their fragments (control frames may
//!   come between them) up to [`MAX_CONTROL_MESSAGE_LEN`] bytes; one byte more fails the
//!   channel ([`ChannelError::MessageTooLarge`], close 1009) before it is collected; the command
//!   its first bytes name is kept for counting ([`Inbound::oversized_command`]). A message
//!   that arrives in one piece is handed out where it lies, without a copy;
//! - binary messages are bodies: every chunk is passed through as it arrives, never collected;
//! - a ping is answered: its pong is appended to the caller's reply buffer (nothing once this
//!   side has sent its close);
//! - the peer's close is recorded in the [`Outbound`], which then allows only the closing reply.
//!
//! After an error every later call returns the same error.

use super::error::ChannelError;
use super::outbound::Outbound;
use crate::proto::hc::messages::MAX_CONTROL_MESSAGE_LEN;
use crate::proto::hc::salvage::command_at_start;
use crate::proto::ws::{CloseFrame, DataKind, Event};

/// What one decoded frame (or chunk of one) meant on the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received<'a> {
    /// A whole control message: one text message, at most 64 KiB.
    Message(&'a [u8]),
    /// A part of a text message was collected; nothing to act on yet.
    Partial,
    /// A chunk of a binary message (a body), possibly empty.
    Body { chunk: &'a [u8], message_end: bool },
    /// A ping; its pong is in the reply buffer unless this side already closed.
    Ping,
    /// A pong (solicited or not).
    Pong,
    /// The peer's close frame.
    Close(CloseFrame<'a>),
}

/// Assembles the control messages of one channel.
#[derive(Debug, Default)]
pub struct Inbound {
    /// The text message being collected; after a collected message was handed out it holds
    /// that message until the next text chunk (`delivered`).
    text: Vec<u8>,
    delivered: bool,
    failed: Option<ChannelError>,
    /// The command named by the start of the message that was too large.
    oversized_command: Option<&'static str>,
}

impl Inbound {
    /// A channel's receiving side, between messages.
    pub fn new() -> Self {
        Self::default()
    }

    /// The command (`accept`, `request`) named by the first bytes of the message that failed
    /// the channel with [`ChannelError::MessageTooLarge`]; `None` before such a failure or when
    /// those bytes name neither.
    pub fn oversized_command(&self) -> Option<&'static str> {
        self.oversized_command
    }

    /// Takes one decoder event. A ping's pong goes to `reply` (built by `outbound`, which also
    /// learns of the peer's close); the caller sends `reply` when it is not empty.
    pub fn receive<'a>(
        &'a mut self,
        event: Event<'a>,
        outbound: &mut Outbound,
        reply: &mut Vec<u8>,
    ) -> Result<Received<'a>, ChannelError> {
        if let Some(err) = self.failed {
            return Err(err);
        }
        match event {
            Event::Data {
                kind: DataKind::Text,
                payload,
                message_end,
                ..
            } => self.text_chunk(payload, message_end),
            Event::Data {
                payload,
                message_end,
                ..
            } => Ok(Received::Body {
                chunk: payload,
                message_end,
            }),
            Event::Ping(payload) => {
                // Closed already (ours sent): a ping goes unanswered, as nothing may follow.
                let _ = outbound.pong(reply, payload);
                Ok(Received::Ping)
            }
            Event::Pong(_) => Ok(Received::Pong),
            Event::Close(close) => {
                outbound.on_close_received();
                Ok(Received::Close(close))
            }
        }
    }

    fn text_chunk<'a>(
        &'a mut self,
        chunk: &'a [u8],
        message_end: bool,
    ) -> Result<Received<'a>, ChannelError> {
        if self.delivered {
            self.text.clear();
            self.delivered = false;
        }
        let len = self.text.len() + chunk.len();
        if len > MAX_CONTROL_MESSAGE_LEN {
            let err = ChannelError::MessageTooLarge {
                len,
                max: MAX_CONTROL_MESSAGE_LEN,
            };
            let start = if self.text.is_empty() {
                chunk
            } else {
                &self.text
            };
            self.oversized_command = command_at_start(start);
            self.text = Vec::new();
            self.failed = Some(err);
            return Err(err);
        }
        if self.text.is_empty() && message_end {
            return Ok(Received::Message(chunk));
        }
        self.text.extend_from_slice(chunk);
        if !message_end {
            return Ok(Received::Partial);
        }
        self.delivered = true;
        Ok(Received::Message(&self.text))
    }
}
