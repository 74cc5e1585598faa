//! One Hybrid Connections channel, sans-I/O: the rules every WebSocket that carries the protocol
//! shares — listener control channels (protocol §4) and request rendezvous (§6.3) — on the
//! daemon's side and on the relay's.
//!
//! - [`Inbound`] turns decoded frames into what the protocol deals in: whole control messages
//!   (one text message, at most 64 KiB across its fragments, [`MAX_CONTROL_MESSAGE_LEN`]), body
//!   chunks passed through uncollected, pings answered, and the peer's close;
//! - [`Outbound`] builds every frame this side sends on the stateful [`Encoder`] — masked when
//!   this side is the client, messages sequenced — and refuses anything after a close was sent,
//!   and anything but the closing reply after the peer's close arrived (RFC 6455 §5.5.1);
//! - [`ChannelError`]: one variant per rule, with the close code that fails the channel.
//!
//! Overflow: a text message over 64 KiB fails the channel with 1009, on every channel
//! (docs/architecture.md "One channel layer").
//!
//! [`Encoder`]: crate::proto::ws::Encoder
//! [`MAX_CONTROL_MESSAGE_LEN`]: crate::proto::hc::messages::MAX_CONTROL_MESSAGE_LEN

mod error;
mod inbound;
mod outbound;

#[cfg(test)]
mod tests;

pub use error::ChannelError;
pub use inbound::{Inbound, Received};
pub use outbound::{reply_code, MaskKeys, Outbound};
