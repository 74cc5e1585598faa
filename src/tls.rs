//! TLS set-up: the only module that builds rustls configurations (architecture §2, "TLS").
//!
//! Every configuration uses the ring crypto provider explicitly ([`provider`]), so no code path
//! can fall back to aws-lc-rs. Clients verify certificates always: against the webpki roots
//! compiled in (the default for public Azure), the operating system's CA bundle (`system`, read
//! with `rustls-native-certs`, so a TLS-inspecting proxy's CA the company installed is trusted),
//! or a CA file; there is no "insecure" switch. [`certificate_problem`] names why a peer's
//! certificate was refused.
//!
//! # Cipher suites
//! Every suite of the ring provider stays on offer (Azure Relay's endpoints and any peer connect),
//! AES-128-GCM first: clients list it first and the relay's server configuration picks by its
//! own order (`ignore_client_order`). Why: every relayed byte on the wss path is encrypted and
//! decrypted twice (docs/performance.md "Second round").

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::ring::{cipher_suite, default_provider};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::RootCertStore;
use rustls::SupportedCipherSuite;

pub use crate::io::tls_stream::{Acceptor, Connector, TlsStream, TlsStreamError};
pub use rustls::pki_types::ServerName as TlsServerName;
pub use rustls::{ClientConfig, ServerConfig};

/// Where a client takes the certificates it trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustRoots {
    /// The Mozilla root set compiled into `webpki-roots` (public Azure Relay).
    WebPki,
    /// The operating system's CA bundle (on Linux the distribution's bundle, or the files
    /// `SSL_CERT_FILE` / `SSL_CERT_DIR` name).
    System,
    /// Only the CA certificates in this PEM file (a self-hosted relay, or a company CA).
    CaFile(PathBuf),
}

impl fmt::Display for TrustRoots {
    /// The `tls_roots` value naming this store.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WebPki => f.write_str("webpki"),
            Self::System => f.write_str("system"),
            Self::CaFile(path) => write!(f, "{}", path.display()),
        }
    }
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
    /// The operating system's CA bundle held no usable certificate.
    NoSystemCertificates { errors: String },
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
            Self::NoSystemCertificates { errors } => write!(
                f,
                "tls_roots = \"system\": no CA certificate found in the operating system's \
                 store{errors}"
            ),
        }
    }
}

impl std::error::Error for TlsSetupError {}

impl From<rustls::Error> for TlsSetupError {
    fn from(e: rustls::Error) -> Self {
        Self::Rustls(e)
    }
}

/// The cipher suites hycod offers and accepts, most preferred first (see the module docs): each
/// AES-128-GCM suite ahead of its AES-256-GCM sibling, then ChaCha20-Poly1305; TLS 1.3 before
/// TLS 1.2. These are all of ring's suites, reordered.
fn preferred_suites() -> [SupportedCipherSuite; 9] {
    [
        cipher_suite::TLS13_AES_128_GCM_SHA256,
        cipher_suite::TLS13_AES_256_GCM_SHA384,
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]
}

/// The ring crypto provider with its cipher suites in hycod's order, AES-128-GCM first (key
/// exchange groups, signature algorithms and randomness as ring's defaults).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: preferred_suites().to_vec(),
        ..default_provider()
    })
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

/// A client configuration (TLS 1.2 and 1.3, [`provider`]) trusting `roots`.
pub fn client_config(roots: &TrustRoots) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let mut store = RootCertStore::empty();
    match roots {
        TrustRoots::WebPki => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        TrustRoots::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
                return Err(TlsSetupError::NoSystemCertificates {
                    errors: if errors.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", errors.join("; "))
                    },
                });
            }
        }
        TrustRoots::CaFile(path) => {
            for cert in read_certs(path)? {
                store.add(cert)?;
            }
        }
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(store)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A server configuration from a PEM certificate chain and a PEM private key; it chooses the
/// cipher suite by [`provider`]'s order, not by the client's.
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
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

/// Why `error` refused a peer's certificate, in words an operator acts on, or `None` when it is
/// not a certificate problem. `host` is the name the certificate was checked against.
pub fn certificate_problem(error: &rustls::Error, host: &str) -> Option<String> {
    use rustls::CertificateError as E;
    let rustls::Error::InvalidCertificate(problem) = error else {
        return None;
    };
    Some(match problem {
        E::UnknownIssuer => "unknown issuer: it does not chain to a CA of the trust store in use \
             (tls_roots: webpki, system or a CA file)"
            .to_owned(),
        E::NotValidForName | E::NotValidForNameContext { .. } => {
            format!("name mismatch: it is not valid for {host}")
        }
        E::Expired | E::ExpiredContext { .. } => "expired".to_owned(),
        E::NotValidYet | E::NotValidYetContext { .. } => "not valid yet".to_owned(),
        E::Revoked => "revoked".to_owned(),
        E::BadSignature => "bad signature".to_owned(),
        other => format!("{other:?}"),
    })
}

/// The TLS server name (SNI and certificate check) for `host`, which may be a DNS name or an IP.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_owned())
        .map_err(|e| format!("invalid TLS server name {host:?}: {e}"))
}

#[cfg(test)]
mod tests;
