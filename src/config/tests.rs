//! One test per configuration rule: each asserts the key path, the [`Reason`] variant and a
//! distinctive part of the message, and that no key text leaks into it.

use std::env::VarError;
use std::num::NonZeroUsize;
use std::path::Path;
use std::time::Duration;

use crate::auth::connection_string::{ConnectionStringError, Credential, EntityPathProblem};
use crate::tls::TrustRoots;

use super::duration::DurationError;
use super::*;

/// The made-up key of protocol §3.6.
const KEY: &str = "Kx5vX0c1Hk8xZy9uVmJ3Y2RlZmdoaWprbG1ub3BxcnM=";

fn connection_string(entity_path: Option<&str>) -> String {
    let mut text = format!(
        "Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={KEY}"
    );
    if let Some(entity_path) = entity_path {
        text.push_str(&format!(";EntityPath={entity_path}"));
    }
    text
}

/// One hybrid connection named `name` with an inline connection string and a TCP target,
/// followed by `extra` lines.
fn hc(name: &str, extra: &str) -> String {
    format!(
        "[[hybrid_connection]]\nname = \"{name}\"\nconnection_string = \"{}\"\ntarget = \"tcp://10.1.2.3:3300\"\n{extra}\n",
        connection_string(Some("sap-gateway"))
    )
}

/// The environment the tests see: only `HYCOD_TEST_CS` (and `HYCOD_TEST_BINARY`, not Unicode).
fn test_env(name: &str) -> Result<String, VarError> {
    match name {
        "HYCOD_TEST_CS" => Ok(format!("{}\n", connection_string(Some("from-env")))),
        "HYCOD_TEST_BINARY" => Err(VarError::NotUnicode(std::ffi::OsString::from("x"))),
        _ => Err(VarError::NotPresent),
    }
}

fn load_in(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
    Config::from_toml_str_with_env(text, base_dir, &test_env)
}

fn load(text: &str) -> Result<Config, ConfigError> {
    load_in(text, Path::new("/nonexistent-base"))
}

/// Loads `text`, expects an error at `path` whose message contains `part` and not the key.
fn error(text: &str, path: &str, part: &str) -> Reason {
    let error = match load(text) {
        Ok(_) => panic!("expected an error at {path}"),
        Err(error) => error,
    };
    let shown = error.to_string();
    assert_eq!(error.path, path, "{shown}");
    assert!(shown.contains(part), "{shown:?} lacks {part:?}");
    assert!(!shown.contains(KEY), "{shown:?} leaks the key");
    assert!(!format!("{error:?}").contains(KEY), "Debug leaks the key");
    error.reason
}

#[test]
fn minimal_config_gets_every_default() {
    let config = load(&hc("sap", "")).expect("valid");
    assert_eq!(config.runtime.workers, Workers::PerCore);
    assert_eq!(config.admin.listen, None);
    assert_eq!(config.admin.head_timeout, Duration::from_secs(10));
    assert_eq!(config.log.format, LogFormat::Text);
    assert_eq!(config.log.level, LogLevel::Info);
    assert_eq!(config.shutdown.grace, Duration::from_secs(30));
    assert!(config.warnings.is_empty());
    let hc = &config.hybrid_connections[0];
    assert_eq!(hc.name, "sap");
    assert_eq!(hc.entity_path, "sap-gateway");
    assert_eq!(hc.connection_string_source, ConnectionStringSource::Inline);
    assert_eq!(
        hc.connection_string.namespace_host(),
        "contoso.servicebus.windows.net"
    );
    assert_eq!(
        hc.target,
        Some(TcpTarget {
            host: "10.1.2.3".into(),
            port: 3300
        })
    );
    assert_eq!(hc.http_target, None);
    assert_eq!(hc.listeners, None);
    assert_eq!(hc.relay, Relay::Azure);
    assert_eq!(hc.proxy, ProxySetting::Direct);
    assert_eq!(hc.token_ttl, Duration::from_secs(3600));
    assert_eq!(hc.ping_interval, Duration::from_secs(30));
    assert_eq!(hc.request_buffer, 8 * 1024 * 1024);
}

#[test]
fn request_buffer_is_a_byte_count_and_zero_turns_buffering_off() {
    let config = load(&hc("sap", "request_buffer = 65536")).expect("valid");
    assert_eq!(config.hybrid_connections[0].request_buffer, 65536);
    let config = load(&hc("sap", "request_buffer = 0")).expect("valid");
    assert_eq!(config.hybrid_connections[0].request_buffer, 0);
    let error = load(&hc("sap", "request_buffer = \"8MiB\"")).expect_err("not a number");
    assert!(error.to_string().contains("request_buffer"), "{error}");
    let error = load(&hc("sap", "request_buffer = -1")).expect_err("negative");
    assert!(error.to_string().contains("request_buffer"), "{error}");
}

#[test]
fn default_listeners_follow_workers_up_to_25() {
    let config = load(&hc("sap", "")).expect("valid");
    let hc = &config.hybrid_connections[0];
    let n = |count| NonZeroUsize::new(count).expect("non-zero");
    assert_eq!(hc.listener_count(n(4)), n(4));
    assert_eq!(hc.listener_count(n(64)), n(25));
    let fixed = load(&hc_with_listeners(3)).expect("valid");
    assert_eq!(fixed.hybrid_connections[0].listener_count(n(64)), n(3));
}

fn hc_with_listeners(listeners: usize) -> String {
    hc("sap", &format!("listeners = {listeners}"))
}

#[test]
fn every_key_is_read() {
    let text = format!(
        "[runtime]\nworkers = 4\n[admin]\nlisten = \"127.0.0.1:9464\"\n[log]\nformat = \"json\"\nlevel = \"debug\"\n[shutdown]\ngrace = \"250ms\"\n{}",
        hc(
            "sap",
            "http_target = \"https://ecs.corp.local:8443/sap/bc\"\nlisteners = 25\nrelay_url = \"ws://127.0.0.1:9000\"\nproxy = \"http://proxy.corp:3128\"\ntoken_ttl = \"5m\"\nping_interval = \"2s\"\nentity_path = \"sap-gateway\""
        )
    );
    let config = load(&text).expect("valid");
    assert_eq!(
        config.runtime.workers,
        Workers::Fixed(NonZeroUsize::new(4).expect("non-zero"))
    );
    assert_eq!(config.runtime.workers.count().get(), 4);
    assert_eq!(
        config.admin.listen,
        Some("127.0.0.1:9464".parse().expect("addr"))
    );
    assert_eq!(config.log.format, LogFormat::Json);
    assert_eq!(config.log.level, LogLevel::Debug);
    assert_eq!(config.shutdown.grace, Duration::from_millis(250));
    let hc = &config.hybrid_connections[0];
    let http = hc.http_target.as_ref().expect("http_target");
    assert_eq!(
        (http.host(), http.port(), http.base_path()),
        ("ecs.corp.local", 8443, "/sap/bc")
    );
    assert_eq!(hc.listeners, NonZeroUsize::new(25));
    assert!(
        matches!(&hc.relay, Relay::SelfHosted { url } if url.as_str() == "ws://127.0.0.1:9000/")
    );
    assert_eq!(
        hc.proxy,
        ProxySetting::Configured {
            address: ProxyAddress {
                host: "proxy.corp".into(),
                port: 3128,
                user: None,
            },
            password: None,
        }
    );
    assert_eq!(hc.token_ttl, Duration::from_secs(300));
    assert_eq!(hc.ping_interval, Duration::from_secs(2));
}

#[test]
fn workers_zero_means_one_per_core() {
    let config = load(&format!("[runtime]\nworkers = 0\n{}", hc("sap", ""))).expect("valid");
    assert_eq!(config.runtime.workers, Workers::PerCore);
    assert!(config.runtime.workers.count().get() >= 1);
}

#[test]
fn secrets_are_not_in_debug_output() {
    let config = load(&hc("sap", "")).expect("valid");
    let debug = format!("{config:?}");
    assert!(!debug.contains(KEY));
    assert!(debug.contains("<redacted>"));
    match config.hybrid_connections[0].connection_string.credential() {
        Credential::KeyPair { key, .. } => assert_eq!(key.expose(), KEY),
        Credential::Signature(_) => panic!("expected a key pair"),
    }
}

// ---- the file and TOML itself ----

#[test]
fn unreadable_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("missing.toml");
    let error = Config::load(&path).expect_err("missing file");
    assert_eq!(error.path, path.display().to_string());
    assert!(matches!(error.reason, Reason::ReadFile { .. }));
    assert!(error
        .to_string()
        .contains("cannot read the configuration file"));
}

#[test]
fn load_resolves_files_next_to_the_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("sap.conn"), connection_string(Some("x"))).expect("write");
    let text = "[[hybrid_connection]]\nname = \"a\"\nconnection_string_file = \"sap.conn\"\ntarget = \"tcp://h:1\"\n";
    let config_path = dir.path().join("hycod.toml");
    std::fs::write(&config_path, text).expect("write");
    let config = Config::load(&config_path).expect("valid");
    assert_eq!(
        config.hybrid_connections[0].connection_string_source,
        ConnectionStringSource::File(dir.path().join("sap.conn"))
    );
}

/// One row of a rule table: a configuration, the key path its error names, a distinctive part
/// of the message and the reason it must be.
struct Case {
    text: String,
    key: &'static str,
    part: &'static str,
    reason: fn(&Reason) -> bool,
}

fn case(
    text: impl Into<String>,
    key: &'static str,
    part: &'static str,
    reason: fn(&Reason) -> bool,
) -> Case {
    Case {
        text: text.into(),
        key,
        part,
        reason,
    }
}

fn unknown_key(r: &Reason) -> bool {
    matches!(r, Reason::UnknownKey { .. })
}

fn invalid_value(r: &Reason) -> bool {
    matches!(r, Reason::InvalidValue { .. })
}

fn ca_file_unreadable(r: &Reason) -> bool {
    matches!(r, Reason::CaFileUnreadable { .. })
}

fn toml_syntax(r: &Reason) -> bool {
    matches!(r, Reason::TomlSyntax { .. })
}

/// Loads every row's text and checks its error as [`error`] does, then its reason.
fn check(cases: &[Case]) {
    for case in cases {
        let reason = error(&case.text, case.key, case.part);
        assert!(
            (case.reason)(&reason),
            "{}: unexpected {reason:?}",
            case.key
        );
    }
}

#[test]
fn reading_the_file_syntax_unknown_keys_and_types() {
    check(&[
        // A syntax error names the key and the position.
        case(
            "[[hybrid_connection]]\nname = \"a\"\ntarget = tcp://db01:1\n",
            "hybrid_connection[0].target",
            "invalid TOML at line 3, column 10",
            |r| {
                matches!(
                    r,
                    Reason::TomlSyntax {
                        line: 3,
                        column: 10,
                        ..
                    }
                )
            },
        ),
        case(
            "[runtime\nworkers = 1\n",
            "(top level)",
            "invalid TOML at line 1",
            |r| matches!(r, Reason::TomlSyntax { line: 1, .. }),
        ),
        case(
            format!("{}name = \"again\"\n", hc("a", "")),
            "hybrid_connection[0].name",
            "duplicate key",
            toml_syntax,
        ),
        // Unknown keys, wherever they are.
        case(
            format!("{}{}", hc("a", ""), hc("b", "tagret = \"tcp://x:1\"")),
            "hybrid_connection[1].tagret",
            "unknown key \"tagret\" in hybrid_connection[1]; expected one of `name`",
            |r| matches!(r, Reason::UnknownKey { key, section, .. } if key == "tagret" && section == "hybrid_connection[1]"),
        ),
        case(
            format!("[runtime]\nworkerz = 4\n{}", hc("a", "")),
            "runtime.workerz",
            "unknown key \"workerz\" in runtime; expected `workers`",
            unknown_key,
        ),
        case(
            format!("runtime = {{ workerz = 4 }}\n{}", hc("a", "")),
            "runtime.workerz",
            "unknown key \"workerz\" in runtime",
            unknown_key,
        ),
        case(
            "bogus = 1\n",
            "bogus",
            "unknown key \"bogus\" at the top level",
            unknown_key,
        ),
        case(
            "[runtim]\nworkers = 1\n",
            "runtim",
            "unknown key \"runtim\" at the top level",
            unknown_key,
        ),
        case(
            format!("{}[hybrid_connection.extra]\nx = 1\n", hc("a", "")),
            "hybrid_connection[0].extra",
            "unknown key \"extra\" in hybrid_connection[0]",
            unknown_key,
        ),
        // Values of the wrong type, with their position; a string value is never echoed.
        case(
            format!("[runtime]\nworkers = \"4\"\n{}", hc("a", "")),
            "runtime.workers",
            "invalid type: string",
            |r| {
                matches!(
                    r,
                    Reason::InvalidValue {
                        line: 2,
                        column: 11,
                        ..
                    }
                )
            },
        ),
        case(
            format!("[runtime]\nworkers = \"{KEY}\"\n{}", hc("a", "")),
            "runtime.workers",
            "invalid type: string, expected usize",
            invalid_value,
        ),
        case(
            hc("a", "listeners = -1"),
            "hybrid_connection[0].listeners",
            "invalid value",
            invalid_value,
        ),
        case(
            format!("[log]\nformat = \"xml\"\n{}", hc("a", "")),
            "log.format",
            "expected `text` or `json`",
            invalid_value,
        ),
        case(
            format!("[log]\nlevel = \"verbose\"\n{}", hc("a", "")),
            "log.level",
            "unknown variant `verbose`",
            invalid_value,
        ),
    ]);
}

// ---- top-level sections ----

#[test]
fn neither_a_hybrid_connection_nor_a_forward() {
    let reason = error(
        "[runtime]\nworkers = 1\n",
        "hybrid_connection",
        "at least one [[hybrid_connection]] or [[forward]] is required",
    );
    assert_eq!(reason, Reason::NothingToServe);
    assert_eq!(
        error("", "hybrid_connection", "required"),
        Reason::NothingToServe
    );
}

#[test]
fn admin_listen_must_be_ip_and_port() {
    let text = format!("[admin]\nlisten = \"localhost:9464\"\n{}", hc("a", ""));
    let reason = error(
        &text,
        "admin.listen",
        "expected ip:port, got \"localhost:9464\"",
    );
    assert!(matches!(reason, Reason::InvalidSocketAddr { .. }));
}

#[test]
fn admin_head_timeout_is_a_duration_of_at_least_100ms() {
    let text = format!("[admin]\nhead_timeout = \"2s\"\n{}", hc("a", ""));
    assert_eq!(
        load(&text).expect("valid").admin.head_timeout,
        Duration::from_secs(2)
    );
    let text = format!("[admin]\nhead_timeout = \"0s\"\n{}", hc("a", ""));
    let reason = error(&text, "admin.head_timeout", "must be at least 100ms");
    assert!(matches!(reason, Reason::DurationTooShort { .. }));
    let text = format!("[admin]\nhead_timeout = \"soon\"\n{}", hc("a", ""));
    let reason = error(&text, "admin.head_timeout", "expected a duration");
    assert!(matches!(reason, Reason::InvalidDuration { .. }));
}

#[test]
fn shutdown_grace_must_be_a_duration() {
    let text = format!("[shutdown]\ngrace = \"30\"\n{}", hc("a", ""));
    let reason = error(&text, "shutdown.grace", "no unit");
    assert_eq!(
        reason,
        Reason::InvalidDuration {
            got: "30".into(),
            error: DurationError::NoUnit
        }
    );
}

// ---- name ----

#[test]
fn hybrid_connection_names() {
    check(&[
        case(
            format!(
                "[[hybrid_connection]]\nconnection_string = \"{}\"\ntarget = \"tcp://h:1\"\n",
                connection_string(Some("x"))
            ),
            "hybrid_connection[0].name",
            "required",
            |r| *r == Reason::MissingKey,
        ),
        case(
            hc("", ""),
            "hybrid_connection[0].name",
            "must not be empty",
            |r| *r == Reason::EmptyName,
        ),
        case(
            hc("sap gw", ""),
            "hybrid_connection[0].name",
            "found ' '",
            |r| *r == Reason::NameCharacter { character: ' ' },
        ),
        case(
            hc("sap\\\"gw", ""),
            "hybrid_connection[0].name",
            "may contain only",
            |r| *r == Reason::NameCharacter { character: '"' },
        ),
        case(
            format!("{}{}{}", hc("a", ""), hc("b", ""), hc("a", "")),
            "hybrid_connection[2].name",
            "already used by hybrid_connection[0]",
            |r| {
                *r == Reason::DuplicateName {
                    name: "a".into(),
                    first_index: 0,
                }
            },
        ),
    ]);
    assert!(load(&hc("SAP_gw-01.prod", "")).is_ok());
}

// ---- connection string sources ----

fn hc_without_secret(extra: &str) -> String {
    format!("[[hybrid_connection]]\nname = \"a\"\nentity_path = \"hc\"\ntarget = \"tcp://h:1\"\n{extra}\n")
}

#[test]
fn connection_string_sources() {
    check(&[
        case(
            hc_without_secret(""),
            "hybrid_connection[0]",
            "one of connection_string, connection_string_file or connection_string_env is required",
            |r| *r == Reason::NoConnectionString,
        ),
        case(
            hc("a", "connection_string_env = \"HYCOD_TEST_CS\""),
            "hybrid_connection[0]",
            "found connection_string and connection_string_env",
            |r| {
                *r == Reason::ConflictingConnectionStrings {
                    keys: vec!["connection_string", "connection_string_env"],
                }
            },
        ),
        case(
            hc_without_secret("connection_string_file = \"/nonexistent/sap.conn\""),
            "hybrid_connection[0].connection_string_file",
            "cannot read /nonexistent/sap.conn",
            |r| matches!(r, Reason::ConnectionStringFileUnreadable { .. }),
        ),
        case(
            hc_without_secret("connection_string_env = \"HYCOD_NOT_SET\""),
            "hybrid_connection[0].connection_string_env",
            "HYCOD_NOT_SET is not set",
            |r| {
                *r == Reason::ConnectionStringEnvMissing {
                    variable: "HYCOD_NOT_SET".into(),
                }
            },
        ),
        case(
            hc_without_secret("connection_string_env = \"HYCOD_TEST_BINARY\""),
            "hybrid_connection[0].connection_string_env",
            "not valid Unicode",
            |r| matches!(r, Reason::ConnectionStringEnvNotUnicode { .. }),
        ),
        case(
            hc_without_secret(&format!(
                "connection_string = \"Endpoint=https://contoso.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey={KEY}\""
            )),
            "hybrid_connection[0].connection_string",
            "must use the sb:// scheme",
            |r| {
                matches!(
                    r,
                    Reason::InvalidConnectionString(
                        ConnectionStringError::EndpointSchemeNotSb { .. }
                    )
                )
            },
        ),
        case(
            hc_without_secret(&format!(
                "connection_string = \"Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKey={KEY}\""
            )),
            "hybrid_connection[0].connection_string",
            "no SharedAccessKeyName",
            |r| {
                *r == Reason::InvalidConnectionString(ConnectionStringError::KeyWithoutKeyName)
            },
        ),
    ]);
}

#[test]
fn connection_string_file_is_trimmed_and_relative_to_base_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("sap.conn"),
        format!("{}\n\n", connection_string(None)),
    )
    .expect("write");
    let text = hc_without_secret("connection_string_file = \"sap.conn\"");
    let config = load_in(&text, dir.path()).expect("valid");
    let hc = &config.hybrid_connections[0];
    assert_eq!(
        hc.connection_string_source,
        ConnectionStringSource::File(dir.path().join("sap.conn"))
    );
    match hc.connection_string.credential() {
        Credential::KeyPair { key, .. } => assert_eq!(key.expose(), KEY),
        Credential::Signature(_) => panic!("expected a key pair"),
    }
}

#[test]
fn a_connection_string_file_readable_by_everyone_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("sap.conn");
    std::fs::write(&file, connection_string(None)).expect("write");
    let text = hc_without_secret("connection_string_file = \"sap.conn\"");
    let warned = |mode: u32| {
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).expect("chmod");
        let config = load_in(&text, dir.path()).expect("valid");
        config
            .warnings
            .iter()
            .filter(|w| matches!(w.kind, Warning::SecretFileReadableByOthers { .. }))
            .map(|w| (w.path.clone(), w.to_string()))
            .collect::<Vec<_>>()
    };
    let open = warned(0o644);
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].0, "hybrid_connection[0].connection_string_file");
    assert!(open[0].1.contains("chmod 600"), "{}", open[0].1);
    assert!(!open[0].1.contains(KEY));
    assert!(warned(0o600).is_empty());
    assert!(warned(0o640).is_empty());
}

#[test]
fn malformed_connection_string_in_a_file_names_the_file_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bad.conn"),
        format!("SharedAccessKeyName=x;SharedAccessKey={KEY}"),
    )
    .expect("write");
    let text = hc_without_secret("connection_string_file = \"bad.conn\"");
    let error = load_in(&text, dir.path()).expect_err("malformed");
    assert_eq!(error.path, "hybrid_connection[0].connection_string_file");
    assert_eq!(
        error.reason,
        Reason::InvalidConnectionString(ConnectionStringError::MissingEndpoint)
    );
    assert!(!error.to_string().contains(KEY));
}

#[test]
fn connection_string_from_the_environment() {
    let config = load(
        &hc_without_secret("connection_string_env = \"HYCOD_TEST_CS\"\n")
            .replace("entity_path = \"hc\"\n", ""),
    )
    .expect("valid");
    let hc = &config.hybrid_connections[0];
    assert_eq!(
        hc.connection_string_source,
        ConnectionStringSource::Env("HYCOD_TEST_CS".into())
    );
    assert_eq!(hc.entity_path, "from-env");
}

#[test]
fn unknown_connection_string_keys_are_warnings() {
    let text = hc_without_secret(&format!(
        "connection_string = \"{};Foo=bar\"",
        connection_string(None)
    ));
    let config = load(&text).expect("valid");
    assert_eq!(
        config.warnings,
        vec![ConfigWarning {
            path: "hybrid_connection[0].connection_string".into(),
            kind: Warning::UnknownConnectionStringKey { key: "Foo".into() }
        }]
    );
}

#[test]
fn fixed_signature_is_a_warning() {
    let text = hc_without_secret(
        "connection_string = \"Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessSignature=SharedAccessSignature sr=x&sig=y&se=1&skn=k\"",
    );
    let config = load(&text).expect("valid");
    assert_eq!(config.warnings.len(), 1);
    assert_eq!(config.warnings[0].kind, Warning::FixedSignature);
    assert!(!config.warnings[0].to_string().contains("sig=y"));
}

// ---- entity path ----

#[test]
fn entity_paths() {
    let usable_path_case = |path: &str, reason: fn(&Reason) -> bool| {
        let text = hc_without_secret(&format!(
            "connection_string = \"{}\"",
            connection_string(None)
        ))
        .replace("entity_path = \"hc\"", &format!("entity_path = \"{path}\""));
        case(
            text,
            "hybrid_connection[0].entity_path",
            "not a usable hybrid connection path",
            reason,
        )
    };
    check(&[
        case(
            format!(
                "[[hybrid_connection]]\nname = \"a\"\nconnection_string = \"{}\"\ntarget = \"tcp://h:1\"\n",
                connection_string(None)
            ),
            "hybrid_connection[0].entity_path",
            "connection string has no EntityPath",
            |r| *r == Reason::MissingEntityPath,
        ),
        case(
            hc("a", "entity_path = \"other\""),
            "hybrid_connection[0].entity_path",
            "disagrees",
            |r| {
                *r == Reason::EntityPathMismatch {
                    configured: "other".into(),
                    in_connection_string: "sap-gateway".into(),
                }
            },
        ),
        usable_path_case("", |r| {
            *r == Reason::InvalidEntityPath {
                problem: EntityPathProblem::Empty,
            }
        }),
        usable_path_case("/hc", |r| {
            *r == Reason::InvalidEntityPath {
                problem: EntityPathProblem::LeadingSlash,
            }
        }),
        usable_path_case("hc/", |r| {
            *r == Reason::InvalidEntityPath {
                problem: EntityPathProblem::TrailingSlash,
            }
        }),
        usable_path_case("a//b", |r| {
            *r == Reason::InvalidEntityPath {
                problem: EntityPathProblem::EmptySegment,
            }
        }),
    ]);
    assert!(load(&hc("a", "entity_path = \"sap-gateway\"")).is_ok());
}

// ---- targets ----

#[test]
fn targets_relay_urls_proxies_and_ca_files() {
    check(&[
        case(
            format!(
                "[[hybrid_connection]]\nname = \"a\"\nconnection_string = \"{}\"\n",
                connection_string(Some("x"))
            ),
            "hybrid_connection[0]",
            "at least one of target, targets or http_target",
            |r| *r == Reason::NoTarget,
        ),
        case(
            format!(
                "{}{}",
                hc("a", ""),
                hc("b", "").replace("tcp://10.1.2.3:3300", "db01")
            ),
            "hybrid_connection[1].target",
            "expected tcp://host:port, got \"db01\"",
            |r| {
                matches!(
                    r,
                    Reason::InvalidUrl {
                        problem: UrlProblem::NotAUrl(_),
                        ..
                    }
                )
            },
        ),
        case(
            hc("a", "").replace("tcp://10.1.2.3:3300", "tcp://db01"),
            "hybrid_connection[0].target",
            "no port",
            |r| {
                matches!(
                    r,
                    Reason::InvalidUrl {
                        problem: UrlProblem::NoPort,
                        ..
                    }
                )
            },
        ),
        case(
            hc("a", "http_target = \"ftp://files/\""),
            "hybrid_connection[0].http_target",
            "expected http(s)://host[:port][/base]",
            |r| {
                matches!(
                    r,
                    Reason::InvalidUrl {
                        problem: UrlProblem::WrongScheme,
                        ..
                    }
                )
            },
        ),
        case(
            hc("a", "relay_url = \"https://relay:443\""),
            "hybrid_connection[0].relay_url",
            "expected ws(s)://host[:port]",
            |r| {
                matches!(
                    r,
                    Reason::InvalidUrl {
                        problem: UrlProblem::WrongScheme,
                        ..
                    }
                )
            },
        ),
        // Credentials in a proxy URL are refused and never echoed.
        case(
            hc("a", "proxy = \"http://user:hunter2@proxy:3128\""),
            "hybrid_connection[0].proxy",
            "a password in the URL is not supported; use proxy_password_file or proxy_password_env",
            |r| {
                matches!(r, Reason::InvalidUrl { problem: UrlProblem::Password, got, .. } if !got.contains("hunter2"))
                    && !r.to_string().contains("hunter2")
            },
        ),
        // relay_ca_file (tls_roots' older name): readable, and not for a ws:// relay.
        case(
            hc("a", "relay_ca_file = \"ca.pem\""),
            "hybrid_connection[0].relay_ca_file",
            "cannot read /nonexistent-base/ca.pem",
            ca_file_unreadable,
        ),
        case(
            hc(
                "a",
                "relay_url = \"ws://relay:80\"\nrelay_ca_file = \"ca.pem\"",
            ),
            "hybrid_connection[0].relay_ca_file",
            "wss://",
            |r| *r == Reason::CaFileWithoutTlsRelay,
        ),
        case(
            hc(
                "a",
                "relay_url = \"wss://relay:8443\"\nrelay_ca_file = \"ca.pem\"",
            ),
            "hybrid_connection[0].relay_ca_file",
            "cannot read /nonexistent-base/ca.pem",
            ca_file_unreadable,
        ),
    ]);
}

#[test]
fn http_target_alone_is_enough() {
    let text = format!(
        "[[hybrid_connection]]\nname = \"a\"\nconnection_string = \"{}\"\nhttp_target = \"http://127.0.0.1:8065\"\n",
        connection_string(Some("x"))
    );
    let config = load(&text).expect("valid");
    assert_eq!(config.hybrid_connections[0].target, None);
}

// ---- relay CA file ----

#[test]
fn readable_ca_file_is_resolved_against_base_dir() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("ca.pem"), "not checked here").expect("write");
    let text = hc(
        "a",
        "relay_url = \"wss://relay:8443\"\nrelay_ca_file = \"ca.pem\"",
    );
    let config = load_in(&text, dir.path()).expect("valid");
    let hc = &config.hybrid_connections[0];
    assert!(matches!(&hc.relay, Relay::SelfHosted { url } if url.as_str() == "wss://relay:8443/"));
    assert_eq!(
        hc.tls_roots,
        Some(TrustRoots::CaFile(dir.path().join("ca.pem"))),
        "relay_ca_file is tls_roots holding a file"
    );
    assert_eq!(
        config.warnings,
        [ConfigWarning {
            path: "hybrid_connection[0].relay_ca_file".into(),
            kind: Warning::DeprecatedKey {
                replacement: "tls_roots"
            },
        }]
    );
    assert_eq!(
        config.warnings[0].to_string(),
        "hybrid_connection[0].relay_ca_file: this key is deprecated and may be removed; write \
         tls_roots instead, which means the same"
    );
}

// ---- counts and durations ----

#[test]
fn counts_and_durations_of_a_section() {
    check(&[
        case(
            hc_with_listeners(0),
            "hybrid_connection[0].listeners",
            "must be between 1 and 25",
            |r| *r == Reason::ListenersOutOfRange { got: 0, max: 25 },
        ),
        case(
            hc_with_listeners(26),
            "hybrid_connection[0].listeners",
            "must be between 1 and 25",
            |r| *r == Reason::ListenersOutOfRange { got: 26, max: 25 },
        ),
        case(
            hc("a", "token_ttl = \"1 hour\""),
            "hybrid_connection[0].token_ttl",
            "expected a duration such as \"30s\"",
            |r| {
                matches!(
                    r,
                    Reason::InvalidDuration {
                        error: DurationError::UnknownUnit { .. },
                        ..
                    }
                )
            },
        ),
        case(
            hc("a", "token_ttl = \"30s\""),
            "hybrid_connection[0].token_ttl",
            "must be at least 1m, got 30s",
            |r| {
                *r == Reason::DurationTooShort {
                    got: Duration::from_secs(30),
                    min: Duration::from_secs(60),
                }
            },
        ),
        case(
            hc("a", "ping_interval = \"often\""),
            "hybrid_connection[0].ping_interval",
            "expected a duration such as \"30s\"",
            |r| matches!(r, Reason::InvalidDuration { got, .. } if got == "often"),
        ),
        case(
            hc("a", "ping_interval = \"500ms\""),
            "hybrid_connection[0].ping_interval",
            "must be at least 1s, got 500ms",
            |r| {
                *r == Reason::DurationTooShort {
                    got: Duration::from_millis(500),
                    min: Duration::from_secs(1),
                }
            },
        ),
        case(
            hc("a", "stream_ping_interval = \"often\""),
            "hybrid_connection[0].stream_ping_interval",
            "expected a duration such as \"30s\"",
            |r| matches!(r, Reason::InvalidDuration { got, .. } if got == "often"),
        ),
        case(
            fwd("f", "127.0.0.1:0", "stream_ping_interval = \"500ms\""),
            "forward[0].stream_ping_interval",
            "must be at least 1s, got 500ms",
            |r| {
                *r == Reason::DurationTooShort {
                    got: Duration::from_millis(500),
                    min: Duration::from_secs(1),
                }
            },
        ),
    ]);
    for valid in [
        hc_with_listeners(1),
        hc_with_listeners(25),
        hc("a", "token_ttl = \"1m\""),
        hc("a", "ping_interval = \"1s\""),
    ] {
        assert!(load(&valid).is_ok(), "{valid}");
    }
}

#[test]
fn stream_ping_interval_defaults_to_30s_and_0s_turns_it_off() {
    let config = load(&hc("a", "")).expect("valid");
    assert_eq!(
        config.hybrid_connections[0].stream_ping_interval,
        Some(Duration::from_secs(30))
    );
    let config = load(&hc("a", "stream_ping_interval = \"0s\"")).expect("valid");
    assert_eq!(config.hybrid_connections[0].stream_ping_interval, None);
    let config = load(&fwd("f", "127.0.0.1:0", "stream_ping_interval = \"2m\"")).expect("valid");
    assert_eq!(
        config.forwards[0].stream_ping_interval,
        Some(Duration::from_secs(120))
    );
}

#[test]
fn rendezvous_hosts_take_host_names_and_wildcard_suffixes() {
    let config = load(&hc(
        "a",
        "rendezvous_hosts = [\"GW1.corp.example\", \"*.gateways.corp.example\"]",
    ))
    .expect("valid");
    assert_eq!(
        config.hybrid_connections[0].rendezvous_hosts,
        ["gw1.corp.example", "*.gateways.corp.example"]
    );
    for bad in [
        "https://gw1",
        "gw1:443",
        "*",
        "*.",
        "a..b",
        "-a.example",
        "gw*.example",
        "",
    ] {
        let reason = error(
            &hc(
                "a",
                &format!("rendezvous_hosts = [\"ok.example\", {bad:?}]"),
            ),
            "hybrid_connection[0].rendezvous_hosts[1]",
            "is not a host name",
        );
        assert_eq!(
            reason,
            Reason::InvalidHostPattern {
                got: bad.to_owned()
            },
            "{bad}"
        );
    }
}

// ---- [[forward]] ----

/// One forward named `name` listening on `listen` with an inline connection string, followed by
/// `extra` lines.
fn fwd(name: &str, listen: &str, extra: &str) -> String {
    format!(
        "[[forward]]\nname = \"{name}\"\nlisten = \"{listen}\"\nconnection_string = \"{}\"\n{extra}\n",
        connection_string(Some("sap-gateway"))
    )
}

fn fwd_without_secret(extra: &str) -> String {
    format!("[[forward]]\nname = \"f\"\nlisten = \"127.0.0.1:0\"\nentity_path = \"hc\"\n{extra}\n")
}

#[test]
fn a_file_with_only_forwards_gets_every_default() {
    let config = load(&fwd("sap", "127.0.0.1:3300", "")).expect("valid");
    assert!(config.hybrid_connections.is_empty());
    let forward = &config.forwards[0];
    assert_eq!(forward.name, "sap");
    assert_eq!(forward.listen, "127.0.0.1:3300".parse().expect("addr"));
    assert_eq!(forward.entity_path, "sap-gateway");
    assert_eq!(
        forward.connection_string_source,
        ConnectionStringSource::Inline
    );
    assert_eq!(forward.relay, Relay::Azure);
    assert_eq!(forward.proxy, ProxySetting::Direct);
    assert_eq!(forward.token_ttl, DEFAULT_TOKEN_TTL);
    assert!(config.warnings.is_empty());
}

#[test]
fn a_file_may_hold_hybrid_connections_and_forwards() {
    let text = format!(
        "{}{}{}",
        hc("sap", ""),
        fwd("sap", "127.0.0.1:0", ""),
        fwd("other", "[::1]:0", "")
    );
    let config = load(&text).expect("valid");
    assert_eq!(config.hybrid_connections.len(), 1);
    let names: Vec<&str> = config.forwards.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        ["sap", "other"],
        "a forward may share a hybrid connection's name"
    );
}

#[test]
fn every_forward_key_is_read() {
    let config = Config::from_toml_str_with_env(
        "[[forward]]\nname = \"f\"\nlisten = \"0.0.0.0:3300\"\nconnection_string_env = \"HYCOD_TEST_CS\"\nentity_path = \"from-env\"\nrelay_url = \"wss://relay.local:9443\"\nproxy = \"http://proxy.corp:3128\"\ntoken_ttl = \"10m\"\n",
        Path::new("/"),
        &test_env,
    )
    .expect("valid");
    let forward = &config.forwards[0];
    assert_eq!(forward.listen, "0.0.0.0:3300".parse().expect("addr"));
    assert_eq!(
        forward.connection_string_source,
        ConnectionStringSource::Env("HYCOD_TEST_CS".into())
    );
    assert_eq!(forward.entity_path, "from-env");
    assert!(
        matches!(&forward.relay, Relay::SelfHosted { url } if url.as_str() == "wss://relay.local:9443/")
    );
    assert_eq!(
        forward.proxy,
        ProxySetting::Configured {
            address: ProxyAddress {
                host: "proxy.corp".into(),
                port: 3128,
                user: None,
            },
            password: None,
        }
    );
    assert_eq!(forward.token_ttl, Duration::from_secs(600));
}

#[test]
fn a_forward_reads_its_files_next_to_the_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("send.conn"),
        format!("{}\n", connection_string(Some("hc"))),
    )
    .expect("write");
    std::fs::write(dir.path().join("ca.pem"), "pem").expect("write");
    let text = fwd_without_secret(
        "connection_string_file = \"send.conn\"\nrelay_url = \"wss://127.0.0.1:9\"\nrelay_ca_file = \"ca.pem\"",
    );
    let config = load_in(&text, dir.path()).expect("valid");
    let forward = &config.forwards[0];
    assert_eq!(
        forward.connection_string_source,
        ConnectionStringSource::File(dir.path().join("send.conn"))
    );
    assert_eq!(
        forward.tls_roots,
        Some(TrustRoots::CaFile(dir.path().join("ca.pem")))
    );
    assert!(
        config
            .warnings
            .iter()
            .any(|warning| warning.path == "forward[0].relay_ca_file"),
        "{:?}",
        config.warnings
    );
}

#[test]
fn forward_secrets_are_not_in_debug_output() {
    let config = load(&fwd("f", "127.0.0.1:0", "")).expect("valid");
    assert!(!format!("{config:?}").contains(KEY));
}

#[test]
fn forward_without_name() {
    let text = format!(
        "[[forward]]\nlisten = \"127.0.0.1:0\"\nconnection_string = \"{}\"\n",
        connection_string(Some("hc"))
    );
    assert_eq!(
        error(&text, "forward[0].name", "required"),
        Reason::MissingKey
    );
}

#[test]
fn forward_name_must_be_a_metric_label() {
    let reason = error(
        &fwd("a b", "127.0.0.1:0", ""),
        "forward[0].name",
        "found ' '",
    );
    assert_eq!(reason, Reason::NameCharacter { character: ' ' });
    assert_eq!(
        error(&fwd("", "127.0.0.1:0", ""), "forward[0].name", "empty"),
        Reason::EmptyName
    );
}

#[test]
fn duplicate_forward_name() {
    let text = format!(
        "{}{}",
        fwd("f", "127.0.0.1:0", ""),
        fwd("f", "127.0.0.1:0", "")
    );
    let reason = error(
        &text,
        "forward[1].name",
        "the name \"f\" is already used by forward[0]",
    );
    assert_eq!(
        reason,
        Reason::DuplicateForwardName {
            name: "f".into(),
            first_index: 0
        }
    );
}

#[test]
fn forward_without_listen() {
    let text = format!(
        "[[forward]]\nname = \"f\"\nconnection_string = \"{}\"\n",
        connection_string(Some("hc"))
    );
    assert_eq!(
        error(&text, "forward[0].listen", "this key is required"),
        Reason::MissingKey
    );
}

#[test]
fn forward_listen_must_be_ip_and_port() {
    for bad in ["localhost:3300", "127.0.0.1", "tcp://127.0.0.1:1"] {
        let reason = error(
            &fwd("f", bad, ""),
            "forward[0].listen",
            &format!("expected ip:port, got {bad:?}"),
        );
        assert!(
            matches!(&reason, Reason::InvalidSocketAddr { got, .. } if got == bad),
            "{reason:?}"
        );
    }
}

#[test]
fn two_forwards_on_one_address() {
    let text = format!(
        "{}{}{}",
        fwd("a", "127.0.0.1:3300", ""),
        fwd("b", "127.0.0.1:0", ""),
        fwd("c", "127.0.0.1:3300", "")
    );
    let reason = error(
        &text,
        "forward[2].listen",
        "127.0.0.1:3300 is already the listen address of forward[0]",
    );
    assert_eq!(
        reason,
        Reason::DuplicateListen {
            listen: "127.0.0.1:3300".parse().expect("addr"),
            first_index: 0
        }
    );
    let port_zero_twice = format!(
        "{}{}",
        fwd("a", "127.0.0.1:0", ""),
        fwd("b", "127.0.0.1:0", "")
    );
    assert_eq!(load(&port_zero_twice).expect("valid").forwards.len(), 2);
}

#[test]
fn forward_connection_string_sources() {
    assert_eq!(
        error(
            &fwd_without_secret(""),
            "forward[0]",
            "one of connection_string, connection_string_file or connection_string_env is required"
        ),
        Reason::NoConnectionString
    );
    let reason = error(
        &fwd("f", "127.0.0.1:0", "connection_string_file = \"x.conn\""),
        "forward[0]",
        "found connection_string and connection_string_file",
    );
    assert_eq!(
        reason,
        Reason::ConflictingConnectionStrings {
            keys: vec!["connection_string", "connection_string_file"]
        }
    );
    let reason = error(
        &fwd_without_secret("connection_string_file = \"/nonexistent/send.conn\""),
        "forward[0].connection_string_file",
        "cannot read /nonexistent/send.conn",
    );
    assert!(matches!(
        reason,
        Reason::ConnectionStringFileUnreadable { .. }
    ));
    let reason = error(
        &fwd_without_secret("connection_string_env = \"HYCOD_NOT_SET\""),
        "forward[0].connection_string_env",
        "HYCOD_NOT_SET is not set",
    );
    assert_eq!(
        reason,
        Reason::ConnectionStringEnvMissing {
            variable: "HYCOD_NOT_SET".into()
        }
    );
    let reason = error(
        &fwd_without_secret("connection_string = \"Endpoint=sb://ns.example/\""),
        "forward[0].connection_string",
        "",
    );
    assert!(matches!(reason, Reason::InvalidConnectionString(_)));
}

#[test]
fn forward_entity_path_rules() {
    let without_entity = format!(
        "[[forward]]\nname = \"f\"\nlisten = \"127.0.0.1:0\"\nconnection_string = \"{}\"\n",
        connection_string(None)
    );
    assert_eq!(
        error(
            &without_entity,
            "forward[0].entity_path",
            "connection string has no EntityPath"
        ),
        Reason::MissingEntityPath
    );
    let reason = error(
        &fwd("f", "127.0.0.1:0", "entity_path = \"other\""),
        "forward[0].entity_path",
        "disagrees",
    );
    assert_eq!(
        reason,
        Reason::EntityPathMismatch {
            configured: "other".into(),
            in_connection_string: "sap-gateway".into()
        }
    );
    let reason = error(
        &format!("{without_entity}entity_path = \"a//b\"\n"),
        "forward[0].entity_path",
        "not a usable hybrid connection path",
    );
    assert_eq!(
        reason,
        Reason::InvalidEntityPath {
            problem: EntityPathProblem::EmptySegment
        }
    );
}

#[test]
fn forward_relay_proxy_and_token_ttl_rules() {
    let reason = error(
        &fwd("f", "127.0.0.1:0", "relay_url = \"http://relay:9000\""),
        "forward[0].relay_url",
        "expected ws(s)://host[:port]",
    );
    assert!(matches!(
        reason,
        Reason::InvalidUrl {
            problem: UrlProblem::WrongScheme,
            ..
        }
    ));
    assert_eq!(
        error(
            &fwd(
                "f",
                "127.0.0.1:0",
                "relay_url = \"ws://relay:9000\"\nrelay_ca_file = \"ca.pem\""
            ),
            "forward[0].relay_ca_file",
            "needs a wss:// relay_url"
        ),
        Reason::CaFileWithoutTlsRelay
    );
    let reason = error(
        &fwd(
            "f",
            "127.0.0.1:0",
            "relay_url = \"wss://relay:9000\"\nrelay_ca_file = \"/nonexistent/ca.pem\"",
        ),
        "forward[0].relay_ca_file",
        "cannot read /nonexistent/ca.pem",
    );
    assert!(matches!(reason, Reason::CaFileUnreadable { .. }));
    let reason = error(
        &fwd("f", "127.0.0.1:0", "proxy = \"http://u:hunter2@px:3128\""),
        "forward[0].proxy",
        "a password in the URL is not supported",
    );
    assert!(matches!(
        reason,
        Reason::InvalidUrl {
            problem: UrlProblem::Password,
            ..
        }
    ));
    let reason = error(
        &fwd("f", "127.0.0.1:0", "token_ttl = \"soon\""),
        "forward[0].token_ttl",
        "expected a duration",
    );
    assert!(matches!(reason, Reason::InvalidDuration { .. }));
    assert_eq!(
        error(
            &fwd("f", "127.0.0.1:0", "token_ttl = \"30s\""),
            "forward[0].token_ttl",
            "must be at least 1m"
        ),
        Reason::DurationTooShort {
            got: Duration::from_secs(30),
            min: MIN_TOKEN_TTL
        }
    );
}

#[test]
fn a_forward_has_no_target() {
    let reason = error(
        &fwd("f", "127.0.0.1:0", "target = \"tcp://db:1\""),
        "forward[0].target",
        "unknown key \"target\" in forward[0]; expected one of `name`, `listen`",
    );
    assert!(
        matches!(reason, Reason::UnknownKey { key, section, .. } if key == "target" && section == "forward[0]")
    );
}

#[test]
fn forward_warnings_name_the_forward() {
    let text = format!(
        "[[forward]]\nname = \"f\"\nlisten = \"127.0.0.1:0\"\nconnection_string = \"{};Foo=bar\"\n",
        connection_string(Some("hc"))
    );
    let config = load(&text).expect("valid");
    assert_eq!(
        config.warnings,
        vec![ConfigWarning {
            path: "forward[0].connection_string".into(),
            kind: Warning::UnknownConnectionStringKey { key: "Foo".into() }
        }]
    );
}

#[test]
fn single_forward_validates_like_a_section() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("send.conn");
    std::fs::write(&file, connection_string(None)).expect("write");
    let flags = ForwardFlags {
        listen: "127.0.0.1:0".parse().expect("addr"),
        connection_string_file: file.clone(),
        entity_path: Some("tunnel".into()),
        relay_url: Some("ws://127.0.0.1:9000".into()),
        relay_ca_file: None,
        tls_roots: None,
        token_ttl: Some("5m".into()),
        peer: None,
        port_name: None,
        proxy: None,
        proxy_password_file: None,
        proxy_password_env: None,
        workers: 1,
    };
    let config = Config::single_forward(flags.clone()).expect("valid");
    assert!(config.hybrid_connections.is_empty());
    assert_eq!(config.runtime.workers, Workers::Fixed(NonZeroUsize::MIN));
    let forward = &config.forwards[0];
    assert_eq!(forward.name, SINGLE_FORWARD_NAME);
    assert_eq!(forward.entity_path, "tunnel");
    assert_eq!(forward.token_ttl, Duration::from_secs(300));
    assert_eq!(
        forward.connection_string_source,
        ConnectionStringSource::File(Path::new(".").join(&file))
    );
    let error = Config::single_forward(ForwardFlags {
        entity_path: None,
        ..flags
    })
    .expect_err("no entity path anywhere");
    assert_eq!(error.path, "forward[0].entity_path");
    assert_eq!(error.reason, Reason::MissingEntityPath);
}

// ---- azbridge peers ----

#[test]
fn azbridge_hybrid_connections_map_port_names_to_targets() {
    let text = hc(
        "sap",
        "peer = \"azbridge\"\ntargets = { \"3300\" = \"tcp://sapgw:3300\", \"sap.dp\" = \"tcp://[::1]:3200\" }",
    );
    let first = &load(&text).expect("valid").hybrid_connections[0];
    assert_eq!(first.peer, Peer::Azbridge);
    let names: Vec<_> = first.targets.keys().map(String::as_str).collect();
    assert_eq!(names, ["3300", "sap.dp"]);
    assert_eq!(first.targets["3300"].to_string(), "tcp://sapgw:3300");
    assert_eq!(first.targets["sap.dp"].address(), "[::1]:3200");
    let plain = &load(&hc("sap", "")).expect("valid").hybrid_connections[0];
    assert_eq!(plain.peer, Peer::Plain);
}

#[test]
fn targets_alone_are_a_target_but_need_the_azbridge_peer() {
    let text = format!(
        "[[hybrid_connection]]\nname = \"sap\"\nconnection_string = \"{}\"\npeer = \"azbridge\"\ntargets = {{ \"3300\" = \"tcp://sapgw:3300\" }}\n",
        connection_string(Some("sap-gateway"))
    );
    let first = &load(&text)
        .expect("targets without target")
        .hybrid_connections[0];
    assert_eq!(first.target, None);
    error(
        &hc("sap", "targets = { \"3300\" = \"tcp://sapgw:3300\" }"),
        "hybrid_connection[0].targets",
        "only used with peer = \"azbridge\"",
    );
    error(
        &hc(
            "sap",
            "peer = \"azbridge\"\ntargets = { \"a b\" = \"tcp://sapgw:3300\" }",
        ),
        "hybrid_connection[0].targets.\"a b\"",
        "expected a port name",
    );
    error(
        &hc(
            "sap",
            "peer = \"azbridge\"\ntargets = { \"3300\" = \"sapgw:3300\" }",
        ),
        "hybrid_connection[0].targets.\"3300\"",
        "tcp://host:port",
    );
    let error = load(&hc("sap", "peer = \"bridge\"")).expect_err("unknown peer");
    assert!(error.to_string().contains("peer"), "{error}");
}

#[test]
fn azbridge_forwards_name_their_port() {
    let forward = |extra: &str| {
        format!(
            "[[forward]]\nname = \"f\"\nlisten = \"127.0.0.1:13300\"\nconnection_string = \"{}\"\n{extra}\n",
            connection_string(Some("tunnel"))
        )
    };
    let config = load(&forward("peer = \"azbridge\"")).expect("valid");
    assert_eq!(config.forwards[0].peer, Peer::Azbridge);
    assert_eq!(config.forwards[0].port_name.as_deref(), Some("13300"));
    let config = load(&forward("peer = \"azbridge\"\nport_name = \"sapgw\"")).expect("valid");
    assert_eq!(config.forwards[0].port_name.as_deref(), Some("sapgw"));
    let config = load(&forward("")).expect("valid");
    assert_eq!(
        (
            config.forwards[0].peer,
            config.forwards[0].port_name.clone()
        ),
        (Peer::Plain, None)
    );
    error(
        &forward("port_name = \"3300\""),
        "forward[0].port_name",
        "only used with peer = \"azbridge\"",
    );
    error(
        &forward("peer = \"azbridge\"\nport_name = \"x:y\""),
        "forward[0].port_name",
        "expected a port name",
    );
    let any_port = format!(
        "[[forward]]\nname = \"f\"\nlisten = \"127.0.0.1:0\"\nconnection_string = \"{}\"\npeer = \"azbridge\"\n",
        connection_string(Some("tunnel"))
    );
    error(&any_port, "forward[0].port_name", "required with peer");
}

// ---- [limits] ----

/// `[limits]` with `body`, then one hybrid connection with `hc_extra`.
fn with_limits(body: &str, hc_extra: &str) -> String {
    format!("[limits]\n{body}\n{}", hc("sap", hc_extra))
}

#[test]
fn limits_have_safe_defaults() {
    let config = load(&hc("sap", "")).expect("valid");
    let limits = config.limits;
    assert_eq!(limits, Limits::default());
    assert_eq!(limits.max_streams_per_hybrid_connection.get(), 1024);
    assert_eq!(limits.max_requests_per_hybrid_connection.get(), 1024);
    assert_eq!(limits.max_streams_per_worker.get(), 4096);
    assert_eq!(limits.max_requests_per_worker.get(), 4096);
    assert_eq!(limits.stream_buffer, 512 * 1024);
    assert_eq!(limits.max_frame, None);
    assert_eq!(limits.max_message, None);
    assert_eq!(limits.max_http_head, 32 * 1024);
    assert_eq!(limits.max_header_count, 100);
    assert_eq!(limits.handshake_timeout, Duration::from_secs(10));
    assert_eq!(limits.idle_timeout, Some(Duration::from_secs(7200)));
    assert_eq!(limits.write_stall_timeout, Some(Duration::from_secs(60)));
    assert_eq!(config.hybrid_connections[0].limits, limits);
}

#[test]
fn every_limit_is_read() {
    let config = load(&with_limits(
        "max_streams_per_hybrid_connection = 10\nmax_requests_per_hybrid_connection = 11\nmax_streams_per_worker = 12\nmax_requests_per_worker = 13\nstream_buffer = 8192\nmax_frame = 2048\nmax_message = 4096\nmax_http_head = 1024\nmax_header_count = 7\nhandshake_timeout = \"250ms\"\nidle_timeout = \"5m\"\nwrite_stall_timeout = \"2s\"",
        "",
    ))
    .expect("valid");
    let n = |count| NonZeroUsize::new(count).expect("non-zero");
    let limits = config.limits;
    assert_eq!(limits.max_streams_per_hybrid_connection, n(10));
    assert_eq!(limits.max_requests_per_hybrid_connection, n(11));
    assert_eq!(limits.max_streams_per_worker, n(12));
    assert_eq!(limits.max_requests_per_worker, n(13));
    assert_eq!(limits.stream_buffer, 8192);
    assert_eq!(limits.max_frame, Some(2048));
    assert_eq!(limits.max_message, Some(4096));
    assert_eq!(limits.max_http_head, 1024);
    assert_eq!(limits.max_header_count, 7);
    assert_eq!(limits.handshake_timeout, Duration::from_millis(250));
    assert_eq!(limits.idle_timeout, Some(Duration::from_secs(300)));
    assert_eq!(limits.write_stall_timeout, Some(Duration::from_secs(2)));
    assert_eq!(limits.websocket().max_message_size, 4096);
    assert_eq!(limits.http_head().max_headers, 7);
}

#[test]
fn zero_max_message_and_idle_timeout_mean_unbounded() {
    let config = load(&with_limits("max_message = 0\nidle_timeout = \"0s\"", "")).expect("valid");
    assert_eq!(config.limits.max_message, None);
    assert_eq!(config.limits.websocket().max_message_size, u64::MAX);
    assert_eq!(config.limits.idle_timeout, None);
}

#[test]
fn hybrid_connections_may_override_their_maxima() {
    let config = load(&with_limits(
        "max_streams_per_hybrid_connection = 10",
        "max_streams = 3\nmax_requests = 4",
    ))
    .expect("valid");
    let limits = config.hybrid_connections[0].limits;
    assert_eq!(limits.max_streams_per_hybrid_connection.get(), 3);
    assert_eq!(limits.max_requests_per_hybrid_connection.get(), 4);
    assert_eq!(
        limits.max_streams_per_worker,
        config.limits.max_streams_per_worker
    );
    assert_eq!(config.limits.max_streams_per_hybrid_connection.get(), 10);
}

#[test]
fn counts_and_sizes_outside_their_range_are_rejected() {
    let cases: [(&str, u64, u64, u64); 10] = [
        ("max_streams_per_hybrid_connection = 0", 0, 1, 1_000_000),
        (
            "max_requests_per_hybrid_connection = 1000001",
            1_000_001,
            1,
            1_000_000,
        ),
        ("max_streams_per_worker = 0", 0, 1, 1_000_000),
        ("max_requests_per_worker = 0", 0, 1, 1_000_000),
        ("stream_buffer = 4096", 4096, 8192, 16 << 20),
        ("max_frame = 100", 100, 1024, i64::MAX.unsigned_abs()),
        ("max_message = 10", 10, 1024, i64::MAX.unsigned_abs()),
        ("max_http_head = 100", 100, 1024, 1 << 20),
        ("max_header_count = 0", 0, 1, 10_000),
        ("max_header_count = 10001", 10_001, 1, 10_000),
    ];
    for (line, got, min, max) in cases {
        let key = line.split(' ').next().expect("key");
        let reason = error(
            &with_limits(line, ""),
            &format!("limits.{key}"),
            &format!("must be between {min} and {max}, got {got}"),
        );
        assert_eq!(reason, Reason::LimitOutOfRange { got, min, max }, "{line}");
    }
}

#[test]
fn per_hybrid_connection_maxima_must_be_positive() {
    for key in ["max_streams", "max_requests"] {
        let reason = error(
            &hc("a", &format!("{key} = 0")),
            &format!("hybrid_connection[0].{key}"),
            "must be between 1 and 1000000",
        );
        assert_eq!(
            reason,
            Reason::LimitOutOfRange {
                got: 0,
                min: 1,
                max: 1_000_000
            }
        );
    }
}

#[test]
fn limit_durations_out_of_range_or_unreadable_and_unknown_limit_keys_are_rejected() {
    let limits = |line: &str| with_limits(line, "");
    check(&[
        case(
            limits("handshake_timeout = \"50ms\""),
            "limits.handshake_timeout",
            "must be at least 100ms, got 50ms",
            |r| {
                *r == Reason::DurationTooShort {
                    got: Duration::from_millis(50),
                    min: Duration::from_millis(100),
                }
            },
        ),
        case(
            limits("handshake_timeout = \"6m\""),
            "limits.handshake_timeout",
            "must be at most 5m, got 6m",
            |r| {
                *r == Reason::DurationTooLong {
                    got: Duration::from_secs(360),
                    max: Duration::from_secs(300),
                }
            },
        ),
        case(
            limits("idle_timeout = \"500ms\""),
            "limits.idle_timeout",
            "must be at least 1s, got 500ms",
            |r| {
                *r == Reason::DurationTooShort {
                    got: Duration::from_millis(500),
                    min: Duration::from_secs(1),
                }
            },
        ),
        case(
            limits("write_stall_timeout = \"999ms\""),
            "limits.write_stall_timeout",
            "must be at least 1s, got 999ms",
            |r| {
                *r == Reason::DurationTooShort {
                    got: Duration::from_millis(999),
                    min: Duration::from_secs(1),
                }
            },
        ),
        case(
            limits("idle_timeout = \"soon\""),
            "limits.idle_timeout",
            "expected a duration",
            |r| {
                *r == Reason::InvalidDuration {
                    got: "soon".into(),
                    error: DurationError::NoNumber,
                }
            },
        ),
        case(
            limits("write_stall_timeout = \"later\""),
            "limits.write_stall_timeout",
            "expected a duration",
            |r| matches!(r, Reason::InvalidDuration { .. }),
        ),
        case(
            limits("max_stream = 5"),
            "limits.max_stream",
            "unknown key \"max_stream\" in limits",
            unknown_key,
        ),
    ]);
    // Zero turns the write-stall timeout off.
    let config = load(&limits("write_stall_timeout = \"0s\"")).expect("valid");
    assert_eq!(config.limits.write_stall_timeout, None);
}
