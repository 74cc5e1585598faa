//! The self-hostable relay: the service side of Hybrid Connections (protocol Appendix A,
//! docs/relay.md). One worker per core; the listener registry is the only shared state.

pub mod admin;
mod auth;
pub mod config;
mod config_file;
mod control;
mod front;
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
pub mod server;
mod shared;
mod shed;
pub mod status_page;
mod stream;

pub use server::{start, RelayHandle, StartError};

use shared::{lock, Shared};

/// The configured hybrid connection a WebSocket path `/$hc/{path}[/suffix]` addresses: the
/// longest configured path that is a segment prefix of it, case-insensitively.
fn resolve_entity(shared: &Shared, request_path: &str) -> Option<String> {
    let rest = request_path.strip_prefix("/$hc/")?;
    longest_match(shared, rest)
}

/// The configured hybrid connection an HTTP path `/{path}[/suffix]` addresses.
fn resolve_http_entity(shared: &Shared, request_path: &str) -> Option<String> {
    longest_match(shared, request_path.strip_prefix('/')?)
}

fn longest_match(shared: &Shared, rest: &str) -> Option<String> {
    let registry = lock(&shared.registry);
    let paths: Vec<&str> = registry.paths().collect();
    let path = format!("/{rest}");
    crate::proto::hc::path::match_entity(&path, &paths).map(|m| paths[m.index].to_owned())
}
