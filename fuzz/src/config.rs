//! Target `config`: arbitrary text as a hycod configuration file (docs/configuration.md).
//!
//! Oracles: no panic; no error text contains a `SharedAccessKey=` value, neither one written in
//! the file nor one in the connection string the (fake) environment hands out.

use std::env::VarError;
use std::path::Path;
use std::sync::OnceLock;

use hycod::config::Config;

use super::secrets::{assert_no_secret, assert_secrets_not_quoted};

/// The key inside the connection string every environment variable holds.
pub const ENV_SECRET: &str = "EnvSecretKeyValue0123456789abcdefghijklmnop=";

/// A directory that exists and stays empty: relative file names resolve against it.
fn base_dir() -> &'static Path {
    static DIR: OnceLock<Option<tempfile::TempDir>> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().ok())
        .as_ref()
        .map_or(Path::new("/nonexistent-hycod-fuzz"), |dir| dir.path())
}

/// Validate as UTF-8 text (other inputs are skipped: the reader takes `&str`).
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = |name: &str| {
        if name.is_empty() {
            Err(VarError::NotPresent)
        } else {
            Ok(format!(
                "Endpoint=sb://env.example/;SharedAccessKeyName=k;SharedAccessKey={ENV_SECRET}"
            ))
        }
    };
    let message_of = |text: &str| {
        Config::from_toml_str_with_env(text, base_dir(), &env)
            .err()
            .map(|error| format!("{error} {error:?}"))
    };
    let Some(message) = message_of(text) else {
        return;
    };
    if !text.contains(ENV_SECRET) {
        assert_no_secret(&message, &[ENV_SECRET.to_owned()], "config error");
    }
    assert_secrets_not_quoted(text, "config error", message_of);
}
