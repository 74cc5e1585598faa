//! The relay's decisions, sans-I/O (architecture "The relay", docs/relay.md): what a request is
//! admitted to or refused with, which listener gets a stream or a request and which way it
//! travels, which answer belongs to which request, and how a SIGTERM'd relay stops. The async
//! code around it (`server`, `control`, `stream`, `http`, `rendezvous`) reads sockets, passes
//! what it read and the time in, and carries out what comes back.
//!
//! Nothing here touches a socket, a clock, a lock or a task: no `monoio`, `flume`, `io` or
//! `runtime` import, so every rule is unit-tested with values (`tests.rs`).
//!
//! * [`admission`] — request-target, hybrid connection, token, listen path: admitted or refused.
//! * [`refusal`] — every refusal's reason (a label for logs and metrics), status, code and text.
//! * [`pairing`] — listener picking, held rendezvous, control channel or rendezvous, matching.
//! * [`pending`] — relayed requests waiting for their listener's `response`.
//! * [`drain`] — the phases after SIGTERM: stop accepting, let work finish, close, exit.

pub mod admission;
pub mod drain;
pub mod pairing;
pub mod pending;
pub mod refusal;

#[cfg(test)]
mod tests;

pub use admission::{Admission, Admitted, Door, Knock, TokenCheck};
pub use refusal::{Refusal, RefusalReason, Tracked};
