//! Why one request failed: the keys of the summary's error table.

use std::fmt;

/// One request's failure, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Failure {
    /// No TLS client configuration could be built.
    TlsConfig,
    /// The TCP connection or WebSocket handshake failed (e.g. the relay answered 404).
    Connect,
    /// The HTTP CONNECT proxy refused the tunnel to the relay (e.g. 407: credentials missing
    /// or refused).
    Proxy,
    /// The TLS handshake with a `wss://` relay failed (e.g. its certificate is not trusted).
    TlsHandshake,
    /// The request or frame could not be encoded.
    Encode,
    /// Writing failed.
    Send,
    /// Reading the answer failed or it was malformed.
    Receive,
    /// The echoed bytes differ from those sent.
    EchoMismatch,
    /// The peer closed the stream.
    Closed,
    /// The HTTP status is not 2xx.
    Status,
    /// The HTTP answer closes the connection.
    NotKeepAlive,
    /// No complete answer within `--timeout`.
    Timeout,
    /// The pacer thread panicked.
    Pacer,
    /// A worker thread panicked or its runtime could not start.
    Thread,
}

impl Failure {
    /// The key in the summary and the JSON file.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::TlsConfig => "tls_config",
            Self::Connect => "connect",
            Self::Proxy => "proxy",
            Self::TlsHandshake => "tls_handshake",
            Self::Encode => "encode",
            Self::Send => "send",
            Self::Receive => "receive",
            Self::EchoMismatch => "echo_mismatch",
            Self::Closed => "closed",
            Self::Status => "status",
            Self::NotKeepAlive => "not_keep_alive",
            Self::Timeout => "timeout",
            Self::Pacer => "pacer",
            Self::Thread => "thread",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::error::Error for Failure {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct() {
        let all = [
            Failure::TlsConfig,
            Failure::Connect,
            Failure::Proxy,
            Failure::TlsHandshake,
            Failure::Encode,
            Failure::Send,
            Failure::Receive,
            Failure::EchoMismatch,
            Failure::Closed,
            Failure::Status,
            Failure::NotKeepAlive,
            Failure::Timeout,
            Failure::Pacer,
            Failure::Thread,
        ];
        let names: std::collections::BTreeSet<&str> = all.iter().map(|f| f.name()).collect();
        assert_eq!(names.len(), all.len());
        assert_eq!(Failure::EchoMismatch.to_string(), "echo_mismatch");
    }
}
