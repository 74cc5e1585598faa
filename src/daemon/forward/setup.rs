//! Preparing a forward for the workers on the main thread (architecture §3 "Lifecycle"): its
//! plan, its listening socket — bound anew, or the running one kept when `listen` did not
//! change — and one duplicate of that socket per worker. Everything that can fail happens here,
//! before a start or reload changes anything.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::num::NonZeroUsize;
use std::sync::Arc;

use crate::config::Forward;
use crate::daemon::plan::{plan_forward, ForwardPlan};
use crate::tls::{ClientConfig, TlsSetupError};

/// A forward ready to be handed to the workers.
pub(crate) struct PreparedForward {
    pub plan: ForwardPlan,
    /// The main thread's copy of the socket (kept so that a replacement can reuse it).
    pub listener: StdListener,
    /// The address it is bound to (the system's port when `listen` has port 0).
    pub local_addr: SocketAddr,
    /// One duplicate per worker, each registered with that worker's runtime.
    pub per_worker: Vec<StdListener>,
}

/// Why a forward could not be prepared.
#[derive(Debug)]
pub enum ForwardSetupError {
    /// The relay's TLS trust (`tls_roots`) could not be set up.
    Tls(TlsSetupError),
    /// The `listen` address could not be bound (or its socket duplicated).
    Listen(io::Error),
}

impl ForwardSetupError {
    /// The configuration key the error is about.
    pub fn key(&self) -> &'static str {
        match self {
            Self::Tls(_) => "tls_roots",
            Self::Listen(_) => "listen",
        }
    }
}

impl fmt::Display for ForwardSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tls(error) => write!(f, "{error}"),
            Self::Listen(error) => write!(f, "cannot listen: {error}"),
        }
    }
}

impl std::error::Error for ForwardSetupError {}

/// Prepares `forward` for `workers` workers. `running` is the socket of the running forward of
/// the same name whose `listen` is unchanged: it is kept (connections waiting in its backlog
/// are not lost); otherwise `listen` is bound.
pub(crate) fn prepare(
    forward: &Forward,
    workers: NonZeroUsize,
    webpki: &Arc<ClientConfig>,
    running: Option<(&StdListener, SocketAddr)>,
) -> Result<PreparedForward, ForwardSetupError> {
    let plan = plan_forward(forward, webpki).map_err(ForwardSetupError::Tls)?;
    let (listener, local_addr) = match running {
        Some((listener, local_addr)) => (listener.try_clone(), local_addr),
        None => match bind(forward.listen) {
            Ok((listener, local_addr)) => (Ok(listener), local_addr),
            Err(error) => return Err(ForwardSetupError::Listen(error)),
        },
    };
    let listener = listener.map_err(ForwardSetupError::Listen)?;
    let per_worker = (0..workers.get())
        .map(|_| listener.try_clone())
        .collect::<io::Result<Vec<_>>>()
        .map_err(ForwardSetupError::Listen)?;
    Ok(PreparedForward {
        plan,
        listener,
        local_addr,
        per_worker,
    })
}

/// Binds `addr` non-blocking (for the workers' runtimes); the bound address.
pub(crate) fn bind(addr: SocketAddr) -> io::Result<(StdListener, SocketAddr)> {
    let listener = StdListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::Config;
    use crate::tls::{client_config, TrustRoots};

    fn forward(listen: &str, extra: &str) -> Forward {
        let text = format!(
            "[[forward]]\nname = \"f\"\nlisten = \"{listen}\"\nconnection_string = \"Endpoint=sb://ns.example/;SharedAccessKeyName=s;SharedAccessKey=a2V5;EntityPath=e\"\n{extra}\n"
        );
        Config::from_toml_str(&text, Path::new("."))
            .expect("valid")
            .forwards[0]
            .clone()
    }

    fn two() -> NonZeroUsize {
        NonZeroUsize::new(2).expect("2 > 0")
    }

    #[test]
    fn port_0_is_bound_to_a_system_port_with_one_duplicate_per_worker() {
        let webpki = client_config(&TrustRoots::WebPki).expect("webpki");
        let prepared = prepare(&forward("127.0.0.1:0", ""), two(), &webpki, None).expect("ok");
        assert_ne!(prepared.local_addr.port(), 0);
        assert_eq!(prepared.per_worker.len(), 2);
        assert_eq!(
            prepared.per_worker[1].local_addr().expect("addr"),
            prepared.local_addr
        );
    }

    #[test]
    fn a_running_socket_is_kept_instead_of_binding_again() {
        let webpki = client_config(&TrustRoots::WebPki).expect("webpki");
        let (running, addr) = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let listen = addr.to_string();
        let prepared = prepare(
            &forward(&listen, ""),
            two(),
            &webpki,
            Some((&running, addr)),
        )
        .expect("the address in use is the running socket itself");
        assert_eq!(prepared.local_addr, addr);
    }

    #[test]
    fn an_address_in_use_is_a_listen_error() {
        let webpki = client_config(&TrustRoots::WebPki).expect("webpki");
        let (_taken, addr) = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        let error = match prepare(&forward(&addr.to_string(), ""), two(), &webpki, None) {
            Err(error) => error,
            Ok(_) => panic!("the address is taken"),
        };
        assert!(
            matches!(&error, ForwardSetupError::Listen(e) if e.kind() == io::ErrorKind::AddrInUse),
            "{error}"
        );
        assert_eq!(error.key(), "listen");
    }

    #[test]
    fn a_bad_ca_file_is_a_tls_error() {
        let webpki = client_config(&TrustRoots::WebPki).expect("webpki");
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").expect("write");
        let extra = format!(
            "relay_url = \"wss://127.0.0.1:9\"\ntls_roots = \"{}\"",
            ca.display()
        );
        let error = match prepare(&forward("127.0.0.1:0", &extra), two(), &webpki, None) {
            Err(error) => error,
            Ok(_) => panic!("no certificate in the file"),
        };
        assert!(
            matches!(
                error,
                ForwardSetupError::Tls(TlsSetupError::NoCertificates { .. })
            ),
            "{error}"
        );
        assert_eq!(error.key(), "tls_roots");
    }
}
