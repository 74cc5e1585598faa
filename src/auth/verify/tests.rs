//! Tests of [`Verifier`]: one per rule and per error variant, with tokens from protocol §3.6 and
//! tokens minted by [`sign_token`] in the Node and .NET styles.

use super::*;
use crate::auth::sas::{decode_query_token, sign_token, TokenField};
use crate::secret::Secret;

const NS: &str = "contoso.servicebus.windows.net";
const ROOT: &str = "RootManageSharedAccessKey";
const ROOT_KEY: &str = "Kx5vX0c1Hk8xZy9uVmJ3Y2RlZmdoaWprbG1ub3BxcnM=";
const LISTEN_KEY: &str = "bGlzdGVuLW9ubHkta2V5LWZvci10ZXN0cy0xMjM0NTY=";
const SEND_KEY: &str = "c2VuZC1vbmx5LWtleS1mb3ItdGVzdHMtMTIzNDU2Nzg=";
const DEEP_KEY: &str = "ZGVlcC1lbnRpdHkta2V5LWZvci10ZXN0cy0xMjM0NTY=";
const SE: u64 = 1_700_000_000;
const NOW: u64 = SE - 600;

/// Protocol §3.6 main vector.
const TOKEN: &str = "SharedAccessSignature sr=http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco&sig=bczrn9F3GUqyo6XWPPUhTBuR%2BL0oAezp6WADvWcO0Xg%3D&se=1700000000&skn=RootManageSharedAccessKey";
const QUERY_TOKEN: &str = "SharedAccessSignature%20sr%3Dhttp%253A%252F%252Fcontoso.servicebus.windows.net%252Fhyco%26sig%3Dbczrn9F3GUqyo6XWPPUhTBuR%252BL0oAezp6WADvWcO0Xg%253D%26se%3D1700000000%26skn%3DRootManageSharedAccessKey";

/// Namespace `contoso` with aliases for loopback, a Manage rule on the namespace, Listen-only and
/// Send-only rules on `hyco`, and a Listen rule on the multi-segment entity `a/b`.
fn verifier() -> Verifier {
    let mut v = Verifier::new("Contoso.ServiceBus.Windows.Net");
    v.add_host_alias("127.0.0.1");
    v.add_host_alias("LOCALHOST");
    v.add_namespace_rule(Rule::new(
        ROOT,
        &Secret::new(ROOT_KEY),
        Rights::of(&[Right::Manage]),
    ))
    .unwrap();
    v.add_entity_rule(
        "hyco",
        Rule::new(
            "listenOnly",
            &Secret::new(LISTEN_KEY),
            Rights::of(&[Right::Listen]),
        ),
    )
    .unwrap();
    v.add_entity_rule(
        "hyco",
        Rule::new(
            "sendOnly",
            &Secret::new(SEND_KEY),
            Rights::of(&[Right::Send]),
        ),
    )
    .unwrap();
    v.add_entity_rule(
        "A/b",
        Rule::new("deep", &Secret::new(DEEP_KEY), Rights::of(&[Right::Listen])),
    )
    .unwrap();
    v
}

fn mint(resource: &str, key_name: &str, key: &str) -> String {
    sign_token(resource, key_name, &Secret::new(key), SE)
        .expose()
        .to_owned()
}

fn root(resource: &str) -> String {
    mint(resource, ROOT, ROOT_KEY)
}

fn listen_hyco(token: &str) -> Result<VerifiedToken, VerifyError> {
    verifier().verify(token, "hyco", "/$hc/hyco", Right::Listen, NOW)
}

/// No error text or Debug output may contain key material or signature text.
fn assert_no_secret(err: &VerifyError, token: &str) {
    let text = format!("{err} {err:?}");
    for key in [ROOT_KEY, LISTEN_KEY, SEND_KEY, DEEP_KEY] {
        assert!(!text.contains(key), "key leaked: {text}");
    }
    if let Ok(parsed) = parse_token(token) {
        assert!(
            !text.contains(parsed.signature().expose()),
            "sig leaked: {text}"
        );
    }
    assert!(
        token.is_empty() || !text.contains(token),
        "token leaked: {text}"
    );
}

fn assert_refused(result: Result<VerifiedToken, VerifyError>, token: &str) -> VerifyError {
    let err = match result {
        Ok(ok) => panic!("expected a refusal, got {ok:?}"),
        Err(err) => err,
    };
    assert_no_secret(&err, token);
    err
}

// ---- accepted tokens -------------------------------------------------------------------------

#[test]
fn spec_vector_is_accepted() {
    let ok = listen_hyco(TOKEN).unwrap();
    assert_eq!(
        ok,
        VerifiedToken {
            key_name: ROOT.into(),
            level: RuleLevel::Namespace,
            rights: Rights::of(&[Right::Manage]),
            expires_at: SE,
        }
    );
}

#[test]
fn spec_vector_from_the_query_is_accepted_after_decoding_once() {
    let token = decode_query_token(QUERY_TOKEN).unwrap();
    assert!(listen_hyco(&token).is_ok());
}

#[test]
fn node_style_loopback_resource_with_port_is_accepted() {
    let token = root("http://127.0.0.1:9000/hyco");
    assert!(token.contains("sr=http%3A%2F%2F127.0.0.1%3A9000%2Fhyco&"));
    assert!(listen_hyco(&token).is_ok());
}

#[test]
fn dotnet_style_localhost_resource_is_accepted() {
    let token = root(&crate::auth::sas::dotnet_resource_uri("localhost", "hyco"));
    assert!(token.contains("sr=http%3A%2F%2Flocalhost%2Fhyco%2F&"));
    assert!(listen_hyco(&token).is_ok());
}

#[test]
fn node_listen_uri_vector_with_port_443_is_accepted() {
    // Protocol §3.6: Node signs http://{ns}:443/hyco for its own listen URI.
    let token = "SharedAccessSignature sr=http%3A%2F%2Fcontoso.servicebus.windows.net%3A443%2Fhyco&sig=yS7mbIm4VQBsZGSgYKopE7YsmryAOnHhbqmS16T3hBY%3D&se=1700000000&skn=RootManageSharedAccessKey";
    assert!(listen_hyco(token).is_ok());
}

#[test]
fn fields_in_another_order_and_case_are_accepted() {
    let token = "SharedAccessSignature skn=RootManageSharedAccessKey&SE=1700000000&sig=bczrn9F3GUqyo6XWPPUhTBuR%2BL0oAezp6WADvWcO0Xg%3D&sr=http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco";
    assert!(listen_hyco(token).is_ok());
}

#[test]
fn unencoded_slash_and_padding_in_sig_are_accepted() {
    // Protocol §3.6 .NET-style vector; its signature contains '/', left raw as Python's quote does.
    let token = "SharedAccessSignature sr=http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco%2F&sig=0jj6czaBfUJ/AQrXCZtyVwOeZrEzDmkUcMHV53wNYWk=&se=1700000000&skn=RootManageSharedAccessKey";
    assert!(listen_hyco(token).is_ok());
}

#[test]
fn sig_without_base64_padding_is_accepted() {
    let token = TOKEN.replace("0Xg%3D", "0Xg");
    assert!(listen_hyco(&token).is_ok());
}

#[test]
fn lower_case_hex_sr_is_verified_as_written() {
    let token = "SharedAccessSignature sr=http%3a%2f%2fcontoso.servicebus.windows.net%2fhyco%2f&sig=P2O67%2BXjNdQ278qXdW7CSwyg6g9oOwHhb0OXfNbUpIw%3D&se=1700000000&skn=RootManageSharedAccessKey";
    assert!(listen_hyco(token).is_ok());
}

#[test]
fn scheme_and_port_of_the_audience_are_ignored() {
    for resource in [
        "https://contoso.servicebus.windows.net/hyco",
        "sb://contoso.servicebus.windows.net/hyco",
        "ws://contoso.servicebus.windows.net:80/hyco",
        "wss://contoso.servicebus.windows.net:443/$hc/hyco",
    ] {
        assert!(listen_hyco(&root(resource)).is_ok(), "{resource}");
    }
}

#[test]
fn audience_host_compares_case_insensitively() {
    let token = root("sb://CONTOSO.servicebus.windows.net/hyco");
    assert!(listen_hyco(&token).is_ok());
}

#[test]
fn namespace_wide_token_is_accepted_for_any_entity() {
    let token = root("http://contoso.servicebus.windows.net/");
    let v = verifier();
    assert!(v
        .verify(&token, "hyco", "/$hc/hyco", Right::Listen, NOW)
        .is_ok());
    assert!(v
        .verify(&token, "other/x", "/other/x/y", Right::Send, NOW)
        .is_ok());
}

#[test]
fn audience_path_compares_case_insensitively() {
    assert!(listen_hyco(&root("http://contoso.servicebus.windows.net/HYCO/")).is_ok());
}

#[test]
fn token_for_an_ancestor_path_covers_the_entity() {
    let token = root("http://contoso.servicebus.windows.net/a");
    let v = verifier();
    assert!(v
        .verify(&token, "a/b/c", "/$hc/a/b/c", Right::Listen, NOW)
        .is_ok());
}

#[test]
fn token_scoped_to_the_full_request_url_is_accepted_for_that_request() {
    // APIM-style token signed for the whole HTTPS request URL (protocol §3.4).
    let token = root("https://contoso.servicebus.windows.net/hyco/api/orders");
    let v = verifier();
    assert!(v
        .verify(&token, "hyco", "/hyco/api/orders", Right::Send, NOW)
        .is_ok());
    assert!(v
        .verify(&token, "hyco", "/hyco/api/orders/7?x=1", Right::Send, NOW)
        .is_ok());
}

#[test]
fn entity_rule_is_found_and_reported() {
    let token = mint("http://localhost/hyco/", "listenOnly", LISTEN_KEY);
    let ok = listen_hyco(&token).unwrap();
    assert_eq!(ok.key_name, "listenOnly");
    assert_eq!(ok.level, RuleLevel::Entity("hyco".into()));
    assert_eq!(ok.rights, Rights::of(&[Right::Listen]));
}

#[test]
fn key_name_and_entity_path_compare_case_insensitively() {
    let token = mint("http://localhost/HYCO/", "LISTENONLY", LISTEN_KEY);
    let v = verifier();
    let ok = v
        .verify(&token, "Hyco", "/$hc/Hyco", Right::Listen, NOW)
        .unwrap();
    assert_eq!(ok.key_name, "listenOnly");
}

#[test]
fn rule_on_an_ancestor_entity_applies_to_descendants() {
    let token = mint("http://localhost/a/b/c", "deep", DEEP_KEY);
    let ok = verifier()
        .verify(&token, "a/b/c", "/$hc/a/b/c", Right::Listen, NOW)
        .unwrap();
    assert_eq!(ok.level, RuleLevel::Entity("a/b".into()));
}

#[test]
fn same_rule_name_on_two_levels_uses_the_level_whose_key_matches() {
    let mut v = verifier();
    v.add_entity_rule(
        "hyco",
        Rule::new(ROOT, &Secret::new(LISTEN_KEY), Rights::of(&[Right::Listen])),
    )
    .unwrap();
    let entity_signed = mint("http://localhost/hyco", ROOT, LISTEN_KEY);
    let ok = v
        .verify(&entity_signed, "hyco", "/$hc/hyco", Right::Listen, NOW)
        .unwrap();
    assert_eq!(ok.level, RuleLevel::Entity("hyco".into()));
    let ok = v
        .verify(TOKEN, "hyco", "/$hc/hyco", Right::Send, NOW)
        .unwrap();
    assert_eq!(ok.level, RuleLevel::Namespace);
    let err = v
        .verify(&entity_signed, "hyco", "/$hc/hyco", Right::Send, NOW)
        .unwrap_err();
    assert_eq!(
        err,
        VerifyError::MissingRight {
            needed: Right::Send
        }
    );
}

#[test]
fn manage_grants_listen_and_send() {
    let v = verifier();
    for needed in [Right::Listen, Right::Send, Right::Manage] {
        assert!(
            v.verify(TOKEN, "hyco", "/hyco", needed, NOW).is_ok(),
            "{needed}"
        );
    }
}

#[test]
fn clock_skew_allowance_extends_validity() {
    let mut v = verifier();
    v.set_clock_skew_secs(30);
    assert!(v
        .verify(TOKEN, "hyco", "/$hc/hyco", Right::Listen, SE + 29)
        .is_ok());
    let err = v
        .verify(TOKEN, "hyco", "/$hc/hyco", Right::Listen, SE + 30)
        .unwrap_err();
    assert_eq!(err, VerifyError::Expired { expired_at: SE });
}

#[test]
fn token_one_second_before_expiry_is_accepted() {
    assert!(verifier()
        .verify(TOKEN, "hyco", "/$hc/hyco", Right::Listen, SE - 1)
        .is_ok());
}

// ---- refusals, one per variant ---------------------------------------------------------------

#[test]
fn missing_token_is_refused() {
    let err = assert_refused(listen_hyco(""), "");
    assert_eq!(err, VerifyError::MissingToken);
    assert_eq!(err.http_status(), 401);
    assert!(err.to_string().starts_with("TokenMissingOrInvalid"));
}

#[test]
fn malformed_token_is_refused() {
    let err = assert_refused(listen_hyco("Bearer eyJhbGciOi"), "Bearer eyJhbGciOi");
    assert_eq!(err, VerifyError::Malformed(TokenError::MissingPrefix));
    assert_eq!(err.http_status(), 401);
    let no_skn = "SharedAccessSignature sr=http%3A%2F%2Fcontoso.servicebus.windows.net%2Fhyco&sig=bczrn9F3GUqyo6XWPPUhTBuR%2BL0oAezp6WADvWcO0Xg%3D&se=1700000000";
    let err = assert_refused(listen_hyco(no_skn), no_skn);
    assert_eq!(
        err,
        VerifyError::Malformed(TokenError::MissingField {
            field: TokenField::Skn
        })
    );
}

#[test]
fn still_query_encoded_token_is_refused_as_malformed() {
    let err = assert_refused(listen_hyco(QUERY_TOKEN), QUERY_TOKEN);
    assert_eq!(err, VerifyError::Malformed(TokenError::MissingPrefix));
}

#[test]
fn unknown_key_name_is_refused() {
    let token = mint("http://localhost/hyco", "nobody", ROOT_KEY);
    let err = assert_refused(listen_hyco(&token), &token);
    assert_eq!(
        err,
        VerifyError::UnknownKeyName {
            key_name: "nobody".into()
        }
    );
    assert_eq!(err.http_status(), 401);
    assert!(err
        .to_string()
        .contains("The token has an invalid signature"));
}

#[test]
fn entity_rule_does_not_apply_to_another_entity() {
    let token = mint("http://localhost/", "listenOnly", LISTEN_KEY);
    let err = assert_refused(
        verifier().verify(&token, "other", "/$hc/other", Right::Listen, NOW),
        &token,
    );
    assert_eq!(
        err,
        VerifyError::UnknownKeyName {
            key_name: "listenOnly".into()
        }
    );
}

#[test]
fn entity_rule_does_not_apply_to_a_sibling_sharing_a_name_prefix() {
    let token = mint("http://localhost/a/bc", "deep", DEEP_KEY);
    let err = assert_refused(
        verifier().verify(&token, "a/bc", "/$hc/a/bc", Right::Listen, NOW),
        &token,
    );
    assert_eq!(
        err,
        VerifyError::UnknownKeyName {
            key_name: "deep".into()
        }
    );
}

#[test]
fn entity_rule_does_not_apply_to_an_ancestor() {
    let token = mint("http://localhost/a", "deep", DEEP_KEY);
    let err = assert_refused(
        verifier().verify(&token, "a", "/$hc/a", Right::Listen, NOW),
        &token,
    );
    assert_eq!(
        err,
        VerifyError::UnknownKeyName {
            key_name: "deep".into()
        }
    );
}

#[test]
fn unknown_key_name_in_the_message_is_escaped_and_bounded() {
    let name = format!("evil\r\nX-Injected: 1{}", "n".repeat(1000));
    let token = mint("http://localhost/hyco", &name, ROOT_KEY);
    let err = assert_refused(listen_hyco(&token), &token);
    let text = err.to_string();
    assert!(!text.contains('\r') && !text.contains('\n'), "{text}");
    let VerifyError::UnknownKeyName { key_name } = err else {
        panic!("expected UnknownKeyName");
    };
    assert_eq!(key_name.chars().count(), MAX_REPORTED_KEY_NAME);
}

#[test]
fn non_base64_signature_is_refused() {
    let token = TOKEN.replace(
        "bczrn9F3GUqyo6XWPPUhTBuR%2BL0oAezp6WADvWcO0Xg%3D",
        "not%20base64%21",
    );
    let err = assert_refused(listen_hyco(&token), &token);
    assert_eq!(err, VerifyError::SignatureNotBase64);
    assert_eq!(err.http_status(), 401);
}

#[test]
fn wrong_signature_is_refused() {
    let token = TOKEN.replace("bczrn9F3", "bczrn9F4");
    let err = assert_refused(listen_hyco(&token), &token);
    assert_eq!(err, VerifyError::InvalidSignature);
    assert_eq!(err.http_status(), 401);
    assert_eq!(
        err.to_string(),
        "InvalidSignature: The token has an invalid signature"
    );
}

#[test]
fn signature_over_a_re_encoded_sr_is_refused() {
    // The .NET-style signature with the sr rewritten in lower-case hex: the hex case is signed.
    let token = "SharedAccessSignature sr=http%3a%2f%2fcontoso.servicebus.windows.net%2fhyco%2f&sig=0jj6czaBfUJ%2FAQrXCZtyVwOeZrEzDmkUcMHV53wNYWk%3D&se=1700000000&skn=RootManageSharedAccessKey";
    let err = assert_refused(listen_hyco(token), token);
    assert_eq!(err, VerifyError::InvalidSignature);
}

#[test]
fn signature_made_with_the_base64_decoded_key_is_refused() {
    // Protocol §3.6 negative vector.
    let token = TOKEN.replace(
        "bczrn9F3GUqyo6XWPPUhTBuR%2BL0oAezp6WADvWcO0Xg%3D",
        "jpkBnRXIiKLw4c9NUcBqg2kKGIJMukvjEQAFix8yY00%3D",
    );
    let err = assert_refused(listen_hyco(&token), &token);
    assert_eq!(err, VerifyError::InvalidSignature);
}

#[test]
fn tampered_expiry_is_refused_as_invalid_signature() {
    let token = TOKEN.replace("se=1700000000", "se=1800000000");
    let err = assert_refused(listen_hyco(&token), &token);
    assert_eq!(err, VerifyError::InvalidSignature);
}

#[test]
fn expiry_with_leading_zeros_is_verified_as_written() {
    let token = TOKEN.replace("se=1700000000", "se=01700000000");
    let err = assert_refused(listen_hyco(&token), &token);
    assert_eq!(err, VerifyError::InvalidSignature);
}

#[test]
fn expired_token_is_refused() {
    let v = verifier();
    let err = assert_refused(
        v.verify(TOKEN, "hyco", "/$hc/hyco", Right::Listen, SE),
        TOKEN,
    );
    assert_eq!(err, VerifyError::Expired { expired_at: SE });
    assert_eq!(err.http_status(), 401);
    assert!(err
        .to_string()
        .starts_with("ExpiredToken: The token is expired"));
    let err = v
        .verify(TOKEN, "hyco", "/$hc/hyco", Right::Listen, SE + 3600)
        .unwrap_err();
    assert_eq!(err, VerifyError::Expired { expired_at: SE });
}

#[test]
fn audience_that_is_not_a_url_is_refused() {
    let token = root("contoso.servicebus.windows.net/hyco");
    let err = assert_refused(listen_hyco(&token), &token);
    assert_eq!(err, VerifyError::AudienceNotUrl);
    assert_eq!(err.http_status(), 401);
    assert!(err.to_string().starts_with(WRONG_AUDIENCE));
}

#[test]
fn audience_of_another_namespace_is_refused() {
    let token = root("http://fabrikam.servicebus.windows.net/hyco");
    let err = assert_refused(listen_hyco(&token), &token);
    assert_eq!(
        err,
        VerifyError::WrongAudienceHost {
            host: "fabrikam.servicebus.windows.net".into()
        }
    );
    assert_eq!(err.http_status(), 401);
    assert!(err.to_string().starts_with(
        "InvalidAudience: The authorization header contains a token with a wrong audience"
    ));
}

#[test]
fn audience_host_that_only_extends_the_namespace_is_refused() {
    let token = root("http://contoso.servicebus.windows.net.evil.example/hyco");
    let err = assert_refused(listen_hyco(&token), &token);
    assert!(
        matches!(err, VerifyError::WrongAudienceHost { .. }),
        "{err:?}"
    );
}

#[test]
fn audience_of_another_entity_is_refused() {
    let token = root("http://contoso.servicebus.windows.net/other");
    let err = assert_refused(listen_hyco(&token), &token);
    assert_eq!(
        err,
        VerifyError::WrongAudiencePath {
            path: "other".into()
        }
    );
    assert_eq!(err.http_status(), 401);
    assert!(err.to_string().starts_with(WRONG_AUDIENCE));
}

#[test]
fn audience_path_must_match_on_segment_boundaries() {
    for (resource, path) in [
        ("http://localhost/hy", "hy"),
        ("http://localhost/hyco2", "hyco2"),
        ("http://localhost/hyco/suffix", "hyco/suffix"),
    ] {
        let token = root(resource);
        let err = assert_refused(listen_hyco(&token), &token);
        assert_eq!(
            err,
            VerifyError::WrongAudiencePath { path: path.into() },
            "{resource}"
        );
    }
}

#[test]
fn full_request_url_token_is_refused_for_a_different_request() {
    let token = root("https://contoso.servicebus.windows.net/hyco/api/orders");
    let err = assert_refused(
        verifier().verify(&token, "hyco", "/hyco/api/customers", Right::Send, NOW),
        &token,
    );
    assert_eq!(
        err,
        VerifyError::WrongAudiencePath {
            path: "hyco/api/orders".into()
        }
    );
}

#[test]
fn missing_right_is_refused_with_403() {
    let token = mint("http://localhost/hyco", "listenOnly", LISTEN_KEY);
    let err = assert_refused(
        verifier().verify(&token, "hyco", "/hyco", Right::Send, NOW),
        &token,
    );
    assert_eq!(
        err,
        VerifyError::MissingRight {
            needed: Right::Send
        }
    );
    assert_eq!(err.http_status(), 403);
    assert_eq!(
        err.to_string(),
        "Unauthorized access. 'Send' claim(s) are required to perform this operation."
    );
    let token = mint("http://localhost/hyco", "sendOnly", SEND_KEY);
    let err = assert_refused(listen_hyco(&token), &token);
    assert_eq!(
        err,
        VerifyError::MissingRight {
            needed: Right::Listen
        }
    );
}

#[test]
fn checks_run_in_the_documented_order() {
    // Expired, wrong audience and missing right at once: the signature is checked first...
    let token = mint("http://fabrikam/other", "listenOnly", LISTEN_KEY).replace("&sig=", "&sig=A");
    let v = verifier();
    let at = SE + 1;
    let err = v
        .verify(&token, "hyco", "/hyco", Right::Send, at)
        .unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::InvalidSignature | VerifyError::SignatureNotBase64
        ),
        "{err:?}"
    );
    // ...then expiry, then audience host, then path, then the right.
    let token = mint("http://fabrikam/other", "listenOnly", LISTEN_KEY);
    let err = v
        .verify(&token, "hyco", "/hyco", Right::Send, at)
        .unwrap_err();
    assert_eq!(err, VerifyError::Expired { expired_at: SE });
    let err = v
        .verify(&token, "hyco", "/hyco", Right::Send, NOW)
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::WrongAudienceHost { .. }),
        "{err:?}"
    );
    let token = mint("http://localhost/other", "listenOnly", LISTEN_KEY);
    let err = v
        .verify(&token, "hyco", "/hyco", Right::Send, NOW)
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::WrongAudiencePath { .. }),
        "{err:?}"
    );
}

#[test]
fn error_labels_are_distinct() {
    let errors = [
        VerifyError::MissingToken,
        VerifyError::Malformed(TokenError::MissingPrefix),
        VerifyError::UnknownKeyName {
            key_name: "k".into(),
        },
        VerifyError::SignatureNotBase64,
        VerifyError::InvalidSignature,
        VerifyError::Expired { expired_at: 1 },
        VerifyError::AudienceNotUrl,
        VerifyError::WrongAudienceHost { host: "h".into() },
        VerifyError::WrongAudiencePath { path: "p".into() },
        VerifyError::MissingRight {
            needed: Right::Listen,
        },
    ];
    let mut labels: Vec<&str> = errors.iter().map(VerifyError::as_str).collect();
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), errors.len());
    let forbidden: Vec<_> = errors.iter().filter(|e| e.http_status() == 403).collect();
    assert_eq!(
        forbidden,
        [&VerifyError::MissingRight {
            needed: Right::Listen
        }]
    );
}

// ---- rule configuration ----------------------------------------------------------------------

#[test]
fn empty_rule_name_is_rejected() {
    let mut v = Verifier::new(NS);
    let rule = Rule::new("", &Secret::new(ROOT_KEY), Rights::of(&[Right::Listen]));
    assert_eq!(v.add_namespace_rule(rule), Err(RuleError::EmptyName));
}

#[test]
fn entity_rule_without_entity_path_is_rejected() {
    let mut v = Verifier::new(NS);
    let rule = Rule::new("r", &Secret::new(ROOT_KEY), Rights::of(&[Right::Listen]));
    assert_eq!(
        v.add_entity_rule("/", rule),
        Err(RuleError::EmptyEntityPath)
    );
}

#[test]
fn duplicate_rule_name_on_one_level_is_rejected() {
    let mut v = verifier();
    let rule = Rule::new(
        "LISTENONLY",
        &Secret::new(SEND_KEY),
        Rights::of(&[Right::Send]),
    );
    let err = v.add_entity_rule("HYCO", rule).unwrap_err();
    assert_eq!(
        err,
        RuleError::DuplicateName {
            name: "LISTENONLY".into(),
            level: RuleLevel::Entity("hyco".into())
        }
    );
    assert!(!format!("{err} {err:?}").contains(SEND_KEY));
    let rule = Rule::new(ROOT, &Secret::new(SEND_KEY), Rights::of(&[Right::Send]));
    assert_eq!(
        v.add_namespace_rule(rule),
        Err(RuleError::DuplicateName {
            name: ROOT.into(),
            level: RuleLevel::Namespace
        })
    );
}

#[test]
fn thirteenth_rule_on_a_level_is_rejected() {
    let mut v = Verifier::new(NS);
    let key = Secret::new(ROOT_KEY);
    for i in 0..MAX_RULES_PER_LEVEL {
        v.add_namespace_rule(Rule::new(format!("r{i}"), &key, Rights::NONE))
            .unwrap();
    }
    assert_eq!(
        v.add_namespace_rule(Rule::new("r12", &key, Rights::NONE)),
        Err(RuleError::TooManyRules {
            max: 12,
            level: RuleLevel::Namespace
        })
    );
}

#[test]
fn host_alias_with_ipv6_brackets_matches() {
    let mut v = verifier();
    v.add_host_alias("[::1]");
    let token = root("http://[::1]:9000/hyco");
    assert!(v
        .verify(&token, "hyco", "/$hc/hyco", Right::Listen, NOW)
        .is_ok());
}

#[test]
fn verifier_debug_shows_no_key() {
    let text = format!("{:?}", verifier());
    for key in [ROOT_KEY, LISTEN_KEY, SEND_KEY, DEEP_KEY] {
        assert!(!text.contains(key), "{text}");
    }
}
