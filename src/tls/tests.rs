use std::sync::Arc;

use rustls::crypto::ring::{cipher_suite, default_provider};
use rustls::crypto::CryptoProvider;
use rustls::{CipherSuite, ClientConnection, ServerConnection, SupportedCipherSuite};

use super::*;

/// A self-signed `localhost` certificate and its key as PEM files in a temporary directory.
struct Files {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
}

fn files() -> Files {
    let issued = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let dir = tempfile::tempdir().expect("tempdir");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, issued.cert.pem()).expect("write cert");
    std::fs::write(&key, issued.key_pair.serialize_pem()).expect("write key");
    Files {
        _dir: dir,
        cert,
        key,
    }
}

/// ring's provider restricted to `suites`.
fn only(suites: &[SupportedCipherSuite]) -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: suites.to_vec(),
        ..default_provider()
    })
}

fn foreign_client(files: &Files, provider: Arc<CryptoProvider>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in read_certs(&files.cert).expect("certs") {
        roots.add(cert).expect("root");
    }
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// Moves every record `from` has queued into `to`.
fn deliver(from: &mut rustls::Connection, to: &mut rustls::Connection) {
    let mut wire = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut wire).expect("write_tls");
    }
    let mut rest = &wire[..];
    while !rest.is_empty() {
        to.read_tls(&mut rest).expect("read_tls");
        to.process_new_packets().expect("handshake");
    }
}

/// Runs a handshake in memory; returns the suite both sides agreed on.
fn negotiate(client: Arc<ClientConfig>, server: Arc<ServerConfig>) -> CipherSuite {
    let name = server_name("localhost").expect("name");
    let mut client = rustls::Connection::from(ClientConnection::new(client, name).expect("client"));
    let mut server = rustls::Connection::from(ServerConnection::new(server).expect("server"));
    for _ in 0..8 {
        if !client.is_handshaking() && !server.is_handshaking() {
            break;
        }
        deliver(&mut client, &mut server);
        deliver(&mut server, &mut client);
    }
    assert!(
        !client.is_handshaking() && !server.is_handshaking(),
        "handshake finished"
    );
    let agreed = client
        .negotiated_cipher_suite()
        .expect("client suite")
        .suite();
    let server_side = server
        .negotiated_cipher_suite()
        .expect("server suite")
        .suite();
    assert_eq!(agreed, server_side);
    agreed
}

#[test]
fn the_provider_puts_aes_128_gcm_first_and_keeps_every_ring_suite() {
    let ours: Vec<CipherSuite> = provider().cipher_suites.iter().map(|s| s.suite()).collect();
    assert_eq!(
        ours,
        [
            CipherSuite::TLS13_AES_128_GCM_SHA256,
            CipherSuite::TLS13_AES_256_GCM_SHA384,
            CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ]
    );
    let mut ring: Vec<CipherSuite> = default_provider()
        .cipher_suites
        .iter()
        .map(|s| s.suite())
        .collect();
    let mut sorted = ours.clone();
    ring.sort_by_key(|s| u16::from(*s));
    sorted.sort_by_key(|s| u16::from(*s));
    assert_eq!(sorted, ring, "the same suites as ring's default, reordered");
}

#[test]
fn our_client_and_our_relay_agree_on_tls13_aes_128_gcm() {
    let files = files();
    let client = client_config(&TrustRoots::CaFile(files.cert.clone())).expect("client");
    let server = server_config(&files.cert, &files.key).expect("server");
    assert_eq!(
        negotiate(client, server),
        CipherSuite::TLS13_AES_128_GCM_SHA256
    );
}

#[test]
fn a_client_that_prefers_aes_256_gets_aes_128_from_our_relay() {
    let files = files();
    let rustls_default_order = foreign_client(&files, Arc::new(default_provider()));
    assert_eq!(
        rustls_default_order.crypto_provider().cipher_suites[0].suite(),
        CipherSuite::TLS13_AES_256_GCM_SHA384
    );
    let server = server_config(&files.cert, &files.key).expect("server");
    assert_eq!(
        negotiate(rustls_default_order, server),
        CipherSuite::TLS13_AES_128_GCM_SHA256
    );
}

#[test]
fn a_client_that_offers_only_aes_256_still_connects_to_our_relay() {
    let files = files();
    let aes_256_only = foreign_client(&files, only(&[cipher_suite::TLS13_AES_256_GCM_SHA384]));
    let server = server_config(&files.cert, &files.key).expect("server");
    assert_eq!(
        negotiate(aes_256_only, server),
        CipherSuite::TLS13_AES_256_GCM_SHA384
    );
}

#[test]
fn our_client_connects_to_a_tls12_server_that_accepts_only_aes_256() {
    let files = files();
    let ours = client_config(&TrustRoots::CaFile(files.cert.clone())).expect("client");
    let certs = read_certs(&files.cert).expect("certs");
    let key = PrivateKeyDer::from_pem_file(&files.key).expect("key");
    // rcgen's default key is ECDSA P-256, so the ECDSA suite is the one that applies.
    let tls12_aes_256 = ServerConfig::builder_with_provider(only(&[
        cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ]))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .expect("server");
    assert_eq!(
        negotiate(ours, Arc::new(tls12_aes_256)),
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
    );
}
