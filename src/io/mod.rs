//! The thin I/O layer: sockets, TLS streams and buffers that drive the sans-I/O protocol code.

pub(crate) mod accept_backoff;
pub(crate) mod admin_http;
pub(crate) mod coalesce;
pub(crate) mod idle_cut;
pub(crate) mod lazy_timeout;
pub(crate) mod loopback;
pub mod quiet_release;
pub mod read_buf;
pub mod resolve;
pub mod stream;
pub mod tcp_pump;
pub(crate) mod tls_stream;
pub(crate) mod watched_write;
pub(crate) mod write_stall;
pub mod ws_client;
pub mod ws_reader;
