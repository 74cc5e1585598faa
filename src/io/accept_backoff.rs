//! Pausing an accept loop when the process runs out of file descriptors
//! (docs/reliability.md "File descriptor exhaustion").
//!
//! `accept(2)` failing with EMFILE or ENFILE leaves the connection queued: accepting again at
//! once fails again and spins a core. [`AcceptBackoff`] answers how long to pause instead —
//! [`FIRST_PAUSE`], doubling up to [`MAX_PAUSE`] while the failures last — and resets on the
//! next success. Other errors (e.g. a connection reset while queued) concern one connection
//! only and need no pause. Sans-I/O: the caller sleeps.

use std::io;
use std::time::Duration;

/// The first pause after a resource failure.
pub(crate) const FIRST_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause.
pub(crate) const MAX_PAUSE: Duration = Duration::from_secs(1);

/// The pause state of one accept loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct AcceptBackoff {
    /// The pause after the next resource failure; `None` = no failure since the last success.
    next: Option<Duration>,
}

impl AcceptBackoff {
    /// After a failed accept: how long to pause before accepting again (`None`: go on at once).
    pub(crate) fn on_error(&mut self, error: &io::Error) -> Option<Duration> {
        if !is_resource_exhaustion(error) {
            return None;
        }
        let pause = self.next.unwrap_or(FIRST_PAUSE);
        self.next = Some(pause.saturating_mul(2).min(MAX_PAUSE));
        Some(pause)
    }

    /// After a successful accept.
    pub(crate) fn on_success(&mut self) {
        self.next = None;
    }

    /// Whether the loop is paused for want of resources (the first failure logs at error level).
    pub(crate) fn is_backing_off(&self) -> bool {
        self.next.is_some()
    }
}

/// The errno name of a resource failure (EMFILE, ENFILE, ENOBUFS, ENOMEM), for log lines.
pub(crate) fn resource_errno(error: &io::Error) -> Option<&'static str> {
    use rustix::io::Errno;
    let code = error.raw_os_error()?;
    [
        (Errno::MFILE, "EMFILE"),
        (Errno::NFILE, "ENFILE"),
        (Errno::NOBUFS, "ENOBUFS"),
        (Errno::NOMEM, "ENOMEM"),
    ]
    .into_iter()
    .find(|(errno, _)| errno.raw_os_error() == code)
    .map(|(_, name)| name)
}

/// Whether `error` means the process or system is out of descriptors or buffers.
pub(crate) fn is_resource_exhaustion(error: &io::Error) -> bool {
    resource_errno(error).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn emfile() -> io::Error {
        io::Error::from_raw_os_error(rustix::io::Errno::MFILE.raw_os_error())
    }

    #[test]
    fn resource_failures_pause_with_doubling_up_to_the_maximum() {
        let mut backoff = AcceptBackoff::default();
        let pauses: Vec<_> = (0..10).map(|_| backoff.on_error(&emfile())).collect();
        assert_eq!(pauses[0], Some(FIRST_PAUSE));
        assert_eq!(pauses[1], Some(FIRST_PAUSE * 2));
        assert_eq!(pauses[9], Some(MAX_PAUSE));
        assert!(backoff.is_backing_off());
    }

    #[test]
    fn a_success_resets_the_pause() {
        let mut backoff = AcceptBackoff::default();
        backoff.on_error(&emfile());
        backoff.on_error(&emfile());
        backoff.on_success();
        assert!(!backoff.is_backing_off());
        assert_eq!(backoff.on_error(&emfile()), Some(FIRST_PAUSE));
    }

    #[test]
    fn other_errors_need_no_pause() {
        let mut backoff = AcceptBackoff::default();
        let reset = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(backoff.on_error(&reset), None);
        assert!(!backoff.is_backing_off());
    }

    #[test]
    fn errno_names_are_given_for_resource_failures() {
        assert_eq!(resource_errno(&emfile()), Some("EMFILE"));
        let enfile = io::Error::from_raw_os_error(rustix::io::Errno::NFILE.raw_os_error());
        assert_eq!(resource_errno(&enfile), Some("ENFILE"));
        assert_eq!(
            resource_errno(&io::Error::from(io::ErrorKind::ConnectionReset)),
            None
        );
    }
}
