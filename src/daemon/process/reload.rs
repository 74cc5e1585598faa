//! What a reload (SIGHUP) changes, decided without touching anything (architecture §3
//! "Lifecycle": "add/remove/replace hybrid connections without touching streams of unchanged
//! ones").
//!
//! Hybrid connections are matched by `name`, and so are forwards (among themselves). One whose
//! every field is equal — including the connection string, which `Config::load` re-reads from
//! its file — is left alone; one with any difference is replaced. `runtime.workers`, `admin.listen` and `[log]` are fixed for the life
//! of the process: a change to them is reported and the running value kept.

use std::fmt;
use std::net::SocketAddr;

use crate::config::{Config, Forward, HybridConnection, Log, Workers};

/// The changes that take a new configuration into effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReloadPlan {
    /// New names, in configuration order: start their channels.
    pub added: Vec<HybridConnection>,
    /// Names no longer configured: stop their channels; their streams drain.
    pub removed: Vec<String>,
    /// Same name, some field differs (the new settings): start new channels, then stop the old.
    pub changed: Vec<HybridConnection>,
    /// Same name, every field equal: not touched.
    pub unchanged: Vec<String>,
    /// The same four lists for `[[forward]]`.
    pub forwards: Changes<Forward>,
    /// Settings that only a restart applies; their running values are kept.
    pub restart_required: Vec<RestartRequired>,
    /// The configuration that will be running: the new one with the restart-only settings of
    /// the running one.
    pub effective: Config,
}

/// What changed in one kind of named section, matched by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes<T> {
    /// New names, in configuration order.
    pub added: Vec<T>,
    /// Names no longer configured.
    pub removed: Vec<String>,
    /// Same name, some field differs (the new settings).
    pub changed: Vec<T>,
    /// Same name, every field equal.
    pub unchanged: Vec<String>,
}

impl<T> Changes<T> {
    /// Whether anything starts or stops.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// Matches `new` against `running` by `name`.
fn changes<T: PartialEq + Clone>(running: &[T], new: &[T], name: fn(&T) -> &str) -> Changes<T> {
    let mut added = Vec::new();
    let mut changed = Vec::new();
    let mut unchanged = Vec::new();
    for item in new {
        match running.iter().find(|old| name(old) == name(item)) {
            None => added.push(item.clone()),
            Some(old) if old == item => unchanged.push(name(item).to_owned()),
            Some(_) => changed.push(item.clone()),
        }
    }
    let removed = running
        .iter()
        .filter(|old| !new.iter().any(|item| name(item) == name(old)))
        .map(|old| name(old).to_owned())
        .collect();
    Changes {
        added,
        removed,
        changed,
        unchanged,
    }
}

/// A setting that changed but only applies after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartRequired {
    /// `runtime.workers`.
    Workers {
        running: Workers,
        configured: Workers,
    },
    /// `admin.listen`.
    AdminListen {
        running: Option<SocketAddr>,
        configured: Option<SocketAddr>,
    },
    /// `log.format` or `log.level`.
    Log { running: Log, configured: Log },
}

impl RestartRequired {
    /// The configuration key path.
    pub fn key(&self) -> &'static str {
        match self {
            Self::Workers { .. } => "runtime.workers",
            Self::AdminListen { .. } => "admin.listen",
            Self::Log { .. } => "log",
        }
    }
}

impl fmt::Display for RestartRequired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (running, configured) = match self {
            Self::Workers {
                running,
                configured,
            } => (workers_text(*running), workers_text(*configured)),
            Self::AdminListen {
                running,
                configured,
            } => (listen_text(*running), listen_text(*configured)),
            Self::Log {
                running,
                configured,
            } => (log_text(*running), log_text(*configured)),
        };
        write!(
            f,
            "{}: changed from {running} to {configured}; this needs a restart, {running} stays in effect",
            self.key()
        )
    }
}

fn workers_text(workers: Workers) -> String {
    match workers {
        Workers::PerCore => "0 (one per core)".to_owned(),
        Workers::Fixed(count) => count.to_string(),
    }
}

fn listen_text(listen: Option<SocketAddr>) -> String {
    listen.map_or_else(|| "none".to_owned(), |addr| addr.to_string())
}

fn log_text(log: Log) -> String {
    format!("{}/{}", log.format.as_str(), log.level.as_str())
}

/// Compares the running configuration with a newly loaded one.
pub(crate) fn diff(running: &Config, new: Config) -> ReloadPlan {
    let Changes {
        added,
        removed,
        changed,
        unchanged,
    } = changes(&running.hybrid_connections, &new.hybrid_connections, |hc| {
        &hc.name
    });
    let forwards = changes(&running.forwards, &new.forwards, |f| &f.name);
    let mut restart_required = Vec::new();
    if new.runtime.workers != running.runtime.workers {
        restart_required.push(RestartRequired::Workers {
            running: running.runtime.workers,
            configured: new.runtime.workers,
        });
    }
    if new.admin.listen != running.admin.listen {
        restart_required.push(RestartRequired::AdminListen {
            running: running.admin.listen,
            configured: new.admin.listen,
        });
    }
    if new.log != running.log {
        restart_required.push(RestartRequired::Log {
            running: running.log,
            configured: new.log,
        });
    }
    let effective = Config {
        runtime: running.runtime,
        admin: running.admin,
        log: running.log,
        ..new
    };
    ReloadPlan {
        added,
        removed,
        changed,
        unchanged,
        forwards,
        restart_required,
        effective,
    }
}

impl ReloadPlan {
    /// Whether the reload starts or stops anything.
    #[cfg(test)]
    pub(crate) fn touches_hybrid_connections(&self) -> bool {
        !(self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroUsize;
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::config::{LogFormat, LogLevel};

    const KEY_A: &str = "Kx5vX0c1Hk8xZy9uVmJ3Y2RlZmdoaWprbG1ub3BxcnM=";
    const KEY_B: &str = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVowMTIzNDU=";

    fn hc(name: &str, key: &str, target: &str) -> String {
        format!(
            r#"
[[hybrid_connection]]
name = "{name}"
connection_string = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey={key};EntityPath={name}"
target = "{target}"
"#
        )
    }

    fn config(head: &str, hcs: &[String]) -> Config {
        let text = format!("{head}\n{}", hcs.concat());
        Config::from_toml_str(&text, Path::new(".")).expect("valid configuration")
    }

    fn names(hcs: &[HybridConnection]) -> Vec<&str> {
        hcs.iter().map(|hc| hc.name.as_str()).collect()
    }

    #[test]
    fn an_identical_configuration_touches_nothing() {
        let running = config(
            "",
            &[hc("a", KEY_A, "tcp://db:1"), hc("b", KEY_A, "tcp://db:2")],
        );
        let plan = diff(&running, running.clone());
        assert!(!plan.touches_hybrid_connections());
        assert_eq!(plan.unchanged, ["a", "b"]);
        assert!(plan.restart_required.is_empty());
        assert_eq!(plan.effective, running);
    }

    #[test]
    fn hybrid_connections_are_matched_by_name() {
        let running = config(
            "",
            &[hc("a", KEY_A, "tcp://db:1"), hc("b", KEY_A, "tcp://db:2")],
        );
        let new = config(
            "",
            &[hc("c", KEY_A, "tcp://db:3"), hc("a", KEY_A, "tcp://db:1")],
        );
        let plan = diff(&running, new);
        assert_eq!(names(&plan.added), ["c"]);
        assert_eq!(plan.removed, ["b"]);
        assert!(plan.changed.is_empty());
        assert_eq!(plan.unchanged, ["a"]);
        assert!(plan.touches_hybrid_connections());
    }

    #[test]
    fn a_new_key_replaces_the_hybrid_connection() {
        let running = config(
            "",
            &[hc("a", KEY_A, "tcp://db:1"), hc("b", KEY_A, "tcp://db:2")],
        );
        let new = config(
            "",
            &[hc("a", KEY_B, "tcp://db:1"), hc("b", KEY_A, "tcp://db:2")],
        );
        let plan = diff(&running, new.clone());
        assert_eq!(plan.changed, vec![new.hybrid_connections[0].clone()]);
        assert_eq!(plan.unchanged, ["b"]);
        assert!(plan.added.is_empty() && plan.removed.is_empty());
    }

    #[test]
    fn any_other_field_replaces_it_too() {
        let running = config("", &[hc("a", KEY_A, "tcp://db:1")]);
        let mut new = running.clone();
        new.hybrid_connections[0].token_ttl = Duration::from_secs(600);
        assert_eq!(diff(&running, new).changed.len(), 1);
        let mut new = running.clone();
        new.hybrid_connections[0].listeners = NonZeroUsize::new(3);
        assert_eq!(diff(&running, new).changed.len(), 1);
        let new = config("", &[hc("a", KEY_A, "tcp://db:9")]);
        assert_eq!(diff(&running, new).changed.len(), 1);
    }

    #[test]
    fn a_limits_change_replaces_every_hybrid_connection_it_affects() {
        let hcs = [hc("a", KEY_A, "tcp://h:1"), hc("b", KEY_A, "tcp://h:2")];
        let running = config("", &hcs);
        let plan = diff(&running, config("[limits]\nidle_timeout = \"5m\"", &hcs));
        assert_eq!(names(&plan.changed), ["a", "b"]);
        assert!(plan.unchanged.is_empty());
        assert!(plan.restart_required.is_empty());
        assert_eq!(
            plan.effective.limits.idle_timeout,
            Some(Duration::from_secs(300))
        );
    }

    #[test]
    fn workers_admin_and_log_changes_are_kept_for_a_restart() {
        let running = config(
            "[runtime]\nworkers = 2\n[admin]\nlisten = \"127.0.0.1:9100\"",
            &[hc("a", KEY_A, "tcp://db:1")],
        );
        let new = config(
            "[runtime]\nworkers = 4\n[admin]\nlisten = \"127.0.0.1:9200\"\n[log]\nformat = \"json\"\n[shutdown]\ngrace = \"5s\"",
            &[hc("a", KEY_A, "tcp://db:1")],
        );
        let plan = diff(&running, new);
        let two = NonZeroUsize::new(2).expect("2 > 0");
        let four = NonZeroUsize::new(4).expect("4 > 0");
        assert_eq!(
            plan.restart_required,
            vec![
                RestartRequired::Workers {
                    running: Workers::Fixed(two),
                    configured: Workers::Fixed(four),
                },
                RestartRequired::AdminListen {
                    running: "127.0.0.1:9100".parse().ok(),
                    configured: "127.0.0.1:9200".parse().ok(),
                },
                RestartRequired::Log {
                    running: Log {
                        format: LogFormat::Text,
                        level: LogLevel::Info
                    },
                    configured: Log {
                        format: LogFormat::Json,
                        level: LogLevel::Info
                    },
                },
            ]
        );
        assert_eq!(plan.effective.runtime, running.runtime);
        assert_eq!(plan.effective.admin, running.admin);
        assert_eq!(plan.effective.log, running.log);
        assert_eq!(
            plan.effective.shutdown.grace,
            Duration::from_secs(5),
            "the grace applies live"
        );
        assert!(!plan.touches_hybrid_connections());
    }

    fn forward(name: &str, listen: &str, entity: &str) -> String {
        format!(
            r#"
[[forward]]
name = "{name}"
listen = "{listen}"
connection_string = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey={KEY_A};EntityPath={entity}"
"#
        )
    }

    #[test]
    fn forwards_are_matched_by_name_apart_from_hybrid_connections() {
        let running = config(
            "",
            &[
                hc("a", KEY_A, "tcp://db:1"),
                forward("a", "127.0.0.1:3300", "a"),
                forward("b", "127.0.0.1:3301", "a"),
                forward("c", "127.0.0.1:3302", "a"),
            ],
        );
        let new = config(
            "",
            &[
                hc("a", KEY_A, "tcp://db:1"),
                forward("a", "127.0.0.1:3300", "a"),
                forward("b", "127.0.0.1:3301", "other"),
                forward("d", "127.0.0.1:0", "a"),
            ],
        );
        let plan = diff(&running, new.clone());
        assert_eq!(plan.unchanged, ["a"], "the hybrid connection named a");
        assert!(!plan.touches_hybrid_connections());
        assert_eq!(plan.forwards.unchanged, ["a"]);
        assert_eq!(plan.forwards.changed, vec![new.forwards[1].clone()]);
        assert_eq!(plan.forwards.added, vec![new.forwards[2].clone()]);
        assert_eq!(plan.forwards.removed, ["c"]);
        assert!(!plan.forwards.is_empty());
        assert_eq!(plan.effective.forwards, new.forwards);
    }

    #[test]
    fn identical_forwards_are_not_touched() {
        let running = config("", &[forward("a", "127.0.0.1:0", "a")]);
        let plan = diff(&running, running.clone());
        assert!(plan.forwards.is_empty());
        assert_eq!(plan.forwards.unchanged, ["a"]);
    }

    #[test]
    fn restart_required_names_the_key_and_the_value_kept() {
        let kept = RestartRequired::Workers {
            running: Workers::PerCore,
            configured: Workers::Fixed(NonZeroUsize::new(3).expect("3 > 0")),
        };
        assert_eq!(
            kept.to_string(),
            "runtime.workers: changed from 0 (one per core) to 3; this needs a restart, 0 (one per core) stays in effect"
        );
        let kept = RestartRequired::AdminListen {
            running: None,
            configured: "127.0.0.1:9100".parse().ok(),
        };
        assert_eq!(
            kept.to_string(),
            "admin.listen: changed from none to 127.0.0.1:9100; this needs a restart, none stays in effect"
        );
    }
}
