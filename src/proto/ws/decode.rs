//! The sans-I/O frame decoder (RFC 6455 §5, §7.1.7, architecture §2 "relay → target").
//!
//! [`Decoder::decode`] parses in place from a caller-owned buffer and hands payloads back as
//! slices of it: nothing is copied or buffered inside; masked payloads are unmasked in place.
//! Data frames come in chunks as their bytes arrive (the mask phase, a text message's UTF-8
//! state and the message size carry across chunks and fragments), so a frame never has to fit
//! in the buffer; control frames come whole, also between fragments. `Ok((consumed, None))`
//! asks for more bytes; a buffer of [`MAX_CONTROL_FRAME_LEN`] (131) bytes never stalls.
//! After an error the connection must be failed (§7.1.7) with [`WsError::close_code`]; every
//! later call returns the same error.

use super::close::CloseFrame;
use super::error::WsError;
use super::frame::{DataKind, FrameHeader, Limits, OpCode, Role, MAX_CONTROL_PAYLOAD};
use super::mask::apply_mask;
use super::utf8::Utf8Validator;

/// The most bytes the decoder needs in the buffer at once: a whole masked control frame
/// (2 header bytes + 4 masking-key bytes + 125 payload bytes).
pub const MAX_CONTROL_FRAME_LEN: usize = 2 + 4 + MAX_CONTROL_PAYLOAD;

/// One thing the decoder found in the buffer. Every payload is a slice of the caller's buffer
/// ending exactly at the `consumed` position returned with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// A chunk of a data frame's payload (possibly empty, for an empty frame).
    Data {
        /// The kind of the *message*, also for continuation frames.
        kind: DataKind,
        /// Unmasked payload bytes. For text, UTF-8 validated so far, but a code point may be
        /// split between this chunk and the next.
        payload: &'a [u8],
        /// This chunk ends its frame.
        frame_end: bool,
        /// This chunk ends its message (`frame_end` and FIN).
        message_end: bool,
    },
    /// A whole ping frame's payload; answer with a pong carrying the same bytes (§5.5.2).
    Ping(&'a [u8]),
    /// A whole pong frame's payload (solicited or not; both occur, protocol §4.7).
    Pong(&'a [u8]),
    /// The peer's close frame; any later frame is an error.
    Close(CloseFrame<'a>),
}

/// A data frame whose payload is being delivered.
#[derive(Debug, Clone, Copy)]
struct FrameState {
    /// The kind of the message the frame belongs to.
    kind: DataKind,
    remaining: u64,
    mask: Option<[u8; 4]>,
    /// Offset of the next payload byte within the frame, modulo 4.
    phase: usize,
    fin: bool,
}

/// A data message that has started and not yet ended.
#[derive(Debug, Clone, Copy)]
struct MessageState {
    kind: DataKind,
    /// Payload bytes announced by the frames of this message so far.
    len: u64,
}

/// Decoder of one direction of one WebSocket connection.
///
/// State is kept flat and updated in place (no per-frame copies of a big state struct: those
/// showed up as store-forwarding stalls in the small-frame benchmark).
#[derive(Debug, Clone)]
pub struct Decoder {
    role: Role,
    limits: Limits,
    /// The data frame whose payload is being delivered; always part of `message`.
    frame: Option<FrameState>,
    message: Option<MessageState>,
    /// UTF-8 state of the text message in progress.
    utf8: Utf8Validator,
    close_received: bool,
    failed: Option<WsError>,
}

impl Decoder {
    /// A decoder for frames received by `role`.
    pub fn new(role: Role, limits: Limits) -> Self {
        Self {
            role,
            limits,
            frame: None,
            message: None,
            utf8: Utf8Validator::default(),
            close_received: false,
            failed: None,
        }
    }

    /// The role this decoder receives for.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether the peer's close frame has been decoded.
    pub fn close_received(&self) -> bool {
        self.close_received
    }

    /// Payload bytes of the data frame in progress not delivered yet; 0 between frames. A reader
    /// may read just this many bytes so that its next read starts at a frame header (RFC 6455
    /// §5.2: the header's payload length says where the frame ends).
    pub fn frame_payload_remaining(&self) -> u64 {
        self.frame.map_or(0, |frame| frame.remaining)
    }

    /// The kind of the data message in progress, if one has started and not ended.
    pub fn message_in_progress(&self) -> Option<DataKind> {
        self.message.map(|message| message.kind)
    }

    /// Decodes at most one event from the start of `buf`; returns how many bytes of `buf` were
    /// consumed and the event, or `None` when more bytes are needed. A payload chunk is returned
    /// as soon as one payload byte is there. The driving loop:
    ///
    /// ```text
    /// loop {
    ///     let (consumed, event) = decoder.decode(read_buf.data_mut())?;
    ///     // handle `event`; its payload is read_buf.data()[consumed - payload.len()..consumed]
    ///     read_buf.consume(consumed);
    ///     if event.is_none() { read more bytes into read_buf }
    /// }
    /// ```
    pub fn decode<'a>(&mut self, buf: &'a mut [u8]) -> Result<(usize, Option<Event<'a>>), WsError> {
        if let Some(err) = self.failed {
            return Err(err);
        }
        let result = self.decode_unchecked(buf);
        if let Err(err) = result {
            self.failed = Some(err);
        }
        result
    }

    fn decode_unchecked<'a>(
        &mut self,
        buf: &'a mut [u8],
    ) -> Result<(usize, Option<Event<'a>>), WsError> {
        if let Some(frame) = self.frame {
            return self.payload_chunk(buf, 0, frame);
        }
        if buf.is_empty() {
            return Ok((0, None));
        }
        if self.close_received {
            return Err(WsError::FrameAfterClose);
        }
        let Some((header, header_len)) = FrameHeader::parse(buf)? else {
            return Ok((0, None));
        };
        self.check_masking(&header)?;
        if header.opcode.is_control() {
            return self.control_frame(buf, header, header_len);
        }
        let frame = self.start_data_frame(&header)?;
        self.payload_chunk(buf, header_len, frame)
    }

    /// §5.1: clients mask, servers do not.
    fn check_masking(&self, header: &FrameHeader) -> Result<(), WsError> {
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => Err(WsError::UnmaskedClientFrame),
            (Role::Client, true) => Err(WsError::MaskedServerFrame),
            _ => Ok(()),
        }
    }

    /// Checks §5.4 sequencing and the size limits, opens or extends the message, and returns
    /// the frame's payload state.
    fn start_data_frame(&mut self, header: &FrameHeader) -> Result<FrameState, WsError> {
        let (kind, message_len) = match (header.opcode, self.message) {
            (OpCode::Continuation, Some(message)) => (message.kind, message.len),
            (OpCode::Continuation, None) => return Err(WsError::ContinuationWithoutMessage),
            (opcode, Some(message)) => {
                return Err(WsError::MessageInProgress {
                    started: message.kind,
                    opcode,
                })
            }
            (OpCode::Text, None) => (DataKind::Text, 0),
            (_, None) => (DataKind::Binary, 0),
        };
        let max_frame = self.limits.max_frame_size;
        if header.payload_len > max_frame {
            return Err(WsError::FrameTooLarge {
                len: header.payload_len,
                max: max_frame,
            });
        }
        let len = message_len.saturating_add(header.payload_len);
        let max_message = self.limits.max_message_size;
        if len > max_message {
            return Err(WsError::MessageTooLarge {
                len,
                max: max_message,
            });
        }
        if self.message.is_none() {
            self.utf8 = Utf8Validator::default();
        }
        self.message = Some(MessageState { kind, len });
        Ok(FrameState {
            kind,
            remaining: header.payload_len,
            mask: header.mask,
            phase: 0,
            fin: header.fin,
        })
    }

    /// Delivers the payload bytes of `frame` found at `buf[start..]` and stores the updated
    /// state.
    fn payload_chunk<'a>(
        &mut self,
        buf: &'a mut [u8],
        start: usize,
        mut frame: FrameState,
    ) -> Result<(usize, Option<Event<'a>>), WsError> {
        let available = buf.len() - start;
        let take = usize::try_from(frame.remaining).map_or(available, |left| left.min(available));
        if take == 0 && frame.remaining > 0 {
            self.frame = Some(frame);
            return Ok((start, None));
        }
        let end = start + take;
        let chunk = &mut buf[start..end];
        if let Some(key) = frame.mask {
            apply_mask(chunk, key, frame.phase);
        }
        frame.phase = (frame.phase + take) % 4;
        frame.remaining = frame
            .remaining
            .saturating_sub(u64::try_from(take).unwrap_or(u64::MAX));
        let frame_end = frame.remaining == 0;
        let message_end = frame_end && frame.fin;
        if frame.kind == DataKind::Text {
            self.utf8.feed(chunk)?;
            if message_end {
                self.utf8.finish()?;
            }
        }
        self.frame = if frame_end { None } else { Some(frame) };
        if message_end {
            self.message = None;
        }
        let event = Event::Data {
            kind: frame.kind,
            payload: chunk,
            frame_end,
            message_end,
        };
        Ok((end, Some(event)))
    }

    /// Delivers a whole control frame, or asks for more bytes until it is all in `buf`.
    fn control_frame<'a>(
        &mut self,
        buf: &'a mut [u8],
        header: FrameHeader,
        header_len: usize,
    ) -> Result<(usize, Option<Event<'a>>), WsError> {
        let opcode = header.opcode;
        // The header parser caps control payloads at 125 bytes, so this always converts.
        let payload_len = usize::try_from(header.payload_len)
            .map_err(|_| WsError::ControlFrameTooLarge { opcode })?;
        let end = header_len + payload_len;
        if buf.len() < end {
            return Ok((0, None));
        }
        let payload = &mut buf[header_len..end];
        if let Some(key) = header.mask {
            apply_mask(payload, key, 0);
        }
        let payload: &'a [u8] = payload;
        let event = match opcode {
            OpCode::Ping => Event::Ping(payload),
            OpCode::Pong => Event::Pong(payload),
            _ => {
                let close = CloseFrame::parse(payload)?;
                self.close_received = true;
                Event::Close(close)
            }
        };
        Ok((end, Some(event)))
    }
}
