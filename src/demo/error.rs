//! Why the demo could not get its pieces running. Failures of the traffic itself (a wrong
//! status, a wrong echo, a timeout) are not errors here: they are counted and shown in the
//! report, which then ends the demo with a failure.

use std::fmt;
use std::io;
use std::time::Duration;

use crate::config::ConfigError;
use crate::daemon::process::status::HcReadiness;
use crate::tls::TlsSetupError;

/// A piece of the demo that did not start.
#[derive(Debug)]
pub enum DemoError {
    /// A sample service could not listen on loopback.
    ServiceBind {
        service: &'static str,
        source: io::Error,
    },
    /// The services' thread or runtime did not start.
    ServiceStart(io::Error),
    /// The in-process relay did not start.
    Relay(crate::relay::StartError),
    /// The generated daemon configuration was refused (a bug in the demo).
    Config(ConfigError),
    /// The listener daemon did not start.
    Daemon(crate::daemon::StartError),
    /// Not every control channel came online in time.
    ListenersOffline {
        waited: Duration,
        readiness: Vec<HcReadiness>,
    },
    /// The senders' TLS configuration could not be built.
    SenderTls(TlsSetupError),
    /// The senders' runtime did not start.
    SenderRuntime(io::Error),
}

impl fmt::Display for DemoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ServiceBind { service, source } => {
                write!(f, "the {service} cannot listen on 127.0.0.1: {source}")
            }
            Self::ServiceStart(e) => write!(f, "the sample services did not start: {e}"),
            Self::Relay(e) => write!(f, "the relay did not start: {e}"),
            Self::Config(e) => write!(f, "the daemon configuration was refused: {e}"),
            Self::Daemon(e) => write!(f, "the listener daemon did not start: {e}"),
            Self::ListenersOffline { waited, readiness } => {
                write!(f, "listeners not online after {waited:?}:")?;
                for r in readiness {
                    write!(f, " {} {}/{}", r.name, r.online, r.total)?;
                }
                Ok(())
            }
            Self::SenderTls(e) => write!(f, "the senders' TLS set-up failed: {e}"),
            Self::SenderRuntime(e) => write!(f, "the senders' runtime did not start: {e}"),
        }
    }
}

impl std::error::Error for DemoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::ServiceBind { source, .. } => Some(source),
            Self::ServiceStart(e) | Self::SenderRuntime(e) => Some(e),
            Self::Relay(e) => Some(e),
            Self::Config(e) => Some(e),
            Self::Daemon(e) => Some(e),
            Self::SenderTls(e) => Some(e),
            Self::ListenersOffline { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_listeners_are_listed_per_hybrid_connection() {
        let error = DemoError::ListenersOffline {
            waited: Duration::from_secs(10),
            readiness: vec![
                HcReadiness {
                    name: "erp-api".into(),
                    online: 1,
                    total: 2,
                },
                HcReadiness {
                    name: "tcp-echo".into(),
                    online: 0,
                    total: 2,
                },
            ],
        };
        assert_eq!(
            error.to_string(),
            "listeners not online after 10s: erp-api 1/2 tcp-echo 0/2"
        );
    }

    #[test]
    fn bind_failures_name_the_service() {
        let error = DemoError::ServiceBind {
            service: "echo service",
            source: io::Error::from(io::ErrorKind::AddrInUse),
        };
        assert!(error
            .to_string()
            .starts_with("the echo service cannot listen"));
    }
}
