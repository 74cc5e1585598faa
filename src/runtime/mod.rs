//! Thread-per-core runtime: N worker threads, each pinned to a core and running its own monoio
//! runtime (io_uring, with epoll as the fallback when the kernel refuses io_uring). architecture
//! §1. Also the process's ties to its environment: signals and systemd notifications (architecture
//! §3).

pub mod fd_limit;
pub mod fd_reserve;
pub mod io_driver;
pub mod procfs;
pub mod signals;
pub mod systemd;
pub mod workers;
