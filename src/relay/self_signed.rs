//! `--self-signed NAME` (docs/emulator.md): a certificate authority of the relay's own and a
//! server certificate for NAME it signs, kept in `STATE_DIR/self-signed/NAME/`, so clients that
//! trust that one CA file (`NODE_EXTRA_CA_CERTS`, a system store) reach the relay over `wss://`
//! and `https://` under NAME.
//!
//! The files are made once and reused on every later start while all four are there, so a CA
//! trusted once stays trusted; if one is missing, all four are made anew (and the new CA must
//! be trusted again). The CA may sign for NAME and the names below it only (an X.509 name
//! constraint): its key, should it leak, cannot impersonate any other site to a machine that
//! trusts it. Keys are written with mode 0600 in a directory of mode 0700.

use std::fmt;
use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa,
    KeyPair, KeyUsagePurpose, NameConstraints,
};

/// The CA's certificate, the one file clients must trust.
const CA_FILE: &str = "ca.pem";
const CA_KEY_FILE: &str = "ca.key";
/// The server certificate for NAME, signed by the CA.
const CERT_FILE: &str = "server.pem";
/// The server certificate's private key.
const KEY_FILE: &str = "server.key";

/// What `--self-signed` asks for: certificates for `name`, kept under `state_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfSigned {
    pub name: String,
    pub state_dir: PathBuf,
}

/// The files of a self-signed setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The CA certificate to trust.
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Whether this start made them (else they were reused).
    pub created: bool,
}

/// Why the certificates could not be made or stored.
#[derive(Debug)]
pub enum SelfSignedError {
    Io { path: PathBuf, source: io::Error },
    Certificate(rcgen::Error),
}

impl fmt::Display for SelfSignedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::Certificate(e) => write!(f, "cannot make the certificate: {e}"),
        }
    }
}

impl std::error::Error for SelfSignedError {}

impl From<rcgen::Error> for SelfSignedError {
    fn from(e: rcgen::Error) -> Self {
        Self::Certificate(e)
    }
}

/// Why `name` cannot be a certificate's and the rendezvous URLs' host name, if it cannot: it
/// must be a DNS name (letters, digits, `-` and `.`, no empty label), which also keeps it a
/// single safe path component.
pub fn name_problem(name: &str) -> Option<String> {
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let valid = name.len() <= 253 && name.split('.').all(valid_label);
    (!valid).then(|| {
        format!("{name:?} is not a DNS host name (letters, digits, '-' and '.', e.g. relay.test)")
    })
}

impl SelfSigned {
    /// The directory holding this name's files.
    pub fn dir(&self) -> PathBuf {
        self.state_dir.join("self-signed").join(&self.name)
    }

    /// The CA and server certificate for the name: reused if all four files exist, else made
    /// and written.
    pub fn ensure(&self) -> Result<Issued, SelfSignedError> {
        let dir = self.dir();
        let issued = Issued {
            ca_file: dir.join(CA_FILE),
            cert_file: dir.join(CERT_FILE),
            key_file: dir.join(KEY_FILE),
            created: false,
        };
        let all_there = [CA_FILE, CA_KEY_FILE, CERT_FILE, KEY_FILE]
            .iter()
            .all(|file| dir.join(file).is_file());
        if all_there {
            return Ok(issued);
        }
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| SelfSignedError::Io {
                path: dir.clone(),
                source,
            })?;
        let (ca_pem, ca_key_pem, cert_pem, key_pem) = issue(&self.name)?;
        write_file(&dir.join(CA_KEY_FILE), &ca_key_pem, 0o600)?;
        write_file(&issued.key_file, &key_pem, 0o600)?;
        write_file(&issued.cert_file, &cert_pem, 0o644)?;
        write_file(&issued.ca_file, &ca_pem, 0o644)?;
        Ok(Issued {
            created: true,
            ..issued
        })
    }
}

/// A CA constrained to `name` and a server certificate for `name` it signs, as PEM: CA
/// certificate, CA key, server certificate, server key.
fn issue(name: &str) -> Result<(String, String, String, String), rcgen::Error> {
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca_params(name)?.self_signed(&ca_key)?;

    let mut server = CertificateParams::new(vec![name.to_owned()])?;
    server.distinguished_name.push(DnType::CommonName, name);
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate()?;
    let server_cert = server.signed_by(&server_key, &ca_cert, &ca_key)?;
    Ok((
        ca_cert.pem(),
        ca_key.serialize_pem(),
        server_cert.pem(),
        server_key.serialize_pem(),
    ))
}

/// The CA for `name`: it may sign only end-entity certificates, for `name` and below.
fn ca_params(name: &str) -> Result<CertificateParams, rcgen::Error> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name.push(
        DnType::CommonName,
        format!("hycod relay emulator CA for {name}"),
    );
    ca.distinguished_name
        .push(DnType::OrganizationName, "hycod relay emulator");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.name_constraints = Some(NameConstraints {
        permitted_subtrees: vec![GeneralSubtree::DnsName(name.to_owned())],
        excluded_subtrees: Vec::new(),
    });
    Ok(ca)
}

/// Writes `text` to `path` with `mode` (replacing what was there).
fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), SelfSignedError> {
    let io_error = |source| SelfSignedError::Io {
        path: path.to_path_buf(),
        source,
    };
    // A file left from an earlier set keeps its mode on open; remove it so `mode` applies.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(e)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_error)?;
    file.write_all(text.as_bytes()).map_err(io_error)?;
    file.sync_all().map_err(io_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn names_must_be_dns_host_names() {
        for good in [
            "relay.test",
            "emu.servicebus.windows.net",
            "localhost",
            "a-1",
        ] {
            assert_eq!(name_problem(good), None, "{good}");
        }
        for bad in [
            "", "../etc", "a/b", "a..b", "-a.test", "*.test", "a b", "x.", "é.test",
        ] {
            let problem = name_problem(bad).expect(bad);
            assert!(problem.contains("is not a DNS host name"), "{problem}");
        }
    }

    #[test]
    fn files_are_made_private_once_and_reused() {
        let state = tempfile::tempdir().expect("tempdir");
        let setup = SelfSigned {
            name: "relay.test".to_owned(),
            state_dir: state.path().join("state"),
        };
        let first = setup.ensure().expect("made");
        assert!(first.created);
        let dir = state.path().join("state/self-signed/relay.test");
        assert_eq!(first.ca_file, dir.join("ca.pem"));
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("ca.key")), 0o600);
        assert_eq!(mode(&first.key_file), 0o600);
        assert_eq!(mode(&first.cert_file), 0o644);
        let ca = std::fs::read_to_string(&first.ca_file).expect("ca");
        assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");

        let again = setup.ensure().expect("reused");
        assert!(!again.created);
        assert_eq!(std::fs::read_to_string(&again.ca_file).expect("ca"), ca);

        std::fs::remove_file(&first.key_file).expect("removed");
        let remade = setup.ensure().expect("remade");
        assert!(remade.created);
        assert_ne!(std::fs::read_to_string(&remade.ca_file).expect("ca"), ca);
        assert_eq!(mode(&remade.key_file), 0o600);
    }

    /// Checks `cert_pem` for `name` against a trust store holding only `ca_pem`.
    fn verify(ca_pem: &str, cert_pem: &str, name: &str) -> Result<(), rustls::Error> {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("CA PEM"))
            .expect("CA added");
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .expect("verifier");
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("PEM");
        let name = ServerName::try_from(name.to_owned()).expect("name");
        verifier
            .verify_server_cert(&cert, &[], &name, &[], UnixTime::now())
            .map(drop)
    }

    #[test]
    fn the_ca_signs_for_its_name_only() {
        let state = tempfile::tempdir().expect("tempdir");
        let setup = SelfSigned {
            name: "relay.test".to_owned(),
            state_dir: state.path().to_path_buf(),
        };
        let issued = setup.ensure().expect("made");
        let read = |path: &Path| std::fs::read_to_string(path).expect("read");
        let ca_pem = read(&issued.ca_file);
        assert_eq!(
            verify(&ca_pem, &read(&issued.cert_file), "relay.test"),
            Ok(())
        );

        // Whoever holds the CA key signs a certificate for another site: clients refuse it.
        let ca_key = KeyPair::from_pem(&read(&setup.dir().join(CA_KEY_FILE))).expect("CA key");
        let issuer = ca_params("relay.test")
            .and_then(|params| params.self_signed(&ca_key))
            .expect("issuer");
        let key = KeyPair::generate().expect("key");
        let forged = CertificateParams::new(vec!["bank.example".to_owned()])
            .and_then(|params| params.signed_by(&key, &issuer, &ca_key))
            .expect("forged");
        let refused = verify(&ca_pem, &forged.pem(), "bank.example").expect_err("constrained");
        assert!(
            matches!(refused, rustls::Error::InvalidCertificate(_)),
            "{refused:?}"
        );
        let below = CertificateParams::new(vec!["g1.relay.test".to_owned()])
            .and_then(|params| params.signed_by(&key, &issuer, &ca_key))
            .expect("below");
        assert_eq!(verify(&ca_pem, &below.pem(), "g1.relay.test"), Ok(()));
    }
}
