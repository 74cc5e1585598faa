//! Writing the relay's `request` message (protocol §4.4) straight from the sender's request,
//! without building a [`Request`](super::messages::Request) of owned strings first: the relay
//! sends one per relayed HTTP request.
//!
//! The text is byte for byte what `Request::to_json` writes for the same values: members in
//! declaration order, absent ones omitted, strings escaped as serde_json escapes them
//! ([`json_text`](super::json_text)).

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use super::json_text::{push_object, push_string, push_string_contents, push_u16};

/// The members of a full `request` (shape (a) of protocol §4.4), borrowed from the sender's
/// request.
pub(crate) struct RequestMessage<'a> {
    /// The request-rendezvous URL; `None` when the request travels on a rendezvous already open.
    pub address: Option<&'a str>,
    pub id: &'a str,
    /// The `requestTarget`: the path, then `?` and the query when one is kept (protocol §2.4).
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub method: &'a str,
    /// The sender's address (`remoteEndpoint`).
    pub remote: SocketAddr,
    /// `requestHeaders` in order, each name once.
    pub headers: &'a [(&'a str, Cow<'a, str>)],
    /// Whether one binary body message follows.
    pub body: bool,
}

/// The exact wire text `{"request":{…}}` of `message`.
pub(crate) fn encode(message: &RequestMessage<'_>) -> String {
    let strings = message.address.map_or(0, str::len)
        + message.id.len()
        + message.path.len()
        + message.query.map_or(0, str::len)
        + message.method.len()
        + message
            .headers
            .iter()
            .map(|(name, value)| name.len() + value.len() + 6)
            .sum::<usize>();
    let mut out = String::with_capacity(strings + 192);
    out.push_str(r#"{"request":{"#);
    if let Some(address) = message.address {
        out.push_str(r#""address":"#);
        push_string(&mut out, address);
        out.push(',');
    }
    out.push_str(r#""id":"#);
    push_string(&mut out, message.id);
    out.push_str(r#","requestTarget":""#);
    push_string_contents(&mut out, message.path);
    if let Some(query) = message.query {
        out.push('?');
        push_string_contents(&mut out, query);
    }
    out.push_str(r#"","method":"#);
    push_string(&mut out, message.method);
    out.push_str(r#","remoteEndpoint":{"#);
    push_endpoint(&mut out, message.remote);
    out.push_str(r#"},"requestHeaders":"#);
    push_object(
        &mut out,
        message
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_ref())),
    );
    out.push_str(if message.body {
        r#","body":true}}"#
    } else {
        r#","body":false}}"#
    });
    out
}

/// The exact wire text of the rendezvous-only notice (shape (b) of protocol §4.4):
/// `{"request":{"address":…,"id":…}}`.
pub(crate) fn encode_notice(address: &str, id: &str) -> String {
    let mut out = String::with_capacity(address.len() + id.len() + 40);
    out.push_str(r#"{"request":{"address":"#);
    push_string(&mut out, address);
    out.push_str(r#","id":"#);
    push_string(&mut out, id);
    out.push_str("}}");
    out
}

/// The members of `remoteEndpoint`, a port of 0 omitted as `RemoteEndpoint` omits it.
fn push_endpoint(out: &mut String, remote: SocketAddr) {
    out.push_str(r#""address":""#);
    match remote.ip() {
        IpAddr::V4(ip) => {
            for (index, octet) in ip.octets().into_iter().enumerate() {
                if index > 0 {
                    out.push('.');
                }
                push_u16(out, u16::from(octet));
            }
        }
        // Invariant: writing to a `String` cannot fail; an IPv6 address needs no JSON escape.
        IpAddr::V6(ip) => write!(out, "{ip}").expect("writing to a String"),
    }
    out.push('"');
    if remote.port() != 0 {
        out.push_str(r#","port":"#);
        push_u16(out, remote.port());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::hc::json_headers::JsonHeaders;
    use crate::proto::hc::messages::{RemoteEndpoint, Request};

    /// What the relay built before: a `Request` of owned strings, written by serde_json.
    fn reference(message: &RequestMessage<'_>) -> String {
        let mut target = message.path.to_owned();
        if let Some(query) = message.query {
            target.push('?');
            target.push_str(query);
        }
        Request {
            address: message.address.map(str::to_owned),
            id: Some(message.id.to_owned()),
            request_target: Some(target),
            method: Some(message.method.to_owned()),
            remote_endpoint: Some(RemoteEndpoint {
                address: message.remote.ip().to_string(),
                port: message.remote.port(),
            }),
            request_headers: Some(
                message
                    .headers
                    .iter()
                    .map(|(name, value)| (*name, value.as_ref()))
                    .collect::<JsonHeaders>(),
            ),
            body: Some(message.body),
        }
        .to_json()
    }

    #[test]
    fn full_requests_are_written_as_the_owned_request_writes_them() {
        let plain = [("Content-Type", Cow::Borrowed("text/plain"))];
        let tricky = [
            ("X-Quote", Cow::Borrowed("a \"b\" \\c\t")),
            ("X-Latin", Cow::Owned("caf\u{e9}".to_owned())),
            ("Cookie", Cow::Borrowed("a=1; b=2")),
            ("Host", Cow::Borrowed("ns.servicebus.windows.net")),
        ];
        let remotes: [SocketAddr; 4] = [
            "203.0.113.7:51234".parse().unwrap(),
            "0.0.0.0:0".parse().unwrap(),
            "[2001:db8::1]:443".parse().unwrap(),
            "[::ffff:192.0.2.1]:0".parse().unwrap(),
        ];
        let headers: [&[(&str, Cow<'_, str>)]; 3] = [&[], &plain, &tricky];
        for address in [
            None,
            Some("ws://127.0.0.1:9/$hc/web?sb-hc-action=request&sb-hc-id=a-b_G0"),
        ] {
            for (path, query) in [
                ("/web", None),
                ("/web/x", Some("")),
                ("/web/\"q\"", Some("a=1&b=%22\u{1}")),
            ] {
                for remote in remotes {
                    for headers in headers {
                        for body in [true, false] {
                            let message = RequestMessage {
                                address,
                                id: "00112233-4455-6677-8899-aabbccddeeff_G0",
                                path,
                                query,
                                method: "POST",
                                remote,
                                headers,
                                body,
                            };
                            assert_eq!(encode(&message), reference(&message));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn notices_are_written_as_the_owned_request_writes_them() {
        for (address, id) in [
            ("ws://r/$hc/h?sb-hc-action=request&sb-hc-id=1", "1"),
            ("ws://r/$hc/\"h\"?x=\\", "id\n"),
        ] {
            let owned = Request {
                address: Some(address.to_owned()),
                id: Some(id.to_owned()),
                ..Request::default()
            };
            assert_eq!(encode_notice(address, id), owned.to_json());
        }
    }
}
