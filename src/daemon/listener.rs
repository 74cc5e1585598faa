//! The listener side of the daemon: one control channel per assigned hybrid connection on a
//! worker ([`control`]), the relayed streams it accepts ([`stream`]), the relayed HTTP requests it
//! receives ([`http`]) and the HTTP/1.1 client that carries them to the target ([`upstream`]).
//! Everything here runs on one worker and shares that worker's [`context::HcContext`]; admission
//! against `[limits]` and the answers an overloaded channel gives live here too.

pub mod admission;
pub mod context;
pub(super) mod control;
pub(super) mod hc_series;
pub mod http;
pub(super) mod overload;
pub mod stream;
pub(super) mod target_reset;
pub(super) mod unreadable;
pub mod upstream;
