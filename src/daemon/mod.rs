//! The listener daemon (spec Appendix B, design.md §1–§3): per-worker context, metrics, and
//! the relayed-HTTP mode with its upstream HTTP/1.1 client.

pub mod context;
pub mod http;
pub mod metrics;
pub mod upstream;

#[cfg(test)]
pub(crate) mod test_support {
    //! Values the daemon's unit tests share.

    use monoio::io::AsyncReadRent;
    use monoio::net::UnixStream;

    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    use super::context::HcContext;
    use crate::config::{Config, HttpTarget};
    use crate::io::ws_client::Dialer;
    use crate::metrics::Shard;
    use crate::tls::{client_config, TrustRoots};

    /// A hybrid connection context for `http_target` (when given), entity path `hyco`.
    pub fn context(target: Option<&str>) -> HcContext {
        let tls = client_config(&TrustRoots::WebPki).expect("tls");
        HcContext {
            name: "test".into(),
            entity_path: "hyco".into(),
            target: None,
            http_target: target.map(http_target),
            dialer: Dialer {
                tls: tls.clone(),
                proxy: None,
                connect_timeout: Duration::from_secs(5),
            },
            upstream_tls: tls,
            upstream_pool: RefCell::new(Vec::new()),
            upstream_deadline: Duration::from_secs(5),
            metrics: Rc::new(RefCell::new(Shard::new())),
        }
    }

    /// Everything the peer of `stream` wrote until it closed.
    pub async fn read_to_end(mut stream: UnixStream) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let (result, chunk) = stream.read(Vec::with_capacity(64 * 1024)).await;
            match result.expect("read") {
                0 => return out,
                _ => out.extend_from_slice(&chunk),
            }
        }
    }

    /// An `http_target` parsed as the configuration parses it.
    pub fn http_target(url: &str) -> HttpTarget {
        let text = format!(
            "[[hybrid_connection]]\nname = \"t\"\nconnection_string = \"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=a2V5;EntityPath=hyco\"\nhttp_target = \"{url}\"\n"
        );
        let config = Config::from_toml_str(&text, std::path::Path::new("."))
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        config.hybrid_connections[0]
            .http_target
            .clone()
            .expect("http_target set")
    }
}
