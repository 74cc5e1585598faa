//! One hybrid connection prepared for the workers (design.md §1–§3): the relay's base URL, the
//! dialer with its TLS trust and proxy, and how many control channels to open. Built on the
//! main thread at start and on reload, then shared read-only by every worker.

use std::num::NonZeroUsize;
use std::sync::Arc;

use super::admission::HcCounts;
use crate::config::{HybridConnection, Relay};
use crate::io::ws_client::Dialer;
use crate::tls::{client_config, ClientConfig, TlsSetupError, TrustRoots};

/// One hybrid connection's settings shared (read-only) by all workers.
pub struct HcPlan {
    pub config: HybridConnection,
    pub dialer: Dialer,
    /// `wss://{namespace}` or the self-hosted `relay_url`, without a trailing `/`.
    pub relay_base: String,
    pub channels: NonZeroUsize,
    /// Streams and requests in flight on this hybrid connection, over all workers.
    pub counts: HcCounts,
}

/// Prepares `hc` for `workers` workers; `webpki` is the shared public-roots TLS configuration.
pub fn plan(
    hc: &HybridConnection,
    workers: NonZeroUsize,
    webpki: &Arc<ClientConfig>,
) -> Result<HcPlan, TlsSetupError> {
    let (relay_base, tls) = match &hc.relay {
        Relay::Azure => (
            format!("wss://{}", hc.connection_string.namespace_host()),
            webpki.clone(),
        ),
        Relay::SelfHosted { url, ca_file } => {
            let tls = match ca_file {
                Some(file) => client_config(&TrustRoots::CaFile(file.clone()))?,
                None => webpki.clone(),
            };
            (url.as_str().trim_end_matches('/').to_owned(), tls)
        }
    };
    Ok(HcPlan {
        config: hc.clone(),
        dialer: Dialer {
            tls,
            proxy: hc.proxy.as_ref().map(|p| (p.host.clone(), p.port)),
            // TCP, TLS and the WebSocket upgrade of control channels and rendezvous sockets.
            connect_timeout: hc.limits.handshake_timeout,
        },
        relay_base,
        channels: hc.listener_count(workers),
        counts: HcCounts::default(),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;

    fn hc(extra: &str) -> HybridConnection {
        let text = format!(
            r#"
[[hybrid_connection]]
name = "a"
connection_string = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey=Kx5vX0c1Hk8xZy9uVmJ3Y2RlZmdoaWprbG1ub3BxcnM=;EntityPath=a"
target = "tcp://db:1"
{extra}
"#
        );
        let config = Config::from_toml_str(&text, Path::new(".")).expect("valid configuration");
        config.hybrid_connections[0].clone()
    }

    #[test]
    fn azure_uses_the_namespace_and_one_channel_per_worker() {
        let webpki = client_config(&TrustRoots::WebPki).expect("webpki roots");
        let three = NonZeroUsize::new(3).expect("3 > 0");
        let plan = plan(&hc(""), three, &webpki).expect("plan");
        assert_eq!(plan.relay_base, "wss://ns.servicebus.windows.net");
        assert_eq!(plan.channels, three);
        assert!(Arc::ptr_eq(&plan.dialer.tls, &webpki));
    }

    #[test]
    fn a_self_hosted_relay_keeps_its_url_without_the_trailing_slash() {
        let webpki = client_config(&TrustRoots::WebPki).expect("webpki roots");
        let plan = plan(
            &hc("relay_url = \"ws://127.0.0.1:9000/\"\nlisteners = 2\nproxy = \"http://px:3128\""),
            NonZeroUsize::MIN,
            &webpki,
        )
        .expect("plan");
        assert_eq!(plan.relay_base, "ws://127.0.0.1:9000");
        assert_eq!(plan.channels.get(), 2);
        assert_eq!(plan.dialer.proxy, Some(("px".to_owned(), 3128)));
    }
}
