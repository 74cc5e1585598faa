//! `tls_roots`, `[tls] roots` and `relay_ca_file` for Azure: which trust store a hybrid
//! connection or forward uses for the relay's certificate.

use std::env::VarError;
use std::path::Path;

use super::*;
use crate::tls::TrustRoots;

const CS: &str = "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey=Kx5vX0c1Hk8xZy9uVmJ3Y2RlZmdoaWprbG1ub3BxcnM=;EntityPath=sap";

fn no_env(_: &str) -> Result<String, VarError> {
    Err(VarError::NotPresent)
}

fn load_in(dir: &Path, text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str_with_env(text, dir, &no_env)
}

fn sections(global: &str, hc_extra: &str, forward_extra: &str) -> String {
    format!(
        "{global}\n[[hybrid_connection]]\nname = \"sap\"\nconnection_string = \"{CS}\"\ntarget = \"tcp://10.1.2.3:3300\"\n{hc_extra}\n[[forward]]\nname = \"f\"\nlisten = \"127.0.0.1:0\"\nconnection_string = \"{CS}\"\n{forward_extra}\n"
    )
}

#[test]
fn each_section_may_choose_and_tls_roots_sets_the_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("corp-ca.pem"), "placeholder").expect("write");
    let config = load_in(dir.path(), &sections("", "", "")).expect("valid");
    assert_eq!(config.hybrid_connections[0].tls_roots, None);
    assert_eq!(config.forwards[0].tls_roots, None);

    let config = load_in(
        dir.path(),
        &sections("[tls]\nroots = \"system\"", "tls_roots = \"webpki\"", ""),
    )
    .expect("valid");
    assert_eq!(
        config.hybrid_connections[0].tls_roots,
        Some(TrustRoots::WebPki)
    );
    assert_eq!(config.forwards[0].tls_roots, Some(TrustRoots::System));

    let config = load_in(
        dir.path(),
        &sections(
            "",
            "tls_roots = \"corp-ca.pem\"",
            "relay_ca_file = \"corp-ca.pem\"",
        ),
    )
    .expect("valid");
    let file = TrustRoots::CaFile(dir.path().join("corp-ca.pem"));
    assert_eq!(config.hybrid_connections[0].tls_roots, Some(file.clone()));
    assert_eq!(
        config.forwards[0].tls_roots,
        Some(file),
        "relay_ca_file works for the Azure endpoint too"
    );
    let rendered = render::effective(&config, std::num::NonZeroUsize::MIN).to_string();
    assert!(rendered.contains("tls_roots = "), "{rendered}");
}

#[test]
fn bad_choices_name_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ca.pem"), "placeholder").expect("write");
    let error = load_in(dir.path(), &sections("", "tls_roots = \"missing.pem\"", ""))
        .expect_err("unreadable");
    assert_eq!(error.path, "hybrid_connection[0].tls_roots");
    assert!(matches!(error.reason, Reason::CaFileUnreadable { .. }));
    let error = load_in(
        dir.path(),
        &sections("", "", "tls_roots = \"system\"\nrelay_ca_file = \"ca.pem\""),
    )
    .expect_err("both");
    assert_eq!(
        error.to_string(),
        "forward[0].tls_roots: give only one of tls_roots or relay_ca_file"
    );
    let error = load_in(dir.path(), &sections("[tls]\nroots = \" \"", "", "")).expect_err("empty");
    assert_eq!(error.path, "tls.roots");
    assert_eq!(error.reason, Reason::EmptyTrustRoots);
}
