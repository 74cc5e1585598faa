//! Real traffic for the relay's admin tests (metrics, status page): a relay serving `erp`,
//! `echo` and further paths, and one `hycod run` with two listeners on each of `erp` (HTTP to
//! an upstream) and `echo` (streams to an echo target).

use super::processes::{
    config_text, eventually, http_hybrid_connection, http_upstream, hybrid_connection, relayed_get,
    DaemonProcess, RelayProcess, PATIENCE,
};

/// The relay and the daemon listening on it; the daemon stops on drop.
pub(crate) struct RelayWithListeners {
    pub relay: RelayProcess,
    _daemon: DaemonProcess,
    _dir: tempfile::TempDir,
}

impl RelayWithListeners {
    /// Starts the relay with `erp`, `echo` and `others` (no listener on those) and the daemon;
    /// returns once the relay has both listeners of `erp` and of `echo` attached.
    pub(crate) fn start(others: &[&str]) -> Self {
        let mut paths = vec!["erp", "echo"];
        paths.extend_from_slice(others);
        let relay = RelayProcess::start(&paths);
        let echo = super::processes::tcp_echo();
        let dir = tempfile::tempdir().expect("temp dir");
        let text = config_text(
            "5s",
            &[
                http_hybrid_connection("erp", "erp", &relay.url, http_upstream()),
                hybrid_connection("echo", "echo", &relay.url, echo),
            ],
        );
        let daemon = DaemonProcess::start(dir.path(), &text, None, &[]);
        assert!(
            eventually(PATIENCE, || relay.listener_count("erp") == 2
                && relay.listener_count("echo") == 2),
            "listeners attach: {}",
            relay.status()
        );
        Self {
            relay,
            _daemon: daemon,
            _dir: dir,
        }
    }

    /// Sends `count` relayed GETs to `erp`; each must be answered 200.
    pub(crate) fn get_orders(&self, count: usize) {
        for i in 0..count {
            let answer = self.answer("erp", &format!("orders/{i}"));
            assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
        }
    }

    /// The whole answer to a relayed GET of `path` on hybrid connection `hc`.
    pub(crate) fn answer(&self, hc: &str, path: &str) -> String {
        relayed_get(&self.relay.url, hc, path)
            .recv_timeout(PATIENCE)
            .expect("an answer")
    }
}
