//! The proxy keys (`proxy`, `proxy_password_file`, `proxy_password_env`) and the environment's
//! proxy when `proxy` is absent.

use std::env::VarError;
use std::path::Path;

use super::*;
use crate::secret::Secret;

const CS: &str = "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey=Kx5vX0c1Hk8xZy9uVmJ3Y2RlZmdoaWprbG1ub3BxcnM=;EntityPath=sap";

fn hc(extra: &str) -> String {
    format!("[[hybrid_connection]]\nname = \"sap\"\nconnection_string = \"{CS}\"\ntarget = \"tcp://10.1.2.3:3300\"\n{extra}\n")
}

/// An environment with a corporate proxy (with credentials) and a `NO_PROXY` list.
fn corporate_env(name: &str) -> Result<String, VarError> {
    match name {
        "HTTPS_PROXY" => Ok("http://envuser:envpass@proxy.corp:8080".into()),
        "NO_PROXY" => Ok(".corp.local,10.0.0.0/8".into()),
        "PROXY_PASSWORD" => Ok("s3cret\n".into()),
        _ => Err(VarError::NotPresent),
    }
}

fn empty_env(_: &str) -> Result<String, VarError> {
    Err(VarError::NotPresent)
}

fn setting(text: &str, env: EnvLookup<'_>) -> Result<ProxySetting, ConfigError> {
    Config::from_toml_str_with_env(text, Path::new("/nonexistent-base"), env)
        .map(|config| config.hybrid_connections[0].proxy.clone())
}

#[test]
fn without_a_proxy_key_the_environment_decides() {
    assert_eq!(
        setting(&hc(""), &empty_env).expect("valid"),
        ProxySetting::Direct
    );
    let found = setting(&hc(""), &corporate_env).expect("valid");
    let ProxySetting::Environment {
        variable,
        address,
        password,
        no_proxy,
    } = &found
    else {
        panic!("expected the environment's proxy, got {found:?}");
    };
    assert_eq!(*variable, "HTTPS_PROXY");
    assert_eq!(address.to_string(), "http://envuser@proxy.corp:8080");
    assert_eq!(password.as_ref().map(Secret::expose), Some("envpass"));
    assert!(no_proxy.bypasses("relay.corp.local", 443));
    assert!(!no_proxy.bypasses("contoso.servicebus.windows.net", 443));
    let shown = found.to_string();
    assert_eq!(
        shown,
        "http://envuser@proxy.corp:8080 (environment HTTPS_PROXY, NO_PROXY honoured)"
    );
    // A ws:// relay does not take HTTPS_PROXY (curl's rule).
    let plain = hc("relay_url = \"ws://127.0.0.1:9000\"");
    assert_eq!(
        setting(&plain, &corporate_env).expect("valid"),
        ProxySetting::Direct
    );
}

#[test]
fn none_turns_the_environment_off() {
    let off = setting(&hc("proxy = \"none\""), &corporate_env).expect("valid");
    assert_eq!(off, ProxySetting::Off);
    assert!(off.route().is_none());
}

#[test]
fn a_user_takes_the_password_from_a_variable_or_a_file() {
    let from_env = setting(
        &hc(
            "proxy = \"http://svc-hycod@proxy.corp:3128\"\nproxy_password_env = \"PROXY_PASSWORD\"",
        ),
        &corporate_env,
    )
    .expect("valid");
    let ProxySetting::Configured { address, password } = &from_env else {
        panic!("expected the configured proxy, got {from_env:?}");
    };
    assert_eq!(address.user.as_deref(), Some("svc-hycod"));
    let password = password.as_ref().expect("password");
    assert_eq!(password.value.expose(), "s3cret");
    assert_eq!(
        password.source,
        PasswordSource::Env("PROXY_PASSWORD".into())
    );
    assert!(!format!("{from_env:?} {from_env}").contains("s3cret"));

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("proxy.pw"), "filepass\n").expect("write");
    let config = Config::from_toml_str_with_env(
        &hc("proxy = \"http://svc@proxy.corp:3128\"\nproxy_password_file = \"proxy.pw\""),
        dir.path(),
        &empty_env,
    )
    .expect("valid");
    let ProxySetting::Configured { password, .. } = &config.hybrid_connections[0].proxy else {
        panic!("expected the configured proxy");
    };
    assert_eq!(
        password.as_ref().map(|p| p.value.expose()),
        Some("filepass")
    );
    let rendered = render::effective(&config, std::num::NonZeroUsize::MIN).to_string();
    assert!(
        rendered.contains("proxy = \"http://svc@proxy.corp:3128\""),
        "{rendered}"
    );
    assert!(rendered.contains("proxy_password_file = "), "{rendered}");
    assert!(!rendered.contains("filepass"));
}

fn refused(extra: &str, env: EnvLookup<'_>) -> ConfigError {
    setting(&hc(extra), env).expect_err("refused")
}

#[test]
fn password_keys_are_checked_and_name_their_key() {
    let error = refused("proxy = \"http://svc@px:3128\"", &empty_env);
    assert_eq!(
        (error.path.as_str(), &error.reason),
        (
            "hybrid_connection[0].proxy",
            &Reason::ProxyUserWithoutPassword
        )
    );
    let error = refused(
        "proxy = \"http://px:3128\"\nproxy_password_env = \"PROXY_PASSWORD\"",
        &corporate_env,
    );
    assert_eq!(
        (error.path.as_str(), &error.reason),
        (
            "hybrid_connection[0].proxy_password_env",
            &Reason::ProxyPasswordWithoutUser
        )
    );
    let error = refused("proxy_password_file = \"pw\"", &empty_env);
    assert_eq!(error.reason, Reason::ProxyPasswordWithoutUser);
    let error = refused(
        "proxy = \"http://svc@px:3128\"\nproxy_password_file = \"pw\"\nproxy_password_env = \"PROXY_PASSWORD\"",
        &corporate_env,
    );
    assert_eq!(error.reason, Reason::ConflictingProxyPasswords);
    let error = refused(
        "proxy = \"http://svc@px:3128\"\nproxy_password_env = \"UNSET\"",
        &empty_env,
    );
    assert_eq!(
        error.to_string(),
        "hybrid_connection[0].proxy_password_env: the environment variable UNSET is not set or not valid Unicode"
    );
    let error = refused(
        "proxy = \"http://svc@px:3128\"\nproxy_password_file = \"/nonexistent/pw\"",
        &empty_env,
    );
    assert!(matches!(
        error.reason,
        Reason::ProxyPasswordFileUnreadable { .. }
    ));
    assert_eq!(error.path, "hybrid_connection[0].proxy_password_file");
}

#[test]
fn an_unusable_proxy_variable_is_an_error_naming_it_but_not_its_value() {
    let env = |name: &str| match name {
        "ALL_PROXY" => Ok("socks5://u:topsecret@socks.corp:1080".to_owned()),
        _ => Err(VarError::NotPresent),
    };
    let error = refused("", &env);
    let shown = error.to_string();
    assert_eq!(error.path, "hybrid_connection[0].proxy");
    assert!(shown.contains("ALL_PROXY"), "{shown}");
    assert!(shown.contains("socks5:// is not supported"), "{shown}");
    assert!(
        !shown.contains("topsecret") && !shown.contains("socks.corp"),
        "{shown}"
    );
    assert_eq!(
        setting(&hc("proxy = \"none\""), &env).expect("valid"),
        ProxySetting::Off
    );
}
