//! hycod: an Azure Relay Hybrid Connections listener daemon and self-hostable relay.
//!
//! The protocol is described in `docs/protocol.md`; doc comments cite its sections as
//! "protocol §N".

pub mod auth;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod io;
pub(crate) mod logging;
pub mod metrics;
pub mod proto;
pub mod proxy;
pub mod relay;
pub mod runtime;
pub mod secret;
pub(crate) mod status_page;
pub mod tls;

/// The crate version, as reported by `--version` and the `build_info` metric.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
