//! Opening a tunnel through an HTTP proxy: `CONNECT host:port` (RFC 9110 §9.3.6) with
//! `Proxy-Authorization: Basic` when the route has credentials (RFC 7617, RFC 9110 §11.7.2).
//! A 2xx answer opens the tunnel; a 407 becomes [`ProxyError::AuthenticationRequired`] naming
//! the schemes the proxy offered, any other status [`ProxyError::Refused`].

use std::fmt;
use std::io;

use base64::Engine as _;
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use zeroize::Zeroize as _;

use super::no_proxy::NoProxy;
use super::url::ProxyAddress;
use crate::io::read_buf::ReadBuf;
use crate::proto::http1::{parse_response_head, write_request_head, Limits as HeadLimits};
use crate::secret::Secret;

/// The largest CONNECT answer head read.
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// A proxy a dialer goes through: where, with which credentials, and which hosts bypass it.
#[derive(Debug)]
pub struct ProxyRoute {
    pub address: ProxyAddress,
    /// The `Proxy-Authorization` value, `Basic base64(user:password)`.
    authorization: Option<Secret>,
    pub no_proxy: NoProxy,
}

impl ProxyRoute {
    /// A route through `address`; with a user there, `password` makes Basic credentials.
    pub fn new(address: ProxyAddress, password: Option<&Secret>, no_proxy: NoProxy) -> Self {
        let authorization = address.user.as_ref().map(|user| {
            let pair = Secret::new(format!(
                "{user}:{}",
                password.map_or("", |password| password.expose())
            ));
            let encoded =
                Secret::new(base64::engine::general_purpose::STANDARD.encode(pair.expose()));
            Secret::new(format!("Basic {}", encoded.expose()))
        });
        Self {
            address,
            authorization,
            no_proxy,
        }
    }

    /// Whether connections to `host:port` go through this proxy (`NO_PROXY` does not list it).
    pub fn applies_to(&self, host: &str, port: u16) -> bool {
        !self.no_proxy.bypasses(host, port)
    }
}

/// Why the proxy did not open the tunnel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyError {
    /// 407: the proxy wants credentials, or refused the ones sent.
    AuthenticationRequired {
        /// `host:port` of the proxy.
        proxy: String,
        /// The schemes of its `Proxy-Authenticate` challenges (e.g. `Basic`, `NTLM`).
        offered: Vec<String>,
        sent_credentials: bool,
    },
    /// Any other status than 2xx and 407.
    Refused { proxy: String, status: u16 },
    /// The answer was not valid HTTP, or the proxy closed or sent data early.
    Broken { proxy: String, why: String },
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AuthenticationRequired {
                proxy,
                offered,
                sent_credentials,
            } => {
                let basic =
                    offered.is_empty() || offered.iter().any(|s| s.eq_ignore_ascii_case("basic"));
                if !basic {
                    write!(
                        f,
                        "proxy {proxy} requires {} authentication (407), which hycod does not \
                         support; only Basic is",
                        offered.join(" or ")
                    )
                } else if *sent_credentials {
                    write!(
                        f,
                        "proxy {proxy} refused the credentials (407): check the user in `proxy` \
                         and the password in proxy_password_file or proxy_password_env"
                    )
                } else {
                    write!(
                        f,
                        "proxy {proxy} requires authentication (407): set proxy = \
                         \"http://USER@{proxy}\" and proxy_password_file or proxy_password_env"
                    )
                }
            }
            Self::Refused { proxy, status } => {
                write!(f, "proxy {proxy} refused CONNECT with status {status}")
            }
            Self::Broken { proxy, why } => write!(f, "proxy {proxy}: {why}"),
        }
    }
}

impl std::error::Error for ProxyError {}

/// How tunnelling failed: I/O with the proxy, or the proxy's answer.
#[derive(Debug)]
pub enum TunnelError {
    Io(io::Error),
    Proxy(ProxyError),
}

/// Asks the proxy `tcp` is connected to for a tunnel to `host:port` (IPv6 without brackets).
pub async fn tunnel(
    tcp: &mut TcpStream,
    route: &ProxyRoute,
    host: &str,
    port: u16,
) -> Result<(), TunnelError> {
    let proxy = route.address.authority();
    let broken = |why: String| {
        TunnelError::Proxy(ProxyError::Broken {
            proxy: proxy.clone(),
            why,
        })
    };
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut headers = vec![("Host", authority.as_str())];
    if let Some(authorization) = &route.authorization {
        headers.push(("Proxy-Authorization", authorization.expose()));
    }
    let mut request = Vec::with_capacity(256);
    write_request_head(&mut request, "CONNECT", &authority, headers)
        .map_err(|e| broken(e.to_string()))?;
    let (written, mut request) = tcp.write_all(request).await;
    // The request held the credentials.
    request.zeroize();
    written.map_err(TunnelError::Io)?;
    let mut buf = ReadBuf::new(MAX_ANSWER_BYTES, 0);
    loop {
        let parsed = parse_response_head(buf.data(), &HeadLimits::default())
            .map_err(|e| broken(format!("invalid CONNECT answer: {e}")))?;
        if let Some((head, used)) = parsed {
            return match head.status {
                200..=299 if used == buf.len() => Ok(()),
                200..=299 => Err(broken("sent bytes after its CONNECT answer".to_owned())),
                407 => Err(TunnelError::Proxy(ProxyError::AuthenticationRequired {
                    proxy,
                    offered: challenge_schemes(head.headers.get_all("Proxy-Authenticate")),
                    sent_credentials: route.authorization.is_some(),
                })),
                status => Err(TunnelError::Proxy(ProxyError::Refused { proxy, status })),
            };
        }
        if buf.fill(tcp).await.map_err(TunnelError::Io)? == 0 {
            return Err(broken(
                "closed the connection before answering CONNECT".to_owned(),
            ));
        }
    }
}

/// The auth-scheme of every challenge in `Proxy-Authenticate` values (RFC 9110 §11.6.2):
/// the token that starts the value or follows a comma and is not a `name=value` parameter.
fn challenge_schemes<'a>(values: impl Iterator<Item = &'a [u8]>) -> Vec<String> {
    let mut schemes: Vec<String> = Vec::new();
    for value in values {
        let text = String::from_utf8_lossy(value);
        for part in text.split(',') {
            let Some(token) = part.split_whitespace().next() else {
                continue;
            };
            let is_scheme = !token.contains('=')
                && token
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if is_scheme && !schemes.iter().any(|s| s.eq_ignore_ascii_case(token)) {
                schemes.push(token.to_owned());
            }
        }
    }
    schemes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_come_from_every_challenge_and_skip_parameters() {
        let values: [&[u8]; 3] = [
            b"Negotiate, NTLM",
            b"Basic realm=\"corp, inc\", charset=\"UTF-8\"",
            b"ntlm",
        ];
        assert_eq!(
            challenge_schemes(values.into_iter()),
            ["Negotiate", "NTLM", "Basic"]
        );
    }

    #[test]
    fn basic_credentials_are_encoded_and_never_printed() {
        let address = ProxyAddress {
            host: "px".into(),
            port: 3128,
            user: Some("svc".into()),
        };
        let password = Secret::new("hunter2");
        let route = ProxyRoute::new(address, Some(&password), NoProxy::default());
        let authorization = route.authorization.as_ref().expect("credentials");
        assert_eq!(authorization.expose(), "Basic c3ZjOmh1bnRlcjI=");
        assert!(!format!("{route:?}").contains("c3Zj"));
    }

    #[test]
    fn a_407_says_what_to_configure() {
        let error = |offered: &[&str], sent_credentials| {
            ProxyError::AuthenticationRequired {
                proxy: "px:3128".into(),
                offered: offered.iter().map(|s| (*s).to_owned()).collect(),
                sent_credentials,
            }
            .to_string()
        };
        assert_eq!(
            error(&["Basic"], false),
            "proxy px:3128 requires authentication (407): set proxy = \"http://USER@px:3128\" \
             and proxy_password_file or proxy_password_env"
        );
        assert!(error(&["Basic"], true).starts_with("proxy px:3128 refused the credentials (407)"));
        assert_eq!(
            error(&["Negotiate", "NTLM"], true),
            "proxy px:3128 requires Negotiate or NTLM authentication (407), which hycod does not \
             support; only Basic is"
        );
    }
}
