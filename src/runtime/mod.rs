//! Thread-per-core runtime: N worker threads, each pinned to a core and running its own monoio
//! runtime (io_uring, with epoll as the fallback when the kernel refuses io_uring). design.md §1.

pub mod workers;
