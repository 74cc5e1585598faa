//! Fuzzer-chosen split points: a seed byte from the input drives a small xorshift generator
//! whose outputs are the lengths of the pieces an input is fed in.

/// Piece lengths for feeding `total` bytes, chosen by `seed`: seed 0 feeds byte by byte, any
/// other seed gives lengths between 1 and `seed` (a xorshift sequence, so every seed is a
/// different split pattern).
pub fn piece_lengths(total: usize, seed: u8) -> Vec<usize> {
    let mut lengths = Vec::new();
    let mut state = u32::from(seed) | 0x9E37_0000;
    let mut left = total;
    while left > 0 {
        let len = if seed == 0 {
            1
        } else {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            // `seed` is at most 255, so the remainder fits any usize.
            1 + usize::from(u8::try_from(state % u32::from(seed)).unwrap_or(0))
        };
        let len = len.min(left);
        lengths.push(len);
        left -= len;
    }
    lengths
}

/// The first byte as a control value and the rest as data; `None` for an empty input.
pub fn split_control(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(first, rest)| (*first, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_cover_the_input_exactly() {
        for seed in [0, 1, 2, 7, 255] {
            let lengths = piece_lengths(1000, seed);
            assert_eq!(lengths.iter().sum::<usize>(), 1000);
            assert!(lengths
                .iter()
                .all(|&l| l >= 1 && l <= usize::from(seed.max(1))));
        }
    }
}
