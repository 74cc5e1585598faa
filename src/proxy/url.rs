//! Proxy URLs: `http://[user[:password]@]host[:port]` (port 80 when omitted), the form of the
//! `proxy` key and of the proxy environment variables. A scheme-less `host:port` in a variable
//! reads as `http://` (as curl reads it). Sans-I/O.

use std::fmt;

use percent_encoding::percent_decode_str;
use url::Url;

use crate::secret::Secret;

/// The characters a user name must have escaped in a URL's userinfo (RFC 3986 §3.2.1).
const USERINFO: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b':')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'@')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Where an HTTP CONNECT proxy listens, and the user it authenticates as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyAddress {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port (80 when not given).
    pub port: u16,
    /// The user of `http://user@host:port`, percent-decoded.
    pub user: Option<String>,
}

impl ProxyAddress {
    /// `host:port` (IPv6 in brackets): how errors and logs name the proxy.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for ProxyAddress {
    /// `http://[user@]host:port`; never a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.user {
            Some(user) => write!(
                f,
                "http://{}@{}",
                percent_encoding::utf8_percent_encode(user, USERINFO),
                self.authority()
            ),
            None => write!(f, "http://{}", self.authority()),
        }
    }
}

/// Why a proxy URL is not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyUrlProblem {
    /// Not a URL at all.
    NotAUrl(String),
    /// A scheme other than `http` (e.g. `https` or `socks5`, which hycod does not speak).
    Scheme(String),
    /// No host.
    NoHost,
    /// A path, query or fragment.
    Extra,
}

impl fmt::Display for ProxyUrlProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAUrl(why) => write!(f, "not a URL: {why}"),
            Self::Scheme(scheme) => write!(
                f,
                "the scheme {scheme}:// is not supported; only http:// proxies (HTTP CONNECT) are"
            ),
            Self::NoHost => f.write_str("no host"),
            Self::Extra => f.write_str("no path, query or fragment allowed"),
        }
    }
}

/// A parsed proxy URL; `password` is the URL's own (only environment variables may carry one).
pub struct ParsedProxy {
    pub address: ProxyAddress,
    pub password: Option<Secret>,
}

/// Parses `text`; `scheme_optional` lets `host:port` stand for `http://host:port`.
pub fn parse(text: &str, scheme_optional: bool) -> Result<ParsedProxy, ProxyUrlProblem> {
    let text = text.trim();
    let owned;
    let text = if scheme_optional && !text.contains("://") {
        owned = format!("http://{text}");
        owned.as_str()
    } else {
        text
    };
    let url = Url::parse(text).map_err(|e| ProxyUrlProblem::NotAUrl(e.to_string()))?;
    if url.scheme() != "http" {
        return Err(ProxyUrlProblem::Scheme(url.scheme().to_owned()));
    }
    let host = match url.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(host) => host.to_string(),
        None => return Err(ProxyUrlProblem::NoHost),
    };
    if host.is_empty() {
        return Err(ProxyUrlProblem::NoHost);
    }
    if !matches!(url.path(), "" | "/") || url.query().is_some() || url.fragment().is_some() {
        return Err(ProxyUrlProblem::Extra);
    }
    let decode = |text: &str| percent_decode_str(text).decode_utf8_lossy().into_owned();
    let user = Some(url.username())
        .filter(|user| !user.is_empty())
        .map(decode);
    let password = url.password().map(|password| Secret::new(decode(password)));
    Ok(ParsedProxy {
        address: ProxyAddress {
            host,
            port: url.port_or_known_default().unwrap_or(80),
            user,
        },
        password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_ports_are_read_and_printed_without_the_password() {
        let parsed = parse("http://svc%40corp:p%3Ass@proxy.corp:3128", false).expect("valid");
        assert_eq!(parsed.address.user.as_deref(), Some("svc@corp"));
        assert_eq!(parsed.password.as_ref().map(Secret::expose), Some("p:ss"));
        assert_eq!(
            parsed.address.to_string(),
            "http://svc%40corp@proxy.corp:3128"
        );
        let parsed = parse("http://[::1]", false).expect("valid");
        assert_eq!(parsed.address.to_string(), "http://[::1]:80");
        assert_eq!(parsed.address.authority(), "[::1]:80");
    }

    #[test]
    fn a_scheme_is_optional_only_where_allowed() {
        let parsed = parse("proxy.corp:8080", true).expect("valid");
        assert_eq!(parsed.address.authority(), "proxy.corp:8080");
        assert!(matches!(
            parse("proxy.corp:8080", false),
            Err(ProxyUrlProblem::Scheme(_) | ProxyUrlProblem::NotAUrl(_))
        ));
    }

    #[test]
    fn other_schemes_and_paths_are_refused() {
        assert_eq!(
            parse("socks5://proxy:1080", true).err(),
            Some(ProxyUrlProblem::Scheme("socks5".into()))
        );
        assert_eq!(
            parse("https://proxy:1", false).err(),
            Some(ProxyUrlProblem::Scheme("https".into()))
        );
        assert_eq!(
            parse("http://proxy:1/x", false).err(),
            Some(ProxyUrlProblem::Extra)
        );
        assert_eq!(parse("http://proxy:1/", false).err(), None);
    }
}
