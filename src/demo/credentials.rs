//! The demo's throw-away credentials: one random namespace key per run, shared by the relay's
//! rule, the daemon's connection strings and the senders' SAS tokens (protocol §3.2–§3.5).

use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use crate::auth::sas::{dotnet_resource_uri, sign_token};
use crate::secret::Secret;

/// The namespace host every token names (the relay also accepts `127.0.0.1`).
pub(crate) const NAMESPACE: &str = "localhost";

/// The shared access rule's name (`skn`, `SharedAccessKeyName`).
pub(crate) const RULE_NAME: &str = "root";

/// Random bytes in a key, as in an Azure-generated one (44 Base64 characters).
const KEY_BYTES: usize = 32;

/// A fresh key: Base64 of 32 random bytes. `fastrand` is not a cryptographic generator; the key
/// only guards loopback sockets that live as long as the demo, so that is enough here.
pub(crate) fn random_key() -> Secret {
    let bytes: [u8; KEY_BYTES] = std::array::from_fn(|_| fastrand::u8(..));
    Secret::new(BASE64.encode(bytes))
}

/// A sender's token for hybrid connection `hc`, signed with `key` as the .NET SDK signs it
/// (protocol §3.4), valid for `ttl` from `now`.
pub(crate) fn sender_token(key: &Secret, hc: &str, now: SystemTime, ttl: Duration) -> Secret {
    let expiry = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_add(ttl)
        .as_secs();
    sign_token(&dotnet_resource_uri(NAMESPACE, hc), RULE_NAME, key, expiry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::verify::{Right, Rights, Rule, Verifier};

    #[test]
    fn keys_are_44_base64_characters_and_differ_per_call() {
        let a = random_key();
        let b = random_key();
        assert_eq!(a.expose().len(), 44);
        assert_eq!(BASE64.decode(a.expose()).expect("base64").len(), KEY_BYTES);
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn tokens_pass_the_relays_verifier_for_send_until_they_expire() {
        let key = random_key();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let token = sender_token(&key, "erp-api", now, Duration::from_secs(60));
        let mut verifier = Verifier::new(NAMESPACE);
        verifier
            .add_namespace_rule(Rule::new(
                RULE_NAME.to_owned(),
                &key,
                Rights::of(&[Right::Manage]),
            ))
            .expect("rule");
        let verified = verifier.verify(
            token.expose(),
            "erp-api",
            "/erp-api/api/bapi",
            Right::Send,
            1_700_000_030,
        );
        assert!(verified.is_ok(), "{verified:?}");
        let expired = verifier.verify(
            token.expose(),
            "erp-api",
            "/erp-api/api/bapi",
            Right::Send,
            1_700_000_061,
        );
        assert!(
            matches!(
                expired,
                Err(crate::auth::verify::VerifyError::Expired { .. })
            ),
            "{expired:?}"
        );
    }
}
