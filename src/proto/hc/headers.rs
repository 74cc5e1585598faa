//! Which HTTP headers cross the relay, in which direction, and how they become the JSON header
//! maps and back (protocol §6.6, §2.5, §3.1, §10.6 item 3, §11 items 9 and 10).
//!
//! * HTTP → JSON: [`request_headers_to_json`] (relay, sender request → `requestHeaders`),
//!   [`response_headers_to_json`] (listener, upstream response → `responseHeaders`) and
//!   [`connect_headers`] (relay, sender upgrade → `accept.connectHeaders`). Repeated headers are
//!   joined into one string, as JSON objects cannot repeat a key: with `, ` (RFC 9110 §5.3), and
//!   `Cookie` with `; ` (RFC 6265 §5.4, RFC 9113 §8.2.3).
//! * JSON → HTTP: [`request_headers_for_upstream`] (listener) and [`response_headers_for_sender`]
//!   (relay) drop connection-level headers again, since the peer may not have, and refuse values
//!   that would inject header lines.
//!
//! Names are compared ASCII case-insensitively and keep the spelling of their first occurrence.
//! Besides the fixed lists, headers named in a `Connection` header are connection options and are
//! dropped with it (RFC 9110 §7.6.1).

use std::borrow::Cow;
use std::fmt;

use super::json_headers::JsonHeaders;
use crate::proto::http1::{is_field_value, is_token};

/// The relay's own credential header; never forwarded (protocol §2.5).
pub const SERVICE_BUS_AUTHORIZATION: &str = "ServiceBusAuthorization";
/// The HTTP credential header; forwarded unless the relay used it (protocol §2.5, §3.1).
pub const AUTHORIZATION: &str = "Authorization";
/// The WebSocket extension offer; kept out of `connectHeaders` (protocol §10.6 item 3).
pub const SEC_WEBSOCKET_EXTENSIONS: &str = "Sec-WebSocket-Extensions";

const CONNECTION: &str = "Connection";
const COOKIE: &str = "Cookie";
/// Never forwarded upstream: its semantics through the relay are undefined (protocol §11 item 7).
const EXPECT: &str = "Expect";

/// Headers removed from a relayed request: RFC 7230's connection-level headers except `Via`
/// (protocol §6.6), plus the legacy `Keep-Alive` and `Proxy-Connection`.
pub const REQUEST_CONNECTION_HEADERS: [&str; 10] = [
    "Connection",
    "Content-Length",
    "Host",
    "TE",
    "Trailer",
    "Transfer-Encoding",
    "Upgrade",
    "Close",
    "Keep-Alive",
    "Proxy-Connection",
];

/// Headers removed from a relayed response (protocol §6.6, daemon rule).
pub const RESPONSE_CONNECTION_HEADERS: [&str; 8] = [
    "Connection",
    "Keep-Alive",
    "Proxy-Connection",
    "TE",
    "Trailer",
    "Transfer-Encoding",
    "Upgrade",
    "Content-Length",
];

/// Whether the sender's `Authorization` header goes to the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizationHeader {
    /// Forward it untouched: it belongs to the application.
    Forward,
    /// Remove it: the relay evaluated it as the sender's token.
    Strip,
}

impl AuthorizationHeader {
    /// The rule of protocol §2.5 and §3.1: `Authorization` is evaluated and removed only when the
    /// hybrid connection requires client authorization and the sender presented neither
    /// `sb-hc-token` nor `ServiceBusAuthorization`.
    #[cfg(test)]
    pub fn for_sender(requires_client_authorization: bool, relay_token_present: bool) -> Self {
        if requires_client_authorization && !relay_token_present {
            Self::Strip
        } else {
            Self::Forward
        }
    }
}

/// A sender's request headers as `requestHeaders` (protocol §4.4, §6.6): without
/// `ServiceBusAuthorization`, without `Authorization` when `authorization` says so, without the
/// [`REQUEST_CONNECTION_HEADERS`] and connection options, repeated headers joined.
///
/// Values that are not UTF-8 are read as ISO-8859-1 (each byte one character), so no byte is lost.
pub fn request_headers_to_json<'a, I>(headers: I, authorization: AuthorizationHeader) -> JsonHeaders
where
    I: IntoIterator<Item = (&'a str, &'a [u8])>,
    I::IntoIter: Clone,
{
    request_headers_joined(headers, authorization)
        .into_iter()
        .collect()
}

/// The entries of [`request_headers_to_json`], in the same order, borrowed from `headers`
/// except where values were joined or read as ISO-8859-1: for writing `requestHeaders`
/// without a [`JsonHeaders`] of owned strings.
pub fn request_headers_joined<'a, I>(
    headers: I,
    authorization: AuthorizationHeader,
) -> Vec<(&'a str, Cow<'a, str>)>
where
    I: IntoIterator<Item = (&'a str, &'a [u8])>,
    I::IntoIter: Clone,
{
    let headers = headers.into_iter();
    // Only `Connection` values are read as text here: the others may be long (a token).
    let options = connection_options(
        headers
            .clone()
            .filter(|(name, _)| name.eq_ignore_ascii_case(CONNECTION))
            .map(|(name, value)| (name, value_text(value))),
    );
    let dropped = |name: &str| {
        is_one_of(name, &REQUEST_CONNECTION_HEADERS)
            || name.eq_ignore_ascii_case(SERVICE_BUS_AUTHORIZATION)
            || (authorization == AuthorizationHeader::Strip
                && name.eq_ignore_ascii_case(AUTHORIZATION))
            || is_one_of(name, &options)
    };
    join_borrowed(headers.filter(|(name, _)| !dropped(name)))
}

/// An upstream response's headers as `responseHeaders` (protocol §4.5, §6.6): without the
/// [`RESPONSE_CONNECTION_HEADERS`] and connection options, repeated headers joined.
///
/// `Set-Cookie` cannot be represented faithfully (protocol §11 item 10); its values are joined with
/// `, ` like every other header. Values that are not UTF-8 are read as ISO-8859-1.
pub fn response_headers_to_json<'a, I>(headers: I) -> JsonHeaders
where
    I: IntoIterator<Item = (&'a str, &'a [u8])>,
    I::IntoIter: Clone,
{
    join_into_json(response_headers_kept(headers).into_iter())
}

/// The fields of an upstream response that [`response_headers_to_json`] keeps, in order and not
/// yet joined, each value as received (read as text by [`value_text`]): for writing
/// `responseHeaders` without building the map ([`join_separator`] says how a repeated field's
/// values are joined).
pub fn response_headers_kept<'a, I>(headers: I) -> Vec<(&'a str, &'a [u8])>
where
    I: IntoIterator<Item = (&'a str, &'a [u8])>,
    I::IntoIter: Clone,
{
    let headers = headers.into_iter();
    let options = connection_options(
        headers
            .clone()
            .filter(|(name, _)| name.eq_ignore_ascii_case(CONNECTION))
            .map(|(name, value)| (name, value_text(value))),
    );
    let dropped =
        |name: &str| is_one_of(name, &RESPONSE_CONNECTION_HEADERS) || is_one_of(name, &options);
    headers.filter(|(name, _)| !dropped(name)).collect()
}

/// What joins the values of a repeated field `name` into one JSON header value.
pub fn join_separator(name: &str) -> &'static str {
    if name.eq_ignore_ascii_case(COOKIE) {
        "; "
    } else {
        ", "
    }
}

/// A sender's upgrade headers as `accept.connectHeaders` (protocol §4.3): every header, including
/// `Connection`, `Upgrade`, `Host` and the `Sec-WebSocket-*` ones, except `ServiceBusAuthorization`
/// and `Authorization` (protocol §11 item 9) and `Sec-WebSocket-Extensions` (protocol §10.6 item
/// 3). Repeated headers are joined. Values that are not UTF-8 are read as ISO-8859-1.
pub fn connect_headers<'a, I>(headers: I) -> JsonHeaders
where
    I: IntoIterator<Item = (&'a str, &'a [u8])>,
{
    let dropped = |name: &str| {
        name.eq_ignore_ascii_case(SERVICE_BUS_AUTHORIZATION)
            || name.eq_ignore_ascii_case(AUTHORIZATION)
            || name.eq_ignore_ascii_case(SEC_WEBSOCKET_EXTENSIONS)
    };
    join_into_json(headers.into_iter().filter(|(name, _)| !dropped(name)))
}

/// The headers of a received `requestHeaders` map that the listener sends upstream: without the
/// [`REQUEST_CONNECTION_HEADERS`] (the listener sets its own `Host` and `Content-Length`, protocol
/// §6.6), `ServiceBusAuthorization`, `Expect` (protocol §11 item 7) and connection options. Every
/// kept entry is checked so it cannot break out of its header line.
pub fn request_headers_for_upstream(
    headers: &JsonHeaders,
) -> Result<Vec<(&str, &str)>, HeaderError> {
    request_pairs_for_upstream(headers.iter())
}

/// [`request_headers_for_upstream`] over (name, value) pairs borrowed from anywhere.
pub fn request_pairs_for_upstream<'a>(
    headers: impl Iterator<Item = (&'a str, &'a str)> + Clone,
) -> Result<Vec<(&'a str, &'a str)>, HeaderError> {
    let options = connection_options(
        headers
            .clone()
            .map(|(name, value)| (name, Cow::Borrowed(value))),
    );
    let dropped = |name: &str| {
        is_one_of(name, &REQUEST_CONNECTION_HEADERS)
            || name.eq_ignore_ascii_case(SERVICE_BUS_AUTHORIZATION)
            || name.eq_ignore_ascii_case(EXPECT)
            || is_one_of(name, &options)
    };
    let mut lines = Vec::with_capacity(headers.size_hint().0);
    for (name, value) in headers.filter(|(name, _)| !dropped(name)) {
        check_line(name, value)?;
        lines.push((name, value));
    }
    Ok(lines)
}

/// The headers of a received `responseHeaders` map that the relay sends to the sender: without
/// the [`RESPONSE_CONNECTION_HEADERS`] (the relay frames the body itself) and connection options.
/// Every kept entry is checked so it cannot break out of its header line.
pub fn response_headers_for_sender(
    headers: &JsonHeaders,
) -> Result<Vec<(&str, &str)>, HeaderError> {
    response_pairs_for_sender(headers.iter())
}

/// [`response_headers_for_sender`] over (name, value) pairs borrowed from anywhere.
pub fn response_pairs_for_sender<'a>(
    headers: impl Iterator<Item = (&'a str, &'a str)> + Clone,
) -> Result<Vec<(&'a str, &'a str)>, HeaderError> {
    let options = connection_options(
        headers
            .clone()
            .filter(|(name, _)| name.eq_ignore_ascii_case(CONNECTION))
            .map(|(name, value)| (name, Cow::Borrowed(value))),
    );
    let dropped =
        |name: &str| is_one_of(name, &RESPONSE_CONNECTION_HEADERS) || is_one_of(name, &options);
    let mut lines = Vec::with_capacity(headers.size_hint().0);
    for (name, value) in headers.filter(|(name, _)| !dropped(name)) {
        check_line(name, value)?;
        lines.push((name, value));
    }
    Ok(lines)
}

/// Checks a reason phrase (`statusDescription`, `sb-hc-statusDescription`) before it goes into a
/// status line: RFC 9112 §4 allows HTAB, SP, visible characters and obs-text, no other control
/// character.
pub fn check_reason_phrase(phrase: &str) -> Result<(), HeaderError> {
    if phrase.chars().any(is_forbidden_control) {
        return Err(HeaderError::ReasonPhraseInjection);
    }
    Ok(())
}

/// RFC 9110 §5.1: a field name is a non-empty token. §5.5: a field value has no CR, LF or NUL
/// (which would split or truncate the header line) and no other control character except HTAB.
fn check_line(name: &str, value: &str) -> Result<(), HeaderError> {
    // A token name and a value of field-value bytes (HTAB, SP, visible ASCII, bytes of
    // non-ASCII characters) break none of the rules below.
    if is_token(name.as_bytes()) && is_field_value(value.as_bytes()) {
        return Ok(());
    }
    if name.is_empty() || !name.bytes().all(is_token_byte) {
        return Err(HeaderError::InvalidName {
            name: name.to_owned(),
        });
    }
    if value.contains(['\r', '\n', '\0']) {
        return Err(HeaderError::HeaderInjection {
            name: name.to_owned(),
        });
    }
    if value.chars().any(is_forbidden_control) {
        return Err(HeaderError::InvalidValue {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

fn is_forbidden_control(c: char) -> bool {
    c.is_ascii_control() && c != '\t'
}

fn join_into_json<'a>(headers: impl Iterator<Item = (&'a str, &'a [u8])>) -> JsonHeaders {
    let mut json = JsonHeaders::new();
    for (name, value) in headers {
        json.append_joined(name, &value_text(value), join_separator(name));
    }
    json
}

/// What [`join_into_json`] makes, borrowing every value that is neither joined nor ISO-8859-1.
fn join_borrowed<'a>(
    headers: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> Vec<(&'a str, Cow<'a, str>)> {
    let mut joined: Vec<(&str, Cow<'_, str>)> = Vec::new();
    for (name, value) in headers {
        let value = value_text(value);
        match joined
            .iter_mut()
            .find(|(existing, _)| existing.eq_ignore_ascii_case(name))
        {
            Some((_, existing)) => {
                let separator = if name.eq_ignore_ascii_case(COOKIE) {
                    "; "
                } else {
                    ", "
                };
                let existing = existing.to_mut();
                existing.push_str(separator);
                existing.push_str(&value);
            }
            None => joined.push((name, value)),
        }
    }
    joined
}

/// The names listed in `Connection` headers (RFC 9110 §7.6.1).
fn connection_options<'a>(headers: impl Iterator<Item = (&'a str, Cow<'a, str>)>) -> Vec<String> {
    headers
        .filter(|(name, _)| name.eq_ignore_ascii_case(CONNECTION))
        .flat_map(|(_, value)| {
            value
                .split(',')
                .map(str::trim)
                .filter(|option| !option.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

fn is_one_of<S: AsRef<str>>(name: &str, names: &[S]) -> bool {
    names
        .iter()
        .any(|listed| listed.as_ref().eq_ignore_ascii_case(name))
}

/// A header value as text: UTF-8 when it is UTF-8, otherwise ISO-8859-1 (RFC 9110 §5.5 obs-text).
pub(crate) fn value_text(value: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(value) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => Cow::Owned(value.iter().copied().map(char::from).collect()),
    }
}

/// Why a header from a JSON map cannot be written into an HTTP head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// The value contains CR, LF or NUL, which would end the header line early.
    HeaderInjection { name: String },
    /// The value contains a control character other than HTAB (RFC 9110 §5.5).
    InvalidValue { name: String },
    /// The name is empty or not an RFC 9110 §5.6.2 token.
    InvalidName { name: String },
    /// A reason phrase contains a control character other than HTAB (RFC 9112 §4).
    ReasonPhraseInjection,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HeaderInjection { name } => {
                write!(f, "header {name:?} has a value containing CR, LF or NUL")
            }
            Self::InvalidValue { name } => {
                write!(
                    f,
                    "header {name:?} has a value containing a control character"
                )
            }
            Self::InvalidName { name } => write!(f, "header name {name:?} is not a valid token"),
            Self::ReasonPhraseInjection => {
                f.write_str("status description contains a control character")
            }
        }
    }
}

impl std::error::Error for HeaderError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(pairs: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static [u8])> {
        pairs
            .iter()
            .map(|&(name, value)| (name, value.as_bytes()))
            .collect()
    }

    fn entries(json: &JsonHeaders) -> Vec<(&str, &str)> {
        json.iter().collect()
    }

    fn json(pairs: &[(&str, &str)]) -> JsonHeaders {
        pairs.iter().copied().collect()
    }

    #[test]
    fn authorization_is_stripped_only_when_required_and_no_relay_token() {
        let table = [
            (true, false, AuthorizationHeader::Strip),
            (true, true, AuthorizationHeader::Forward),
            (false, false, AuthorizationHeader::Forward),
            (false, true, AuthorizationHeader::Forward),
        ];
        for (required, relay_token, expected) in table {
            assert_eq!(
                AuthorizationHeader::for_sender(required, relay_token),
                expected,
                "required={required} relay_token={relay_token}"
            );
        }
    }

    #[test]
    fn request_direction_drops_each_connection_header_case_insensitively() {
        for name in REQUEST_CONNECTION_HEADERS {
            for spelling in [
                name.to_owned(),
                name.to_ascii_lowercase(),
                name.to_ascii_uppercase(),
            ] {
                let headers = [(spelling.as_str(), &b"x"[..]), ("Accept", &b"*/*"[..])];
                let json = request_headers_to_json(headers, AuthorizationHeader::Forward);
                assert_eq!(entries(&json), [("Accept", "*/*")], "{spelling}");
            }
        }
    }

    #[test]
    fn request_direction_always_drops_service_bus_authorization() {
        let headers = http(&[
            ("servicebusauthorization", "SharedAccessSignature sr=a"),
            ("Accept", "*/*"),
        ]);
        for policy in [AuthorizationHeader::Forward, AuthorizationHeader::Strip] {
            let json = request_headers_to_json(headers.iter().copied(), policy);
            assert_eq!(entries(&json), [("Accept", "*/*")], "{policy:?}");
        }
    }

    #[test]
    fn request_direction_drops_authorization_per_policy() {
        let headers = http(&[("authorization", "Bearer app-token"), ("Accept", "*/*")]);
        let forwarded =
            request_headers_to_json(headers.iter().copied(), AuthorizationHeader::Forward);
        assert_eq!(
            entries(&forwarded),
            [("authorization", "Bearer app-token"), ("Accept", "*/*")]
        );
        let stripped = request_headers_to_json(headers.iter().copied(), AuthorizationHeader::Strip);
        assert_eq!(entries(&stripped), [("Accept", "*/*")]);
    }

    #[test]
    fn request_direction_keeps_via_and_application_headers() {
        let headers = http(&[
            ("Via", "1.1 proxy"),
            ("Content-Type", "application/json"),
            ("Expect", "100-continue"),
            ("X-Tenant", "blue"),
        ]);
        let json = request_headers_to_json(headers.iter().copied(), AuthorizationHeader::Forward);
        assert_eq!(
            entries(&json),
            [
                ("Via", "1.1 proxy"),
                ("Content-Type", "application/json"),
                ("Expect", "100-continue"),
                ("X-Tenant", "blue"),
            ]
        );
    }

    #[test]
    fn request_direction_joins_repeated_headers_with_comma_space() {
        let headers = http(&[
            ("X-CustomHeader", "requestValue1"),
            ("Accept", "text/html"),
            ("x-customheader", "requestValue2"),
        ]);
        let json = request_headers_to_json(headers.iter().copied(), AuthorizationHeader::Forward);
        assert_eq!(
            entries(&json),
            [
                ("X-CustomHeader", "requestValue1, requestValue2"),
                ("Accept", "text/html")
            ]
        );
    }

    #[test]
    fn repeated_cookie_headers_join_with_semicolon_space() {
        let headers = http(&[("Cookie", "a=1"), ("cookie", "b=2")]);
        let json = request_headers_to_json(headers.iter().copied(), AuthorizationHeader::Forward);
        assert_eq!(entries(&json), [("Cookie", "a=1; b=2")]);
    }

    #[test]
    fn request_direction_drops_connection_options() {
        let headers = http(&[
            ("Connection", "keep-alive, X-Hop"),
            ("connection", " X-Other ,"),
            ("x-hop", "1"),
            ("X-Other", "2"),
            ("X-Kept", "3"),
        ]);
        let json = request_headers_to_json(headers.iter().copied(), AuthorizationHeader::Forward);
        assert_eq!(entries(&json), [("X-Kept", "3")]);
    }

    #[test]
    fn non_utf8_values_are_read_as_latin_1() {
        let headers: [(&str, &[u8]); 2] =
            [("X-Name", b"M\xfcller"), ("X-Utf8", "Müller".as_bytes())];
        let json = request_headers_to_json(headers, AuthorizationHeader::Forward);
        assert_eq!(entries(&json), [("X-Name", "Müller"), ("X-Utf8", "Müller")]);
    }

    #[test]
    fn response_direction_drops_each_connection_header_case_insensitively() {
        for name in RESPONSE_CONNECTION_HEADERS {
            for spelling in [name.to_owned(), name.to_ascii_lowercase()] {
                let headers = [
                    (spelling.as_str(), &b"x"[..]),
                    ("Content-Type", &b"text/plain"[..]),
                ];
                let json = response_headers_to_json(headers);
                assert_eq!(
                    entries(&json),
                    [("Content-Type", "text/plain")],
                    "{spelling}"
                );
            }
        }
    }

    #[test]
    fn response_direction_keeps_host_close_and_auth_headers_and_joins_repeats() {
        let headers = http(&[
            ("Set-Cookie", "a=1"),
            ("WWW-Authenticate", "Basic"),
            ("set-cookie", "b=2"),
            ("Close", "x"),
            ("Connection", "X-Hop"),
            ("X-Hop", "1"),
        ]);
        let json = response_headers_to_json(headers.iter().copied());
        assert_eq!(
            entries(&json),
            [
                ("Set-Cookie", "a=1, b=2"),
                ("WWW-Authenticate", "Basic"),
                ("Close", "x")
            ]
        );
    }

    #[test]
    fn connect_headers_keep_upgrade_headers_and_drop_auth_and_extensions() {
        let headers = http(&[
            ("Host", "contoso.servicebus.windows.net"),
            ("Connection", "Upgrade"),
            ("Upgrade", "websocket"),
            ("Sec-WebSocket-Key", "x3JJHMbDL1EzLkh9GBhXDw=="),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Protocol", "azbridge"),
            ("sec-websocket-protocol", "other"),
            (
                "sec-websocket-extensions",
                "permessage-deflate; client_max_window_bits",
            ),
            ("ServiceBusAuthorization", "SharedAccessSignature sr=a"),
            ("AUTHORIZATION", "Basic abc"),
            ("X-Tenant", "blue"),
        ]);
        let json = connect_headers(headers.iter().copied());
        assert_eq!(
            entries(&json),
            [
                ("Host", "contoso.servicebus.windows.net"),
                ("Connection", "Upgrade"),
                ("Upgrade", "websocket"),
                ("Sec-WebSocket-Key", "x3JJHMbDL1EzLkh9GBhXDw=="),
                ("Sec-WebSocket-Version", "13"),
                ("Sec-WebSocket-Protocol", "azbridge, other"),
                ("X-Tenant", "blue"),
            ]
        );
    }

    #[test]
    fn upstream_request_drops_connection_headers_relay_auth_and_expect() {
        let received = json(&[
            ("Host", "contoso.servicebus.windows.net"),
            ("Content-Length", "5"),
            ("ServiceBusAuthorization", "x"),
            ("expect", "100-continue"),
            ("Connection", "X-Hop"),
            ("X-Hop", "1"),
            ("Authorization", "Bearer app"),
            ("Via", "1.1 ns"),
            ("Content-Type", "text/plain"),
        ]);
        assert_eq!(
            request_headers_for_upstream(&received),
            Ok(vec![
                ("Authorization", "Bearer app"),
                ("Via", "1.1 ns"),
                ("Content-Type", "text/plain")
            ])
        );
    }

    #[test]
    fn sender_response_drops_connection_headers() {
        let received = json(&[
            ("content-length", "2"),
            ("Transfer-Encoding", "chunked"),
            ("cache-control", "no-cache"),
            ("Host", "kept"),
        ]);
        assert_eq!(
            response_headers_for_sender(&received),
            Ok(vec![("cache-control", "no-cache"), ("Host", "kept")])
        );
    }

    #[test]
    fn values_with_cr_lf_or_nul_are_header_injection() {
        for value in ["a\r\nX-Evil: 1", "a\nb", "a\rb", "a\0b"] {
            let received = json(&[("X-Ok", "fine"), ("X-Bad", value)]);
            let expected = Err(HeaderError::HeaderInjection {
                name: "X-Bad".into(),
            });
            assert_eq!(
                request_headers_for_upstream(&received),
                expected,
                "{value:?}"
            );
            assert_eq!(
                response_headers_for_sender(&received),
                expected,
                "{value:?}"
            );
        }
    }

    #[test]
    fn values_with_other_control_characters_are_invalid() {
        for value in ["a\x01b", "a\x7fb", "\x1b[31m"] {
            let received = json(&[("X-Bad", value)]);
            assert_eq!(
                response_headers_for_sender(&received),
                Err(HeaderError::InvalidValue {
                    name: "X-Bad".into()
                }),
                "{value:?}"
            );
        }
        let tab_and_text = json(&[("X-Ok", "a\tb ü")]);
        assert_eq!(
            response_headers_for_sender(&tab_and_text),
            Ok(vec![("X-Ok", "a\tb ü")])
        );
    }

    #[test]
    fn names_that_are_not_tokens_are_invalid() {
        for name in ["", "X Bad", "X-Bad:", "X\r\nEvil", "Ümlaut", "(x)"] {
            let received = json(&[(name, "v")]);
            assert_eq!(
                request_headers_for_upstream(&received),
                Err(HeaderError::InvalidName { name: name.into() }),
                "{name:?}"
            );
        }
        let odd_but_valid = json(&[("0", "v"), ("X!#$%&'*+-.^_`|~", "v")]);
        assert_eq!(
            response_headers_for_sender(&odd_but_valid).map(|l| l.len()),
            Ok(2)
        );
    }

    #[test]
    fn dropped_entries_are_not_checked() {
        let received = json(&[("Content-Length", "1\r\nX: y"), ("X-Ok", "v")]);
        assert_eq!(
            response_headers_for_sender(&received),
            Ok(vec![("X-Ok", "v")])
        );
    }

    #[test]
    fn reason_phrases_with_control_characters_are_rejected() {
        assert_eq!(check_reason_phrase("Not Found\tnow ü"), Ok(()));
        assert_eq!(check_reason_phrase(""), Ok(()));
        for phrase in ["OK\r\nX-Evil: 1", "a\nb", "a\0b", "a\x07"] {
            assert_eq!(
                check_reason_phrase(phrase),
                Err(HeaderError::ReasonPhraseInjection),
                "{phrase:?}"
            );
        }
    }

    #[test]
    fn header_errors_name_the_header() {
        assert_eq!(
            HeaderError::HeaderInjection {
                name: "X-Bad".into()
            }
            .to_string(),
            r#"header "X-Bad" has a value containing CR, LF or NUL"#
        );
        assert_eq!(
            HeaderError::InvalidValue {
                name: "X-Bad".into()
            }
            .to_string(),
            r#"header "X-Bad" has a value containing a control character"#
        );
        assert_eq!(
            HeaderError::InvalidName {
                name: "X\r\nY".into()
            }
            .to_string(),
            r#"header name "X\r\nY" is not a valid token"#
        );
        assert_eq!(
            HeaderError::ReasonPhraseInjection.to_string(),
            "status description contains a control character"
        );
    }
}
