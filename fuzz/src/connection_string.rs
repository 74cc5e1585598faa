//! Target `connection_string`: arbitrary text as an Azure Relay connection string
//! (spec §3.5).
//!
//! Oracles: no panic; neither the Display nor the Debug text of an error, nor the Debug text of
//! a parsed value, contains a `SharedAccessKey` or `SharedAccessSignature` value of the input.

use hycod::auth::connection_string::ConnectionString;

use super::secrets::{assert_no_secret, secret_values};

/// Parse as UTF-8 text (other inputs are skipped: the parser takes `&str`).
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let secrets = secret_values(text);
    match ConnectionString::parse(text) {
        Ok(parsed) => assert_no_secret(&format!("{parsed:?}"), &secrets, "Debug of the value"),
        Err(error) => {
            assert_no_secret(&error.to_string(), &secrets, "error Display");
            assert_no_secret(&format!("{error:?}"), &secrets, "error Debug");
        }
    }
}
