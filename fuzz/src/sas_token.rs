//! Target `sas_token`: arbitrary text as a SAS token (protocol §3.2) through [`parse_token`] and
//! the relay's [`Verifier::verify`] (protocol §3.4).
//!
//! Oracles: no panic; no verification error quotes the token's signature.

use hycod::auth::sas::parse_token;
use hycod::auth::verify::{Right, Rights, Rule, Verifier};
use hycod::secret::Secret;

/// Parse, then verify against a namespace with one rule named `root`.
pub fn check(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(parsed) = parse_token(token) {
        let _ = (
            parsed.resource(),
            parsed.expiry(),
            parsed.key_name(),
            parsed.string_to_sign(),
        );
    }
    let mut verifier = Verifier::new("localhost");
    verifier.add_host_alias("127.0.0.1");
    let rights = Rights::NONE.with(Right::Listen).with(Right::Send);
    let rule = Rule::new("root", &Secret::new("a2V5"), rights);
    if verifier.add_namespace_rule(rule).is_err() {
        panic!("one rule fits");
    }
    for needed in [Right::Listen, Right::Send, Right::Manage] {
        if let Err(error) = verifier.verify(token, "hyco", "/$hc/hyco/x?y", needed, 1_700_000_000) {
            let text = format!("{error} {error:?}");
            if let Ok(parsed) = parse_token(token) {
                let signature = parsed.signature().expose();
                let quoted_elsewhere =
                    parsed.key_name().contains(signature) || parsed.resource().contains(signature);
                assert!(
                    signature.len() < 6 || quoted_elsewhere || !text.contains(signature),
                    "verify error quotes the signature: {text}"
                );
            }
        }
    }
}
