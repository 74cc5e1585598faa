//! Target `ws_handshake`: the opening handshake (RFC 6455 §4) from both sides: arbitrary bytes
//! as an upgrade request ([`parse_upgrade_request`]) and as the answer to a client handshake
//! ([`ClientHandshake::parse_response`]).
//!
//! Oracles: no panic; the reported head length lies inside the input; parsing exactly that
//! prefix gives the same result (nothing past the head is looked at); every error has a status
//! and a Display text.

use hycod::proto::http1::Limits;
use hycod::proto::ws::handshake::{
    parse_upgrade_request, status_for, ClientHandshake, HandshakeOutcome,
};

/// Both parsers over the same bytes.
pub fn check(data: &[u8]) {
    upgrade_request(data);
    response(data);
}

fn upgrade_request(data: &[u8]) {
    let limits = Limits::default();
    match parse_upgrade_request(data, &limits) {
        Ok(Some((request, len))) => {
            assert!(len <= data.len(), "head length {len} past {}", data.len());
            let again = parse_upgrade_request(&data[..len], &limits);
            assert_eq!(again, Ok(Some((request.clone(), len))), "prefix differs");
            let _ = (request.path(), request.query(), request.accept_key());
        }
        Ok(None) => {}
        Err(error) => {
            let status = status_for(&error);
            assert!([400, 426, 431].contains(&status), "status {status}");
            assert!(!error.to_string().is_empty());
        }
    }
}

fn response(data: &[u8]) {
    let mut request = Vec::new();
    let Ok(handshake) = ClientHandshake::new(
        &mut request,
        "localhost",
        "/$hc/hyco?sb-hc-action=listen",
        *b"fuzzing-key-0016",
        &[],
        Some("chat"),
    ) else {
        panic!("the fixed client request is valid");
    };
    match handshake.parse_response(data) {
        Ok(Some((outcome, used))) => {
            assert!(used <= data.len(), "used {used} past {}", data.len());
            let again = handshake.parse_response(&data[..used]);
            assert_eq!(again, Ok(Some((outcome.clone(), used))), "prefix differs");
            if let HandshakeOutcome::Rejected(rejection) = outcome {
                let _ = (
                    rejection.status(),
                    rejection.reason(),
                    rejection.body_kind(),
                );
            }
        }
        Ok(None) => {}
        Err(error) => assert!(!error.to_string().is_empty()),
    }
}
