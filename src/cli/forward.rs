//! `hycod forward`: accept local TCP connections and carry each through the relay to the
//! listening daemon (the sender end of a TCP tunnel, like `azbridge -L`; protocol §7.1).
//!
//! The flags are a one-forward configuration ([`Config::single_forward`]): they are validated
//! by the `[[forward]]` rules and served by the daemon's forward code, the same path as a
//! `[[forward]]` section of `hycod run`.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::EXIT_ERROR;
use crate::config::{
    Config, ConfigError, ConfigWarning, ForwardFlags, Peer, Warning, SINGLE_FORWARD_NAME,
};
use crate::daemon::{self, DaemonOptions, StartError};

/// Flags of `hycod forward`.
#[derive(Debug, Clone, Args)]
pub struct ForwardArgs {
    /// Local address TCP clients connect to (port 0 picks one).
    #[arg(long)]
    pub listen: SocketAddr,
    /// A file holding the connection string (a rule with the Send right).
    #[arg(long, value_name = "FILE")]
    pub connection_string_file: PathBuf,
    /// The hybrid connection path; defaults to the connection string's EntityPath.
    #[arg(long, value_name = "PATH")]
    pub entity: Option<String>,
    /// A self-hosted relay (ws:// or wss://) instead of the connection string's namespace.
    #[arg(long, value_name = "URL")]
    pub relay_url: Option<String>,
    /// Deprecated: the same as `--tls-roots PEM`.
    #[arg(long, value_name = "PEM")]
    pub relay_ca_file: Option<PathBuf>,
    /// The trust store for the relay's certificate: webpki, system or a CA file.
    #[arg(long, value_name = "webpki|system|PEM")]
    pub tls_roots: Option<String>,
    /// HTTP CONNECT proxy, `http://[USER@]HOST:PORT`, or `none`; without it the environment's
    /// HTTPS_PROXY / ALL_PROXY (and NO_PROXY) apply.
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    /// A file holding the password of the proxy's user.
    #[arg(long, value_name = "FILE")]
    pub proxy_password_file: Option<PathBuf>,
    /// An environment variable holding the password of the proxy's user.
    #[arg(long, value_name = "VAR")]
    pub proxy_password_env: Option<String>,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Lifetime of each stream's connect token (at least 1m).
    #[arg(long, default_value = "1h")]
    pub token_ttl: String,
    /// What listens on the hybrid connection: plain (hycod run, the SDKs) or azbridge
    /// (azbridge -T, which expects its port-name preamble).
    #[arg(long, value_enum, default_value = "plain")]
    pub peer: PeerArg,
    /// The port name an azbridge listener routes by (default: the --listen port).
    #[arg(long, value_name = "NAME")]
    pub port_name: Option<String>,
}

/// `--peer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PeerArg {
    /// Plain bytes from the first byte on.
    Plain,
    /// Azure Relay Bridge's preamble first.
    Azbridge,
}

impl From<PeerArg> for Peer {
    fn from(peer: PeerArg) -> Self {
        match peer {
            PeerArg::Plain => Peer::Plain,
            PeerArg::Azbridge => Peer::Azbridge,
        }
    }
}

/// The flag that sets the `[[forward]]` key `key`.
fn flag(key: &str) -> &'static str {
    match key {
        "listen" => "--listen",
        "entity_path" => "--entity",
        "relay_url" => "--relay-url",
        "relay_ca_file" => "--relay-ca-file",
        "tls_roots" => "--tls-roots",
        "token_ttl" => "--token-ttl",
        "port_name" => "--port-name",
        "proxy" => "--proxy",
        "proxy_password_file" => "--proxy-password-file",
        "proxy_password_env" => "--proxy-password-env",
        _ => "--connection-string-file",
    }
}

/// A configuration error about the one forward, named by the flag that caused it.
fn flag_error(error: &ConfigError) -> String {
    let key = error.path.rsplit('.').next().unwrap_or_default();
    match error.path.strip_prefix("forward[0]") {
        Some(_) => format!("{}: {}", flag(key), error.reason),
        None => error.to_string(),
    }
}

/// A configuration warning about the one forward, named by flags.
fn flag_warning(warning: &ConfigWarning) -> String {
    let key = warning.path.rsplit('.').next().unwrap_or_default();
    match (&warning.kind, warning.path.strip_prefix("forward[0]")) {
        (Warning::DeprecatedKey { replacement }, Some(_)) => format!(
            "{} is deprecated and may be removed; {} means the same",
            flag(key),
            flag(replacement)
        ),
        (_, Some(_)) => format!("{}: {}", flag(key), warning.kind),
        (_, None) => warning.to_string(),
    }
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_ERROR)
}

/// Starts the forwarder, prints `listening tcp://ADDR` and serves until killed.
pub(super) fn run(args: ForwardArgs) -> ExitCode {
    let flags = ForwardFlags {
        listen: args.listen,
        connection_string_file: args.connection_string_file,
        entity_path: args.entity,
        relay_url: args.relay_url,
        relay_ca_file: args.relay_ca_file,
        tls_roots: args.tls_roots,
        token_ttl: Some(args.token_ttl),
        peer: Some(args.peer.into()),
        port_name: args.port_name,
        proxy: args.proxy,
        proxy_password_file: args.proxy_password_file,
        proxy_password_env: args.proxy_password_env,
        workers: args.workers,
    };
    let config = match Config::single_forward(flags) {
        Ok(config) => config,
        Err(error) => return fail(flag_error(&error)),
    };
    crate::logging::init(config.log.format, config.log.level);
    for warning in &config.warnings {
        let warning = flag_warning(warning);
        tracing::warn!(%warning, "configuration warning");
    }
    let handle = match daemon::start(&config, DaemonOptions::default()) {
        Ok(handle) => handle,
        Err(StartError::Forward { error, .. }) => {
            return fail(format!("{}: {error}", flag(error.key())))
        }
        Err(error) => return fail(error),
    };
    let Some(addr) = handle.forward_addr(SINGLE_FORWARD_NAME) else {
        return fail("the forward did not start");
    };
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening tcp://{addr}");
    let _ = stdout.flush();
    drop(stdout);
    for worker in handle.workers {
        let _ = worker.join();
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Reason;

    #[test]
    fn a_deprecated_flag_is_named_with_its_replacement() {
        let warning = ConfigWarning {
            path: "forward[0].relay_ca_file".into(),
            kind: Warning::DeprecatedKey {
                replacement: "tls_roots",
            },
        };
        assert_eq!(
            flag_warning(&warning),
            "--relay-ca-file is deprecated and may be removed; --tls-roots means the same"
        );
        let warning = ConfigWarning {
            path: "forward[0]".into(),
            kind: Warning::FixedSignature,
        };
        assert!(flag_warning(&warning).starts_with("--connection-string-file: the connection"));
    }

    #[test]
    fn errors_about_the_forward_name_the_flag() {
        let error = ConfigError::new("forward[0].entity_path", Reason::MissingEntityPath);
        assert_eq!(
            flag_error(&error),
            "--entity: required because the connection string has no EntityPath"
        );
        let error = ConfigError::new("forward[0]", Reason::NoConnectionString);
        assert!(flag_error(&error).starts_with("--connection-string-file: "));
        let error = ConfigError::new("forward[0].connection_string_file", Reason::MissingKey);
        assert!(flag_error(&error).starts_with("--connection-string-file: "));
    }

    #[test]
    fn every_forward_key_of_the_flags_maps_to_its_flag() {
        for (key, expected) in [
            ("listen", "--listen"),
            ("entity_path", "--entity"),
            ("relay_url", "--relay-url"),
            ("relay_ca_file", "--relay-ca-file"),
            ("tls_roots", "--tls-roots"),
            ("token_ttl", "--token-ttl"),
            ("port_name", "--port-name"),
            ("proxy", "--proxy"),
            ("proxy_password_file", "--proxy-password-file"),
            ("proxy_password_env", "--proxy-password-env"),
            ("connection_string_file", "--connection-string-file"),
        ] {
            assert_eq!(flag(key), expected);
        }
    }

    #[test]
    fn other_errors_keep_their_key_path() {
        let error = ConfigError::new("runtime.workers", Reason::MissingKey);
        assert_eq!(flag_error(&error), error.to_string());
    }
}
