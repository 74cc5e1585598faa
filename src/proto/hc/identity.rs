//! How hycod names itself and its connections to the service, as the official SDKs do: every
//! listener and sender connection carries a GUID `sb-hc-id` (the .NET SDK's
//! `TrackingContext` makes one with `Guid.NewGuid()`; Azure features such as allowed-listener
//! lists expect that shape), and listen and connect upgrades carry a `Relay-User-Agent`
//! header naming the client and its version (.NET: `azure-relay-dotnet/{version} (…)`).

/// The header the .NET SDK names its client in on listen and connect upgrades.
pub const RELAY_USER_AGENT: &str = "Relay-User-Agent";

/// The value of [`RELAY_USER_AGENT`]: `hycod/{version}`.
pub const CLIENT_AGENT: &str = concat!("hycod/", env!("CARGO_PKG_VERSION"));

/// Formats 16 random bytes as a version-4 GUID, `xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx` in lower
/// case (the form `Guid.ToString()` gives).
pub fn guid_from_random(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut out = String::with_capacity(36);
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_have_the_dotnet_shape_and_version_4() {
        let guid = guid_from_random([0xff; 16]);
        assert_eq!(guid, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let guid = guid_from_random([0; 16]);
        assert_eq!(guid, "00000000-0000-4000-8000-000000000000");
    }

    #[test]
    fn the_client_agent_names_hycod_and_its_version() {
        assert_eq!(CLIENT_AGENT, format!("hycod/{}", env!("CARGO_PKG_VERSION")));
    }
}
