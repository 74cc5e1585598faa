//! Configuration errors and warnings: the key path and one reason per rule (architecture §5).
//!
//! Every error displays as `{path}: {reason}`, e.g.
//! `hybrid_connection[1].target: expected tcp://host:port, got "db01" (not an absolute URL)`.
//! No reason carries a secret: connection-string problems are described by
//! [`ConnectionStringError`], which never holds a key, and URL texts are echoed only after
//! [`without_credentials`] has removed any `user:password@` part.

use std::fmt;
use std::net::{AddrParseError, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::auth::connection_string::{ConnectionStringError, EntityPathProblem};

use super::duration::{self, DurationError};

/// A rejected configuration: where (`path`, a key path such as `hybrid_connection[1].target`, or
/// the configuration file for errors about the file itself; `file` when the key is in an
/// included file) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The included file the key path is in; `None` for the main file.
    pub file: Option<PathBuf>,
    /// The key path the error is about.
    pub path: String,
    /// What is wrong with it.
    pub reason: Reason,
}

impl ConfigError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, reason: Reason) -> Self {
        Self {
            file: None,
            path: path.into(),
            reason,
        }
    }

    /// The same error, about a key in the included file `file`.
    pub fn in_file(self, file: &Path) -> Self {
        Self {
            file: Some(file.to_path_buf()),
            ..self
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        write!(f, "{}: {}", self.path, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Why a configuration was rejected, one variant per rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The configuration file could not be read.
    ReadFile { io: String },
    /// The text is not valid TOML.
    TomlSyntax {
        line: usize,
        column: usize,
        message: String,
    },
    /// A key the configuration does not know (`deny_unknown_fields`); `section` is the table it
    /// appeared in (empty for the top level) and `expected` lists the keys that table accepts.
    UnknownKey {
        key: String,
        section: String,
        expected: String,
    },
    /// A value of the wrong TOML type or an unknown enum word, as the TOML reader describes it.
    InvalidValue {
        line: usize,
        column: usize,
        message: String,
    },
    /// A required key is absent.
    MissingKey,
    /// Neither a `[[hybrid_connection]]` nor a `[[forward]]` is configured.
    NothingToServe,
    /// `name` is empty.
    EmptyName,
    /// `name` contains a character outside `[A-Za-z0-9_.-]` (it is a metric label).
    NameCharacter { character: char },
    /// Two hybrid connections share a `name`; `first_index` is the earlier one.
    DuplicateName { name: String, first_index: usize },
    /// Two forwards share a `name`; `first_index` is the earlier one.
    DuplicateForwardName { name: String, first_index: usize },
    /// Two forwards listen on the same address (port 0 excepted); `first_index` is the earlier.
    DuplicateListen {
        listen: SocketAddr,
        first_index: usize,
    },
    /// `duplicate` (one of the three above), with the earlier section in another file: an
    /// included file, or the main file (`None` when it was not read from a file).
    InAnotherFile {
        duplicate: Box<Reason>,
        file: Option<PathBuf>,
    },
    /// An `include` pattern is not a valid glob.
    InvalidIncludePattern { pattern: String, message: String },
    /// A section other than `[[hybrid_connection]]` and `[[forward]]` in an included file.
    NotAllowedInDropIn,
    /// None of `connection_string`, `connection_string_file`, `connection_string_env` is given.
    NoConnectionString,
    /// More than one connection string source is given.
    ConflictingConnectionStrings { keys: Vec<&'static str> },
    /// `connection_string_file` could not be read.
    ConnectionStringFileUnreadable { file: PathBuf, io: String },
    /// The variable named by `connection_string_env` is not set.
    ConnectionStringEnvMissing { variable: String },
    /// The variable named by `connection_string_env` is not valid Unicode.
    ConnectionStringEnvNotUnicode { variable: String },
    /// The connection string is malformed (protocol §3.5).
    InvalidConnectionString(ConnectionStringError),
    /// Neither `entity_path` nor the connection string's `EntityPath` names the hybrid connection.
    MissingEntityPath,
    /// `entity_path` and the connection string's `EntityPath` differ.
    EntityPathMismatch {
        configured: String,
        in_connection_string: String,
    },
    /// `entity_path` is not a usable hybrid connection path.
    InvalidEntityPath { problem: EntityPathProblem },
    /// Neither `target` nor `http_target` is given.
    NoTarget,
    /// A URL-valued key does not have the expected shape.
    InvalidUrl {
        expected: &'static str,
        got: String,
        problem: UrlProblem,
    },
    /// `proxy_password_file` / `proxy_password_env` without a user in `proxy`.
    ProxyPasswordWithoutUser,
    /// `proxy` names a user but no password key is given.
    ProxyUserWithoutPassword,
    /// Both `proxy_password_file` and `proxy_password_env` are given.
    ConflictingProxyPasswords,
    /// `proxy_password_file` could not be read.
    ProxyPasswordFileUnreadable { file: PathBuf, io: String },
    /// The variable named by `proxy_password_env` is not set (or not Unicode).
    ProxyPasswordEnvMissing { variable: String },
    /// No `proxy` key, and the environment's proxy variable is not a usable proxy URL.
    InvalidProxyVariable {
        variable: &'static str,
        problem: crate::proxy::url::ProxyUrlProblem,
    },
    /// `relay_ca_file` is given without a `wss://` `relay_url`.
    CaFileWithoutTlsRelay,
    /// `tls_roots` is empty.
    EmptyTrustRoots,
    /// `tls_roots` and `relay_ca_file` are both given.
    ConflictingTrustRoots,
    /// `relay_ca_file` could not be read.
    CaFileUnreadable { file: PathBuf, io: String },
    /// `listeners` is outside `1..=max`.
    ListenersOutOfRange { got: usize, max: usize },
    /// A duration text is malformed.
    InvalidDuration { got: String, error: DurationError },
    /// A duration is below its minimum.
    DurationTooShort { got: Duration, min: Duration },
    /// A socket address is not `ip:port`.
    InvalidSocketAddr { got: String, error: AddrParseError },
    /// A duration is above its maximum.
    DurationTooLong { got: Duration, max: Duration },
    /// A count or size of `[limits]` (or a per-hybrid-connection maximum) is outside `min..=max`.
    LimitOutOfRange { got: u64, min: u64, max: u64 },
    /// A `rendezvous_hosts` entry is not a host name or `*.` followed by one.
    InvalidHostPattern { got: String },
    /// A key that only means something when the peer is azbridge (`targets`, `port_name`).
    NeedsAzbridgePeer,
    /// A port name that azbridge would not accept.
    InvalidPortName { got: String },
    /// `peer = "azbridge"` on a forward whose `listen` port is 0 and without `port_name`.
    PortNameRequired,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ReadFile { io } => write!(f, "cannot read the configuration file: {io}"),
            Self::TomlSyntax {
                line,
                column,
                message,
            } => write!(f, "invalid TOML at line {line}, column {column}: {message}"),
            Self::UnknownKey {
                key,
                section,
                expected,
            } => {
                if section.is_empty() {
                    write!(f, "unknown key {key:?} at the top level")?;
                } else {
                    write!(f, "unknown key {key:?} in {section}")?;
                }
                write!(f, "; expected {expected}")
            }
            Self::InvalidValue {
                line,
                column,
                message,
            } => write!(f, "{message} (line {line}, column {column})"),
            Self::MissingKey => f.write_str("this key is required"),
            Self::NothingToServe => {
                f.write_str("at least one [[hybrid_connection]] or [[forward]] is required")
            }
            Self::EmptyName => f.write_str("the name must not be empty"),
            Self::NameCharacter { character } => write!(
                f,
                "the name may contain only A-Z, a-z, 0-9, '_', '.' and '-', found {character:?}"
            ),
            Self::DuplicateName { name, first_index } => write!(
                f,
                "the name {name:?} is already used by hybrid_connection[{first_index}]"
            ),
            Self::DuplicateForwardName { name, first_index } => write!(
                f,
                "the name {name:?} is already used by forward[{first_index}]"
            ),
            Self::DuplicateListen {
                listen,
                first_index,
            } => write!(f, "{listen} is already the listen address of forward[{first_index}]"),
            Self::InAnotherFile { duplicate, file } => match file {
                Some(file) => write!(f, "{duplicate} in {}", file.display()),
                None => write!(f, "{duplicate} in the main configuration file"),
            },
            Self::InvalidIncludePattern { pattern, message } => {
                write!(f, "invalid pattern {pattern:?}: {message}")
            }
            Self::NotAllowedInDropIn => f.write_str(
                "not allowed in an included file, which holds only [[hybrid_connection]] and [[forward]] sections",
            ),
            Self::NoConnectionString => f.write_str(
                "one of connection_string, connection_string_file or connection_string_env is required",
            ),
            Self::ConflictingConnectionStrings { keys } => write!(
                f,
                "give only one of connection_string, connection_string_file or connection_string_env, found {}",
                keys.join(" and ")
            ),
            Self::ConnectionStringFileUnreadable { file, io } => {
                write!(f, "cannot read {}: {io}", file.display())
            }
            Self::ConnectionStringEnvMissing { variable } => {
                write!(f, "the environment variable {variable} is not set")
            }
            Self::ConnectionStringEnvNotUnicode { variable } => {
                write!(f, "the environment variable {variable} is not valid Unicode")
            }
            Self::InvalidConnectionString(error) => error.fmt(f),
            Self::MissingEntityPath => f.write_str(
                "required because the connection string has no EntityPath",
            ),
            Self::EntityPathMismatch {
                configured,
                in_connection_string,
            } => write!(
                f,
                "{configured:?} disagrees with the connection string's EntityPath {in_connection_string:?}"
            ),
            Self::InvalidEntityPath { problem } => {
                write!(f, "not a usable hybrid connection path: {problem}")
            }
            Self::NoTarget => {
                f.write_str("at least one of target, targets or http_target is required")
            }
            Self::InvalidUrl {
                expected,
                got,
                problem,
            } => write!(f, "expected {expected}, got {got:?} ({problem})"),
            Self::ProxyPasswordWithoutUser => f.write_str(
                "needs a user in proxy (proxy = \"http://USER@host:port\")",
            ),
            Self::ProxyUserWithoutPassword => f.write_str(
                "names a user, so proxy_password_file or proxy_password_env is required",
            ),
            Self::ConflictingProxyPasswords => {
                f.write_str("give only one of proxy_password_file or proxy_password_env")
            }
            Self::ProxyPasswordFileUnreadable { file, io } => {
                write!(f, "cannot read {}: {io}", file.display())
            }
            Self::ProxyPasswordEnvMissing { variable } => {
                write!(f, "the environment variable {variable} is not set or not valid Unicode")
            }
            Self::InvalidProxyVariable { variable, problem } => write!(
                f,
                "not set, so the environment's {variable} applies, but its value is unusable \
                 ({problem}); set proxy = \"none\" or a proxy URL"
            ),
            Self::CaFileWithoutTlsRelay => {
                f.write_str("relay_ca_file needs a wss:// relay_url (or none: Azure)")
            }
            Self::EmptyTrustRoots => {
                f.write_str("expected \"webpki\", \"system\" or a CA file, got \"\"")
            }
            Self::ConflictingTrustRoots => {
                f.write_str("give only one of tls_roots or relay_ca_file")
            }
            Self::CaFileUnreadable { file, io } => {
                write!(f, "cannot read {}: {io}", file.display())
            }
            Self::ListenersOutOfRange { got, max } => {
                write!(f, "must be between 1 and {max}, got {got}")
            }
            Self::InvalidDuration { got, error } => {
                write!(f, "expected a duration such as \"30s\", got {got:?}: {error}")
            }
            Self::DurationTooShort { got, min } => write!(
                f,
                "must be at least {}, got {}",
                duration::format(*min),
                duration::format(*got)
            ),
            Self::InvalidSocketAddr { got, error } => {
                write!(f, "expected ip:port, got {got:?}: {error}")
            }
            Self::DurationTooLong { got, max } => write!(
                f,
                "must be at most {}, got {}",
                duration::format(*max),
                duration::format(*got)
            ),
            Self::LimitOutOfRange { got, min, max } => {
                write!(f, "must be between {min} and {max}, got {got}")
            }
            Self::InvalidHostPattern { got } => write!(
                f,
                "{got:?} is not a host name (letters, digits, '-' and '.') or '*.' followed by one"
            ),
            Self::NeedsAzbridgePeer => f.write_str(
                "only used with peer = \"azbridge\" (port names travel in azbridge's preamble)",
            ),
            Self::InvalidPortName { got } => write!(
                f,
                "expected a port name of 1 to 255 characters from A-Z a-z 0-9 / _ - ., got {got:?}"
            ),
            Self::PortNameRequired => f.write_str(
                "required with peer = \"azbridge\" when listen has port 0 (azbridge names a port by its number)",
            ),
        }
    }
}

/// What is wrong with a URL-valued key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlProblem {
    /// The text is not an absolute URL.
    NotAUrl(url::ParseError),
    /// The scheme is not one the key accepts.
    WrongScheme,
    /// The URL has no host.
    NoHost,
    /// The URL has no port and the key requires one.
    NoPort,
    /// The URL carries `user:password@`; credentials in URLs are not supported.
    Credentials,
    /// A proxy URL carries a password; it belongs in `proxy_password_file` or `_env`.
    Password,
    /// The URL has a path where none is allowed.
    Path,
    /// The URL has a `?query`.
    Query,
    /// The URL has a `#fragment`.
    Fragment,
}

impl fmt::Display for UrlProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAUrl(error) => write!(f, "not an absolute URL: {error}"),
            Self::WrongScheme => f.write_str("wrong scheme"),
            Self::NoHost => f.write_str("no host"),
            Self::NoPort => f.write_str("no port"),
            Self::Credentials => f.write_str("credentials in URLs are not supported"),
            Self::Password => f.write_str(
                "a password in the URL is not supported; use proxy_password_file or proxy_password_env",
            ),
            Self::Path => f.write_str("no path allowed"),
            Self::Query => f.write_str("no query allowed"),
            Self::Fragment => f.write_str("no fragment allowed"),
        }
    }
}

/// `text` with any `user:password@` in its authority replaced by `<redacted>@`, so a URL can be
/// echoed in an error message without leaking a credential.
pub fn without_credentials(text: &str) -> String {
    let authority_start = text.find("://").map_or(0, |i| i + 3);
    let rest = &text[authority_start..];
    let authority_len = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_len].rfind('@') {
        Some(at) => format!(
            "{}{}{}",
            &text[..authority_start],
            crate::secret::REDACTED,
            &rest[at..]
        ),
        None => text.to_owned(),
    }
}

/// A configuration that loads but deserves attention (printed by `hycod check`, logged by the
/// daemon).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The key path the warning is about.
    pub path: String,
    /// What deserves attention.
    pub kind: Warning,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.kind)
    }
}

/// The kinds of [`ConfigWarning`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// The connection string has a key the parser does not know; it is ignored (protocol §3.5).
    UnknownConnectionStringKey { key: String },
    /// The connection string carries a ready-made `SharedAccessSignature`, which cannot be
    /// renewed: the hybrid connection goes offline when it expires (protocol §3.5).
    FixedSignature,
    /// `connection_string_file` may be read by every user of the host (mode `o+r`).
    SecretFileReadableByOthers { file: PathBuf },
    /// A key kept for existing configurations that another key replaces (`relay_ca_file`:
    /// `tls_roots`).
    DeprecatedKey { replacement: &'static str },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownConnectionStringKey { key } => {
                write!(f, "unknown connection string key {key:?} is ignored")
            }
            Self::FixedSignature => f.write_str(
                "the connection string carries a fixed SharedAccessSignature, which cannot be renewed; \
                 the listeners go offline when it expires",
            ),
            Self::SecretFileReadableByOthers { file } => write!(
                f,
                "{} holds a secret and is readable by every user; restrict it (chmod 600)",
                file.display()
            ),
            Self::DeprecatedKey { replacement } => write!(
                f,
                "this key is deprecated and may be removed; write {replacement} instead, which \
                 means the same"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_path_then_reason() {
        let error = ConfigError::new(
            "hybrid_connection[1].target",
            Reason::InvalidUrl {
                expected: "tcp://host:port",
                got: "db01".into(),
                problem: UrlProblem::NotAUrl(url::ParseError::RelativeUrlWithoutBase),
            },
        );
        assert!(error
            .to_string()
            .starts_with("hybrid_connection[1].target: expected tcp://host:port, got \"db01\""));
    }

    #[test]
    fn unknown_key_names_section_and_key() {
        let error = ConfigError::new(
            "runtime.workerz",
            Reason::UnknownKey {
                key: "workerz".into(),
                section: "runtime".into(),
                expected: "`workers`".into(),
            },
        );
        assert_eq!(
            error.to_string(),
            "runtime.workerz: unknown key \"workerz\" in runtime; expected `workers`"
        );
        let top = Reason::UnknownKey {
            key: "bogus".into(),
            section: String::new(),
            expected: "one of `runtime`".into(),
        };
        assert!(top.to_string().contains("at the top level"));
    }

    #[test]
    fn credentials_are_removed_from_echoed_urls() {
        assert_eq!(
            without_credentials("http://user:hunter2@proxy:8080/x"),
            "http://<redacted>@proxy:8080/x"
        );
        assert_eq!(without_credentials("user:pw@host:1"), "<redacted>@host:1");
        assert_eq!(without_credentials("tcp://db01:3300"), "tcp://db01:3300");
        assert_eq!(without_credentials("http://h/a@b"), "http://h/a@b");
    }

    #[test]
    fn warnings_display_path_and_kind() {
        let warning = ConfigWarning {
            path: "hybrid_connection[0].connection_string".into(),
            kind: Warning::UnknownConnectionStringKey { key: "Foo".into() },
        };
        assert_eq!(
            warning.to_string(),
            "hybrid_connection[0].connection_string: unknown connection string key \"Foo\" is ignored"
        );
    }
}
