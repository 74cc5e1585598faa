//! `hycod relay` options: command-line flags and an optional TOML file (`--config`, read by
//! [`super::config_file`]) merged and converted once into a typed [`RelayConfig`].
//!
//! [`RelayArgs`] is both the flag set and the file's top-level table: every flag `--foo-bar`
//! is the key `foo_bar` (`--alias` is `aliases`), so a new option is one field here and one
//! line in [`RelayArgs::over`]. A flag given overrides the file's key; the repeatable
//! `--hybrid-connection`, `--rule` and `--entity-rule` add to the file's `[[hybrid_connection]]`
//! and `[[rule]]` sections. Keys reach the relay from `key_file` or `key_env` in the file, or
//! (for tests) in `--rule`/`--entity-rule`, where every local user can read them: such rules
//! are marked [`KeySource::CommandLine`] and `hycod relay` logs a warning for each. The options
//! and every default are documented in docs/relay.md.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::{Deserialize, Deserializer};

use super::config_file::{self, HybridConnectionSection, RuleSection};
use super::self_signed::{name_problem, SelfSigned};
use crate::auth::verify::{Right, Rights, Rule};
use crate::config::duration::parse as parse_duration;
use crate::config::{ConfigError, EnvLookup, LogFormat, LogLevel};
use crate::relay::core::drain::DEFAULT_SHUTDOWN_GRACE;
use crate::relay::registry::DEFAULT_MAX_LISTENERS;
use crate::runtime::workers::worker_count;
use crate::secret::Secret;

/// The body size up to which a relayed HTTP request or response travels on the control
/// channel: Azure's "64 kB" (protocol §6.1, §9), read as KiB like both SDKs do.
pub const CONTROL_CHANNEL_BODY_LIMIT: usize = 64 * 1024;

/// The most `request`/`response` JSON on the control channel: Azure limits HTTP header metadata
/// there to "32 kB" (protocol §6.1, §9), read as KiB.
pub const CONTROL_CHANNEL_JSON_LIMIT: usize = 32 * 1024;

/// The most bytes queued for one listener's control channel (about sixteen requests with
/// full-size bodies): work beyond it waits for room (docs/relay.md "Limits").
pub const CONTROL_QUEUE_LIMIT: usize = 1 << 20;

/// `--idle-timeout`'s default: the idle cut of Azure's load balancers (protocol §9), which the
/// .NET SDK's 3.5-minute keep-alive stays under.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(240);

/// The namespace host name tokens must name when none is configured.
pub const DEFAULT_NAMESPACE: &str = "localhost";
/// `http_deadline` when none is configured.
pub const DEFAULT_HTTP_DEADLINE: Duration = Duration::from_secs(60);
/// `accept_timeout` when none is configured.
pub const DEFAULT_ACCEPT_TIMEOUT: Duration = Duration::from_secs(30);
/// `write_stall_timeout` when none is configured.
pub const DEFAULT_WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// Flags of `hycod relay`, and the top-level keys of its `--config` file.
#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayArgs {
    /// A configuration file (TOML) holding these options; flags given as well override it.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address for listeners, senders and HTTP requests (port 0 picks a free port).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// A hybrid connection to serve (repeatable).
    #[arg(long = "hybrid-connection", value_name = "PATH")]
    #[serde(skip)]
    pub hybrid_connections: Vec<String>,
    /// A namespace-level SAS rule NAME=KEY[:RIGHTS] (repeatable; RIGHTS: listen,send,manage;
    /// default manage). Split at the first `=`. For tests: the key is visible to every local
    /// user; use --config with key_file or key_env.
    #[arg(long = "rule", value_name = "NAME=KEY[:RIGHTS]")]
    #[serde(skip)]
    pub rules: Vec<String>,
    /// A SAS rule on one hybrid connection and the paths below it: PATH:NAME=KEY[:RIGHTS]
    /// (repeatable; for tests, like --rule).
    #[arg(long = "entity-rule", value_name = "PATH:NAME=KEY[:RIGHTS]")]
    #[serde(skip)]
    pub entity_rules: Vec<String>,
    /// The namespace host name tokens must name (localhost and 127.0.0.1 are always accepted)
    /// [default: localhost]. Given, it also routes by `Host`: requests and upgrades whose
    /// `Host` is neither it nor an --alias get 404.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Another host name tokens may name (repeatable), e.g. the relay's DNS name.
    #[arg(long = "alias", value_name = "HOST")]
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The host name in the rendezvous addresses the relay hands out (e.g. the name its TLS
    /// certificate is for) [default: the address it listens on].
    #[arg(long, value_name = "NAME")]
    pub rendezvous_host: Option<String>,
    /// PEM certificate chain: serve wss:// and https:// (needs --tls-key).
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Serve wss:// and https:// as NAME with a certificate signed by a CA the relay makes and
    /// keeps in --state-dir; prints the CA file to trust (instead of --tls-cert/--tls-key).
    #[arg(long, value_name = "NAME")]
    pub self_signed: Option<String>,
    /// Where --self-signed keeps its CA and certificate [default: $STATE_DIRECTORY, else
    /// $XDG_STATE_HOME/hycod-relay, else ~/.local/state/hycod-relay].
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Serve the read-only admin view (GET /$status) on this address.
    #[arg(long)]
    pub admin: Option<SocketAddr>,
    /// Worker threads (0 = one per core) [default: 0].
    #[arg(long)]
    pub workers: Option<usize>,
    /// How long a listener has to answer a relayed HTTP request before the sender gets 504
    /// [default: 60s].
    #[arg(long, value_parser = parse_duration)]
    #[serde(default, deserialize_with = "duration")]
    pub http_deadline: Option<Duration>,
    /// How long a sender waits for a listener to accept before it gets 504 (protocol §11 item 2)
    /// [default: 30s].
    #[arg(long, value_parser = parse_duration)]
    #[serde(default, deserialize_with = "duration")]
    pub accept_timeout: Option<Duration>,
    /// End a relayed stream when a write to the sender or the listener makes no progress for
    /// this long (that side stopped reading); 0 = never [default: 60s].
    #[arg(long, value_parser = parse_duration)]
    #[serde(default, deserialize_with = "duration")]
    pub write_stall_timeout: Option<Duration>,
    /// How long a client has for its TLS handshake and a complete request head before it gets
    /// 408 and the connection closes [default: 30s].
    #[arg(long, value_parser = parse_duration)]
    #[serde(default, deserialize_with = "duration")]
    pub head_timeout: Option<Duration>,
    /// How long a request body may pause before the sender gets 408 and the request is
    /// aborted towards the listener [default: 60s].
    #[arg(long, value_parser = parse_duration)]
    #[serde(default, deserialize_with = "duration")]
    pub body_idle_timeout: Option<Duration>,
    /// How long a sender's connection may sit idle between two requests before it is closed
    /// [default: 75s].
    #[arg(long, value_parser = parse_duration)]
    #[serde(default, deserialize_with = "duration")]
    pub keepalive_timeout: Option<Duration>,
    /// Close control channels, sender streams and rendezvous that carry no frame for this
    /// long, as Azure's load balancers do after about 4 minutes; 0 = never [default: 4m].
    #[arg(long, value_parser = parse_duration)]
    #[serde(default, deserialize_with = "duration")]
    pub idle_timeout: Option<Duration>,
    /// After SIGTERM or SIGINT, how long streams and requests in flight may take before what
    /// is left is closed (1001) and the relay exits [default: 30s].
    #[arg(long, value_parser = parse_duration)]
    #[serde(default, deserialize_with = "duration")]
    pub shutdown_grace: Option<Duration>,
    /// Log lines as text or JSON [default: text].
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// The least severe level logged; RUST_LOG overrides it [default: info].
    #[arg(long, value_enum)]
    pub log_level: Option<LogLevel>,
    /// `[[hybrid_connection]]` sections of the file.
    #[arg(skip)]
    #[serde(default, rename = "hybrid_connection")]
    pub hybrid_connection_sections: Vec<HybridConnectionSection>,
    /// `[[rule]]` sections of the file.
    #[arg(skip)]
    #[serde(default, rename = "rule")]
    pub rule_sections: Vec<RuleSection>,
}

/// A duration key of the file, written like the flag's value ("30s").
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_duration(&text).map(Some).map_err(|error| {
        serde::de::Error::custom(format!("expected a duration such as \"30s\": {error}"))
    })
}

/// TLS material for the relay's listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Where the relay's TLS certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayTls {
    /// `--tls-cert` and `--tls-key`.
    Files(TlsFiles),
    /// `--self-signed NAME`: made (or reused) when the relay starts.
    SelfSigned(SelfSigned),
}

/// Where a rule's key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// `--rule` or `--entity-rule`: readable by every local user in `/proc/PID/cmdline`.
    CommandLine,
    /// `key_file` (the resolved path).
    File(PathBuf),
    /// `key_env` (the variable's name).
    Env(String),
    /// Made by the program that starts the relay in-process (`hycod demo`).
    InProcess,
}

/// One shared access rule.
#[derive(Debug, Clone)]
pub struct RuleSpec {
    pub name: String,
    pub key: Secret,
    pub rights: Rights,
    pub source: KeySource,
}

impl RuleSpec {
    /// The verifier's form of this rule.
    pub fn to_rule(&self) -> Rule {
        Rule::new(self.name.clone(), &self.key, self.rights)
    }
}

/// A rule defined on one hybrid connection (and the paths below it).
#[derive(Debug, Clone)]
pub struct EntityRuleSpec {
    pub entity_path: String,
    pub rule: RuleSpec,
}

/// The relay's validated configuration.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub listen: SocketAddr,
    pub hybrid_connections: Vec<String>,
    /// The hybrid connections with `requires_client_authorization = false`: their senders
    /// need no token.
    pub anonymous_senders: Vec<String>,
    pub rules: Vec<RuleSpec>,
    pub entity_rules: Vec<EntityRuleSpec>,
    pub namespace: String,
    pub aliases: Vec<String>,
    /// `Some` when `--namespace` is given: then a request's `Host` must name the namespace or
    /// an alias (a rendezvous's, the rendezvous host), else 404 ([`super::host_check`]).
    pub host_check: Option<Vec<String>>,
    /// `--rendezvous-host`, lower case: the host of the rendezvous addresses handed out;
    /// `None`: the IP address the relay listens on.
    pub rendezvous_host: Option<String>,
    pub tls: Option<RelayTls>,
    pub admin: Option<SocketAddr>,
    pub workers: NonZeroUsize,
    pub http_deadline: Duration,
    pub accept_timeout: Duration,
    /// `None`: `--write-stall-timeout 0`, never.
    pub write_stall_timeout: Option<Duration>,
    pub max_listeners: usize,
    pub control_channel_body_limit: usize,
    /// The most `response` JSON a listener may send on the control channel.
    pub control_channel_json_limit: usize,
    /// The most bytes queued for one control channel; work beyond it waits for room.
    pub control_queue_limit: usize,
    pub timeouts: ConnectionTimeouts,
    /// `None`: `--idle-timeout 0`, never.
    pub idle_timeout: Option<Duration>,
    /// How long a stop waits for the work in flight.
    pub shutdown_grace: Duration,
    pub log_format: LogFormat,
    pub log_level: LogLevel,
}

/// How long a client connection may wait for its next step (docs/relay.md "Timeouts").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionTimeouts {
    /// TLS handshake and request head.
    pub head: Duration,
    /// A pause inside a request body.
    pub body_idle: Duration,
    /// Between two requests on one connection.
    pub keepalive: Duration,
}

impl Default for ConnectionTimeouts {
    fn default() -> Self {
        Self {
            head: Duration::from_secs(30),
            body_idle: Duration::from_secs(60),
            keepalive: Duration::from_secs(75),
        }
    }
}

impl RelayConfig {
    /// The names of the rules whose key was given on the command line.
    pub fn command_line_rules(&self) -> impl Iterator<Item = &str> {
        self.rules
            .iter()
            .chain(self.entity_rules.iter().map(|e| &e.rule))
            .filter(|r| r.source == KeySource::CommandLine)
            .map(|r| r.name.as_str())
    }
}

/// An option that cannot be used: the flag (`--rule`) or the file's key path (`rule[1].key_file`)
/// and the reason, never a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfigError {
    pub key: String,
    pub reason: String,
}

impl fmt::Display for RelayConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

impl std::error::Error for RelayConfigError {}

impl From<ConfigError> for RelayConfigError {
    fn from(error: ConfigError) -> Self {
        Self {
            key: error.path,
            reason: error.reason.to_string(),
        }
    }
}

/// An error at `key`.
pub(super) fn error(key: impl Into<String>, reason: impl Into<String>) -> RelayConfigError {
    RelayConfigError {
        key: key.into(),
        reason: reason.into(),
    }
}

/// Parses `NAME=KEY[:RIGHTS]`. Base64 keys contain no `:`, so the last `:` starts the rights.
pub fn parse_rule(text: &str) -> Result<RuleSpec, RelayConfigError> {
    let Some((name, rest)) = text.split_once('=') else {
        return Err(error("--rule", "expected NAME=KEY[:RIGHTS], found no '='"));
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(error("--rule", "the rule name before '=' is empty"));
    }
    let (key, rights) = match rest.rsplit_once(':') {
        Some((key, list)) => {
            let rights = parse_rights(list.split(','))
                .map_err(|e| error("--rule", format!("rule {name:?}: {e}")))?;
            (key, rights)
        }
        None => (rest, Rights::of(&[Right::Manage])),
    };
    if key.is_empty() {
        return Err(error("--rule", format!("rule {name:?} has an empty key")));
    }
    Ok(RuleSpec {
        name: name.to_owned(),
        key: Secret::new(key),
        rights,
        source: KeySource::CommandLine,
    })
}

/// The rights a list of words grants (`listen`, `send`, `manage`, any case).
pub(super) fn parse_rights<'a>(words: impl Iterator<Item = &'a str>) -> Result<Rights, String> {
    let mut rights = Rights::NONE;
    for word in words {
        let right = word.trim().parse::<Right>().map_err(|e| e.to_string())?;
        rights = rights.with(right);
    }
    Ok(rights)
}

/// Parses `PATH:NAME=KEY[:RIGHTS]`: the path ends at the first `:`.
pub fn parse_entity_rule(text: &str) -> Result<EntityRuleSpec, RelayConfigError> {
    let Some((path, rule)) = text.split_once(':') else {
        return Err(error(
            "--entity-rule",
            "expected PATH:NAME=KEY[:RIGHTS], found no ':'",
        ));
    };
    if let Some(problem) = path_problem(path) {
        return Err(error("--entity-rule", problem));
    }
    let rule = parse_rule(rule).map_err(|e| error("--entity-rule", e.reason))?;
    Ok(EntityRuleSpec {
        entity_path: path.to_owned(),
        rule,
    })
}

/// Why `path` cannot name a hybrid connection, if it cannot.
pub(super) fn path_problem(path: &str) -> Option<String> {
    (path.is_empty() || path.starts_with('/') || path.ends_with('/'))
        .then(|| format!("{path:?}: a path must be non-empty and not begin or end with '/'"))
}

/// Whether `name` can be the host of a URL as it is: DNS labels or an IPv4 address.
fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `--state-dir`'s default: systemd's `$STATE_DIRECTORY` (`StateDirectory=` in the unit), else
/// the XDG state directory of the user.
fn default_state_dir(env: EnvLookup<'_>) -> Result<PathBuf, RelayConfigError> {
    let set = |name: &str| env(name).ok().filter(|value| !value.is_empty());
    if let Some(dir) = set("STATE_DIRECTORY") {
        // systemd separates several directories with ':'; the first is this unit's.
        let first = dir.split(':').next().unwrap_or(&dir);
        return Ok(PathBuf::from(first));
    }
    if let Some(dir) = set("XDG_STATE_HOME") {
        return Ok(Path::new(&dir).join("hycod-relay"));
    }
    if let Some(home) = set("HOME") {
        return Ok(Path::new(&home).join(".local/state/hycod-relay"));
    }
    Err(error(
        "state_dir",
        "required with self_signed: none of STATE_DIRECTORY, XDG_STATE_HOME, HOME is set",
    ))
}

/// A timeout that must be set: zero would hold connections forever.
fn non_zero(key: &str, value: Duration) -> Result<Duration, RelayConfigError> {
    if value.is_zero() {
        return Err(error(key, "must be longer than 0s"));
    }
    Ok(value)
}

impl RelayArgs {
    /// Validates the flags, and the `--config` file they name, into a [`RelayConfig`].
    pub fn into_config(self) -> Result<RelayConfig, RelayConfigError> {
        let env: EnvLookup<'_> = &|name| std::env::var(name);
        match self.config.clone() {
            None => self.validate(Path::new("."), env),
            Some(path) => {
                let file = config_file::load(&path)?;
                let base_dir = path.parent().unwrap_or(Path::new("."));
                self.over(file).validate(base_dir, env)
            }
        }
    }

    /// These flags over `file`'s keys: a flag given wins, repeatable flags add to the file's
    /// entries.
    fn over(self, file: RelayArgs) -> RelayArgs {
        RelayArgs {
            config: self.config,
            listen: self.listen.or(file.listen),
            hybrid_connections: self.hybrid_connections,
            rules: self.rules,
            entity_rules: self.entity_rules,
            namespace: self.namespace.or(file.namespace),
            aliases: [file.aliases, self.aliases].concat(),
            rendezvous_host: self.rendezvous_host.or(file.rendezvous_host),
            tls_cert: self.tls_cert.or(file.tls_cert),
            tls_key: self.tls_key.or(file.tls_key),
            self_signed: self.self_signed.or(file.self_signed),
            state_dir: self.state_dir.or(file.state_dir),
            admin: self.admin.or(file.admin),
            workers: self.workers.or(file.workers),
            http_deadline: self.http_deadline.or(file.http_deadline),
            accept_timeout: self.accept_timeout.or(file.accept_timeout),
            write_stall_timeout: self.write_stall_timeout.or(file.write_stall_timeout),
            head_timeout: self.head_timeout.or(file.head_timeout),
            body_idle_timeout: self.body_idle_timeout.or(file.body_idle_timeout),
            keepalive_timeout: self.keepalive_timeout.or(file.keepalive_timeout),
            idle_timeout: self.idle_timeout.or(file.idle_timeout),
            shutdown_grace: self.shutdown_grace.or(file.shutdown_grace),
            log_format: self.log_format.or(file.log_format),
            log_level: self.log_level.or(file.log_level),
            hybrid_connection_sections: file.hybrid_connection_sections,
            rule_sections: file.rule_sections,
        }
    }

    /// Merged options → typed configuration; relative key files are resolved against `base_dir`.
    fn validate(
        self,
        base_dir: &Path,
        env: EnvLookup<'_>,
    ) -> Result<RelayConfig, RelayConfigError> {
        let Some(listen) = self.listen else {
            return Err(error(
                "listen",
                "required: give --listen, or listen in the --config file",
            ));
        };
        let hybrid_connections = self.all_hybrid_connections()?;
        let anonymous_senders = self
            .hybrid_connection_sections
            .iter()
            .filter(|section| section.requires_client_authorization == Some(false))
            .filter_map(|section| section.name.clone())
            .collect();
        let mut rules = Vec::new();
        let mut entity_rules = Vec::new();
        for (index, section) in self.rule_sections.iter().enumerate() {
            let (entity, rule) = config_file::rule(section, index, base_dir, env)?;
            match entity {
                None => rules.push(rule),
                Some(entity_path) => {
                    if !hybrid_connections
                        .iter()
                        .any(|hc| hc.eq_ignore_ascii_case(&entity_path))
                    {
                        return Err(error(
                            format!("rule[{index}].entity"),
                            format!("{entity_path:?} is not a configured hybrid connection"),
                        ));
                    }
                    entity_rules.push(EntityRuleSpec { entity_path, rule });
                }
            }
        }
        for text in &self.rules {
            rules.push(parse_rule(text)?);
        }
        for text in &self.entity_rules {
            entity_rules.push(parse_entity_rule(text)?);
        }
        if rules.is_empty() && entity_rules.is_empty() {
            return Err(error(
                "rule",
                "at least one shared access rule is required ([[rule]] or --rule)",
            ));
        }
        let tls = match (self.tls_cert, self.tls_key, self.self_signed) {
            (Some(cert), Some(key), None) => Some(RelayTls::Files(TlsFiles { cert, key })),
            (None, None, None) => None,
            (None, None, Some(name)) => {
                if let Some(problem) = name_problem(&name) {
                    return Err(error("self_signed", problem));
                }
                let state_dir = match self.state_dir {
                    Some(dir) => dir,
                    None => default_state_dir(env)?,
                };
                Some(RelayTls::SelfSigned(SelfSigned { name, state_dir }))
            }
            (_, _, Some(_)) => {
                return Err(error(
                    "self_signed",
                    "give either self_signed or tls_cert and tls_key, not both",
                ))
            }
            (Some(_), None, None) => return Err(error("tls_key", "required with tls_cert")),
            (None, Some(_), None) => return Err(error("tls_cert", "required with tls_key")),
        };
        let write_stall_timeout = self
            .write_stall_timeout
            .unwrap_or(DEFAULT_WRITE_STALL_TIMEOUT);
        let defaults = ConnectionTimeouts::default();
        let timeouts = ConnectionTimeouts {
            head: non_zero("head_timeout", self.head_timeout.unwrap_or(defaults.head))?,
            body_idle: non_zero(
                "body_idle_timeout",
                self.body_idle_timeout.unwrap_or(defaults.body_idle),
            )?,
            keepalive: non_zero(
                "keepalive_timeout",
                self.keepalive_timeout.unwrap_or(defaults.keepalive),
            )?,
        };
        let idle_timeout = self.idle_timeout.unwrap_or(DEFAULT_IDLE_TIMEOUT);
        // `--self-signed NAME`: rendezvous addresses, tokens and `Host` may all name NAME.
        let self_signed_name = match &tls {
            Some(RelayTls::SelfSigned(setup)) => Some(setup.name.to_ascii_lowercase()),
            _ => None,
        };
        let mut aliases = self.aliases;
        if let Some(name) = &self_signed_name {
            if !aliases.iter().any(|alias| alias.eq_ignore_ascii_case(name)) {
                aliases.push(name.clone());
            }
        }
        let rendezvous_host = match self.rendezvous_host {
            Some(name) if is_host_name(&name) => Some(name.to_ascii_lowercase()),
            Some(name) => {
                return Err(error(
                    "rendezvous_host",
                    format!("{name:?} is not a host name (letters, digits, '-' and '.', no port)"),
                ))
            }
            None => self_signed_name,
        };
        let host_check = self.namespace.as_ref().map(|namespace| {
            std::iter::once(namespace)
                .chain(&aliases)
                .map(|name| name.to_ascii_lowercase())
                .collect()
        });
        Ok(RelayConfig {
            listen,
            hybrid_connections,
            anonymous_senders,
            rules,
            entity_rules,
            namespace: self
                .namespace
                .as_deref()
                .unwrap_or(DEFAULT_NAMESPACE)
                .to_ascii_lowercase(),
            aliases,
            host_check,
            rendezvous_host,
            tls,
            admin: self.admin,
            workers: worker_count(self.workers.unwrap_or(0)),
            http_deadline: self.http_deadline.unwrap_or(DEFAULT_HTTP_DEADLINE),
            accept_timeout: self.accept_timeout.unwrap_or(DEFAULT_ACCEPT_TIMEOUT),
            write_stall_timeout: Some(write_stall_timeout).filter(|t| !t.is_zero()),
            max_listeners: DEFAULT_MAX_LISTENERS,
            control_channel_body_limit: CONTROL_CHANNEL_BODY_LIMIT,
            control_channel_json_limit: CONTROL_CHANNEL_JSON_LIMIT,
            control_queue_limit: CONTROL_QUEUE_LIMIT,
            timeouts,
            idle_timeout: Some(idle_timeout).filter(|t| !t.is_zero()),
            shutdown_grace: self.shutdown_grace.unwrap_or(DEFAULT_SHUTDOWN_GRACE),
            log_format: self.log_format.unwrap_or_default(),
            log_level: self.log_level.unwrap_or_default(),
        })
    }

    /// The file's `[[hybrid_connection]]` names, then `--hybrid-connection`s: each a usable
    /// path, none twice.
    fn all_hybrid_connections(&self) -> Result<Vec<String>, RelayConfigError> {
        let from_file =
            self.hybrid_connection_sections
                .iter()
                .enumerate()
                .map(|(index, section)| {
                    (
                        format!("hybrid_connection[{index}].name"),
                        section.name.clone(),
                    )
                });
        let from_flags = self
            .hybrid_connections
            .iter()
            .map(|path| ("--hybrid-connection".to_owned(), Some(path.clone())));
        let mut paths: Vec<String> = Vec::new();
        for (key, path) in from_file.chain(from_flags) {
            let Some(path) = path else {
                return Err(error(key, "this key is required"));
            };
            if let Some(problem) = path_problem(&path) {
                return Err(error(key, problem));
            }
            if paths.iter().any(|p| p.eq_ignore_ascii_case(&path)) {
                return Err(error(key, format!("{path:?} is configured twice")));
            }
            paths.push(path);
        }
        if paths.is_empty() {
            return Err(error(
                "hybrid_connection",
                "at least one hybrid connection is required ([[hybrid_connection]] or --hybrid-connection)",
            ));
        }
        Ok(paths)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_splits_at_the_first_equals_and_keeps_base64_padding() {
        let r = parse_rule("RootManageSharedAccessKey=abc+/def==").expect("valid");
        assert_eq!(r.name, "RootManageSharedAccessKey");
        assert_eq!(r.key.expose(), "abc+/def==");
        assert!(r.rights.grants(Right::Listen) && r.rights.grants(Right::Send));
    }

    fn relay_config(flags: &[&str]) -> RelayConfig {
        relay_args(flags).into_config().expect("valid")
    }

    fn relay_args(flags: &[&str]) -> RelayArgs {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            args: RelayArgs,
        }
        let base = [
            "relay",
            "--listen",
            "127.0.0.1:0",
            "--hybrid-connection",
            "hc",
            "--rule",
            "root=k3y",
        ];
        let cli = <Cli as clap::Parser>::try_parse_from(base.iter().chain(flags)).expect("flags");
        cli.args
    }

    #[test]
    fn write_stall_timeout_defaults_to_a_minute_and_zero_turns_it_off() {
        assert_eq!(
            relay_config(&[]).write_stall_timeout,
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            relay_config(&["--write-stall-timeout", "2s"]).write_stall_timeout,
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            relay_config(&["--write-stall-timeout", "0s"]).write_stall_timeout,
            None
        );
    }

    #[test]
    fn connection_timeouts_default_to_nginx_like_values_and_zero_is_refused() {
        let config = relay_config(&[]);
        assert_eq!(config.timeouts, ConnectionTimeouts::default());
        assert_eq!(config.idle_timeout, Some(DEFAULT_IDLE_TIMEOUT));
        let short = relay_config(&[
            "--head-timeout",
            "1s",
            "--body-idle-timeout",
            "2s",
            "--keepalive-timeout",
            "3s",
            "--idle-timeout",
            "0s",
        ]);
        assert_eq!(
            short.timeouts,
            ConnectionTimeouts {
                head: Duration::from_secs(1),
                body_idle: Duration::from_secs(2),
                keepalive: Duration::from_secs(3),
            }
        );
        assert_eq!(short.idle_timeout, None);
        for flag in [
            "--head-timeout",
            "--body-idle-timeout",
            "--keepalive-timeout",
        ] {
            let e = relay_args(&[flag, "0s"]).into_config().expect_err("zero");
            let key = flag.trim_start_matches("--").replace('-', "_");
            assert_eq!(
                (e.key.as_str(), e.reason.as_str()),
                (key.as_str(), "must be longer than 0s")
            );
        }
    }

    #[test]
    fn host_names_are_checked_only_with_a_namespace_and_the_rendezvous_host_is_a_name() {
        let plain = relay_config(&[]);
        assert_eq!((plain.host_check, plain.rendezvous_host), (None, None));
        let named = relay_config(&[
            "--namespace",
            "Contoso.example",
            "--alias",
            "Relay.example",
            "--rendezvous-host",
            "G1.Example",
        ]);
        assert_eq!(
            named.host_check,
            Some(vec![
                "contoso.example".to_owned(),
                "relay.example".to_owned()
            ])
        );
        assert_eq!(named.rendezvous_host.as_deref(), Some("g1.example"));
        for bad in [
            "g1.example:443",
            "wss://g1.example",
            "",
            "a..b",
            "x-.example",
        ] {
            let e = relay_args(&["--rendezvous-host", bad])
                .into_config()
                .expect_err(bad);
            assert_eq!(e.key, "rendezvous_host", "{bad}");
            assert!(e.reason.contains("is not a host name"), "{e}");
        }
    }

    #[test]
    fn self_signed_keeps_its_files_in_the_state_dir_systemd_or_xdg_names() {
        let state_dir = |vars: &[(&str, &str)]| {
            let vars: Vec<(String, String)> = vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let env = move |name: &str| {
                vars.iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
                    .ok_or(std::env::VarError::NotPresent)
            };
            relay_args(&["--self-signed", "relay.test"])
                .validate(Path::new("."), &env)
                .map(|config| match config.tls {
                    Some(RelayTls::SelfSigned(setup)) => setup.state_dir,
                    other => panic!("{other:?}"),
                })
        };
        let all = [
            ("STATE_DIRECTORY", "/var/lib/hycod-relay:/var/lib/other"),
            ("XDG_STATE_HOME", "/home/u/.state"),
            ("HOME", "/home/u"),
        ];
        assert_eq!(state_dir(&all), Ok(PathBuf::from("/var/lib/hycod-relay")));
        assert_eq!(
            state_dir(&all[1..]),
            Ok(PathBuf::from("/home/u/.state/hycod-relay"))
        );
        assert_eq!(
            state_dir(&all[2..]),
            Ok(PathBuf::from("/home/u/.local/state/hycod-relay"))
        );
        let e = state_dir(&[]).expect_err("nowhere");
        assert_eq!(e.key, "state_dir");
        let flagged = relay_args(&["--self-signed", "relay.test", "--state-dir", "/srv/s"])
            .validate(Path::new("."), &|_| Err(std::env::VarError::NotPresent))
            .expect("valid");
        assert_eq!(
            flagged.tls,
            Some(RelayTls::SelfSigned(SelfSigned {
                name: "relay.test".to_owned(),
                state_dir: PathBuf::from("/srv/s"),
            }))
        );
        assert_eq!(flagged.rendezvous_host.as_deref(), Some("relay.test"));
        assert!(flagged.aliases.iter().any(|alias| alias == "relay.test"));
    }

    #[test]
    fn rule_rights_suffix_limits_the_rule() {
        let r = parse_rule("SendOnly=k3y==:send").expect("valid");
        assert_eq!(r.key.expose(), "k3y==");
        assert!(r.rights.grants(Right::Send));
        assert!(!r.rights.grants(Right::Listen));
        let both = parse_rule("Both=k:Listen, Send").expect("valid");
        assert!(both.rights.grants(Right::Listen) && both.rights.grants(Right::Send));
    }

    #[test]
    fn entity_rule_takes_the_path_before_the_first_colon() {
        let r = parse_entity_rule("sap/gw:Listener=a2V5:listen").expect("valid");
        assert_eq!(r.entity_path, "sap/gw");
        assert_eq!(
            (r.rule.name.as_str(), r.rule.key.expose()),
            ("Listener", "a2V5")
        );
        assert!(r.rule.rights.grants(Right::Listen) && !r.rule.rights.grants(Right::Send));
        let e = parse_entity_rule("Listener=a2V5").expect_err("no path");
        assert_eq!(e.key, "--entity-rule");
        assert!(parse_entity_rule("/x:n=k")
            .expect_err("slash")
            .reason
            .contains("begin or end"));
    }

    #[test]
    fn rule_errors_name_the_flag_and_never_the_key() {
        let e = parse_rule("no-equals-secretkey").expect_err("invalid");
        assert_eq!(e.key, "--rule");
        assert!(!e.to_string().contains("secretkey"));
        assert!(parse_rule("=key")
            .expect_err("empty name")
            .reason
            .contains("empty"));
        assert!(parse_rule("n=")
            .expect_err("empty key")
            .reason
            .contains("empty key"));
        let bad = parse_rule("n=secretkey:admin").expect_err("bad right");
        assert!(bad.reason.contains("unknown right"), "{bad}");
        assert!(!bad.to_string().contains("secretkey"));
    }
}
