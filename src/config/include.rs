//! Drop-in files: `include = ["conf.d/*.toml"]` in the main file names further files that hold
//! only `[[hybrid_connection]]` and `[[forward]]` sections — one registration per file, added
//! and removed without touching the rest (docs/configuration.md "include").
//!
//! Each pattern is a glob (`*`, `?`, `[…]`; a leading `.` must be matched literally, so editor
//! and hidden files stay out), relative to the main file's directory unless absolute. Matches
//! are taken in sorted order, pattern by pattern; a file matched twice counts once. A pattern
//! without a wildcard names a file that must exist; one with a wildcard may match nothing.
//! Every error about a drop-in names the file, then the key path inside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::{ConfigError, Reason};
use super::raw::{RawForward, RawHybridConnection};
use super::toml_errors;

/// The sections a drop-in may hold.
const ALLOWED: [&str; 2] = ["hybrid_connection", "forward"];

/// One drop-in file as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDropIn {
    #[serde(default)]
    pub hybrid_connection: Vec<RawHybridConnection>,
    #[serde(default)]
    pub forward: Vec<RawForward>,
}

/// A drop-in read from `file`.
pub(super) struct DropIn {
    pub file: PathBuf,
    pub raw: RawDropIn,
}

/// Where each registration was written; `hycod check` shows it above each section.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sources {
    /// The main configuration file, when the configuration was loaded from a file.
    pub main: Option<PathBuf>,
    /// The drop-in of each hybrid connection defined in one, by name.
    pub hybrid_connections: BTreeMap<String, PathBuf>,
    /// The drop-in of each forward defined in one, by name.
    pub forwards: BTreeMap<String, PathBuf>,
}

impl Sources {
    /// The file hybrid connection `name` came from, if known.
    pub fn of_hybrid_connection(&self, name: &str) -> Option<&Path> {
        self.hybrid_connections
            .get(name)
            .or(self.main.as_ref())
            .map(PathBuf::as_path)
    }

    /// The file forward `name` came from, if known.
    pub fn of_forward(&self, name: &str) -> Option<&Path> {
        self.forwards
            .get(name)
            .or(self.main.as_ref())
            .map(PathBuf::as_path)
    }
}

/// Reads every file `patterns` (the `include` key) names, relative to `base_dir`, in order.
pub(super) fn read_all(patterns: &[String], base_dir: &Path) -> Result<Vec<DropIn>, ConfigError> {
    let mut files: Vec<PathBuf> = Vec::new();
    for (index, pattern) in patterns.iter().enumerate() {
        for file in expand(pattern, index, base_dir)? {
            if !files.contains(&file) {
                files.push(file);
            }
        }
    }
    files.into_iter().map(read).collect()
}

/// The files one pattern names, sorted.
fn expand(pattern: &str, index: usize, base_dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let invalid = |message: String| {
        ConfigError::new(
            format!("include[{index}]"),
            Reason::InvalidIncludePattern {
                pattern: pattern.to_owned(),
                message,
            },
        )
    };
    if !pattern.contains(['*', '?', '[']) {
        return Ok(vec![base_dir.join(pattern)]);
    }
    // The directory is literal text: its own `[` or `*` must not act as wildcards.
    let full = if Path::new(pattern).is_absolute() {
        pattern.to_owned()
    } else {
        let dir = base_dir.to_str().ok_or_else(|| {
            invalid("the configuration file's directory is not valid UTF-8".to_owned())
        })?;
        format!("{}/{pattern}", glob::Pattern::escape(dir))
    };
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let matches = glob::glob_with(&full, options).map_err(|error| invalid(error.to_string()))?;
    let mut files = Vec::new();
    for entry in matches {
        let file = entry.map_err(|error| {
            ConfigError::new(
                error.path().display().to_string(),
                Reason::ReadFile {
                    io: error.error().to_string(),
                },
            )
        })?;
        files.push(file);
    }
    files.sort();
    Ok(files)
}

/// Reads and checks one drop-in: valid TOML, only the allowed sections, only known keys.
fn read(file: PathBuf) -> Result<DropIn, ConfigError> {
    let text = super::read_config_file(&file)?;
    let in_file = |error: ConfigError| error.in_file(&file);
    let table: toml::Table = super::parse_toml(&text).map_err(in_file)?;
    if let Some(key) = table.keys().find(|key| !ALLOWED.contains(&key.as_str())) {
        let key = toml_errors::shown_key(key);
        return Err(ConfigError::new(key, Reason::NotAllowedInDropIn).in_file(&file));
    }
    let raw = super::parse_toml(&text).map_err(in_file)?;
    Ok(DropIn { file, raw })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Config, Reason};

    const KEY: &str = "Kx5vX0c1Hk8xZy9uVmJ3Y2RlZmdoaWprbG1ub3BxcnM=";

    fn hc(name: &str, extra: &str) -> String {
        format!(
            "[[hybrid_connection]]\nname = \"{name}\"\nconnection_string = \"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=l;SharedAccessKey={KEY};EntityPath={name}\"\ntarget = \"tcp://127.0.0.1:1\"\n{extra}\n"
        )
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        std::fs::write(path, text).expect("written");
    }

    fn names(config: &Config) -> Vec<&str> {
        config
            .hybrid_connections
            .iter()
            .map(|hc| hc.name.as_str())
            .collect()
    }

    #[test]
    fn the_main_files_directory_is_literal_and_hidden_files_are_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = dir.path().join("etc[1]*");
        write(&base.join("conf.d/b.toml"), &hc("b", ""));
        write(&base.join("conf.d/a.toml"), &hc("a", ""));
        write(&base.join("conf.d/.#a.toml"), "not toml [");
        let text = format!("include = [\"conf.d/*.toml\"]\n{}", hc("main", ""));
        let config = Config::from_toml_str(&text, &base).expect("valid");
        assert_eq!(names(&config), ["main", "a", "b"]);
        assert_eq!(config.sources.main, None);
        assert_eq!(
            config.sources.of_hybrid_connection("a"),
            Some(base.join("conf.d/a.toml").as_path())
        );
        assert_eq!(config.sources.of_hybrid_connection("main"), None);
    }

    #[test]
    fn a_file_matched_twice_counts_once_and_absolute_patterns_ignore_the_base() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(&dir.path().join("d/x.toml"), &hc("x", ""));
        let absolute = format!("{}/d/*.toml", dir.path().display());
        let text = format!("include = [\"{absolute}\", \"d/x.toml\"]\n");
        let config = Config::from_toml_str(&text, dir.path()).expect("valid");
        assert_eq!(names(&config), ["x"]);
        let config = Config::from_toml_str(
            &format!("include = [\"{absolute}\"]\n"),
            Path::new("/nonexistent"),
        )
        .expect("valid");
        assert_eq!(names(&config), ["x"]);
    }

    #[test]
    fn a_duplicate_of_a_section_in_main_text_names_the_main_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let drop_in = dir.path().join("d/x.toml");
        write(&drop_in, &hc("x", ""));
        let text = format!("include = [\"d/*.toml\"]\n{}", hc("x", ""));
        let error = Config::from_toml_str(&text, dir.path()).expect_err("duplicate");
        assert_eq!(error.file.as_deref(), Some(drop_in.as_path()));
        assert_eq!(error.path, "hybrid_connection[0].name");
        assert_eq!(
            error.reason,
            Reason::InAnotherFile {
                duplicate: Box::new(Reason::DuplicateName {
                    name: "x".into(),
                    first_index: 0
                }),
                file: None,
            }
        );
        assert!(error
            .to_string()
            .ends_with("is already used by hybrid_connection[0] in the main configuration file"));
    }

    #[test]
    fn a_forward_listen_address_is_unique_across_files_and_relative_files_follow_the_drop_in() {
        let dir = tempfile::tempdir().expect("tempdir");
        let forward = |name: &str| {
            format!("[[forward]]\nname = \"{name}\"\nlisten = \"127.0.0.1:3300\"\nconnection_string_file = \"{name}.conn\"\n")
        };
        let conn = format!(
            "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=s;SharedAccessKey={KEY};EntityPath=e\n"
        );
        write(&dir.path().join("d/b.conn"), &conn);
        write(&dir.path().join("d/b.toml"), &forward("b"));
        let main = dir.path().join("hycod.toml");
        write(&dir.path().join("a.conn"), &conn);
        write(
            &main,
            &format!("include = [\"d/*.toml\"]\n{}", forward("a")),
        );
        let error = Config::load(&main).expect_err("same address");
        assert_eq!(
            error.to_string(),
            format!(
                "{}: forward[0].listen: 127.0.0.1:3300 is already the listen address of forward[0] in {}",
                dir.path().join("d/b.toml").display(),
                main.display()
            )
        );
        write(
            &main,
            &format!(
                "include = [\"d/*.toml\"]\n{}",
                forward("a").replace("3300", "3301")
            ),
        );
        let config = Config::load(&main).expect("b.conn read next to b.toml");
        assert_eq!(config.forwards.len(), 2);
        assert_eq!(config.sources.of_forward("a"), Some(main.as_path()));
    }

    #[test]
    fn warnings_from_a_drop_in_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let drop_in = dir.path().join("d/x.toml");
        write(
            &drop_in,
            &hc("x", "").replace(";EntityPath=x", ";EntityPath=x;Unknown=1"),
        );
        let config =
            Config::from_toml_str("include = [\"d/*.toml\"]\n", dir.path()).expect("valid");
        let shown: Vec<String> = config.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [format!(
                "{}: hybrid_connection[0].connection_string: unknown connection string key \"Unknown\" is ignored",
                drop_in.display()
            )]
        );
    }
}
