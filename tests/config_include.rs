//! Drop-in registrations (`include = ["conf.d/*.toml"]`, docs/configuration.md "include"):
//! `hycod check` on files in a scratch directory — merge order, the file each registration
//! came from, and every rejection naming the file and key — and a real daemon against a real
//! relay picking up a drop-in added, changed and removed under SIGHUP.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::processes::{
    config_text, eventually, forward, http_get, hybrid_connection, tcp_echo, DaemonProcess,
    RelayProcess, KEY, PATIENCE,
};

fn hc(name: &str) -> String {
    format!(
        "[[hybrid_connection]]\nname = \"{name}\"\nconnection_string = \"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=listen;SharedAccessKey={KEY};EntityPath={name}\"\ntarget = \"tcp://127.0.0.1:3300\"\n"
    )
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("directory");
    std::fs::write(path, text).expect("file written");
}

/// `hycod check --config DIR/hycod.toml`, run from another directory so that relative includes
/// can only resolve against the main file.
fn check(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hycod"))
        .args(["check", "--config"])
        .arg(dir.join("hycod.toml"))
        .current_dir(std::env::temp_dir())
        .output()
        .expect("hycod runs")
}

fn rejected(dir: &Path) -> String {
    let output = check(dir);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(output.stdout.is_empty());
    assert!(!stderr.contains(KEY), "the key leaked: {stderr}");
    stderr
}

#[test]
fn check_merges_drop_ins_in_sorted_order_and_shows_each_registrations_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(
        &root.join("hycod.toml"),
        &format!("include = [\"conf.d/*.toml\"]\n{}", hc("main-hc")),
    );
    write(&root.join("conf.d/20-b.toml"), &hc("from-b"));
    write(
        &root.join("conf.d/10-a.toml"),
        &format!(
            "{}\n[[forward]]\nname = \"fwd-a\"\nlisten = \"127.0.0.1:0\"\nconnection_string = \"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={KEY};EntityPath=x\"\n",
            hc("from-a")
        ),
    );
    write(&root.join("conf.d/ignored.conf"), "not toml at all [");
    let output = check(root);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let main = root.join("hycod.toml");
    let a = root.join("conf.d/10-a.toml");
    let b = root.join("conf.d/20-b.toml");
    let position = |needle: String| {
        stdout
            .find(&needle)
            .unwrap_or_else(|| panic!("{needle:?} missing from:\n{stdout}"))
    };
    let sections = [
        position(format!(
            "# from {}\n[[hybrid_connection]]\nname = \"main-hc\"",
            main.display()
        )),
        position(format!(
            "# from {}\n[[hybrid_connection]]\nname = \"from-a\"",
            a.display()
        )),
        position(format!(
            "# from {}\n[[hybrid_connection]]\nname = \"from-b\"",
            b.display()
        )),
        position(format!(
            "# from {}\n[[forward]]\nname = \"fwd-a\"",
            a.display()
        )),
    ];
    assert!(sections.windows(2).all(|w| w[0] < w[1]), "{stdout}");
    assert!(!stdout.contains(KEY));
}

#[test]
fn a_drop_in_may_hold_only_hybrid_connections_and_forwards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(
        &root.join("hycod.toml"),
        &format!("include = [\"conf.d/*.toml\"]\n{}", hc("main-hc")),
    );
    let drop_in = root.join("conf.d/extra.toml");
    write(&drop_in, &format!("{}\n[runtime]\nworkers = 2\n", hc("x")));
    let stderr = rejected(root);
    assert_eq!(
        stderr,
        format!(
            "error: {}: runtime: not allowed in an included file, which holds only [[hybrid_connection]] and [[forward]] sections\n",
            drop_in.display()
        )
    );
    write(&drop_in, "include = [\"more/*.toml\"]\n");
    let stderr = rejected(root);
    assert!(
        stderr.starts_with(&format!(
            "error: {}: include: not allowed",
            drop_in.display()
        )),
        "{stderr}"
    );
}

#[test]
fn a_name_defined_twice_names_both_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(
        &root.join("hycod.toml"),
        &format!("include = [\"conf.d/*.toml\"]\n{}", hc("sap")),
    );
    let a = root.join("conf.d/a.toml");
    let b = root.join("conf.d/b.toml");
    write(&a, &format!("{}{}", hc("other"), hc("sap")));
    let stderr = rejected(root);
    assert_eq!(
        stderr,
        format!(
            "error: {}: hybrid_connection[1].name: the name \"sap\" is already used by hybrid_connection[0] in {}\n",
            a.display(),
            root.join("hycod.toml").display()
        )
    );
    write(&a, &hc("other"));
    write(&b, &hc("other"));
    let stderr = rejected(root);
    assert_eq!(
        stderr,
        format!(
            "error: {}: hybrid_connection[0].name: the name \"other\" is already used by hybrid_connection[0] in {}\n",
            b.display(),
            a.display()
        )
    );
}

#[test]
fn errors_inside_a_drop_in_name_the_file_and_the_key_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(
        &root.join("hycod.toml"),
        &format!("include = [\"conf.d/*.toml\"]\n{}", hc("sap")),
    );
    let drop_in = root.join("conf.d/web.toml");
    let file = drop_in.display().to_string();

    write(&drop_in, &hc("web").replace("tcp://127.0.0.1:3300", "db01"));
    let stderr = rejected(root);
    assert!(
        stderr.starts_with(&format!(
            "error: {file}: hybrid_connection[0].target: expected tcp://host:port, got \"db01\""
        )),
        "{stderr}"
    );

    write(&drop_in, &format!("{}tagret = \"x\"\n", hc("web")));
    let stderr = rejected(root);
    assert!(
        stderr.starts_with(&format!(
            "error: {file}: hybrid_connection[0].tagret: unknown key \"tagret\""
        )),
        "{stderr}"
    );

    write(&drop_in, "[[hybrid_connection]\nname = \"web\"\n");
    let stderr = rejected(root);
    assert!(
        stderr.starts_with(&format!("error: {file}: "))
            && stderr.contains("invalid TOML at line 1"),
        "{stderr}"
    );

    let unreadable = root.join("conf.d/dir.toml");
    std::fs::remove_file(&drop_in).expect("removed");
    std::fs::create_dir(&unreadable).expect("a directory named like a drop-in");
    let stderr = rejected(root);
    assert!(
        stderr.starts_with(&format!(
            "error: {}: cannot read the configuration file:",
            unreadable.display()
        )),
        "{stderr}"
    );
}

#[test]
fn include_patterns_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(
        &root.join("hycod.toml"),
        &format!(
            "include = [\"conf.d/*.toml\", \"conf.d/[.toml\"]\n{}",
            hc("sap")
        ),
    );
    let stderr = rejected(root);
    assert!(
        stderr.starts_with("error: include[1]: invalid pattern \"conf.d/[.toml\""),
        "{stderr}"
    );
    // A file named without a wildcard must exist; a pattern may match nothing.
    write(
        &root.join("hycod.toml"),
        &format!("include = [\"conf.d/*.toml\", \"sap.toml\"]\n{}", hc("sap")),
    );
    let stderr = rejected(root);
    assert!(
        stderr.starts_with(&format!(
            "error: {}: cannot read the configuration file:",
            root.join("sap.toml").display()
        )),
        "{stderr}"
    );
    // Only registrations in drop-ins count as something to serve.
    write(&root.join("hycod.toml"), "include = [\"conf.d/*.toml\"]\n");
    let stderr = rejected(root);
    assert!(
        stderr.contains("at least one [[hybrid_connection]] or [[forward]] is required"),
        "{stderr}"
    );
    write(&root.join("conf.d/sap.toml"), &hc("sap"));
    let output = check(root);
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn a_drop_in_added_changed_and_removed_under_sighup_takes_effect_like_an_edit() {
    let relay = RelayProcess::start(&["hyco", "hyco2"]);
    let echo = tcp_echo();
    let dir = tempfile::tempdir().expect("tempdir");
    let main_text = format!(
        "include = [\"conf.d/*.toml\"]\n{}",
        config_text(
            "5s",
            &[hybrid_connection("first", "hyco", &relay.url, echo)]
        )
    );
    let mut daemon = DaemonProcess::start(dir.path(), &main_text, None, &[]);
    daemon.wait_listener_online("first");
    assert!(eventually(PATIENCE, || relay.listener_count("hyco") == 2));
    let drop_in = dir.path().join("conf.d/second.toml");

    // Added: "second" comes online at the relay.
    write(
        &drop_in,
        &hybrid_connection("second", "hyco2", &relay.url, echo),
    );
    daemon.signal("HUP");
    let reloaded = daemon.wait_log("the reload", |l| l["message"] == "configuration reloaded");
    assert_eq!(reloaded["added"], "[\"second\"]");
    assert!(eventually(PATIENCE, || relay.listener_count("hyco2") == 2));
    // The relay counts a listener when it accepts it, /readyz when the daemon has seen that.
    let ready = || {
        let (status, body) = http_get(&daemon.admin, "/readyz");
        status == 200 && body.contains("second 2/2 listeners online")
    };
    assert!(
        eventually(PATIENCE, ready),
        "{:?}",
        http_get(&daemon.admin, "/readyz")
    );

    // Changed: three listeners instead of two.
    write(
        &drop_in,
        &hybrid_connection("second", "hyco2", &relay.url, echo)
            .replace("listeners = 2", "listeners = 3"),
    );
    daemon.signal("HUP");
    let reloaded = daemon.wait_log("the second reload", |l| {
        l["message"] == "configuration reloaded"
    });
    assert_eq!(reloaded["changed"], "[\"second\"]");
    assert!(eventually(PATIENCE, || relay.listener_count("hyco2") == 3));

    // A broken drop-in is rejected whole, naming its file; "second" keeps running.
    write(
        &dir.path().join("conf.d/broken.toml"),
        "[runtime]\nworkers = 1\n",
    );
    daemon.signal("HUP");
    let rejected = daemon.wait_log("the rejected reload", |l| {
        l["message"] == "configuration reload rejected; the running configuration stays in effect"
    });
    let shown = rejected["error"].as_str().expect("error text");
    assert!(
        shown.contains("conf.d/broken.toml: runtime: not allowed"),
        "{rejected}"
    );
    assert_eq!(relay.listener_count("hyco2"), 3);
    std::fs::remove_file(dir.path().join("conf.d/broken.toml")).expect("removed");

    // Removed: its listeners leave the relay, "first" is untouched.
    std::fs::remove_file(&drop_in).expect("removed");
    daemon.signal("HUP");
    let reloaded = daemon.wait_log("the third reload", |l| {
        l["message"] == "configuration reloaded"
    });
    assert_eq!(reloaded["removed"], "[\"second\"]");
    assert_eq!(reloaded["unchanged"], 1);
    assert!(eventually(PATIENCE, || relay.listener_count("hyco2") == 0));
    assert_eq!(relay.listener_count("hyco"), 2);
    let only_first = || http_get(&daemon.admin, "/readyz").1 == "first 2/2 listeners online\n";
    assert!(
        eventually(PATIENCE, only_first),
        "{:?}",
        http_get(&daemon.admin, "/readyz")
    );

    // A forward arrives the same way.
    write(
        &dir.path().join("conf.d/tunnel.toml"),
        &forward("tunnel", "hyco", &relay.url),
    );
    daemon.signal("HUP");
    let reloaded = daemon.wait_log("the fourth reload", |l| {
        l["message"] == "configuration reloaded"
    });
    assert_eq!(reloaded["forwards_added"], "[\"tunnel\"]");
    daemon.wait_forward_listening("tunnel");

    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(PATIENCE).code(), Some(0));
}
