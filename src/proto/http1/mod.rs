//! Sans-I/O HTTP/1.1 (RFC 9110, RFC 9112) for both ends of a connection.
//!
//! The relay uses the server side (parse request heads and bodies, write response heads); the
//! daemon uses the client side (write request heads, parse response heads and bodies) towards
//! its upstream (protocol §6). Nothing here reads a socket: heads are parsed from whatever bytes
//! have arrived ([`parse_request_head`], [`parse_response_head`]), bodies are decoded in place
//! as slices of the caller's buffer ([`BodyDecoder`]), and writers append to a `Vec<u8>`.
//!
//! - [`head`]: heads over `httparse`, with [`Limits`] (protocol §6.1: 32 KB of header metadata).
//! - [`headers`]: the ordered, duplicate-keeping [`Headers`] list.
//! - [`framing`]: [`BodyKind`] from a head (RFC 9112 §6).
//! - [`body`], [`chunked_decoder`], [`chunked_encoder`]: body readers and chunk writing.
//! - [`writer`]: head writers that refuse header injection (values come from untrusted JSON).
//! - [`status`]: standard reason phrases.

pub(crate) mod body;
pub mod chunked_decoder;
pub(crate) mod chunked_encoder;
pub(crate) mod framing;
pub(crate) mod head;
pub(crate) mod headers;
pub(crate) mod status;
mod syntax;
pub(crate) mod writer;

pub use body::{BodyDecoder, BodyError, ContentLengthReader, Decoded};
pub use chunked_decoder::{ChunkedDecoder, ChunkedError};
pub use chunked_encoder::{write_chunk, write_last_chunk, ChunkHeader, CHUNK_DATA_END, LAST_CHUNK};
pub use framing::{request_body_kind, response_body_kind, BodyKind, FramingError};
pub use head::{
    parse_request_head, parse_response_head, HeadError, Limits, RequestHead, ResponseHead, Version,
};
pub use headers::Headers;
pub use status::reason_phrase;
pub(crate) use syntax::is_field_value;
pub use syntax::{is_token, lines_end_with_crlf, list_elements};
pub use writer::{write_request_head, write_response_head, WriteError};
