//! What a run loads, resolved from the command line: a relay (as a Hybrid Connections sender,
//! spec §7.1 streams / §7.2 HTTP) or a direct baseline target.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use hycod::auth::connection_string::{ConnectionString, Credential};
use hycod::secret::Secret;

use crate::cli::{CliError, TargetArgs};

/// How long the sender tokens of a run stay valid (longer than any permitted run).
pub const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The namespace host tokens name when only `--key-name`/`--key` are given (what the
/// self-hosted relay accepts on loopback).
pub const DEFAULT_NAMESPACE: &str = "localhost";

/// Where requests go.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// Through the relay: its WebSocket base URL, socket address, the hybrid connection and
    /// the sender token.
    Relayed {
        relay_url: String,
        relay_addr: SocketAddr,
        hc: String,
        token: Secret,
    },
    /// Straight to the target (`tcp://` or `http://`), and the HTTP path.
    Direct { addr: SocketAddr, path: String },
}

/// Why the target could not be resolved.
#[derive(Debug)]
pub enum TargetError {
    Cli(CliError),
    BadUrl { url: String, reason: String },
    ConnectionStringFile { reason: String },
}

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cli(e) => e.fmt(f),
            Self::BadUrl { url, reason } => write!(f, "invalid URL {url:?}: {reason}"),
            Self::ConnectionStringFile { reason } => {
                write!(f, "cannot use --connection-string-file: {reason}")
            }
        }
    }
}

impl std::error::Error for TargetError {}

/// How a run's target reads in the summary: `direct URL` or `relay URL hc NAME`.
pub fn describe(target: &TargetArgs) -> String {
    match (&target.direct, &target.relay) {
        (Some(direct), _) => format!("direct {direct}"),
        (None, Some(relay)) => format!(
            "relay {relay} hc {}",
            target.hybrid_connection.as_deref().unwrap_or("")
        ),
        (None, None) => String::new(),
    }
}

impl From<CliError> for TargetError {
    fn from(e: CliError) -> Self {
        Self::Cli(e)
    }
}

/// Resolves the endpoint of a validated `common` (`scheme` is `tcp` or `http` for `--direct`).
pub fn resolve(common: &TargetArgs, scheme: &str) -> Result<Rc<Endpoint>, TargetError> {
    if let Some(direct) = &common.direct {
        let (addr, path) = parse_url(common, direct, &[scheme])?;
        return Ok(Rc::new(Endpoint::Direct { addr, path }));
    }
    let relay_url = common.relay.clone().ok_or(CliError::NoTarget)?;
    let hc = common
        .hybrid_connection
        .clone()
        .ok_or(CliError::MissingHybridConnection)?;
    let (relay_addr, _) = parse_url(common, &relay_url, &["ws"])?;
    let (namespace, credential) = credential(common)?;
    let expiry = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(TOKEN_TTL)
        .as_secs();
    let token = credential.token(&namespace, &hc, expiry);
    Ok(Rc::new(Endpoint::Relayed {
        relay_url: relay_url.trim_end_matches('/').to_owned(),
        relay_addr,
        hc,
        token,
    }))
}

fn parse_url(
    common: &TargetArgs,
    text: &str,
    schemes: &[&str],
) -> Result<(SocketAddr, String), TargetError> {
    let bad = |reason: String| TargetError::BadUrl {
        url: text.to_owned(),
        reason,
    };
    let url = url::Url::parse(text).map_err(|e| bad(e.to_string()))?;
    if !schemes.contains(&url.scheme()) {
        return Err(bad(format!("the scheme must be {}", schemes.join(" or "))));
    }
    let host = url.host_str().ok_or_else(|| bad("no host".to_owned()))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url
        .port_or_known_default()
        .ok_or_else(|| bad("no port".to_owned()))?;
    let addr = common.permitted_addr(host, port)?;
    Ok((addr, url.path().to_owned()))
}

fn credential(common: &TargetArgs) -> Result<(String, Credential), TargetError> {
    if let Some(file) = &common.connection_string_file {
        let text =
            std::fs::read_to_string(file).map_err(|e| TargetError::ConnectionStringFile {
                reason: format!("{}: {e}", file.display()),
            })?;
        let parsed = ConnectionString::parse(text.trim()).map_err(|e| {
            TargetError::ConnectionStringFile {
                reason: e.to_string(),
            }
        })?;
        return Ok((
            parsed.namespace_host().to_owned(),
            parsed.credential().clone(),
        ));
    }
    match (&common.key_name, &common.key) {
        (Some(key_name), Some(key)) => Ok((
            DEFAULT_NAMESPACE.to_owned(),
            Credential::KeyPair {
                key_name: key_name.clone(),
                key: Secret::new(key.clone()),
            },
        )),
        _ => Err(CliError::MissingCredential.into()),
    }
}
