//! Validating one `[[hybrid_connection]]` (design.md §5): name, connection string, entity path,
//! targets, listener count, relay, proxy, token lifetime, keep-alive interval and the
//! per-hybrid-connection stream and request maxima.

use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use crate::auth::connection_string::entity_path_problem;

use super::connection_source::{self, EnvLookup};
use super::duration;
use super::error::{without_credentials, ConfigError, ConfigWarning, Reason, UrlProblem};
use super::limits::{self, Limits};
use super::raw::RawHybridConnection;
use super::typed::{
    HybridConnection, Relay, DEFAULT_PING_INTERVAL, DEFAULT_TOKEN_TTL, MAX_LISTENERS,
    MIN_PING_INTERVAL, MIN_TOKEN_TTL,
};
use super::urls;

/// Converts `raw`, the `index`-th hybrid connection. Name uniqueness is checked by the caller.
pub(super) fn convert(
    raw: &RawHybridConnection,
    index: usize,
    base_dir: &Path,
    env: EnvLookup<'_>,
    limits: Limits,
) -> Result<(HybridConnection, Vec<ConfigWarning>), ConfigError> {
    let prefix = format!("hybrid_connection[{index}]");
    let at = |key: &str| format!("{prefix}.{key}");

    let name = raw
        .name
        .as_deref()
        .ok_or_else(|| ConfigError::new(at("name"), Reason::MissingKey))?;
    check_name(name).map_err(|reason| ConfigError::new(at("name"), reason))?;

    let loaded = connection_source::load(raw, &prefix, base_dir, env)?;
    let entity_path = entity_path(
        raw.entity_path.as_deref(),
        loaded.connection_string.entity_path(),
    )
    .map_err(|reason| ConfigError::new(at("entity_path"), reason))?;

    if raw.target.is_none() && raw.http_target.is_none() {
        return Err(ConfigError::new(prefix, Reason::NoTarget));
    }
    let target = raw
        .target
        .as_deref()
        .map(|text| {
            urls::tcp_target(text)
                .map_err(|problem| url_error(at("target"), urls::TCP_TARGET_FORM, text, problem))
        })
        .transpose()?;
    let http_target = raw
        .http_target
        .as_deref()
        .map(|text| {
            urls::http_target(text).map_err(|problem| {
                url_error(at("http_target"), urls::HTTP_TARGET_FORM, text, problem)
            })
        })
        .transpose()?;

    let listeners = raw
        .listeners
        .map(|got| {
            NonZeroUsize::new(got)
                .filter(|count| count.get() <= MAX_LISTENERS)
                .ok_or_else(|| {
                    ConfigError::new(
                        at("listeners"),
                        Reason::ListenersOutOfRange {
                            got,
                            max: MAX_LISTENERS,
                        },
                    )
                })
        })
        .transpose()?;

    let relay = relay(raw, base_dir, &at)?;

    let proxy = raw
        .proxy
        .as_deref()
        .map(|text| {
            urls::proxy(text)
                .map_err(|problem| url_error(at("proxy"), urls::PROXY_FORM, text, problem))
        })
        .transpose()?;

    let token_ttl = duration_at_least(
        raw.token_ttl.as_deref(),
        &at("token_ttl"),
        DEFAULT_TOKEN_TTL,
        MIN_TOKEN_TTL,
    )?;
    let ping_interval = duration_at_least(
        raw.ping_interval.as_deref(),
        &at("ping_interval"),
        DEFAULT_PING_INTERVAL,
        MIN_PING_INTERVAL,
    )?;

    let limits = limits.with_overrides(
        limits::concurrency(&at("max_streams"), raw.max_streams)?,
        limits::concurrency(&at("max_requests"), raw.max_requests)?,
    );

    let hybrid_connection = HybridConnection {
        name: name.to_owned(),
        connection_string_source: loaded.source,
        connection_string: loaded.connection_string,
        entity_path,
        target,
        http_target,
        listeners,
        relay,
        proxy,
        token_ttl,
        ping_interval,
        limits,
    };
    Ok((hybrid_connection, loaded.warnings))
}

/// The duration `text` at `key`: `default` when absent, at least `min`.
fn duration_at_least(
    text: Option<&str>,
    key: &str,
    default: Duration,
    min: Duration,
) -> Result<Duration, ConfigError> {
    let Some(text) = text else {
        return Ok(default);
    };
    let got = duration::parse(text).map_err(|error| {
        ConfigError::new(
            key,
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

/// A name is a metric label: non-empty, `[A-Za-z0-9_.-]` only.
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
fn entity_path(
    configured: Option<&str>,
    in_connection_string: Option<&str>,
) -> Result<String, Reason> {
    match (configured, in_connection_string) {
        (None, None) => Err(Reason::MissingEntityPath),
        (None, Some(from_string)) => Ok(from_string.to_owned()),
        (Some(configured), in_connection_string) => {
            if let Some(problem) = entity_path_problem(configured) {
                return Err(Reason::InvalidEntityPath { problem });
            }
            match in_connection_string {
                Some(from_string) if from_string != configured => Err(Reason::EntityPathMismatch {
                    configured: configured.to_owned(),
                    in_connection_string: from_string.to_owned(),
                }),
                _ => Ok(configured.to_owned()),
            }
        }
    }
}

/// `relay_url` and `relay_ca_file`.
fn relay(
    raw: &RawHybridConnection,
    base_dir: &Path,
    at: &dyn Fn(&str) -> String,
) -> Result<Relay, ConfigError> {
    let url = raw
        .relay_url
        .as_deref()
        .map(|text| {
            urls::relay_url(text)
                .map_err(|problem| url_error(at("relay_url"), urls::RELAY_URL_FORM, text, problem))
        })
        .transpose()?;
    let ca_file = match &raw.relay_ca_file {
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

fn url_error(path: String, expected: &'static str, got: &str, problem: UrlProblem) -> ConfigError {
    ConfigError::new(
        path,
        Reason::InvalidUrl {
            expected,
            got: without_credentials(got),
            problem,
        },
    )
}
