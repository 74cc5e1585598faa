//! `hycod relay --config FILE` (docs/relay.md): keys from `key_file` or `key_env`, never from
//! the file itself or the command line; errors name the key path; flags override the file; a
//! key on the command line still works but is logged as a warning that does not show it.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

mod common;

use common::logged_relay::{relay_refuses, upgrade, LoggedRelay};
use common::{token_for, KEY};

/// The key of the scoped rule in these tests.
const SCOPED_KEY: &str = "U2NvcGVkS2V5Rm9yVGhlUmVsYXlDb25maWdUZXN0cyE=";

/// Writes `text` as `dir/relay.toml`; the path.
fn config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("relay.toml");
    std::fs::write(&path, text).expect("config written");
    path
}

/// Writes a key file with `mode`; the path.
fn key_file(dir: &Path, name: &str, key: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{key}\n")).expect("key written");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

/// A file serving `hc1` and `hc2` with a namespace rule `root` (key file) and a rule `scoped`
/// on `hc1` (key from `SCOPED_KEY_VAR`).
fn two_hybrid_connections(dir: &Path) -> PathBuf {
    key_file(dir, "root.key", KEY, 0o600);
    config(
        dir,
        r#"listen = "127.0.0.1:0"
workers = 1
[[hybrid_connection]]
name = "hc1"
[[hybrid_connection]]
name = "hc2"
[[rule]]
name = "root"
key_file = "root.key"
[[rule]]
name = "scoped"
key_env = "SCOPED_KEY_VAR"
rights = ["listen", "send"]
entity = "hc1"
"#,
    )
}

/// A relay started from [`two_hybrid_connections`], with `SCOPED_KEY_VAR` set.
fn two_hybrid_connections_relay(dir: &Path) -> LoggedRelay {
    let file = two_hybrid_connections(dir);
    LoggedRelay::start_with_env(
        &["--config", file.to_str().expect("utf-8")],
        &[("SCOPED_KEY_VAR", SCOPED_KEY)],
    )
}

fn listen_target(path: &str) -> String {
    format!("/$hc/{path}?sb-hc-action=listen")
}

#[test]
fn a_rule_scoped_to_one_hybrid_connection_authorises_only_that_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = two_hybrid_connections_relay(dir.path());
    let (status, _hc1) = upgrade(
        relay.addr(),
        &listen_target("hc1"),
        &token_for("scoped", SCOPED_KEY, "hc1"),
    );
    assert_eq!(
        status, 101,
        "the scoped rule's token listens on its own entity"
    );
    let (status, _) = upgrade(
        relay.addr(),
        &listen_target("hc2"),
        &token_for("scoped", SCOPED_KEY, "hc2"),
    );
    assert_eq!(status, 401, "the scoped rule is unknown on another entity");
    let (status, _hc2) = upgrade(
        relay.addr(),
        &listen_target("hc2"),
        &token_for("root", KEY, "hc2"),
    );
    assert_eq!(status, 101, "the namespace rule from key_file covers hc2");
}

#[test]
fn keys_from_the_file_are_not_on_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let relay = two_hybrid_connections_relay(dir.path());
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", relay.pid())).expect("cmdline");
    let cmdline = String::from_utf8_lossy(&cmdline);
    assert!(cmdline.contains("relay.toml"), "{cmdline}");
    for key in [KEY, SCOPED_KEY] {
        assert!(
            !cmdline.contains(key),
            "a key in /proc/PID/cmdline: {cmdline}"
        );
    }
    let log = relay.lines().join("\n");
    assert!(
        !log.contains("command line"),
        "no warning without a command-line key: {log}"
    );
}

#[test]
fn a_flag_overrides_the_files_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = two_hybrid_connections(dir.path());
    std::fs::write(
        &file,
        std::fs::read_to_string(&file)
            .expect("config")
            .replace("127.0.0.1:0", "127.0.0.2:0"),
    )
    .expect("rewritten");
    let path = file.to_str().expect("utf-8");
    let env = [("SCOPED_KEY_VAR", SCOPED_KEY)];
    let from_file = LoggedRelay::start_with_env(&["--config", path], &env);
    assert!(
        from_file.url.starts_with("ws://127.0.0.2:"),
        "{}",
        from_file.url
    );
    let flagged = LoggedRelay::start_with_env(&["--config", path, "--listen", "127.0.0.1:0"], &env);
    assert!(
        flagged.url.starts_with("ws://127.0.0.1:"),
        "{}",
        flagged.url
    );
    let (status, _listener) = upgrade(
        flagged.addr(),
        &listen_target("hc1"),
        &token_for("root", KEY, "hc1"),
    );
    assert_eq!(status, 101, "the file's rules still apply");
}

/// The relay refuses `text` with exit code 2 and `expected` in its error.
fn refused_with(dir: &Path, text: &str, expected: &str) -> String {
    let file = config(dir, text);
    let refused = relay_refuses(&["--config", file.to_str().expect("utf-8")], &[]);
    assert_eq!(refused.code, Some(2), "{}", refused.stderr);
    assert!(
        refused.stderr.contains(expected),
        "expected {expected:?} in:\n{}",
        refused.stderr
    );
    for key in [KEY, SCOPED_KEY] {
        assert!(!refused.stderr.contains(key), "{}", refused.stderr);
    }
    refused.stderr
}

const HEAD: &str = "listen = \"127.0.0.1:0\"\n[[hybrid_connection]]\nname = \"hc1\"\n";

#[test]
fn an_unknown_key_is_refused_with_its_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    key_file(dir.path(), "root.key", KEY, 0o600);
    refused_with(
        dir.path(),
        &format!("{HEAD}[[rule]]\nname = \"root\"\nkey_file = \"root.key\"\nrihgts = [\"send\"]\n"),
        "rule[0].rihgts: unknown key \"rihgts\" in rule[0]",
    );
    // An inline key is an unknown key too, and its value is not echoed.
    refused_with(
        dir.path(),
        &format!("{HEAD}[[rule]]\nname = \"root\"\nkey = \"{KEY}\"\n"),
        "rule[0].key: unknown key \"key\"",
    );
    refused_with(
        dir.path(),
        &format!("lisen = \"x\"\n{HEAD}"),
        "lisen: unknown key",
    );
}

#[test]
fn a_missing_key_file_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stderr = refused_with(
        dir.path(),
        &format!("{HEAD}[[rule]]\nname = \"root\"\nkey_file = \"absent.key\"\n"),
        "rule[0].key_file: cannot read ",
    );
    assert!(stderr.contains("absent.key"), "{stderr}");
}

#[test]
fn key_file_and_key_env_together_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    key_file(dir.path(), "root.key", KEY, 0o600);
    refused_with(
        dir.path(),
        &format!("{HEAD}[[rule]]\nname = \"root\"\nkey_file = \"root.key\"\nkey_env = \"K\"\n"),
        "rule[0]: give only one of key_file or key_env, found both",
    );
    refused_with(
        dir.path(),
        &format!("{HEAD}[[rule]]\nname = \"root\"\n"),
        "rule[0]: one of key_file or key_env is required",
    );
    refused_with(
        dir.path(),
        &format!("{HEAD}[[rule]]\nname = \"root\"\nkey_env = \"HYCOD_TEST_UNSET_VARIABLE\"\n"),
        "rule[0].key_env: the environment variable HYCOD_TEST_UNSET_VARIABLE is not set",
    );
}

#[test]
fn a_key_file_other_users_may_read_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!("{HEAD}[[rule]]\nname = \"root\"\nkey_file = \"root.key\"\n");
    for mode in [0o644, 0o604, 0o660] {
        key_file(dir.path(), "root.key", KEY, mode);
        refused_with(
            dir.path(),
            &text,
            &format!(
                "rule[0].key_file: {}/root.key is open to other users (mode {mode:04o})",
                dir.path().display()
            ),
        );
    }
    key_file(dir.path(), "root.key", KEY, 0o640);
    let file = config(dir.path(), &text);
    LoggedRelay::start(&["--config", file.to_str().expect("utf-8")]);
}

#[test]
fn a_rule_scoped_to_an_unknown_hybrid_connection_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    key_file(dir.path(), "root.key", KEY, 0o600);
    refused_with(
        dir.path(),
        &format!("{HEAD}[[rule]]\nname = \"root\"\nkey_file = \"root.key\"\nentity = \"hc9\"\n"),
        "rule[0].entity: \"hc9\" is not a configured hybrid connection",
    );
}

#[test]
fn a_key_on_the_command_line_is_logged_as_a_warning_without_the_key() {
    let relay = LoggedRelay::start(&[
        "--listen",
        "127.0.0.1:0",
        "--hybrid-connection",
        "hc1",
        "--rule",
        &format!("root={KEY}"),
        "--entity-rule",
        &format!("hc1:scoped={SCOPED_KEY}:listen"),
        "--log-level",
        "warn",
    ]);
    for rule in ["root", "scoped"] {
        let line = relay.wait_line(&format!("the warning for {rule}"), |l| {
            l.contains("WARN")
                && l.contains("a shared access key was given on the command line")
                && l.contains(&format!("rule={rule}"))
        });
        assert!(!line.contains(KEY) && !line.contains(SCOPED_KEY), "{line}");
    }
    let (status, _listener) = upgrade(
        relay.addr(),
        &listen_target("hc1"),
        &token_for("scoped", SCOPED_KEY, "hc1"),
    );
    assert_eq!(status, 101, "a command-line key still works");
    let log = relay.lines();
    assert!(
        !log.iter().any(|l| l.contains("INFO")),
        "--log-level warn leaves out info lines: {log:?}"
    );
    assert!(!log.join("\n").contains(KEY), "{log:?}");
}

#[test]
fn requires_client_authorization_is_a_boolean_and_anonymous_entities_are_logged() {
    let dir = tempfile::tempdir().expect("tempdir");
    key_file(dir.path(), "root.key", KEY, 0o600);
    let rule = "[[rule]]\nname = \"root\"\nkey_file = \"root.key\"\n";
    refused_with(
        dir.path(),
        &format!("{HEAD}requires_client_authorization = \"no\"\n{rule}"),
        "hybrid_connection[0].requires_client_authorization: invalid type: string, expected a boolean",
    );
    let file = config(
        dir.path(),
        &format!("{HEAD}requires_client_authorization = false\n{rule}"),
    );
    let relay = LoggedRelay::start(&["--config", file.to_str().expect("utf-8")]);
    relay.wait_line("the anonymous entity's log line", |l| {
        l.contains("senders need no token here") && l.contains("hybrid_connection=hc1")
    });
}

#[test]
fn self_signed_needs_a_host_name_and_excludes_tls_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    key_file(dir.path(), "root.key", KEY, 0o600);
    let rule = "[[rule]]\nname = \"root\"\nkey_file = \"root.key\"\n";
    refused_with(
        dir.path(),
        &format!("self_signed = \"../etc\"\n{HEAD}{rule}"),
        "self_signed: \"../etc\" is not a DNS host name",
    );
    refused_with(
        dir.path(),
        &format!(
            "self_signed = \"relay.test\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n{HEAD}{rule}"
        ),
        "self_signed: give either self_signed or tls_cert and tls_key, not both",
    );
}
