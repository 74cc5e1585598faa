//! The daemon handle's lifecycle API in process (architecture §3 "Lifecycle"): phases, in-flight
//! counts, reloads that replace a hybrid connection make-before-break, and reloads that are
//! rejected whole.

mod common;

use std::path::Path;
use std::time::Duration;

use common::processes::{eventually, RelayProcess, KEY, KEY2, PATIENCE};
use hycod::config::Config;
use hycod::daemon::{self, DaemonOptions, Phase, ReloadError};

fn config(relay_url: &str, hcs: &[(&str, &str, &str)]) -> Config {
    let mut text = String::from("[runtime]\nworkers = 2\n");
    for (name, path, extra) in hcs {
        text.push_str(&format!(
            "[[hybrid_connection]]\nname = \"{name}\"\nconnection_string = \"Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey={KEY};EntityPath={path}\"\nrelay_url = \"{relay_url}\"\ntarget = \"tcp://127.0.0.1:9\"\n{extra}\n"
        ));
    }
    Config::from_toml_str(&text, Path::new(".")).expect("valid configuration")
}

#[test]
fn the_phase_moves_from_starting_to_stopped() {
    let relay = RelayProcess::start(&["hyco"]);
    let mut handle = daemon::start(
        &config(&relay.url, &[("a", "hyco", "listeners = 2")]),
        DaemonOptions::default(),
    )
    .expect("daemon");
    assert!(handle.status.wait_phase(Phase::Listening, PATIENCE));
    assert_eq!(handle.in_flight(PATIENCE), Some(0));
    assert!(handle.workers_responsive(PATIENCE));
    handle.drain(Duration::from_secs(5));
    assert!(handle.phase() >= Phase::Draining);
    assert!(handle.status.wait_phase(Phase::Stopped, PATIENCE));
    for worker in std::mem::take(&mut handle.workers) {
        worker.join().expect("worker ended cleanly");
    }
    assert_eq!(handle.in_flight(Duration::from_millis(100)), None);
    assert!(
        handle.workers_responsive(Duration::from_millis(100)),
        "drained workers count as answering"
    );
    assert!(matches!(
        handle.reload(config(&relay.url, &[("a", "hyco", "listeners = 2")])),
        Err(ReloadError::Draining)
    ));
    assert!(eventually(PATIENCE, || relay.listener_count("hyco") == 0));
}

#[test]
fn a_changed_hybrid_connection_gets_its_new_listeners_before_the_old_stop() {
    let relay = RelayProcess::start(&["hyco"]);
    let mut handle = daemon::start(
        &config(&relay.url, &[("a", "hyco", "listeners = 2")]),
        DaemonOptions::default(),
    )
    .expect("daemon");
    assert!(handle.status.wait_all_online(PATIENCE));
    let report = handle
        .reload(config(&relay.url, &[("a", "hyco", "listeners = 3")]))
        .expect("reload applied");
    assert_eq!(report.changed, ["a"]);
    assert!(report.added.is_empty() && report.removed.is_empty());
    assert!(report.handover_incomplete.is_empty());
    let readiness = handle.status.readiness();
    assert_eq!((readiness[0].online, readiness[0].total), (3, 3));
    assert!(eventually(PATIENCE, || relay.listener_count("hyco") == 3));
    assert_eq!(
        handle.config().hybrid_connections[0]
            .listeners
            .map(|n| n.get()),
        Some(3)
    );
}

#[test]
fn a_replacement_that_cannot_come_online_still_replaces_after_the_handover_timeout() {
    let relay = RelayProcess::start(&["hyco"]);
    let options = DaemonOptions {
        handover_timeout: Duration::from_millis(300),
        ..DaemonOptions::default()
    };
    let mut handle = daemon::start(
        &config(&relay.url, &[("a", "hyco", "listeners = 2")]),
        options,
    )
    .expect("daemon");
    assert!(handle.status.wait_all_online(PATIENCE));
    // A key the relay does not know: the new listeners are refused (401).
    let mut rotated = config(&relay.url, &[("a", "hyco", "listeners = 2")]);
    let text = format!(
        "[[hybrid_connection]]\nname = \"a\"\nconnection_string = \"Endpoint=sb://localhost/;SharedAccessKeyName=unknown;SharedAccessKey={KEY2};EntityPath=hyco\"\nrelay_url = \"{}\"\ntarget = \"tcp://127.0.0.1:9\"\nlisteners = 2\n",
        relay.url
    );
    rotated.hybrid_connections = Config::from_toml_str(&text, Path::new("."))
        .expect("valid")
        .hybrid_connections;
    let report = handle.reload(rotated).expect("reload applied");
    assert_eq!(report.handover_incomplete, ["a"]);
    assert!(!handle.status.is_ready());
    assert!(eventually(PATIENCE, || relay.listener_count("hyco") == 0));
}

#[test]
fn a_reload_with_one_bad_part_applies_nothing() {
    let relay = RelayProcess::start(&["hyco", "hyco2"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let bad_ca = dir.path().join("ca.pem");
    std::fs::write(&bad_ca, "not a certificate\n").expect("ca file");
    let mut handle = daemon::start(
        &config(&relay.url, &[("a", "hyco", "listeners = 2")]),
        DaemonOptions::default(),
    )
    .expect("daemon");
    assert!(handle.status.wait_all_online(PATIENCE));
    let wss = relay.url.replace("ws://", "wss://");
    let mut new = config(&relay.url, &[("b", "hyco2", "")]);
    let text = format!(
        "[[hybrid_connection]]\nname = \"c\"\nconnection_string = \"Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey={KEY};EntityPath=hyco\"\nrelay_url = \"{wss}\"\ntls_roots = \"{}\"\ntarget = \"tcp://127.0.0.1:9\"\n",
        bad_ca.display()
    );
    new.hybrid_connections.extend(
        Config::from_toml_str(&text, Path::new("."))
            .expect("valid")
            .hybrid_connections,
    );
    match handle.reload(new) {
        Err(ReloadError::Tls { path, .. }) => {
            assert_eq!(path, "hybrid_connection[1].tls_roots");
        }
        other => panic!("{other:?}"),
    }
    let readiness = handle.status.readiness();
    assert_eq!(readiness.len(), 1, "a still runs alone");
    assert_eq!(readiness[0].name, "a");
    assert_eq!(handle.config().hybrid_connections.len(), 1);
    assert_eq!(relay.listener_count("hyco"), 2);
    assert_eq!(relay.listener_count("hyco2"), 0, "b was not started");
}
