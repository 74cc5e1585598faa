//! The `hycod relay --config` file (TOML, docs/relay.md): its top-level keys are the flags of
//! [`RelayArgs`]; `[[hybrid_connection]]` and `[[rule]]` sections list what it serves and who
//! may use it. It is read with the daemon's machinery ([`crate::config::parse_toml`]): unknown
//! keys are rejected and every error names the key path.
//!
//! A rule's key comes from exactly one of `key_file` (relative to the file's directory) or
//! `key_env`; there is no inline key. A key file that users other than its owner and group may
//! read or write, or that its group may write (anything beyond `0640`), is refused, as ssh
//! refuses such private keys: the key it holds must be assumed known.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::config::{
    error, parse_rights, path_problem, KeySource, RelayArgs, RelayConfigError, RuleSpec,
};
use crate::auth::verify::{Right, Rights};
use crate::config::{parse_toml, read_config_file, read_secret_env, read_secret_file, EnvLookup};
use crate::secret::Secret;

/// The permission bits a key file must not have: group write, and anything for other users.
const KEY_FILE_FORBIDDEN_MODE: u32 = 0o027;

/// One `[[hybrid_connection]]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HybridConnectionSection {
    /// The hybrid connection's path, e.g. `sap-gateway`.
    pub name: Option<String>,
    /// `false`: senders need no token (anonymous senders, Azure's `requiresClientAuthorization`
    /// of the entity); listeners still need a Listen token. Default: `true`.
    pub requires_client_authorization: Option<bool>,
}

/// One `[[rule]]`: a shared access rule of the namespace, or of one hybrid connection.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSection {
    /// The rule's name (`SharedAccessKeyName` in connection strings and tokens).
    pub name: Option<String>,
    /// A file holding the key.
    pub key_file: Option<PathBuf>,
    /// An environment variable holding the key.
    pub key_env: Option<String>,
    /// `listen`, `send`, `manage`; default: manage (all).
    pub rights: Option<Vec<String>>,
    /// The hybrid connection the rule is scoped to; default: the whole namespace.
    pub entity: Option<String>,
}

/// Reads and parses the file at `path` (keys are read later, by [`rule`]).
pub(super) fn load(path: &Path) -> Result<RelayArgs, RelayConfigError> {
    let text = read_config_file(path)?;
    Ok(parse_toml(&text)?)
}

/// `rule[index]` as a rule, with the hybrid connection it is scoped to, if any.
pub(super) fn rule(
    section: &RuleSection,
    index: usize,
    base_dir: &Path,
    env: EnvLookup<'_>,
) -> Result<(Option<String>, RuleSpec), RelayConfigError> {
    let at = |key: &str| format!("rule[{index}].{key}");
    let name = match section.name.as_deref().map(str::trim) {
        None => return Err(error(at("name"), "this key is required")),
        Some("") => return Err(error(at("name"), "the name must not be empty")),
        Some(name) => name.to_owned(),
    };
    let (key, source, key_path) = match (&section.key_file, &section.key_env) {
        (Some(_), Some(_)) => {
            return Err(error(
                format!("rule[{index}]"),
                "give only one of key_file or key_env, found both",
            ))
        }
        (None, None) => {
            return Err(error(
                format!("rule[{index}]"),
                "one of key_file or key_env is required (keys are never written into this file)",
            ))
        }
        (Some(file), None) => {
            let file = base_dir.join(file);
            let key = private_key_file(&file).map_err(|reason| error(at("key_file"), reason))?;
            (key, KeySource::File(file), at("key_file"))
        }
        (None, Some(variable)) => {
            let key = read_secret_env(variable, env)
                .map_err(|reason| error(at("key_env"), reason.to_string()))?;
            (key, KeySource::Env(variable.clone()), at("key_env"))
        }
    };
    if key.expose().is_empty() {
        return Err(error(key_path, "the key is empty"));
    }
    let rights = match &section.rights {
        None => Rights::of(&[Right::Manage]),
        Some(words) if words.is_empty() => {
            return Err(error(
                at("rights"),
                "list at least one of listen, send, manage",
            ))
        }
        Some(words) => parse_rights(words.iter().map(String::as_str))
            .map_err(|reason| error(at("rights"), reason))?,
    };
    if let Some(entity) = &section.entity {
        if let Some(problem) = path_problem(entity) {
            return Err(error(at("entity"), problem));
        }
    }
    let spec = RuleSpec {
        name,
        key,
        rights,
        source,
    };
    Ok((section.entity.clone(), spec))
}

/// The key in `file`, if only its owner (and its group, read-only) may use the file.
fn private_key_file(file: &Path) -> Result<Secret, String> {
    use std::os::unix::fs::PermissionsExt;
    let key = read_secret_file(file).map_err(|reason| reason.to_string())?;
    let mode = std::fs::metadata(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?
        .permissions()
        .mode();
    if mode & KEY_FILE_FORBIDDEN_MODE != 0 {
        return Err(format!(
            "{} is open to other users (mode {:04o}); a key file must be at most 0640 (e.g. chmod 600)",
            file.display(),
            mode & 0o7777
        ));
    }
    Ok(key)
}
