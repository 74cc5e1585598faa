//! The preamble Azure Relay Bridge (`azbridge`) puts in front of a relayed TCP stream
//! (protocol §5.5), sans-I/O.
//!
//! The sender (`azbridge -L`) writes `[1, 0, mode, n]` and then `n` bytes of UTF-8 port name,
//! as two binary messages (`TcpLocalForwardBridge.cs` lines 203–213), and waits for 3 bytes
//! (lines 215–235): `[1, 0, 0]` lets the stream through, anything else or the end of the
//! stream makes it close. The listener (`azbridge -T`, `RemoteForwardBridge.cs` lines 141–238)
//! answers `[1, 0, mode]` to a preamble it routes, `[0, 0, 0]` to a version other than 1.0,
//! `[0, 0, 255]` to datagram mode for a TCP forwarder, and closes without an answer when no
//! forwarder has the port name. The format is unchanged from azbridge v0.1.4 (commit
//! `ae0c563`, 2018) to v0.16.1 (commit `693a395`, 2025); the port name travels only here, never
//! in a header or an `sb-hc-*` query item.
//!
//! The bytes travel as WebSocket payload, so [`collect`] reads them out of whole frames and
//! tells the driver where the WebSocket stream continues: the pump that carries the rest
//! starts at a frame boundary, and payload bytes after the preamble in its last frame go to
//! the target first.

use std::fmt;
use std::ops::Range;

use super::ws::frame::{FrameHeader, OpCode};
use super::ws::WsError;

/// Mode byte: a byte stream (TCP or a Unix socket).
pub(crate) const MODE_STREAM: u8 = 0;
/// Mode byte: datagrams (UDP), each with a 2-byte length.
pub(crate) const MODE_DATAGRAM: u8 = 1;
/// The answer that lets a stream through (`RemoteForwardBridge.cs` line 230).
pub(crate) const ACCEPTED: [u8; 3] = [1, 0, MODE_STREAM];
/// The answer to a version other than 1.0 (`RemoteForwardBridge.cs` line 191).
pub(crate) const UNSUPPORTED_VERSION: [u8; 3] = [0, 0, 0];
/// The answer to datagram mode for a TCP forwarder (`RemoteForwardBridge.cs` line 223).
pub(crate) const DATAGRAM_TO_STREAM: [u8; 3] = [0, 0, 255];
/// The longest port name: its length travels in one byte.
pub(crate) const MAX_PORT_NAME_LEN: usize = 255;

/// Whether `name` is a port name azbridge accepts (`Constants.RelayNameRegex`,
/// `^[0-9A-Za-z/_\-\.]+$`) that fits the preamble.
pub(crate) fn is_valid_port_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_PORT_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'.'))
}

/// The sender's preamble for `port_name` in stream mode. `None` when the name is longer than
/// [`MAX_PORT_NAME_LEN`] bytes.
pub(crate) fn preamble(port_name: &str) -> Option<Vec<u8>> {
    let len = u8::try_from(port_name.len()).ok()?;
    let mut out = Vec::with_capacity(4 + port_name.len());
    out.extend_from_slice(&[1, 0, MODE_STREAM, len]);
    out.extend_from_slice(port_name.as_bytes());
    Some(out)
}

/// A sender's preamble as the listener reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Preamble {
    /// Version 1.0 with this mode and port name (invalid UTF-8 replaced, as .NET's decoder does).
    V1 { mode: u8, port_name: String },
    /// Another version: answered with [`UNSUPPORTED_VERSION`].
    UnsupportedVersion([u8; 3]),
}

/// How many preamble bytes the listener needs, given the first ones: 3 to see the version,
/// then 4 + the port name's length.
pub(crate) fn preamble_len(collected: &[u8]) -> usize {
    match collected {
        [1, 0, MODE_STREAM | MODE_DATAGRAM, n, ..] => 4 + usize::from(*n),
        [1, 0, MODE_STREAM | MODE_DATAGRAM] | [1, 0] | [1] | [] => 4,
        _ => 3,
    }
}

/// Reads the preamble from exactly [`preamble_len`] bytes.
pub(crate) fn parse_preamble(bytes: &[u8]) -> Preamble {
    match bytes {
        [1, 0, mode @ (MODE_STREAM | MODE_DATAGRAM), _, name @ ..] => Preamble::V1 {
            mode: *mode,
            port_name: String::from_utf8_lossy(name).into_owned(),
        },
        _ => {
            let mut version = [0u8; 3];
            let n = bytes.len().min(3);
            version[..n].copy_from_slice(&bytes[..n]);
            Preamble::UnsupportedVersion(version)
        }
    }
}

/// What a listener's 3-byte answer means to the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// `[1, 0, 0]`: the stream goes through.
    Accepted,
    /// Anything else (`TcpLocalForwardBridge.cs` line 229): the listener refused.
    Refused([u8; 3]),
}

impl Answer {
    /// Reads an answer.
    pub(crate) fn parse(bytes: [u8; 3]) -> Self {
        if bytes == ACCEPTED {
            Self::Accepted
        } else {
            Self::Refused(bytes)
        }
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Accepted => f.write_str("accepted"),
            Self::Refused(UNSUPPORTED_VERSION) => {
                f.write_str("the listener does not support preamble version 1.0 ([0, 0, 0])")
            }
            Self::Refused([0, 0, 1]) => {
                f.write_str("the port name belongs to a UDP forwarder on the listener ([0, 0, 1])")
            }
            Self::Refused(DATAGRAM_TO_STREAM) => {
                f.write_str("the listener refused datagram mode for a TCP forwarder ([0, 0, 255])")
            }
            Self::Refused(other) => write!(f, "the listener answered {other:?}"),
        }
    }
}

/// Payload bytes at the start of a WebSocket stream, read out of whole frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Collected {
    /// The wanted bytes.
    pub bytes: Vec<u8>,
    /// Payload bytes after them in the same frame: stream data, in the scanned buffer.
    pub rest: Range<usize>,
    /// Where the next frame starts in the scanned buffer.
    pub consumed: usize,
}

/// Why the wanted bytes cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CollectError {
    /// The frames break a WebSocket rule.
    Frame(WsError),
    /// A masked frame: the relay's frames to a WebSocket client are never masked.
    Masked,
    /// A text frame where binary data was expected.
    Text,
    /// The wanted bytes end inside a message that goes on in another frame; the stream
    /// after them could not be handed on at a message boundary.
    EndsInsideMessage,
    /// The peer closed the stream before the bytes were complete.
    Closed,
}

impl fmt::Display for CollectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Frame(e) => e.fmt(f),
            Self::Masked => f.write_str("a masked frame from the relay"),
            Self::Text => f.write_str("a text message where the preamble was expected"),
            Self::EndsInsideMessage => {
                f.write_str("the preamble ends inside a message that continues")
            }
            Self::Closed => f.write_str("the stream closed before the preamble was complete"),
        }
    }
}

impl std::error::Error for CollectError {}

/// Scans the whole frames at the start of `buf` (bytes from the relay, unmasked) for the first
/// `wanted(collected so far)` payload bytes. `Ok(None)`: more bytes are needed. Control frames
/// are skipped; a close ends the scan with [`CollectError::Closed`].
pub(crate) fn collect(
    buf: &[u8],
    wanted: impl Fn(&[u8]) -> usize,
) -> Result<Option<Collected>, CollectError> {
    let mut bytes = Vec::new();
    let mut at = 0;
    loop {
        let Some((header, header_len)) =
            FrameHeader::parse(&buf[at..]).map_err(CollectError::Frame)?
        else {
            return Ok(None);
        };
        if header.mask.is_some() {
            return Err(CollectError::Masked);
        }
        let payload_len = usize::try_from(header.payload_len).unwrap_or(usize::MAX);
        let start = at + header_len;
        let Some(end) = start
            .checked_add(payload_len)
            .filter(|end| *end <= buf.len())
        else {
            return Ok(None);
        };
        match header.opcode {
            OpCode::Close => return Err(CollectError::Closed),
            OpCode::Text => return Err(CollectError::Text),
            OpCode::Ping | OpCode::Pong => {}
            OpCode::Binary | OpCode::Continuation => {
                let mut payload = start..end;
                while bytes.len() < wanted(&bytes) && !payload.is_empty() {
                    let take = (wanted(&bytes) - bytes.len()).min(payload.len());
                    bytes.extend_from_slice(&buf[payload.start..payload.start + take]);
                    payload.start += take;
                }
                if bytes.len() >= wanted(&bytes) {
                    if !header.fin {
                        return Err(CollectError::EndsInsideMessage);
                    }
                    return Ok(Some(Collected {
                        bytes,
                        rest: payload,
                        consumed: end,
                    }));
                }
            }
        }
        at = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unmasked frame, as the relay sends it to a listener or a sender.
    fn frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![if fin { 0x80 } else { 0 } | opcode];
        assert!(payload.len() < 126);
        out.push(payload.len() as u8);
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn the_preamble_is_what_tcp_local_forward_bridge_writes() {
        // TcpLocalForwardBridge.cs lines 204–213: major 1, minor 0, stream mode 0, length,
        // then the UTF-8 port name.
        assert_eq!(
            preamble("3300").expect("short"),
            [1, 0, 0, 4, b'3', b'3', b'0', b'0']
        );
        assert_eq!(preamble(&"p".repeat(255)).expect("fits").len(), 259);
        assert_eq!(preamble(&"p".repeat(256)), None);
    }

    #[test]
    fn port_names_follow_azbridge_s_relay_name_rule() {
        for ok in ["3300", "sap.gw", "a/b_c-d", &"9".repeat(255)] {
            assert!(is_valid_port_name(ok), "{ok}");
        }
        for bad in ["", "a b", "ü", "x:1", &"9".repeat(256)] {
            assert!(!is_valid_port_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_listener_reads_azbridge_s_two_messages() {
        // Written as two binary messages: the 4-byte header, then the name.
        let mut wire = frame(true, 2, &[1, 0, 0, 4]);
        wire.extend(frame(true, 2, b"3300"));
        wire.extend(frame(true, 2, b"data"));
        assert_eq!(collect(&wire[..3], preamble_len), Ok(None));
        assert_eq!(collect(&wire[..7], preamble_len), Ok(None));
        let found = collect(&wire, preamble_len)
            .expect("valid")
            .expect("complete");
        assert_eq!(found.bytes, [1, 0, 0, 4, b'3', b'3', b'0', b'0']);
        assert!(found.rest.is_empty());
        assert_eq!(found.consumed, 12, "the data message is left for the pump");
        assert_eq!(
            parse_preamble(&found.bytes),
            Preamble::V1 {
                mode: MODE_STREAM,
                port_name: "3300".into()
            }
        );
    }

    #[test]
    fn data_after_the_preamble_in_its_frame_is_handed_on() {
        let mut wire = frame(true, 2, &[1, 0, 0, 2, b'g', b'w', b'h', b'i']);
        wire.extend(frame(false, 2, b"next"));
        let found = collect(&wire, preamble_len)
            .expect("valid")
            .expect("complete");
        assert_eq!(&wire[found.rest.clone()], b"hi");
        assert_eq!(found.consumed, 10);
    }

    #[test]
    fn pings_are_skipped_and_fragments_joined() {
        let mut wire = frame(false, 2, &[1, 0]);
        wire.extend(frame(true, 9, b"ping"));
        wire.extend(frame(true, 0, &[0, 1, b'x']));
        let found = collect(&wire, preamble_len)
            .expect("valid")
            .expect("complete");
        assert_eq!(
            parse_preamble(&found.bytes),
            Preamble::V1 {
                mode: MODE_STREAM,
                port_name: "x".into()
            }
        );
    }

    #[test]
    fn another_version_is_known_after_three_bytes() {
        let wire = frame(true, 2, &[2, 0, 0]);
        let found = collect(&wire, preamble_len)
            .expect("valid")
            .expect("complete");
        assert_eq!(
            parse_preamble(&found.bytes),
            Preamble::UnsupportedVersion([2, 0, 0])
        );
        let wire = frame(true, 2, &[1, 0, 7]);
        let found = collect(&wire, preamble_len)
            .expect("valid")
            .expect("complete");
        assert_eq!(
            parse_preamble(&found.bytes),
            Preamble::UnsupportedVersion([1, 0, 7])
        );
    }

    #[test]
    fn a_preamble_that_ends_inside_a_message_or_a_close_is_refused() {
        let wire = frame(false, 2, &[1, 0, 0, 1, b'a']);
        assert_eq!(
            collect(&wire, preamble_len),
            Err(CollectError::EndsInsideMessage)
        );
        let mut wire = frame(true, 2, &[1, 0]);
        wire.extend(frame(true, 8, &[0x03, 0xe8]));
        assert_eq!(collect(&wire, preamble_len), Err(CollectError::Closed));
        assert_eq!(
            collect(&frame(true, 1, b"{}"), preamble_len),
            Err(CollectError::Text)
        );
        let masked = [0x82, 0x81, 1, 2, 3, 4, 0];
        assert_eq!(collect(&masked, preamble_len), Err(CollectError::Masked));
    }

    #[test]
    fn answers_are_read_as_tcp_local_forward_bridge_reads_them() {
        assert_eq!(Answer::parse([1, 0, 0]), Answer::Accepted);
        // TcpLocalForwardBridge.cs line 229 accepts only [1, 0, 0]; a datagram
        // acknowledgement [1, 0, 1] refuses a TCP forwarder too.
        assert_eq!(Answer::parse([1, 0, 1]), Answer::Refused([1, 0, 1]));
        assert!(Answer::parse(UNSUPPORTED_VERSION)
            .to_string()
            .contains("version 1.0"));
        let wire = frame(true, 2, &[1, 0, 0]);
        let found = collect(&wire, |_| 3).expect("valid").expect("complete");
        assert_eq!(found.bytes, ACCEPTED);
    }
}
