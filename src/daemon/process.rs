//! The process lifecycle of `hycod run`: the main thread's [`supervisor`] turns signals into
//! reloads and drains as [`lifecycle`] decides, the [`handle`] assigns work to the workers and
//! applies [`reload`] diffs, each [`worker`] runs what it is assigned, and [`status`] and the
//! [`admin`] endpoint report the daemon's phase, readiness and metrics, for people on the
//! [`status_page`].

pub(crate) mod admin;
pub(super) mod handle;
pub(crate) mod lifecycle;
pub(crate) mod reload;
pub(crate) mod status;
pub(crate) mod status_page;
pub(crate) mod supervisor;
pub(super) mod worker;
