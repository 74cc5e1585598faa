//! Sans-I/O protocol code: WebSocket (RFC 6455), HTTP/1.1 heads and bodies, and the Hybrid
//! Connections control-channel messages. Nothing here touches a socket or reads a clock.

#![forbid(unsafe_code)]

pub(crate) mod azbridge;
pub mod hc;
pub mod http1;
pub mod ws;
