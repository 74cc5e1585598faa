//! WebSocket (RFC 6455), sans-I/O.
//!
//! - [`frame`]: header parse/encode (§5.2), roles, opcodes, size limits;
//! - [`mask`]: payload masking (§5.3), word-wise with a byte-wise reference;
//! - [`close`]: close status codes and payload (§5.5.1, §7.4);
//! - [`decode`]: the in-place, streaming frame decoder (§5, §7.1.7);
//! - [`encode`]: frame encoding, in place with header headroom, and the per-connection
//!   [`Encoder`];
//! - [`error`]: one error variant per rule;
//! - [`handshake`]: the opening handshake (§4).

pub(crate) mod close;
pub mod decode;
pub mod encode;
pub(crate) mod error;
pub mod frame;
pub mod handshake;
pub mod mask;
mod utf8;

#[cfg(test)]
mod tests;

pub use close::{CloseCode, CloseFrame};
pub use decode::{Decoder, Event};
pub use encode::Encoder;
pub use error::{EncodeError, WsError};
pub use frame::{DataKind, Limits, OpCode, Role, MAX_HEADER_LEN};
pub use mask::{fresh_mask_key, mask_key};
