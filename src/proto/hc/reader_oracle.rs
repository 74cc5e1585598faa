//! The differential oracle of the fast message readers, for the fuzz target
//! `message_readers`: the daemon's `request` reader ([`super::received_request`]) and the
//! relay's `response` reader ([`super::response_scan`]) must read every text exactly as
//! serde_json does (the same message, the same error) wherever they read it at all.

/// Reads `text` with both fast readers and with serde_json; panics where they differ.
pub fn check(text: &[u8]) {
    super::received_request::read_as_serde_reads(text);
    if let Ok(text) = std::str::from_utf8(text) {
        super::response_scan::read_as_serde_reads(text);
    }
}
