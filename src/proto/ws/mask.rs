//! Payload masking (RFC 6455 §5.3): `payload[i] ^= key[i % 4]`, applied in place.
//!
//! [`apply_mask`] is the fast path: it XORs eight bytes at a time with the key rotated to the
//! right phase and repeated to a `u64` (which the compiler further vectorises).
//! [`apply_mask_reference`] is the byte-by-byte definition, kept as the oracle for tests.
//!
//! `phase` is the offset of `buf[0]` within the frame payload (only `phase % 4` matters), so a
//! payload that arrives in pieces can be unmasked piece by piece.

/// A fresh client masking key (RFC 6455 §5.3: unpredictable per frame), as the `mask` argument of
/// the frame writers (`None` would mean "unmasked", which only a server may send).
pub fn mask_key() -> Option<[u8; 4]> {
    Some(fresh_mask_key())
}

/// A fresh client masking key (RFC 6455 §5.3: unpredictable per frame), as the key source of a
/// client's [`Outbound`](crate::proto::hc::channel::Outbound).
pub fn fresh_mask_key() -> [u8; 4] {
    fastrand::u32(..).to_ne_bytes()
}

/// XORs `buf` with the masking key in place; `buf[0]` is payload byte number `phase`.
///
/// Safe code only: eight bytes at a time through `chunks_exact_mut(8)` and `u64::from_ne_bytes`,
/// which the compiler vectorises (docs/performance.md "Codec micro-benchmarks").
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], phase: usize) {
    let key = rotate_key(key, phase);
    let key_word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut words = buf.chunks_exact_mut(8);
    for chunk in &mut words {
        if let Ok(word) = <&mut [u8; 8]>::try_from(chunk) {
            *word = (u64::from_ne_bytes(*word) ^ key_word).to_ne_bytes();
        }
    }
    // Whole words keep the phase: the tail (under 8 bytes) starts at a multiple of 8.
    let tail = words.into_remainder();
    for (byte, key_byte) in tail.iter_mut().zip(key.iter().cycle()) {
        *byte ^= key_byte;
    }
}

/// XORs `buf` with the masking key in place, one byte at a time (the §5.3 definition).
pub fn apply_mask_reference(buf: &mut [u8], key: [u8; 4], phase: usize) {
    for (byte, key_byte) in buf.iter_mut().zip(key.iter().cycle().skip(phase % 4)) {
        *byte ^= key_byte;
    }
}

/// The key as seen from payload offset `phase`: `rotated[i] = key[(phase + i) % 4]`.
/// (Indexing rather than `<[u8]>::rotate_left`, which is slower per call; docs/performance.md.)
fn rotate_key(key: [u8; 4], phase: usize) -> [u8; 4] {
    let p = phase % 4;
    [key[p], key[(p + 1) % 4], key[(p + 2) % 4], key[(p + 3) % 4]]
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];

    #[test]
    fn reference_matches_the_rfc_example() {
        // RFC 6455 §5.7: a masked "Hello" with key 37 fa 21 3d.
        let mut payload = *b"Hello";
        apply_mask_reference(&mut payload, KEY, 0);
        assert_eq!(payload, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    #[test]
    fn masking_twice_restores_the_input() {
        let original: Vec<u8> = (0..=255).collect();
        let mut buf = original.clone();
        apply_mask(&mut buf, KEY, 3);
        assert_ne!(buf, original);
        apply_mask(&mut buf, KEY, 3);
        assert_eq!(buf, original);
    }

    #[test]
    fn fast_equals_reference_for_all_alignments_lengths_and_phases() {
        let mut rng = fastrand::Rng::with_seed(0x5EED);
        let mut source = vec![0u8; 1024 + 8];
        rng.fill(&mut source);
        let mut fast = vec![0u8; source.len()];
        let mut reference = vec![0u8; source.len()];
        for offset in 0..8 {
            for len in 0..=1024 {
                for phase in 0..4 {
                    let range = offset..offset + len;
                    fast[range.clone()].copy_from_slice(&source[range.clone()]);
                    reference[range.clone()].copy_from_slice(&source[range.clone()]);
                    apply_mask(&mut fast[range.clone()], KEY, phase);
                    apply_mask_reference(&mut reference[range.clone()], KEY, phase);
                    assert_eq!(
                        fast[range.clone()],
                        reference[range],
                        "offset {offset} len {len} phase {phase}"
                    );
                }
            }
        }
    }

    #[test]
    fn fast_equals_reference_on_large_random_inputs() {
        let mut rng = fastrand::Rng::with_seed(42);
        for _ in 0..8 {
            let len = rng.usize(..4 << 20);
            let offset = rng.usize(..8);
            let phase = rng.usize(..);
            let key = [rng.u8(..), rng.u8(..), rng.u8(..), rng.u8(..)];
            let mut source = vec![0u8; offset + len];
            rng.fill(&mut source);
            let mut fast = source.clone();
            let mut reference = source;
            apply_mask(&mut fast[offset..], key, phase);
            apply_mask_reference(&mut reference[offset..], key, phase);
            assert!(fast == reference, "len {len} offset {offset} phase {phase}");
        }
    }

    #[test]
    fn masking_in_pieces_equals_masking_at_once() {
        let original: Vec<u8> = (0..100u8).collect();
        let mut whole = original.clone();
        apply_mask(&mut whole, KEY, 0);
        for cut in 0..original.len() {
            let mut pieces = original.clone();
            let (first, second) = pieces.split_at_mut(cut);
            apply_mask(first, KEY, 0);
            apply_mask(second, KEY, cut);
            assert_eq!(pieces, whole, "cut {cut}");
        }
    }

    #[test]
    fn only_the_phase_modulo_4_matters() {
        let mut a = *b"abcdefghij";
        let mut b = a;
        apply_mask(&mut a, KEY, 1);
        apply_mask(&mut b, KEY, usize::MAX - 2);
        assert_eq!(a, b, "usize::MAX - 2 = 1 (mod 4)");
    }
}
