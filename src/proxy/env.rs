//! The proxy the environment names for relay connections, by curl's rules: for `wss://`
//! `https_proxy`, `HTTPS_PROXY`, then `all_proxy`, `ALL_PROXY`; for `ws://` `http_proxy` (curl
//! ignores the upper-case `HTTP_PROXY`), then `all_proxy`, `ALL_PROXY`. The first variable set to
//! a non-empty value wins. `no_proxy` (else `NO_PROXY`) lists the hosts reached directly.
//! Sans-I/O: the caller passes the variable lookup.

use super::no_proxy::NoProxy;
use super::url::{parse, ParsedProxy, ProxyUrlProblem};

/// A proxy taken from the environment.
pub struct EnvProxy {
    /// The variable it came from (for logs and errors).
    pub variable: &'static str,
    pub proxy: ParsedProxy,
    pub no_proxy: NoProxy,
}

/// A proxy variable whose value is not a usable proxy URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvProxyError {
    pub variable: &'static str,
    pub problem: ProxyUrlProblem,
}

/// The variables naming the proxy for `wss://` (`tls`) or `ws://` relays, in order.
pub fn variables(tls: bool) -> &'static [&'static str] {
    if tls {
        &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"]
    } else {
        &["http_proxy", "all_proxy", "ALL_PROXY"]
    }
}

/// The environment's proxy for relays of that scheme, if any; `env` reads one variable.
pub fn from_environment(
    tls: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<EnvProxy>, EnvProxyError> {
    let set = |name: &str| env(name).filter(|value| !value.trim().is_empty());
    let Some((variable, value)) = variables(tls)
        .iter()
        .find_map(|&name| set(name).map(|value| (name, value)))
    else {
        return Ok(None);
    };
    let proxy = parse(&value, true).map_err(|problem| EnvProxyError { variable, problem })?;
    let no_proxy = set("no_proxy")
        .or_else(|| set("NO_PROXY"))
        .map_or_else(NoProxy::default, |text| NoProxy::parse(&text));
    Ok(Some(EnvProxy {
        variable,
        proxy,
        no_proxy,
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn curl_order_per_scheme() {
        let env = lookup(&[
            ("HTTPS_PROXY", "http://upper:1"),
            ("https_proxy", "http://lower:1"),
            ("HTTP_PROXY", "http://ignored:1"),
            ("ALL_PROXY", "all:3"),
        ]);
        let wss = from_environment(true, &env).expect("valid").expect("set");
        assert_eq!(
            (wss.variable, wss.proxy.address.host.as_str()),
            ("https_proxy", "lower")
        );
        let ws = from_environment(false, &env).expect("valid").expect("set");
        assert_eq!(
            (ws.variable, ws.proxy.address.authority().as_str()),
            ("ALL_PROXY", "all:3")
        );
        let env = lookup(&[("https_proxy", " "), ("HTTPS_PROXY", "http://p:8080")]);
        let wss = from_environment(true, &env).expect("valid").expect("set");
        assert_eq!(wss.variable, "HTTPS_PROXY");
        assert!(from_environment(true, &lookup(&[]))
            .expect("valid")
            .is_none());
    }

    #[test]
    fn no_proxy_lower_case_first() {
        let env = lookup(&[
            ("HTTPS_PROXY", "http://p:1"),
            ("no_proxy", "a.test"),
            ("NO_PROXY", "b.test"),
        ]);
        let found = from_environment(true, &env).expect("valid").expect("set");
        assert!(found.no_proxy.bypasses("a.test", 443));
        assert!(!found.no_proxy.bypasses("b.test", 443));
    }

    #[test]
    fn an_unusable_variable_is_named() {
        let env = lookup(&[("ALL_PROXY", "socks5://p:1080")]);
        assert_eq!(
            from_environment(true, &env).err(),
            Some(EnvProxyError {
                variable: "ALL_PROXY",
                problem: ProxyUrlProblem::Scheme("socks5".into())
            })
        );
    }
}
