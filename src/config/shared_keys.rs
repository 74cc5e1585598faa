//! The keys `[[hybrid_connection]]` and `[[forward]]` have in common (architecture §5): `name`,
//! `entity_path`, `relay_url` with `relay_ca_file`, `proxy`, `token_ttl` and
//! `stream_ping_interval`. Each check takes
//! the key's text and returns a [`ConfigError`] at the key path `at(key)` names.

use std::path::Path;

use crate::auth::connection_string::entity_path_problem;

use super::duration;
use super::error::{without_credentials, ConfigError, Reason, UrlProblem};
use super::typed::{
    ProxyAddress, Relay, DEFAULT_STREAM_PING_INTERVAL, DEFAULT_TOKEN_TTL, MIN_STREAM_PING_INTERVAL,
    MIN_TOKEN_TTL,
};
use super::urls;

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

/// `relay_url` and `relay_ca_file` (resolved against `base_dir` and read once to check it).
pub(super) fn relay(
    relay_url: Option<&str>,
    relay_ca_file: Option<&Path>,
    base_dir: &Path,
    at: KeyPath<'_>,
) -> Result<Relay, ConfigError> {
    let url = relay_url
        .map(|text| {
            urls::relay_url(text)
                .map_err(|problem| url_error(at("relay_url"), urls::RELAY_URL_FORM, text, problem))
        })
        .transpose()?;
    let ca_file = match relay_ca_file {
        None => None,
        Some(file) => {
            if url.as_ref().map(url::Url::scheme) != Some("wss") {
                return Err(ConfigError::new(
                    at("relay_ca_file"),
                    Reason::CaFileWithoutTlsRelay,
                ));
            }
            let file = base_dir.join(file);
            std::fs::read(&file).map_err(|error| {
                ConfigError::new(
                    at("relay_ca_file"),
                    Reason::CaFileUnreadable {
                        file: file.clone(),
                        io: error.to_string(),
                    },
                )
            })?;
            Some(file)
        }
    };
    Ok(match url {
        None => Relay::Azure,
        Some(url) => Relay::SelfHosted { url, ca_file },
    })
}

/// `proxy = "http://host:port"`.
pub(super) fn proxy(
    text: Option<&str>,
    at: KeyPath<'_>,
) -> Result<Option<ProxyAddress>, ConfigError> {
    text.map(|text| {
        urls::proxy(text).map_err(|problem| url_error(at("proxy"), urls::PROXY_FORM, text, problem))
    })
    .transpose()
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
