//! Tests of [`TokenCache`]: every answer equals [`Verifier::verify`]'s, hits skip the full check,
//! refusals are never kept, the bound holds.

use super::*;
use crate::auth::sas::sign_token;
use crate::auth::verify::{Rights, Rule, RuleLevel};
use crate::secret::Secret;

const NS: &str = "contoso.servicebus.windows.net";
const ROOT: &str = "RootManageSharedAccessKey";
const ROOT_KEY: &str = "Kx5vX0c1Hk8xZy9uVmJ3Y2RlZmdoaWprbG1ub3BxcnM=";
const LISTEN_KEY: &str = "bGlzdGVuLW9ubHkta2V5LWZvci10ZXN0cy0xMjM0NTY=";
const SE: u64 = 1_700_000_000;
const NOW: u64 = SE - 600;

/// One check: token, entity, request path, right needed, time.
struct Check<'a>(&'a str, &'a str, &'a str, Right, u64);

/// `cache` refuses `check` with `expected`, exactly as the uncached [`Verifier::verify`] does.
fn assert_refused_as_uncached(
    cache: &mut TokenCache,
    v: &Verifier,
    Check(token, entity, path, needed, now): Check<'_>,
    expected: Result<VerifiedToken, VerifyError>,
) {
    let refused = cache.verify(v, token, entity, path, needed, now);
    assert_eq!(refused, expected);
    assert_eq!(refused, v.verify(token, entity, path, needed, now));
}

/// A Manage rule on the namespace and a Listen-only rule `listenOnly` on entity `a`; entity `b`
/// has no rule of its own.
fn verifier() -> Verifier {
    let mut v = Verifier::new(NS);
    v.add_namespace_rule(Rule::new(
        ROOT,
        &Secret::new(ROOT_KEY),
        Rights::of(&[Right::Manage]),
    ))
    .unwrap();
    v.add_entity_rule(
        "a",
        Rule::new(
            "listenOnly",
            &Secret::new(LISTEN_KEY),
            Rights::of(&[Right::Listen]),
        ),
    )
    .unwrap();
    v
}

fn mint(path: &str, key_name: &str, key: &str, se: u64) -> String {
    sign_token(
        &format!("http://{NS}/{path}"),
        key_name,
        &Secret::new(key),
        se,
    )
    .expose()
    .to_owned()
}

fn root(path: &str) -> String {
    mint(path, ROOT, ROOT_KEY, SE)
}

/// The same token with the first signature character replaced by another Base64 character.
fn with_changed_signature(token: &str) -> String {
    let at = token.find("sig=").unwrap() + "sig=".len();
    let old = &token[at..at + 1];
    let new = if old == "A" { "B" } else { "A" };
    format!("{}{new}{}", &token[..at], &token[at + 1..])
}

#[test]
fn cached_hit_gives_the_same_verified_token() {
    let v = verifier();
    let mut cache = TokenCache::new();
    let token = root("a");
    let uncached = v.verify(&token, "a", "/a", Right::Send, NOW).unwrap();
    let first = cache.verify(&v, &token, "a", "/a", Right::Send, NOW);
    let second = cache.verify(&v, &token, "a", "/a/x?q=1", Right::Send, NOW + 1);
    assert_eq!(first, Ok(uncached.clone()));
    assert_eq!(second, Ok(uncached));
    assert_eq!((cache.misses(), cache.hits(), cache.len()), (1, 1, 1));
}

#[test]
fn entity_rule_grant_is_remembered_with_its_level() {
    let v = verifier();
    let mut cache = TokenCache::new();
    let token = mint("a", "listenOnly", LISTEN_KEY, SE);
    cache
        .verify(&v, &token, "a", "/a", Right::Listen, NOW)
        .unwrap();
    let hit = cache
        .verify(&v, &token, "a", "/a", Right::Listen, NOW)
        .unwrap();
    assert_eq!(hit.level, RuleLevel::Entity("a".into()));
    assert_eq!(hit.key_name, "listenOnly");
    assert_eq!(cache.hits(), 1);
}

#[test]
fn expired_cached_token_is_refused_as_expired_and_dropped() {
    let v = verifier();
    let mut cache = TokenCache::new();
    let token = root("a");
    cache
        .verify(&v, &token, "a", "/a", Right::Send, NOW)
        .unwrap();
    assert_refused_as_uncached(
        &mut cache,
        &v,
        Check(&token, "a", "/a", Right::Send, SE),
        Err(VerifyError::Expired { expired_at: SE }),
    );
    assert_eq!(cache.hits(), 1);
    assert!(cache.is_empty());
}

#[test]
fn cached_token_honours_the_clock_skew_allowance() {
    let mut v = verifier();
    v.set_clock_skew_secs(30);
    let mut cache = TokenCache::new();
    let token = root("a");
    cache
        .verify(&v, &token, "a", "/a", Right::Send, NOW)
        .unwrap();
    assert!(cache
        .verify(&v, &token, "a", "/a", Right::Send, SE + 29)
        .is_ok());
    assert_eq!(
        cache.verify(&v, &token, "a", "/a", Right::Send, SE + 30),
        Err(VerifyError::Expired { expired_at: SE })
    );
    assert_eq!(cache.hits(), 2);
}

#[test]
fn token_cached_for_one_entity_gets_the_uncached_error_for_another() {
    let v = verifier();
    let mut cache = TokenCache::new();
    let entity_rule_token = mint("a", "listenOnly", LISTEN_KEY, SE);
    cache
        .verify(&v, &entity_rule_token, "a", "/a", Right::Listen, NOW)
        .unwrap();
    assert_refused_as_uncached(
        &mut cache,
        &v,
        Check(&entity_rule_token, "b", "/b", Right::Listen, NOW),
        Err(VerifyError::UnknownKeyName {
            key_name: "listenOnly".into(),
        }),
    );

    let scoped_root_token = root("a");
    cache
        .verify(&v, &scoped_root_token, "a", "/a", Right::Send, NOW)
        .unwrap();
    assert_refused_as_uncached(
        &mut cache,
        &v,
        Check(&scoped_root_token, "b", "/b", Right::Send, NOW),
        Err(VerifyError::WrongAudiencePath { path: "a".into() }),
    );
    assert_eq!(cache.hits(), 0);
}

#[test]
fn cached_token_scoped_to_one_request_path_is_refused_for_another() {
    let v = verifier();
    let mut cache = TokenCache::new();
    let token = root("a/x");
    cache
        .verify(&v, &token, "a", "/a/x", Right::Send, NOW)
        .unwrap();
    assert_refused_as_uncached(
        &mut cache,
        &v,
        Check(&token, "a", "/a/y", Right::Send, NOW),
        Err(VerifyError::WrongAudiencePath { path: "a/x".into() }),
    );
    assert_eq!(cache.hits(), 1);
}

#[test]
fn cached_token_is_refused_a_right_its_rule_lacks() {
    let v = verifier();
    let mut cache = TokenCache::new();
    let token = mint("a", "listenOnly", LISTEN_KEY, SE);
    cache
        .verify(&v, &token, "a", "/a", Right::Listen, NOW)
        .unwrap();
    assert_refused_as_uncached(
        &mut cache,
        &v,
        Check(&token, "a", "/a", Right::Send, NOW),
        Err(VerifyError::MissingRight {
            needed: Right::Send,
        }),
    );
    assert_eq!((cache.hits(), cache.len()), (1, 1));
}

#[test]
fn one_changed_signature_character_is_not_a_hit() {
    let v = verifier();
    let mut cache = TokenCache::new();
    let token = root("a");
    cache
        .verify(&v, &token, "a", "/a", Right::Send, NOW)
        .unwrap();
    let forged = with_changed_signature(&token);
    assert_ne!(forged, token);
    for _ in 0..2 {
        assert_eq!(
            cache.verify(&v, &forged, "a", "/a", Right::Send, NOW),
            Err(VerifyError::InvalidSignature)
        );
    }
    assert_eq!((cache.hits(), cache.misses(), cache.len()), (0, 3, 1));
}

#[test]
fn refused_tokens_are_never_kept() {
    let v = verifier();
    let mut cache = TokenCache::new();
    let listen_token = mint("a", "listenOnly", LISTEN_KEY, SE);
    assert_eq!(
        cache.verify(&v, "", "a", "/a", Right::Send, NOW),
        Err(VerifyError::MissingToken)
    );
    assert!(matches!(
        cache.verify(&v, "garbage", "a", "/a", Right::Send, NOW),
        Err(VerifyError::Malformed(_))
    ));
    assert_eq!(
        cache.verify(&v, &root("a"), "a", "/a", Right::Send, SE),
        Err(VerifyError::Expired { expired_at: SE })
    );
    assert_eq!(
        cache.verify(&v, &listen_token, "a", "/a", Right::Send, NOW),
        Err(VerifyError::MissingRight {
            needed: Right::Send
        })
    );
    assert!(cache.is_empty());
    assert_eq!(cache.hits(), 0);
}

#[test]
fn full_cache_is_cleared_before_the_next_insert() {
    let v = verifier();
    let mut cache = TokenCache::with_capacity(3);
    let tokens: Vec<String> = (0..4).map(|i| mint("a", ROOT, ROOT_KEY, SE + i)).collect();
    for (i, token) in tokens.iter().enumerate() {
        cache
            .verify(&v, token, "a", "/a", Right::Send, NOW)
            .unwrap();
        assert!(cache.len() <= 3, "after {i}: {}", cache.len());
    }
    assert_eq!(cache.len(), 1);
    cache
        .verify(&v, &tokens[3], "a", "/a", Right::Send, NOW)
        .unwrap();
    assert_eq!(cache.hits(), 1);
}

#[test]
fn zero_capacity_keeps_nothing() {
    let v = verifier();
    let mut cache = TokenCache::with_capacity(0);
    let token = root("a");
    for _ in 0..2 {
        cache
            .verify(&v, &token, "a", "/a", Right::Send, NOW)
            .unwrap();
    }
    assert_eq!((cache.len(), cache.hits()), (0, 0));
}

#[test]
fn overlong_token_is_verified_but_not_kept() {
    let v = verifier();
    let mut cache = TokenCache::new();
    let long_path = format!("a/{}", "x".repeat(TokenCache::MAX_TOKEN_LEN));
    let token = root(&long_path);
    let request = format!("/{long_path}");
    assert_eq!(
        cache.verify(&v, &token, "a", &request, Right::Send, NOW),
        v.verify(&token, "a", &request, Right::Send, NOW)
    );
    assert!(cache
        .verify(&v, &token, "a", &request, Right::Send, NOW)
        .is_ok());
    assert!(cache.is_empty());
}

#[test]
fn changing_the_verifier_clears_the_cache() {
    let v = verifier();
    let mut cache = TokenCache::new();
    let token = root("a");
    cache
        .verify(&v, &token, "a", "/a", Right::Send, NOW)
        .unwrap();

    let same = v.clone();
    cache
        .verify(&same, &token, "a", "/a", Right::Send, NOW)
        .unwrap();
    assert_eq!(cache.hits(), 1);

    let mut changed = v.clone();
    changed.set_clock_skew_secs(0);
    cache
        .verify(&changed, &token, "a", "/a", Right::Send, NOW)
        .unwrap();
    assert_eq!((cache.hits(), cache.misses()), (1, 2));

    let other = verifier();
    cache
        .verify(&other, &token, "a", "/a", Right::Send, NOW)
        .unwrap();
    assert_eq!((cache.hits(), cache.misses()), (1, 3));
}

#[test]
fn entity_and_token_do_not_run_together_in_the_key() {
    let (mut one, mut two) = (String::new(), String::new());
    lookup_key(&mut one, "bc", "a");
    lookup_key(&mut two, "c", "ab");
    assert_ne!(one, two);
}

#[test]
fn debug_shows_counts_not_tokens() {
    let v = verifier();
    let mut cache = TokenCache::new();
    let token = root("a");
    cache
        .verify(&v, &token, "a", "/a", Right::Send, NOW)
        .unwrap();
    let text = format!("{cache:?}");
    assert!(!text.contains("SharedAccessSignature"), "{text}");
    assert!(!text.contains("sig="), "{text}");
    assert!(text.contains("len: 1"), "{text}");
}
