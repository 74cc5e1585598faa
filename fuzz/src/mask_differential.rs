//! Target `mask_differential`: the word-wise mask fast path against the byte-wise §5.3
//! definition (RFC 6455 §5.3).
//!
//! Oracle: [`apply_mask`] equals [`apply_mask_reference`] for every buffer, alignment offset,
//! key and phase, also when the buffer is masked in two pieces with the phase carried over.

use hycod::proto::ws::mask::{apply_mask, apply_mask_reference};

/// Bytes 0–3 key, byte 4 phase, byte 5 alignment offset (low 3 bits) and split point seed;
/// the rest is the buffer.
pub fn check(data: &[u8]) {
    let Some((header, payload)) = data.split_first_chunk::<6>() else {
        return;
    };
    let key = [header[0], header[1], header[2], header[3]];
    let phase = usize::from(header[4]);
    let offset = usize::from(header[5] & 7);
    let mut fast = vec![0u8; offset + payload.len()];
    fast[offset..].copy_from_slice(payload);
    let mut reference = fast.clone();
    apply_mask(&mut fast[offset..], key, phase);
    apply_mask_reference(&mut reference[offset..], key, phase);
    assert_eq!(fast, reference, "fast path differs from the reference");

    let split = usize::from(header[5] >> 3).min(payload.len());
    let mut pieces = payload.to_vec();
    let (first, second) = pieces.split_at_mut(split);
    apply_mask(first, key, phase);
    apply_mask(second, key, phase + split);
    assert_eq!(pieces, reference[offset..], "masking in two pieces differs");
}
