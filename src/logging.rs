//! Log set-up (`tracing`): text or JSON lines on stderr; the level comes from `RUST_LOG` when
//! set, else from the configuration. Log lines never carry secrets: tokens and keys are
//! `Secret`s, which print as `<redacted>`. Strings a peer chose are logged through
//! [`Escaped`], so they cannot break a line or carry terminal controls.

mod escape;

pub(crate) use escape::Escaped;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogLevel};

/// Installs the global subscriber; a second call (e.g. in tests) leaves the first in place.
pub(crate) fn init(format: LogFormat, level: LogLevel) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level.as_str()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
