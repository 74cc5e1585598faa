//! Why a control channel is being (re)connected, and how the driver reports a failed connect
//! (protocol §4.1, §4.8, §8.1, §8.2, §8.5).
//!
//! [`ReconnectReason::as_str`] values are metric label values (`reconnects_total{reason=…}`):
//! they are stable and must not change once released.

use crate::proto::hc::backoff::BackoffClass;

/// How an attempt to open the control channel failed (protocol §4.1, §8.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectFailure {
    /// The relay answered the upgrade with this HTTP status instead of `101`.
    Status(u16),
    /// DNS, TCP, proxy or TLS failed before an HTTP answer arrived.
    Io,
    /// An answer arrived but was not a valid WebSocket upgrade (protocol §4.1).
    Handshake,
    /// The HTTP proxy answered CONNECT with 407: credentials missing, wrong, or of a scheme
    /// hycod does not speak.
    ProxyAuth,
}

/// Why the machine asked for a reconnect; one value per metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReconnectReason {
    /// The connect did not complete within the connect timeout.
    ConnectTimeout,
    /// `401` on listen: token missing, malformed or invalid (protocol §4.1).
    Http401,
    /// `403` on listen: no Listen right, or the listener quota is exceeded (protocol §4.1, §11 item
    /// 3).
    Http403,
    /// `404` on listen: hybrid connection missing or URL malformed (protocol §4.1).
    Http404,
    /// A `5xx` on listen: service error (protocol §8.1).
    Http5xx,
    /// Any other non-`101` status on listen.
    HttpOther,
    /// DNS, TCP, proxy or TLS failure while connecting.
    IoError,
    /// The upgrade answer was not a valid WebSocket handshake.
    HandshakeError,
    /// Close 1001: the gateway is going away (maintenance, protocol §4.8); also sent when the hybrid
    /// connection is deleted or disabled, which the next connect then reports as 404.
    Closed1001,
    /// Close 1008: token expired or renewal rejected (protocol §4.6, §4.8).
    Closed1008,
    /// Close 1011: service error, incl. the daily recycle (protocol §4.8).
    Closed1011,
    /// A close frame with any other code (or none).
    ClosedOther,
    /// The connection ended without a close frame (TCP reset, EOF).
    ConnectionLost,
    /// No inbound traffic (not even a pong) for two ping intervals (protocol §4.7).
    KeepaliveTimeout,
    /// The channel's token expired on our side before it was renewed (protocol §4.6).
    TokenExpired,
    /// The HTTP proxy demanded authentication (407).
    ProxyAuth,
}

impl ReconnectReason {
    /// Every reason, e.g. to pre-register metric series at zero.
    pub const ALL: [ReconnectReason; 16] = [
        Self::ConnectTimeout,
        Self::Http401,
        Self::Http403,
        Self::Http404,
        Self::Http5xx,
        Self::HttpOther,
        Self::IoError,
        Self::HandshakeError,
        Self::Closed1001,
        Self::Closed1008,
        Self::Closed1011,
        Self::ClosedOther,
        Self::ConnectionLost,
        Self::KeepaliveTimeout,
        Self::TokenExpired,
        Self::ProxyAuth,
    ];

    /// The reason for a failed connect.
    pub fn from_failure(failure: ConnectFailure) -> ReconnectReason {
        match failure {
            ConnectFailure::Status(401) => Self::Http401,
            ConnectFailure::Status(403) => Self::Http403,
            ConnectFailure::Status(404) => Self::Http404,
            ConnectFailure::Status(500..=599) => Self::Http5xx,
            ConnectFailure::Status(_) => Self::HttpOther,
            ConnectFailure::Io => Self::IoError,
            ConnectFailure::Handshake => Self::HandshakeError,
            ConnectFailure::ProxyAuth => Self::ProxyAuth,
        }
    }

    /// The reason for a channel the relay closed; `None` means no close frame arrived.
    pub fn from_close(code: Option<u16>) -> ReconnectReason {
        match code {
            Some(1001) => Self::Closed1001,
            Some(1008) => Self::Closed1008,
            Some(1011) => Self::Closed1011,
            Some(_) => Self::ClosedOther,
            None => Self::ConnectionLost,
        }
    }

    /// The stable metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConnectTimeout => "connect_timeout",
            Self::Http401 => "http_401",
            Self::Http403 => "http_403",
            Self::Http404 => "http_404",
            Self::Http5xx => "http_5xx",
            Self::HttpOther => "http_other",
            Self::IoError => "io_error",
            Self::HandshakeError => "handshake_error",
            Self::Closed1001 => "closed_1001",
            Self::Closed1008 => "closed_1008",
            Self::Closed1011 => "closed_1011",
            Self::ClosedOther => "closed_other",
            Self::ConnectionLost => "connection_lost",
            Self::KeepaliveTimeout => "keepalive_timeout",
            Self::TokenExpired => "token_expired",
            Self::ProxyAuth => "proxy_auth",
        }
    }

    /// Which back-off ladder the reconnect climbs (protocol §8.5).
    ///
    /// \[INFER\] beyond the table in §8.5: 403 (also the likely quota-exceeded answer, §11 item 3)
    /// is [`BackoffClass::Auth`]; a token that expired on our side is treated like close 1008.
    /// Close 1001 climbs the normal ladder, as in the .NET listener, which turns every close into
    /// a `ConnectionLostException` and reconnects on its 0–30 s ladder (docs/architecture.md
    /// "Reconnecting"); a deleted hybrid connection then shows as 404 on the next connect.
    pub fn backoff_class(self) -> BackoffClass {
        match self {
            Self::Http401 | Self::Http403 | Self::ProxyAuth => BackoffClass::Auth,
            Self::Http404 => BackoffClass::NotFound,
            Self::Closed1008 | Self::TokenExpired => BackoffClass::TokenExpired,
            Self::ConnectTimeout
            | Self::Http5xx
            | Self::HttpOther
            | Self::IoError
            | Self::HandshakeError
            | Self::Closed1001
            | Self::Closed1011
            | Self::ClosedOther
            | Self::ConnectionLost
            | Self::KeepaliveTimeout => BackoffClass::Transient,
        }
    }

    /// Whether an operator must act (credentials, rights, missing hybrid connection): log at
    /// error level and alert (protocol §8.5).
    pub fn needs_operator(self) -> bool {
        self.backoff_class().is_long()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn labels_are_unique_and_snake_case() {
        let labels: HashSet<&str> = ReconnectReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), ReconnectReason::ALL.len());
        for label in labels {
            assert!(label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        }
    }

    #[test]
    fn http_statuses_map_to_reasons() {
        let cases = [
            (401, ReconnectReason::Http401, "http_401"),
            (403, ReconnectReason::Http403, "http_403"),
            (404, ReconnectReason::Http404, "http_404"),
            (500, ReconnectReason::Http5xx, "http_5xx"),
            (503, ReconnectReason::Http5xx, "http_5xx"),
            (400, ReconnectReason::HttpOther, "http_other"),
            (302, ReconnectReason::HttpOther, "http_other"),
        ];
        for (status, reason, label) in cases {
            let got = ReconnectReason::from_failure(ConnectFailure::Status(status));
            assert_eq!(got, reason, "status {status}");
            assert_eq!(got.as_str(), label);
        }
    }

    #[test]
    fn transport_failures_map_to_reasons() {
        assert_eq!(
            ReconnectReason::from_failure(ConnectFailure::Io).as_str(),
            "io_error"
        );
        assert_eq!(
            ReconnectReason::from_failure(ConnectFailure::Handshake).as_str(),
            "handshake_error"
        );
    }

    #[test]
    fn close_codes_map_to_reasons() {
        let cases = [
            (Some(1001), ReconnectReason::Closed1001, "closed_1001"),
            (Some(1008), ReconnectReason::Closed1008, "closed_1008"),
            (Some(1011), ReconnectReason::Closed1011, "closed_1011"),
            (Some(1000), ReconnectReason::ClosedOther, "closed_other"),
            (Some(4000), ReconnectReason::ClosedOther, "closed_other"),
            (None, ReconnectReason::ConnectionLost, "connection_lost"),
        ];
        for (code, reason, label) in cases {
            let got = ReconnectReason::from_close(code);
            assert_eq!(got, reason, "code {code:?}");
            assert_eq!(got.as_str(), label);
        }
    }

    #[test]
    fn reasons_pick_the_spec_backoff_class() {
        use BackoffClass::*;
        use ReconnectReason as R;
        let cases = [
            (R::Http401, Auth),
            (R::Http403, Auth),
            (R::ProxyAuth, Auth),
            (R::Http404, NotFound),
            (R::Closed1001, Transient),
            (R::Closed1008, TokenExpired),
            (R::TokenExpired, TokenExpired),
            (R::Closed1011, Transient),
            (R::IoError, Transient),
            (R::ConnectionLost, Transient),
            (R::KeepaliveTimeout, Transient),
            (R::ConnectTimeout, Transient),
            (R::Http5xx, Transient),
            (R::HttpOther, Transient),
            (R::HandshakeError, Transient),
            (R::ClosedOther, Transient),
        ];
        assert_eq!(cases.len(), ReconnectReason::ALL.len());
        for (reason, class) in cases {
            assert_eq!(reason.backoff_class(), class, "{reason:?}");
            assert_eq!(reason.needs_operator(), class.is_long(), "{reason:?}");
        }
    }

    /// A gateway going away (maintenance) is not an operator's problem: the .NET listener turns
    /// any close into `ConnectionLostException` and retries on its short ladder.
    #[test]
    fn close_1001_climbs_the_normal_ladder_and_alerts_nobody() {
        let reason = ReconnectReason::from_close(Some(1001));
        assert_eq!(reason.backoff_class(), BackoffClass::Transient);
        assert!(!reason.needs_operator());
    }
}
