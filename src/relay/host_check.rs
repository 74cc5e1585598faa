//! Routing by `Host` once the relay is given `--namespace` (docs/relay.md "Host names"), as
//! Azure's front end routes by host name: a listen, a connect or a relayed HTTP request is
//! served only when its one `Host` header names the namespace or an `--alias`; a rendezvous
//! (accept, request) only when it names the host the relay put in the addresses it hands out
//! (`--rendezvous-host`, else the address it listens on). Compared case-insensitively, the
//! port ignored. Anything else is answered 404 by the caller. Without `--namespace` every
//! `Host` is served. Pure checks: no I/O.

use crate::proto::http1::Headers;

/// The host names a relay serves, when it checks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostNames {
    /// The namespace and its aliases, lower case.
    pub namespace: Vec<String>,
    /// The host of the rendezvous addresses the relay hands out, lower case.
    pub rendezvous: String,
}

/// Which names a request must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Addressed {
    /// Listen, connect and relayed HTTP: the namespace.
    Namespace,
    /// Accept and request rendezvous: the rendezvous host.
    Rendezvous,
}

impl HostNames {
    /// `Err` with the description of the 404 when `headers` do not carry exactly one `Host`
    /// naming what `addressed` requires.
    pub(crate) fn check(&self, headers: &Headers, addressed: Addressed) -> Result<(), String> {
        let mut hosts = headers.get_all("host");
        let (Some(value), None) = (hosts.next(), hosts.next()) else {
            return Err("The request must carry exactly one Host header.".to_owned());
        };
        let host = host_name(value);
        let admitted = match addressed {
            Addressed::Namespace => self.namespace.iter().any(|n| host.eq_ignore_ascii_case(n)),
            Addressed::Rendezvous => host.eq_ignore_ascii_case(&self.rendezvous),
        };
        if admitted {
            Ok(())
        } else {
            Err(format!(
                "No such host here: {:?}.",
                String::from_utf8_lossy(value)
            ))
        }
    }
}

/// The host of a `Host` value: without its port (`name:443`, `[::1]:80`) and trailing dot.
fn host_name(value: &[u8]) -> &str {
    let text = std::str::from_utf8(value).unwrap_or("").trim();
    let host = if let Some(rest) = text.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(ip, _)| ip)
    } else {
        text.rsplit_once(':').map_or(text, |(name, _)| name)
    };
    host.strip_suffix('.').unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> HostNames {
        HostNames {
            namespace: vec![
                "contoso.servicebus.windows.net".to_owned(),
                "relay".to_owned(),
            ],
            rendezvous: "g1-prod-am3-003-sb.servicebus.windows.net".to_owned(),
        }
    }

    fn with_hosts(values: &[&str]) -> Headers {
        let mut headers = Headers::new();
        headers.push("Content-Length", "0");
        for v in values {
            headers.push("Host", v);
        }
        headers
    }

    #[test]
    fn the_namespace_and_aliases_pass_whatever_the_case_and_port() {
        for host in [
            "contoso.servicebus.windows.net",
            "Contoso.ServiceBus.Windows.NET:443",
            "contoso.servicebus.windows.net.",
            "RELAY:9000",
        ] {
            assert_eq!(
                names().check(&with_hosts(&[host]), Addressed::Namespace),
                Ok(()),
                "{host}"
            );
        }
    }

    #[test]
    fn other_hosts_missing_or_repeated_hosts_are_refused() {
        let n = names();
        let refused = |hosts: &[&str], addressed| n.check(&with_hosts(hosts), addressed);
        assert_eq!(
            refused(&["fabrikam.servicebus.windows.net"], Addressed::Namespace),
            Err("No such host here: \"fabrikam.servicebus.windows.net\".".to_owned())
        );
        assert!(refused(
            &["contoso.servicebus.windows.net.evil"],
            Addressed::Namespace
        )
        .is_err());
        assert!(refused(&["127.0.0.1:80"], Addressed::Namespace).is_err());
        let one = "The request must carry exactly one Host header.".to_owned();
        assert_eq!(refused(&[], Addressed::Namespace), Err(one.clone()));
        assert_eq!(refused(&["relay", "relay"], Addressed::Namespace), Err(one));
    }

    #[test]
    fn a_rendezvous_must_name_the_rendezvous_host_not_the_namespace() {
        let n = names();
        let hosts = with_hosts(&["G1-prod-am3-003-sb.servicebus.windows.net:443"]);
        assert_eq!(n.check(&hosts, Addressed::Rendezvous), Ok(()));
        assert!(n.check(&hosts, Addressed::Namespace).is_err());
        let namespace = with_hosts(&["contoso.servicebus.windows.net"]);
        assert!(n.check(&namespace, Addressed::Rendezvous).is_err());
    }

    #[test]
    fn ip_literals_lose_only_their_port() {
        let n = HostNames {
            namespace: vec!["::1".to_owned()],
            rendezvous: "127.0.0.1".to_owned(),
        };
        assert_eq!(
            n.check(&with_hosts(&["[::1]:8080"]), Addressed::Namespace),
            Ok(())
        );
        assert_eq!(
            n.check(&with_hosts(&["127.0.0.1:4000"]), Addressed::Rendezvous),
            Ok(())
        );
    }
}
