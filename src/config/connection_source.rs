//! Reading the connection string of a `[[hybrid_connection]]` or a `[[forward]]` from exactly
//! one of `connection_string`, `connection_string_file` or `connection_string_env`, then parsing
//! it (protocol §3.5).
//!
//! The text is a [`Secret`] from the moment it is read; errors name the key and the file or
//! variable, never the content.

use std::env::VarError;
use std::path::{Path, PathBuf};

use crate::auth::connection_string::{ConnectionString, Credential};
use crate::secret::Secret;

use super::error::{ConfigError, ConfigWarning, Reason, Warning};
use super::raw::{RawForward, RawHybridConnection, SecretText};
use super::typed::ConnectionStringSource;

/// Looks up an environment variable (the process environment, or a map in tests).
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Result<String, VarError>;

/// The three connection-string keys of one section, as written.
pub(super) struct SourceKeys<'a> {
    pub connection_string: Option<&'a SecretText>,
    pub connection_string_file: Option<&'a PathBuf>,
    pub connection_string_env: Option<&'a String>,
}

impl RawHybridConnection {
    /// This section's connection-string keys.
    pub(super) fn source_keys(&self) -> SourceKeys<'_> {
        SourceKeys {
            connection_string: self.connection_string.as_ref(),
            connection_string_file: self.connection_string_file.as_ref(),
            connection_string_env: self.connection_string_env.as_ref(),
        }
    }
}

impl RawForward {
    /// This section's connection-string keys.
    pub(super) fn source_keys(&self) -> SourceKeys<'_> {
        SourceKeys {
            connection_string: self.connection_string.as_ref(),
            connection_string_file: self.connection_string_file.as_ref(),
            connection_string_env: self.connection_string_env.as_ref(),
        }
    }
}

/// A connection string, where it came from, and the warnings it raised.
pub(super) struct Loaded {
    pub source: ConnectionStringSource,
    pub connection_string: ConnectionString,
    pub warnings: Vec<ConfigWarning>,
}

/// Reads and parses the connection string given by `raw`, the keys of the section at `prefix`
/// (e.g. `hybrid_connection[0]`, `forward[1]`). Relative files are resolved against `base_dir`.
pub(super) fn load(
    raw: &SourceKeys<'_>,
    prefix: &str,
    base_dir: &Path,
    env: EnvLookup<'_>,
) -> Result<Loaded, ConfigError> {
    let given: Vec<&'static str> = [
        raw.connection_string.map(|_| "connection_string"),
        raw.connection_string_file.map(|_| "connection_string_file"),
        raw.connection_string_env.map(|_| "connection_string_env"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.len() > 1 {
        return Err(ConfigError::new(
            prefix,
            Reason::ConflictingConnectionStrings { keys: given },
        ));
    }
    let (key, source, text) = if let Some(inline) = raw.connection_string {
        (
            "connection_string",
            ConnectionStringSource::Inline,
            inline.0.clone(),
        )
    } else if let Some(file) = raw.connection_string_file {
        let file = base_dir.join(file);
        let text = read_secret_file(&file).map_err(|reason| {
            ConfigError::new(format!("{prefix}.connection_string_file"), reason)
        })?;
        (
            "connection_string_file",
            ConnectionStringSource::File(file),
            text,
        )
    } else if let Some(variable) = raw.connection_string_env {
        let text = read_secret_env(variable, env).map_err(|reason| {
            ConfigError::new(format!("{prefix}.connection_string_env"), reason)
        })?;
        (
            "connection_string_env",
            ConnectionStringSource::Env(variable.clone()),
            text,
        )
    } else {
        return Err(ConfigError::new(prefix, Reason::NoConnectionString));
    };
    let path = format!("{prefix}.{key}");
    let connection_string = ConnectionString::parse(text.expose())
        .map_err(|error| ConfigError::new(path.clone(), Reason::InvalidConnectionString(error)))?;
    let mut warnings: Vec<ConfigWarning> = connection_string
        .unknown_keys()
        .iter()
        .map(|key| ConfigWarning {
            path: path.clone(),
            kind: Warning::UnknownConnectionStringKey { key: key.clone() },
        })
        .collect();
    if let ConnectionStringSource::File(file) = &source {
        if readable_by_others(file) {
            warnings.push(ConfigWarning {
                path: path.clone(),
                kind: Warning::SecretFileReadableByOthers { file: file.clone() },
            });
        }
    }
    if matches!(connection_string.credential(), Credential::Signature(_)) {
        warnings.push(ConfigWarning {
            path,
            kind: Warning::FixedSignature,
        });
    }
    Ok(Loaded {
        source,
        connection_string,
        warnings,
    })
}

/// Whether users other than the owner and group may read `file` (mode `o+r`): a key file
/// should be `0600` or `0640`.
fn readable_by_others(file: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(file).is_ok_and(|m| m.permissions().mode() & 0o004 != 0)
}

/// A secret file's content without surrounding whitespace (a trailing newline is usual); the
/// error names the file, never the content.
pub fn read_secret_file(file: &Path) -> Result<Secret, Reason> {
    std::fs::read_to_string(file).map(trimmed).map_err(|error| {
        Reason::ConnectionStringFileUnreadable {
            file: file.to_path_buf(),
            io: error.to_string(),
        }
    })
}

/// A secret environment variable's value without surrounding whitespace; the error names the
/// variable.
pub fn read_secret_env(variable: &str, env: EnvLookup<'_>) -> Result<Secret, Reason> {
    match env(variable) {
        Ok(text) => Ok(trimmed(text)),
        Err(VarError::NotPresent) => Err(Reason::ConnectionStringEnvMissing {
            variable: variable.to_owned(),
        }),
        Err(VarError::NotUnicode(_)) => Err(Reason::ConnectionStringEnvNotUnicode {
            variable: variable.to_owned(),
        }),
    }
}

/// `text` without surrounding whitespace; the untrimmed copy is zeroised too.
fn trimmed(text: String) -> Secret {
    let whole = Secret::new(text);
    Secret::new(whole.expose().trim())
}
