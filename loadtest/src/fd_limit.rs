//! Raising this process's open-file limit (RLIMIT_NOFILE, getrlimit(2)) so `idle` can hold
//! tens of thousands of streams: the soft limit goes up to the hard limit.

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// The soft limit to ask for: the hard limit, or `current` when it is already higher (None
/// means unlimited).
pub(crate) fn raised(current: Option<u64>, maximum: Option<u64>) -> Option<u64> {
    match (current, maximum) {
        (_, None) => None,
        (Some(soft), Some(hard)) if soft >= hard => Some(soft),
        (_, Some(hard)) => Some(hard),
    }
}

/// Raises the soft open-file limit to the hard limit; the resulting soft limit (None when
/// unlimited). A refused raise leaves the limit as it was.
pub(crate) fn raise_nofile() -> Option<u64> {
    let limit = getrlimit(Resource::Nofile);
    let wanted = raised(limit.current, limit.maximum);
    if wanted == limit.current {
        return limit.current;
    }
    let new = Rlimit {
        current: wanted,
        maximum: limit.maximum,
    };
    match setrlimit(Resource::Nofile, new) {
        Ok(()) => wanted,
        Err(_) => limit.current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_rises_to_the_hard_one() {
        assert_eq!(raised(Some(1024), Some(524_288)), Some(524_288));
        assert_eq!(raised(Some(1024), None), None);
        assert_eq!(raised(Some(4096), Some(4096)), Some(4096));
    }

    #[test]
    fn raising_never_lowers_the_limit() {
        let before = getrlimit(Resource::Nofile).current;
        let after = raise_nofile();
        assert!(after.unwrap_or(u64::MAX) >= before.unwrap_or(u64::MAX) || before.is_none());
    }
}
