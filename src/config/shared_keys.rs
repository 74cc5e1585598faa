//! The keys `[[hybrid_connection]]` and `[[forward]]` have in common (architecture §5): `name`,
//! `entity_path`, `relay_url` with `tls_roots` (or the older `relay_ca_file`), `proxy` with its password keys, `token_ttl`
//! and `stream_ping_interval`. Each check takes the key's text and returns a [`ConfigError`] at
//! the key path `at(key)` names.

use std::path::{Path, PathBuf};

use crate::auth::connection_string::entity_path_problem;

use super::connection_source::EnvLookup;
use super::duration;
use super::error::{without_credentials, ConfigError, ConfigWarning, Reason, UrlProblem, Warning};
use super::typed::{
    PasswordSource, ProxyPassword, ProxySetting, Relay, DEFAULT_STREAM_PING_INTERVAL,
    DEFAULT_TOKEN_TTL, MIN_STREAM_PING_INTERVAL, MIN_TOKEN_TTL,
};
use super::urls;
use crate::secret::Secret;
use crate::tls::TrustRoots;

/// Builds the key path of one key of the section being converted.
pub(super) type KeyPath<'a> = &'a dyn Fn(&str) -> String;

/// `name`: required; a metric label, so non-empty and `[A-Za-z0-9_.-]` only.
pub(super) fn name<'a>(name: Option<&'a str>, at: KeyPath<'_>) -> Result<&'a str, ConfigError> {
    let name = name.ok_or_else(|| ConfigError::new(at("name"), Reason::MissingKey))?;
    check_name(name).map_err(|reason| ConfigError::new(at("name"), reason))?;
    Ok(name)
}

fn check_name(name: &str) -> Result<(), Reason> {
    if name.is_empty() {
        return Err(Reason::EmptyName);
    }
    match name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        Some(character) => Err(Reason::NameCharacter { character }),
        None => Ok(()),
    }
}

/// `entity_path` and the connection string's `EntityPath`: at least one, equal when both.
pub(super) fn entity_path(
    configured: Option<&str>,
    in_connection_string: Option<&str>,
    at: KeyPath<'_>,
) -> Result<String, ConfigError> {
    let path = match (configured, in_connection_string) {
        (None, None) => Err(Reason::MissingEntityPath),
        (None, Some(from_string)) => Ok(from_string.to_owned()),
        (Some(configured), in_connection_string) => {
            if let Some(problem) = entity_path_problem(configured) {
                Err(Reason::InvalidEntityPath { problem })
            } else {
                match in_connection_string {
                    Some(from_string) if from_string != configured => {
                        Err(Reason::EntityPathMismatch {
                            configured: configured.to_owned(),
                            in_connection_string: from_string.to_owned(),
                        })
                    }
                    _ => Ok(configured.to_owned()),
                }
            }
        }
    };
    path.map_err(|reason| ConfigError::new(at("entity_path"), reason))
}

/// `relay_url`: a self-hosted relay; without it, Azure.
fn relay(relay_url: Option<&str>, at: KeyPath<'_>) -> Result<Relay, ConfigError> {
    Ok(match relay_url {
        None => Relay::Azure,
        Some(text) => Relay::SelfHosted {
            url: urls::relay_url(text).map_err(|problem| {
                url_error(at("relay_url"), urls::RELAY_URL_FORM, text, problem)
            })?,
        },
    })
}

/// `file` resolved against `base_dir`, read once to check it; errors at `key`.
fn readable_ca_file(base_dir: &Path, file: &Path, key: String) -> Result<PathBuf, ConfigError> {
    let file = base_dir.join(file);
    std::fs::read(&file).map_err(|error| {
        ConfigError::new(
            key,
            Reason::CaFileUnreadable {
                file: file.clone(),
                io: error.to_string(),
            },
        )
    })?;
    Ok(file)
}

/// A `tls_roots` value (`"webpki"`, `"system"` or a CA file) at `key`.
pub(super) fn trust_roots(
    text: &str,
    base_dir: &Path,
    key: String,
) -> Result<TrustRoots, ConfigError> {
    match text.trim() {
        "webpki" => Ok(TrustRoots::WebPki),
        "system" => Ok(TrustRoots::System),
        "" => Err(ConfigError::new(key, Reason::EmptyTrustRoots)),
        file => readable_ca_file(base_dir, Path::new(file), key).map(TrustRoots::CaFile),
    }
}

/// `tls_roots` of a section, or `relay_ca_file`, the older name of `tls_roots` holding a file:
/// still read (not for a `ws://` relay, which has no TLS), with a warning naming the
/// replacement. Both at once is an error.
fn section_trust(
    keys: &RouteKeys<'_>,
    relay: &Relay,
    base_dir: &Path,
    at: KeyPath<'_>,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<Option<TrustRoots>, ConfigError> {
    match (keys.tls_roots, keys.relay_ca_file) {
        (None, None) => Ok(None),
        (Some(text), None) => trust_roots(text, base_dir, at("tls_roots")).map(Some),
        (Some(_), Some(_)) => Err(ConfigError::new(
            at("tls_roots"),
            Reason::ConflictingTrustRoots,
        )),
        (None, Some(file)) => {
            if matches!(relay, Relay::SelfHosted { url } if url.scheme() != "wss") {
                return Err(ConfigError::new(
                    at("relay_ca_file"),
                    Reason::CaFileWithoutTlsRelay,
                ));
            }
            let file = readable_ca_file(base_dir, file, at("relay_ca_file"))?;
            warnings.push(ConfigWarning {
                path: at("relay_ca_file"),
                kind: Warning::DeprecatedKey {
                    replacement: "tls_roots",
                },
            });
            Ok(Some(TrustRoots::CaFile(file)))
        }
    }
}

/// The keys that say how one section reaches its relay, as written.
pub(super) struct RouteKeys<'a> {
    pub relay_url: Option<&'a str>,
    pub relay_ca_file: Option<&'a Path>,
    pub tls_roots: Option<&'a str>,
    pub proxy: ProxyKeys<'a>,
}

/// `relay_url` with `tls_roots` (or `relay_ca_file`) and the proxy keys of one section: the
/// relay, the trust roots for it and the proxy towards it; a deprecated key adds to `warnings`.
pub(super) fn relay_route(
    keys: &RouteKeys<'_>,
    base_dir: &Path,
    env: EnvLookup<'_>,
    at: KeyPath<'_>,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<(Relay, Option<TrustRoots>, ProxySetting), ConfigError> {
    let relay = relay(keys.relay_url, at)?;
    let tls_roots = section_trust(keys, &relay, base_dir, at, warnings)?;
    let proxy = proxy(&keys.proxy, &relay, base_dir, env, at)?;
    Ok((relay, tls_roots, proxy))
}

/// The proxy keys of one section, as written.
pub(super) struct ProxyKeys<'a> {
    pub proxy: Option<&'a str>,
    pub password_file: Option<&'a Path>,
    pub password_env: Option<&'a str>,
}

/// `proxy` (`"none"` or `http://[user@]host:port`) with `proxy_password_file` /
/// `proxy_password_env`; without `proxy`, the environment's proxy for the relay's scheme.
pub(super) fn proxy(
    keys: &ProxyKeys<'_>,
    relay: &Relay,
    base_dir: &Path,
    env: EnvLookup<'_>,
    at: KeyPath<'_>,
) -> Result<ProxySetting, ConfigError> {
    let password_key = match (keys.password_file, keys.password_env) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                at("proxy_password_file"),
                Reason::ConflictingProxyPasswords,
            ))
        }
        (Some(_), None) => Some("proxy_password_file"),
        (None, Some(_)) => Some("proxy_password_env"),
        (None, None) => None,
    };
    let address = match keys.proxy.map(str::trim) {
        None => {
            if let Some(key) = password_key {
                return Err(ConfigError::new(at(key), Reason::ProxyPasswordWithoutUser));
            }
            return from_environment(relay, env, at);
        }
        Some("none") => None,
        Some(text) => Some(
            urls::proxy(text)
                .map_err(|problem| url_error(at("proxy"), urls::PROXY_FORM, text, problem))?,
        ),
    };
    let has_user = address.as_ref().is_some_and(|a| a.user.is_some());
    if let (Some(key), false) = (password_key, has_user) {
        return Err(ConfigError::new(at(key), Reason::ProxyPasswordWithoutUser));
    }
    let Some(address) = address else {
        return Ok(ProxySetting::Off);
    };
    let password = match (keys.password_file, keys.password_env) {
        (Some(file), _) => {
            let file = base_dir.join(file);
            let text = std::fs::read_to_string(&file).map_err(|error| {
                ConfigError::new(
                    at("proxy_password_file"),
                    Reason::ProxyPasswordFileUnreadable {
                        file: file.clone(),
                        io: error.to_string(),
                    },
                )
            })?;
            Some(ProxyPassword {
                source: PasswordSource::File(file),
                value: trimmed_secret(text),
            })
        }
        (None, Some(variable)) => {
            let text = env(variable).map_err(|_| {
                ConfigError::new(
                    at("proxy_password_env"),
                    Reason::ProxyPasswordEnvMissing {
                        variable: variable.to_owned(),
                    },
                )
            })?;
            Some(ProxyPassword {
                source: PasswordSource::Env(variable.to_owned()),
                value: trimmed_secret(text),
            })
        }
        (None, None) if has_user => {
            return Err(ConfigError::new(
                at("proxy"),
                Reason::ProxyUserWithoutPassword,
            ))
        }
        (None, None) => None,
    };
    Ok(ProxySetting::Configured { address, password })
}

/// The environment's proxy for the relay's scheme (`wss` for Azure), or [`ProxySetting::Direct`].
fn from_environment(
    relay: &Relay,
    env: EnvLookup<'_>,
    at: KeyPath<'_>,
) -> Result<ProxySetting, ConfigError> {
    let tls = match relay {
        Relay::Azure => true,
        Relay::SelfHosted { url, .. } => url.scheme() == "wss",
    };
    let found =
        crate::proxy::env::from_environment(tls, &|name| env(name).ok()).map_err(|error| {
            // The value is not echoed: a mistaken variable may hold anything, secrets included.
            ConfigError::new(
                at("proxy"),
                Reason::InvalidProxyVariable {
                    variable: error.variable,
                    problem: error.problem,
                },
            )
        })?;
    Ok(match found {
        None => ProxySetting::Direct,
        Some(found) => ProxySetting::Environment {
            variable: found.variable,
            address: found.proxy.address,
            password: found.proxy.password,
            no_proxy: found.no_proxy,
        },
    })
}

/// `text` without surrounding whitespace (a file's trailing newline); both copies are secrets.
fn trimmed_secret(text: String) -> Secret {
    let whole = Secret::new(text);
    Secret::new(whole.expose().trim())
}

/// `token_ttl`: a duration of at least [`MIN_TOKEN_TTL`], [`DEFAULT_TOKEN_TTL`] when absent.
pub(super) fn token_ttl(
    text: Option<&str>,
    at: KeyPath<'_>,
) -> Result<std::time::Duration, ConfigError> {
    duration_at_least(text, at("token_ttl"), DEFAULT_TOKEN_TTL, MIN_TOKEN_TTL)
}

/// `stream_ping_interval`: [`DEFAULT_STREAM_PING_INTERVAL`] when absent, `0s` = off (`None`),
/// otherwise at least [`MIN_STREAM_PING_INTERVAL`].
pub(super) fn stream_ping_interval(
    text: Option<&str>,
    at: KeyPath<'_>,
) -> Result<Option<std::time::Duration>, ConfigError> {
    if text.is_some_and(|text| duration::parse(text).is_ok_and(|d| d.is_zero())) {
        return Ok(None);
    }
    duration_at_least(
        text,
        at("stream_ping_interval"),
        DEFAULT_STREAM_PING_INTERVAL,
        MIN_STREAM_PING_INTERVAL,
    )
    .map(Some)
}

/// The duration `text` at `key`: `default` when absent, at least `min`.
pub(super) fn duration_at_least(
    text: Option<&str>,
    key: String,
    default: std::time::Duration,
    min: std::time::Duration,
) -> Result<std::time::Duration, ConfigError> {
    let Some(text) = text else {
        return Ok(default);
    };
    let got = duration::parse(text).map_err(|error| {
        ConfigError::new(
            key.clone(),
            Reason::InvalidDuration {
                got: text.to_owned(),
                error,
            },
        )
    })?;
    if got < min {
        return Err(ConfigError::new(key, Reason::DurationTooShort { got, min }));
    }
    Ok(got)
}

/// An [`Reason::InvalidUrl`] at `path`, echoing `got` without credentials.
pub(super) fn url_error(
    path: String,
    expected: &'static str,
    got: &str,
    problem: UrlProblem,
) -> ConfigError {
    ConfigError::new(
        path,
        Reason::InvalidUrl {
            expected,
            got: without_credentials(got),
            problem,
        },
    )
}
