//! Dependencies inside the crate point one way: `proto` (sans-I/O) ← `io` ← `daemon` / `relay` ←
//! `cli`, with `config` a data model that none of the I/O layers below it reach into and that
//! reaches into none of them (architecture "Layers"). Each rule names a folder of `src/` and the
//! top-level modules its code must not name as `crate::…`; a forbidden dependency that comes
//! back fails here with the file and line.
//!
//! Only text is read; comment lines are skipped, so a doc comment may still point at a module.

use std::path::{Path, PathBuf};

/// (folder or file under `src/`, top-level modules it must not use).
const RULES: &[(&str, &[&str])] = &[
    (
        "proto",
        &[
            "auth", "cli", "config", "daemon", "demo", "io", "logging", "metrics", "proxy",
            "relay", "runtime", "tls",
        ],
    ),
    (
        "config",
        &[
            "cli", "daemon", "demo", "io", "logging", "metrics", "relay", "runtime",
        ],
    ),
    ("io", &["cli", "config", "daemon", "demo", "relay"]),
    ("daemon", &["cli", "demo", "relay"]),
    ("relay", &["cli", "daemon", "demo"]),
];

/// Within the daemon: the listener and the sender side do not reach into the process lifecycle
/// (which steers them), except the channel status flag a control channel sets.
const DAEMON_RULES: &[(&str, &[&str])] = &[
    (
        "daemon/listener",
        &[
            "daemon::process::handle",
            "daemon::process::worker",
            "daemon::process::supervisor",
            "daemon::process::lifecycle",
            "daemon::process::reload",
            "daemon::process::admin",
            "daemon::forward",
        ],
    ),
    ("daemon/forward", &["daemon::process", "daemon::listener"]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file of `src/<layer>` (the folder and its sibling `<layer>.rs`, if any).
fn files_of(layer: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let file = src().join(format!("{layer}.rs"));
    if file.is_file() {
        out.push(file);
    }
    let mut dirs = vec![src().join(layer)];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// `(file:line, path)` for every `crate::<path>` in code (not comments) of `layer` whose path
/// starts with one of `forbidden` (followed by `::`, `;`, `}` or another non-identifier byte).
fn violations(layer: &str, forbidden: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for file in files_of(layer) {
        let text = std::fs::read_to_string(&file).expect("source file");
        for (number, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for (at, _) in line.match_indices("crate::") {
                let rest = &line[at + "crate::".len()..];
                for module in forbidden {
                    let Some(after) = rest.strip_prefix(module) else {
                        continue;
                    };
                    if !after.starts_with(|c: char| c.is_alphanumeric() || c == '_') {
                        let shown = file.strip_prefix(src()).unwrap_or(&file).display();
                        found.push(format!("src/{shown}:{}: crate::{module}", number + 1));
                    }
                }
            }
        }
    }
    found
}

#[test]
fn lower_layers_do_not_depend_on_higher_ones() {
    let mut all = Vec::new();
    for (layer, forbidden) in RULES.iter().chain(DAEMON_RULES) {
        assert!(
            !files_of(layer).is_empty(),
            "src/{layer} has no source files: the rule is stale"
        );
        all.extend(violations(layer, forbidden));
    }
    assert!(
        all.is_empty(),
        "forbidden dependencies:\n{}",
        all.join("\n")
    );
}

#[test]
fn the_scanner_sees_a_dependency_and_ignores_comments() {
    // `daemon` does use `proto` and `config`, and mentions them in comments too.
    assert!(!violations("daemon", &["proto"]).is_empty());
    assert!(!violations("daemon", &["config"]).is_empty());
    // A prefix of a longer module name is not that module.
    assert!(violations("daemon", &["prot"]).is_empty());
}
