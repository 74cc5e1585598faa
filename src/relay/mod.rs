//! The self-hostable relay: the service side of Hybrid Connections (protocol Appendix A,
//! docs/relay.md). One worker per core; the listener registry is the only shared state.

pub(crate) mod admin;
mod answer_head;
mod auth;
mod broadcast;
pub mod config;
mod config_file;
mod control;
mod control_queue;
pub mod core;
#[cfg(test)]
mod counting_waker;
mod front;
mod handoff;
mod held;
mod host_check;
mod http;
mod ids;
mod linger;
pub mod metrics;
mod pump;
pub mod registry;
mod rendezvous;
mod respond;
pub mod self_signed;
pub mod server;
mod shared;
mod shed;
pub(crate) mod status_page;
mod stopping;
mod stream;

pub use server::{start, RelayHandle, StartError};
pub use stopping::Wake;
