//! The relay core's rules, one test per refusal and pairing rule, with a real verifier and
//! signed tokens, values in and values out.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use super::admission::{check_target, token_of, upgrade_tracking_id};
use super::pairing::{
    held_verdict, holdable, rejection_of, rendezvous_matches, request_transport, subprotocol,
    ControlChannelLimits, Expected, HeldSeen, Transport,
};
use super::pending::PendingRequests;
use super::*;
use crate::auth::sas::{encode_query_token, sign_token};
use crate::auth::verify::{Right, Rights, Rule, Verifier};
use crate::proto::hc::headers::AuthorizationHeader;
use crate::proto::hc::query::Action as HcAction;
use crate::proto::http1::{BodyKind, Headers};
use crate::relay::registry::RegistryError;
use crate::secret::Secret;

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const NOW_UNIX: u64 = 1_800_000_000;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(NOW_UNIX)
}

fn verifier() -> Verifier {
    let mut v = Verifier::new("localhost");
    let key = Secret::new(KEY.to_owned());
    v.add_namespace_rule(Rule::new("root", &key, Rights::of(&[Right::Manage])))
        .expect("root");
    v.add_namespace_rule(Rule::new("sendonly", &key, Rights::of(&[Right::Send])))
        .expect("sendonly");
    v
}

fn token(rule: &str, path: &str) -> String {
    let key = Secret::new(KEY.to_owned());
    sign_token(
        &format!("http://localhost/{path}"),
        rule,
        &key,
        NOW_UNIX + 3600,
    )
    .expose()
    .to_owned()
}

fn admission() -> Admission {
    Admission::new(
        "localhost",
        ["hyco".to_owned(), "Hyco/Deep".to_owned(), "open".to_owned()],
        &["OPEN".to_owned()],
    )
}

fn headers(pairs: &[(&str, &str)]) -> Headers {
    let mut h = Headers::new();
    for (name, value) in pairs {
        h.push(name, value);
    }
    h
}

fn admit(door: Door, path: &str, query: &str, h: &Headers) -> Result<Admitted, Refusal> {
    let v = verifier();
    let knock = Knock {
        door,
        path,
        query,
        headers: h,
        tracking_id: "T_G0",
        now: now(),
    };
    admission().admit(&knock, |c| {
        v.verify(c.token, c.entity, c.request_path, c.needed, NOW_UNIX)
    })
}

/// Headers carrying `rule`'s token for `path` in `ServiceBusAuthorization`.
fn bearing(rule: &str, path: &str) -> Headers {
    headers(&[("ServiceBusAuthorization", &token(rule, path))])
}

/// The refusal `door` gives `path` with headers `h` (no query).
fn refused(door: Door, path: &str, h: &Headers) -> Refusal {
    admit(door, path, "", h).expect_err("refused")
}

/// A refusal's reason, status and code.
fn assert_kind(r: &Refusal, reason: RefusalReason, status: u16, code: &str) {
    assert_eq!(
        (r.reason, r.status, r.code),
        (reason, status, code),
        "{}",
        r.text
    );
}

fn suffix(path: &str) -> String {
    format!(" TrackingId:T_G0, SystemTracker:sb://localhost/{path}, Timestamp:{NOW_UNIX}")
}

fn at(path: &str) -> Tracked<'_> {
    Tracked {
        id: "T_G0",
        namespace: "localhost",
        path,
        now: now(),
    }
}

fn assert_refusal(r: &Refusal, reason: RefusalReason, status: u16, code: &str, text: &str) {
    assert_eq!(
        (r.reason, r.status, r.code, r.text.as_str()),
        (reason, status, code, text)
    );
}

// ---- admission ----

#[test]
fn a_request_target_with_a_dot_segment_or_fragment_is_400() {
    let r = check_target("/hyco/../x").expect_err("dot segment");
    assert_eq!(
        (r.reason, r.status, r.code),
        (RefusalReason::BadRequestTarget, 400, "BadRequest")
    );
    assert!(!r.text.contains("TrackingId"), "{}", r.text);
    let r = check_target("/hyco#f").expect_err("fragment");
    assert_eq!(r.reason, RefusalReason::BadRequestTarget);
    check_target("/hyco/x?a=b").expect("plain target");
}

#[test]
fn an_unknown_hybrid_connection_is_404_tracked_with_the_path_asked_for() {
    let h = bearing("root", "hyco");
    for (door, path, tracked) in [
        (Door::Http, "/other/x", "other/x"),
        (Door::Connect, "/$hc/other", "other"),
    ] {
        let text = format!("Endpoint does not exist.{}", suffix(tracked));
        let r = refused(door, path, &h);
        assert_refusal(
            &r,
            RefusalReason::EndpointNotFound,
            404,
            "EndpointNotFound",
            &text,
        );
    }
    // A WebSocket door needs the `/$hc/` prefix; an HTTP path with it names no entity.
    assert!(admission().resolve(Door::Listen, "/hyco").is_none());
    assert!(admission().resolve(Door::Http, "/$hc/hyco").is_none());
}

#[test]
fn the_longest_configured_path_wins_case_insensitively_with_its_configured_spelling() {
    let a = admission();
    assert_eq!(a.resolve(Door::Http, "/HYCO/deep/x"), Some("Hyco/Deep"));
    assert_eq!(a.resolve(Door::Http, "/hyco/deeper"), Some("hyco"));
    assert_eq!(a.resolve(Door::Connect, "/$hc/hyco"), Some("hyco"));
    assert_eq!(a.resolve(Door::Http, "/hycox"), None);
}

#[test]
fn a_missing_token_is_401_token_missing_or_invalid() {
    let r = refused(Door::Connect, "/$hc/hyco", &Headers::new());
    assert_kind(
        &r,
        RefusalReason::TokenInvalid,
        401,
        "TokenMissingOrInvalid",
    );
    assert_eq!(r.detail, Some("missing_token"));
    assert!(r.text.ends_with(&suffix("hyco")), "{}", r.text);
}

#[test]
fn a_token_for_another_audience_is_401() {
    let r = refused(Door::Http, "/hyco", &bearing("root", "other"));
    assert_kind(
        &r,
        RefusalReason::TokenInvalid,
        401,
        "TokenMissingOrInvalid",
    );
    assert_eq!(r.detail, Some("wrong_audience_path"));
}

#[test]
fn an_expired_a_wrongly_signed_or_an_unknown_rules_token_is_401_with_its_detail() {
    let signed = |rule: &str, key: &str, expiry: u64| {
        let token = sign_token(
            "http://localhost/hyco",
            rule,
            &Secret::new(key.to_owned()),
            expiry,
        );
        headers(&[("ServiceBusAuthorization", token.expose())])
    };
    let other_key = "b3RoZXIga2V5IG9mIHRoaXJ0eS10d28gYnl0ZXMhIQ==";
    for (h, detail) in [
        (signed("root", KEY, NOW_UNIX - 1), "expired"),
        (
            signed("root", other_key, NOW_UNIX + 3600),
            "invalid_signature",
        ),
        (signed("nobody", KEY, NOW_UNIX + 3600), "unknown_key_name"),
    ] {
        let r = refused(Door::Listen, "/$hc/hyco", &h);
        assert_kind(
            &r,
            RefusalReason::TokenInvalid,
            401,
            "TokenMissingOrInvalid",
        );
        assert_eq!(r.detail, Some(detail), "{}", r.text);
        assert!(r.text.ends_with(&suffix("hyco")), "{}", r.text);
    }
}

#[test]
fn a_rule_without_the_right_is_403_forbidden() {
    let h = bearing("sendonly", "hyco");
    let r = refused(Door::Listen, "/$hc/hyco", &h);
    assert_kind(&r, RefusalReason::Forbidden, 403, "Forbidden");
    assert_eq!(r.detail, Some("missing_right"));
    assert!(r.text.ends_with(&suffix("hyco")), "{}", r.text);
    admit(Door::Connect, "/$hc/hyco", "", &h).expect("send is granted");
}

#[test]
fn listening_below_a_hybrid_connection_is_404_after_the_token_check() {
    let h = bearing("root", "hyco");
    let r = refused(Door::Listen, "/$hc/hyco/below", &h);
    let text = format!("Endpoint does not exist.{}", suffix("hyco"));
    assert_refusal(
        &r,
        RefusalReason::ListenBelowEntity,
        404,
        "EndpointNotFound",
        &text,
    );
    // A sender may connect below it.
    admit(Door::Connect, "/$hc/hyco/below", "", &h).expect("connect below");
    // Without a valid token the token refusal comes first.
    let r = admit(Door::Listen, "/$hc/hyco/below", "", &Headers::new()).expect_err("no token");
    assert_eq!(r.reason, RefusalReason::TokenInvalid);
}

#[test]
fn the_token_comes_from_the_header_then_the_query_then_authorization_for_http_only() {
    let t = token("root", "hyco");
    let query = format!(
        "sb-hc-token={}",
        encode_query_token(&Secret::new(t.clone())).expose()
    );
    let only_auth = headers(&[("Authorization", &t)]);
    let both = headers(&[("ServiceBusAuthorization", &t), ("Authorization", "app")]);
    assert_eq!(
        token_of(&both, "", true),
        (t.clone(), AuthorizationHeader::Forward)
    );
    assert_eq!(
        token_of(&Headers::new(), &query, true),
        (t.clone(), AuthorizationHeader::Forward)
    );
    assert_eq!(
        token_of(&only_auth, "", true),
        (t.clone(), AuthorizationHeader::Strip)
    );
    assert_eq!(token_of(&only_auth, "", false).0, "");
    let admitted = admit(Door::Http, "/hyco", "", &only_auth).expect("authorization");
    assert_eq!(admitted.authorization, AuthorizationHeader::Strip);
    let r = admit(Door::Connect, "/$hc/hyco", "", &only_auth).expect_err("not for connect");
    assert_eq!(r.reason, RefusalReason::TokenInvalid);
    let admitted = admit(Door::Connect, "/$hc/hyco", &query, &Headers::new()).expect("query");
    assert_eq!(admitted.entity, "hyco");
    assert_eq!(admitted.token.map(|t| t.expires_at), Some(NOW_UNIX + 3600));
}

#[test]
fn senders_on_an_anonymous_hybrid_connection_need_no_token_but_listeners_do() {
    let forged = headers(&[("Authorization", "app-credential")]);
    let admitted = admit(Door::Http, "/open/x", "", &forged).expect("anonymous HTTP sender");
    assert_eq!(admitted.entity, "open");
    assert!(admitted.token.is_none());
    assert_eq!(
        admitted.authorization,
        AuthorizationHeader::Forward,
        "the sender's Authorization belongs to the listener"
    );
    admit(Door::Connect, "/$hc/open", "", &Headers::new()).expect("anonymous stream sender");
    let r = admit(Door::Listen, "/$hc/open", "", &Headers::new()).expect_err("listener");
    assert_eq!((r.reason, r.status), (RefusalReason::TokenInvalid, 401));
    let r = admit(Door::Connect, "/$hc/hyco", "", &Headers::new()).expect_err("other entity");
    assert_eq!(r.reason, RefusalReason::TokenInvalid);
}

#[test]
fn an_upgrade_is_tracked_by_its_own_id_with_the_worker_suffix() {
    assert_eq!(
        upgrade_tracking_id("sb-hc-id=abc&x=1", 3),
        Some("abc_G3".to_owned())
    );
    assert_eq!(upgrade_tracking_id("x=1", 3), None);
}

// ---- refusals after admission ----

#[test]
fn no_listener_is_404_for_a_stream_and_502_for_a_request() {
    let r = Refusal::no_listener_for_stream(&RegistryError::NoListener, &at("hyco"));
    let text = format!(
        "There are no listeners connected for the endpoint.{}",
        suffix("hyco")
    );
    assert_refusal(&r, RefusalReason::NoListener, 404, "NoListener", &text);
    let r = Refusal::no_listener_for_request(&RegistryError::NoListener, &at("hyco"));
    assert_refusal(&r, RefusalReason::NoListener, 502, "NoListener", &text);
}

#[test]
fn a_hybrid_connection_gone_from_the_registry_is_404_endpoint_not_found() {
    let e = RegistryError::UnknownHybridConnection;
    let text = format!("Endpoint does not exist.{}", suffix("hyco"));
    for r in [
        Refusal::no_listener_for_stream(&e, &at("hyco")),
        Refusal::no_listener_for_request(&e, &at("hyco")),
        Refusal::listener_not_registered(&e, &at("hyco")),
    ] {
        assert_refusal(
            &r,
            RefusalReason::EndpointNotFound,
            404,
            "EndpointNotFound",
            &text,
        );
    }
}

#[test]
fn the_26th_listener_is_403_quota_exceeded() {
    let r =
        Refusal::listener_not_registered(&RegistryError::QuotaExceeded { max: 25 }, &at("hyco"));
    let text = format!(
        "Quota exceeded: MaximumListenersPerEndpoint is 25 for this hybrid connection.{}",
        suffix("hyco")
    );
    assert_refusal(
        &r,
        RefusalReason::QuotaExceeded,
        403,
        "QuotaExceeded",
        &text,
    );
}

#[test]
fn work_that_cannot_be_queued_on_the_listener_channel() {
    let text = format!(
        "There are no listeners connected for the endpoint.{}",
        suffix("hyco")
    );
    assert_refusal(
        &Refusal::stream_not_queued(&at("hyco")),
        RefusalReason::ListenerWentAway,
        404,
        "NoListener",
        &text,
    );
    assert_refusal(
        &Refusal::request_not_queued(true),
        RefusalReason::ListenerNotReading,
        502,
        "ListenerFailed",
        "The listener does not read its control channel.",
    );
    assert_refusal(
        &Refusal::request_not_queued(false),
        RefusalReason::ListenerWentAway,
        502,
        "NoListener",
        "The listener went away.",
    );
}

#[test]
fn no_rendezvous_id_is_500_described_for_streams_only() {
    let e = "the operating system's random generator failed";
    let r = Refusal::no_rendezvous_id(&e, Some(&at("hyco")));
    assert_refusal(
        &r,
        RefusalReason::NoRendezvousId,
        500,
        "InternalError",
        &format!("{e}{}", suffix("hyco")),
    );
    let r = Refusal::no_rendezvous_id(&e, None);
    assert_refusal(&r, RefusalReason::NoRendezvousId, 500, "InternalError", e);
}

#[test]
fn timeouts_are_504_with_the_services_texts() {
    let r = Refusal::accept_timeout(&at("hyco"));
    let text = format!(
        "None of the connected listeners accepted the connection within the allowed timeout.{}",
        suffix("hyco")
    );
    assert_refusal(
        &r,
        RefusalReason::AcceptTimeout,
        504,
        "GatewayTimeout",
        &text,
    );
    let r = Refusal::response_timeout(&at("hyco"));
    let text = format!(
        "The request was routed to the listener but the listener did not respond in the required time.{}",
        suffix("hyco")
    );
    assert_refusal(
        &r,
        RefusalReason::ResponseTimeout,
        504,
        "GatewayTimeout",
        &text,
    );
}

#[test]
fn a_listener_gone_before_answering_is_502_listener_gone() {
    let text = format!(
        "The listener disconnected before it responded.{}",
        suffix("hyco")
    );
    assert_refusal(
        &Refusal::listener_gone(&at("hyco")),
        RefusalReason::ListenerGone,
        502,
        "ListenerGone",
        &text,
    );
}

#[test]
fn a_rejection_passes_an_error_status_verbatim_and_anything_else_is_502() {
    for status in [400, 404, 503, 599] {
        let r = Refusal::rejected(status, "go away", &at("hyco"));
        assert_refusal(&r, RefusalReason::Rejected, status, "Rejected", "go away");
    }
    for status in [100, 101, 200, 302, 399, 600, 999] {
        let r = Refusal::rejected(status, "go away", &at("hyco"));
        let text = format!(
            "The listener rejected the connection with an invalid status.{}",
            suffix("hyco")
        );
        assert_refusal(
            &r,
            RefusalReason::InvalidRejection,
            502,
            "ListenerFailed",
            &text,
        );
    }
    assert_refusal(
        &Refusal::rejection_delivered(),
        RefusalReason::RejectionDelivered,
        410,
        "Gone",
        "The rejection was delivered to the sender.",
    );
}

#[test]
fn an_unknown_or_used_rendezvous_is_403() {
    assert_refusal(
        &Refusal::rendezvous_expired(),
        RefusalReason::RendezvousExpired,
        403,
        "RendezvousExpired",
        "The rendezvous address is invalid, expired or already used.",
    );
}

#[test]
fn body_failures_are_400_408_and_502() {
    assert_refusal(
        &Refusal::bad_body(&"invalid chunk size"),
        RefusalReason::BadBody,
        400,
        "BadRequest",
        "invalid chunk size",
    );
    assert_refusal(
        &Refusal::body_timeout(),
        RefusalReason::BodyTimeout,
        408,
        "RequestTimeout",
        "The request body paused longer than the body idle timeout.",
    );
    assert_refusal(
        &Refusal::listener_closed_during_body(),
        RefusalReason::ListenerClosedDuringBody,
        502,
        "ListenerFailed",
        "The listener closed the rendezvous during the request body.",
    );
}

#[test]
fn bad_answers_from_the_listener_are_502_listener_failed() {
    assert_refusal(
        &Refusal::no_response(),
        RefusalReason::NoResponse,
        502,
        "ListenerFailed",
        "The listener closed the rendezvous without a response.",
    );
    let text = "The listener's response body exceeds the control channel's 64 KB limit.";
    assert_refusal(
        &Refusal::response_too_large(text, &at("hyco")),
        RefusalReason::ResponseTooLarge,
        502,
        "ListenerFailed",
        &format!("{text}{}", suffix("hyco")),
    );
    assert_refusal(
        &Refusal::response_over_message_limit(),
        RefusalReason::ResponseTooLarge,
        502,
        "ListenerFailed",
        "The listener's response exceeds the 64 KB message limit.",
    );
    assert_refusal(
        &Refusal::bad_response_headers(),
        RefusalReason::BadResponseHeaders,
        502,
        "ListenerFailed",
        "The listener's response headers are invalid.",
    );
}

#[test]
fn a_foreign_host_is_404_endpoint_not_found_with_the_checks_description() {
    let r = Refusal::unknown_host("No such host here: \"other.example\".".to_owned());
    assert_refusal(
        &r,
        RefusalReason::UnknownHost,
        404,
        "EndpointNotFound",
        "No such host here: \"other.example\".",
    );
}

#[test]
fn the_action_refusal_is_400() {
    let r = Refusal::bad_action(&"missing sb-hc-action");
    assert_refusal(
        &r,
        RefusalReason::BadAction,
        400,
        "BadRequest",
        "missing sb-hc-action",
    );
}

#[test]
fn every_reason_has_its_own_label_and_renders_with_its_status() {
    let labels: HashSet<&str> = RefusalReason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(labels.len(), RefusalReason::ALL.len());
    let r = Refusal::no_listener_for_request(&RegistryError::NoListener, &at("hyco"));
    let http = String::from_utf8(r.http()).expect("utf8");
    assert!(http.starts_with("HTTP/1.1 502 Bad Gateway\r\n"), "{http}");
    assert!(http.contains("\"code\":\"NoListener\""), "{http}");
    let ws = String::from_utf8(r.handshake()).expect("utf8");
    assert!(
        ws.starts_with("HTTP/1.1 502 There are no listeners"),
        "{ws}"
    );
}

// ---- pairing ----

const LIMITS: ControlChannelLimits = ControlChannelLimits {
    body: 64 * 1024,
    json: 32 * 1024,
};

#[test]
fn small_requests_travel_on_the_control_channel_and_the_rest_through_a_rendezvous() {
    let t = |kind, json| request_transport(kind, json, LIMITS);
    assert_eq!(
        t(BodyKind::Empty, 100),
        Transport::ControlChannel { body_len: 0 }
    );
    assert_eq!(
        t(BodyKind::ContentLength(65_536), 100),
        Transport::ControlChannel { body_len: 65_536 }
    );
    assert_eq!(
        t(BodyKind::ContentLength(65_537), 100),
        Transport::Rendezvous
    );
    assert_eq!(t(BodyKind::Chunked, 100), Transport::Rendezvous);
    assert_eq!(
        t(BodyKind::Empty, 32 * 1024),
        Transport::ControlChannel { body_len: 0 }
    );
    assert_eq!(t(BodyKind::Empty, 32 * 1024 + 1), Transport::Rendezvous);
}

#[test]
fn a_held_rendezvous_serves_the_same_hybrid_connection_while_its_listener_is_quiet() {
    assert!(held_verdict("Hyco", "hyco", HeldSeen::Nothing));
    assert!(held_verdict("hyco", "hyco", HeldSeen::Ping));
    assert!(held_verdict("hyco", "hyco", HeldSeen::EmptyBinary));
    assert!(!held_verdict("hyco", "hyco", HeldSeen::Other));
    assert!(!held_verdict("hyco", "other", HeldSeen::Nothing));
}

#[test]
fn only_a_relay_opened_rendezvous_with_a_complete_answer_on_keep_alive_is_held() {
    assert!(holdable(true, true, true));
    assert!(
        !holdable(false, true, true),
        "listener-opened rendezvous close after the answer"
    );
    assert!(!holdable(true, false, true));
    assert!(!holdable(true, true, false));
}

#[test]
fn a_rendezvous_matches_its_action_and_decoded_path() {
    let expected = Expected {
        path: "/$hc/hy~co".to_owned(),
        action: HcAction::Accept,
    };
    assert!(rendezvous_matches(
        &expected,
        "/$hc/hy%7Eco",
        HcAction::Accept
    ));
    assert!(!rendezvous_matches(
        &expected,
        "/$hc/hy~co",
        HcAction::Request
    ));
    assert!(!rendezvous_matches(
        &expected,
        "/$hc/other",
        HcAction::Accept
    ));
}

#[test]
fn a_rejection_status_outside_100_to_999_counts_as_400() {
    assert_eq!(rejection_of("sb-hc-id=x"), None);
    assert_eq!(
        rejection_of("sb-hc-statusCode=503&sb-hc-statusDescription=busy%20now"),
        Some((503, "busy now".to_owned()))
    );
    assert_eq!(
        rejection_of("sb-hc-statusCode=abc"),
        Some((400, String::new()))
    );
    assert_eq!(
        rejection_of("sb-hc-statusCode=1000"),
        Some((400, String::new()))
    );
}

#[test]
fn the_stream_subprotocol_is_the_listeners_first_if_the_sender_offered_it() {
    let offered = ["a".to_owned(), "b".to_owned()];
    assert_eq!(
        subprotocol(&["b".to_owned(), "a".to_owned()], &offered),
        Some("b")
    );
    assert_eq!(
        subprotocol(&["c".to_owned(), "a".to_owned()], &offered),
        None
    );
    assert_eq!(subprotocol(&[], &offered), None);
}

// ---- pending requests ----

#[test]
fn only_the_listener_a_request_was_routed_to_may_answer_it_once() {
    let mut p = PendingRequests::default();
    p.insert("r1".into(), 7, "reply-1");
    assert_eq!(p.take_answered("r1", 8), None, "another listener");
    assert_eq!(p.take_answered("r1", 7), Some("reply-1"));
    assert_eq!(p.take_answered("r1", 7), None, "answered once");
    assert!(p.is_empty());
}

#[test]
fn a_departing_listener_takes_its_requests_and_leaves_the_others() {
    let mut p = PendingRequests::default();
    p.insert("a".into(), 1, "a");
    p.insert("b".into(), 2, "b");
    p.insert("c".into(), 1, "c");
    let mut gone = p.take_listener(1);
    gone.sort_unstable();
    assert_eq!(gone, ["a", "c"]);
    assert_eq!(p.len(), 1);
    p.forget("b");
    p.forget("b");
    assert!(p.is_empty());
}
