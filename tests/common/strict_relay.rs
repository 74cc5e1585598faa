//! The strict relay flags, shared by `tests/common` and the interop harness
//! (`tests/interop/daemon.rs`), which includes this file alone.

/// Flags that make the relays of the daemon's tests as strict as Azure (docs/relay.md "The
/// daemon's suites against the strict relay"): a short idle cut, ten times the test daemons'
/// 1 s keep-alives (`processes::KEEP_ALIVES`) so that only a keep-alive that stopped trips
/// it, not a busy stream starved of CPU on a loaded machine, and routing by `Host` (the tests
/// reach the relay as `127.0.0.1` and sign tokens for `localhost`). Azure's size limits are
/// always on.
pub(crate) const STRICT_RELAY: &[&str] = &[
    "--idle-timeout",
    "10s",
    "--namespace",
    "localhost",
    "--alias",
    "127.0.0.1",
];
