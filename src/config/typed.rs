//! The validated configuration the daemon runs from (architecture §5): durations, socket
//! addresses, parsed URLs and non-zero counts instead of text. Built only by
//! [`super::Config::load`] / [`super::Config::from_toml_str`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::auth::connection_string::ConnectionString;
pub use crate::proxy::ProxyAddress;
use crate::proxy::{NoProxy, ProxyRoute};
use crate::secret::Secret;
use crate::tls::TrustRoots;

use super::error::ConfigWarning;
use super::limits::Limits;

/// Default `[admin] head_timeout`: haproxy's common `timeout http-request`.
pub const DEFAULT_ADMIN_HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The shortest `[admin] head_timeout`.
pub const MIN_ADMIN_HEAD_TIMEOUT: Duration = Duration::from_millis(100);
/// Default `[shutdown] grace`.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Default `token_ttl` (the .NET SDK's token lifetime, protocol §3.3).
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// Smallest accepted `token_ttl`: renewal happens well before expiry, so shorter makes no sense.
pub const MIN_TOKEN_TTL: Duration = Duration::from_secs(60);
/// Default `ping_interval` (protocol §4.7, the listener machine's default).
pub(super) const DEFAULT_PING_INTERVAL: Duration =
    crate::proto::hc::listener::DEFAULT_PING_INTERVAL;
/// Smallest accepted `ping_interval`: a dead channel is then noticed within 2 s.
pub(super) const MIN_PING_INTERVAL: Duration = Duration::from_secs(1);
/// Default `request_buffer`: request bodies up to 8 MiB reach the `http_target` with a
/// `Content-Length` (nginx's `proxy_request_buffering on`).
pub const DEFAULT_REQUEST_BUFFER: usize = 8 * 1024 * 1024;
/// Default `stream_ping_interval`: azbridge's keep-alive (`KeepAliveInterval`, 30 s), well
/// inside the 4-minute idle cut of Azure's load balancers (docs/architecture.md "Stream
/// keep-alive").
pub(super) const DEFAULT_STREAM_PING_INTERVAL: Duration = Duration::from_secs(30);
/// Smallest accepted non-zero `stream_ping_interval`.
pub(super) const MIN_STREAM_PING_INTERVAL: Duration = Duration::from_secs(1);
/// Azure Relay allows at most 25 listeners per hybrid connection (protocol §9).
pub const MAX_LISTENERS: usize = 25;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `[runtime]`.
    pub runtime: Runtime,
    /// `[admin]`.
    pub admin: Admin,
    /// `[log]`.
    pub log: Log,
    /// `[shutdown]`.
    pub shutdown: Shutdown,
    /// `[limits]`, before the per-hybrid-connection overrides.
    pub limits: Limits,
    /// `[[hybrid_connection]]`, names unique. At least one hybrid connection or forward.
    pub hybrid_connections: Vec<HybridConnection>,
    /// `[[forward]]`, names and non-zero `listen` addresses unique.
    pub forwards: Vec<Forward>,
    /// Things that load but deserve attention (e.g. unknown connection-string keys).
    pub warnings: Vec<ConfigWarning>,
    /// The file each hybrid connection and forward was written in.
    pub sources: super::Sources,
}

/// `[runtime]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Runtime {
    /// `workers`: 0 in the file means one per core.
    pub workers: Workers,
}

/// How many worker threads to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workers {
    /// One per available core (`workers = 0`, the default).
    PerCore,
    /// Exactly this many.
    Fixed(NonZeroUsize),
}

impl Workers {
    /// The number of workers on this machine.
    pub fn count(self) -> NonZeroUsize {
        match self {
            Self::PerCore => std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
            Self::Fixed(count) => count,
        }
    }
}

/// `[admin]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admin {
    /// `listen`: where `/metrics`, `/healthz` and `/readyz` are served; `None` = no admin endpoint.
    pub listen: Option<SocketAddr>,
    /// `head_timeout`: how long a client has to send its request head; then it gets 408 and
    /// the connection closes (one request per connection, its body is never read).
    pub head_timeout: Duration,
}

/// `[log]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Log {
    /// `format`, default text.
    pub format: LogFormat,
    /// `level`, default info (`RUST_LOG` overrides it).
    pub level: LogLevel,
}

/// `[log] format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The spelling used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

/// `[log] level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Diagnostics.
    Debug,
    /// Lifecycle events (the default).
    #[default]
    Info,
    /// Problems that were handled.
    Warn,
    /// Problems that were not.
    Error,
}

impl LogLevel {
    /// The spelling used in the file (and understood by `tracing` filters).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// `[shutdown]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shutdown {
    /// `grace`: how long in-flight streams and requests may take after SIGTERM.
    pub grace: Duration,
}

/// One `[[hybrid_connection]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HybridConnection {
    /// `name`: unique, `[A-Za-z0-9_.-]+`, used as a metric label.
    pub name: String,
    /// Where the connection string came from (re-read on reload).
    pub connection_string_source: ConnectionStringSource,
    /// The parsed connection string (its key stays a `Secret`).
    pub connection_string: ConnectionString,
    /// The hybrid connection path: `entity_path` or the connection string's `EntityPath`.
    pub entity_path: String,
    /// `target`: where relayed WebSocket streams go. At least one of `target` and `http_target`
    /// is set.
    pub target: Option<TcpTarget>,
    /// `http_target`: where relayed HTTP requests go.
    pub http_target: Option<HttpTarget>,
    /// `listeners`; `None` = one per worker (see [`HybridConnection::listener_count`]).
    pub listeners: Option<NonZeroUsize>,
    /// Azure, or a self-hosted relay (`relay_url`).
    pub relay: Relay,
    /// `tls_roots` (or the older `relay_ca_file`), else `[tls] roots`: the trust store for the
    /// relay's certificate; `None` = the webpki roots.
    pub tls_roots: Option<TrustRoots>,
    /// `proxy` (with its password keys) or the environment's proxy, for relay connections.
    pub proxy: ProxySetting,
    /// `token_ttl`: lifetime of the SAS tokens the daemon mints.
    pub token_ttl: Duration,
    /// `ping_interval`: keep-alive ping interval on each control channel; a channel silent for
    /// twice this long counts as dead (protocol §4.7).
    pub ping_interval: Duration,
    /// `stream_ping_interval`: a WebSocket ping on each relayed stream after this much silence
    /// from the relay; `None` (`0s`) = off.
    pub stream_ping_interval: Option<Duration>,
    /// `rendezvous_hosts`: further hosts (`name`, or `*.suffix`) an `accept` or `request` may
    /// name as its rendezvous, besides the relay's own domain.
    pub rendezvous_hosts: Vec<String>,
    /// `[limits]` with this hybrid connection's `max_streams` / `max_requests` applied.
    pub limits: Limits,
    /// `peer`: what sends the relayed streams; with azbridge each stream starts with a
    /// preamble naming a port.
    pub peer: Peer,
    /// `targets`: azbridge port name → TCP target (`target` takes the names not listed).
    pub targets: BTreeMap<String, TcpTarget>,
    /// `request_buffer`: a request body that streams in from a rendezvous is held up to this
    /// many bytes, so that it reaches `http_target` with a `Content-Length`; a longer one
    /// streams chunked. 0 = always stream.
    pub request_buffer: usize,
}

impl HybridConnection {
    /// Control channels to open: `listeners`, or one per worker capped at [`MAX_LISTENERS`].
    pub fn listener_count(&self, workers: NonZeroUsize) -> NonZeroUsize {
        self.listeners.unwrap_or_else(|| {
            NonZeroUsize::new(workers.get().min(MAX_LISTENERS)).unwrap_or(NonZeroUsize::MIN)
        })
    }
}

/// One `[[forward]]`: the sender end of a TCP tunnel (protocol §5.5). Every TCP connection accepted
/// on `listen` is carried as a sender WebSocket through the relay to hybrid connection
/// `entity_path`, whose listener forwards it to its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    /// `name`: unique among forwards, `[A-Za-z0-9_.-]+`, used as a metric label.
    pub name: String,
    /// `listen`: the local address TCP clients connect to (port 0 lets the system pick one).
    pub listen: SocketAddr,
    /// Where the connection string came from (re-read on reload).
    pub connection_string_source: ConnectionStringSource,
    /// The parsed connection string (a rule with the Send right; its key stays a `Secret`).
    pub connection_string: ConnectionString,
    /// The hybrid connection path: `entity_path` or the connection string's `EntityPath`.
    pub entity_path: String,
    /// Azure, or a self-hosted relay (`relay_url`).
    pub relay: Relay,
    /// `tls_roots` (or the older `relay_ca_file`), else `[tls] roots`: the trust store for the
    /// relay's certificate; `None` = the webpki roots.
    pub tls_roots: Option<TrustRoots>,
    /// `proxy` (with its password keys) or the environment's proxy, for relay connections.
    pub proxy: ProxySetting,
    /// `token_ttl`: lifetime of the connect token minted for each forwarded connection.
    pub token_ttl: Duration,
    /// `stream_ping_interval`: a WebSocket ping on each forwarded stream after this much
    /// silence from the relay; `None` (`0s`) = off.
    pub stream_ping_interval: Option<Duration>,
    /// `peer`: what listens on the hybrid connection.
    pub peer: Peer,
    /// `port_name`: the port an azbridge listener routes by (`listen`'s port by default);
    /// set exactly when `peer` is azbridge.
    pub port_name: Option<String>,
}

/// `peer`: the program on the other end of relayed streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Peer {
    /// Plain bytes from the first byte on (hycod, the SDKs, hyco-ws), the default.
    #[default]
    Plain,
    /// Azure Relay Bridge: every stream starts with its port-name preamble (protocol §5.5).
    Azbridge,
}

impl Peer {
    /// The spelling used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Azbridge => "azbridge",
        }
    }
}

/// Where a hybrid connection's or forward's connection string came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionStringSource {
    /// `connection_string`, inline in the file.
    Inline,
    /// `connection_string_file`, resolved against the configuration file's directory.
    File(PathBuf),
    /// `connection_string_env`: the variable's name.
    Env(String),
}

/// `target = "tcp://host:port"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpTarget {
    /// Host name or IP address (IPv6 in brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl TcpTarget {
    /// `host:port`, as `std::net::ToSocketAddrs` takes it.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

impl fmt::Display for TcpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tcp://{}:{}", self.host, self.port)
    }
}

/// `http_target = "http(s)://host[:port][/base]"`: no credentials, query or fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    url: Url,
    /// The `Host` header every request to this target carries, made once.
    host_header: String,
}

impl HttpTarget {
    /// Wraps a URL already checked by the conversion (http or https, with a host).
    pub(super) fn new(url: Url) -> Self {
        let host = url.host_str().unwrap_or_default();
        let host_header = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        Self { url, host_header }
    }

    /// The `Host` header for the target: its host and, when the URL names one, its port
    /// (RFC 9110 §7.2).
    pub fn host_header(&self) -> &str {
        &self.host_header
    }

    /// The whole URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Whether the target speaks HTTPS.
    pub fn is_tls(&self) -> bool {
        self.url.scheme() == "https"
    }

    /// The host (IPv6 in brackets).
    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }

    /// The port, 80 or 443 when not given.
    pub fn port(&self) -> u16 {
        self.url
            .port_or_known_default()
            .unwrap_or(if self.is_tls() { 443 } else { 80 })
    }

    /// The path prefix put in front of every relayed request path, without a trailing `/`
    /// (empty for none).
    pub fn base_path(&self) -> &str {
        self.url.path().trim_end_matches('/')
    }
}

impl fmt::Display for HttpTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())
    }
}

/// Which relay the listeners connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relay {
    /// Azure Relay: `wss://{namespace host}:443`, trusted via the webpki roots.
    Azure,
    /// `relay_url`: a self-hosted relay (`ws://` or `wss://`, no path).
    SelfHosted {
        /// The relay's base URL.
        url: Url,
    },
}

/// How the connections to the relay are made: the `proxy` key, else the environment's proxy
/// variables (docs/operations.md, "Corporate networks").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxySetting {
    /// Directly: no `proxy` key and no proxy variable for the relay's scheme.
    Direct,
    /// Directly, because `proxy = "none"`.
    Off,
    /// Through the proxy of the `proxy` key, for every relay host.
    Configured {
        address: ProxyAddress,
        /// `proxy_password_file` or `proxy_password_env`, when `proxy` names a user.
        password: Option<ProxyPassword>,
    },
    /// Through the proxy the environment variable `variable` names, except for the hosts
    /// `NO_PROXY` lists.
    Environment {
        variable: &'static str,
        address: ProxyAddress,
        /// The variable's own `user:password@`.
        password: Option<Secret>,
        no_proxy: NoProxy,
    },
}

impl ProxySetting {
    /// The route a dialer takes, `None` for direct connections.
    pub fn route(&self) -> Option<ProxyRoute> {
        match self {
            Self::Direct | Self::Off => None,
            Self::Configured { address, password } => Some(ProxyRoute::new(
                address.clone(),
                password.as_ref().map(|p| &p.value),
                NoProxy::default(),
            )),
            Self::Environment {
                address,
                password,
                no_proxy,
                ..
            } => Some(ProxyRoute::new(
                address.clone(),
                password.as_ref(),
                no_proxy.clone(),
            )),
        }
    }
}

impl fmt::Display for ProxySetting {
    /// Which proxy is used and why, for the log; never a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Direct => f.write_str("none (no proxy key, no proxy variable set)"),
            Self::Off => f.write_str("none (proxy = \"none\")"),
            Self::Configured { address, .. } => write!(f, "{address} (proxy key)"),
            Self::Environment {
                variable, address, ..
            } => write!(f, "{address} (environment {variable}, NO_PROXY honoured)"),
        }
    }
}

/// A proxy password and where it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyPassword {
    pub source: PasswordSource,
    pub value: Secret,
}

/// `proxy_password_file` or `proxy_password_env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    File(PathBuf),
    Env(String),
}
