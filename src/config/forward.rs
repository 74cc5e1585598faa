//! Validating one `[[forward]]` (architecture §5, docs/configuration.md `[[forward]]`): a local TCP
//! address whose connections are carried as sender WebSockets (protocol §5.5) to a hybrid
//! connection. Name, connection string, entity path, relay, proxy and token lifetime follow the
//! same rules as in `[[hybrid_connection]]`.

use std::net::SocketAddr;
use std::path::Path;

use super::connection_source::{self, EnvLookup};
use super::error::{ConfigError, ConfigWarning, Reason};
use super::raw::RawForward;
use super::shared_keys;
use super::typed::{Forward, Peer};

/// Converts `raw`, the `index`-th forward. Name and address uniqueness are checked by the caller.
pub(super) fn convert(
    raw: &RawForward,
    index: usize,
    base_dir: &Path,
    env: EnvLookup<'_>,
) -> Result<(Forward, Vec<ConfigWarning>), ConfigError> {
    let prefix = format!("forward[{index}]");
    let at = |key: &str| format!("{prefix}.{key}");

    let name = shared_keys::name(raw.name.as_deref(), &at)?;
    let listen = listen(raw.listen.as_deref(), &at)?;
    let loaded = connection_source::load(&raw.source_keys(), &prefix, base_dir, env)?;
    let entity_path = shared_keys::entity_path(
        raw.entity_path.as_deref(),
        loaded.connection_string.entity_path(),
        &at,
    )?;
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
    let stream_ping_interval =
        shared_keys::stream_ping_interval(raw.stream_ping_interval.as_deref(), &at)?;
    let peer = raw.peer.unwrap_or_default();
    let port_name = port_name(raw.port_name.as_deref(), peer, listen, &at)?;
    let forward = Forward {
        name: name.to_owned(),
        listen,
        connection_string_source: loaded.source,
        connection_string: loaded.connection_string,
        entity_path,
        relay,
        tls_roots,
        proxy,
        token_ttl,
        stream_ping_interval,
        peer,
        port_name,
    };
    Ok((forward, warnings))
}

/// `listen`: required, `ip:port` (port 0 lets the system pick one).
fn listen(text: Option<&str>, at: shared_keys::KeyPath<'_>) -> Result<SocketAddr, ConfigError> {
    let text = text.ok_or_else(|| ConfigError::new(at("listen"), Reason::MissingKey))?;
    text.trim().parse().map_err(|error| {
        ConfigError::new(
            at("listen"),
            Reason::InvalidSocketAddr {
                got: text.to_owned(),
                error,
            },
        )
    })
}

/// `port_name`: only with `peer = "azbridge"`, where it defaults to `listen`'s port as text
/// (what `azbridge -L` sends for a bound port).
fn port_name(
    text: Option<&str>,
    peer: Peer,
    listen: SocketAddr,
    at: shared_keys::KeyPath<'_>,
) -> Result<Option<String>, ConfigError> {
    match (peer, text) {
        (Peer::Plain, None) => Ok(None),
        (Peer::Plain, Some(_)) => Err(ConfigError::new(at("port_name"), Reason::NeedsAzbridgePeer)),
        (Peer::Azbridge, Some(name)) if crate::proto::azbridge::is_valid_port_name(name) => {
            Ok(Some(name.to_owned()))
        }
        (Peer::Azbridge, Some(name)) => Err(ConfigError::new(
            at("port_name"),
            Reason::InvalidPortName {
                got: name.to_owned(),
            },
        )),
        (Peer::Azbridge, None) if listen.port() == 0 => {
            Err(ConfigError::new(at("port_name"), Reason::PortNameRequired))
        }
        (Peer::Azbridge, None) => Ok(Some(listen.port().to_string())),
    }
}
