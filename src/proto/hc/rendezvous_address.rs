//! Which rendezvous addresses a listener dials. An `accept` or `request` names the URL the
//! listener must connect to (protocol §4.3, §4.4); dialing whatever it names would let a rogue or
//! on-path relay make the listener open connections anywhere. An address is dialed only when
//!
//! - its scheme is `wss` whenever the control channel is `wss` (a TLS channel never leads to a
//!   plain one), and
//! - its host is the control channel's own host; or, for an Azure namespace, any host under the
//!   same Azure Relay DNS suffix ([`AZURE_RELAY_DNS_SUFFIXES`]: Azure hands out gateway names
//!   such as `g19-prod-am3-003-sb.servicebus.windows.net`); or a name in the operator's
//!   `rendezvous_hosts` allow-list (an exact host, or `*.suffix` for every host under it).
//!
//! Host names compare ASCII case-insensitively, without a trailing dot.
//!
//! Every relayed request names an address, so the check runs per request: an address of the
//! plain shape relays send (`ws[s]://` then a lower-case DNS name or dotted-quad IPv4 address,
//! an optional port, then `/`, `?`, `#` or the end) is read without a URL parser; anything else
//! goes through the `url` crate, whose answer the plain reading matches where it applies.

use std::fmt;

use url::Url;

/// The DNS suffixes of Azure Relay namespaces: the public cloud and the sovereign clouds
/// (China, US Government, Germany). A namespace `ns.servicebus.windows.net` hands out
/// rendezvous gateways under the same suffix.
pub const AZURE_RELAY_DNS_SUFFIXES: [&str; 4] = [
    ".servicebus.windows.net",
    ".servicebus.chinacloudapi.cn",
    ".servicebus.usgovcloudapi.net",
    ".servicebus.cloudapi.de",
];

/// Why a rendezvous address is not dialed. [`RefusedAddress::reason`] is a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusedAddress {
    /// Not an absolute `ws://` or `wss://` URL with a host.
    NotAUrl,
    /// `ws://` although the control channel is `wss://`.
    InsecureScheme,
    /// A host outside the relay's own domain and the allow-list.
    ForeignHost,
}

impl RefusedAddress {
    /// The `reason` label of `hycod_rendezvous_refused_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotAUrl => "not_a_url",
            Self::InsecureScheme => "insecure_scheme",
            Self::ForeignHost => "foreign_host",
        }
    }
}

impl fmt::Display for RefusedAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotAUrl => "the rendezvous address is not a ws:// or wss:// URL with a host",
            Self::InsecureScheme => {
                "the rendezvous address is ws:// although the control channel is wss://"
            }
            Self::ForeignHost => {
                "the rendezvous host is outside the relay's domain and rendezvous_hosts"
            }
        })
    }
}

impl std::error::Error for RefusedAddress {}

/// The rule for one hybrid connection's control channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RendezvousPolicy {
    /// The control channel is `wss`.
    secure: bool,
    /// The control channel's host, lower case, no trailing dot.
    relay_host: String,
    /// The Azure suffix the relay host is under, if any.
    azure_suffix: Option<&'static str>,
    /// `rendezvous_hosts`, lower case: exact hosts, or `.suffix` for a `*.suffix` entry.
    allowed: Vec<String>,
}

impl RendezvousPolicy {
    /// The rule for a control channel at `relay_base` (`wss://host[:port]`), with the
    /// `rendezvous_hosts` allow-list. A base that does not parse allows only allow-listed
    /// hosts.
    pub fn new(relay_base: &str, allowed: &[String]) -> Self {
        let parsed = Url::parse(relay_base).ok();
        let secure = parsed.as_ref().is_none_or(|u| u.scheme() != "ws");
        let relay_host = parsed
            .as_ref()
            .and_then(Url::host_str)
            .map(normalise)
            .unwrap_or_default();
        let azure_suffix = AZURE_RELAY_DNS_SUFFIXES
            .into_iter()
            .find(|suffix| relay_host.ends_with(suffix));
        let allowed = allowed
            .iter()
            .map(|entry| match entry.strip_prefix('*') {
                Some(suffix) => normalise(suffix),
                None => normalise(entry),
            })
            .collect();
        Self {
            secure,
            relay_host,
            azure_suffix,
            allowed,
        }
    }

    /// Whether `address` may be dialed.
    pub fn check(&self, address: &str) -> Result<(), RefusedAddress> {
        let parsed;
        let (scheme, host) = match plain_scheme_and_host(address) {
            Some(plain) => plain,
            None => {
                parsed = Url::parse(address).map_err(|_| RefusedAddress::NotAUrl)?;
                (
                    parsed.scheme(),
                    parsed.host_str().ok_or(RefusedAddress::NotAUrl)?,
                )
            }
        };
        match scheme {
            "wss" => {}
            "ws" if !self.secure => {}
            "ws" => return Err(RefusedAddress::InsecureScheme),
            _ => return Err(RefusedAddress::NotAUrl),
        }
        // The host as `normalise` would make it, compared without making it: the policy's
        // names are lower case already.
        let host = host.trim_end_matches('.');
        if host.is_empty() {
            return Err(RefusedAddress::NotAUrl);
        }
        let own = !self.relay_host.is_empty() && host.eq_ignore_ascii_case(&self.relay_host);
        let same_azure = self
            .azure_suffix
            .is_some_and(|suffix| host.len() > suffix.len() && ends_with_ignore_case(host, suffix));
        let listed = self.allowed.iter().any(|entry| {
            if entry.starts_with('.') {
                host.len() > entry.len() && ends_with_ignore_case(host, entry)
            } else {
                host.eq_ignore_ascii_case(entry)
            }
        });
        if own || same_azure || listed {
            Ok(())
        } else {
            Err(RefusedAddress::ForeignHost)
        }
    }
}

/// Scheme and host of an address of the plain shape (module docs), or `None` for the URL parser
/// to decide. Only shapes the URL parser reads the same way qualify: no user info, IPv6
/// literal, percent-encoding, upper case, punycode label (`xn--`, which the parser validates),
/// empty label, or last label starting with a digit (the parser reads those as IPv4 numbers)
/// unless the host is a dotted quad already in canonical form.
fn plain_scheme_and_host(address: &str) -> Option<(&'static str, &str)> {
    let (scheme, rest) = if let Some(rest) = address.strip_prefix("wss://") {
        ("wss", rest)
    } else {
        ("ws", address.strip_prefix("ws://")?)
    };
    let end = rest
        .bytes()
        .position(|b| matches!(b, b'/' | b'?' | b'#' | b'\\'))
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    let (host, port) = match authority.bytes().position(|b| b == b':') {
        Some(colon) => (&authority[..colon], Some(&authority[colon + 1..])),
        None => (authority, None),
    };
    if let Some(port) = port {
        if port.is_empty()
            || !port.bytes().all(|b| b.is_ascii_digit())
            || port.parse::<u16>().is_err()
        {
            return None;
        }
    }
    let labels = host.strip_suffix('.').unwrap_or(host);
    let plain_label = |label: &[u8]| {
        !label.is_empty()
            && !label.starts_with(b"xn--")
            && label
                .iter()
                .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    let (mut count, mut last) = (0, &b""[..]);
    for label in labels.as_bytes().split(|&b| b == b'.') {
        if !plain_label(label) {
            return None;
        }
        count += 1;
        last = label;
    }
    if last.first().is_some_and(u8::is_ascii_digit) {
        // Decimal 0..=255 without leading zeros: what the parser prints for the same number.
        // (The labels are plain: lower-case letters, digits and `-`.)
        let canonical_octet = |octet: &[u8]| {
            let number = octet.len() <= 3 && octet.iter().all(u8::is_ascii_digit);
            number
                && (octet == b"0" || !octet.starts_with(b"0"))
                && octet
                    .iter()
                    .fold(0u32, |value, &b| value * 10 + u32::from(b - b'0'))
                    <= 255
        };
        let canonical_quad = host == labels
            && count == 4
            && labels.as_bytes().split(|&b| b == b'.').all(canonical_octet);
        if !canonical_quad {
            return None;
        }
    }
    Some((scheme, host))
}

/// Whether `text` ends with `suffix` (lower case), ASCII case-insensitively.
fn ends_with_ignore_case(text: &str, suffix: &str) -> bool {
    text.len() >= suffix.len()
        && text.as_bytes()[text.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

fn normalise(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(base: &str, allowed: &[&str]) -> RendezvousPolicy {
        let allowed: Vec<String> = allowed.iter().map(|s| (*s).to_owned()).collect();
        RendezvousPolicy::new(base, &allowed)
    }

    #[test]
    fn azure_gateways_under_the_namespace_suffix_are_dialed() {
        let azure = policy("wss://contoso.servicebus.windows.net", &[]);
        for address in [
            "wss://g19-prod-am3-003-sb.servicebus.windows.net/$hc/h?sb-hc-action=accept&sb-hc-id=1",
            "wss://G1-PROD.ServiceBus.Windows.Net./$hc/h?sb-hc-action=request",
            "wss://contoso.servicebus.windows.net:443/$hc/h",
        ] {
            assert_eq!(azure.check(address), Ok(()), "{address}");
        }
        let china = policy("wss://ns.servicebus.chinacloudapi.cn", &[]);
        assert_eq!(
            china.check("wss://g1.servicebus.chinacloudapi.cn/$hc/h"),
            Ok(())
        );
        assert_eq!(
            china.check("wss://g1.servicebus.windows.net/$hc/h"),
            Err(RefusedAddress::ForeignHost)
        );
    }

    #[test]
    fn other_hosts_and_look_alikes_are_refused() {
        let azure = policy("wss://contoso.servicebus.windows.net", &[]);
        for address in [
            "wss://evil.example/$hc/h",
            "wss://servicebus.windows.net.evil.example/$hc/h",
            "wss://evilservicebus.windows.net/$hc/h",
            "wss://10.0.0.7:3300/$hc/h",
        ] {
            assert_eq!(
                azure.check(address),
                Err(RefusedAddress::ForeignHost),
                "{address}"
            );
        }
    }

    #[test]
    fn a_tls_control_channel_never_leads_to_a_plain_rendezvous() {
        let azure = policy("wss://contoso.servicebus.windows.net", &[]);
        assert_eq!(
            azure.check("ws://g1.servicebus.windows.net/$hc/h"),
            Err(RefusedAddress::InsecureScheme)
        );
        let plain = policy("ws://127.0.0.1:9000", &[]);
        assert_eq!(plain.check("ws://127.0.0.1:9001/$hc/h"), Ok(()));
        assert_eq!(plain.check("wss://127.0.0.1:9001/$hc/h"), Ok(()));
    }

    #[test]
    fn a_self_hosted_relay_allows_its_own_host_and_the_allow_list() {
        let relay = policy(
            "wss://relay.corp.example:8443",
            &["gw1.corp.example", "*.gateways.corp.example"],
        );
        for address in [
            "wss://relay.corp.example:9443/$hc/h",
            "wss://GW1.corp.example/$hc/h",
            "wss://a.gateways.corp.example/$hc/h",
        ] {
            assert_eq!(relay.check(address), Ok(()), "{address}");
        }
        for address in [
            "wss://gw2.corp.example/$hc/h",
            "wss://gateways.corp.example/$hc/h",
            "wss://corp.example/$hc/h",
        ] {
            assert_eq!(
                relay.check(address),
                Err(RefusedAddress::ForeignHost),
                "{address}"
            );
        }
    }

    /// The plain reading gives the URL parser's scheme and host wherever it applies, and leaves
    /// every other shape to the parser.
    #[test]
    fn the_plain_reading_agrees_with_the_url_parser() {
        let plain = [
            "wss://g19-prod-am3-003-sb.servicebus.windows.net/$hc/h?sb-hc-action=request&sb-hc-id=1",
            "ws://127.0.0.1:9001/$hc/h?sb-hc-action=request",
            "wss://relay.corp.example:8443",
            "wss://relay.corp.example.:443/x",
            "ws://localhost?x",
            "ws://a-b.c#frag",
            "wss://10.0.0.7:3300/$hc/h",
            "ws://255.255.255.255/",
            "ws://0.10.100.199/",
            "wss://evil.example\\@relay.corp.example/",
        ];
        for address in plain {
            let url = Url::parse(address).unwrap();
            assert_eq!(
                plain_scheme_and_host(address),
                Some((url.scheme(), url.host_str().unwrap())),
                "{address}"
            );
        }
        let to_the_parser = [
            "wss://G1.servicebus.windows.net/",
            "wss://user@relay.corp.example/",
            "wss://[::1]:9000/",
            "wss://127.1/",
            "wss://0x7f.0.0.1/",
            "wss://127.000.0.1/",
            "wss://host.123/",
            "wss://1.2.3.256/",
            "wss://1.2.3.1234/",
            "wss://1.2.c-d.4/",
            "wss://1.2.3.4.5/",
            "wss://01.2.3.4/",
            "wss://xn--nxasmq6b.example/",
            "wss://a..b/",
            "wss://relay.corp.example:/",
            "wss://relay.corp.example:99999/",
            "wss://relay.corp.example:8x/",
            "wss:///relay.corp.example/",
            "wss://ev%69l.example/",
            " wss://relay.corp.example/",
            "WSS://relay.corp.example/",
            "wss://",
            "http://relay.corp.example/",
        ];
        for address in to_the_parser {
            assert_eq!(plain_scheme_and_host(address), None, "{address}");
        }
    }

    #[test]
    fn what_is_not_a_websocket_url_is_refused() {
        let relay = policy("ws://127.0.0.1:9000", &[]);
        for address in ["", "not a url", "http://127.0.0.1:9000/$hc/h", "/$hc/h"] {
            assert_eq!(
                relay.check(address),
                Err(RefusedAddress::NotAUrl),
                "{address}"
            );
        }
        assert_eq!(RefusedAddress::ForeignHost.reason(), "foreign_host");
    }
}
