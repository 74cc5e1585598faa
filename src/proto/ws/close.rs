//! Close frames (RFC 6455 §5.5.1) and status codes (§7.4).
//!
//! A close payload is empty, or a 2-byte big-endian status code followed by a UTF-8 reason
//! (at most 123 bytes, so the payload fits a 125-byte control frame). Codes valid on the wire:
//! 1000–1003, 1007–1014 (1012–1014 as registered with IANA, §11.7) and 3000–4999. Rejected:
//! below 1000, 1004 (reserved), 1005/1006/1015 (must never be sent), 1016–2999 (reserved for
//! future protocol use) and 5000 and above (undefined). The service's codes (protocol §4.8, §8.2:
//! 1001, 1008, 1011) are all valid.

use std::fmt;

use super::error::{EncodeError, WsError};
use super::frame::{OpCode, MAX_CONTROL_PAYLOAD};

/// A close status code that may appear on the wire (§7.4). Construct with [`CloseCode::new`]
/// or use the named constants; an invalid code is unrepresentable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: Self = Self(1000);
    /// 1001: endpoint going away (the service: sender left, or HC deleted/disabled).
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: data of a type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: Self = Self(1003);
    /// 1007: payload inconsistent with the message type (e.g. bad UTF-8 in text).
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// 1008: policy violation (the service: token expired).
    pub const POLICY_VIOLATION: Self = Self(1008);
    /// 1009: message too big to process.
    pub const MESSAGE_TOO_BIG: Self = Self(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: Self = Self(1010);
    /// 1011: unexpected condition on the server (the service: internal error / recycle).
    pub const INTERNAL_ERROR: Self = Self(1011);
    /// 1012: service restart (IANA registry).
    pub const SERVICE_RESTART: Self = Self(1012);
    /// 1013: try again later (IANA registry).
    pub const TRY_AGAIN_LATER: Self = Self(1013);
    /// 1014: bad gateway (IANA registry).
    pub const BAD_GATEWAY: Self = Self(1014);

    /// The code, if it may appear in a close frame; `None` for reserved and never-sent codes.
    pub const fn new(code: u16) -> Option<Self> {
        match code {
            1000..=1003 | 1007..=1014 | 3000..=4999 => Some(Self(code)),
            _ => None,
        }
    }

    /// The numeric code.
    pub const fn as_u16(self) -> u16 {
        self.0
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The content of a close frame: an optional status code and a reason (empty when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseFrame<'a> {
    /// The status code; `None` for an empty close payload (seen by applications as 1005).
    pub code: Option<CloseCode>,
    /// The UTF-8 reason; empty when there is none. Not for display to users (§7.1.6).
    pub reason: &'a str,
}

/// The longest close reason: a control payload minus the 2-byte status code.
pub(crate) const MAX_CLOSE_REASON_LEN: usize = MAX_CONTROL_PAYLOAD - 2;

impl<'a> CloseFrame<'a> {
    /// A close frame with a code and reason.
    pub fn new(code: CloseCode, reason: &'a str) -> Self {
        Self {
            code: Some(code),
            reason,
        }
    }

    /// Parses a close payload (already unmasked).
    pub fn parse(payload: &'a [u8]) -> Result<Self, WsError> {
        let (code, reason) = match payload {
            [] => {
                return Ok(Self {
                    code: None,
                    reason: "",
                })
            }
            [_] => return Err(WsError::ClosePayloadTooShort),
            [high, low, reason @ ..] => (u16::from_be_bytes([*high, *low]), reason),
        };
        let code = CloseCode::new(code).ok_or(WsError::InvalidCloseCode { code })?;
        let reason = std::str::from_utf8(reason).map_err(|_| WsError::InvalidCloseReason)?;
        Ok(Self {
            code: Some(code),
            reason,
        })
    }

    /// Writes the close payload into `dst`; returns its length (0 to 125).
    pub fn encode_payload(
        &self,
        dst: &mut [u8; MAX_CONTROL_PAYLOAD],
    ) -> Result<usize, EncodeError> {
        let Some(code) = self.code else {
            if self.reason.is_empty() {
                return Ok(0);
            }
            return Err(EncodeError::CloseReasonWithoutCode);
        };
        let reason = self.reason.as_bytes();
        let len = 2 + reason.len();
        if reason.len() > MAX_CLOSE_REASON_LEN {
            return Err(EncodeError::ControlPayloadTooLarge {
                opcode: OpCode::Close,
                len,
            });
        }
        dst[..2].copy_from_slice(&code.as_u16().to_be_bytes());
        dst[2..len].copy_from_slice(reason);
        Ok(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_valid_on_the_wire_follow_rfc_7_4() {
        let valid = [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
        ];
        for code in valid.into_iter().chain([3000, 3999, 4000, 4999]) {
            assert_eq!(
                CloseCode::new(code).map(CloseCode::as_u16),
                Some(code),
                "{code}"
            );
        }
        let invalid = [
            0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ];
        for code in invalid {
            assert_eq!(CloseCode::new(code), None, "{code}");
        }
    }

    #[test]
    fn parses_empty_code_only_and_code_with_reason() {
        assert_eq!(
            CloseFrame::parse(&[]),
            Ok(CloseFrame {
                code: None,
                reason: ""
            })
        );
        assert_eq!(
            CloseFrame::parse(&[0x03, 0xE8]),
            Ok(CloseFrame::new(CloseCode::NORMAL, ""))
        );
        let mut payload = vec![0x03, 0xF3];
        payload.extend_from_slice("Shutdown ✓".as_bytes());
        assert_eq!(
            CloseFrame::parse(&payload),
            Ok(CloseFrame::new(CloseCode::INTERNAL_ERROR, "Shutdown ✓"))
        );
    }

    #[test]
    fn a_one_byte_payload_is_rejected() {
        assert_eq!(
            CloseFrame::parse(&[0x03]),
            Err(WsError::ClosePayloadTooShort)
        );
    }

    #[test]
    fn invalid_codes_are_rejected() {
        for code in [999u16, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            assert_eq!(
                CloseFrame::parse(&code.to_be_bytes()),
                Err(WsError::InvalidCloseCode { code }),
                "{code}"
            );
        }
    }

    #[test]
    fn a_reason_that_is_not_utf8_is_rejected() {
        assert_eq!(
            CloseFrame::parse(&[0x03, 0xE8, b'o', b'k', 0xFF]),
            Err(WsError::InvalidCloseReason)
        );
        assert_eq!(
            CloseFrame::parse(&[0x03, 0xE8, 0xE2, 0x82]),
            Err(WsError::InvalidCloseReason),
            "truncated sequence"
        );
    }

    #[test]
    fn encodes_and_parses_back() {
        let mut dst = [0u8; MAX_CONTROL_PAYLOAD];
        let frame = CloseFrame::new(CloseCode::GOING_AWAY, "bye");
        let n = frame.encode_payload(&mut dst).expect("encodable");
        assert_eq!(&dst[..n], [0x03, 0xE9, b'b', b'y', b'e']);
        assert_eq!(CloseFrame::parse(&dst[..n]), Ok(frame));
        let empty = CloseFrame {
            code: None,
            reason: "",
        };
        assert_eq!(empty.encode_payload(&mut dst), Ok(0));
    }

    #[test]
    fn encode_rejects_overlong_reasons_and_reasons_without_code() {
        let mut dst = [0u8; MAX_CONTROL_PAYLOAD];
        let longest = "r".repeat(MAX_CLOSE_REASON_LEN);
        assert_eq!(
            CloseFrame::new(CloseCode::NORMAL, &longest).encode_payload(&mut dst),
            Ok(125)
        );
        let too_long = "r".repeat(MAX_CLOSE_REASON_LEN + 1);
        assert_eq!(
            CloseFrame::new(CloseCode::NORMAL, &too_long).encode_payload(&mut dst),
            Err(EncodeError::ControlPayloadTooLarge {
                opcode: OpCode::Close,
                len: 126
            })
        );
        let orphan = CloseFrame {
            code: None,
            reason: "why",
        };
        assert_eq!(
            orphan.encode_payload(&mut dst),
            Err(EncodeError::CloseReasonWithoutCode)
        );
    }
}
