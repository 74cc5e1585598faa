//! TLS set-up: the only module that builds rustls configurations (design.md §2, "TLS").
//!
//! Every configuration uses the ring crypto provider explicitly
//! (`builder_with_provider(ring::default_provider())`), so no code path can fall back to
//! aws-lc-rs. Clients verify certificates always: against the webpki roots for public Azure, or
//! against a CA file for a self-hosted relay; there is no "insecure" switch.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::RootCertStore;

pub use crate::io::tls_stream::{Acceptor, Connector, TlsStream, TlsStreamError};
pub use rustls::pki_types::ServerName as TlsServerName;
pub use rustls::{ClientConfig, ServerConfig};

/// Where a client takes the certificates it trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustRoots {
    /// The Mozilla root set compiled into `webpki-roots` (public Azure Relay).
    WebPki,
    /// Only the CA certificates in this PEM file (a self-hosted relay).
    CaFile(PathBuf),
}

/// Why a TLS configuration could not be built.
#[derive(Debug)]
pub enum TlsSetupError {
    /// A PEM file could not be read or held no usable item.
    Pem { path: PathBuf, reason: String },
    /// A CA file held no certificate.
    NoCertificates { path: PathBuf },
    /// A key file held no private key.
    NoPrivateKey { path: PathBuf },
    /// rustls refused the material (e.g. key does not match the certificate).
    Rustls(rustls::Error),
}

impl fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pem { path, reason } => write!(f, "{}: {reason}", path.display()),
            Self::NoCertificates { path } => {
                write!(f, "{}: no PEM certificate found", path.display())
            }
            Self::NoPrivateKey { path } => {
                write!(f, "{}: no PEM private key found", path.display())
            }
            Self::Rustls(e) => write!(f, "TLS configuration rejected: {e}"),
        }
    }
}

impl std::error::Error for TlsSetupError {}

impl From<rustls::Error> for TlsSetupError {
    fn from(e: rustls::Error) -> Self {
        Self::Rustls(e)
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsSetupError::Pem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsSetupError::NoCertificates {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// A client configuration (TLS 1.2 and 1.3, ring provider) trusting `roots`.
pub fn client_config(roots: &TrustRoots) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let mut store = RootCertStore::empty();
    match roots {
        TrustRoots::WebPki => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        TrustRoots::CaFile(path) => {
            for cert in read_certs(path)? {
                store.add(cert)?;
            }
        }
    }
    let config = ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A server configuration from a PEM certificate chain and a PEM private key.
pub fn server_config(
    cert_file: &Path,
    key_file: &Path,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let certs = read_certs(cert_file)?;
    let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsSetupError::NoPrivateKey {
            path: key_file.to_path_buf(),
        },
        other => TlsSetupError::Pem {
            path: key_file.to_path_buf(),
            reason: other.to_string(),
        },
    })?;
    let config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

/// The TLS server name (SNI and certificate check) for `host`, which may be a DNS name or an IP.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_owned())
        .map_err(|e| format!("invalid TLS server name {host:?}: {e}"))
}
