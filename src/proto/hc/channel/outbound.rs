//! The sending side of a channel ([`super`]): every frame goes through one stateful
//! [`Encoder`], so the role's masking, message sequencing and the close rules hold for all of
//! them. Masking keys come from the caller's [`MaskKeys`] (a fresh unpredictable key per frame,
//! RFC 6455 §10.3); nothing here reads randomness.

use std::ops::Range;

use super::error::ChannelError;
use crate::proto::ws::close::CloseFrame;
use crate::proto::ws::encode::{append_frame, fit_close_reason, len_u64};
use crate::proto::ws::{CloseCode, DataKind, Encoder, Role, MAX_HEADER_LEN};

/// Where a client draws the masking key of each frame it sends.
pub type MaskKeys = fn() -> [u8; 4];

/// The close code that answers the peer's close: its own code echoed (RFC 6455 §5.5.1), 1000
/// when it sent none.
pub fn reply_code(received: Option<CloseCode>) -> CloseCode {
    received.unwrap_or(CloseCode::NORMAL)
}

/// Builds the frames one side sends on one channel and enforces what it may still send.
#[derive(Debug, Clone)]
pub struct Outbound {
    encoder: Encoder,
    keys: Option<MaskKeys>,
    close_received: bool,
}

impl Outbound {
    /// The client side (the daemon): every frame masked with a key from `keys`.
    pub fn client(keys: MaskKeys) -> Self {
        Self {
            encoder: Encoder::new(Role::Client),
            keys: Some(keys),
            close_received: false,
        }
    }

    /// The server side (the relay): frames unmasked.
    pub fn server() -> Self {
        Self {
            encoder: Encoder::new(Role::Server),
            keys: None,
            close_received: false,
        }
    }

    /// Whether this side sent its close frame.
    pub fn close_sent(&self) -> bool {
        self.encoder.close_sent()
    }

    /// Whether the peer's close frame arrived.
    pub fn close_received(&self) -> bool {
        self.close_received
    }

    /// Records the peer's close: from now on only the closing reply may be sent.
    pub fn on_close_received(&mut self) {
        self.close_received = true;
    }

    /// Whether anything but a close may still be sent; the check for frames built elsewhere
    /// before they are written.
    pub fn check_open(&self) -> Result<(), ChannelError> {
        if self.encoder.close_sent() {
            Err(ChannelError::SendAfterClose)
        } else if self.close_received {
            Err(ChannelError::SendAfterPeerClose)
        } else {
            Ok(())
        }
    }

    fn key(&self) -> Option<[u8; 4]> {
        self.keys.map(|keys| keys())
    }

    /// Appends a whole `kind` message as one frame.
    pub fn message(
        &mut self,
        dst: &mut Vec<u8>,
        kind: DataKind,
        payload: &[u8],
    ) -> Result<(), ChannelError> {
        self.data(dst, kind, payload, true)
    }

    /// Appends the next frame of a `kind` message (the first carries the kind, later ones are
    /// continuations); `fin` ends the message.
    pub fn data(
        &mut self,
        dst: &mut Vec<u8>,
        kind: DataKind,
        payload: &[u8],
        fin: bool,
    ) -> Result<(), ChannelError> {
        self.check_open()?;
        let mask = self.key();
        let mut header = [0u8; MAX_HEADER_LEN];
        let len = self
            .encoder
            .data_header(&mut header, kind, fin, len_u64(payload.len()), mask)?;
        append_frame(dst, &header[..len], payload, mask);
        Ok(())
    }

    /// Turns `buf[payload]` into the next frame of a `kind` message in place, the header written
    /// into the headroom before it (up to [`MAX_HEADER_LEN`] bytes): no copy. Returns the
    /// frame's range in `buf`.
    pub fn data_in_place(
        &mut self,
        buf: &mut [u8],
        payload: Range<usize>,
        kind: DataKind,
        fin: bool,
    ) -> Result<Range<usize>, ChannelError> {
        self.check_open()?;
        let mask = self.key();
        Ok(self.encoder.data_in_place(buf, payload, kind, fin, mask)?)
    }

    /// Writes into `dst` the header of the next frame of a `kind` message whose `payload_len`
    /// bytes the caller sends after it, masked with the returned key (when there is one) from
    /// the frame start. Returns the header's length.
    pub fn data_header(
        &mut self,
        dst: &mut [u8; MAX_HEADER_LEN],
        kind: DataKind,
        fin: bool,
        payload_len: u64,
    ) -> Result<(usize, Option<[u8; 4]>), ChannelError> {
        self.check_open()?;
        let mask = self.key();
        let len = self
            .encoder
            .data_header(dst, kind, fin, payload_len, mask)?;
        Ok((len, mask))
    }

    /// Appends a ping with an empty payload.
    pub fn ping(&mut self, dst: &mut Vec<u8>) -> Result<(), ChannelError> {
        self.check_open()?;
        let mask = self.key();
        Ok(self.encoder.ping(dst, b"", mask)?)
    }

    /// Appends the pong that answers a ping carrying `payload` (RFC 6455 §5.5.2).
    pub fn pong(&mut self, dst: &mut Vec<u8>, payload: &[u8]) -> Result<(), ChannelError> {
        self.check_open()?;
        let mask = self.key();
        Ok(self.encoder.pong(dst, payload, mask)?)
    }

    /// Appends this side's close frame, the reason cut to fit (123 bytes, at a character
    /// boundary). Allowed once, also after the peer's close (as the reply); nothing may follow.
    pub fn close(
        &mut self,
        dst: &mut Vec<u8>,
        code: CloseCode,
        reason: &str,
    ) -> Result<(), ChannelError> {
        let mask = self.key();
        let frame = CloseFrame::new(code, fit_close_reason(reason));
        Ok(self.encoder.close(dst, &frame, mask)?)
    }
}
