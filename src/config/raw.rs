//! The configuration file exactly as written: serde structs that reject unknown keys
//! (architecture §5). Values stay as text here; [`super::convert`] turns them into typed values
//! once.
//!
//! Every key is optional at this level so that a missing required key is reported by the
//! conversion, with its full key path, rather than by serde.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

use crate::secret::Secret;

use super::typed::{LogFormat, LogLevel, Peer};

/// The whole file.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    /// Glob patterns of drop-in files (see [`super::include`]).
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub runtime: RawRuntime,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub log: RawLog,
    #[serde(default)]
    pub shutdown: RawShutdown,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub tls: RawTls,
    #[serde(default)]
    pub hybrid_connection: Vec<RawHybridConnection>,
    #[serde(default)]
    pub forward: Vec<RawForward>,
}

/// `[tls]`: the default trust store of every hybrid connection and forward.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub roots: Option<String>,
}

/// `[runtime]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRuntime {
    pub workers: Option<usize>,
}

/// `[admin]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    pub listen: Option<String>,
    pub head_timeout: Option<String>,
}

/// `[log]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLog {
    pub format: Option<LogFormat>,
    pub level: Option<LogLevel>,
}

/// `[shutdown]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawShutdown {
    pub grace: Option<String>,
}

/// `[limits]`: counts and sizes as integers, times as duration texts.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub max_streams_per_hybrid_connection: Option<usize>,
    pub max_requests_per_hybrid_connection: Option<usize>,
    pub max_streams_per_worker: Option<usize>,
    pub max_requests_per_worker: Option<usize>,
    pub stream_buffer: Option<usize>,
    pub max_frame: Option<u64>,
    pub max_message: Option<u64>,
    pub max_http_head: Option<usize>,
    pub max_header_count: Option<usize>,
    pub handshake_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    pub write_stall_timeout: Option<String>,
}

/// One `[[hybrid_connection]]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHybridConnection {
    pub name: Option<String>,
    pub connection_string: Option<SecretText>,
    pub connection_string_file: Option<PathBuf>,
    pub connection_string_env: Option<String>,
    pub entity_path: Option<String>,
    pub target: Option<String>,
    pub http_target: Option<String>,
    pub listeners: Option<usize>,
    pub relay_url: Option<String>,
    pub relay_ca_file: Option<PathBuf>,
    pub tls_roots: Option<String>,
    pub proxy: Option<String>,
    pub proxy_password_file: Option<PathBuf>,
    pub proxy_password_env: Option<String>,
    pub token_ttl: Option<String>,
    pub ping_interval: Option<String>,
    pub stream_ping_interval: Option<String>,
    pub rendezvous_hosts: Option<Vec<String>>,
    pub max_streams: Option<usize>,
    pub max_requests: Option<usize>,
    pub request_buffer: Option<usize>,
    pub peer: Option<Peer>,
    pub targets: Option<BTreeMap<String, String>>,
}

/// One `[[forward]]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawForward {
    pub name: Option<String>,
    pub listen: Option<String>,
    pub connection_string: Option<SecretText>,
    pub connection_string_file: Option<PathBuf>,
    pub connection_string_env: Option<String>,
    pub entity_path: Option<String>,
    pub relay_url: Option<String>,
    pub relay_ca_file: Option<PathBuf>,
    pub tls_roots: Option<String>,
    pub proxy: Option<String>,
    pub proxy_password_file: Option<PathBuf>,
    pub proxy_password_env: Option<String>,
    pub token_ttl: Option<String>,
    pub stream_ping_interval: Option<String>,
    pub peer: Option<Peer>,
    pub port_name: Option<String>,
}

/// A string value that is a secret from the moment it is read.
pub(super) struct SecretText(pub Secret);

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|text| Self(Secret::new(text)))
    }
}
