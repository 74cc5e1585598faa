//! Frame encoding (RFC 6455 §5.2, §5.3, §5.4, §5.5; architecture §2 "target → relay").
//!
//! Two layers:
//! - free functions that build frames without any state: [`encode_frame_in_place`] writes a
//!   header into the headroom in front of a payload already in a buffer and masks the payload
//!   in place, so the whole frame goes to TLS as one contiguous slice without a copy;
//!   [`encode_ping`], [`encode_pong`] and [`encode_close`] append whole control frames;
//! - [`Encoder`], which also enforces what one side of a connection may send: the role's
//!   masking rule (§5.1, §5.3), message sequencing (§5.4: first frame carries the kind, later
//!   ones are continuations) and nothing after the close frame (§5.5.1).
//!
//! Masking keys come from the caller (a client must draw a fresh unpredictable key per frame,
//! §10.3); the codec never reads randomness or clocks.

use std::ops::Range;

use bytes::BufMut;

use super::close::{CloseCode, CloseFrame, MAX_CLOSE_REASON_LEN};
use super::error::EncodeError;
use super::frame::{DataKind, FrameHeader, OpCode, Role, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use super::mask::apply_mask;

/// Turns `buf[payload]` into a whole frame in place: masks the payload (when `mask` is given)
/// and writes the header into the bytes right before it. Returns the range of the contiguous
/// frame within `buf`. Needs up to [`MAX_HEADER_LEN`] bytes of headroom before the payload
/// (2 to 14 depending on length and masking). Nothing is modified when an error is returned.
///
/// No protocol rule beyond the header encoding is checked here; [`Encoder::data_in_place`]
/// checks them.
pub fn encode_frame_in_place(
    buf: &mut [u8],
    payload: Range<usize>,
    fin: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
) -> Result<Range<usize>, EncodeError> {
    let Range { start, end } = payload;
    if start > end || end > buf.len() {
        return Err(EncodeError::PayloadOutOfBounds {
            start,
            end,
            buf_len: buf.len(),
        });
    }
    let header = FrameHeader {
        fin,
        opcode,
        mask,
        payload_len: len_u64(end - start),
    };
    let mut header_bytes = [0u8; MAX_HEADER_LEN];
    let header_len = header.encode(&mut header_bytes)?;
    let Some(frame_start) = start.checked_sub(header_len) else {
        return Err(EncodeError::HeadroomTooSmall {
            needed: header_len,
            available: start,
        });
    };
    buf[frame_start..start].copy_from_slice(&header_bytes[..header_len]);
    if let Some(key) = mask {
        apply_mask(&mut buf[start..end], key, 0);
    }
    Ok(frame_start..end)
}

/// Appends a ping frame (§5.5.2) with `payload` (at most 125 bytes) to `dst`.
pub fn encode_ping(
    dst: &mut impl BufMut,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) -> Result<(), EncodeError> {
    encode_control(dst, OpCode::Ping, payload, mask)
}

/// Appends a pong frame (§5.5.3) with `payload` (at most 125 bytes) to `dst`.
pub fn encode_pong(
    dst: &mut impl BufMut,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) -> Result<(), EncodeError> {
    encode_control(dst, OpCode::Pong, payload, mask)
}

/// Appends a close frame (§5.5.1) to `dst`: the code and reason (at most 123 bytes), or an
/// empty payload when `close.code` is `None`.
pub fn encode_close(
    dst: &mut impl BufMut,
    close: &CloseFrame<'_>,
    mask: Option<[u8; 4]>,
) -> Result<(), EncodeError> {
    let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
    let len = close.encode_payload(&mut payload)?;
    encode_control(dst, OpCode::Close, &payload[..len], mask)
}

/// Appends a whole control frame, built on the stack, to `dst`.
fn encode_control(
    dst: &mut impl BufMut,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) -> Result<(), EncodeError> {
    if payload.len() > MAX_CONTROL_PAYLOAD {
        return Err(EncodeError::ControlPayloadTooLarge {
            opcode,
            len: payload.len(),
        });
    }
    let mut frame = [0u8; MAX_HEADER_LEN + MAX_CONTROL_PAYLOAD];
    let payload_range = MAX_HEADER_LEN..MAX_HEADER_LEN + payload.len();
    frame[payload_range.clone()].copy_from_slice(payload);
    let frame_range = encode_frame_in_place(&mut frame, payload_range, true, opcode, mask)?;
    let needed = frame_range.len();
    if dst.remaining_mut() < needed {
        return Err(EncodeError::DestinationTooSmall {
            needed,
            available: dst.remaining_mut(),
        });
    }
    dst.put_slice(&frame[frame_range]);
    Ok(())
}

/// Appends one whole frame (header + payload, masked with `mask` when given) to `dst`, with no
/// state checked: for test peers and tools that build frames of any shape. A channel builds its
/// frames through an [`Encoder`] (or `proto::hc::channel::Outbound`), which enforces the rules.
pub fn push_frame(
    dst: &mut Vec<u8>,
    fin: bool,
    opcode: OpCode,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) -> Result<(), EncodeError> {
    let header = FrameHeader {
        fin,
        opcode,
        mask,
        payload_len: len_u64(payload.len()),
    };
    let mut bytes = [0u8; MAX_HEADER_LEN];
    let len = header.encode(&mut bytes)?;
    append_frame(dst, &bytes[..len], payload, mask);
    Ok(())
}

/// Appends an encoded frame `header` and its `payload` to `dst`, masking the payload with `mask`
/// as it lands (the header must announce that mask and length).
pub fn append_frame(dst: &mut Vec<u8>, header: &[u8], payload: &[u8], mask: Option<[u8; 4]>) {
    dst.reserve(header.len() + payload.len());
    dst.extend_from_slice(header);
    let start = dst.len();
    dst.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut dst[start..], key, 0);
    }
}

/// Appends a close frame with `code` and `reason`, the reason cut to its longest prefix of at
/// most 123 bytes that ends at a character boundary (§5.5.1).
pub fn push_close(
    dst: &mut Vec<u8>,
    code: CloseCode,
    reason: &str,
    mask: Option<[u8; 4]>,
) -> Result<(), EncodeError> {
    encode_close(dst, &CloseFrame::new(code, fit_close_reason(reason)), mask)
}

/// The longest prefix of `reason` that fits a close frame (123 bytes) and ends at a character
/// boundary.
pub fn fit_close_reason(reason: &str) -> &str {
    let mut end = reason.len().min(MAX_CLOSE_REASON_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// The sending half of one WebSocket connection: encodes frames and enforces what `role` may
/// send. Every method checks everything before writing, and leaves state and output untouched
/// when it returns an error.
#[derive(Debug, Clone)]
pub struct Encoder {
    role: Role,
    message: Option<DataKind>,
    close_sent: bool,
}

impl Encoder {
    /// An encoder for frames sent by `role`.
    pub fn new(role: Role) -> Self {
        Self {
            role,
            message: None,
            close_sent: false,
        }
    }

    /// The role this encoder sends for.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether a close frame has been encoded.
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// The kind of the fragmented message in progress, if a non-final data frame was encoded.
    pub fn message_in_progress(&self) -> Option<DataKind> {
        self.message
    }

    /// Writes the header of the next data frame of a `kind` message: opcode `kind` for the
    /// first frame, continuation for later ones; `fin` ends the message. The caller sends
    /// `payload_len` payload bytes after it, masked with `mask` (phase counted from the frame
    /// start, see [`apply_mask`]) if given. Use this to stream a
    /// frame larger than any buffer.
    pub fn data_header(
        &mut self,
        dst: &mut [u8; MAX_HEADER_LEN],
        kind: DataKind,
        fin: bool,
        payload_len: u64,
        mask: Option<[u8; 4]>,
    ) -> Result<usize, EncodeError> {
        let opcode = self.check_data(kind, mask)?;
        let header = FrameHeader {
            fin,
            opcode,
            mask,
            payload_len,
        };
        let written = header.encode(dst)?;
        self.message = if fin { None } else { Some(kind) };
        Ok(written)
    }

    /// Turns `buf[payload]` into the next data frame of a `kind` message in place (see
    /// [`encode_frame_in_place`] and [`Encoder::data_header`]); returns the frame's range.
    pub fn data_in_place(
        &mut self,
        buf: &mut [u8],
        payload: Range<usize>,
        kind: DataKind,
        fin: bool,
        mask: Option<[u8; 4]>,
    ) -> Result<Range<usize>, EncodeError> {
        let opcode = self.check_data(kind, mask)?;
        let frame = encode_frame_in_place(buf, payload, fin, opcode, mask)?;
        self.message = if fin { None } else { Some(kind) };
        Ok(frame)
    }

    /// Appends a ping frame to `dst` (see [`encode_ping`]).
    pub fn ping(
        &mut self,
        dst: &mut impl BufMut,
        payload: &[u8],
        mask: Option<[u8; 4]>,
    ) -> Result<(), EncodeError> {
        self.check_open(mask)?;
        encode_ping(dst, payload, mask)
    }

    /// Appends a pong frame to `dst` (see [`encode_pong`]).
    pub fn pong(
        &mut self,
        dst: &mut impl BufMut,
        payload: &[u8],
        mask: Option<[u8; 4]>,
    ) -> Result<(), EncodeError> {
        self.check_open(mask)?;
        encode_pong(dst, payload, mask)
    }

    /// Appends a close frame to `dst` (see [`encode_close`]); afterwards nothing more may be
    /// sent. A fragmented message in progress is abandoned, as §7.1.7 allows.
    pub fn close(
        &mut self,
        dst: &mut impl BufMut,
        close: &CloseFrame<'_>,
        mask: Option<[u8; 4]>,
    ) -> Result<(), EncodeError> {
        self.check_open(mask)?;
        encode_close(dst, close, mask)?;
        self.close_sent = true;
        self.message = None;
        Ok(())
    }

    /// The opcode of the next data frame of a `kind` message, if it may be sent.
    fn check_data(&self, kind: DataKind, mask: Option<[u8; 4]>) -> Result<OpCode, EncodeError> {
        self.check_open(mask)?;
        match self.message {
            None => Ok(kind.opcode()),
            Some(started) if started == kind => Ok(OpCode::Continuation),
            Some(started) => Err(EncodeError::MessageKindChanged {
                started,
                requested: kind,
            }),
        }
    }

    /// Any frame: not after close, and masked exactly when the role requires it.
    fn check_open(&self, mask: Option<[u8; 4]>) -> Result<(), EncodeError> {
        if self.close_sent {
            return Err(EncodeError::SendAfterClose);
        }
        match (self.role.masks_outgoing(), mask.is_some()) {
            (true, false) => Err(EncodeError::MaskRequired),
            (false, true) => Err(EncodeError::MaskForbidden),
            _ => Ok(()),
        }
    }
}

/// A buffer length as a wire length. Lossless: `usize` is at most 64 bits wide.
pub fn len_u64(len: usize) -> u64 {
    u64::try_from(len).unwrap_or(u64::MAX)
}
