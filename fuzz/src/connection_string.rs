//! Target `connection_string`: arbitrary text as an Azure Relay connection string
//! (protocol §3.5).
//!
//! Oracles: no panic; neither the Display nor the Debug text of an error, nor the Debug text of
//! a parsed value, contains a `SharedAccessKey` or `SharedAccessSignature` value of the input.

use hycod::auth::connection_string::ConnectionString;

use super::secrets::{assert_no_secret, assert_secrets_not_quoted, secret_values};

/// Parse as UTF-8 text (other inputs are skipped: the parser takes `&str`).
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = ConnectionString::parse(text) {
        assert_no_secret(
            &format!("{parsed:?}"),
            &secret_values(text),
            "Debug of the value",
        );
    }
    assert_secrets_not_quoted(text, "connection string error", |text| {
        ConnectionString::parse(text)
            .err()
            .map(|error| format!("{error} {error:?}"))
    });
}
