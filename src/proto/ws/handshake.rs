//! The WebSocket opening handshake (RFC 6455 §4), both sides, sans-I/O over
//! [`crate::proto::http1`].
//!
//! Client side ([`ClientHandshake`]): the daemon's control channel and rendezvous connects
//! (protocol §4.1, §5.1, §6.3). A non-101 answer is not an error but a [`Rejection`]: the reject
//! path of protocol §5.2 *expects* `410 Gone`, and Azure explains other refusals in the body.
//!
//! Server side ([`parse_upgrade_request`]): the relay's listen, connect and rendezvous
//! endpoints. It tolerates what the Node SDKs send (protocol §10.3, §10.6): an ignored
//! `permessage-deflate` offer and odd header names such as `0`. Neither side ever negotiates an
//! extension (protocol §5.1, §10.6 items 2 and 4).

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ring::digest;

use crate::proto::http1::{
    is_token, list_elements, parse_request_head, parse_response_head, reason_phrase,
    request_body_kind, response_body_kind, write_request_head, write_response_head, BodyKind,
    FramingError, HeadError, Headers, Limits, RequestHead, ResponseHead, Version, WriteError,
};

/// The only protocol version spoken (RFC 6455 §4.1 item 9).
pub const WEBSOCKET_VERSION: &str = "13";

/// Appended to the key before hashing (RFC 6455 §1.3).
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Handshake fields the client writes itself; extra headers may not repeat them.
const RESERVED_REQUEST_HEADERS: &[&str] = &[
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "sec-websocket-accept",
    "content-length",
    "transfer-encoding",
];

/// `Sec-WebSocket-Accept` for a `Sec-WebSocket-Key` (RFC 6455 §4.2.2 item 5.4): base64 of the
/// SHA-1 of the key followed by the protocol GUID.
pub fn accept_key(sec_websocket_key: &str) -> String {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(sec_websocket_key.as_bytes());
    ctx.update(ACCEPT_GUID);
    BASE64.encode(ctx.finish())
}

// ---------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------

/// Why a client handshake request cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientRequestError {
    /// An extra header would repeat a field the handshake writes itself.
    ReservedHeader { name: String },
    /// The subprotocol is not a token (RFC 6455 §4.1 item 10).
    InvalidSubprotocol { protocol: String },
    /// The host, path or an extra header cannot be written (e.g. header injection).
    Head(WriteError),
}

impl fmt::Display for ClientRequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReservedHeader { name } => {
                write!(
                    f,
                    "header {name:?} is written by the WebSocket handshake itself"
                )
            }
            Self::InvalidSubprotocol { protocol } => {
                write!(f, "subprotocol {protocol:?} is not a token")
            }
            Self::Head(e) => write!(f, "WebSocket handshake request: {e}"),
        }
    }
}

impl std::error::Error for ClientRequestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Head(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a server's answer to our handshake is not acceptable (RFC 6455 §4.1, client
/// requirements on the response). Header values are never included: they may be echoed
/// credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The response head is malformed or too large.
    Head(HeadError),
    /// The 101 response is not HTTP/1.1.
    NotHttp11,
    /// `Upgrade` does not name `websocket`.
    UpgradeNotWebsocket,
    /// `Connection` does not hold the `upgrade` token.
    ConnectionNotUpgrade,
    /// `Sec-WebSocket-Accept` is missing.
    MissingAccept,
    /// `Sec-WebSocket-Accept` is repeated or does not match our key.
    AcceptMismatch,
    /// The server chose a subprotocol we did not offer.
    UnofferedSubprotocol { protocol: String },
    /// The server turned on an extension; we offer none.
    UnexpectedExtension,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Head(e) => write!(f, "WebSocket handshake response: {e}"),
            Self::NotHttp11 => f.write_str("WebSocket handshake response is not HTTP/1.1"),
            Self::UpgradeNotWebsocket => {
                f.write_str("WebSocket handshake response: Upgrade is not websocket")
            }
            Self::ConnectionNotUpgrade => {
                f.write_str("WebSocket handshake response: Connection lacks upgrade")
            }
            Self::MissingAccept => {
                f.write_str("WebSocket handshake response: Sec-WebSocket-Accept is missing")
            }
            Self::AcceptMismatch => {
                f.write_str("WebSocket handshake response: Sec-WebSocket-Accept does not match")
            }
            Self::UnofferedSubprotocol { protocol } => write!(
                f,
                "WebSocket handshake response: subprotocol {protocol:?} was not offered"
            ),
            Self::UnexpectedExtension => f.write_str(
                "WebSocket handshake response: Sec-WebSocket-Extensions present but none offered",
            ),
        }
    }
}

impl std::error::Error for HandshakeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Head(e) => Some(e),
            _ => None,
        }
    }
}

impl From<HeadError> for HandshakeError {
    fn from(e: HeadError) -> Self {
        Self::Head(e)
    }
}

/// What the client remembers between writing its request and reading the answer. It holds no
/// header values, so it cannot leak a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHandshake {
    expected_accept: String,
    subprotocol: Option<String>,
}

/// A validated `101 Switching Protocols`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandshakeResponse {
    /// The subprotocol the server chose (always the one we offered), if any.
    pub subprotocol: Option<String>,
    pub head: ResponseHead,
}

/// A final answer other than 101: the server refused, or (protocol §5.2) acknowledged a
/// rejection with `410 Gone`. A body may follow the head; see [`Rejection::body_kind`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub head: ResponseHead,
}

impl Rejection {
    /// The status code, e.g. 410 for a delivered rejection (protocol §5.2), 401/403/404 on listen
    /// (protocol §4.1).
    pub fn status(&self) -> u16 {
        self.head.status
    }

    /// The reason phrase; Azure puts a tracking id here (protocol §4.1).
    pub fn reason(&self) -> &str {
        &self.head.reason
    }

    /// How the body after the head is framed (the answer to a `GET`).
    pub fn body_kind(&self) -> Result<BodyKind, FramingError> {
        response_body_kind("GET", &self.head)
    }
}

/// The final answer to a client handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeOutcome {
    /// `101`: the connection now carries WebSocket frames.
    Accepted(HandshakeResponse),
    /// Any other final status.
    Rejected(Rejection),
}

impl ClientHandshake {
    /// Appends the upgrade request to `dst` and returns what is needed to check the answer.
    ///
    /// `host` is the `Host` value (with the port when it is not the scheme's default);
    /// `key` is 16 random bytes from the caller (RFC 6455 §4.1 item 7); `extra_headers` are
    /// written after the handshake fields in order (e.g. `ServiceBusAuthorization`, protocol
    /// §4.1) and are not kept, so `dst` is the only place they end up: do not log it. On error
    /// `dst` is unchanged.
    pub fn new(
        dst: &mut Vec<u8>,
        host: &str,
        path_and_query: &str,
        key: [u8; 16],
        extra_headers: &[(&str, &str)],
        subprotocol: Option<&str>,
    ) -> Result<Self, ClientRequestError> {
        if let Some((name, _)) = extra_headers.iter().find(|(name, _)| {
            RESERVED_REQUEST_HEADERS
                .iter()
                .any(|r| r.eq_ignore_ascii_case(name))
        }) {
            return Err(ClientRequestError::ReservedHeader {
                name: (*name).to_owned(),
            });
        }
        if let Some(protocol) = subprotocol {
            if !is_token(protocol.as_bytes()) {
                return Err(ClientRequestError::InvalidSubprotocol {
                    protocol: protocol.to_owned(),
                });
            }
        }
        let key = BASE64.encode(key);
        let fixed = [
            ("Host", host),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", key.as_str()),
            ("Sec-WebSocket-Version", WEBSOCKET_VERSION),
        ];
        let protocol = subprotocol.map(|p| ("Sec-WebSocket-Protocol", p));
        let fields = fixed
            .into_iter()
            .chain(protocol)
            .chain(extra_headers.iter().copied());
        write_request_head(dst, "GET", path_and_query, fields).map_err(ClientRequestError::Head)?;
        Ok(Self {
            expected_accept: accept_key(&key),
            subprotocol: subprotocol.map(str::to_owned),
        })
    }

    /// Parses the server's answer from the start of `buf`, skipping interim 1xx heads
    /// (RFC 9110 §15.2). `Ok(None)`: more bytes are needed. Otherwise the outcome and how many
    /// bytes of `buf` it used; what follows is WebSocket frames (accepted) or the body
    /// (rejected).
    pub fn parse_response(
        &self,
        buf: &[u8],
    ) -> Result<Option<(HandshakeOutcome, usize)>, HandshakeError> {
        let limits = Limits::default();
        let mut used = 0;
        loop {
            let Some((head, len)) = parse_response_head(&buf[used..], &limits)? else {
                return Ok(None);
            };
            used += len;
            if head.status == 101 {
                let response = self.validate_switch(head)?;
                return Ok(Some((HandshakeOutcome::Accepted(response), used)));
            }
            if !head.is_informational() {
                return Ok(Some((HandshakeOutcome::Rejected(Rejection { head }), used)));
            }
        }
    }

    /// RFC 6455 §4.1, the client's checks of a 101 response.
    fn validate_switch(&self, head: ResponseHead) -> Result<HandshakeResponse, HandshakeError> {
        if head.version != Version::Http11 {
            return Err(HandshakeError::NotHttp11);
        }
        if !head.headers.has_token("upgrade", "websocket") {
            return Err(HandshakeError::UpgradeNotWebsocket);
        }
        if !head.headers.has_token("connection", "upgrade") {
            return Err(HandshakeError::ConnectionNotUpgrade);
        }
        self.check_accept(&head.headers)?;
        let extensions = head.headers.get_all("sec-websocket-extensions");
        if extensions.flat_map(list_elements).next().is_some() {
            return Err(HandshakeError::UnexpectedExtension);
        }
        let subprotocol = self.chosen_subprotocol(&head.headers)?;
        Ok(HandshakeResponse { subprotocol, head })
    }

    /// Exactly one `Sec-WebSocket-Accept`, matching our key.
    fn check_accept(&self, headers: &Headers) -> Result<(), HandshakeError> {
        let mut accepts = headers.get_all("sec-websocket-accept");
        match (accepts.next(), accepts.next()) {
            (None, _) => Err(HandshakeError::MissingAccept),
            (Some(accept), None) if accept == self.expected_accept.as_bytes() => Ok(()),
            _ => Err(HandshakeError::AcceptMismatch),
        }
    }

    /// The server's `Sec-WebSocket-Protocol`, which must be the one we offered.
    fn chosen_subprotocol(&self, headers: &Headers) -> Result<Option<String>, HandshakeError> {
        let mut chosen = headers
            .get_all("sec-websocket-protocol")
            .flat_map(list_elements);
        let Some(first) = chosen.next() else {
            return Ok(None);
        };
        let offered = self.subprotocol.as_deref().map(str::as_bytes);
        if Some(first) != offered || chosen.next().is_some() {
            return Err(HandshakeError::UnofferedSubprotocol {
                protocol: String::from_utf8_lossy(first).into_owned(),
            });
        }
        Ok(self.subprotocol.clone())
    }
}

// ---------------------------------------------------------------------------------------------
// Server side
// ---------------------------------------------------------------------------------------------

/// Why an upgrade request is refused (RFC 6455 §4.2.1). [`status_for`] gives the status to
/// answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpgradeError {
    /// The request head is malformed or too large.
    Head(HeadError),
    /// The method is not `GET`.
    MethodNotGet { method: String },
    /// The request is not HTTP/1.1.
    NotHttp11,
    /// The request-target is not origin-form (`/path?query`).
    TargetNotOriginForm,
    /// There is no `Host` field.
    MissingHost,
    /// There is more than one `Host` field (RFC 9112 §3.2).
    DuplicateHost,
    /// `Upgrade` does not name `websocket`.
    NotWebsocketUpgrade,
    /// `Connection` does not hold the `upgrade` token.
    ConnectionNotUpgrade,
    /// There is no `Sec-WebSocket-Version` field.
    MissingVersion,
    /// `Sec-WebSocket-Version` is not 13; answered with 426 and the version we speak
    /// (RFC 6455 §4.4).
    UnsupportedVersion { version: String },
    /// There is no `Sec-WebSocket-Key` field.
    MissingKey,
    /// There is more than one `Sec-WebSocket-Key` field.
    DuplicateKey,
    /// `Sec-WebSocket-Key` is not the base64 of 16 bytes.
    InvalidKey,
    /// An offered subprotocol is not a token.
    InvalidSubprotocol { protocol: String },
    /// The request announces a body (`Content-Length` or `Transfer-Encoding`); after the head
    /// only frames may follow.
    UpgradeWithBody,
}

impl fmt::Display for UpgradeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Head(e) => write!(f, "WebSocket upgrade request: {e}"),
            Self::MethodNotGet { method } => {
                write!(f, "WebSocket upgrade request method is {method:?}, not GET")
            }
            Self::NotHttp11 => f.write_str("WebSocket upgrade request is not HTTP/1.1"),
            Self::TargetNotOriginForm => {
                f.write_str("WebSocket upgrade request target does not start with /")
            }
            Self::MissingHost => f.write_str("WebSocket upgrade request has no Host"),
            Self::DuplicateHost => f.write_str("WebSocket upgrade request has several Host fields"),
            Self::NotWebsocketUpgrade => {
                f.write_str("WebSocket upgrade request: Upgrade is not websocket")
            }
            Self::ConnectionNotUpgrade => {
                f.write_str("WebSocket upgrade request: Connection lacks upgrade")
            }
            Self::MissingVersion => {
                f.write_str("WebSocket upgrade request has no Sec-WebSocket-Version")
            }
            Self::UnsupportedVersion { version } => write!(
                f,
                "WebSocket upgrade request: Sec-WebSocket-Version {version:?} is not 13"
            ),
            Self::MissingKey => f.write_str("WebSocket upgrade request has no Sec-WebSocket-Key"),
            Self::DuplicateKey => {
                f.write_str("WebSocket upgrade request has several Sec-WebSocket-Key fields")
            }
            Self::InvalidKey => f.write_str(
                "WebSocket upgrade request: Sec-WebSocket-Key is not base64 of 16 bytes",
            ),
            Self::InvalidSubprotocol { protocol } => write!(
                f,
                "WebSocket upgrade request: subprotocol {protocol:?} is not a token"
            ),
            Self::UpgradeWithBody => f.write_str("WebSocket upgrade request announces a body"),
        }
    }
}

impl std::error::Error for UpgradeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Head(e) => Some(e),
            _ => None,
        }
    }
}

impl From<HeadError> for UpgradeError {
    fn from(e: HeadError) -> Self {
        Self::Head(e)
    }
}

/// The status code to refuse an upgrade with: 426 for a version we do not speak (write it
/// with [`write_error_response`], which adds `Sec-WebSocket-Version: 13`), 431 for an
/// oversized head, 400 otherwise.
pub fn status_for(error: &UpgradeError) -> u16 {
    match error {
        UpgradeError::UnsupportedVersion { .. } => 426,
        UpgradeError::Head(HeadError::HeadTooLarge { .. } | HeadError::TooManyHeaders { .. }) => {
            431
        }
        _ => 400,
    }
}

/// A valid WebSocket upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// The whole head: target, and every header in order (including odd names such as `0`).
    pub head: RequestHead,
    /// The `Sec-WebSocket-Key` value.
    pub key: String,
    /// The offered subprotocols, in order of preference.
    pub subprotocols: Vec<String>,
}

impl UpgradeRequest {
    /// Validates a parsed head as an upgrade request (RFC 6455 §4.2.1).
    pub fn from_head(head: RequestHead) -> Result<Self, UpgradeError> {
        if head.method != "GET" {
            return Err(UpgradeError::MethodNotGet {
                method: head.method,
            });
        }
        if head.version != Version::Http11 {
            return Err(UpgradeError::NotHttp11);
        }
        if !head.target.starts_with('/') {
            return Err(UpgradeError::TargetNotOriginForm);
        }
        match head.headers.count("host") {
            0 => return Err(UpgradeError::MissingHost),
            1 => {}
            _ => return Err(UpgradeError::DuplicateHost),
        }
        if !is_upgrade_request(&head) {
            return Err(UpgradeError::NotWebsocketUpgrade);
        }
        if !head.headers.has_token("connection", "upgrade") {
            return Err(UpgradeError::ConnectionNotUpgrade);
        }
        check_version(&head.headers)?;
        let key = client_key(&head.headers)?;
        let subprotocols = offered_subprotocols(&head.headers)?;
        if request_body_kind(&head) != Ok(BodyKind::Empty) {
            return Err(UpgradeError::UpgradeWithBody);
        }
        Ok(Self {
            head,
            key,
            subprotocols,
        })
    }

    /// The target up to the `?`.
    pub fn path(&self) -> &str {
        self.head.path()
    }

    /// The target after the `?`, if any.
    pub fn query(&self) -> Option<&str> {
        self.head.query()
    }

    /// Every request header in wire order.
    pub fn headers(&self) -> &Headers {
        &self.head.headers
    }

    /// The `Sec-WebSocket-Accept` value answering this request.
    pub fn accept_key(&self) -> String {
        accept_key(&self.key)
    }
}

/// Whether a request asks for a WebSocket upgrade (`Upgrade: websocket`), so that a server
/// serving plain HTTP on the same port can route it to [`UpgradeRequest::from_head`].
pub fn is_upgrade_request(head: &RequestHead) -> bool {
    head.headers.has_token("upgrade", "websocket")
}

/// Parses and validates an upgrade request from the start of `buf`. `Ok(None)`: more bytes
/// are needed. Otherwise the request and its head length; WebSocket frames follow.
pub fn parse_upgrade_request(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(UpgradeRequest, usize)>, UpgradeError> {
    let Some((head, len)) = parse_request_head(buf, limits)? else {
        return Ok(None);
    };
    Ok(Some((UpgradeRequest::from_head(head)?, len)))
}

fn check_version(headers: &Headers) -> Result<(), UpgradeError> {
    let mut versions = headers.get_all("sec-websocket-version");
    let Some(first) = versions.next() else {
        return Err(UpgradeError::MissingVersion);
    };
    if first != WEBSOCKET_VERSION.as_bytes() || versions.next().is_some() {
        return Err(UpgradeError::UnsupportedVersion {
            version: String::from_utf8_lossy(first).into_owned(),
        });
    }
    Ok(())
}

fn client_key(headers: &Headers) -> Result<String, UpgradeError> {
    let mut keys = headers.get_all("sec-websocket-key");
    let Some(key) = keys.next() else {
        return Err(UpgradeError::MissingKey);
    };
    if keys.next().is_some() {
        return Err(UpgradeError::DuplicateKey);
    }
    match BASE64.decode(key) {
        Ok(raw) if raw.len() == 16 => {}
        _ => return Err(UpgradeError::InvalidKey),
    }
    // Valid base64 is ASCII, so this never fails.
    String::from_utf8(key.to_vec()).map_err(|_| UpgradeError::InvalidKey)
}

fn offered_subprotocols(headers: &Headers) -> Result<Vec<String>, UpgradeError> {
    headers
        .get_all("sec-websocket-protocol")
        .flat_map(list_elements)
        .map(|p| {
            if is_token(p) {
                Ok(String::from_utf8_lossy(p).into_owned())
            } else {
                Err(UpgradeError::InvalidSubprotocol {
                    protocol: String::from_utf8_lossy(p).into_owned(),
                })
            }
        })
        .collect()
}

/// Appends the `101 Switching Protocols` answer (RFC 6455 §4.2.2 item 5). It never carries
/// `Sec-WebSocket-Extensions` (protocol §10.6 items 2 and 4).
pub fn write_switching_protocols(
    dst: &mut Vec<u8>,
    accept_key: &str,
    subprotocol: Option<&str>,
) -> Result<(), WriteError> {
    let fixed = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Accept", accept_key),
    ];
    let protocol = subprotocol.map(|p| ("Sec-WebSocket-Protocol", p));
    write_response_head(
        dst,
        101,
        reason_phrase(101),
        fixed.into_iter().chain(protocol),
    )
}

/// Appends a refusal with a plain-text `body` and `Connection: close`. A 426 also carries
/// `Sec-WebSocket-Version: 13` (RFC 6455 §4.4). `reason` may come from a listener (protocol §5.2)
/// and is checked like every head field.
pub fn write_error_response(
    dst: &mut Vec<u8>,
    status: u16,
    reason: &str,
    body: &[u8],
) -> Result<(), WriteError> {
    let length = body.len().to_string();
    let mut fields = vec![("Content-Length", length.as_str()), ("Connection", "close")];
    if !body.is_empty() {
        fields.push(("Content-Type", "text/plain; charset=utf-8"));
    }
    if status == 426 {
        fields.push(("Sec-WebSocket-Version", WEBSOCKET_VERSION));
    }
    write_response_head(dst, status, reason, fields)?;
    dst.extend_from_slice(body);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 16] = *b"the sample nonce";
    const KEY_B64: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    /// The worked example of RFC 6455 §1.3.
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    #[test]
    fn accept_key_matches_rfc_example() {
        assert_eq!(BASE64.encode(KEY), KEY_B64);
        assert_eq!(accept_key(KEY_B64), ACCEPT);
    }

    // ---- client request ----

    fn client(dst: &mut Vec<u8>, protocol: Option<&str>) -> ClientHandshake {
        ClientHandshake::new(
            dst,
            "relay.example:9000",
            "/$hc/hyco?sb-hc-action=listen&sb-hc-id=1",
            KEY,
            &[
                (
                    "ServiceBusAuthorization",
                    "SharedAccessSignature sig=SECRET",
                ),
                ("Relay-User-Agent", "hycod"),
            ],
            protocol,
        )
        .unwrap()
    }

    #[test]
    fn client_request_bytes() {
        let mut out = Vec::new();
        client(&mut out, Some("chat"));
        let expected = "GET /$hc/hyco?sb-hc-action=listen&sb-hc-id=1 HTTP/1.1\r\n\
            Host: relay.example:9000\r\n\
            Upgrade: websocket\r\n\
            Connection: Upgrade\r\n\
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
            Sec-WebSocket-Version: 13\r\n\
            Sec-WebSocket-Protocol: chat\r\n\
            ServiceBusAuthorization: SharedAccessSignature sig=SECRET\r\n\
            Relay-User-Agent: hycod\r\n\r\n";
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn client_state_never_holds_extra_headers() {
        let hs = client(&mut Vec::new(), None);
        let printed = format!("{hs:?}");
        assert!(!printed.contains("SECRET"), "{printed}");
    }

    /// Extra headers, subprotocol, host, and the error they cause.
    type RequestCase<'a> = (
        &'a [(&'a str, &'a str)],
        Option<&'a str>,
        &'a str,
        ClientRequestError,
    );

    #[test]
    fn client_request_errors() {
        let cases: &[RequestCase] = &[
            (
                &[("sec-websocket-key", "x")],
                None,
                "h",
                ClientRequestError::ReservedHeader {
                    name: "sec-websocket-key".into(),
                },
            ),
            (
                &[("Sec-WebSocket-Extensions", "permessage-deflate")],
                None,
                "h",
                ClientRequestError::ReservedHeader {
                    name: "Sec-WebSocket-Extensions".into(),
                },
            ),
            (
                &[("HOST", "x")],
                None,
                "h",
                ClientRequestError::ReservedHeader {
                    name: "HOST".into(),
                },
            ),
            (
                &[],
                Some("a b"),
                "h",
                ClientRequestError::InvalidSubprotocol {
                    protocol: "a b".into(),
                },
            ),
            (
                &[],
                Some(""),
                "h",
                ClientRequestError::InvalidSubprotocol {
                    protocol: "".into(),
                },
            ),
            (
                &[("ServiceBusAuthorization", "tok\r\nX: y")],
                None,
                "h",
                ClientRequestError::Head(WriteError::HeaderInjection {
                    name: "ServiceBusAuthorization".into(),
                }),
            ),
            (
                &[],
                None,
                "h\r\nX: y",
                ClientRequestError::Head(WriteError::HeaderInjection {
                    name: "Host".into(),
                }),
            ),
        ];
        for (extra, protocol, host, expected) in cases {
            let mut out = b"keep".to_vec();
            let got = ClientHandshake::new(&mut out, host, "/", KEY, extra, *protocol);
            assert_eq!(got, Err(expected.clone()), "{extra:?} {protocol:?}");
            assert_eq!(out, b"keep");
        }
        let got = ClientHandshake::new(&mut Vec::new(), "h", "/a b", KEY, &[], None);
        assert_eq!(
            got,
            Err(ClientRequestError::Head(WriteError::InvalidTarget))
        );
    }

    #[test]
    fn client_request_error_hides_secret_value() {
        let err = ClientHandshake::new(
            &mut Vec::new(),
            "h",
            "/",
            KEY,
            &[("ServiceBusAuthorization", "SECRET\n")],
            None,
        )
        .unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("SECRET"), "{text}");
    }

    // ---- client response ----

    fn switching(extra: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {ACCEPT}\r\n{extra}\r\n"
        )
        .into_bytes()
    }

    fn outcome(hs: &ClientHandshake, buf: &[u8]) -> Result<HandshakeOutcome, HandshakeError> {
        hs.parse_response(buf).map(|r| r.unwrap().0)
    }

    #[test]
    fn accepts_a_valid_101() {
        let hs = client(&mut Vec::new(), None);
        let mut buf = switching("");
        let head_len = buf.len();
        buf.extend_from_slice(b"\x81\x02hi");
        let (outcome, used) = hs.parse_response(&buf).unwrap().unwrap();
        assert_eq!(used, head_len);
        let HandshakeOutcome::Accepted(response) = outcome else {
            panic!("expected Accepted, got {outcome:?}");
        };
        assert_eq!(response.subprotocol, None);
        assert_eq!(response.head.status, 101);
    }

    #[test]
    fn accepts_case_and_list_variants() {
        let hs = client(&mut Vec::new(), None);
        let buf = format!(
            "HTTP/1.1 101 x\r\nupgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n\
             sec-websocket-accept: {ACCEPT}\r\nSec-WebSocket-Extensions:\r\n\r\n"
        );
        assert!(matches!(
            outcome(&hs, buf.as_bytes()),
            Ok(HandshakeOutcome::Accepted(_))
        ));
    }

    #[test]
    fn returns_the_offered_subprotocol() {
        let hs = client(&mut Vec::new(), Some("chat"));
        let buf = switching("Sec-WebSocket-Protocol: chat\r\n");
        let Ok(HandshakeOutcome::Accepted(r)) = outcome(&hs, &buf) else {
            panic!("not accepted");
        };
        assert_eq!(r.subprotocol.as_deref(), Some("chat"));
        // The server may also decline to pick one.
        let Ok(HandshakeOutcome::Accepted(r)) = outcome(&hs, &switching("")) else {
            panic!("not accepted");
        };
        assert_eq!(r.subprotocol, None);
    }

    #[test]
    fn needs_more_bytes_until_the_head_is_complete() {
        let hs = client(&mut Vec::new(), None);
        let buf = switching("");
        for end in 0..buf.len() {
            assert_eq!(hs.parse_response(&buf[..end]), Ok(None), "{end}");
        }
        assert!(hs.parse_response(&buf).unwrap().is_some());
    }

    #[test]
    fn response_rule_violations() {
        let plain = client(&mut Vec::new(), None);
        let chat = client(&mut Vec::new(), Some("chat"));
        let wrong = "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n";
        let cases: Vec<(&ClientHandshake, Vec<u8>, HandshakeError)> = vec![
            (
                &plain,
                switching("").replacen(b"HTTP/1.1", b"HTTP/1.0", 1),
                HandshakeError::NotHttp11,
            ),
            (
                &plain,
                switching("").replacen(b"Upgrade: websocket", b"Upgrade: h2c", 1),
                HandshakeError::UpgradeNotWebsocket,
            ),
            (
                &plain,
                switching("").replacen(b"Upgrade: websocket\r\n", b"", 1),
                HandshakeError::UpgradeNotWebsocket,
            ),
            (
                &plain,
                switching("").replacen(b"Connection: Upgrade", b"Connection: close", 1),
                HandshakeError::ConnectionNotUpgrade,
            ),
            (
                &plain,
                switching("").replacen(b"Sec-WebSocket-Accept", b"X-Accept", 1),
                HandshakeError::MissingAccept,
            ),
            (
                &plain,
                switching("").replacen(ACCEPT.as_bytes(), b"s3pPLMBiTxaQ9kYGzzhZRbK+xOp=", 1),
                HandshakeError::AcceptMismatch,
            ),
            (&plain, switching(wrong), HandshakeError::AcceptMismatch),
            (
                &plain,
                switching("Sec-WebSocket-Extensions: permessage-deflate\r\n"),
                HandshakeError::UnexpectedExtension,
            ),
            (
                &plain,
                switching("Sec-WebSocket-Protocol: chat\r\n"),
                HandshakeError::UnofferedSubprotocol {
                    protocol: "chat".into(),
                },
            ),
            (
                &chat,
                switching("Sec-WebSocket-Protocol: superchat\r\n"),
                HandshakeError::UnofferedSubprotocol {
                    protocol: "superchat".into(),
                },
            ),
            (
                &chat,
                switching("Sec-WebSocket-Protocol: chat, chat\r\n"),
                HandshakeError::UnofferedSubprotocol {
                    protocol: "chat".into(),
                },
            ),
            (
                &plain,
                b"HTTP/1.1 101 x\r\nBad Header\r\n\r\n".to_vec(),
                HandshakeError::Head(HeadError::InvalidHeaderName),
            ),
        ];
        for (hs, buf, expected) in cases {
            assert_eq!(
                outcome(hs, &buf),
                Err(expected.clone()),
                "{}",
                buf.escape_ascii()
            );
        }
    }

    trait ReplaceBytes {
        fn replacen(self, from: &[u8], to: &[u8], n: usize) -> Vec<u8>;
    }

    impl ReplaceBytes for Vec<u8> {
        fn replacen(self, from: &[u8], to: &[u8], n: usize) -> Vec<u8> {
            let text = String::from_utf8(self).unwrap();
            let from = std::str::from_utf8(from).unwrap();
            let to = std::str::from_utf8(to).unwrap();
            text.replacen(from, to, n).into_bytes()
        }
    }

    #[test]
    fn rejection_carries_status_reason_and_body_framing() {
        let hs = client(&mut Vec::new(), None);
        let buf = b"HTTP/1.1 404 Endpoint does not exist. TrackingId:abc\r\n\
            Content-Length: 5\r\n\r\nnope!";
        let (outcome, used) = hs.parse_response(buf).unwrap().unwrap();
        let HandshakeOutcome::Rejected(rejection) = outcome else {
            panic!("expected a rejection");
        };
        assert_eq!(rejection.status(), 404);
        assert_eq!(
            rejection.reason(),
            "Endpoint does not exist. TrackingId:abc"
        );
        assert_eq!(rejection.body_kind(), Ok(BodyKind::ContentLength(5)));
        assert_eq!(&buf[used..], b"nope!");
    }

    #[test]
    fn delivered_reject_is_410_gone() {
        // Protocol §5.2: the reject handshake succeeds when the relay answers 410.
        let hs = client(&mut Vec::new(), None);
        let buf = b"HTTP/1.1 410 Gone\r\nContent-Length: 0\r\n\r\n";
        let Ok(HandshakeOutcome::Rejected(r)) = outcome(&hs, buf) else {
            panic!("expected a rejection");
        };
        assert_eq!(r.status(), 410);
        assert_eq!(r.body_kind(), Ok(BodyKind::Empty));
    }

    #[test]
    fn rejection_with_bad_framing_still_reports_status() {
        let hs = client(&mut Vec::new(), None);
        let buf = b"HTTP/1.1 500 x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n";
        let Ok(HandshakeOutcome::Rejected(r)) = outcome(&hs, buf) else {
            panic!("expected a rejection");
        };
        assert_eq!(r.status(), 500);
        assert_eq!(r.body_kind(), Err(FramingError::ConflictingContentLength));
    }

    #[test]
    fn interim_responses_are_skipped() {
        let hs = client(&mut Vec::new(), None);
        let mut buf =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n".to_vec();
        assert_eq!(hs.parse_response(&buf), Ok(None));
        buf.extend_from_slice(&switching(""));
        let (outcome, used) = hs.parse_response(&buf).unwrap().unwrap();
        assert!(matches!(outcome, HandshakeOutcome::Accepted(_)));
        assert_eq!(used, buf.len());
    }

    // ---- server side ----

    /// What the hyco-ws listener sends on an accept rendezvous (protocol §10.3, §10.6 item 5).
    const HYCO_WS_REQUEST: &[u8] = b"GET /$hc/hycows?sb-hc-action=accept&sb-hc-id=42 HTTP/1.1\r\n\
        Sec-WebSocket-Version: 13\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Connection: Upgrade\r\n\
        Upgrade: websocket\r\n\
        Sec-WebSocket-Protocol: proto1\r\n\
        0: Sec-WebSocket-Extensions: permessage-deflate\r\n\
        Host: 127.0.0.1:9000\r\n\r\n";

    fn upgrade(buf: &[u8]) -> Result<UpgradeRequest, UpgradeError> {
        parse_upgrade_request(buf, &Limits::default()).map(|r| r.unwrap().0)
    }

    #[test]
    fn parses_a_hyco_ws_rendezvous_request() {
        let (req, used) = parse_upgrade_request(HYCO_WS_REQUEST, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(used, HYCO_WS_REQUEST.len());
        assert_eq!(req.path(), "/$hc/hycows");
        assert_eq!(req.query(), Some("sb-hc-action=accept&sb-hc-id=42"));
        assert_eq!(req.key, KEY_B64);
        assert_eq!(req.accept_key(), ACCEPT);
        assert_eq!(req.subprotocols, ["proto1"]);
        assert_eq!(
            req.headers().get("0"),
            Some(&b"Sec-WebSocket-Extensions: permessage-deflate"[..])
        );
        assert_eq!(req.headers().len(), 7);
    }

    #[test]
    fn tolerates_an_extension_offer_and_lists_subprotocols() {
        let buf = b"GET /x HTTP/1.1\r\nHost: h\r\nUpgrade: WebSocket\r\n\
            Connection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\n\
            Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
            Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
            Sec-WebSocket-Protocol: a, b\r\nSec-WebSocket-Protocol: c\r\n\r\n";
        let req = upgrade(buf).unwrap();
        assert_eq!(req.subprotocols, ["a", "b", "c"]);
        assert_eq!(req.query(), None);
    }

    #[test]
    fn upgrade_request_needs_more_bytes() {
        for end in 0..HYCO_WS_REQUEST.len() {
            assert_eq!(
                parse_upgrade_request(&HYCO_WS_REQUEST[..end], &Limits::default()),
                Ok(None)
            );
        }
    }

    fn request_with(replace: &str, with: &str) -> Vec<u8> {
        let text = std::str::from_utf8(HYCO_WS_REQUEST).unwrap();
        assert!(text.contains(replace), "{replace}");
        text.replacen(replace, with, 1).into_bytes()
    }

    #[test]
    fn upgrade_rule_violations_and_their_status() {
        let key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
        let cases: Vec<(Vec<u8>, UpgradeError, u16)> = vec![
            (
                request_with("GET", "POST"),
                UpgradeError::MethodNotGet {
                    method: "POST".into(),
                },
                400,
            ),
            (
                request_with("HTTP/1.1", "HTTP/1.0"),
                UpgradeError::NotHttp11,
                400,
            ),
            (
                request_with("GET /$hc", "GET *"),
                UpgradeError::TargetNotOriginForm,
                400,
            ),
            (
                request_with("Host: 127.0.0.1:9000\r\n", ""),
                UpgradeError::MissingHost,
                400,
            ),
            (
                request_with("Host: 127.0.0.1:9000\r\n", "Host: a\r\nhost: b\r\n"),
                UpgradeError::DuplicateHost,
                400,
            ),
            (
                request_with("Upgrade: websocket", "Upgrade: h2c"),
                UpgradeError::NotWebsocketUpgrade,
                400,
            ),
            (
                request_with("Connection: Upgrade", "Connection: keep-alive"),
                UpgradeError::ConnectionNotUpgrade,
                400,
            ),
            (
                request_with("Sec-WebSocket-Version: 13\r\n", ""),
                UpgradeError::MissingVersion,
                400,
            ),
            (
                request_with("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"),
                UpgradeError::UnsupportedVersion {
                    version: "8".into(),
                },
                426,
            ),
            (
                request_with(
                    "Sec-WebSocket-Version: 13\r\n",
                    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 8\r\n",
                ),
                UpgradeError::UnsupportedVersion {
                    version: "13".into(),
                },
                426,
            ),
            (request_with(key, ""), UpgradeError::MissingKey, 400),
            (
                request_with(key, &format!("{key}{key}")),
                UpgradeError::DuplicateKey,
                400,
            ),
            (
                request_with("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZQ=="),
                UpgradeError::InvalidKey,
                400,
            ),
            (
                request_with("dGhlIHNhbXBsZSBub25jZQ==", "not base64!!"),
                UpgradeError::InvalidKey,
                400,
            ),
            (
                request_with("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZR=="),
                UpgradeError::InvalidKey,
                400,
            ),
            (
                request_with("proto1", "proto1, a/b"),
                UpgradeError::InvalidSubprotocol {
                    protocol: "a/b".into(),
                },
                400,
            ),
            (
                request_with("Host:", "Content-Length: 3\r\nHost:"),
                UpgradeError::UpgradeWithBody,
                400,
            ),
            (
                request_with("Host:", "Transfer-Encoding: chunked\r\nHost:"),
                UpgradeError::UpgradeWithBody,
                400,
            ),
            (
                request_with("Host:", "Bad Name: x\r\nHost:"),
                UpgradeError::Head(HeadError::InvalidHeaderName),
                400,
            ),
        ];
        for (buf, expected, status) in cases {
            let got = upgrade(&buf);
            assert_eq!(got, Err(expected.clone()), "{}", buf.escape_ascii());
            assert_eq!(status_for(&expected), status, "{expected:?}");
        }
    }

    #[test]
    fn oversized_upgrade_heads_get_431() {
        let limits = Limits {
            max_head_bytes: 64,
            ..Limits::default()
        };
        let err = parse_upgrade_request(HYCO_WS_REQUEST, &limits).unwrap_err();
        assert_eq!(err, UpgradeError::Head(HeadError::HeadTooLarge { max: 64 }));
        assert_eq!(status_for(&err), 431);
        let limits = Limits {
            max_headers: 3,
            ..Limits::default()
        };
        let err = parse_upgrade_request(HYCO_WS_REQUEST, &limits).unwrap_err();
        assert_eq!(
            err,
            UpgradeError::Head(HeadError::TooManyHeaders { max: 3 })
        );
        assert_eq!(status_for(&err), 431);
    }

    #[test]
    fn detects_upgrade_requests_among_plain_ones() {
        let (plain, _) =
            parse_request_head(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", &Limits::default())
                .unwrap()
                .unwrap();
        assert!(!is_upgrade_request(&plain));
        let (ws, _) = parse_request_head(HYCO_WS_REQUEST, &Limits::default())
            .unwrap()
            .unwrap();
        assert!(is_upgrade_request(&ws));
        assert!(UpgradeRequest::from_head(ws).is_ok());
    }

    // ---- server responses ----

    #[test]
    fn switching_protocols_bytes() {
        let mut out = Vec::new();
        write_switching_protocols(&mut out, ACCEPT, Some("proto1")).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Accept: {ACCEPT}\r\nSec-WebSocket-Protocol: proto1\r\n\r\n"
            )
        );
        let mut out = Vec::new();
        write_switching_protocols(&mut out, ACCEPT, None).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("Sec-WebSocket-Protocol"));
        assert!(!text.contains("Sec-WebSocket-Extensions"));
    }

    #[test]
    fn switching_protocols_refuses_injected_subprotocol() {
        let mut out = Vec::new();
        assert_eq!(
            write_switching_protocols(&mut out, ACCEPT, Some("p\r\nX: y")),
            Err(WriteError::HeaderInjection {
                name: "Sec-WebSocket-Protocol".into()
            })
        );
        assert!(out.is_empty());
    }

    #[test]
    fn error_responses() {
        let mut out = Vec::new();
        write_error_response(&mut out, 400, "Bad Request", b"no key").unwrap();
        assert_eq!(
            out,
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 6\r\nConnection: close\r\n\
              Content-Type: text/plain; charset=utf-8\r\n\r\nno key"
        );
        let mut out = Vec::new();
        write_error_response(&mut out, 426, reason_phrase(426), b"").unwrap();
        assert_eq!(
            out,
            b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\nConnection: close\r\n\
              Sec-WebSocket-Version: 13\r\n\r\n"
        );
        let mut out = Vec::new();
        assert_eq!(
            write_error_response(&mut out, 410, "Rejected\r\nX: y", b""),
            Err(WriteError::InvalidReason)
        );
        assert!(out.is_empty());
    }

    #[test]
    fn error_response_is_a_rejection_to_the_client() {
        let hs = client(&mut Vec::new(), None);
        let mut out = Vec::new();
        write_error_response(&mut out, 410, "Gone", b"").unwrap();
        let (outcome, used) = hs.parse_response(&out).unwrap().unwrap();
        assert_eq!(used, out.len());
        let HandshakeOutcome::Rejected(r) = outcome else {
            panic!("expected a rejection");
        };
        assert_eq!((r.status(), r.reason()), (410, "Gone"));
    }

    #[test]
    fn round_trip() {
        let mut request = Vec::new();
        let hs = ClientHandshake::new(
            &mut request,
            "relay.test",
            "/$hc/hyco?sb-hc-action=connect",
            [7; 16],
            &[("ServiceBusAuthorization", "SharedAccessSignature x")],
            Some("proto1"),
        )
        .unwrap();
        let (req, used) = parse_upgrade_request(&request, &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(used, request.len());
        assert_eq!(req.path(), "/$hc/hyco");
        assert_eq!(req.subprotocols, ["proto1"]);
        assert_eq!(
            req.headers().get("servicebusauthorization"),
            Some(&b"SharedAccessSignature x"[..])
        );
        let mut response = Vec::new();
        write_switching_protocols(&mut response, &req.accept_key(), Some(&req.subprotocols[0]))
            .unwrap();
        let (outcome, used) = hs.parse_response(&response).unwrap().unwrap();
        assert_eq!(used, response.len());
        let HandshakeOutcome::Accepted(accepted) = outcome else {
            panic!("expected Accepted, got {outcome:?}");
        };
        assert_eq!(accepted.subprotocol.as_deref(), Some("proto1"));
    }

    #[test]
    fn errors_display() {
        assert_eq!(
            UpgradeError::UnsupportedVersion {
                version: "8".into()
            }
            .to_string(),
            "WebSocket upgrade request: Sec-WebSocket-Version \"8\" is not 13"
        );
        assert_eq!(
            HandshakeError::AcceptMismatch.to_string(),
            "WebSocket handshake response: Sec-WebSocket-Accept does not match"
        );
        assert_eq!(
            ClientRequestError::ReservedHeader {
                name: "Host".into()
            }
            .to_string(),
            "header \"Host\" is written by the WebSocket handshake itself"
        );
    }
}
