//! The `hycod` binary end to end: `check` and `token` exit codes, output, and that no secret
//! ever reaches stdout or stderr.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hycod::auth::sas;
use hycod::secret::Secret;
use ring::hmac;

/// The made-up key of protocol §3.6, standing in for a real one.
const KEY: &str = "Kx5vX0c1Hk8xZy9uVmJ3Y2RlZmdoaWprbG1ub3BxcnM=";
/// The fake key in `examples/hycod.toml`.
const EXAMPLE_KEY: &str = "FAKE0KEY0FOR0THE0EXAMPLE0ONLY0REPLACE0ME000=";
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hycod.toml");

fn hycod(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hycod"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("hycod runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn connection_string(entity_path: Option<&str>) -> String {
    let mut text = format!(
        "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={KEY}"
    );
    if let Some(entity_path) = entity_path {
        text.push_str(&format!(";EntityPath={entity_path}"));
    }
    text
}

fn hybrid_connection(name: &str, target: &str) -> String {
    format!(
        "[[hybrid_connection]]\nname = \"{name}\"\nconnection_string = \"{}\"\ntarget = \"{target}\"\n",
        connection_string(Some(name))
    )
}

/// Runs `hycod check` on `text` written to a temporary file.
fn check_text(text: &str) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hycod.toml");
    std::fs::write(&path, text).expect("write config");
    check_file(&path)
}

fn check_file(path: &Path) -> Output {
    hycod(&["check", "--config", path.to_str().expect("UTF-8 path")])
}

/// Asserts exit code 2, an error on stderr naming `path`, and no key anywhere.
fn assert_rejected(output: &Output, path: &str) -> String {
    let err = stderr(output);
    assert_eq!(output.status.code(), Some(2), "stderr: {err}");
    assert!(
        err.starts_with(&format!("error: {path}: ")),
        "stderr: {err}"
    );
    assert!(
        !err.contains(KEY) && !stdout(output).contains(KEY),
        "a key leaked: {err}"
    );
    err
}

#[test]
fn check_accepts_the_example_without_printing_its_key() {
    let output = check_file(Path::new(EXAMPLE));
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    assert!(out.contains("name = \"sap-gateway\""));
    assert!(out.contains("name = \"ecs-webservice\""));
    assert!(out.contains("SharedAccessKeyName=hycod-listen;SharedAccessKey=<redacted>"));
    assert!(out.contains("target = \"tcp://10.20.30.40:3300\""));
    assert!(out.contains("[[forward]]\nname = \"plant2-gateway\"\nlisten = \"127.0.0.1:3201\"\n"));
    assert!(out.contains(
        "SharedAccessKeyName=hycod-send;SharedAccessKey=<redacted>;EntityPath=plant2-gateway"
    ));
    assert!(!out.contains(EXAMPLE_KEY));
    assert!(!stderr(&output).contains(EXAMPLE_KEY));
}

#[test]
fn check_accepts_a_file_with_only_a_forward_and_rejects_one_with_nothing() {
    let text = format!(
        "[[forward]]\nname = \"f\"\nlisten = \"127.0.0.1:0\"\nconnection_string = \"{}\"\n",
        connection_string(Some("sap"))
    );
    let output = check_text(&text);
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    let out = stdout(&output);
    assert!(out.contains("[[forward]]\nname = \"f\"\n"), "{out}");
    assert!(!out.contains(KEY), "{out}");
    assert!(!out.contains("[[hybrid_connection]]"), "{out}");
    let err = assert_rejected(&check_text("[runtime]\nworkers = 1\n"), "hybrid_connection");
    assert!(
        err.contains("[[hybrid_connection]] or [[forward]]"),
        "{err}"
    );
}

#[test]
fn check_rejects_a_bad_forward_listen_address() {
    let text = format!(
        "[[forward]]\nname = \"f\"\nlisten = \"localhost:3300\"\nconnection_string = \"{}\"\n",
        connection_string(Some("sap"))
    );
    let err = assert_rejected(&check_text(&text), "forward[0].listen");
    assert!(err.contains("expected ip:port"), "{err}");
}

#[test]
fn check_rejects_a_typo_d_key() {
    let text = format!(
        "{}{}tagret = \"tcp://db01:3300\"\n",
        hybrid_connection("a", "tcp://10.0.0.1:1"),
        hybrid_connection("b", "tcp://10.0.0.2:2")
    );
    let err = assert_rejected(&check_text(&text), "hybrid_connection[1].tagret");
    assert!(
        err.contains("unknown key \"tagret\" in hybrid_connection[1]"),
        "{err}"
    );
}

#[test]
fn check_rejects_a_bad_target_url() {
    let text = format!(
        "{}{}",
        hybrid_connection("a", "tcp://10.0.0.1:1"),
        hybrid_connection("b", "db01")
    );
    let err = assert_rejected(&check_text(&text), "hybrid_connection[1].target");
    assert!(
        err.contains("expected tcp://host:port, got \"db01\""),
        "{err}"
    );
}

#[test]
fn check_rejects_a_malformed_connection_string() {
    let text = format!(
        "[[hybrid_connection]]\nname = \"a\"\nentity_path = \"a\"\ntarget = \"tcp://h:1\"\nconnection_string = \"Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKey={KEY}\"\n"
    );
    let err = assert_rejected(&check_text(&text), "hybrid_connection[0].connection_string");
    assert!(err.contains("no SharedAccessKeyName"), "{err}");
}

#[test]
fn check_rejects_an_unreadable_config_file() {
    let output = check_file(Path::new("/nonexistent/hycod.toml"));
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("/nonexistent/hycod.toml: cannot read the configuration file"));
}

#[test]
fn check_reads_a_connection_string_file_next_to_the_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("sap.conn"),
        connection_string(Some("sap")) + "\n",
    )
    .expect("write");
    let config = dir.path().join("hycod.toml");
    std::fs::write(
        &config,
        "[[hybrid_connection]]\nname = \"sap\"\nconnection_string_file = \"sap.conn\"\ntarget = \"tcp://h:1\"\n",
    )
    .expect("write");
    let output = check_file(&config);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    assert!(out.contains("connection_string_file = "));
    assert!(out.contains("SharedAccessKey=<redacted>;EntityPath=sap"));
    assert!(!out.contains(KEY));
}

#[test]
fn check_prints_warnings_on_stderr() {
    let text =
        hybrid_connection("a", "tcp://h:1").replace(";EntityPath=a", ";EntityPath=a;Foo=bar");
    let output = check_text(&text);
    assert_eq!(output.status.code(), Some(0));
    assert!(stderr(&output).contains(
        "warning: hybrid_connection[0].connection_string: unknown connection string key \"Foo\""
    ));
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

#[test]
fn token_prints_a_verifiable_sas_token() {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), connection_string(None) + "\n").expect("write");
    let before = now();
    let output = hycod(&[
        "token",
        "--connection-string-file",
        file.path().to_str().expect("UTF-8 path"),
        "--entity",
        "hyco",
        "--ttl",
        "10m",
    ]);
    let after = now();
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    assert_eq!(stderr(&output), "");
    let out = stdout(&output);
    let token = out.strip_suffix('\n').expect("one line");
    assert!(!token.contains('\n'));
    assert!(token.starts_with(
        "SharedAccessSignature sr=http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco%2F&sig="
    ));

    let parsed = sas::parse_token(token).expect("a well-formed token");
    assert_eq!(
        parsed.resource(),
        "http://contoso.servicebus.windows.net/hyco/"
    );
    assert_eq!(parsed.key_name(), "RootManageSharedAccessKey");
    assert!((before + 600..=after + 600).contains(&parsed.expiry()));
    let mac = BASE64
        .decode(parsed.signature().expose())
        .expect("Base64 signature");
    let key = sas::hmac_key(&Secret::new(KEY));
    assert!(hmac::verify(&key, parsed.string_to_sign().as_bytes(), &mac).is_ok());
}

#[test]
fn token_uses_the_entity_path_of_the_connection_string() {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), connection_string(Some("sap-gateway"))).expect("write");
    let output = hycod(&[
        "token",
        "--connection-string-file",
        file.path().to_str().expect("UTF-8 path"),
    ]);
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    let parsed_out = stdout(&output);
    let parsed = sas::parse_token(parsed_out.trim_end()).expect("a well-formed token");
    assert_eq!(
        parsed.resource(),
        "http://contoso.servicebus.windows.net/sap-gateway/"
    );
    let lifetime = parsed.expiry().saturating_sub(now());
    assert!(
        (3590..=3600).contains(&lifetime),
        "default ttl is 1h, got {lifetime}s"
    );
}

#[test]
fn token_rejects_a_malformed_connection_string_without_echoing_the_key() {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(
        file.path(),
        format!("SharedAccessKeyName=k;SharedAccessKey={KEY}"),
    )
    .expect("write");
    let output = hycod(&[
        "token",
        "--connection-string-file",
        file.path().to_str().expect("UTF-8 path"),
        "--entity",
        "hyco",
    ]);
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(stdout(&output), "");
    assert!(
        err.contains("--connection-string-file: connection string has no Endpoint"),
        "{err}"
    );
    assert!(!err.contains(KEY));
}

#[test]
fn token_requires_an_entity() {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(file.path(), connection_string(None)).expect("write");
    let output = hycod(&[
        "token",
        "--connection-string-file",
        file.path().to_str().expect("UTF-8 path"),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--entity: required"));
}

#[test]
fn token_rejects_a_bad_ttl() {
    let output = hycod(&["token", "--connection-string-file", "x", "--ttl", "1 hour"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--ttl"));
}

#[test]
fn help_lists_the_subcommands_with_their_purpose() {
    let output = hycod(&["--help"]);
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0));
    assert!(out.contains("Azure Relay Hybrid Connections"));
    // The help column's width follows the longest subcommand name.
    let lists = |name: &str, purpose: &str| {
        out.lines().any(|line| {
            line.trim_start()
                .strip_prefix(name)
                .is_some_and(|rest| rest.trim_start().starts_with(purpose))
        })
    };
    assert!(lists("check", "Validate a configuration file"), "{out}");
    assert!(lists("token", "Print a SAS token"), "{out}");
}

#[test]
fn version_is_the_crate_version() {
    let output = hycod(&["--version"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout(&output), format!("hycod {}\n", hycod::VERSION));
}

#[test]
fn no_subcommand_is_a_usage_error() {
    assert_eq!(hycod(&[]).status.code(), Some(2));
}
