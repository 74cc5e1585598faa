//! The process signals the daemon acts on (architecture §3 "Lifecycle"), caught with `signal-hook`
//! and handed to a callback on a dedicated thread, so the handlers themselves only do what is
//! async-signal-safe.

use std::io;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// A signal the daemon handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: drain and stop (what `systemctl stop` sends).
    Terminate,
    /// SIGINT: the same as SIGTERM (Ctrl-C).
    Interrupt,
    /// SIGHUP: re-read the configuration.
    Hangup,
}

impl Signal {
    /// The signal number.
    pub fn number(self) -> i32 {
        match self {
            Self::Terminate => SIGTERM,
            Self::Interrupt => SIGINT,
            Self::Hangup => SIGHUP,
        }
    }

    /// The conventional name, for logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Terminate => "SIGTERM",
            Self::Interrupt => "SIGINT",
            Self::Hangup => "SIGHUP",
        }
    }

    fn from_number(number: i32) -> Option<Self> {
        [Self::Terminate, Self::Interrupt, Self::Hangup]
            .into_iter()
            .find(|signal| signal.number() == number)
    }
}

/// Installs handlers for SIGTERM, SIGINT and SIGHUP (replacing their default actions) and
/// calls `deliver` for each one caught, in order, on a thread named `hycod-signals`.
pub fn forward(deliver: impl Fn(Signal) + Send + 'static) -> io::Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    std::thread::Builder::new()
        .name("hycod-signals".to_owned())
        .spawn(move || {
            for number in signals.forever() {
                if let Some(signal) = Signal::from_number(number) {
                    deliver(signal);
                }
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for signal in [Signal::Terminate, Signal::Interrupt, Signal::Hangup] {
            assert_eq!(Signal::from_number(signal.number()), Some(signal));
        }
        assert_eq!(Signal::from_number(signal_hook::consts::SIGUSR1), None);
        assert_eq!(Signal::Terminate.number(), 15);
        assert_eq!(Signal::Interrupt.name(), "SIGINT");
    }
}
