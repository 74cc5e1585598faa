//! Raising the soft `RLIMIT_NOFILE` to the hard limit at start: the soft limit many systems
//! still hand out (1024) is far below what a relay with thousands of connections needs, and
//! the hard limit is what the operator allowed (systemd's `LimitNOFILE`, `ulimit -Hn`).

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// The soft descriptor limit before and after [`raise_to_hard`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Raised {
    pub before: Option<u64>,
    pub after: Option<u64>,
}

/// The soft `RLIMIT_NOFILE` in force now (`None`: unlimited).
pub fn soft_limit() -> Option<u64> {
    getrlimit(Resource::Nofile).current
}

/// Sets the soft `RLIMIT_NOFILE` to the hard one (unchanged when it is there already).
pub fn raise_to_hard() -> std::io::Result<Raised> {
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current;
    if limit.current == limit.maximum {
        return Ok(Raised {
            before,
            after: before,
        });
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    )?;
    Ok(Raised {
        before,
        after: getrlimit(Resource::Nofile).current,
    })
}
