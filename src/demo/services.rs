//! Starting the demo's on-prem services — the sample ERP web service and the TCP echo service —
//! on loopback ports chosen by the kernel, on one thread with its own monoio runtime.

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::mpsc;
use std::thread;

use monoio::net::TcpListener;

use super::error::DemoError;
use super::{echo, upstream};
use crate::runtime::workers;

/// The running services' addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Services {
    /// The sample ERP web service (HTTP).
    pub upstream: SocketAddr,
    /// The TCP echo service.
    pub echo: SocketAddr,
}

fn bind(service: &'static str) -> Result<(StdListener, SocketAddr), DemoError> {
    let wrap = |source| DemoError::ServiceBind { service, source };
    let listener = StdListener::bind(("127.0.0.1", 0)).map_err(wrap)?;
    listener.set_nonblocking(true).map_err(wrap)?;
    let addr = listener.local_addr().map_err(wrap)?;
    Ok((listener, addr))
}

/// Binds both services and returns once their thread serves them (they run until the process
/// ends).
pub(crate) fn start() -> Result<Services, DemoError> {
    let (upstream_listener, upstream) = bind("sample ERP service")?;
    let (echo_listener, echo) = bind("echo service")?;
    let (ready_tx, ready_rx) = mpsc::channel::<io::Result<()>>();
    let failed = ready_tx.clone();
    thread::Builder::new()
        .name("demo-services".to_owned())
        .spawn(move || {
            let ran = workers::block_on(async move {
                let listeners = TcpListener::from_std(upstream_listener)
                    .and_then(|u| TcpListener::from_std(echo_listener).map(|e| (u, e)));
                match listeners {
                    Ok((upstream_listener, echo_listener)) => {
                        let _ = ready_tx.send(Ok(()));
                        monoio::spawn(upstream::serve(upstream_listener));
                        echo::serve(echo_listener).await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
            if let Err(e) = ran {
                let _ = failed.send(Err(e));
            }
        })
        .map_err(DemoError::ServiceStart)?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(Services { upstream, echo }),
        Ok(Err(e)) => Err(DemoError::ServiceStart(e)),
        Err(_) => Err(DemoError::ServiceStart(io::Error::other(
            "the services' thread ended before it was ready",
        ))),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    #[test]
    fn both_services_answer_on_their_ports() {
        let services = start().expect("services");
        assert!(services.upstream.ip().is_loopback() && services.echo.ip().is_loopback());
        let mut echo = std::net::TcpStream::connect(services.echo).expect("echo");
        echo.write_all(b"ping").expect("send");
        echo.shutdown(std::net::Shutdown::Write).expect("fin");
        let mut back = Vec::new();
        echo.read_to_end(&mut back).expect("read");
        assert_eq!(back, b"ping");
        let mut http = std::net::TcpStream::connect(services.upstream).expect("upstream");
        http.write_all(b"GET /nowhere HTTP/1.1\r\nConnection: close\r\n\r\n")
            .expect("send");
        let mut text = String::new();
        http.read_to_string(&mut text).expect("read");
        assert!(text.starts_with("HTTP/1.1 404 "), "{text}");
    }
}
