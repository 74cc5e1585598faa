//! The process lifecycle of `hycod run`: the main thread's [`supervisor`] turns signals into
//! reloads and drains as [`lifecycle`] decides, the [`handle`] assigns work to the workers and
//! applies [`reload`] diffs, each [`worker`] runs what it is assigned, and [`status`] and the
//! [`admin`] endpoint report the daemon's phase, readiness and metrics, for people on the
//! [`status_page`].

pub mod admin;
pub(super) mod handle;
pub mod lifecycle;
pub mod reload;
pub mod status;
pub mod status_page;
pub mod supervisor;
pub(super) mod worker;
