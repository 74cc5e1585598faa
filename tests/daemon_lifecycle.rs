//! `hycod run` as an operator runs it (architecture §3 "Lifecycle", docs/operations.md):
//! a real daemon process against a real relay process, steered with signals, observed through
//! its `NOTIFY_SOCKET` datagrams, its JSON log lines, its admin endpoint and the relay's
//! `/$status`. Reload and drain times are printed (`--nocapture`) for docs/operations.md.

mod common;

use std::time::{Duration, Instant};

use common::processes::{
    config_text, eventually, http_get, hybrid_connection, relayed_get, tcp_echo, DaemonProcess,
    GatedUpstream, NotifySocket, Progress, RelayProcess, Streamer, KEY, KEY2, PATIENCE,
};

fn millis(d: Duration) -> u128 {
    d.as_millis()
}

#[test]
fn systemd_sees_ready_status_watchdog_reload_and_stopping() {
    let relay = RelayProcess::start(&["hyco"]);
    let echo = tcp_echo();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut notify = NotifySocket::bind(dir.path());
    let text = config_text(
        "5s",
        &[hybrid_connection("first", "hyco", &relay.url, echo)],
    );
    let mut daemon = DaemonProcess::start(
        dir.path(),
        &text,
        Some(&notify.path),
        &[("WATCHDOG_USEC", "300000")],
    );

    // Ready as /readyz defines it: one listener online per hybrid connection.
    let ready = notify.wait_line("READY=1");
    assert!(
        ready
            .lines()
            .any(|l| l.starts_with("STATUS=") && l != "STATUS=0/2 listeners online"),
        "READY=1 comes with the status: {ready:?}"
    );
    if !ready.lines().any(|l| l == "STATUS=2/2 listeners online") {
        notify.wait_line("STATUS=2/2 listeners online");
    }
    assert_eq!(relay.listener_count("hyco"), 2);
    notify.wait_line("WATCHDOG=1");
    notify.wait_line("WATCHDOG=1");

    let sighup = Instant::now();
    daemon.signal("HUP");
    let reloading = notify.wait_line("RELOADING=1");
    let stamp: u64 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .expect("MONOTONIC_USEC with RELOADING=1")
        .parse()
        .expect("a number");
    let now = hycod::runtime::systemd::monotonic_usec();
    assert!(
        stamp <= now && now - stamp < 30_000_000,
        "CLOCK_MONOTONIC µs: {stamp} vs {now}"
    );
    notify.wait_line("READY=1");
    println!(
        "reload with nothing to change: SIGHUP → READY=1 {} ms",
        millis(sighup.elapsed())
    );

    let sigterm = Instant::now();
    daemon.signal("TERM");
    notify.wait_line("STOPPING=1");
    let status = daemon.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(0), "logs:\n{}", daemon.logs_text());
    println!(
        "drain with nothing in flight: SIGTERM → exit {} ms",
        millis(sigterm.elapsed())
    );
}

#[test]
fn a_hybrid_connection_added_and_removed_by_sighup_leaves_a_running_stream_intact() {
    let relay = RelayProcess::start(&["hyco", "hyco2"]);
    let echo = tcp_echo();
    let dir = tempfile::tempdir().expect("tempdir");
    let first = hybrid_connection("first", "hyco", &relay.url, echo);
    let second = hybrid_connection("second", "hyco2", &relay.url, echo);
    let mut notify = NotifySocket::bind(dir.path());
    let mut daemon = DaemonProcess::start(
        dir.path(),
        &config_text("10s", std::slice::from_ref(&first)),
        Some(&notify.path),
        &[],
    );
    notify.wait_line("READY=1");
    let streamer = Streamer::start(&relay.url, "hyco");
    streamer.keeps_flowing(3);

    // Add "second": it comes online while the stream on "first" keeps flowing.
    daemon.rewrite_config(&config_text("10s", &[first.clone(), second.clone()]));
    let sighup = Instant::now();
    daemon.signal("HUP");
    daemon.wait_listener_online("second");
    let online = sighup.elapsed();
    daemon.wait_listener_online("second");
    let both_online = sighup.elapsed();
    let reloaded = daemon.wait_log("the reload", |l| l["message"] == "configuration reloaded");
    assert_eq!(reloaded["added"], "[\"second\"]");
    assert_eq!(relay.listener_count("hyco2"), 2, "registered at the relay");
    assert_eq!(relay.listener_count("hyco"), 2, "first untouched");
    streamer.keeps_flowing(5);
    println!(
        "reload (SIGHUP → first new listener online): {} ms, both: {} ms",
        millis(online),
        millis(both_online)
    );

    // Remove "first": its listeners leave the relay; its stream drains untouched.
    daemon.rewrite_config(&config_text("10s", std::slice::from_ref(&second)));
    daemon.signal("HUP");
    let reloaded = daemon.wait_log("the second reload", |l| {
        l["message"] == "configuration reloaded"
    });
    assert_eq!(reloaded["removed"], "[\"first\"]");
    assert!(
        eventually(PATIENCE, || relay.listener_count("hyco") == 0),
        "first's listeners left the relay"
    );
    assert_eq!(relay.listener_count("hyco2"), 2);
    let (status, body) = http_get(&daemon.admin, "/readyz");
    assert_eq!(
        (status, body.as_str()),
        (200, "second 2/2 listeners online\n")
    );
    streamer.keeps_flowing(5);
    match streamer.finish() {
        Progress::Finished {
            sent,
            verified,
            clean,
        } => {
            assert!(clean, "the stream closed cleanly end to end");
            assert_eq!(sent, verified, "every byte came back");
            assert!(sent > 0);
        }
        other => panic!("{other:?}"),
    }
    notify.wait_line("RELOADING=1");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(PATIENCE).code(), Some(0));
}

#[test]
fn a_broken_config_on_sighup_is_rejected_logged_and_counted() {
    let relay = RelayProcess::start(&["hyco"]);
    let echo = tcp_echo();
    let dir = tempfile::tempdir().expect("tempdir");
    let good = config_text(
        "5s",
        &[hybrid_connection("first", "hyco", &relay.url, echo)],
    );
    let mut daemon = DaemonProcess::start(dir.path(), &good, None, &[]);
    daemon.wait_listener_online("first");
    daemon.wait_listener_online("first");
    assert_eq!(daemon.metric("hycod_reload_failures_total"), Some(0.0));

    daemon.rewrite_config(&good.replace(&format!("tcp://127.0.0.1:{echo}"), "db01"));
    daemon.signal("HUP");
    let error = daemon.wait_log("the rejected reload", |l| l["level"] == "ERROR");
    assert_eq!(
        error["message"],
        "configuration reload rejected; the running configuration stays in effect"
    );
    assert_eq!(error["key"], "hybrid_connection[0].target");
    assert!(
        error["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("hybrid_connection[0].target: expected tcp://host:port")),
        "{error}"
    );
    assert_eq!(daemon.metric("hycod_reload_failures_total"), Some(1.0));
    assert_eq!(daemon.metric("hycod_reloads_total"), Some(0.0));
    assert_eq!(
        relay.listener_count("hyco"),
        2,
        "old listeners still online"
    );
    assert_eq!(http_get(&daemon.admin, "/readyz").0, 200);

    // Fixed: the next reload applies (and leaves the unchanged hybrid connection alone).
    daemon.rewrite_config(&good);
    daemon.signal("HUP");
    let reloaded = daemon.wait_log("the good reload", |l| {
        l["message"] == "configuration reloaded"
    });
    assert_eq!(reloaded["unchanged"], 1);
    assert_eq!(daemon.metric("hycod_reloads_total"), Some(1.0));
    assert_eq!(relay.listener_count("hyco"), 2);
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(PATIENCE).code(), Some(0));
}

#[test]
fn sigterm_lets_the_stream_in_flight_finish_then_exits_0() {
    let relay = RelayProcess::start(&["hyco"]);
    let echo = tcp_echo();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut notify = NotifySocket::bind(dir.path());
    let text = config_text(
        "20s",
        &[hybrid_connection("first", "hyco", &relay.url, echo)],
    );
    let mut daemon = DaemonProcess::start(dir.path(), &text, Some(&notify.path), &[]);
    notify.wait_line("READY=1");
    let streamer = Streamer::start(&relay.url, "hyco");
    streamer.keeps_flowing(3);

    let sigterm = Instant::now();
    daemon.signal("TERM");
    notify.wait_line("STOPPING=1");
    let draining = daemon.wait_log("the drain", |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("draining"))
    });
    assert_eq!(draining["in_flight"], 1, "{draining}");
    assert!(
        eventually(PATIENCE, || relay.listener_count("hyco") == 0),
        "no new work: the listeners left the relay"
    );
    notify.wait_line("STATUS=draining: 0/2 listeners online");
    streamer.keeps_flowing(10);
    let closed = Instant::now();
    match streamer.finish() {
        Progress::Finished {
            sent,
            verified,
            clean,
        } => {
            assert!(clean);
            assert_eq!(sent, verified);
        }
        other => panic!("{other:?}"),
    }
    let status = daemon.wait_exit(PATIENCE);
    let exited = Instant::now();
    assert_eq!(status.code(), Some(0), "logs:\n{}", daemon.logs_text());
    assert!(
        exited - sigterm < Duration::from_secs(20),
        "within the grace"
    );
    println!(
        "drain: SIGTERM → exit {} ms; last stream closed → exit {} ms",
        millis(exited - sigterm),
        millis(exited - closed)
    );
}

#[test]
fn sigterm_with_an_endless_stream_exits_0_when_the_grace_ends() {
    let relay = RelayProcess::start(&["hyco"]);
    let echo = tcp_echo();
    let dir = tempfile::tempdir().expect("tempdir");
    let text = config_text(
        "1s",
        &[hybrid_connection("first", "hyco", &relay.url, echo)],
    );
    let mut daemon = DaemonProcess::start(dir.path(), &text, None, &[]);
    daemon.wait_listener_online("first");
    daemon.wait_listener_online("first");
    let streamer = Streamer::start(&relay.url, "hyco");
    streamer.keeps_flowing(3);
    let sigterm = Instant::now();
    daemon.signal("TERM");
    let status = daemon.wait_exit(PATIENCE);
    let took = sigterm.elapsed();
    assert_eq!(status.code(), Some(0), "logs:\n{}", daemon.logs_text());
    assert!(
        took >= Duration::from_secs(1),
        "the stream had the whole grace: {took:?}"
    );
    assert!(
        took < Duration::from_secs(6),
        "ended at the grace: {took:?}"
    );
    match streamer.wait_end(PATIENCE) {
        Progress::Finished { clean, .. } => assert!(!clean, "the stream was cut"),
        other => panic!("{other:?}"),
    }
    println!("grace 1 s: SIGTERM → exit {} ms", millis(took));
}

#[test]
fn a_second_sigterm_exits_at_once() {
    let relay = RelayProcess::start(&["hyco"]);
    let echo = tcp_echo();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut notify = NotifySocket::bind(dir.path());
    let text = config_text(
        "60s",
        &[hybrid_connection("first", "hyco", &relay.url, echo)],
    );
    let mut daemon = DaemonProcess::start(dir.path(), &text, Some(&notify.path), &[]);
    notify.wait_line("READY=1");
    let streamer = Streamer::start(&relay.url, "hyco");
    streamer.keeps_flowing(2);
    daemon.signal("TERM");
    notify.wait_line("STOPPING=1");
    let second = Instant::now();
    daemon.signal("TERM");
    let status = daemon.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(143), "128 + SIGTERM");
    assert!(second.elapsed() < Duration::from_secs(5));
    drop(streamer);
}

#[test]
fn a_rotated_key_file_replaces_the_listeners_without_touching_the_stream() {
    let relay = RelayProcess::start_with_rules(&["hyco"], &[&format!("rotated={KEY2}")]);
    let echo = tcp_echo();
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("sap.conn");
    std::fs::write(
        &key_file,
        format!("Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey={KEY};EntityPath=hyco\n"),
    )
    .expect("key file");
    let hc = format!(
        "[[hybrid_connection]]\nname = \"first\"\nconnection_string_file = \"sap.conn\"\nrelay_url = \"{}\"\ntarget = \"tcp://127.0.0.1:{echo}\"\nlisteners = 2\n",
        relay.url
    );
    let mut notify = NotifySocket::bind(dir.path());
    let mut daemon = DaemonProcess::start(
        dir.path(),
        &config_text("10s", &[hc]),
        Some(&notify.path),
        &[],
    );
    notify.wait_line("READY=1");
    let streamer = Streamer::start(&relay.url, "hyco");
    streamer.keeps_flowing(3);

    std::fs::write(
        &key_file,
        format!("Endpoint=sb://localhost/;SharedAccessKeyName=rotated;SharedAccessKey={KEY2};EntityPath=hyco\n"),
    )
    .expect("rotated key file");
    let sighup = Instant::now();
    daemon.signal("HUP");
    let reloaded = daemon.wait_log("the reload", |l| l["message"] == "configuration reloaded");
    let took = sighup.elapsed();
    assert_eq!(reloaded["changed"], "[\"first\"]");
    notify.wait_line("READY=1");
    assert!(
        eventually(PATIENCE, || relay.listener_count("hyco") == 2),
        "the old listeners left, the new ones stayed"
    );
    assert_eq!(
        http_get(&daemon.admin, "/readyz").1,
        "first 2/2 listeners online\n"
    );
    streamer.keeps_flowing(5);
    match streamer.finish() {
        Progress::Finished {
            sent,
            verified,
            clean,
        } => {
            assert!(clean);
            assert_eq!(sent, verified);
        }
        other => panic!("{other:?}"),
    }
    println!(
        "key rotation (SIGHUP → new listeners online, old stopped): {} ms",
        millis(took)
    );
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(PATIENCE).code(), Some(0));
}

#[test]
fn sigterm_detaches_at_once_and_answers_the_request_in_flight_through_its_rendezvous() {
    let relay = RelayProcess::start(&["hyco"]);
    let upstream = GatedUpstream::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let hc = format!(
        "[[hybrid_connection]]\nname = \"web\"\nconnection_string = \"Endpoint=sb://localhost/;SharedAccessKeyName=root;SharedAccessKey={KEY};EntityPath=hyco\"\nrelay_url = \"{}\"\nhttp_target = \"http://127.0.0.1:{}/\"\nlisteners = 2\n",
        relay.url, upstream.port
    );
    let mut notify = NotifySocket::bind(dir.path());
    let mut daemon = DaemonProcess::start(
        dir.path(),
        &config_text("20s", &[hc]),
        Some(&notify.path),
        &[],
    );
    notify.wait_line("READY=1");
    let held = relayed_get(&relay.url, "hyco", "slow");
    let first_line = upstream
        .arrived
        .recv_timeout(PATIENCE)
        .expect("the request arrived");
    assert_eq!(first_line, "GET /slow HTTP/1.1");

    let sigterm = Instant::now();
    daemon.signal("TERM");
    notify.wait_line("STOPPING=1");
    assert!(
        eventually(PATIENCE, || relay.listener_count("hyco") == 0),
        "both listeners detach at once, the busy one too"
    );
    // No listener is left: the relay answers a new request itself, nothing reaches the target.
    let late = relayed_get(&relay.url, "hyco", "late")
        .recv_timeout(PATIENCE)
        .expect("an answer");
    assert!(late.starts_with("HTTP/1.1 502"), "{late}");
    assert!(
        upstream.arrived.try_recv().is_err(),
        "the late request never went upstream"
    );

    upstream.release_one();
    let released = Instant::now();
    let answer = held
        .recv_timeout(PATIENCE)
        .expect("the held request's answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("done"), "{answer}");
    let status = daemon.wait_exit(PATIENCE);
    println!(
        "drain with a request in flight: upstream answered → exit {} ms",
        millis(released.elapsed())
    );
    assert_eq!(status.code(), Some(0), "logs:\n{}", daemon.logs_text());
    assert!(
        sigterm.elapsed() < Duration::from_secs(20),
        "within the grace"
    );
}
