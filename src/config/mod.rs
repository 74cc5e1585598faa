//! hycod's configuration (architecture §5): a TOML file read into serde structs that reject
//! unknown keys ([`raw`]), converted once into the typed [`Config`] ([`typed`]).
//!
//! The file holds `[[hybrid_connection]]` sections (the listener side), `[[forward]]` sections
//! (the sender side, protocol §7.1), or both, and may `include` drop-in files holding more of them
//! ([`include`]). Every error is a [`ConfigError`] naming the key path
//! and the reason, e.g. `hybrid_connection[1].target: expected tcp://host:port, got "db01"
//! (...)`. Connection strings (protocol §3.5) come from `connection_string`,
//! `connection_string_file` or `connection_string_env` and are held as
//! [`crate::secret::Secret`]s throughout; the effective configuration [`render`]s them with the
//! key redacted.

mod connection_source;
pub(crate) mod duration;
mod error;
mod expected_keys;
mod forward;
mod hybrid_connection;
mod include;
pub(crate) mod limits;
mod raw;
pub(crate) mod render;
mod shared_keys;
mod toml_errors;
mod typed;
mod urls;

#[cfg(test)]
mod proxy_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod trust_tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::Path;

pub use crate::auth::connection_string::entity_path_problem;
pub use connection_source::{read_secret_env, read_secret_file, EnvLookup};
pub use error::{without_credentials, ConfigError, ConfigWarning, Reason, UrlProblem, Warning};
pub use include::Sources;
pub use limits::Limits;
pub use typed::{
    Admin, Config, ConnectionStringSource, Forward, HttpTarget, HybridConnection, Log, LogFormat,
    LogLevel, PasswordSource, Peer, ProxyAddress, ProxyPassword, ProxySetting, Relay, Runtime,
    Shutdown, TcpTarget, Workers, DEFAULT_ADMIN_HEAD_TIMEOUT, DEFAULT_REQUEST_BUFFER,
    DEFAULT_SHUTDOWN_GRACE, DEFAULT_TOKEN_TTL, MAX_LISTENERS, MIN_ADMIN_HEAD_TIMEOUT,
    MIN_TOKEN_TTL,
};
pub use urls::{HTTP_TARGET_FORM, PROXY_FORM, RELAY_URL_FORM, TCP_TARGET_FORM};

use include::DropIn;
use raw::{RawConfig, RawForward, RawHybridConnection, RawRuntime};

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
    /// `tls_roots`.
    pub tls_roots: Option<String>,
    /// `token_ttl`.
    pub token_ttl: Option<String>,
    /// `peer`.
    pub peer: Option<Peer>,
    /// `port_name`.
    pub port_name: Option<String>,
    /// `proxy`.
    pub proxy: Option<String>,
    /// `proxy_password_file`.
    pub proxy_password_file: Option<std::path::PathBuf>,
    /// `proxy_password_env`.
    pub proxy_password_env: Option<String>,
    /// `[runtime] workers`.
    pub workers: usize,
}

/// The name of the forward [`Config::single_forward`] configures.
pub const SINGLE_FORWARD_NAME: &str = "forward";

impl Config {
    /// Reads and validates the configuration file at `path` and the files it includes. Relative
    /// file names inside a file (`connection_string_file`, `relay_ca_file`, `include`) are
    /// resolved against that file's directory; `connection_string_env` reads the process
    /// environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = read_config_file(path)?;
        let base_dir = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base_dir, Some(path), &|name| std::env::var(name))
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
        Self::parse(text, base_dir, None, env)
    }

    /// The text of the main file, `main_file` when it was read from one.
    fn parse(
        text: &str,
        base_dir: &Path,
        main_file: Option<&Path>,
        env: EnvLookup<'_>,
    ) -> Result<Config, ConfigError> {
        let raw: RawConfig = parse_toml(text)?;
        let drop_ins = include::read_all(&raw.include, base_dir)?;
        convert(&raw, base_dir, main_file, &drop_ins, env)
    }
}

/// Reads TOML `text` into `T`, serde structs that reject unknown keys: a syntax error, an
/// unknown key or a value of the wrong type becomes a [`ConfigError`] naming the key path
/// (`rule[1].key_fil`) and never quoting a string value. Shared by every configuration file
/// hycod reads.
pub fn parse_toml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    toml_errors::parse(text)
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
                tls_roots: flags.tls_roots,
                token_ttl: flags.token_ttl,
                peer: flags.peer,
                port_name: flags.port_name,
                proxy: flags.proxy,
                proxy_password_file: flags.proxy_password_file,
                proxy_password_env: flags.proxy_password_env,
                ..RawForward::default()
            }],
            ..RawConfig::default()
        };
        convert(&raw, Path::new("."), None, &[], &|name| std::env::var(name))
    }
}

/// The registrations written in one file: the main file (`drop_in` is `None`) or a drop-in.
struct Part<'a> {
    drop_in: Option<&'a Path>,
    /// The file, if known: the main file may come from text alone.
    file: Option<&'a Path>,
    base_dir: &'a Path,
    hybrid_connections: &'a [RawHybridConnection],
    forwards: &'a [RawForward],
}

impl Part<'_> {
    /// Attaches the drop-in's file to an error about one of its keys.
    fn locate(&self, error: ConfigError) -> ConfigError {
        match self.drop_in {
            Some(file) => error.in_file(file),
            None => error,
        }
    }

    /// Attaches the drop-in's file to a warning's key path.
    fn locate_warnings(&self, warnings: Vec<ConfigWarning>) -> Vec<ConfigWarning> {
        let Some(file) = self.drop_in else {
            return warnings;
        };
        warnings
            .into_iter()
            .map(|warning| ConfigWarning {
                path: format!("{}: {}", file.display(), warning.path),
                ..warning
            })
            .collect()
    }
}

/// Where a section was written: the index of its [`Part`] and its index there.
#[derive(Clone, Copy)]
struct Origin {
    part: usize,
    index: usize,
}

/// The error for a section that repeats what `first` already has: `duplicate` names `first`'s
/// index, and its file when that is another file.
fn duplicate_of(
    first: Origin,
    at: Origin,
    parts: &[Part<'_>],
    path: String,
    duplicate: Reason,
) -> ConfigError {
    let reason = if first.part == at.part {
        duplicate
    } else {
        Reason::InAnotherFile {
            duplicate: Box::new(duplicate),
            file: parts[first.part].file.map(Path::to_path_buf),
        }
    };
    parts[at.part].locate(ConfigError::new(path, reason))
}

/// Raw → typed, section by section; the main file's registrations first, then each drop-in's.
fn convert(
    raw: &RawConfig,
    base_dir: &Path,
    main_file: Option<&Path>,
    drop_ins: &[DropIn],
    env: EnvLookup<'_>,
) -> Result<Config, ConfigError> {
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
    let main = Part {
        drop_in: None,
        file: main_file,
        base_dir,
        hybrid_connections: &raw.hybrid_connection,
        forwards: &raw.forward,
    };
    let parts: Vec<Part<'_>> = std::iter::once(main)
        .chain(drop_ins.iter().map(|drop_in| Part {
            drop_in: Some(&drop_in.file),
            file: Some(&drop_in.file),
            base_dir: drop_in.file.parent().unwrap_or(Path::new(".")),
            hybrid_connections: &drop_in.raw.hybrid_connection,
            forwards: &drop_in.raw.forward,
        }))
        .collect();
    if parts
        .iter()
        .all(|part| part.hybrid_connections.is_empty() && part.forwards.is_empty())
    {
        return Err(ConfigError::new(
            "hybrid_connection",
            Reason::NothingToServe,
        ));
    }
    let limits = limits::convert(&raw.limits)?;
    let default_roots = raw
        .tls
        .roots
        .as_deref()
        .map(|text| shared_keys::trust_roots(text, base_dir, "tls.roots".to_owned()))
        .transpose()?;
    let mut sources = Sources {
        main: main_file.map(Path::to_path_buf),
        ..Sources::default()
    };
    let mut warnings = Vec::new();
    let mut hybrid_connections = Vec::new();
    let mut first_of_name: HashMap<String, Origin> = HashMap::new();
    for (part_index, part) in parts.iter().enumerate() {
        for (index, raw_hc) in part.hybrid_connections.iter().enumerate() {
            let at = Origin {
                part: part_index,
                index,
            };
            let (mut hc, hc_warnings) =
                hybrid_connection::convert(raw_hc, index, part.base_dir, env, limits)
                    .map_err(|error| part.locate(error))?;
            if hc.tls_roots.is_none() {
                hc.tls_roots.clone_from(&default_roots);
            }
            if let Some(&first) = first_of_name.get(&hc.name) {
                let duplicate = Reason::DuplicateName {
                    name: hc.name,
                    first_index: first.index,
                };
                let path = format!("hybrid_connection[{index}].name");
                return Err(duplicate_of(first, at, &parts, path, duplicate));
            }
            first_of_name.insert(hc.name.clone(), at);
            if let Some(file) = part.drop_in {
                sources
                    .hybrid_connections
                    .insert(hc.name.clone(), file.to_path_buf());
            }
            warnings.extend(part.locate_warnings(hc_warnings));
            hybrid_connections.push(hc);
        }
    }
    let mut forwards = forwards(&parts, env, &mut warnings, &mut sources)?;
    for forward in &mut forwards {
        if forward.tls_roots.is_none() {
            forward.tls_roots.clone_from(&default_roots);
        }
    }
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
        sources,
    })
}

/// Every `[[forward]]` of every part: names unique, and no two on the same address (port 0
/// excepted, as the system gives each its own port).
fn forwards(
    parts: &[Part<'_>],
    env: EnvLookup<'_>,
    warnings: &mut Vec<ConfigWarning>,
    sources: &mut Sources,
) -> Result<Vec<Forward>, ConfigError> {
    let mut forwards: Vec<(Forward, Origin)> = Vec::new();
    for (part_index, part) in parts.iter().enumerate() {
        for (index, raw_forward) in part.forwards.iter().enumerate() {
            let at = Origin {
                part: part_index,
                index,
            };
            let (forward, forward_warnings) =
                forward::convert(raw_forward, index, part.base_dir, env)
                    .map_err(|error| part.locate(error))?;
            if let Some((_, first)) = forwards.iter().find(|(f, _)| f.name == forward.name) {
                let duplicate = Reason::DuplicateForwardName {
                    name: forward.name,
                    first_index: first.index,
                };
                let path = format!("forward[{index}].name");
                return Err(duplicate_of(*first, at, parts, path, duplicate));
            }
            let shares_listen = |(f, _): &&(Forward, Origin)| f.listen == forward.listen;
            if forward.listen.port() != 0 {
                if let Some((_, first)) = forwards.iter().find(shares_listen) {
                    let duplicate = Reason::DuplicateListen {
                        listen: forward.listen,
                        first_index: first.index,
                    };
                    let path = format!("forward[{index}].listen");
                    return Err(duplicate_of(*first, at, parts, path, duplicate));
                }
            }
            if let Some(file) = part.drop_in {
                sources
                    .forwards
                    .insert(forward.name.clone(), file.to_path_buf());
            }
            warnings.extend(part.locate_warnings(forward_warnings));
            forwards.push((forward, at));
        }
    }
    Ok(forwards.into_iter().map(|(forward, _)| forward).collect())
}
