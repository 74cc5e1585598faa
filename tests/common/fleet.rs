//! Several `hycod run` daemons on the same two hybrid connections of one `hycod relay`, the
//! high-availability deployment (docs/operations.md "High availability"): each daemon carries
//! streams to a checked stream target and relayed HTTP to the hashing HTTP target, with its own
//! `listeners` count. Members can be stopped (SIGTERM), killed (SIGKILL) and started again with
//! the same configuration, as a rolling upgrade or a host failure does.

use std::time::Duration;

use super::processes::{
    config_text, eventually, http_hybrid_connection, hybrid_connection, DaemonProcess,
    RelayProcess, PATIENCE,
};

/// The hybrid connection every member serves streams on.
pub(crate) const STREAM_PATH: &str = "ha-streams";
/// The hybrid connection every member serves relayed HTTP on.
pub(crate) const HTTP_PATH: &str = "ha-http";

/// The targets every member forwards to, and its drain grace.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub relay_url: String,
    pub stream_port: u16,
    pub http_port: u16,
    pub grace: String,
}

/// One daemon of the fleet and the directory of its configuration.
pub(crate) struct Member {
    pub daemon: DaemonProcess,
    pub listeners: u64,
    dir: tempfile::TempDir,
}

/// The configuration of a member with `listeners` control channels per hybrid connection.
fn member_config(plan: &Plan, listeners: u64) -> String {
    let set = |text: String| text.replace("listeners = 2", &format!("listeners = {listeners}"));
    config_text(
        &plan.grace,
        &[
            set(hybrid_connection(
                "streams",
                STREAM_PATH,
                &plan.relay_url,
                plan.stream_port,
            )),
            set(http_hybrid_connection(
                "http",
                HTTP_PATH,
                &plan.relay_url,
                plan.http_port,
            )),
        ],
    )
}

impl Member {
    /// Starts a daemon with `listeners` control channels per hybrid connection.
    pub(crate) fn start(plan: &Plan, listeners: u64) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let daemon = DaemonProcess::start(dir.path(), &member_config(plan, listeners), None, &[]);
        Self {
            daemon,
            listeners,
            dir,
        }
    }

    /// Starts a new process on the same configuration (the upgraded daemon, or the host back).
    pub(crate) fn start_again(&mut self, plan: &Plan) {
        self.daemon = DaemonProcess::start(
            self.dir.path(),
            &member_config(plan, self.listeners),
            None,
            &[],
        );
    }

    /// Relayed HTTP requests this process answered, and streams it joined to their target.
    pub(crate) fn served(&self) -> (f64, f64) {
        (
            self.daemon.metric_total("hycod_requests_total"),
            self.daemon.metric_total("hycod_streams_accepted_total"),
        )
    }
}

/// Waits until the relay has `count` listeners on both hybrid connections.
pub(crate) fn wait_attached(relay: &RelayProcess, count: u64) {
    let attached =
        || relay.listener_count(STREAM_PATH) == count && relay.listener_count(HTTP_PATH) == count;
    assert!(
        eventually(PATIENCE, attached),
        "the relay has {count} listeners on each hybrid connection: {}",
        relay.status()
    );
}

/// Sends SIGTERM to `member` and waits for its drain to end with exit status 0.
pub(crate) fn stop(member: &mut Member, limit: Duration) {
    member.daemon.signal("TERM");
    let status = member.daemon.wait_exit(limit);
    assert_eq!(
        status.code(),
        Some(0),
        "the drained daemon exits 0; logs:\n{}",
        member.daemon.logs_text()
    );
}
