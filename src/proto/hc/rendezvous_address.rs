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
        let secure = !parsed.as_ref().is_some_and(|u| u.scheme() == "ws");
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
        let url = Url::parse(address).map_err(|_| RefusedAddress::NotAUrl)?;
        match url.scheme() {
            "wss" => {}
            "ws" if !self.secure => {}
            "ws" => return Err(RefusedAddress::InsecureScheme),
            _ => return Err(RefusedAddress::NotAUrl),
        }
        let host = normalise(url.host_str().ok_or(RefusedAddress::NotAUrl)?);
        if host.is_empty() {
            return Err(RefusedAddress::NotAUrl);
        }
        let own = !self.relay_host.is_empty() && host == self.relay_host;
        let same_azure = self
            .azure_suffix
            .is_some_and(|suffix| host.len() > suffix.len() && host.ends_with(suffix));
        let listed = self.allowed.iter().any(|entry| {
            if entry.starts_with('.') {
                host.len() > entry.len() && host.ends_with(entry.as_str())
            } else {
                host == *entry
            }
        });
        if own || same_azure || listed {
            Ok(())
        } else {
            Err(RefusedAddress::ForeignHost)
        }
    }
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
