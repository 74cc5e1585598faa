//! Secrets (SAS keys, tokens, connection strings) behind a newtype that never prints its value.
//!
//! `Debug` and `Display` both render `<redacted>`, so a secret that ends up in a log line, an
//! error message or a metric label cannot leak. The value is reachable only through
//! [`Secret::expose`], which makes every use greppable. The bytes (and the string's spare
//! capacity) are overwritten with zeros when the secret is dropped (`zeroize`).

use std::fmt;

use zeroize::Zeroizing;

/// The text every secret renders as.
pub const REDACTED: &str = "<redacted>";

/// A secret string: a SAS key, a SAS token or a whole connection string.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a value that must never be printed.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The secret value. Call only where the value goes on the wire or into a MAC.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_are_redacted() {
        let s = Secret::new("Kx5vX0c1Hk8xZy9uVmJ3Y2RlZmdoaWprbG1ub3BxcnM=");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(&s)), "Some(<redacted>)");
    }

    #[test]
    fn expose_returns_the_value() {
        assert_eq!(Secret::new("abc").expose(), "abc");
    }
}
