//! Which I/O driver a worker's runtime got, and why it is epoll when it is not io_uring.
//!
//! monoio builds an io_uring runtime when the kernel lets this process set up a ring that
//! supports every operation monoio uses, and an epoll runtime otherwise, without saying why.
//! [`fallback_reason`] repeats that check (monoio 0.2.4, `src/utils/uring_detect.rs`) to name
//! the cause: `MONOIO_FORCE_LEGACY_DRIVER`, a refused `io_uring_setup` (a seccomp profile such
//! as a container runtime's default, or the `kernel.io_uring_disabled` sysctl), or a kernel
//! whose io_uring lacks an operation. The result is computed once per process, off the hot path.

use std::fmt;
use std::io;
use std::sync::OnceLock;

/// The environment variable that makes monoio use epoll (monoio's own switch).
pub const FORCE_LEGACY_ENV: &str = "MONOIO_FORCE_LEGACY_DRIVER";

/// The I/O driver of one worker's runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoDriver {
    IoUring,
    Epoll,
}

impl IoDriver {
    /// The `driver` label value and log field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::IoUring => "io_uring",
            Self::Epoll => "epoll",
        }
    }
}

/// The `fallback` label value of a worker on io_uring.
pub const NO_FALLBACK: &str = "none";

/// Why a runtime runs on epoll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fallback {
    /// `MONOIO_FORCE_LEGACY_DRIVER` is set to 1, true or yes.
    Forced,
    /// `io_uring_setup` failed with this error: EPERM under a seccomp profile or
    /// `kernel.io_uring_disabled`, ENOSYS on a kernel built without io_uring.
    SetupFailed { errno: Option<i32>, message: String },
    /// The ring works but lacks an operation monoio uses (an older kernel).
    MissingOperation { opcode: u8 },
    /// The check above found nothing, yet monoio chose epoll.
    Unknown,
}

impl Fallback {
    /// A short, fixed word for the `fallback` metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Forced => "forced",
            Self::SetupFailed {
                errno: Some(errno), ..
            } if [errno::EPERM, errno::EACCES].contains(errno) => "refused",
            Self::SetupFailed { .. } => "setup_failed",
            Self::MissingOperation { .. } => "missing_operation",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Forced => write!(f, "{FORCE_LEGACY_ENV} asks for epoll"),
            Self::SetupFailed { errno, message } => {
                write!(f, "io_uring_setup failed: {message}")?;
                match *errno {
                    Some(errno::EPERM | errno::EACCES) => f.write_str(
                        " (refused by a seccomp profile, e.g. a container runtime's default, \
                         or by the kernel.io_uring_disabled sysctl)",
                    ),
                    Some(errno::ENOSYS) => f.write_str(" (the kernel has no io_uring)"),
                    _ => Ok(()),
                }
            }
            Self::MissingOperation { opcode } => write!(
                f,
                "the kernel's io_uring lacks operation {opcode}, which monoio uses"
            ),
            Self::Unknown => f.write_str("monoio did not say why"),
        }
    }
}

/// The errno values named above (rustix's, as plain numbers for matching).
mod errno {
    pub(super) const EPERM: i32 = rustix::io::Errno::PERM.raw_os_error();
    pub(super) const EACCES: i32 = rustix::io::Errno::ACCESS.raw_os_error();
    pub(super) const ENOSYS: i32 = rustix::io::Errno::NOSYS.raw_os_error();
}

/// Why monoio would not give this process io_uring, or `None` when it would. Computed on the
/// first call (one short-lived ring), then remembered.
pub fn fallback_reason() -> Option<Fallback> {
    static REASON: OnceLock<Option<Fallback>> = OnceLock::new();
    REASON.get_or_init(probe).clone()
}

/// The operations monoio 0.2.4 requires of the kernel (`USED_OP` in `uring_detect.rs`, without
/// the `splice` feature, which hycod does not enable).
const USED_OPERATIONS: [u8; 17] = {
    use io_uring::opcode::*;
    [
        Accept::CODE,
        AsyncCancel::CODE,
        Close::CODE,
        Connect::CODE,
        Fsync::CODE,
        OpenAt::CODE,
        PollAdd::CODE,
        ProvideBuffers::CODE,
        Read::CODE,
        Readv::CODE,
        Recv::CODE,
        Send::CODE,
        SendMsg::CODE,
        RecvMsg::CODE,
        Timeout::CODE,
        Write::CODE,
        Writev::CODE,
    ]
};

fn probe() -> Option<Fallback> {
    if std::env::var(FORCE_LEGACY_ENV)
        .is_ok_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
    {
        return Some(Fallback::Forced);
    }
    let ring = match io_uring::IoUring::new(2) {
        Ok(ring) => ring,
        Err(error) => return Some(setup_failed(&error)),
    };
    let mut supported = io_uring::Probe::new();
    if let Err(error) = ring.submitter().register_probe(&mut supported) {
        return Some(setup_failed(&error));
    }
    USED_OPERATIONS
        .iter()
        .find(|&&opcode| !supported.is_supported(opcode))
        .map(|&opcode| Fallback::MissingOperation { opcode })
}

fn setup_failed(error: &io::Error) -> Fallback {
    Fallback::SetupFailed {
        errno: error.raw_os_error(),
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_fixed_words() {
        let refused = Fallback::SetupFailed {
            errno: Some(errno::EPERM),
            message: "Operation not permitted (os error 1)".into(),
        };
        assert_eq!(refused.label(), "refused");
        assert!(refused.to_string().contains("seccomp"), "{refused}");
        let absent = Fallback::SetupFailed {
            errno: Some(errno::ENOSYS),
            message: "Function not implemented (os error 38)".into(),
        };
        assert_eq!(absent.label(), "setup_failed");
        assert!(absent.to_string().contains("no io_uring"), "{absent}");
        assert_eq!(Fallback::Forced.label(), "forced");
        assert_eq!(
            Fallback::MissingOperation { opcode: 7 }.label(),
            "missing_operation"
        );
        assert_eq!(IoDriver::IoUring.as_str(), "io_uring");
        assert_eq!(IoDriver::Epoll.as_str(), "epoll");
    }
}
