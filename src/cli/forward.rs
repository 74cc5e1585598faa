//! `hycod forward`: accept local TCP connections and carry each through the relay to the
//! listening daemon (the sender end of a TCP tunnel, like `azbridge -L`).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::EXIT_ERROR;
use crate::auth::connection_string::{entity_path_problem, ConnectionString};
use crate::config::duration;
use crate::forward::{self, ForwardConfig};
use crate::io::ws_client::Dialer;
use crate::runtime::workers::worker_count;
use crate::tls::{client_config, TrustRoots};

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
    /// CA certificates to trust for a wss:// relay_url (instead of the webpki roots).
    #[arg(long, value_name = "PEM", requires = "relay_url")]
    pub relay_ca_file: Option<PathBuf>,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub workers: usize,
    /// Lifetime of each stream's connect token.
    #[arg(long, default_value = "1h", value_parser = |s: &str| duration::parse(s).map_err(|e| e.to_string()))]
    pub token_ttl: Duration,
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_ERROR)
}

/// Starts the forwarder, prints `listening tcp://ADDR` and serves until killed.
pub fn run(args: ForwardArgs) -> ExitCode {
    let text = match std::fs::read_to_string(&args.connection_string_file) {
        Ok(text) => crate::secret::Secret::new(text.trim()),
        Err(e) => {
            return fail(format!(
                "--connection-string-file {}: {e}",
                args.connection_string_file.display()
            ))
        }
    };
    let connection_string = match ConnectionString::parse(text.expose()) {
        Ok(cs) => cs,
        Err(e) => return fail(format!("--connection-string-file: {e}")),
    };
    let entity = match (args.entity.as_deref(), connection_string.entity_path()) {
        (Some(given), _) => given.to_owned(),
        (None, Some(from_string)) => from_string.to_owned(),
        (None, None) => {
            return fail("--entity: required when the connection string has no EntityPath")
        }
    };
    if let Some(problem) = entity_path_problem(&entity) {
        return fail(format!("--entity: {problem}"));
    }
    let roots = match &args.relay_ca_file {
        Some(file) => TrustRoots::CaFile(file.clone()),
        None => TrustRoots::WebPki,
    };
    let tls = match client_config(&roots) {
        Ok(tls) => tls,
        Err(e) => return fail(format!("--relay-ca-file: {e}")),
    };
    let relay_base = match &args.relay_url {
        Some(url) if url.starts_with("ws://") || url.starts_with("wss://") => {
            url.trim_end_matches('/').to_owned()
        }
        Some(url) => {
            return fail(format!(
                "--relay-url: expected ws://host:port or wss://host:port, got {url:?}"
            ))
        }
        None => format!("wss://{}", connection_string.namespace_host()),
    };
    let config = ForwardConfig {
        listen: args.listen,
        relay_base,
        namespace_host: connection_string.namespace_host().to_owned(),
        credential: connection_string.credential().clone(),
        entity,
        token_ttl: args.token_ttl,
        dialer: Dialer {
            tls,
            proxy: None,
            connect_timeout: Duration::from_secs(30),
        },
        workers: worker_count(args.workers),
    };
    crate::logging::init(
        crate::config::LogFormat::Text,
        crate::config::LogLevel::Info,
    );
    let handle = match forward::start(config) {
        Ok(handle) => handle,
        Err(e) => return fail(format!("--listen {}: {e}", args.listen)),
    };
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "listening tcp://{}", handle.local_addr);
    let _ = stdout.flush();
    drop(stdout);
    for worker in handle.workers {
        let _ = worker.join();
    }
    ExitCode::SUCCESS
}
