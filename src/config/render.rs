//! The effective configuration as `hycod check` prints it: TOML-shaped text with every default
//! filled in and every secret shown as `<redacted>` (architecture §5).
//!
//! A connection string is shown by its endpoint, key name and entity path; its key or
//! signature is always `<redacted>`.

use std::fmt;
use std::num::NonZeroUsize;
use std::time::Duration;

use crate::auth::connection_string::{ConnectionString, Credential};

use crate::secret::REDACTED;

use super::duration;
use super::limits::Limits;
use crate::tls::TrustRoots;

use super::typed::{
    Config, ConnectionStringSource, Forward, HybridConnection, PasswordSource, Peer, ProxySetting,
    Relay, Workers, MAX_LISTENERS,
};

/// `config` as effective-configuration text; `workers` is the worker count on this machine
/// (it resolves `workers = 0` and the default `listeners`).
pub(crate) fn effective(config: &Config, workers: NonZeroUsize) -> Effective<'_> {
    Effective { config, workers }
}

/// The [`fmt::Display`] of the effective configuration.
pub(crate) struct Effective<'a> {
    config: &'a Config,
    workers: NonZeroUsize,
}

impl fmt::Display for Effective<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let config = self.config;
        writeln!(
            f,
            "# effective configuration: defaults filled in, secrets redacted"
        )?;
        writeln!(f)?;
        writeln!(f, "[runtime]")?;
        match config.runtime.workers {
            Workers::PerCore => writeln!(
                f,
                "workers = 0  # one per core: {} on this machine",
                self.workers
            )?,
            Workers::Fixed(count) => writeln!(f, "workers = {count}")?,
        }
        writeln!(f)?;
        writeln!(f, "[admin]")?;
        match config.admin.listen {
            Some(listen) => writeln!(f, "listen = {}", quote(&listen.to_string()))?,
            None => writeln!(f, "# listen is not set: no admin endpoint")?,
        }
        writeln!(
            f,
            "head_timeout = {}",
            quote(&duration::format(config.admin.head_timeout))
        )?;
        writeln!(f)?;
        writeln!(f, "[log]")?;
        writeln!(f, "format = {}", quote(config.log.format.as_str()))?;
        writeln!(f, "level = {}", quote(config.log.level.as_str()))?;
        writeln!(f)?;
        writeln!(f, "[shutdown]")?;
        writeln!(
            f,
            "grace = {}",
            quote(&duration::format(config.shutdown.grace))
        )?;
        writeln!(f)?;
        limits(f, &config.limits)?;
        for hc in &config.hybrid_connections {
            writeln!(f)?;
            from(f, config.sources.of_hybrid_connection(&hc.name))?;
            self.hybrid_connection(f, hc, &config.limits)?;
        }
        for forward in &config.forwards {
            writeln!(f)?;
            from(f, config.sources.of_forward(&forward.name))?;
            forward_section(f, forward)?;
        }
        Ok(())
    }
}

/// `# from FILE` above a section, when the file is known.
fn from(f: &mut fmt::Formatter<'_>, file: Option<&std::path::Path>) -> fmt::Result {
    match file {
        Some(file) => writeln!(f, "# from {}", file.display()),
        None => Ok(()),
    }
}

/// `[limits]`, every key with its value.
fn limits(f: &mut fmt::Formatter<'_>, limits: &Limits) -> fmt::Result {
    writeln!(f, "[limits]")?;
    writeln!(
        f,
        "max_streams_per_hybrid_connection = {}",
        limits.max_streams_per_hybrid_connection
    )?;
    writeln!(
        f,
        "max_requests_per_hybrid_connection = {}",
        limits.max_requests_per_hybrid_connection
    )?;
    writeln!(
        f,
        "max_streams_per_worker = {}",
        limits.max_streams_per_worker
    )?;
    writeln!(
        f,
        "max_requests_per_worker = {}",
        limits.max_requests_per_worker
    )?;
    writeln!(f, "stream_buffer = {}", limits.stream_buffer)?;
    match limits.max_frame {
        Some(max) => writeln!(f, "max_frame = {max}")?,
        None => writeln!(f, "max_frame = 0  # unbounded: frames are streamed")?,
    }
    match limits.max_message {
        Some(max) => writeln!(f, "max_message = {max}")?,
        None => writeln!(f, "max_message = 0  # unbounded: messages are streamed")?,
    }
    writeln!(f, "max_http_head = {}", limits.max_http_head)?;
    writeln!(f, "max_header_count = {}", limits.max_header_count)?;
    writeln!(
        f,
        "handshake_timeout = {}",
        quote(&duration::format(limits.handshake_timeout))
    )?;
    match limits.idle_timeout {
        Some(idle) => writeln!(f, "idle_timeout = {}", quote(&duration::format(idle)))?,
        None => writeln!(f, "idle_timeout = \"0s\"  # off")?,
    }
    match limits.write_stall_timeout {
        Some(stall) => writeln!(
            f,
            "write_stall_timeout = {}",
            quote(&duration::format(stall))
        ),
        None => writeln!(f, "write_stall_timeout = \"0s\"  # off"),
    }
}

impl Effective<'_> {
    fn hybrid_connection(
        &self,
        f: &mut fmt::Formatter<'_>,
        hc: &HybridConnection,
        limits: &Limits,
    ) -> fmt::Result {
        writeln!(f, "[[hybrid_connection]]")?;
        writeln!(f, "name = {}", quote(&hc.name))?;
        connection_string(f, &hc.connection_string_source, &hc.connection_string)?;
        writeln!(f, "entity_path = {}", quote(&hc.entity_path))?;
        if let Some(target) = &hc.target {
            writeln!(f, "target = {}", quote(&target.to_string()))?;
        }
        if hc.peer != Peer::Plain {
            writeln!(f, "peer = {}", quote(hc.peer.as_str()))?;
        }
        if !hc.targets.is_empty() {
            let entries: Vec<String> = hc
                .targets
                .iter()
                .map(|(name, target)| format!("{} = {}", quote(name), quote(&target.to_string())))
                .collect();
            writeln!(f, "targets = {{ {} }}", entries.join(", "))?;
        }
        if let Some(http_target) = &hc.http_target {
            writeln!(f, "http_target = {}", quote(&http_target.to_string()))?;
            match hc.request_buffer {
                0 => writeln!(f, "request_buffer = 0  # request bodies always stream")?,
                bytes => writeln!(f, "request_buffer = {bytes}")?,
            }
        }
        let listeners = hc.listener_count(self.workers);
        match hc.listeners {
            Some(_) => writeln!(f, "listeners = {listeners}")?,
            None => writeln!(
                f,
                "listeners = {listeners}  # default: one per worker, at most {MAX_LISTENERS}"
            )?,
        }
        relay(
            f,
            &hc.relay,
            &hc.connection_string,
            hc.tls_roots.as_ref(),
            &hc.proxy,
        )?;
        writeln!(f, "token_ttl = {}", quote(&duration::format(hc.token_ttl)))?;
        writeln!(
            f,
            "ping_interval = {}",
            quote(&duration::format(hc.ping_interval))
        )?;
        stream_ping_interval(f, hc.stream_ping_interval)?;
        if !hc.rendezvous_hosts.is_empty() {
            let hosts: Vec<String> = hc.rendezvous_hosts.iter().map(|h| quote(h)).collect();
            writeln!(f, "rendezvous_hosts = [{}]", hosts.join(", "))?;
        }
        if hc.limits.max_streams_per_hybrid_connection != limits.max_streams_per_hybrid_connection {
            writeln!(
                f,
                "max_streams = {}",
                hc.limits.max_streams_per_hybrid_connection
            )?;
        }
        if hc.limits.max_requests_per_hybrid_connection != limits.max_requests_per_hybrid_connection
        {
            writeln!(
                f,
                "max_requests = {}",
                hc.limits.max_requests_per_hybrid_connection
            )?;
        }
        Ok(())
    }
}

fn forward_section(f: &mut fmt::Formatter<'_>, forward: &Forward) -> fmt::Result {
    writeln!(f, "[[forward]]")?;
    writeln!(f, "name = {}", quote(&forward.name))?;
    let listen = quote(&forward.listen.to_string());
    if forward.listen.port() == 0 {
        writeln!(
            f,
            "listen = {listen}  # port 0: the system picks one at start"
        )?;
    } else {
        writeln!(f, "listen = {listen}")?;
    }
    connection_string(
        f,
        &forward.connection_string_source,
        &forward.connection_string,
    )?;
    writeln!(f, "entity_path = {}", quote(&forward.entity_path))?;
    if let Some(port_name) = &forward.port_name {
        writeln!(f, "peer = {}", quote(forward.peer.as_str()))?;
        writeln!(f, "port_name = {}", quote(port_name))?;
    }
    relay(
        f,
        &forward.relay,
        &forward.connection_string,
        forward.tls_roots.as_ref(),
        &forward.proxy,
    )?;
    writeln!(
        f,
        "token_ttl = {}",
        quote(&duration::format(forward.token_ttl))
    )?;
    stream_ping_interval(f, forward.stream_ping_interval)
}

/// `stream_ping_interval`, `0s` when off.
fn stream_ping_interval(f: &mut fmt::Formatter<'_>, interval: Option<Duration>) -> fmt::Result {
    match interval {
        Some(interval) => writeln!(
            f,
            "stream_ping_interval = {}",
            quote(&duration::format(interval))
        ),
        None => writeln!(f, "stream_ping_interval = \"0s\"  # off"),
    }
}

/// The connection string's source key, with the string itself redacted.
fn connection_string(
    f: &mut fmt::Formatter<'_>,
    source: &ConnectionStringSource,
    connection_string: &ConnectionString,
) -> fmt::Result {
    let shown = redacted_connection_string(connection_string);
    match source {
        ConnectionStringSource::Inline => writeln!(f, "connection_string = {}", quote(&shown)),
        ConnectionStringSource::File(file) => {
            writeln!(
                f,
                "connection_string_file = {}",
                quote(&file.display().to_string())
            )?;
            writeln!(f, "# connection string: {shown}")
        }
        ConnectionStringSource::Env(variable) => {
            writeln!(f, "connection_string_env = {}", quote(variable))?;
            writeln!(f, "# connection string: {shown}")
        }
    }
}

/// `relay_url` (or a comment naming the Azure namespace), `tls_roots` and `proxy`.
fn relay(
    f: &mut fmt::Formatter<'_>,
    relay: &Relay,
    connection_string: &ConnectionString,
    tls_roots: Option<&TrustRoots>,
    proxy: &ProxySetting,
) -> fmt::Result {
    match relay {
        Relay::Azure => writeln!(
            f,
            "# relay: Azure Relay at wss://{}:443",
            connection_string.namespace_host()
        )?,
        Relay::SelfHosted { url } => writeln!(f, "relay_url = {}", quote(url.as_str()))?,
    }
    if let Some(roots) = tls_roots {
        writeln!(f, "tls_roots = {}", quote(&roots.to_string()))?;
    }
    match proxy {
        ProxySetting::Direct => {}
        ProxySetting::Off => writeln!(f, "proxy = \"none\"")?,
        ProxySetting::Configured { address, password } => {
            writeln!(f, "proxy = {}", quote(&address.to_string()))?;
            match password.as_ref().map(|p| &p.source) {
                Some(PasswordSource::File(file)) => writeln!(
                    f,
                    "proxy_password_file = {}",
                    quote(&file.display().to_string())
                )?,
                Some(PasswordSource::Env(variable)) => {
                    writeln!(f, "proxy_password_env = {}", quote(variable))?;
                }
                None => {}
            }
        }
        ProxySetting::Environment {
            variable, address, ..
        } => writeln!(f, "# proxy: {address} from the environment's {variable}")?,
    }
    Ok(())
}

/// The connection string with its key or signature replaced by `<redacted>`.
pub(crate) fn redacted_connection_string(connection_string: &ConnectionString) -> String {
    let mut shown = format!("Endpoint={}", connection_string.endpoint());
    match connection_string.credential() {
        Credential::KeyPair { key_name, .. } => {
            shown.push_str(&format!(
                ";SharedAccessKeyName={key_name};SharedAccessKey={REDACTED}"
            ));
        }
        Credential::Signature(_) => {
            shown.push_str(&format!(";SharedAccessSignature={REDACTED}"));
        }
    }
    if let Some(entity_path) = connection_string.entity_path() {
        shown.push_str(&format!(";EntityPath={entity_path}"));
    }
    shown
}

/// A TOML basic string.
fn quote(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const KEY: &str = "Kx5vX0c1Hk8xZy9uVmJ3Y2RlZmdoaWprbG1ub3BxcnM=";

    fn render(text: &str, workers: usize) -> String {
        let config = Config::from_toml_str(text, Path::new("/etc/hycod")).expect("valid");
        let workers = NonZeroUsize::new(workers).expect("non-zero");
        effective(&config, workers).to_string()
    }

    fn inline(extra: &str) -> String {
        format!(
            "[[hybrid_connection]]\nname = \"sap\"\nconnection_string = \"Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={KEY};EntityPath=sap-gateway\"\ntarget = \"tcp://10.1.2.3:3300\"\n{extra}\n"
        )
    }

    #[test]
    fn defaults_are_filled_in() {
        let text = render(&inline(""), 6);
        for line in [
            "workers = 0  # one per core: 6 on this machine",
            "# listen is not set: no admin endpoint",
            "format = \"text\"",
            "level = \"info\"",
            "grace = \"30s\"",
            "entity_path = \"sap-gateway\"",
            "target = \"tcp://10.1.2.3:3300\"",
            "listeners = 6  # default: one per worker, at most 25",
            "# relay: Azure Relay at wss://contoso.servicebus.windows.net:443",
            "token_ttl = \"1h\"",
            "ping_interval = \"30s\"",
            "stream_ping_interval = \"30s\"",
            "[limits]",
            "max_streams_per_hybrid_connection = 1024",
            "max_requests_per_hybrid_connection = 1024",
            "max_streams_per_worker = 4096",
            "max_requests_per_worker = 4096",
            "stream_buffer = 524288",
            "max_frame = 0  # unbounded: frames are streamed",
            "max_message = 0  # unbounded: messages are streamed",
            "max_http_head = 32768",
            "max_header_count = 100",
            "handshake_timeout = \"10s\"",
            "idle_timeout = \"2h\"",
            "write_stall_timeout = \"1m\"",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn the_key_is_redacted_but_endpoint_and_key_name_are_shown() {
        let text = render(&inline(""), 2);
        assert!(!text.contains(KEY));
        assert!(text.contains(
            "connection_string = \"Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=<redacted>;EntityPath=sap-gateway\""
        ));
    }

    #[test]
    fn explicit_values_are_shown_as_given() {
        let text = render(
            &format!(
                "[runtime]\nworkers = 3\n[admin]\nlisten = \"127.0.0.1:9464\"\n[limits]\nmax_message = 2048\nidle_timeout = \"0s\"\nwrite_stall_timeout = \"0s\"\n{}",
                inline("listeners = 2\nhttp_target = \"http://127.0.0.1:8065/ws\"\nrelay_url = \"ws://127.0.0.1:9000\"\nproxy = \"http://proxy:3128\"\ntoken_ttl = \"90m\"\nping_interval = \"5s\"\nmax_streams = 5\nmax_requests = 1024")
            ),
            3,
        );
        for line in [
            "workers = 3",
            "listen = \"127.0.0.1:9464\"",
            "listeners = 2",
            "http_target = \"http://127.0.0.1:8065/ws\"",
            "request_buffer = 8388608",
            "relay_url = \"ws://127.0.0.1:9000/\"",
            "proxy = \"http://proxy:3128\"",
            "token_ttl = \"90m\"",
            "ping_interval = \"5s\"",
            "max_streams = 5",
            "max_message = 2048",
            "idle_timeout = \"0s\"  # off",
            "write_stall_timeout = \"0s\"  # off",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(
            !text.contains("max_requests = "),
            "an override equal to [limits] is not repeated:\n{text}"
        );
    }

    #[test]
    fn azbridge_peers_show_their_port_names() {
        let text = render(
            &format!(
                "{}[[forward]]\nname = \"gw\"\nlisten = \"127.0.0.1:3300\"\nconnection_string = \"Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={KEY};EntityPath=sap\"\npeer = \"azbridge\"\n",
                inline("peer = \"azbridge\"\ntargets = { \"3300\" = \"tcp://sapgw:3300\", \"3200\" = \"tcp://sapdp:3200\" }")
            ),
            2,
        );
        for line in [
            "peer = \"azbridge\"",
            "targets = { \"3200\" = \"tcp://sapdp:3200\", \"3300\" = \"tcp://sapgw:3300\" }",
            "port_name = \"3300\"",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn forwards_are_shown_with_their_key_redacted() {
        let text = render(
            &format!(
                "{}[[forward]]\nname = \"gui\"\nlisten = \"127.0.0.1:0\"\nconnection_string = \"Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={KEY};EntityPath=sap-gateway\"\n[[forward]]\nname = \"rfc\"\nlisten = \"127.0.0.1:3300\"\nconnection_string = \"Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={KEY}\"\nentity_path = \"rfc\"\nrelay_url = \"ws://127.0.0.1:9000\"\nproxy = \"http://px:3128\"\ntoken_ttl = \"5m\"\n",
                inline("")
            ),
            2,
        );
        assert!(!text.contains(KEY));
        let forwards = &text[text.find("[[forward]]").expect("a forward section")..];
        assert_eq!(
            forwards,
            "[[forward]]
name = \"gui\"
listen = \"127.0.0.1:0\"  # port 0: the system picks one at start
connection_string = \"Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=<redacted>;EntityPath=sap-gateway\"
entity_path = \"sap-gateway\"
# relay: Azure Relay at wss://contoso.servicebus.windows.net:443
token_ttl = \"1h\"
stream_ping_interval = \"30s\"

[[forward]]
name = \"rfc\"
listen = \"127.0.0.1:3300\"
connection_string = \"Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=<redacted>\"
entity_path = \"rfc\"
relay_url = \"ws://127.0.0.1:9000/\"
proxy = \"http://px:3128\"
token_ttl = \"5m\"
stream_ping_interval = \"30s\"
"
        );
    }

    #[test]
    fn a_signature_is_redacted() {
        let text = render(
            "[[hybrid_connection]]\nname = \"a\"\nentity_path = \"hc\"\ntarget = \"tcp://h:1\"\nconnection_string = \"Endpoint=sb://ns.example/;SharedAccessSignature=SharedAccessSignature sr=x&sig=SECRETSIG&se=1&skn=k\"\n",
            1,
        );
        assert!(!text.contains("SECRETSIG"));
        assert!(text.contains("SharedAccessSignature=<redacted>"));
    }

    #[test]
    fn the_source_is_named_for_env_connection_strings() {
        let config = Config::from_toml_str_with_env(
            "[[hybrid_connection]]\nname = \"a\"\nconnection_string_env = \"CS\"\ntarget = \"tcp://h:1\"\n",
            Path::new("/"),
            &|name| match name {
                "CS" => Ok(format!(
                    "Endpoint=sb://ns.example/;SharedAccessKeyName=k;SharedAccessKey={KEY};EntityPath=hc"
                )),
                _ => Err(std::env::VarError::NotPresent),
            },
        )
        .expect("valid");
        let text = effective(&config, NonZeroUsize::MIN).to_string();
        assert!(text.contains("connection_string_env = \"CS\"\n# connection string: Endpoint=sb://ns.example/;SharedAccessKeyName=k;SharedAccessKey=<redacted>;EntityPath=hc\n"));
        assert!(!text.contains(KEY));
    }
}
