//! A test certificate authority and relay certificates it signs (rcgen), written as PEM files:
//! the CA a company would install in the system store, and server certificates for loopback
//! names that are valid, for the wrong name, or expired.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

/// A CA's certificate and key, and the PEM file holding its certificate.
pub(crate) struct TestCa {
    cert: rcgen::Certificate,
    key: KeyPair,
    pub ca_file: PathBuf,
}

/// A server certificate chain and key written to `cert_file` and `key_file`.
pub(crate) struct ServerFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl TestCa {
    /// A new CA named `name`, its certificate written to `dir/NAME-ca.pem`.
    pub(crate) fn new(dir: &Path, name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        let ca_file = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&ca_file, cert.pem()).expect("write CA");
        Self { cert, key, ca_file }
    }

    /// A server certificate for `names`, signed by this CA, valid now unless `expired`; the
    /// files are `dir/LABEL.pem` and `dir/LABEL.key`.
    pub(crate) fn server(
        &self,
        dir: &Path,
        label: &str,
        names: &[&str],
        expired: bool,
    ) -> ServerFiles {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("params");
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().expect("server key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("server certificate");
        let cert_file = dir.join(format!("{label}.pem"));
        let key_file = dir.join(format!("{label}.key"));
        std::fs::write(&cert_file, cert.pem()).expect("write certificate");
        std::fs::write(&key_file, key.serialize_pem()).expect("write key");
        ServerFiles {
            cert_file,
            key_file,
        }
    }
}
