//! Ids the relay hands out.
//!
//! * Secret ids grant access: a rendezvous address's `sb-hc-id` and a relayed HTTP request's
//!   `id` (which a `response` must name). Each carries 128 bits from the operating system's
//!   CSPRNG (`ring::rand::SystemRandom`), GUID-shaped with the service's `_G{worker}` suffix.
//!   The bytes are fetched in batches (one `getrandom` call per [`BATCH`] bytes) and each byte
//!   is used once. A sender's `sb-hc-id` is never part of one.
//! * Tracking ids only label error texts and logs. They come from a separate, non-secret
//!   generator and share nothing with secret ids, so a `TrackingId` tells nothing about them.

use std::sync::Arc;

use ring::rand::{SecureRandom, SystemRandom};

/// Random bytes in one secret id (128 bits).
pub(super) const SECRET_ID_BYTES: usize = 16;

/// Bytes fetched from the OS per `getrandom` call: 32 ids.
const BATCH: usize = 32 * SECRET_ID_BYTES;

/// The operating system's random generator failed; no id can be handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RandomUnavailable;

impl std::fmt::Display for RandomUnavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the operating system's random generator failed")
    }
}

impl std::error::Error for RandomUnavailable {}

/// One worker's source of secret ids.
pub(super) struct SecretIds {
    rng: SystemRandom,
    pool: [u8; BATCH],
    /// Bytes of `pool` already handed out; `BATCH` means it must be refilled.
    used: usize,
}

impl Default for SecretIds {
    fn default() -> Self {
        Self {
            rng: SystemRandom::new(),
            pool: [0; BATCH],
            used: BATCH,
        }
    }
}

impl SecretIds {
    /// A fresh secret id: 128 CSPRNG bits as a GUID-shaped string, then `_G{worker}`. Shared,
    /// not copied, by the tables and guards that name a waiting request.
    pub(super) fn next(&mut self, worker: usize) -> Result<Arc<str>, RandomUnavailable> {
        if self.used + SECRET_ID_BYTES > BATCH {
            self.rng
                .fill(&mut self.pool)
                .map_err(|_| RandomUnavailable)?;
            self.used = 0;
        }
        let bytes = self.pool[self.used..]
            .first_chunk_mut::<SECRET_ID_BYTES>()
            .expect("a refilled pool holds the id's bytes: checked above");
        let id = Arc::from(GuidText::new(bytes, worker).as_str());
        // Each byte serves one id only.
        bytes.fill(0);
        self.used += SECRET_ID_BYTES;
        Ok(id)
    }
}

/// A tracking id for error texts and logs: GUID-shaped with the `_G{worker}` role suffix the
/// service adds (protocol §7.3), from a generator that is not used for secret ids. Version
/// nibble 4 and variant nibble `a`, as a random GUID has.
pub(super) fn tracking_id(worker: usize) -> String {
    let mut bytes = fastrand::u128(..).to_be_bytes();
    bytes[6] = 0x40 | (bytes[6] & 0x0f);
    bytes[8] = 0xa0 | (bytes[8] & 0x0f);
    GuidText::new(&bytes, worker).as_str().to_owned()
}

/// `bytes` as lower-case hex in GUID groups (8-4-4-4-12 digits for 16 bytes), then
/// `_G{worker}`, written on the stack at fixed places and copied once into the id's owner: the
/// formatting machinery cost the relay ~4 % of its instructions per relayed request (two ids
/// each), pushing `char`s into a `String` one at a time still ~600 instructions per id.
struct GuidText {
    /// 32 digits, 4 dashes, `_G` and at most 20 digits of a `usize`.
    text: [u8; GUID_LEN + 2 + 20],
    len: usize,
}

/// Digits and dashes of the GUID part.
const GUID_LEN: usize = 2 * SECRET_ID_BYTES + 4;

/// Where the two digits of each byte go; the places left out hold the dashes.
const DIGITS_AT: [usize; SECRET_ID_BYTES] =
    [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

impl GuidText {
    fn new(bytes: &[u8; SECRET_ID_BYTES], worker: usize) -> Self {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [b'-'; GUID_LEN + 2 + 20];
        for (b, &at) in bytes.iter().zip(&DIGITS_AT) {
            text[at] = HEX[usize::from(b >> 4)];
            text[at + 1] = HEX[usize::from(b & 0x0f)];
        }
        text[GUID_LEN] = b'_';
        text[GUID_LEN + 1] = b'G';
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut n = worker;
        loop {
            at -= 1;
            digits[at] = HEX[n % 10];
            n /= 10;
            if n == 0 {
                break;
            }
        }
        let mut len = GUID_LEN + 2;
        for &digit in &digits[at..] {
            text[len] = digit;
            len += 1;
        }
        Self { text, len }
    }

    fn as_str(&self) -> &str {
        // Invariant: only ASCII hex digits, `-`, `_` and `G` are written, so the text is UTF-8.
        std::str::from_utf8(&self.text[..self.len])
            .expect("hex digits, dashes and the suffix are ASCII")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_digits(id: &str) -> Vec<u8> {
        id.split('_')
            .next()
            .unwrap()
            .bytes()
            .filter(|b| *b != b'-')
            .collect()
    }

    #[test]
    fn secret_ids_are_guid_shaped_with_128_random_bits_and_the_worker_suffix() {
        let mut ids = SecretIds::default();
        let all: Vec<Arc<str>> = (0..3 * BATCH / SECRET_ID_BYTES)
            .map(|_| ids.next(3).unwrap())
            .collect();
        for id in &all {
            assert_eq!(id.len(), 36 + 3, "{id}");
            assert!(id.ends_with("_G3"), "{id}");
            assert_eq!(hex_digits(id).len(), 32, "{id}");
        }
        // Every one of the 32 hex positions varies across the ids: none is fixed or counted.
        for pos in 0..32 {
            let first = hex_digits(&all[0])[pos];
            assert!(
                all.iter().any(|id| hex_digits(id)[pos] != first),
                "position {pos} never changes"
            );
        }
        let mut unique = all.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), all.len());
    }

    #[test]
    fn tracking_ids_keep_the_service_shape() {
        let id = tracking_id(1);
        assert_eq!(id.len(), 36 + 3, "{id}");
        assert!(id.ends_with("_G1"));
        assert_eq!(&id[14..15], "4", "{id}");
        assert_eq!(&id[19..20], "a", "{id}");
    }

    #[test]
    fn guids_are_written_in_groups_with_any_worker_number() {
        let bytes: [u8; 16] = std::array::from_fn(|b| (b as u8).wrapping_mul(17));
        assert_eq!(
            GuidText::new(&bytes, 0).as_str(),
            "00112233-4455-6677-8899-aabbccddeeff_G0"
        );
        assert_eq!(
            GuidText::new(&[0xff; 16], 1234).as_str(),
            "ffffffff-ffff-ffff-ffff-ffffffffffff_G1234"
        );
        assert!(GuidText::new(&[0; 16], usize::MAX)
            .as_str()
            .ends_with(&format!("_G{}", usize::MAX)));
    }
}
