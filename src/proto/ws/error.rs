//! Typed errors of the WebSocket frame layer: one variant per RFC 6455 rule.
//!
//! [`WsError`] is a violation by the *peer* found while decoding; the connection must then be
//! failed (RFC 6455 §7.1.7) with the close code [`WsError::close_code`] names. [`EncodeError`]
//! is a misuse by *this* side found while encoding; nothing has been written when it is returned.

use std::fmt;

use super::close::CloseCode;
use super::frame::{DataKind, OpCode};

/// A peer's violation of RFC 6455 framing rules (§5, §7.4, §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsError {
    /// RSV1–3 set although no extension was negotiated (§5.2). `rsv` holds the three bits.
    ReservedBitsSet { rsv: u8 },
    /// Opcode 0x3–0x7 or 0xB–0xF (§5.2).
    UnknownOpcode { opcode: u8 },
    /// A control frame with FIN clear (§5.5).
    FragmentedControlFrame { opcode: OpCode },
    /// A control frame whose payload exceeds 125 bytes (§5.5).
    ControlFrameTooLarge { opcode: OpCode },
    /// A continuation frame while no fragmented message is in progress (§5.4).
    ContinuationWithoutMessage,
    /// A new text or binary frame while a fragmented message is still in progress (§5.4).
    MessageInProgress { started: DataKind, opcode: OpCode },
    /// A length in the 16-bit form below 126, or in the 64-bit form below 65536 (§5.2: "the
    /// minimal number of bytes MUST be used").
    NonMinimalLength { len: u64, length_bytes: u8 },
    /// A 64-bit length with its most significant bit set (§5.2).
    LengthMsbSet,
    /// A data frame's payload exceeds [`Limits::max_frame_size`](super::frame::Limits).
    FrameTooLarge { len: u64, max: u64 },
    /// A message's payload, summed over its fragments, exceeds
    /// [`Limits::max_message_size`](super::frame::Limits).
    MessageTooLarge { len: u64, max: u64 },
    /// A text message that is not valid UTF-8 (§8.1). `offset` counts from the message start.
    InvalidUtf8 { offset: u64 },
    /// A text message that ends in the middle of a UTF-8 sequence (§8.1).
    IncompleteUtf8,
    /// A close frame with a 1-byte payload: a status code takes two bytes (§5.5.1).
    ClosePayloadTooShort,
    /// A close status code that must not appear on the wire or is reserved (§7.4.1, §7.4.2).
    InvalidCloseCode { code: u16 },
    /// A close reason that is not valid UTF-8 (§5.5.1).
    InvalidCloseReason,
    /// Any frame after the peer's close frame (§5.5.1).
    FrameAfterClose,
    /// A server received a frame without a masking key (§5.1).
    UnmaskedClientFrame,
    /// A client received a frame with a masking key (§5.1).
    MaskedServerFrame,
}

impl WsError {
    /// The status code to close the connection with (§7.4.1): 1007 for bad UTF-8, 1009 for
    /// size limits, 1002 for every other protocol error.
    pub fn close_code(self) -> CloseCode {
        match self {
            Self::InvalidUtf8 { .. } | Self::IncompleteUtf8 | Self::InvalidCloseReason => {
                CloseCode::INVALID_PAYLOAD
            }
            Self::FrameTooLarge { .. } | Self::MessageTooLarge { .. } => CloseCode::MESSAGE_TOO_BIG,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }

    /// A stable snake_case name for metric labels and structured logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReservedBitsSet { .. } => "reserved_bits_set",
            Self::UnknownOpcode { .. } => "unknown_opcode",
            Self::FragmentedControlFrame { .. } => "fragmented_control_frame",
            Self::ControlFrameTooLarge { .. } => "control_frame_too_large",
            Self::ContinuationWithoutMessage => "continuation_without_message",
            Self::MessageInProgress { .. } => "message_in_progress",
            Self::NonMinimalLength { .. } => "non_minimal_length",
            Self::LengthMsbSet => "length_msb_set",
            Self::FrameTooLarge { .. } => "frame_too_large",
            Self::MessageTooLarge { .. } => "message_too_large",
            Self::InvalidUtf8 { .. } => "invalid_utf8",
            Self::IncompleteUtf8 => "incomplete_utf8",
            Self::ClosePayloadTooShort => "close_payload_too_short",
            Self::InvalidCloseCode { .. } => "invalid_close_code",
            Self::InvalidCloseReason => "invalid_close_reason",
            Self::FrameAfterClose => "frame_after_close",
            Self::UnmaskedClientFrame => "unmasked_client_frame",
            Self::MaskedServerFrame => "masked_server_frame",
        }
    }
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReservedBitsSet { rsv } => write!(
                f,
                "frame has reserved bits RSV1-3 = {rsv:03b} set but no extension was negotiated"
            ),
            Self::UnknownOpcode { opcode } => write!(f, "frame has unknown opcode {opcode:#x}"),
            Self::FragmentedControlFrame { opcode } => {
                write!(
                    f,
                    "{opcode} control frame has FIN clear (control frames cannot be fragmented)"
                )
            }
            Self::ControlFrameTooLarge { opcode } => {
                write!(f, "{opcode} control frame payload exceeds 125 bytes")
            }
            Self::ContinuationWithoutMessage => {
                f.write_str("continuation frame received but no fragmented message is in progress")
            }
            Self::MessageInProgress { started, opcode } => write!(
                f,
                "{opcode} frame received while a fragmented {started} message is in progress"
            ),
            Self::NonMinimalLength { len, length_bytes } => write!(
                f,
                "payload length {len} encoded in {length_bytes} extended length bytes \
                 (not the minimal encoding)"
            ),
            Self::LengthMsbSet => {
                f.write_str("64-bit payload length has its most significant bit set")
            }
            Self::FrameTooLarge { len, max } => {
                write!(
                    f,
                    "frame payload of {len} bytes exceeds max_frame_size {max}"
                )
            }
            Self::MessageTooLarge { len, max } => {
                write!(
                    f,
                    "message payload of {len} bytes exceeds max_message_size {max}"
                )
            }
            Self::InvalidUtf8 { offset } => {
                write!(f, "text message is not valid UTF-8 at byte {offset}")
            }
            Self::IncompleteUtf8 => f.write_str("text message ends inside a UTF-8 sequence"),
            Self::ClosePayloadTooShort => {
                f.write_str("close frame payload is 1 byte (a status code needs 2)")
            }
            Self::InvalidCloseCode { code } => {
                write!(f, "close frame has invalid or reserved status code {code}")
            }
            Self::InvalidCloseReason => f.write_str("close frame reason is not valid UTF-8"),
            Self::FrameAfterClose => f.write_str("frame received after the peer's close frame"),
            Self::UnmaskedClientFrame => {
                f.write_str("server received a frame without a masking key (clients must mask)")
            }
            Self::MaskedServerFrame => {
                f.write_str("client received a frame with a masking key (servers must not mask)")
            }
        }
    }
}

impl std::error::Error for WsError {}

/// A frame this side asked to encode that RFC 6455 does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodeError {
    /// A payload length of 2^63 or more cannot be encoded (§5.2).
    PayloadTooLong { len: u64 },
    /// A control frame payload over 125 bytes (§5.5); for close frames this counts the 2-byte
    /// status code plus the reason.
    ControlPayloadTooLarge { opcode: OpCode, len: usize },
    /// A close reason without a status code (§5.5.1: the reason follows the code).
    CloseReasonWithoutCode,
    /// A client must mask every frame it sends (§5.3) but no masking key was given.
    MaskRequired,
    /// A server must not mask frames it sends (§5.1) but a masking key was given.
    MaskForbidden,
    /// A frame of a different kind while a fragmented message is in progress (§5.4).
    MessageKindChanged {
        started: DataKind,
        requested: DataKind,
    },
    /// A frame after this side already sent its close frame (§5.5.1).
    SendAfterClose,
    /// The payload range does not lie within the buffer.
    PayloadOutOfBounds {
        start: usize,
        end: usize,
        buf_len: usize,
    },
    /// Fewer bytes in front of the payload than the frame header needs.
    HeadroomTooSmall { needed: usize, available: usize },
    /// The destination buffer cannot take the whole frame.
    DestinationTooSmall { needed: usize, available: usize },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PayloadTooLong { len } => {
                write!(f, "payload length {len} does not fit a frame header (max 2^63 - 1)")
            }
            Self::ControlPayloadTooLarge { opcode, len } => {
                write!(f, "{opcode} control frame payload of {len} bytes exceeds 125 bytes")
            }
            Self::CloseReasonWithoutCode => {
                f.write_str("close frame reason given without a status code")
            }
            Self::MaskRequired => f.write_str("client frames must be masked: masking key missing"),
            Self::MaskForbidden => {
                f.write_str("server frames must not be masked: masking key given")
            }
            Self::MessageKindChanged { started, requested } => write!(
                f,
                "{requested} frame requested while a fragmented {started} message is in progress"
            ),
            Self::SendAfterClose => f.write_str("frame requested after the close frame was sent"),
            Self::PayloadOutOfBounds {
                start,
                end,
                buf_len,
            } => write!(f, "payload range {start}..{end} is outside the buffer of {buf_len} bytes"),
            Self::HeadroomTooSmall { needed, available } => write!(
                f,
                "frame header needs {needed} bytes of headroom before the payload, {available} available"
            ),
            Self::DestinationTooSmall { needed, available } => write!(
                f,
                "destination buffer has room for {available} bytes, the frame needs {needed}"
            ),
        }
    }
}

impl std::error::Error for EncodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_follow_rfc_7_4_1() {
        assert_eq!(
            WsError::InvalidUtf8 { offset: 3 }.close_code(),
            CloseCode::INVALID_PAYLOAD
        );
        assert_eq!(
            WsError::IncompleteUtf8.close_code(),
            CloseCode::INVALID_PAYLOAD
        );
        assert_eq!(
            WsError::InvalidCloseReason.close_code(),
            CloseCode::INVALID_PAYLOAD
        );
        assert_eq!(
            WsError::MessageTooLarge { len: 9, max: 8 }.close_code(),
            CloseCode::MESSAGE_TOO_BIG
        );
        assert_eq!(
            WsError::FrameTooLarge { len: 9, max: 8 }.close_code(),
            CloseCode::MESSAGE_TOO_BIG
        );
        assert_eq!(
            WsError::LengthMsbSet.close_code(),
            CloseCode::PROTOCOL_ERROR
        );
        assert_eq!(
            WsError::UnmaskedClientFrame.close_code(),
            CloseCode::PROTOCOL_ERROR
        );
    }

    #[test]
    fn display_names_the_offending_value() {
        let msg = WsError::FrameTooLarge { len: 20, max: 10 }.to_string();
        assert!(
            msg.contains("20") && msg.contains("max_frame_size 10"),
            "{msg}"
        );
        let msg = WsError::UnknownOpcode { opcode: 0xB }.to_string();
        assert!(msg.contains("0xb"), "{msg}");
        let msg = WsError::FragmentedControlFrame {
            opcode: OpCode::Ping,
        }
        .to_string();
        assert!(msg.starts_with("ping"), "{msg}");
        let msg = EncodeError::HeadroomTooSmall {
            needed: 6,
            available: 2,
        }
        .to_string();
        assert!(msg.contains('6') && msg.contains('2'), "{msg}");
    }

    #[test]
    fn metric_labels_are_snake_case() {
        assert_eq!(WsError::MaskedServerFrame.as_str(), "masked_server_frame");
        assert_eq!(
            WsError::NonMinimalLength {
                len: 1,
                length_bytes: 2
            }
            .as_str(),
            "non_minimal_length"
        );
    }
}
