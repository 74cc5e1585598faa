//! One hybrid connection or forward prepared for the workers (architecture §1–§3): the relay's
//! base URL, the dialer with its TLS trust and proxy, and (for a hybrid connection) how many
//! control channels to open. Built on the main thread at start and on reload, then shared
//! read-only by every worker.

use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::connection_string::ConnectionString;
use crate::config::{Forward, HybridConnection, ProxySetting, Relay};
use crate::daemon::listener::admission::HcCounts;
use crate::io::ws_client::Dialer;
use crate::tls::{client_config, ClientConfig, TlsSetupError, TrustRoots};

/// How long opening a forward's sender WebSocket may take (hybrid connections use
/// `[limits] handshake_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// One hybrid connection's settings shared (read-only) by all workers.
pub(super) struct HcPlan {
    pub config: HybridConnection,
    pub dialer: Dialer,
    /// `wss://{namespace}` or the self-hosted `relay_url`, without a trailing `/`.
    pub relay_base: String,
    pub channels: NonZeroUsize,
    /// Streams and requests in flight on this hybrid connection, over all workers.
    pub counts: HcCounts,
}

/// Prepares `hc` for `workers` workers; `webpki` is the shared public-roots TLS configuration.
pub(super) fn plan(
    hc: &HybridConnection,
    workers: NonZeroUsize,
    webpki: &Arc<ClientConfig>,
) -> Result<HcPlan, TlsSetupError> {
    let (relay_base, mut dialer) = relay_endpoint(
        &hc.relay,
        &hc.connection_string,
        hc.tls_roots.as_ref(),
        &hc.proxy,
        webpki,
    )?;
    tracing::info!(hybrid_connection = %hc.name, relay = %relay_base, proxy = %hc.proxy,
        "relay connections: proxy chosen");
    // TCP, proxy and TLS set-up of control channels and rendezvous sockets.
    dialer.connect_timeout = hc.limits.handshake_timeout;
    Ok(HcPlan {
        config: hc.clone(),
        dialer,
        relay_base,
        channels: hc.listener_count(workers),
        counts: HcCounts::default(),
    })
}

/// One forward's settings shared (read-only) by all workers.
pub(super) struct ForwardPlan {
    pub config: Forward,
    /// Opens the sender WebSockets (TLS trust and proxy of the forward).
    pub dialer: Dialer,
    /// `wss://{namespace}` or the self-hosted `relay_url`, without a trailing `/`.
    pub relay_base: String,
}

/// Prepares `forward`; `webpki` is the shared public-roots TLS configuration.
pub(super) fn plan_forward(
    forward: &Forward,
    webpki: &Arc<ClientConfig>,
) -> Result<ForwardPlan, TlsSetupError> {
    let (relay_base, dialer) = relay_endpoint(
        &forward.relay,
        &forward.connection_string,
        forward.tls_roots.as_ref(),
        &forward.proxy,
        webpki,
    )?;
    tracing::info!(forward = %forward.name, relay = %relay_base, proxy = %forward.proxy,
        "relay connections: proxy chosen");
    Ok(ForwardPlan {
        config: forward.clone(),
        dialer,
        relay_base,
    })
}

/// The relay's base URL and a dialer for it: Azure's namespace or a self-hosted `relay_url`,
/// trusting `tls_roots`, else the webpki roots.
fn relay_endpoint(
    relay: &Relay,
    connection_string: &ConnectionString,
    tls_roots: Option<&TrustRoots>,
    proxy: &ProxySetting,
    webpki: &Arc<ClientConfig>,
) -> Result<(String, Dialer), TlsSetupError> {
    let relay_base = match relay {
        Relay::Azure => format!("wss://{}", connection_string.namespace_host()),
        Relay::SelfHosted { url } => url.as_str().trim_end_matches('/').to_owned(),
    };
    let tls = match tls_roots {
        None | Some(TrustRoots::WebPki) => webpki.clone(),
        Some(roots) => client_config(roots)?,
    };
    let dialer = Dialer {
        tls,
        proxy: proxy.route().map(Arc::new),
        connect_timeout: CONNECT_TIMEOUT,
        resolver: Default::default(),
    };
    Ok((relay_base, dialer))
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
        let route = plan.dialer.proxy.as_ref().expect("proxy route");
        assert_eq!(route.address.authority(), "px:3128");
    }

    fn forward(extra: &str) -> Forward {
        let text = format!(
            r#"
[[forward]]
name = "f"
listen = "127.0.0.1:0"
connection_string = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=Kx5vX0c1Hk8xZy9uVmJ3Y2RlZmdoaWprbG1ub3BxcnM=;EntityPath=a"
{extra}
"#
        );
        let config = Config::from_toml_str(&text, Path::new(".")).expect("valid configuration");
        config.forwards[0].clone()
    }

    #[test]
    fn a_forward_to_azure_uses_the_namespace_and_the_webpki_roots() {
        let webpki = client_config(&TrustRoots::WebPki).expect("webpki roots");
        let plan = plan_forward(&forward(""), &webpki).expect("plan");
        assert_eq!(plan.relay_base, "wss://ns.servicebus.windows.net");
        assert!(Arc::ptr_eq(&plan.dialer.tls, &webpki));
        assert!(plan.dialer.proxy.is_none());
    }

    #[test]
    fn a_forward_to_a_self_hosted_relay_keeps_its_url_and_proxy() {
        let webpki = client_config(&TrustRoots::WebPki).expect("webpki roots");
        let plan = plan_forward(
            &forward("relay_url = \"ws://127.0.0.1:9000/\"\nproxy = \"http://px:3128\""),
            &webpki,
        )
        .expect("plan");
        assert_eq!(plan.relay_base, "ws://127.0.0.1:9000");
        let route = plan.dialer.proxy.as_ref().expect("proxy route");
        assert_eq!(route.address.authority(), "px:3128");
    }
}
