//! `hycod relay` options: command-line flags converted once into a typed [`RelayConfig`].
//! The flags and every default are documented in docs/relay.md.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::auth::verify::{Right, Rights, Rule};
use crate::config::duration::parse as parse_duration;
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
/// full-size bodies): beyond it the listener is not reading and is closed.
pub const CONTROL_QUEUE_LIMIT: usize = 1 << 20;

/// `--idle-timeout`'s default: the idle cut of Azure's load balancers (protocol §9), which the
/// .NET SDK's 3.5-minute keep-alive stays under.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(240);

/// Flags of `hycod relay`.
#[derive(Debug, Clone, Args)]
pub struct RelayArgs {
    /// Address for listeners, senders and HTTP requests (port 0 picks a free port).
    #[arg(long)]
    pub listen: SocketAddr,
    /// A hybrid connection to serve (repeatable).
    #[arg(long = "hybrid-connection", value_name = "PATH")]
    pub hybrid_connections: Vec<String>,
    /// A namespace-level SAS rule NAME=KEY[:RIGHTS] (repeatable; RIGHTS: listen,send,manage;
    /// default manage). Split at the first `=`.
    #[arg(long = "rule", value_name = "NAME=KEY[:RIGHTS]")]
    pub rules: Vec<String>,
    /// A SAS rule on one hybrid connection and the paths below it: PATH:NAME=KEY[:RIGHTS]
    /// (repeatable).
    #[arg(long = "entity-rule", value_name = "PATH:NAME=KEY[:RIGHTS]")]
    pub entity_rules: Vec<String>,
    /// The namespace host name tokens must name (localhost and 127.0.0.1 are always accepted).
    #[arg(long, default_value = "localhost")]
    pub namespace: String,
    /// Another host name tokens may name (repeatable), e.g. the relay's DNS name.
    #[arg(long = "alias", value_name = "HOST")]
    pub aliases: Vec<String>,
    /// PEM certificate chain: serve wss:// and https:// (needs --tls-key).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve the read-only admin view (GET /$status) on this address.
    #[arg(long)]
    pub admin: Option<SocketAddr>,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// How long a listener has to answer a relayed HTTP request before the sender gets 504.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub http_deadline: Duration,
    /// How long a sender waits for a listener to accept before it gets 504 (protocol §11 item 2).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub accept_timeout: Duration,
    /// End a relayed stream when a write to the sender or the listener makes no progress for
    /// this long (that side stopped reading); 0 = never.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub write_stall_timeout: Duration,
    /// How long a client has for its TLS handshake and a complete request head before it gets
    /// 408 and the connection closes.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub head_timeout: Duration,
    /// How long a request body may pause before the sender gets 408 and the request is
    /// aborted towards the listener.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub body_idle_timeout: Duration,
    /// How long a sender's connection may sit idle between two requests before it is closed.
    #[arg(long, default_value = "75s", value_parser = parse_duration)]
    pub keepalive_timeout: Duration,
    /// Close control channels, sender streams and rendezvous that carry no frame for this
    /// long, as Azure's load balancers do after about 4 minutes; 0 = never.
    #[arg(long, default_value = "4m", value_parser = parse_duration)]
    pub idle_timeout: Duration,
}

/// TLS material for the relay's listening socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// One namespace-level shared access rule.
#[derive(Debug, Clone)]
pub struct RuleSpec {
    pub name: String,
    pub key: Secret,
    pub rights: Rights,
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
    pub rules: Vec<RuleSpec>,
    pub entity_rules: Vec<EntityRuleSpec>,
    pub namespace: String,
    pub aliases: Vec<String>,
    pub tls: Option<TlsFiles>,
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
    /// The most bytes queued for one control channel before the listener counts as not reading
    /// and is closed.
    pub control_queue_limit: usize,
    pub timeouts: ConnectionTimeouts,
    /// `None`: `--idle-timeout 0`, never.
    pub idle_timeout: Option<Duration>,
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

/// A flag that cannot be used; names the flag and the reason, never a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfigError {
    pub flag: &'static str,
    pub reason: String,
}

impl fmt::Display for RelayConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.flag, self.reason)
    }
}

impl std::error::Error for RelayConfigError {}

fn error(flag: &'static str, reason: impl Into<String>) -> RelayConfigError {
    RelayConfigError {
        flag,
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
            let mut rights = Rights::NONE;
            for part in list.split(',') {
                let right: Right = part
                    .trim()
                    .parse()
                    .map_err(|e| error("--rule", format!("rule {name:?}: {e}")))?;
                rights = rights.with(right);
            }
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
    })
}

/// Parses `PATH:NAME=KEY[:RIGHTS]`: the path ends at the first `:`.
pub fn parse_entity_rule(text: &str) -> Result<EntityRuleSpec, RelayConfigError> {
    let Some((path, rule)) = text.split_once(':') else {
        return Err(error(
            "--entity-rule",
            "expected PATH:NAME=KEY[:RIGHTS], found no ':'",
        ));
    };
    if path.is_empty() || path.starts_with('/') || path.ends_with('/') {
        return Err(error(
            "--entity-rule",
            format!("{path:?}: a path must be non-empty and not begin or end with '/'"),
        ));
    }
    let rule = parse_rule(rule).map_err(|e| error("--entity-rule", e.reason))?;
    Ok(EntityRuleSpec {
        entity_path: path.to_owned(),
        rule,
    })
}

/// A timeout that must be set: zero would hold connections forever.
fn non_zero(flag: &'static str, value: Duration) -> Result<Duration, RelayConfigError> {
    if value.is_zero() {
        return Err(error(flag, "must be longer than 0s"));
    }
    Ok(value)
}

impl RelayArgs {
    /// Validates the flags into a [`RelayConfig`].
    pub fn into_config(self) -> Result<RelayConfig, RelayConfigError> {
        if self.hybrid_connections.is_empty() {
            return Err(error(
                "--hybrid-connection",
                "at least one hybrid connection is required",
            ));
        }
        for path in &self.hybrid_connections {
            if path.is_empty() || path.starts_with('/') || path.ends_with('/') {
                return Err(error(
                    "--hybrid-connection",
                    format!("{path:?}: a path must be non-empty and not begin or end with '/'"),
                ));
            }
        }
        if self.rules.is_empty() && self.entity_rules.is_empty() {
            return Err(error(
                "--rule",
                "at least one shared access rule is required",
            ));
        }
        let entity_rules = self
            .entity_rules
            .iter()
            .map(|r| parse_entity_rule(r))
            .collect::<Result<Vec<_>, _>>()?;
        let rules = self
            .rules
            .iter()
            .map(|r| parse_rule(r))
            .collect::<Result<Vec<_>, _>>()?;
        let timeouts = ConnectionTimeouts {
            head: non_zero("--head-timeout", self.head_timeout)?,
            body_idle: non_zero("--body-idle-timeout", self.body_idle_timeout)?,
            keepalive: non_zero("--keepalive-timeout", self.keepalive_timeout)?,
        };
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            _ => None,
        };
        Ok(RelayConfig {
            listen: self.listen,
            hybrid_connections: self.hybrid_connections,
            rules,
            entity_rules,
            namespace: self.namespace.to_ascii_lowercase(),
            aliases: self.aliases,
            tls,
            admin: self.admin,
            workers: worker_count(self.workers),
            http_deadline: self.http_deadline,
            accept_timeout: self.accept_timeout,
            write_stall_timeout: Some(self.write_stall_timeout).filter(|t| !t.is_zero()),
            max_listeners: DEFAULT_MAX_LISTENERS,
            control_channel_body_limit: CONTROL_CHANNEL_BODY_LIMIT,
            control_channel_json_limit: CONTROL_CHANNEL_JSON_LIMIT,
            control_queue_limit: CONTROL_QUEUE_LIMIT,
            timeouts,
            idle_timeout: Some(self.idle_timeout).filter(|t| !t.is_zero()),
        })
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
            assert_eq!(
                (e.flag, e.reason.as_str()),
                (flag, "must be longer than 0s")
            );
        }
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
        assert_eq!(e.flag, "--entity-rule");
        assert!(parse_entity_rule("/x:n=k")
            .expect_err("slash")
            .reason
            .contains("begin or end"));
    }

    #[test]
    fn rule_errors_name_the_flag_and_never_the_key() {
        let e = parse_rule("no-equals-secretkey").expect_err("invalid");
        assert_eq!(e.flag, "--rule");
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
