//! The thin I/O layer: sockets, TLS streams and buffers that drive the sans-I/O protocol code.

pub mod accept_backoff;
pub mod admin_http;
pub mod coalesce;
pub mod idle_cut;
pub mod loopback;
pub mod read_buf;
pub mod resolve;
pub mod stream;
pub mod tcp_pump;
pub mod tls_stream;
pub mod watched_write;
pub mod write_stall;
pub mod ws_client;
pub mod ws_reader;
