//! Validating one `[[hybrid_connection]]` (architecture §5): name, connection string, entity path,
//! targets, listener count, relay, proxy, token lifetime, keep-alive intervals, extra
//! rendezvous hosts, the per-hybrid-connection stream and request maxima, and the request body
//! buffer.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::Path;

use super::connection_source::{self, EnvLookup};
use super::error::{ConfigError, ConfigWarning, Reason};
use super::limits::{self, Limits};
use super::raw::RawHybridConnection;
use super::shared_keys::{self, url_error, KeyPath};
use super::typed::{
    HybridConnection, Peer, TcpTarget, DEFAULT_PING_INTERVAL, DEFAULT_REQUEST_BUFFER,
    MAX_LISTENERS, MIN_PING_INTERVAL,
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

    let name = shared_keys::name(raw.name.as_deref(), &at)?;
    let loaded = connection_source::load(&raw.source_keys(), &prefix, base_dir, env)?;
    let entity_path = shared_keys::entity_path(
        raw.entity_path.as_deref(),
        loaded.connection_string.entity_path(),
        &at,
    )?;

    if raw.target.is_none() && raw.targets.is_none() && raw.http_target.is_none() {
        return Err(ConfigError::new(prefix, Reason::NoTarget));
    }
    let peer = raw.peer.unwrap_or_default();
    let targets = port_targets(raw.targets.as_ref(), peer, &at)?;
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

    let mut warnings = loaded.warnings;
    let (relay, tls_roots, proxy) = shared_keys::relay_route(
        &shared_keys::RouteKeys {
            relay_url: raw.relay_url.as_deref(),
            relay_ca_file: raw.relay_ca_file.as_deref(),
            tls_roots: raw.tls_roots.as_deref(),
            proxy: shared_keys::ProxyKeys {
                proxy: raw.proxy.as_deref(),
                password_file: raw.proxy_password_file.as_deref(),
                password_env: raw.proxy_password_env.as_deref(),
            },
        },
        base_dir,
        env,
        &at,
        &mut warnings,
    )?;
    let token_ttl = shared_keys::token_ttl(raw.token_ttl.as_deref(), &at)?;
    let ping_interval = shared_keys::duration_at_least(
        raw.ping_interval.as_deref(),
        at("ping_interval"),
        DEFAULT_PING_INTERVAL,
        MIN_PING_INTERVAL,
    )?;

    let stream_ping_interval =
        shared_keys::stream_ping_interval(raw.stream_ping_interval.as_deref(), &at)?;
    let rendezvous_hosts = raw
        .rendezvous_hosts
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, host)| {
            host_pattern(host).map_err(|reason| {
                ConfigError::new(format!("{}[{i}]", at("rendezvous_hosts")), reason)
            })
        })
        .collect::<Result<Vec<_>, _>>()?;

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
        tls_roots,
        proxy,
        token_ttl,
        ping_interval,
        stream_ping_interval,
        rendezvous_hosts,
        limits,
        peer,
        targets,
        request_buffer: raw.request_buffer.unwrap_or(DEFAULT_REQUEST_BUFFER),
    };
    Ok((hybrid_connection, warnings))
}

/// One `rendezvous_hosts` entry: a host name, or `*.` followed by one; returned lower case.
fn host_pattern(text: &str) -> Result<String, Reason> {
    let name = text.strip_prefix("*.").unwrap_or(text);
    let labels_ok = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if labels_ok {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(Reason::InvalidHostPattern {
            got: text.to_owned(),
        })
    }
}

/// `targets`: port names as azbridge accepts them, each mapped to a `tcp://host:port`; only
/// with `peer = "azbridge"`.
fn port_targets(
    raw: Option<&BTreeMap<String, String>>,
    peer: Peer,
    at: KeyPath<'_>,
) -> Result<BTreeMap<String, TcpTarget>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(BTreeMap::new());
    };
    if peer != Peer::Azbridge {
        return Err(ConfigError::new(at("targets"), Reason::NeedsAzbridgePeer));
    }
    raw.iter()
        .map(|(name, text)| {
            let key = at(&format!("targets.{name:?}"));
            if !crate::proto::azbridge::is_valid_port_name(name) {
                let got = name.clone();
                return Err(ConfigError::new(key, Reason::InvalidPortName { got }));
            }
            urls::tcp_target(text)
                .map(|target| (name.clone(), target))
                .map_err(|problem| url_error(key, urls::TCP_TARGET_FORM, text, problem))
        })
        .collect()
}
