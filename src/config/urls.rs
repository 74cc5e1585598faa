//! The URL-valued keys: `target`, `http_target`, `relay_url` and `proxy` (architecture §5).
//!
//! Each parser checks, in order: absolute URL, scheme, no credentials, host, then the key's own
//! rules for port and path; query strings and fragments are never allowed. The first failed
//! check is the [`UrlProblem`].

use url::Url;

use super::error::UrlProblem;
use super::typed::{HttpTarget, ProxyAddress, TcpTarget};

/// The shape `target` must have.
pub const TCP_TARGET_FORM: &str = "tcp://host:port";
/// The shape `http_target` must have.
pub const HTTP_TARGET_FORM: &str = "http(s)://host[:port][/base]";
/// The shape `relay_url` must have.
pub const RELAY_URL_FORM: &str = "ws(s)://host[:port]";
/// The shape `proxy` must have.
pub const PROXY_FORM: &str = "http://[user@]host:port or \"none\"";

/// `tcp://host:port`, port required, no path.
pub(super) fn tcp_target(text: &str) -> Result<TcpTarget, UrlProblem> {
    let url = checked(text, &["tcp"])?;
    let port = url.port().ok_or(UrlProblem::NoPort)?;
    without_path(&url)?;
    Ok(TcpTarget {
        host: host(&url)?.to_owned(),
        port,
    })
}

/// `http://` or `https://` with host, optional port and base path.
pub(super) fn http_target(text: &str) -> Result<HttpTarget, UrlProblem> {
    let url = checked(text, &["http", "https"])?;
    Ok(HttpTarget::new(url))
}

/// `ws://` or `wss://` with host and optional port, no path.
pub(super) fn relay_url(text: &str) -> Result<Url, UrlProblem> {
    let url = checked(text, &["ws", "wss"])?;
    without_path(&url)?;
    Ok(url)
}

/// `http://[user@]host[:port]` (port 80 when omitted), no path; a password is refused (it
/// belongs in `proxy_password_file` or `proxy_password_env`).
pub(super) fn proxy(text: &str) -> Result<ProxyAddress, UrlProblem> {
    let url = Url::parse(text.trim()).map_err(UrlProblem::NotAUrl)?;
    if url.password().is_some() {
        return Err(UrlProblem::Password);
    }
    let mut without_user = url.clone();
    without_user
        .set_username("")
        .map_err(|()| UrlProblem::WrongScheme)?;
    let url = checked(without_user.as_str(), &["http"])?;
    without_path(&url)?;
    let parsed = crate::proxy::url::parse(text, false).map_err(|_| UrlProblem::NoHost)?;
    Ok(ProxyAddress {
        port: url.port_or_known_default().ok_or(UrlProblem::NoPort)?,
        ..parsed.address
    })
}

/// The checks every URL-valued key shares.
fn checked(text: &str, schemes: &[&str]) -> Result<Url, UrlProblem> {
    let url = Url::parse(text.trim()).map_err(UrlProblem::NotAUrl)?;
    if !schemes.contains(&url.scheme()) {
        return Err(UrlProblem::WrongScheme);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlProblem::Credentials);
    }
    host(&url)?;
    if url.query().is_some() {
        return Err(UrlProblem::Query);
    }
    if url.fragment().is_some() {
        return Err(UrlProblem::Fragment);
    }
    Ok(url)
}

fn host(url: &Url) -> Result<&str, UrlProblem> {
    url.host_str()
        .filter(|host| !host.is_empty())
        .ok_or(UrlProblem::NoHost)
}

fn without_path(url: &Url) -> Result<(), UrlProblem> {
    match url.path() {
        "" | "/" => Ok(()),
        _ => Err(UrlProblem::Path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_target_accepts_host_port() {
        let target = tcp_target("tcp://10.1.2.3:3300").expect("valid");
        assert_eq!((target.host.as_str(), target.port), ("10.1.2.3", 3300));
        assert_eq!(target.to_string(), "tcp://10.1.2.3:3300");
        assert_eq!(target.address(), "10.1.2.3:3300");
        let named = tcp_target("tcp://sapgw01.corp.local:3301/").expect("valid");
        assert_eq!(named.host, "sapgw01.corp.local");
        let v6 = tcp_target("tcp://[::1]:80").expect("valid");
        assert_eq!(v6.address(), "[::1]:80");
    }

    #[test]
    fn tcp_target_rejections() {
        assert!(matches!(tcp_target("db01"), Err(UrlProblem::NotAUrl(_))));
        assert_eq!(tcp_target("db01:3300").err(), Some(UrlProblem::WrongScheme));
        assert_eq!(
            tcp_target("http://db01:80").err(),
            Some(UrlProblem::WrongScheme)
        );
        assert_eq!(tcp_target("tcp://db01").err(), Some(UrlProblem::NoPort));
        assert_eq!(tcp_target("tcp://db01:1/x").err(), Some(UrlProblem::Path));
        assert_eq!(tcp_target("tcp://db01:1?x").err(), Some(UrlProblem::Query));
        assert_eq!(
            tcp_target("tcp://db01:1#x").err(),
            Some(UrlProblem::Fragment)
        );
        assert_eq!(
            tcp_target("tcp://u:p@db01:1").err(),
            Some(UrlProblem::Credentials)
        );
        assert_eq!(tcp_target("tcp:///x").err(), Some(UrlProblem::NoHost));
        assert!(matches!(
            tcp_target("tcp://db01:99999"),
            Err(UrlProblem::NotAUrl(_))
        ));
    }

    #[test]
    fn http_target_accepts_base_paths_and_default_ports() {
        let plain = http_target("http://127.0.0.1:8065").expect("valid");
        assert!(!plain.is_tls());
        assert_eq!(
            (plain.host(), plain.port(), plain.base_path()),
            ("127.0.0.1", 8065, "")
        );
        let tls = http_target("https://ecs.corp.local/sap/bc/").expect("valid");
        assert!(tls.is_tls());
        assert_eq!((tls.port(), tls.base_path()), (443, "/sap/bc"));
    }

    #[test]
    fn http_target_rejections() {
        assert_eq!(
            http_target("tcp://h:1").err(),
            Some(UrlProblem::WrongScheme)
        );
        assert_eq!(http_target("ftp://h/").err(), Some(UrlProblem::WrongScheme));
        assert_eq!(http_target("http://h/?a=1").err(), Some(UrlProblem::Query));
        assert_eq!(
            http_target("http://h/#top").err(),
            Some(UrlProblem::Fragment)
        );
        assert_eq!(
            http_target("https://u:p@h/").err(),
            Some(UrlProblem::Credentials)
        );
        assert!(matches!(
            http_target("http://"),
            Err(UrlProblem::NotAUrl(_))
        ));
    }

    #[test]
    fn relay_url_rules() {
        let url = relay_url("wss://relay.internal:8443").expect("valid");
        assert_eq!(url.port(), Some(8443));
        assert!(relay_url("ws://127.0.0.1:9000/").is_ok());
        assert_eq!(
            relay_url("https://relay:1").err(),
            Some(UrlProblem::WrongScheme)
        );
        assert_eq!(
            relay_url("wss://relay:1/$hc/x").err(),
            Some(UrlProblem::Path)
        );
    }

    #[test]
    fn proxy_rules() {
        let proxy = proxy("http://proxy.corp:3128").expect("valid");
        assert_eq!(proxy.to_string(), "http://proxy.corp:3128");
        assert_eq!(super::proxy("http://proxy.corp").map(|p| p.port), Ok(80));
        assert_eq!(
            super::proxy("https://proxy:1").err(),
            Some(UrlProblem::WrongScheme)
        );
        assert_eq!(
            super::proxy("http://user:secret@proxy:1").err(),
            Some(UrlProblem::Password)
        );
        let with_user = super::proxy("http://svc%2Dhycod@proxy:1").expect("a user is allowed");
        assert_eq!(with_user.user.as_deref(), Some("svc-hycod"));
        assert_eq!(with_user.to_string(), "http://svc-hycod@proxy:1");
        assert_eq!(
            super::proxy("http://proxy:1/p").err(),
            Some(UrlProblem::Path)
        );
    }
}
