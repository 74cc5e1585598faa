//! Incremental UTF-8 validation of text messages (RFC 6455 §5.6, §8.1) as their payload
//! arrives in arbitrary pieces: across chunks of one frame and across fragments.
//!
//! Built on `std::str::from_utf8`: `valid_up_to` marks where a piece stops being valid and
//! `error_len() == None` tells a sequence that is merely cut off (kept for the next piece) from
//! one that is invalid. A code point split between pieces is fine; a message that ends inside
//! one is not.

use super::error::WsError;

/// The longest UTF-8 sequence.
const MAX_SEQUENCE: usize = 4;

/// Validation state of one text message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Utf8Validator {
    /// The start of a sequence cut off at the end of the previous piece (at most 3 bytes).
    pending: [u8; MAX_SEQUENCE],
    pending_len: usize,
    /// Bytes of the message validated so far, for error offsets.
    seen: u64,
}

impl Utf8Validator {
    /// Validates the next piece of the message.
    pub(crate) fn feed(&mut self, mut piece: &[u8]) -> Result<(), WsError> {
        if self.pending_len > 0 {
            piece = self.complete_pending(piece)?;
        }
        match std::str::from_utf8(piece) {
            Ok(_) => self.advance(piece.len()),
            Err(err) => {
                if err.error_len().is_some() {
                    return Err(self.invalid_at(err.valid_up_to()));
                }
                let (valid, cut) = piece.split_at(err.valid_up_to());
                self.advance(valid.len());
                self.pending[..cut.len()].copy_from_slice(cut);
                self.pending_len = cut.len();
            }
        }
        Ok(())
    }

    /// Declares the message complete: a sequence still cut off is an error.
    pub(crate) fn finish(&self) -> Result<(), WsError> {
        if self.pending_len > 0 {
            return Err(WsError::IncompleteUtf8);
        }
        Ok(())
    }

    /// Joins the cut-off sequence with the first bytes of `piece`; returns the rest of `piece`
    /// still to validate (empty if the sequence is still cut off).
    fn complete_pending<'p>(&mut self, piece: &'p [u8]) -> Result<&'p [u8], WsError> {
        let pending_len = self.pending_len;
        let take = piece.len().min(MAX_SEQUENCE - pending_len);
        let mut joined = self.pending;
        joined[pending_len..pending_len + take].copy_from_slice(&piece[..take]);
        let joined = &joined[..pending_len + take];
        let completed = match std::str::from_utf8(joined) {
            Ok(_) => joined.len(),
            Err(err) if err.valid_up_to() > 0 => err.valid_up_to(),
            Err(err) if err.error_len().is_some() => return Err(self.invalid_at(0)),
            Err(_) => {
                // Still cut off: `piece` was too short to finish the sequence.
                self.pending[pending_len..pending_len + take].copy_from_slice(&piece[..take]);
                self.pending_len += take;
                return Ok(&piece[take..]);
            }
        };
        // `completed` covers the whole pending sequence (a valid prefix of `joined` ends on a
        // character boundary and the pending bytes alone were not a character).
        let used = completed - pending_len;
        self.pending_len = 0;
        self.advance(completed);
        Ok(&piece[used..])
    }

    fn advance(&mut self, bytes: usize) {
        self.seen = self
            .seen
            .saturating_add(u64::try_from(bytes).unwrap_or(u64::MAX));
    }

    fn invalid_at(&self, offset_in_piece: usize) -> WsError {
        let offset = u64::try_from(offset_in_piece).unwrap_or(u64::MAX);
        WsError::InvalidUtf8 {
            offset: self.seen.saturating_add(offset),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate_in_pieces(bytes: &[u8], cuts: &[usize]) -> Result<(), WsError> {
        let mut validator = Utf8Validator::default();
        let mut start = 0;
        for &cut in cuts.iter().chain([bytes.len()].iter()) {
            validator.feed(&bytes[start..cut])?;
            start = cut;
        }
        validator.finish()
    }

    const MIXED: &str = "a€𝄞ü z\u{10FFFF}";

    #[test]
    fn valid_text_passes_at_every_split_point() {
        let bytes = MIXED.as_bytes();
        for a in 0..=bytes.len() {
            for b in a..=bytes.len() {
                assert_eq!(validate_in_pieces(bytes, &[a, b]), Ok(()), "cuts {a} {b}");
            }
        }
    }

    #[test]
    fn byte_by_byte_feeding_passes() {
        let bytes = MIXED.as_bytes();
        let cuts: Vec<usize> = (1..bytes.len()).collect();
        assert_eq!(validate_in_pieces(bytes, &cuts), Ok(()));
    }

    #[test]
    fn invalid_bytes_fail_at_every_split_point_with_the_same_offset() {
        let mut bytes = "ab€".as_bytes().to_vec();
        bytes.extend_from_slice(&[0xF0, 0x9D, 0x28, b'x']);
        for a in 0..=bytes.len() {
            assert_eq!(
                validate_in_pieces(&bytes, &[a]),
                Err(WsError::InvalidUtf8 { offset: 5 }),
                "cut {a}"
            );
        }
    }

    #[test]
    fn overlong_surrogate_and_out_of_range_sequences_are_invalid() {
        for bad in [
            &[0xC0, 0x80][..],
            &[0xED, 0xA0, 0x80],
            &[0xF4, 0x90, 0x80, 0x80],
            &[0xFF],
        ] {
            for cut in 0..=bad.len() {
                assert_eq!(
                    validate_in_pieces(bad, &[cut]),
                    Err(WsError::InvalidUtf8 { offset: 0 }),
                    "{bad:x?} cut {cut}"
                );
            }
        }
    }

    #[test]
    fn a_message_ending_inside_a_sequence_is_incomplete() {
        let euro = "€".as_bytes();
        for cut in 1..euro.len() {
            assert_eq!(
                validate_in_pieces(&euro[..cut], &[]),
                Err(WsError::IncompleteUtf8)
            );
            assert_eq!(
                validate_in_pieces(&euro[..cut], &[0]),
                Err(WsError::IncompleteUtf8)
            );
        }
    }

    #[test]
    fn a_pending_sequence_followed_by_a_bad_byte_is_invalid() {
        let mut validator = Utf8Validator::default();
        assert_eq!(validator.feed(&[b'x', 0xE2, 0x82]), Ok(()));
        assert_eq!(
            validator.feed(b"A"),
            Err(WsError::InvalidUtf8 { offset: 1 })
        );
    }
}
