//! What the demo runs, as configuration: the relay's [`RelayConfig`] and the daemon's TOML,
//! built from the per-run key and the services' addresses. Two hybrid connections: one for
//! relayed HTTP to the sample ERP service (protocol §6) and one for WebSocket streams to the echo
//! service (protocol §5).

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use super::credentials::{NAMESPACE, RULE_NAME};
use super::erp;
use super::services::Services;
use crate::auth::verify::{Right, Rights};
use crate::config::{Config, ConfigError};
use crate::relay::config::{
    ConnectionTimeouts, KeySource, RelayConfig, RuleSpec, CONTROL_CHANNEL_BODY_LIMIT,
    CONTROL_CHANNEL_JSON_LIMIT, CONTROL_QUEUE_LIMIT, DEFAULT_IDLE_TIMEOUT,
};
use crate::relay::registry::DEFAULT_MAX_LISTENERS;
use crate::secret::Secret;

/// The hybrid connection whose requests go to the sample ERP service.
pub(crate) const HTTP_HC: &str = "erp-api";

/// The hybrid connection whose streams go to the echo service.
pub(crate) const STREAM_HC: &str = "tcp-echo";

/// Daemon workers (and so control channels per hybrid connection).
pub(crate) const DAEMON_WORKERS: usize = 2;

/// Relay workers.
pub(crate) const RELAY_WORKERS: NonZeroUsize = NonZeroUsize::MIN;

/// How long the relay waits for a listener's answer or accept. Shorter than Azure's 60 s / 30 s
/// so a broken demo fails quickly; the senders' own timeouts are longer, so they see the
/// relay's 504 rather than time out themselves.
pub(crate) const RELAY_DEADLINE: Duration = Duration::from_secs(8);

/// How long the daemon waits for the sample service before answering 504 itself.
pub(crate) const UPSTREAM_DEADLINE: Duration = Duration::from_secs(5);

/// The relay: loopback, a port from the kernel, one `root` rule with every right, an admin view.
pub(crate) fn relay_config(key: &Secret) -> RelayConfig {
    let loopback_any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    RelayConfig {
        listen: loopback_any_port,
        hybrid_connections: vec![HTTP_HC.to_owned(), STREAM_HC.to_owned()],
        anonymous_senders: Vec::new(),
        rules: vec![RuleSpec {
            name: RULE_NAME.to_owned(),
            key: key.clone(),
            rights: Rights::of(&[Right::Manage]),
            source: KeySource::InProcess,
        }],
        entity_rules: Vec::new(),
        namespace: NAMESPACE.to_owned(),
        aliases: Vec::new(),
        host_check: None,
        rendezvous_host: None,
        tls: None,
        admin: Some(loopback_any_port),
        workers: RELAY_WORKERS,
        http_deadline: RELAY_DEADLINE,
        accept_timeout: RELAY_DEADLINE,
        write_stall_timeout: Some(crate::config::limits::DEFAULT_WRITE_STALL_TIMEOUT),
        max_listeners: DEFAULT_MAX_LISTENERS,
        control_channel_body_limit: CONTROL_CHANNEL_BODY_LIMIT,
        control_channel_json_limit: CONTROL_CHANNEL_JSON_LIMIT,
        control_queue_limit: CONTROL_QUEUE_LIMIT,
        timeouts: ConnectionTimeouts::default(),
        idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
        shutdown_grace: crate::relay::core::drain::DEFAULT_SHUTDOWN_GRACE,
        log_format: crate::config::LogFormat::Text,
        log_level: crate::config::LogLevel::Warn,
    }
}

/// The daemon's configuration file text (it holds the key, hence a [`Secret`]).
pub(crate) fn daemon_toml(relay_url: &str, key: &Secret, services: &Services) -> Secret {
    let connection_string = |hc: &str| {
        format!(
            "Endpoint=sb://{NAMESPACE}/;SharedAccessKeyName={RULE_NAME};SharedAccessKey={};EntityPath={hc}",
            key.expose()
        )
    };
    Secret::new(format!(
        r#"[runtime]
workers = {DAEMON_WORKERS}

[admin]
listen = "127.0.0.1:0"

[log]
level = "warn"

[[hybrid_connection]]
name = "{HTTP_HC}"
connection_string = "{http}"
relay_url = "{relay_url}"
http_target = "http://{upstream}{base}/"

[[hybrid_connection]]
name = "{STREAM_HC}"
connection_string = "{stream}"
relay_url = "{relay_url}"
target = "tcp://{echo}"
"#,
        http = connection_string(HTTP_HC),
        stream = connection_string(STREAM_HC),
        upstream = services.upstream,
        base = erp::BASE_PATH,
        echo = services.echo,
    ))
}

/// The daemon's configuration, validated like any configuration file.
pub(crate) fn daemon_config(
    relay_url: &str,
    key: &Secret,
    services: &Services,
) -> Result<Config, ConfigError> {
    Config::from_toml_str(
        daemon_toml(relay_url, key, services).expose(),
        Path::new("."),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Relay;

    fn services() -> Services {
        Services {
            upstream: "127.0.0.1:8065".parse().expect("addr"),
            echo: "127.0.0.1:3300".parse().expect("addr"),
        }
    }

    #[test]
    fn the_daemon_configuration_loads_with_both_targets_and_the_relay() {
        let key = Secret::new("c2VjcmV0LWRlbW8ta2V5LWZvci10ZXN0cy1vbmx5AAA=");
        let config = daemon_config("ws://127.0.0.1:40000", &key, &services()).expect("valid");
        assert_eq!(config.runtime.workers.count().get(), DAEMON_WORKERS);
        assert_eq!(
            config.admin.listen,
            Some("127.0.0.1:0".parse().expect("addr"))
        );
        let [http, stream] = config.hybrid_connections.as_slice() else {
            panic!("two hybrid connections expected");
        };
        assert_eq!(http.entity_path, HTTP_HC);
        let target = http.http_target.as_ref().expect("http_target");
        assert_eq!(target.port(), 8065);
        assert_eq!(target.base_path(), erp::BASE_PATH);
        assert_eq!(stream.entity_path, STREAM_HC);
        assert_eq!(stream.target.as_ref().map(|t| t.port), Some(3300));
        assert!(matches!(&http.relay, Relay::SelfHosted { url, .. } if url.port() == Some(40000)));
        assert_eq!(
            http.connection_string.credential(),
            stream.connection_string.credential()
        );
    }

    #[test]
    fn the_relay_serves_both_hybrid_connections_with_the_key() {
        let key = Secret::new("k3y");
        let relay = relay_config(&key);
        assert_eq!(relay.hybrid_connections, [HTTP_HC, STREAM_HC]);
        assert_eq!(relay.rules[0].key.expose(), "k3y");
        assert!(relay.rules[0].rights.grants(Right::Listen));
        assert!(relay.rules[0].rights.grants(Right::Send));
        assert!(relay.listen.ip().is_loopback() && relay.listen.port() == 0);
        assert!(relay.http_deadline > UPSTREAM_DEADLINE);
    }
}
