//! `NO_PROXY`: the hosts reached without the proxy, by curl's rules (`lib/noproxy.c`).
//!
//! A comma- or space-separated list. `*` alone matches every host. A name matches itself and
//! every name below it (`corp.example` and `.corp.example` both match `relay.corp.example`),
//! case-insensitively and ignoring a trailing dot. An IP address matches itself, and
//! `address/bits` matches a network (CIDR). An entry may name a port (`host:443`,
//! `[::1]:443`), and then matches only that port. Sans-I/O: the caller passes the text.

use std::net::IpAddr;

/// One parsed `NO_PROXY` list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    everything: bool,
    entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    host: Pattern,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    /// A lower-case name without leading or trailing dots.
    Name(String),
    /// An address and how many leading bits must match.
    Network(IpAddr, u8),
}

impl NoProxy {
    /// Parses a `NO_PROXY` value; entries that cannot match anything are skipped.
    pub fn parse(text: &str) -> Self {
        let mut list = Self::default();
        for item in text.split([',', ' ', '\t']).filter(|item| !item.is_empty()) {
            if item == "*" {
                list.everything = true;
            } else if let Some(entry) = Entry::parse(item) {
                list.entries.push(entry);
            }
        }
        list
    }

    /// Whether `host` (a name or an IP address, IPv6 with or without brackets) on `port` is
    /// reached directly.
    pub fn bypasses(&self, host: &str, port: u16) -> bool {
        if self.everything {
            return true;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ip = host.parse::<IpAddr>().ok();
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        self.entries.iter().any(|entry| {
            entry.port.is_none_or(|wanted| wanted == port)
                && match (&entry.host, ip) {
                    (Pattern::Network(network, bits), Some(ip)) => in_network(ip, *network, *bits),
                    (Pattern::Name(suffix), _) => {
                        name == *suffix
                            || name
                                .strip_suffix(suffix.as_str())
                                .is_some_and(|rest| rest.ends_with('.'))
                    }
                    (Pattern::Network(..), None) => false,
                }
        })
    }
}

impl Entry {
    fn parse(item: &str) -> Option<Self> {
        let (host, port) = split_port(item);
        let port = match port {
            Some(text) => Some(text.parse::<u16>().ok()?),
            None => None,
        };
        let host = match host.split_once('/') {
            Some((address, bits)) => {
                let address: IpAddr = address.parse().ok()?;
                let max = if address.is_ipv4() { 32 } else { 128 };
                let bits: u8 = bits.parse().ok().filter(|bits| *bits <= max)?;
                Pattern::Network(address, bits)
            }
            None => match host.parse::<IpAddr>() {
                Ok(address) => Pattern::Network(address, if address.is_ipv4() { 32 } else { 128 }),
                Err(_) => {
                    let name = host.trim_matches('.').to_ascii_lowercase();
                    if name.is_empty() {
                        return None;
                    }
                    Pattern::Name(name)
                }
            },
        };
        Some(Self { host, port })
    }
}

/// `host:port`, `[v6]:port`, `[v6]`, a bare IPv6 address (no port) or a bare host.
fn split_port(item: &str) -> (&str, Option<&str>) {
    if let Some(rest) = item.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((host, tail)) => (host, tail.strip_prefix(':')),
            None => (rest, None),
        };
    }
    match item.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, Some(port)),
        _ => (item, None),
    }
}

fn in_network(ip: IpAddr, network: IpAddr, bits: u8) -> bool {
    let (ip, network, width) = match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(network)) => (
            u128::from(u32::from(ip)),
            u128::from(u32::from(network)),
            32,
        ),
        (IpAddr::V6(ip), IpAddr::V6(network)) => (u128::from(ip), u128::from(network), 128),
        _ => return false,
    };
    let shift = width - u32::from(bits);
    shift >= width || (ip >> shift) == (network >> shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_themselves_and_their_subdomains_with_or_without_a_leading_dot() {
        let list = NoProxy::parse("corp.example, .internal,Example.ORG");
        for host in [
            "corp.example",
            "relay.corp.example",
            "a.b.internal",
            "internal",
            "example.org.",
            "WWW.example.org",
        ] {
            assert!(list.bypasses(host, 443), "{host}");
        }
        for host in ["notcorp.example", "corp.example.com", "org", "xinternal"] {
            assert!(!list.bypasses(host, 443), "{host}");
        }
    }

    #[test]
    fn a_star_alone_matches_everything_but_not_as_a_pattern() {
        assert!(NoProxy::parse("*").bypasses("anything.example", 1));
        assert!(NoProxy::parse("a, *").bypasses("10.1.2.3", 1));
        assert!(!NoProxy::parse("*.example").bypasses("a.example", 1));
        assert!(!NoProxy::parse("").bypasses("a.example", 1));
    }

    #[test]
    fn ports_restrict_an_entry() {
        let list = NoProxy::parse("relay.test:443,[::1]:8443,10.0.0.1:80");
        assert!(list.bypasses("relay.test", 443));
        assert!(!list.bypasses("relay.test", 80));
        assert!(list.bypasses("::1", 8443));
        assert!(list.bypasses("[::1]", 8443));
        assert!(!list.bypasses("::1", 443));
        assert!(list.bypasses("10.0.0.1", 80));
        assert!(!list.bypasses("10.0.0.1", 81));
    }

    #[test]
    fn addresses_and_networks_match_ip_hosts_only() {
        let list = NoProxy::parse("127.0.0.1 ::1 10.0.0.0/8 fd00::/8");
        assert!(list.bypasses("127.0.0.1", 1));
        assert!(list.bypasses("::1", 1));
        assert!(list.bypasses("10.200.3.4", 1));
        assert!(list.bypasses("fd12::1", 1));
        assert!(!list.bypasses("11.0.0.1", 1));
        assert!(!list.bypasses("127.0.0.2", 1));
        assert!(!list.bypasses("localhost", 1));
        assert!(NoProxy::parse("0.0.0.0/0").bypasses("192.0.2.1", 1));
    }

    #[test]
    fn entries_that_cannot_match_are_skipped() {
        assert_eq!(
            NoProxy::parse(" , . ,host:notaport,1.2.3.4/40"),
            NoProxy::default()
        );
    }
}
