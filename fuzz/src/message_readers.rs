//! Target `message_readers`: arbitrary bytes as a control message read by the fast readers
//! (the daemon's `request` scanner, the relay's `response` scanner).
//!
//! Oracle: wherever a fast reader reads the text, serde_json reads the same message, and both
//! refuse the same texts with the same error ([`hycod::proto::hc::reader_oracle`]).

/// Compare the fast readers with serde_json.
pub fn check(data: &[u8]) {
    hycod::proto::hc::reader_oracle::check(data);
}
