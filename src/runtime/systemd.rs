//! systemd's notification protocol (sd_notify(3), systemd.service(5) `Type=notify` and
//! `Type=notify-reload`) without libsystemd: newline-separated `KEY=VALUE` assignments in one
//! datagram to the Unix socket named by `$NOTIFY_SOCKET` (a path, or an abstract name written
//! with a leading `@`). Without `$NOTIFY_SOCKET` every call is a no-op.
//!
//! The watchdog (`WatchdogSec=`) hands its timeout over as `$WATCHDOG_USEC` (and
//! `$WATCHDOG_PID`, the process it is meant for); `WATCHDOG=1` is due at least that often, and
//! sd_watchdog_enabled(3) advises half of it.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One assignment sent to the service manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// `READY=1`: start-up (or a reload) is complete.
    Ready,
    /// `RELOADING=1` with `MONOTONIC_USEC=`, which `Type=notify-reload` requires (systemd ≥ 253)
    /// to match the notification with the reload it asked for.
    Reloading,
    /// `STOPPING=1`: shutdown has begun.
    Stopping,
    /// `STATUS=…`: a one-line human-readable state (`systemctl status` shows it).
    Status(String),
    /// `WATCHDOG=1`: the service is alive.
    Watchdog,
}

/// Where `$NOTIFY_SOCKET` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyAddress {
    /// A socket file (absolute path).
    Path(PathBuf),
    /// An abstract socket name (the text after `@`).
    Abstract(Vec<u8>),
}

/// Why notifications cannot be sent.
#[derive(Debug)]
pub enum NotifyError {
    /// `$NOTIFY_SOCKET` is neither an absolute path nor an `@` abstract name.
    UnsupportedAddress { value: String },
    /// The datagram socket could not be created or addressed.
    Socket(io::Error),
    /// The service manager's socket did not take the datagram.
    Send(io::Error),
}

impl fmt::Display for NotifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnsupportedAddress { value } => write!(
                f,
                "NOTIFY_SOCKET: expected an absolute path or @abstract-name, got {value:?}"
            ),
            Self::Socket(e) => write!(f, "NOTIFY_SOCKET: cannot create the socket: {e}"),
            Self::Send(e) => write!(f, "NOTIFY_SOCKET: sending failed: {e}"),
        }
    }
}

impl std::error::Error for NotifyError {}

/// Parses `$NOTIFY_SOCKET`.
pub fn parse_address(value: &OsStr) -> Result<NotifyAddress, NotifyError> {
    let bytes = value.as_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        if !name.is_empty() {
            return Ok(NotifyAddress::Abstract(name.to_vec()));
        }
    } else if Path::new(value).is_absolute() {
        return Ok(NotifyAddress::Path(PathBuf::from(value)));
    }
    Err(NotifyError::UnsupportedAddress {
        value: value.to_string_lossy().into_owned(),
    })
}

/// The datagram for `notifications`; `monotonic_usec` is `CLOCK_MONOTONIC` now, in µs.
pub fn message(notifications: &[Notification], monotonic_usec: u64) -> String {
    let mut text = String::new();
    for notification in notifications {
        match notification {
            Notification::Ready => text.push_str("READY=1\n"),
            Notification::Reloading => {
                text.push_str(&format!("RELOADING=1\nMONOTONIC_USEC={monotonic_usec}\n"));
            }
            Notification::Stopping => text.push_str("STOPPING=1\n"),
            Notification::Status(status) => {
                let line: String = status
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
                text.push_str(&format!("STATUS={line}\n"));
            }
            Notification::Watchdog => text.push_str("WATCHDOG=1\n"),
        }
    }
    text
}

/// `CLOCK_MONOTONIC` now, in microseconds (the clock systemd compares `MONOTONIC_USEC` with).
pub fn monotonic_usec() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let seconds = u64::try_from(now.tv_sec).unwrap_or(0);
    let micros = u64::try_from(now.tv_nsec / 1000).unwrap_or(0);
    seconds.saturating_mul(1_000_000).saturating_add(micros)
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, when it is set, positive, and
/// meant for this process (`$WATCHDOG_PID` unset or equal to `own_pid`).
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(own_pid) {
            return None;
        }
    }
    let usec = usec?.trim().parse::<u64>().ok().filter(|&u| u > 0)?;
    Some(Duration::from_micros(usec) / 2)
}

/// Sends notifications to the service manager, or nothing when there is none.
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// A notifier that sends nothing.
    pub fn disabled() -> Self {
        Self { target: None }
    }

    /// From `$NOTIFY_SOCKET`: disabled when it is unset or empty.
    pub fn from_env() -> Result<Self, NotifyError> {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(value) if !value.is_empty() => Self::to(&parse_address(&value)?),
            _ => Ok(Self::disabled()),
        }
    }

    /// A notifier sending to `address`.
    pub fn to(address: &NotifyAddress) -> Result<Self, NotifyError> {
        let addr = match address {
            NotifyAddress::Path(path) => SocketAddr::from_pathname(path),
            NotifyAddress::Abstract(name) => SocketAddr::from_abstract_name(name),
        }
        .map_err(NotifyError::Socket)?;
        let socket = UnixDatagram::unbound().map_err(NotifyError::Socket)?;
        Ok(Self {
            target: Some((socket, addr)),
        })
    }

    /// Whether a service manager listens.
    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends `notifications` in one datagram (nothing when disabled or empty).
    pub fn send(&self, notifications: &[Notification]) -> Result<(), NotifyError> {
        let Some((socket, addr)) = &self.target else {
            return Ok(());
        };
        if notifications.is_empty() {
            return Ok(());
        }
        let text = message(notifications, monotonic_usec());
        socket
            .send_to_addr(text.as_bytes(), addr)
            .map(drop)
            .map_err(NotifyError::Send)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_absolute_paths_or_abstract_names() {
        assert_eq!(
            parse_address(OsStr::new("/run/systemd/notify")).expect("path"),
            NotifyAddress::Path(PathBuf::from("/run/systemd/notify"))
        );
        assert_eq!(
            parse_address(OsStr::new("@hycod/notify")).expect("abstract"),
            NotifyAddress::Abstract(b"hycod/notify".to_vec())
        );
        for bad in ["relative/sock", "@", "vsock:2:1234"] {
            assert!(
                matches!(
                    parse_address(OsStr::new(bad)),
                    Err(NotifyError::UnsupportedAddress { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn messages_are_newline_separated_assignments() {
        let text = message(
            &[
                Notification::Ready,
                Notification::Status("2/3 listeners online".into()),
            ],
            0,
        );
        assert_eq!(text, "READY=1\nSTATUS=2/3 listeners online\n");
        assert_eq!(
            message(&[Notification::Stopping, Notification::Watchdog], 0),
            "STOPPING=1\nWATCHDOG=1\n"
        );
    }

    #[test]
    fn reloading_carries_the_monotonic_time() {
        assert_eq!(
            message(&[Notification::Reloading], 1_234_567),
            "RELOADING=1\nMONOTONIC_USEC=1234567\n"
        );
    }

    #[test]
    fn a_status_stays_on_one_line() {
        assert_eq!(
            message(&[Notification::Status("a\nREADY=1".into())], 0),
            "STATUS=a READY=1\n"
        );
    }

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let first = monotonic_usec();
        let second = monotonic_usec();
        assert!(first > 0 && second >= first);
    }

    #[test]
    fn the_watchdog_pings_at_half_its_timeout_for_this_process_only() {
        assert_eq!(
            watchdog_interval(Some("30000000"), None, 7),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            watchdog_interval(Some("30000000"), Some("7"), 7),
            Some(Duration::from_secs(15))
        );
        assert_eq!(watchdog_interval(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval(Some("soon"), None, 7), None);
        assert_eq!(watchdog_interval(None, None, 7), None);
    }

    #[test]
    fn a_disabled_notifier_sends_nothing_and_succeeds() {
        let notifier = Notifier::disabled();
        assert!(!notifier.is_enabled());
        assert!(notifier.send(&[Notification::Ready]).is_ok());
    }

    #[test]
    fn datagrams_reach_a_path_socket() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify.sock");
        let receiver = UnixDatagram::bind(&path).expect("bind");
        let notifier = Notifier::to(&NotifyAddress::Path(path)).expect("notifier");
        notifier
            .send(&[Notification::Ready, Notification::Status("1/1".into())])
            .expect("sent");
        let mut buf = [0u8; 256];
        let n = receiver.recv(&mut buf).expect("received");
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=1/1\n");
    }

    #[test]
    fn datagrams_reach_an_abstract_socket() {
        let name = format!("hycod-test-{}-{}", std::process::id(), fastrand::u64(..));
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("address");
        let receiver = UnixDatagram::bind_addr(&addr).expect("bind");
        let notifier =
            Notifier::to(&parse_address(OsStr::new(&format!("@{name}"))).expect("parsed"))
                .expect("notifier");
        notifier.send(&[Notification::Stopping]).expect("sent");
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).expect("received");
        assert_eq!(&buf[..n], b"STOPPING=1\n");
    }

    #[test]
    fn a_missing_socket_is_a_send_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let notifier =
            Notifier::to(&NotifyAddress::Path(dir.path().join("absent"))).expect("notifier");
        assert!(matches!(
            notifier.send(&[Notification::Ready]),
            Err(NotifyError::Send(_))
        ));
    }
}
