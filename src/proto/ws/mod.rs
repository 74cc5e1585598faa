//! WebSocket (RFC 6455), sans-I/O.

pub mod handshake;
