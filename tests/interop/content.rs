//! Deterministic test content shared with the Node scripts (`tests/interop/node/common.js`):
//! SHA-256 in counter mode, block `i` = SHA-256(`"{label}/{i}"`), concatenated and cut to the
//! requested size. The scripts report SHA-256 hashes of what they sent and received; these
//! functions let the tests check every reported hash independently of the scripts.

use ring::digest::{digest, SHA256};

/// `size` bytes of content for `label`, identical to `common.content(label, size)`.
pub(crate) fn content(label: &str, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size);
    let mut block_index: u64 = 0;
    while out.len() < size {
        let block = digest(&SHA256, format!("{label}/{block_index}").as_bytes());
        let take = block.as_ref().len().min(size - out.len());
        out.extend_from_slice(&block.as_ref()[..take]);
        block_index += 1;
    }
    out
}

/// Text content of `size` characters, identical to `common.textContent(label, size)`:
/// the lower-case hex of `content(label, size / 2)`.
pub(crate) fn text_content(label: &str, size: usize) -> Vec<u8> {
    hex(&content(label, size / 2)).into_bytes()
}

/// Lower-case hex SHA-256 of `data`, as the scripts print it.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(digest(&SHA256, data).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

#[test]
fn content_matches_values_computed_by_common_js() {
    // Printed by `node -e` with common.js: sha256(content('ws/sizes/65536', 65536)),
    // textContent('t', 6), sha256(content('request/5242880', 5242880)).
    assert_eq!(
        sha256_hex(&content("ws/sizes/65536", 65536)),
        "3cf1579bd2d802657e7a28ae2813dd1492d54c6424fdeed100ddf02974e6b57a"
    );
    assert_eq!(text_content("t", 6), b"9735c3".to_vec());
    assert_eq!(
        sha256_hex(&content("request/5242880", 5 * 1024 * 1024)),
        "187dd96df34427e56f277cc2239795b471da6adab41f8b17962912eb94b63fb3"
    );
    assert_eq!(content("x", 33).len(), 33);
    assert!(content("x", 0).is_empty());
}
