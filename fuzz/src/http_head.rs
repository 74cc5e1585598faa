//! Target `http_head`: request and response heads (RFC 9112 §2–§5) and the streaming body
//! readers (RFC 9112 §6–§7), fed at once and in fuzzer-chosen pieces.
//!
//! Oracles: no panic; a head's length lies inside the input; a body read in pieces yields the
//! same payload bytes, the same consumed count, the same completion and the same error as one
//! read at once (a differential check of [`BodyDecoder`] and [`ChunkedDecoder`]).

use hycod::proto::http1::{
    parse_request_head, parse_response_head, request_body_kind, response_body_kind, BodyDecoder,
    BodyError, BodyKind, Limits,
};

use super::pieces::{piece_lengths, split_control};

/// Methods a response head may answer, chosen by the control byte.
const METHODS: [&str; 4] = ["GET", "HEAD", "CONNECT", "POST"];

/// What reading a body observed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BodyRun {
    payload: Vec<u8>,
    /// Bytes used; not compared after an error (a failing call reports no count, so how many
    /// bytes earlier calls used then depends on the pieces).
    consumed: usize,
    done: bool,
    error: Option<BodyError>,
    /// The result of `finish` at the end of the input (when no error came first).
    finish: Option<Result<(), BodyError>>,
}

/// Control byte: bits 0–1 mode (request head + body, response head + body, a chunked body, a
/// Content-Length body), bits 2–3 the request method for responses; the second byte seeds the
/// split pattern; the rest is the input.
pub fn check(data: &[u8]) {
    let Some((control, rest)) = split_control(data) else {
        return;
    };
    let Some((split_seed, input)) = split_control(rest) else {
        return;
    };
    let limits = Limits::default();
    let kind_and_body = match control & 3 {
        0 => match parse_request_head(input, &limits) {
            Ok(Some((head, len))) => {
                assert!(len <= input.len());
                request_body_kind(&head)
                    .ok()
                    .map(|kind| (kind, &input[len..]))
            }
            _ => None,
        },
        1 => match parse_response_head(input, &limits) {
            Ok(Some((head, len))) => {
                assert!(len <= input.len());
                let method = METHODS[usize::from((control >> 2) & 3)];
                response_body_kind(method, &head)
                    .ok()
                    .map(|kind| (kind, &input[len..]))
            }
            _ => None,
        },
        2 => Some((BodyKind::Chunked, input)),
        _ => {
            let len = u64::from(control >> 2);
            let kind = if len == 0 {
                BodyKind::Empty
            } else {
                BodyKind::ContentLength(len)
            };
            Some((kind, input))
        }
    };
    let Some((kind, body)) = kind_and_body else {
        return;
    };
    let whole = read_body(kind, body, &[body.len()]);
    let split = read_body(kind, body, &piece_lengths(body.len(), split_seed));
    assert_eq!(whole, split, "one-shot and split body reads differ");
}

/// Reads `body` as `kind`, making the bytes available in `pieces`, as a connection would.
fn read_body(kind: BodyKind, body: &[u8], pieces: &[usize]) -> BodyRun {
    let mut decoder = BodyDecoder::new(kind);
    let mut run = BodyRun {
        payload: Vec::new(),
        consumed: 0,
        done: false,
        error: None,
        finish: None,
    };
    let mut available = 0;
    for &len in pieces {
        available += len;
        loop {
            if decoder.is_done() {
                break;
            }
            let input = &body[run.consumed..available];
            match decoder.decode(input) {
                Ok(decoded) => {
                    assert!(decoded.consumed <= input.len());
                    if let Some(payload) = decoded.payload {
                        assert!(!payload.is_empty(), "an empty payload slice");
                        let start =
                            (payload.as_ptr() as usize).wrapping_sub(input.as_ptr() as usize);
                        assert!(
                            start + payload.len() <= decoded.consumed,
                            "payload outside the consumed bytes"
                        );
                        run.payload.extend_from_slice(payload);
                    }
                    run.consumed += decoded.consumed;
                    if decoded.consumed == 0 {
                        break;
                    }
                }
                Err(error) => {
                    run.error = Some(error);
                    run.consumed = 0;
                    run.done = decoder.is_done();
                    return run;
                }
            }
        }
    }
    run.done = decoder.is_done();
    run.finish = Some(decoder.finish());
    run
}
