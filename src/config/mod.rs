//! hycod's configuration (architecture §5): a TOML file read into serde structs that reject
//! unknown keys ([`raw`]), converted once into the typed [`Config`] ([`typed`]).
//!
//! The file holds `[[hybrid_connection]]` sections (the listener side), `[[forward]]` sections
//! (the sender side, protocol §7.1), or both. Every error is a [`ConfigError`] naming the key path
//! and the reason, e.g. `hybrid_connection[1].target: expected tcp://host:port, got "db01"
//! (...)`. Connection strings (protocol §3.5) come from `connection_string`,
//! `connection_string_file` or `connection_string_env` and are held as
//! [`crate::secret::Secret`]s throughout; the effective configuration [`render`]s them with the
//! key redacted.

mod connection_source;
pub mod duration;
mod error;
mod forward;
mod hybrid_connection;
pub mod limits;
mod raw;
pub mod render;
mod shared_keys;
mod toml_errors;
mod typed;
mod urls;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::Path;

pub use crate::auth::connection_string::entity_path_problem;
pub use connection_source::{read_secret_env, read_secret_file, EnvLookup};
pub use error::{without_credentials, ConfigError, ConfigWarning, Reason, UrlProblem, Warning};
pub use limits::Limits;
pub use typed::{
    Admin, Config, ConnectionStringSource, Forward, HttpTarget, HybridConnection, Log, LogFormat,
    LogLevel, ProxyAddress, Relay, Runtime, Shutdown, TcpTarget, Workers,
    DEFAULT_ADMIN_HEAD_TIMEOUT, DEFAULT_REQUEST_BUFFER, DEFAULT_SHUTDOWN_GRACE, DEFAULT_TOKEN_TTL,
    MAX_LISTENERS, MIN_ADMIN_HEAD_TIMEOUT, MIN_TOKEN_TTL,
};
pub use urls::{HTTP_TARGET_FORM, PROXY_FORM, RELAY_URL_FORM, TCP_TARGET_FORM};

use raw::{RawConfig, RawForward, RawRuntime};

/// The keys of a single `[[forward]]` given on the command line (`hycod forward`).
#[derive(Debug, Clone)]
pub struct ForwardFlags {
    /// `listen`.
    pub listen: SocketAddr,
    /// `connection_string_file`.
    pub connection_string_file: std::path::PathBuf,
    /// `entity_path`.
    pub entity_path: Option<String>,
    /// `relay_url`.
    pub relay_url: Option<String>,
    /// `relay_ca_file`.
    pub relay_ca_file: Option<std::path::PathBuf>,
    /// `token_ttl`.
    pub token_ttl: Option<String>,
    /// `[runtime] workers`.
    pub workers: usize,
}

/// The name of the forward [`Config::single_forward`] configures.
pub const SINGLE_FORWARD_NAME: &str = "forward";

impl Config {
    /// Reads and validates the configuration file at `path`. Relative file names inside it
    /// (`connection_string_file`, `relay_ca_file`) are resolved against the file's directory;
    /// `connection_string_env` reads the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read_config_file(path)?;
        let base_dir = path.parent().unwrap_or(Path::new("."));
        Self::from_toml_str(&text, base_dir)
    }

    /// Validates configuration text; relative file names are resolved against `base_dir`.
    pub fn from_toml_str(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
        Self::from_toml_str_with_env(text, base_dir, &|name| std::env::var(name))
    }

    /// [`Config::from_toml_str`] with `env` standing in for the process environment.
    pub fn from_toml_str_with_env(
        text: &str,
        base_dir: &Path,
        env: EnvLookup<'_>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = parse_toml(text)?;
        convert(&raw, base_dir, env)
    }
}

/// Reads TOML `text` into `T`, serde structs that reject unknown keys: a syntax error, an
/// unknown key or a value of the wrong type becomes a [`ConfigError`] naming the key path
/// (`rule[1].key_fil`) and never quoting a string value. Shared by every configuration file
/// hycod reads.
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    // Parsing as a plain table first separates syntax errors from unknown keys and wrong
    // types, which the typed pass reports with their spans.
    text.parse::<toml::Table>()
        .map_err(|error| toml_errors::syntax_error(text, &error))?;
    toml::from_str(text).map_err(|error| toml_errors::value_error(text, &error))
}

/// Reads a configuration file's text; the error names the file.
pub fn read_config_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|error| {
        ConfigError::new(
            path.display().to_string(),
            Reason::ReadFile {
                io: error.to_string(),
            },
        )
    })
}

impl Config {
    /// A configuration with one forward named [`SINGLE_FORWARD_NAME`] and nothing else,
    /// validated exactly like a `[[forward]]` section (errors name `forward[0].KEY`). Relative
    /// files are resolved against the working directory.
    pub fn single_forward(flags: ForwardFlags) -> Result<Config, ConfigError> {
        let raw = RawConfig {
            runtime: RawRuntime {
                workers: Some(flags.workers),
            },
            forward: vec![RawForward {
                name: Some(SINGLE_FORWARD_NAME.to_owned()),
                listen: Some(flags.listen.to_string()),
                connection_string_file: Some(flags.connection_string_file),
                entity_path: flags.entity_path,
                relay_url: flags.relay_url,
                relay_ca_file: flags.relay_ca_file,
                token_ttl: flags.token_ttl,
                ..RawForward::default()
            }],
            ..RawConfig::default()
        };
        convert(&raw, Path::new("."), &|name| std::env::var(name))
    }
}

/// Raw → typed, section by section.
fn convert(raw: &RawConfig, base_dir: &Path, env: EnvLookup<'_>) -> Result<Config, ConfigError> {
    let workers = match raw.runtime.workers.and_then(NonZeroUsize::new) {
        None => Workers::PerCore,
        Some(count) => Workers::Fixed(count),
    };
    let listen = raw
        .admin
        .listen
        .as_deref()
        .map(|text| {
            text.trim().parse::<SocketAddr>().map_err(|error| {
                ConfigError::new(
                    "admin.listen",
                    Reason::InvalidSocketAddr {
                        got: text.to_owned(),
                        error,
                    },
                )
            })
        })
        .transpose()?;
    let head_timeout = match raw.admin.head_timeout.as_deref() {
        None => DEFAULT_ADMIN_HEAD_TIMEOUT,
        Some(text) => {
            let got = duration::parse(text).map_err(|error| {
                ConfigError::new(
                    "admin.head_timeout",
                    Reason::InvalidDuration {
                        got: text.to_owned(),
                        error,
                    },
                )
            })?;
            if got < MIN_ADMIN_HEAD_TIMEOUT {
                return Err(ConfigError::new(
                    "admin.head_timeout",
                    Reason::DurationTooShort {
                        got,
                        min: MIN_ADMIN_HEAD_TIMEOUT,
                    },
                ));
            }
            got
        }
    };
    let grace = match raw.shutdown.grace.as_deref() {
        None => DEFAULT_SHUTDOWN_GRACE,
        Some(text) => duration::parse(text).map_err(|error| {
            ConfigError::new(
                "shutdown.grace",
                Reason::InvalidDuration {
                    got: text.to_owned(),
                    error,
                },
            )
        })?,
    };
    if raw.hybrid_connection.is_empty() && raw.forward.is_empty() {
        return Err(ConfigError::new(
            "hybrid_connection",
            Reason::NothingToServe,
        ));
    }
    let limits = limits::convert(&raw.limits)?;
    let mut hybrid_connections = Vec::with_capacity(raw.hybrid_connection.len());
    let mut warnings = Vec::new();
    let mut first_index_of_name: HashMap<String, usize> = HashMap::new();
    for (index, raw_hc) in raw.hybrid_connection.iter().enumerate() {
        let (hc, hc_warnings) = hybrid_connection::convert(raw_hc, index, base_dir, env, limits)?;
        if let Some(&first_index) = first_index_of_name.get(&hc.name) {
            return Err(ConfigError::new(
                format!("hybrid_connection[{index}].name"),
                Reason::DuplicateName {
                    name: hc.name,
                    first_index,
                },
            ));
        }
        first_index_of_name.insert(hc.name.clone(), index);
        warnings.extend(hc_warnings);
        hybrid_connections.push(hc);
    }
    let forwards = forwards(raw, base_dir, env, &mut warnings)?;
    Ok(Config {
        runtime: Runtime { workers },
        admin: Admin {
            listen,
            head_timeout,
        },
        log: Log {
            format: raw.log.format.unwrap_or_default(),
            level: raw.log.level.unwrap_or_default(),
        },
        shutdown: Shutdown { grace },
        limits,
        hybrid_connections,
        forwards,
        warnings,
    })
}

/// Every `[[forward]]`: names unique, and no two on the same address (port 0 excepted, as the
/// system gives each its own port).
fn forwards(
    raw: &RawConfig,
    base_dir: &Path,
    env: EnvLookup<'_>,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<Vec<Forward>, ConfigError> {
    let mut forwards: Vec<Forward> = Vec::with_capacity(raw.forward.len());
    for (index, raw_forward) in raw.forward.iter().enumerate() {
        let (forward, forward_warnings) = forward::convert(raw_forward, index, base_dir, env)?;
        if let Some(first_index) = forwards.iter().position(|f| f.name == forward.name) {
            return Err(ConfigError::new(
                format!("forward[{index}].name"),
                Reason::DuplicateForwardName {
                    name: forward.name,
                    first_index,
                },
            ));
        }
        let shares_listen = |f: &Forward| f.listen == forward.listen;
        if forward.listen.port() != 0 {
            if let Some(first_index) = forwards.iter().position(shares_listen) {
                return Err(ConfigError::new(
                    format!("forward[{index}].listen"),
                    Reason::DuplicateListen {
                        listen: forward.listen,
                        first_index,
                    },
                ));
            }
        }
        warnings.extend(forward_warnings);
        forwards.push(forward);
    }
    Ok(forwards)
}
