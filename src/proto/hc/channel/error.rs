//! The rules of a Hybrid Connections channel ([`super`]), one variant each.

use std::fmt;

use crate::proto::ws::{CloseCode, EncodeError};

/// A channel rule broken by the peer (what arrived) or by this side (what it asked to send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelError {
    /// A text (control) message over the 64 KiB limit arrived; `len` counts its bytes up to and
    /// including the chunk that crossed the limit. The channel fails with 1009.
    MessageTooLarge { len: usize, max: usize },
    /// This side already sent its close frame: nothing more may be sent.
    SendAfterClose,
    /// The peer's close frame arrived: only this side's closing reply may still be sent.
    SendAfterPeerClose,
    /// A frame the WebSocket rules do not allow this side to build (a bug of the caller).
    Encode(EncodeError),
}

impl ChannelError {
    /// The close code that fails the channel for a peer's violation: 1009 for an oversized
    /// message (RFC 6455 §7.4.1). This side's own mistakes close with 1011.
    pub fn close_code(self) -> CloseCode {
        match self {
            Self::MessageTooLarge { .. } => CloseCode::MESSAGE_TOO_BIG,
            _ => CloseCode::INTERNAL_ERROR,
        }
    }

    /// A stable snake_case name for logs and close reasons.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MessageTooLarge { .. } => "control_message_too_large",
            Self::SendAfterClose => "send_after_close",
            Self::SendAfterPeerClose => "send_after_peer_close",
            Self::Encode(_) => "encode_error",
        }
    }
}

impl From<EncodeError> for ChannelError {
    fn from(e: EncodeError) -> Self {
        match e {
            EncodeError::SendAfterClose => Self::SendAfterClose,
            other => Self::Encode(other),
        }
    }
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MessageTooLarge { len, max } => write!(
                f,
                "control message of at least {len} bytes exceeds the limit of {max} bytes"
            ),
            Self::SendAfterClose => f.write_str("frame requested after this side sent its close"),
            Self::SendAfterPeerClose => f.write_str(
                "frame requested after the peer's close (only the closing reply may follow)",
            ),
            Self::Encode(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ChannelError {}
