//! Frame headers (RFC 6455 §5.2): parse and encode, all three payload length forms, plus the
//! vocabulary the codec shares (roles, opcodes, message kinds, size limits).
//!
//! ```text
//!  0 1 2 3 4 5 6 7 8 9 A B C D E F 0 1 2 3 4 5 6 7 8 9 A B C D E F
//! |F|R|R|R| opcode|M| len7 (0-125, |  16-bit length if len7 = 126  |
//! |I|S|S|S|  (4)  |A| 126 or 127) |  64-bit length if len7 = 127  |
//! |N|V|V|V|       |S|             |  ... then a 4-byte masking key |
//! ```
//!
//! Parsing enforces the rules that need nothing but the header bytes: reserved bits (no
//! extension is ever negotiated), known opcodes, control frames unfragmented and ≤ 125 bytes,
//! minimal length encoding, 64-bit length MSB clear. Rules that need context (role, message
//! sequencing, limits) live in the decoder.

use std::fmt;

use super::error::{EncodeError, WsError};

/// The longest frame header: 2 fixed bytes + 8 length bytes + 4 masking-key bytes.
pub const MAX_HEADER_LEN: usize = 14;

/// The largest control frame payload (§5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Default [`Limits::max_frame_size`]: 16 MiB, as tungstenite.
pub const DEFAULT_MAX_FRAME_SIZE: u64 = 16 << 20;

/// Default [`Limits::max_message_size`]: 64 MiB, as tungstenite.
pub const DEFAULT_MAX_MESSAGE_SIZE: u64 = 64 << 20;

/// Which end of the connection this codec is (§5.1, §5.3): a client masks what it sends and
/// receives unmasked frames; a server the reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The side that opened the connection (the daemon's control channel and rendezvous
    /// sockets).
    Client,
    /// The side that accepted the connection (the self-hostable relay).
    Server,
}

impl Role {
    /// Whether frames sent by this side carry a masking key.
    pub fn masks_outgoing(self) -> bool {
        self == Self::Client
    }

    /// Whether frames received by this side must carry a masking key.
    pub fn expects_masked_incoming(self) -> bool {
        self == Self::Server
    }
}

/// A frame opcode (§5.2, §11.8). Only the six defined opcodes are representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// 0x0: a later fragment of a message.
    Continuation,
    /// 0x1: the first frame of a UTF-8 text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x8: connection close (§5.5.1).
    Close,
    /// 0x9: ping (§5.5.2).
    Ping,
    /// 0xA: pong (§5.5.3).
    Pong,
}

impl OpCode {
    /// The opcode for a 4-bit wire value; `None` for the reserved values.
    pub fn from_wire(bits: u8) -> Option<Self> {
        match bits {
            0x0 => Some(Self::Continuation),
            0x1 => Some(Self::Text),
            0x2 => Some(Self::Binary),
            0x8 => Some(Self::Close),
            0x9 => Some(Self::Ping),
            0xA => Some(Self::Pong),
            _ => None,
        }
    }

    /// The 4-bit wire value.
    pub fn to_wire(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Whether this is a control opcode (close, ping, pong; §5.5).
    pub fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }

    /// Lower-case name for messages and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Continuation => "continuation",
            Self::Text => "text",
            Self::Binary => "binary",
            Self::Close => "close",
            Self::Ping => "ping",
            Self::Pong => "pong",
        }
    }
}

impl fmt::Display for OpCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of a data message (§5.6), fixed by its first frame and kept by its continuations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    /// UTF-8 text; validated by the decoder.
    Text,
    /// Arbitrary bytes.
    Binary,
}

impl DataKind {
    /// The opcode of the first frame of a message of this kind.
    pub fn opcode(self) -> OpCode {
        match self {
            Self::Text => OpCode::Text,
            Self::Binary => OpCode::Binary,
        }
    }
}

impl fmt::Display for DataKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.opcode().as_str())
    }
}

/// Size limits the decoder enforces on data frames and messages (§10.4). Control frames are
/// always limited to 125 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest data frame payload accepted, in bytes. Default 16 MiB
    /// ([`DEFAULT_MAX_FRAME_SIZE`]). The decoder streams payloads, so this bounds what a peer
    /// may announce, not what is buffered.
    pub max_frame_size: u64,
    /// The largest data message accepted, summed over its fragments, in bytes. Default 64 MiB
    /// ([`DEFAULT_MAX_MESSAGE_SIZE`]). Paths that stream a message (rendezvous request bodies,
    /// protocol §6.4) may raise it; the decoder never buffers a message.
    pub max_message_size: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

/// A parsed frame header. RSV bits are not represented: they are always zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: this is the final fragment of its message.
    pub fin: bool,
    /// The frame opcode.
    pub opcode: OpCode,
    /// The masking key, present exactly when the MASK bit is set.
    pub mask: Option<[u8; 4]>,
    /// The payload length in bytes (< 2^63).
    pub payload_len: u64,
}

/// Largest payload length encodable in the 7-bit form.
const MAX_LEN_7: u64 = 125;
/// Largest payload length encodable in the 16-bit form.
const MAX_LEN_16: u64 = 0xFFFF;
/// `len7` value announcing a 16-bit extended length.
const LEN7_16BIT: u8 = 126;
/// `len7` value announcing a 64-bit extended length.
const LEN7_64BIT: u8 = 127;

const FIN_BIT: u8 = 0x80;
const RSV_BITS: u8 = 0x70;
const OPCODE_BITS: u8 = 0x0F;
const MASK_BIT: u8 = 0x80;
const LEN7_BITS: u8 = 0x7F;

impl FrameHeader {
    /// Parses a header from the start of `buf`. `Ok(None)` means more bytes are needed;
    /// `Ok(Some((header, header_len)))` means the payload starts at `buf[header_len]`.
    ///
    /// Rules decidable from the first two bytes are checked before more bytes are required, so
    /// a bad frame is rejected as early as possible and the verdict does not depend on how the
    /// bytes were split.
    pub fn parse(buf: &[u8]) -> Result<Option<(Self, usize)>, WsError> {
        let [b0, b1, ..] = *buf else {
            return Ok(None);
        };
        let rsv = b0 & RSV_BITS;
        if rsv != 0 {
            return Err(WsError::ReservedBitsSet { rsv: rsv >> 4 });
        }
        let wire_opcode = b0 & OPCODE_BITS;
        let opcode = OpCode::from_wire(wire_opcode).ok_or(WsError::UnknownOpcode {
            opcode: wire_opcode,
        })?;
        let fin = b0 & FIN_BIT != 0;
        let masked = b1 & MASK_BIT != 0;
        let len7 = b1 & LEN7_BITS;
        if opcode.is_control() {
            if !fin {
                return Err(WsError::FragmentedControlFrame { opcode });
            }
            if u64::from(len7) > MAX_LEN_7 {
                return Err(WsError::ControlFrameTooLarge { opcode });
            }
        }

        let (payload_len, mut pos) = match len7 {
            LEN7_16BIT => {
                let Some(bytes) = array_at::<2>(buf, 2) else {
                    return Ok(None);
                };
                let len = u64::from(u16::from_be_bytes(bytes));
                if len <= MAX_LEN_7 {
                    return Err(WsError::NonMinimalLength {
                        len,
                        length_bytes: 2,
                    });
                }
                (len, 4)
            }
            LEN7_64BIT => {
                let Some(bytes) = array_at::<8>(buf, 2) else {
                    return Ok(None);
                };
                let len = u64::from_be_bytes(bytes);
                if len >> 63 != 0 {
                    return Err(WsError::LengthMsbSet);
                }
                if len <= MAX_LEN_16 {
                    return Err(WsError::NonMinimalLength {
                        len,
                        length_bytes: 8,
                    });
                }
                (len, 10)
            }
            short => (u64::from(short), 2),
        };

        let mask = if masked {
            let Some(key) = array_at::<4>(buf, pos) else {
                return Ok(None);
            };
            pos += 4;
            Some(key)
        } else {
            None
        };
        let header = Self {
            fin,
            opcode,
            mask,
            payload_len,
        };
        Ok(Some((header, pos)))
    }

    /// The number of bytes [`FrameHeader::encode`] writes for this header.
    #[cfg(test)]
    pub fn encoded_len(&self) -> usize {
        let length_bytes = if self.payload_len <= MAX_LEN_7 {
            0
        } else if self.payload_len <= MAX_LEN_16 {
            2
        } else {
            8
        };
        let mask_bytes = if self.mask.is_some() { 4 } else { 0 };
        2 + length_bytes + mask_bytes
    }

    /// Writes the header into `dst` with the minimal length form; returns the bytes written
    /// (2 to [`MAX_HEADER_LEN`]).
    pub fn encode(&self, dst: &mut [u8; MAX_HEADER_LEN]) -> Result<usize, EncodeError> {
        let len = self.payload_len;
        if len >> 63 != 0 {
            return Err(EncodeError::PayloadTooLong { len });
        }
        let fin = if self.fin { FIN_BIT } else { 0 };
        dst[0] = fin | self.opcode.to_wire();
        let mask_bit = if self.mask.is_some() { MASK_BIT } else { 0 };
        let short = u8::try_from(len)
            .ok()
            .filter(|&b| u64::from(b) <= MAX_LEN_7);
        let mut pos = if let Some(short) = short {
            dst[1] = mask_bit | short;
            2
        } else if let Ok(medium) = u16::try_from(len) {
            dst[1] = mask_bit | LEN7_16BIT;
            dst[2..4].copy_from_slice(&medium.to_be_bytes());
            4
        } else {
            dst[1] = mask_bit | LEN7_64BIT;
            dst[2..10].copy_from_slice(&len.to_be_bytes());
            10
        };
        if let Some(key) = self.mask {
            dst[pos..pos + 4].copy_from_slice(&key);
            pos += 4;
        }
        Ok(pos)
    }
}

/// Writes a frame header into `dst` (see [`FrameHeader::encode`]); returns its length.
#[cfg(test)]
pub fn encode_frame_header(
    dst: &mut [u8; MAX_HEADER_LEN],
    fin: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    payload_len: u64,
) -> Result<usize, EncodeError> {
    FrameHeader {
        fin,
        opcode,
        mask,
        payload_len,
    }
    .encode(dst)
}

/// The `N` bytes at `buf[at..at + N]`, if present.
fn array_at<const N: usize>(buf: &[u8], at: usize) -> Option<[u8; N]> {
    buf.get(at..at.checked_add(N)?)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(header: FrameHeader) -> Vec<u8> {
        let mut dst = [0u8; MAX_HEADER_LEN];
        let n = header.encode(&mut dst).expect("encodable");
        assert_eq!(n, header.encoded_len());
        dst[..n].to_vec()
    }

    fn binary(payload_len: u64, mask: Option<[u8; 4]>) -> FrameHeader {
        FrameHeader {
            fin: true,
            opcode: OpCode::Binary,
            mask,
            payload_len,
        }
    }

    #[test]
    fn all_length_forms_round_trip() {
        let cases: [(u64, usize); 8] = [
            (0, 2),
            (1, 2),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
            (16 << 20, 10),
            ((1 << 63) - 1, 10),
        ];
        for (len, expected_len) in cases {
            for mask in [None, Some([1, 2, 3, 4])] {
                let header = binary(len, mask);
                let bytes = encode(header);
                let mask_len = if mask.is_some() { 4 } else { 0 };
                assert_eq!(bytes.len(), expected_len + mask_len, "len {len}");
                let parsed = FrameHeader::parse(&bytes).expect("valid");
                assert_eq!(parsed, Some((header, bytes.len())), "len {len}");
            }
        }
    }

    #[test]
    fn encodes_the_exact_wire_bytes() {
        assert_eq!(encode(binary(5, None)), [0x82, 5]);
        assert_eq!(encode(binary(126, None)), [0x82, 126, 0, 126]);
        assert_eq!(
            encode(binary(65536, None)),
            [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]
        );
        let text_fragment = FrameHeader {
            fin: false,
            opcode: OpCode::Text,
            mask: Some([0xA, 0xB, 0xC, 0xD]),
            payload_len: 3,
        };
        assert_eq!(encode(text_fragment), [0x01, 0x83, 0xA, 0xB, 0xC, 0xD]);
        let mut dst = [0u8; MAX_HEADER_LEN];
        let n = encode_frame_header(&mut dst, true, OpCode::Close, None, 2).expect("encodable");
        assert_eq!(&dst[..n], [0x88, 2]);
    }

    #[test]
    fn encode_rejects_lengths_with_the_msb_set() {
        let mut dst = [0u8; MAX_HEADER_LEN];
        assert_eq!(
            binary(1 << 63, None).encode(&mut dst),
            Err(EncodeError::PayloadTooLong { len: 1 << 63 })
        );
    }

    #[test]
    fn every_proper_prefix_asks_for_more_bytes() {
        for len in [0u64, 200, 70000] {
            let bytes = encode(binary(len, Some([9, 9, 9, 9])));
            for cut in 0..bytes.len() {
                assert_eq!(
                    FrameHeader::parse(&bytes[..cut]),
                    Ok(None),
                    "len {len} cut {cut}"
                );
            }
        }
    }

    #[test]
    fn reserved_bits_are_rejected() {
        for (b0, rsv) in [(0xC2, 0b100), (0xA2, 0b010), (0x92, 0b001), (0xF2, 0b111)] {
            assert_eq!(
                FrameHeader::parse(&[b0, 0]),
                Err(WsError::ReservedBitsSet { rsv })
            );
        }
    }

    #[test]
    fn unknown_opcodes_are_rejected() {
        for opcode in (0x3..=0x7).chain(0xB..=0xF) {
            assert_eq!(
                FrameHeader::parse(&[0x80 | opcode, 0]),
                Err(WsError::UnknownOpcode { opcode })
            );
        }
        for opcode in [0x0, 0x1, 0x2, 0x8, 0x9, 0xA] {
            let parsed = OpCode::from_wire(opcode).expect("defined");
            assert_eq!(parsed.to_wire(), opcode);
        }
    }

    #[test]
    fn fragmented_control_frames_are_rejected() {
        for opcode in [OpCode::Close, OpCode::Ping, OpCode::Pong] {
            assert_eq!(
                FrameHeader::parse(&[opcode.to_wire(), 0]),
                Err(WsError::FragmentedControlFrame { opcode })
            );
        }
    }

    #[test]
    fn control_frames_over_125_bytes_are_rejected_from_the_second_byte() {
        assert_eq!(
            FrameHeader::parse(&[0x89, 126]),
            Err(WsError::ControlFrameTooLarge {
                opcode: OpCode::Ping
            })
        );
        assert_eq!(
            FrameHeader::parse(&[0x88, 127]),
            Err(WsError::ControlFrameTooLarge {
                opcode: OpCode::Close
            })
        );
        assert_eq!(
            FrameHeader::parse(&[0x8A, 125]).map(|h| h.map(|(h, _)| h.payload_len)),
            Ok(Some(125))
        );
    }

    #[test]
    fn non_minimal_lengths_are_rejected() {
        assert_eq!(
            FrameHeader::parse(&[0x82, 126, 0, 125]),
            Err(WsError::NonMinimalLength {
                len: 125,
                length_bytes: 2
            })
        );
        assert_eq!(
            FrameHeader::parse(&[0x82, 126, 0, 0]),
            Err(WsError::NonMinimalLength {
                len: 0,
                length_bytes: 2
            })
        );
        assert_eq!(
            FrameHeader::parse(&[0x82, 127, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]),
            Err(WsError::NonMinimalLength {
                len: 65535,
                length_bytes: 8
            })
        );
        assert_eq!(
            FrameHeader::parse(&[0x82, 127, 0, 0, 0, 0, 0, 0, 0, 5]),
            Err(WsError::NonMinimalLength {
                len: 5,
                length_bytes: 8
            })
        );
    }

    #[test]
    fn a_64_bit_length_with_the_msb_set_is_rejected() {
        assert_eq!(
            FrameHeader::parse(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            Err(WsError::LengthMsbSet)
        );
    }

    #[test]
    fn roles_mask_in_one_direction_only() {
        assert!(Role::Client.masks_outgoing() && !Role::Client.expects_masked_incoming());
        assert!(!Role::Server.masks_outgoing() && Role::Server.expects_masked_incoming());
    }

    #[test]
    fn default_limits_match_the_documented_values() {
        let limits = Limits::default();
        assert_eq!(limits.max_frame_size, 16 * 1024 * 1024);
        assert_eq!(limits.max_message_size, 64 * 1024 * 1024);
    }
}
