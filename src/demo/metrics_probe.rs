//! One look at the daemon's `/metrics` after the run (Prometheus text format), so the report can
//! show that the daemon counted the traffic the senders saw.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::daemon::metrics::{REQUESTS, STREAMS_ACCEPTED};
use crate::proto::http1::{parse_response_head, HeadError, Limits};

/// How long the probe waits for the admin endpoint.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the daemon's metrics say about the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DaemonCounts {
    /// `hycod_requests_total`, all labels summed.
    pub requests: f64,
    /// `hycod_streams_accepted_total`, all labels summed.
    pub streams_accepted: f64,
    /// Sample lines in the exposition.
    pub samples: usize,
}

/// Why the metrics could not be read.
#[derive(Debug)]
pub enum ProbeError {
    Io(io::Error),
    Head(HeadError),
    /// The answer ended inside its head.
    Truncated,
    Status(u16),
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "cannot read /metrics: {e}"),
            Self::Head(e) => write!(f, "malformed /metrics answer: {e}"),
            Self::Truncated => f.write_str("the /metrics answer ended inside its head"),
            Self::Status(status) => write!(f, "/metrics answered {status}"),
        }
    }
}

impl std::error::Error for ProbeError {}

/// Fetches `http://{admin}/metrics` (the admin endpoint closes after one answer).
pub(crate) fn fetch(admin: SocketAddr) -> Result<String, ProbeError> {
    let mut tcp = TcpStream::connect_timeout(&admin, PROBE_TIMEOUT).map_err(ProbeError::Io)?;
    tcp.set_read_timeout(Some(PROBE_TIMEOUT))
        .map_err(ProbeError::Io)?;
    write!(
        tcp,
        "GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n"
    )
    .map_err(ProbeError::Io)?;
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).map_err(ProbeError::Io)?;
    let (head, len) = parse_response_head(&answer, &Limits::default())
        .map_err(ProbeError::Head)?
        .ok_or(ProbeError::Truncated)?;
    if head.status != 200 {
        return Err(ProbeError::Status(head.status));
    }
    Ok(String::from_utf8_lossy(&answer[len..]).into_owned())
}

/// The counts of interest in an exposition text.
pub(crate) fn counts(text: &str) -> DaemonCounts {
    DaemonCounts {
        requests: sum(text, REQUESTS.name),
        streams_accepted: sum(text, STREAMS_ACCEPTED.name),
        samples: text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .count(),
    }
}

/// The sum of every sample of `metric` (any labels).
pub(crate) fn sum(text: &str, metric: &str) -> f64 {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(metric)?;
            if !(rest.starts_with('{') || rest.starts_with(' ')) {
                return None;
            }
            line.rsplit(' ').next()?.parse::<f64>().ok()
        })
        // fold from +0.0: `sum` of no samples would be -0.0 and print as "-0".
        .fold(0.0, |total, value| total + value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# HELP hycod_requests_total Relayed HTTP requests answered, by status class (2xx..5xx).
# TYPE hycod_requests_total counter
hycod_requests_total{hybrid_connection=\"erp-api\",status=\"2xx\"} 298
hycod_requests_total{hybrid_connection=\"erp-api\",status=\"5xx\"} 2
hycod_requests_total_extra 7
hycod_streams_accepted_total{hybrid_connection=\"tcp-echo\"} 5
";

    #[test]
    fn samples_of_a_metric_are_summed_over_labels_only() {
        assert_eq!(sum(TEXT, "hycod_requests_total"), 300.0);
        assert_eq!(sum(TEXT, "hycod_missing_total").to_string(), "0");
        let c = counts(TEXT);
        assert_eq!(c.requests, 300.0);
        assert_eq!(c.streams_accepted, 5.0);
        assert_eq!(c.samples, 4);
    }

    #[test]
    fn a_closed_port_is_an_io_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = port.local_addr().expect("addr");
        drop(port);
        assert!(matches!(fetch(addr), Err(ProbeError::Io(_))));
    }
}
