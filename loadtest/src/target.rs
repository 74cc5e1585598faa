//! What a run loads, resolved from the command line: a relay (as a Hybrid Connections sender,
//! protocol §7.1 streams / §7.2 HTTP; `ws://` or `wss://`, protocol §2) or a direct baseline
//! target.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hycod::auth::connection_string::{ConnectionString, Credential};
use hycod::proxy::ProxyRoute;
use hycod::secret::Secret;
use hycod::tls::{client_config, ClientConfig, TlsServerName, TlsSetupError, TrustRoots};

use crate::cli::{CliError, TargetArgs};

/// How long the sender tokens of a run stay valid (longer than any permitted run).
pub(crate) const TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The namespace host tokens name when only `--key-name`/`--key` are given (what the
/// self-hosted relay accepts on loopback).
pub(crate) const DEFAULT_NAMESPACE: &str = "localhost";

/// Where requests go.
#[derive(Debug, Clone)]
pub(crate) enum Endpoint {
    /// Through the relay: its WebSocket base URL, socket address, the hybrid connection and
    /// the sender token.
    Relayed {
        relay_url: String,
        relay_addr: SocketAddr,
        hc: String,
        token: Secret,
        tls: RelayTls,
        /// The HTTP CONNECT proxy towards the relay, `None` for direct connections.
        proxy: Option<Arc<ProxyRoute>>,
    },
    /// Straight to the target (`tcp://` or `http://`), and the HTTP path.
    Direct { addr: SocketAddr, path: String },
}

/// TLS towards the relay: the client configuration (webpki roots, or only the CA of
/// `--ca-file`) and, for a `wss://` relay, the name its certificate must carry.
#[derive(Debug, Clone)]
pub(crate) struct RelayTls {
    pub config: Arc<ClientConfig>,
    /// Some for `wss://`: connections to the relay are TLS, verified against this name.
    pub server_name: Option<TlsServerName<'static>>,
}

/// Why the target could not be resolved.
#[derive(Debug)]
pub(crate) enum TargetError {
    Cli(CliError),
    BadUrl {
        url: String,
        reason: String,
    },
    ConnectionStringFile {
        reason: String,
    },
    /// `--ca-file` could not be used as the relay's trust root.
    CaFile {
        path: PathBuf,
        source: TlsSetupError,
    },
    /// The webpki roots did not make a TLS client configuration.
    TlsConfig(TlsSetupError),
    /// The proxy flags or variables are not usable (the reason names which).
    Proxy(String),
    /// The relay's host is no valid TLS server name.
    ServerName {
        host: String,
        reason: String,
    },
}

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cli(e) => e.fmt(f),
            Self::BadUrl { url, reason } => write!(f, "invalid URL {url:?}: {reason}"),
            Self::ConnectionStringFile { reason } => {
                write!(f, "cannot use --connection-string-file: {reason}")
            }
            Self::CaFile { path, source } => {
                write!(f, "cannot use --ca-file {}: {source}", path.display())
            }
            Self::TlsConfig(e) => write!(f, "cannot build the TLS client configuration: {e}"),
            Self::Proxy(reason) => f.write_str(reason),
            Self::ServerName { host, reason } => {
                write!(f, "the relay host {host:?} is no TLS server name: {reason}")
            }
        }
    }
}

impl std::error::Error for TargetError {}

/// How a run's target reads in the summary: `direct URL` or `relay URL hc NAME`.
pub(crate) fn describe(target: &TargetArgs) -> String {
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
pub(crate) fn resolve(common: &TargetArgs, scheme: &str) -> Result<Rc<Endpoint>, TargetError> {
    if let Some(direct) = &common.direct {
        let url = parse_url(common, direct, &[scheme])?;
        return Ok(Rc::new(Endpoint::Direct {
            addr: url.addr,
            path: url.path,
        }));
    }
    let relay_url = common.relay.clone().ok_or(CliError::NoTarget)?;
    let hc = common
        .hybrid_connection
        .clone()
        .ok_or(CliError::MissingHybridConnection)?;
    let url = parse_url(common, &relay_url, &["ws", "wss"])?;
    let tls = relay_tls(
        common.ca_file.as_ref(),
        (url.scheme == "wss").then_some(&url.host),
    )?;
    let proxy = crate::proxy::route(common, url.scheme == "wss").map_err(TargetError::Proxy)?;
    let (namespace, credential) = credential(common)?;
    let expiry = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(TOKEN_TTL)
        .as_secs();
    let token = credential.token(&namespace, &hc, expiry);
    Ok(Rc::new(Endpoint::Relayed {
        relay_url: relay_url.trim_end_matches('/').to_owned(),
        relay_addr: url.addr,
        hc,
        token,
        tls,
        proxy,
    }))
}

/// The TLS client side for the relay: trusting `ca_file` only (or the webpki roots), and the
/// server name of `tls_host` when the relay is `wss://`.
pub(crate) fn relay_tls(
    ca_file: Option<&PathBuf>,
    tls_host: Option<&String>,
) -> Result<RelayTls, TargetError> {
    let config = match ca_file {
        Some(path) => client_config(&TrustRoots::CaFile(path.clone())).map_err(|source| {
            TargetError::CaFile {
                path: path.clone(),
                source,
            }
        })?,
        None => client_config(&TrustRoots::WebPki).map_err(TargetError::TlsConfig)?,
    };
    let server_name = tls_host
        .map(|host| {
            hycod::tls::server_name(host).map_err(|reason| TargetError::ServerName {
                host: host.clone(),
                reason,
            })
        })
        .transpose()?;
    Ok(RelayTls {
        config,
        server_name,
    })
}

/// A target URL, resolved and permitted.
struct ParsedUrl {
    scheme: String,
    host: String,
    addr: SocketAddr,
    path: String,
}

fn parse_url(common: &TargetArgs, text: &str, schemes: &[&str]) -> Result<ParsedUrl, TargetError> {
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
    Ok(ParsedUrl {
        scheme: url.scheme().to_owned(),
        host: host.to_owned(),
        addr,
        path: url.path().to_owned(),
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn target(extra: &[&str]) -> TargetArgs {
        #[derive(Parser)]
        struct T {
            #[command(flatten)]
            target: TargetArgs,
        }
        let mut args = vec!["t", "--key-name", "root", "--key", "k"];
        args.extend_from_slice(extra);
        T::parse_from(args).target
    }

    fn relayed_tls(endpoint: &Endpoint) -> &RelayTls {
        match endpoint {
            Endpoint::Relayed { tls, .. } => tls,
            Endpoint::Direct { .. } => panic!("not relayed: {endpoint:?}"),
        }
    }

    #[test]
    fn a_ws_relay_is_reached_without_tls() {
        let args = target(&["--relay", "ws://127.0.0.1:9", "--hybrid-connection", "a"]);
        let endpoint = resolve(&args, "http").expect("resolve");
        assert_eq!(relayed_tls(&endpoint).server_name, None);
    }

    #[test]
    fn a_wss_relay_is_verified_against_its_host() {
        let args = target(&["--relay", "wss://localhost:9", "--hybrid-connection", "a"]);
        let endpoint = resolve(&args, "http").expect("resolve");
        assert_eq!(
            relayed_tls(&endpoint).server_name,
            Some(TlsServerName::try_from("localhost").expect("name"))
        );
    }

    #[test]
    fn an_unreadable_ca_file_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing.pem");
        let args = target(&[
            "--relay",
            "wss://127.0.0.1:9",
            "--hybrid-connection",
            "a",
            "--ca-file",
            missing.to_str().expect("utf-8"),
        ]);
        let error = resolve(&args, "http").expect_err("no CA file");
        assert!(
            matches!(&error, TargetError::CaFile { path, .. } if *path == missing),
            "{error:?}"
        );
        assert!(error.to_string().contains("missing.pem"), "{error}");
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").expect("write");
        let error = relay_tls(Some(&empty), Some(&"localhost".to_owned())).expect_err("empty");
        assert!(
            matches!(
                error,
                TargetError::CaFile {
                    source: TlsSetupError::NoCertificates { .. },
                    ..
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn relays_speak_ws_or_wss_only() {
        let args = target(&["--relay", "http://127.0.0.1:9", "--hybrid-connection", "a"]);
        let error = resolve(&args, "http").expect_err("http relay");
        assert!(matches!(error, TargetError::BadUrl { .. }), "{error:?}");
    }
}
