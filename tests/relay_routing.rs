//! The relay's routing boundaries under attack, over real sockets (docs/security.md): secret
//! rendezvous and request ids, request-targets with dot segments, listeners bound to their
//! hybrid connection's exact path, responses only from the listener a request went to, every
//! spelling of `sb-hc-*` stripped, rendezvous matched by id, path and action, and further
//! requests over an open request rendezvous.

use std::net::SocketAddr;
use std::time::Duration;

use hycod::io::read_buf::ReadBuf;
use hycod::io::stream::Stream;
use hycod::io::ws_client::ConnectError;
use hycod::io::ws_reader::{WsEvent, WsReader};
use hycod::proto::hc::control_message::{parse_control_message, ControlMessage};
use hycod::proto::hc::messages::{Accept, Request};
use hycod::proto::hc::query::get_query_param;
use hycod::proto::http1::{
    parse_response_head, response_body_kind, BodyDecoder, Limits as HeadLimits,
};
use hycod::proto::ws::encode::push_frame;
use hycod::proto::ws::{Limits, OpCode, Role};
use monoio::io::{AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;

mod common;

use common::{dialer, mask, read_message, run, token_for, KEY};

type Reader = WsReader<OwnedReadHalf<Stream>>;
type Writer = OwnedWriteHalf<Stream>;

/// A relay serving `hyco` and `other` with the namespace rule `root`, plus `extra` flags.
fn relay(extra: &[&str]) -> hycod::relay::RelayHandle {
    let root = format!("root={KEY}");
    let mut flags = vec![
        "--workers",
        "2",
        "--rule",
        &root,
        "--hybrid-connection",
        "hyco",
        "--hybrid-connection",
        "other",
    ];
    flags.extend_from_slice(extra);
    common::relay(&flags)
}

fn token(path: &str) -> String {
    token_for("root", KEY, path)
}

/// Opens a WebSocket to `url` (no extra headers but the token, when given).
async fn open(url: &str, token: Option<&str>) -> Result<(Reader, Writer), ConnectError> {
    let headers: Vec<(&str, &str)> = token
        .map(|t| vec![("ServiceBusAuthorization", t)])
        .unwrap_or_default();
    let conn = dialer().connect(url, &headers, None).await?;
    let (read, write) = conn.stream.into_split();
    Ok((
        WsReader::new(
            read,
            Role::Client,
            Limits::default(),
            &conn.leftover,
            64 * 1024,
        ),
        write,
    ))
}

/// Registers a listener on `path`.
async fn listen_on(url: &str, path: &str) -> (Reader, Writer) {
    open(
        &format!("{url}/$hc/{path}?sb-hc-action=listen"),
        Some(&token(path)),
    )
    .await
    .expect("listener registered")
}

/// The refusal a WebSocket connect gets: status and description.
async fn refusal(url: &str, token: Option<&str>) -> (u16, String) {
    match open(url, token).await {
        Err(ConnectError::Rejected {
            status,
            description,
        }) => (status, description),
        Err(e) => panic!("{url}: expected a refusal, got {e}"),
        Ok(_) => panic!("{url}: expected a refusal, the connection was accepted"),
    }
}

async fn next_control(control: &mut Reader) -> ControlMessage {
    let (_, text) = read_message(control).await;
    parse_control_message(&text).expect("control message")
}

async fn next_request(control: &mut Reader) -> Request {
    match next_control(control).await {
        ControlMessage::Request(r) => r,
        other => panic!("expected request, got {}", other.command()),
    }
}

async fn next_accept(control: &mut Reader) -> Accept {
    match next_control(control).await {
        ControlMessage::Accept(a) => a,
        other => panic!("expected accept, got {}", other.command()),
    }
}

/// Sends a `response` without body for `request_id` with `status`.
async fn respond(write: &mut Writer, request_id: &str, status: u16) {
    let json = format!(
        "{{\"response\":{{\"requestId\":\"{request_id}\",\"statusCode\":{status},\"body\":false}}}}"
    );
    let mut frame = Vec::new();
    push_frame(&mut frame, true, OpCode::Text, json.as_bytes(), mask()).expect("frame");
    write.write_all(frame).await.0.expect("respond");
}

/// Pings and waits for the pong: every frame written before has been processed by the relay.
async fn round_trip(reader: &mut Reader, write: &mut Writer) {
    let mut ping = Vec::new();
    push_frame(&mut ping, true, OpCode::Ping, b"sync", mask()).expect("ping");
    write.write_all(ping).await.0.expect("ping");
    loop {
        match reader.next_event().await.expect("pong") {
            WsEvent::Pong(_) => return,
            WsEvent::Ping(_) => {}
            other => panic!("expected a pong, got {other:?}"),
        }
    }
}

/// The next message on a rendezvous the listener holds, answering the relay's pings on the way
/// as a WebSocket client does (the relay pings a held rendezvous before it sends a request).
async fn read_answering_pings(reader: &mut Reader, write: &mut Writer) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        match reader.next_event().await.expect("event") {
            WsEvent::Data {
                payload,
                message_end,
                ..
            } => {
                out.extend_from_slice(reader.bytes(payload));
                if message_end {
                    return out;
                }
            }
            WsEvent::Ping(payload) => {
                let mut pong = Vec::new();
                push_frame(&mut pong, true, OpCode::Pong, reader.bytes(payload), mask())
                    .expect("pong");
                write.write_all(pong).await.0.expect("pong");
            }
            WsEvent::Pong(_) => {}
            WsEvent::Close { code, .. } => panic!("unexpected close {code:?}"),
        }
    }
}

/// One keep-alive HTTP/1.1 client connection.
struct HttpConn {
    tcp: TcpStream,
    buf: ReadBuf,
}

impl HttpConn {
    async fn connect(addr: SocketAddr) -> Self {
        Self {
            tcp: TcpStream::connect(addr).await.expect("connect"),
            buf: ReadBuf::new(1 << 20, 0),
        }
    }

    /// Sends `request` raw and reads the answer: status, head (debug form) and body.
    async fn send(&mut self, request: impl AsRef<[u8]>) -> (u16, String, Vec<u8>) {
        self.tcp
            .write_all(request.as_ref().to_vec())
            .await
            .0
            .expect("send");
        let head = loop {
            if let Some((head, used)) =
                parse_response_head(self.buf.data(), &HeadLimits::default()).expect("head")
            {
                self.buf.consume(used);
                break head;
            }
            assert!(
                self.buf.fill(&mut self.tcp).await.expect("read") > 0,
                "closed before the head"
            );
        };
        let mut decoder = BodyDecoder::new(response_body_kind("GET", &head).expect("framing"));
        let mut body = Vec::new();
        while !decoder.is_done() {
            if !self.buf.is_empty() {
                let d = decoder.decode(self.buf.data()).expect("body");
                if let Some(p) = d.payload {
                    body.extend_from_slice(p);
                }
                let used = d.consumed;
                self.buf.consume(used);
                if used > 0 {
                    continue;
                }
            }
            if self.buf.fill(&mut self.tcp).await.expect("read") == 0 {
                decoder.finish().expect("complete body");
            }
        }
        (head.status, format!("{head:?}"), body)
    }
}

async fn http(addr: SocketAddr, request: impl AsRef<[u8]>) -> (u16, String, Vec<u8>) {
    HttpConn::connect(addr).await.send(request).await
}

fn get(path: &str, token: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nServiceBusAuthorization: {token}\r\n\r\n")
        .into_bytes()
}

/// The `TrackingId` in a relay error body.
fn tracking_id_of(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let start = text.find("TrackingId:").expect("tracking id") + "TrackingId:".len();
    text[start..].split(',').next().expect("id").to_owned()
}

/// The hex digits of a GUID-shaped id, without dashes and the `_G…` suffix.
fn hex_digits(id: &str) -> String {
    id.split('_')
        .next()
        .expect("id")
        .chars()
        .filter(|c| *c != '-')
        .collect()
}

/// The `sb-hc-id` of a rendezvous address.
fn address_id(address: &str) -> String {
    let query = address.split_once('?').expect("query").1;
    get_query_param(query, "sb-hc-id")
        .expect("sb-hc-id")
        .into_owned()
}

#[test]
fn an_attacker_who_knows_the_senders_id_cannot_take_its_rendezvous() {
    let relay = relay(&[]);
    run(async move {
        let (mut control, _keep) = listen_on(&relay.url, "hyco").await;
        let connect = format!(
            "{}/$hc/hyco?sb-hc-action=connect&sb-hc-id=victim",
            relay.url
        );
        let t = token("hyco");
        let sender = monoio::spawn(async move {
            dialer()
                .connect(&connect, &[("ServiceBusAuthorization", &t)], None)
                .await
        });
        let accept = next_accept(&mut control).await;
        assert!(accept.id.starts_with("victim_G"), "{}", accept.id);
        let secret = address_id(&accept.address);
        assert!(!secret.contains("victim"), "{}", accept.address);
        assert_eq!(hex_digits(&secret).len(), 32, "{secret}");
        // The attacker knows the sender's id, the tracking id and the rendezvous port.
        let base = accept.address.split("/$hc/").next().expect("base");
        for guess in ["victim", "victim_G0", "victim_G1", accept.id.as_str()] {
            let url = format!("{base}/$hc/hyco?sb-hc-action=accept&sb-hc-id={guess}");
            let (status, description) = refusal(&url, None).await;
            assert_eq!(status, 403, "{guess}: {description}");
        }
        let _rendezvous = open(&accept.address, None)
            .await
            .expect("the listener's rendezvous");
        sender.await.expect("the sender is joined to its listener");
    });
}

#[test]
fn request_ids_are_random_and_share_nothing_with_tracking_ids() {
    let relay = relay(&[]);
    run(async move {
        let probe = || {
            http(
                relay.local_addr,
                b"GET /hyco/x HTTP/1.1\r\nHost: localhost\r\n\r\n",
            )
        };
        let (status, _, body) = probe().await;
        assert_eq!(status, 401);
        let before = tracking_id_of(&body);
        let (mut control, mut write) = listen_on(&relay.url, "hyco").await;
        let t = token("hyco");
        let mut ids = Vec::new();
        for _ in 0..24 {
            let sender = monoio::spawn(http(relay.local_addr, get("/hyco/x", &t)));
            let request = next_request(&mut control).await;
            let id = request.id.expect("id");
            assert_eq!(address_id(request.address.as_deref().expect("address")), id);
            respond(&mut write, &id, 200).await;
            assert_eq!(sender.await.0, 200);
            ids.push(hex_digits(&id));
        }
        let (_, _, body) = probe().await;
        let after = tracking_id_of(&body);
        for id in &ids {
            assert_eq!(id.len(), 32, "{id}");
        }
        // No hex position is fixed or counted: each varies across the ids.
        for pos in 0..32 {
            let first = ids[0].as_bytes()[pos];
            assert!(
                ids.iter().any(|id| id.as_bytes()[pos] != first),
                "position {pos} of the request ids never changes: {ids:?}"
            );
        }
        // Nothing of an id shows in the tracking ids handed out around it.
        for tracking in [hex_digits(&before), hex_digits(&after)] {
            for id in &ids {
                for window in id.as_bytes().windows(8) {
                    let window = std::str::from_utf8(window).expect("hex");
                    assert!(
                        !tracking.contains(window),
                        "request id {id} shares {window} with tracking id {tracking}"
                    );
                }
            }
        }
    });
}

#[test]
fn dot_segments_fragments_and_raw_non_ascii_targets_get_400() {
    let relay = relay(&[]);
    run(async move {
        let hyco = token("hyco");
        let sub = token("hyco/x");
        let cases: [(&[u8], &str, &str); 7] = [
            (b"/hyco/../other/secret", &hyco, "'.' or '..' segment"),
            (b"/hyco/%2e%2e/%2e%2e/admin", &hyco, "'.' or '..' segment"),
            (b"/hyco/%2E%2e/other", &hyco, "'.' or '..' segment"),
            (b"/hyco/x/../y", &sub, "'.' or '..' segment"),
            (b"/hyco/..%2fother/x", &hyco, "'.' or '..' segment"),
            (b"/hyco/x#fragment", &hyco, "fragment"),
            (b"/hyco/gr\xc3\xbc\xc3\x9fe", &hyco, "not printable ASCII"),
        ];
        for (target, t, why) in cases {
            let mut request = b"GET ".to_vec();
            request.extend_from_slice(target);
            request.extend_from_slice(
                format!(" HTTP/1.1\r\nHost: localhost\r\nServiceBusAuthorization: {t}\r\n\r\n")
                    .as_bytes(),
            );
            let (status, _, body) = http(relay.local_addr, request).await;
            let shown = String::from_utf8_lossy(target);
            assert_eq!(status, 400, "{shown}");
            let body = String::from_utf8_lossy(&body);
            assert!(body.contains(why), "{shown}: {body}");
        }
        // The same on WebSocket paths, before the token is looked at.
        for path in ["hyco/../other", "hyco/%2e%2e/other", "hyco/x/.."] {
            let url = format!("{}/$hc/{path}?sb-hc-action=listen", relay.url);
            let (status, description) = refusal(&url, Some(&hyco)).await;
            assert_eq!(status, 400, "{path}: {description}");
            assert!(description.contains("segment"), "{path}: {description}");
        }
    });
}

#[test]
fn a_listen_token_for_a_sub_path_cannot_listen_below_the_hybrid_connection() {
    let relay = relay(&[]);
    run(async move {
        let sub = token("hyco/x");
        for path in ["hyco/x", "hyco/x/y"] {
            let url = format!("{}/$hc/{path}?sb-hc-action=listen", relay.url);
            let (status, description) = refusal(&url, Some(&sub)).await;
            assert_eq!(status, 404, "{path}: {description}");
            assert!(
                description.starts_with("Endpoint does not exist."),
                "{description}"
            );
        }
        // The whole hybrid connection's token does not make a sub-path a listener either.
        let url = format!("{}/$hc/hyco/x?sb-hc-action=listen", relay.url);
        assert_eq!(refusal(&url, Some(&token("hyco"))).await.0, 404);
        let url = format!("{}/$hc/hyco?sb-hc-action=listen", relay.url);
        assert_eq!(refusal(&url, Some(&sub)).await.0, 401);
    });
}

#[test]
fn a_listener_cannot_answer_a_request_routed_to_another_listener() {
    let relay = relay(&[]);
    run(async move {
        let (mut victim, mut victim_write) = listen_on(&relay.url, "hyco").await;
        let (mut thief, mut thief_write) = listen_on(&relay.url, "other").await;
        let sender = monoio::spawn(http(relay.local_addr, get("/hyco/x", &token("hyco"))));
        let request = next_request(&mut victim).await;
        let id = request.id.expect("id");
        // The thief learnt the id somehow and answers first; the relay has read its answer
        // once the thief's ping comes back.
        respond(&mut thief_write, &id, 299).await;
        round_trip(&mut thief, &mut thief_write).await;
        respond(&mut victim_write, &id, 200).await;
        let (status, _, _) = sender.await;
        assert_eq!(status, 200, "the sender got the other listener's answer");
    });
}

#[test]
fn every_spelling_of_the_token_parameter_is_stripped_before_forwarding() {
    let relay = relay(&[]);
    run(async move {
        let (mut control, mut write) = listen_on(&relay.url, "hyco").await;
        let encoded = hycod::auth::sas::encode_uri_component(&token("hyco"));
        for name in ["sb%2dhc%2dtoken", "SB-HC-TOKEN", "sb-hc%2Dtoken"] {
            let request =
                format!("GET /hyco/x?a=1&{name}={encoded}&b=2 HTTP/1.1\r\nHost: localhost\r\n\r\n");
            let sender = monoio::spawn(http(relay.local_addr, request));
            let forwarded = next_request(&mut control).await;
            assert_eq!(
                forwarded.request_target.as_deref(),
                Some("/hyco/x?a=1&b=2"),
                "{name}"
            );
            respond(&mut write, &forwarded.id.expect("id"), 204).await;
            assert_eq!(sender.await.0, 204, "{name}");
        }
        // A sender's WebSocket connect: the accept address carries no spelling of the token.
        let connect = format!(
            "{}/$hc/hyco?app=1&sb%2Dhc%2Dtoken={encoded}&sb-hc-action=connect",
            relay.url
        );
        let _sender = monoio::spawn(async move { dialer().connect(&connect, &[], None).await });
        let accept = next_accept(&mut control).await;
        let query = accept.address.split_once('?').expect("query").1;
        assert!(
            query.starts_with("app=1&sb-hc-action=accept&sb-hc-id="),
            "{}",
            accept.address
        );
    });
}

#[test]
fn a_rendezvous_matches_only_its_id_path_and_action() {
    let relay = relay(&[]);
    run(async move {
        let (mut control, _keep) = listen_on(&relay.url, "hyco").await;
        let connect = format!("{}/$hc/hyco/sap?sb-hc-action=connect", relay.url);
        let t = token("hyco");
        let sender = monoio::spawn(async move {
            dialer()
                .connect(&connect, &[("ServiceBusAuthorization", &t)], None)
                .await
        });
        let accept = next_accept(&mut control).await;
        let (base, query) = accept.address.split_once('?').expect("query");
        let base = base.split("/$hc/").next().expect("base");
        let id = hycod::auth::sas::encode_uri_component(&address_id(&accept.address));
        for wrong in [
            format!("{base}/$hc/hyco/sap?sb-hc-action=request&sb-hc-id={id}"),
            format!("{base}/$hc/hyco?sb-hc-action=accept&sb-hc-id={id}"),
            format!("{base}/$hc/other/sap?sb-hc-action=accept&sb-hc-id={id}"),
            format!("{base}/$hc/hyco/sap/x?sb-hc-action=accept&sb-hc-id={id}"),
        ] {
            let (status, description) = refusal(&wrong, None).await;
            assert_eq!(status, 403, "{wrong}: {description}");
        }
        // The address as handed out, with its path re-encoded by a client, still matches.
        let reencoded = format!("{base}/$hc/hyco/%73ap?{query}");
        let _rendezvous = open(&reencoded, None)
            .await
            .expect("the listener's rendezvous");
        sender.await.expect("the sender is joined to its listener");
    });
}

#[test]
fn further_requests_of_a_sender_go_over_its_open_request_rendezvous() {
    let relay = relay(&[]);
    let addr = relay.local_addr;
    run(async move {
        let (mut control, mut control_write) = listen_on(&relay.url, "hyco").await;
        let t = token("hyco");
        let sender = monoio::spawn(async move {
            let mut conn = HttpConn::connect(addr).await;
            let auth = format!("Host: localhost\r\nServiceBusAuthorization: {t}\r\n");
            let mut large = format!("POST /hyco/a HTTP/1.1\r\n{auth}Content-Length: 70000\r\n\r\n")
                .into_bytes();
            large.resize(large.len() + 70_000, b'x');
            let mut answers = vec![conn.send(large).await];
            answers.push(
                conn.send(format!("GET /hyco/b HTTP/1.1\r\n{auth}\r\n"))
                    .await,
            );
            let small = format!("POST /hyco/c HTTP/1.1\r\n{auth}Content-Length: 5\r\n\r\nhello");
            answers.push(conn.send(small).await);
            answers.push(
                conn.send(format!("GET /hyco/d HTTP/1.1\r\n{auth}\r\n"))
                    .await,
            );
            answers
        });
        // The large request comes as a notice; the listener opens the rendezvous.
        let notice = next_request(&mut control).await;
        assert!(notice.is_rendezvous_notice());
        let (mut rdv, mut rdv_write) = open(notice.address.as_deref().expect("address"), None)
            .await
            .expect("rendezvous");
        let first = match parse_control_message(&read_message(&mut rdv).await.1) {
            Ok(ControlMessage::Request(r)) => r,
            other => panic!("expected request, got {other:?}"),
        };
        assert_eq!(first.request_target.as_deref(), Some("/hyco/a"));
        assert_eq!(read_message(&mut rdv).await.1.len(), 70_000);
        let first_id = first.id.expect("id");
        let json = format!(
            "{{\"response\":{{\"requestId\":\"{first_id}\",\"statusCode\":201,\"body\":true}}}}"
        );
        let mut frames = Vec::new();
        push_frame(&mut frames, true, OpCode::Text, json.as_bytes(), mask()).expect("frame");
        push_frame(&mut frames, true, OpCode::Binary, b"one", mask()).expect("frame");
        rdv_write.write_all(frames).await.0.expect("respond");

        // The sender's next requests come over the same rendezvous, each with its own id.
        let second =
            match parse_control_message(&read_answering_pings(&mut rdv, &mut rdv_write).await) {
                Ok(ControlMessage::Request(r)) => r,
                other => panic!("expected request, got {other:?}"),
            };
        assert_eq!(second.request_target.as_deref(), Some("/hyco/b"));
        assert_eq!(second.address, None);
        let second_id = second.id.expect("id");
        assert_ne!(second_id, first_id);
        assert_eq!(hex_digits(&second_id).len(), 32);
        respond(&mut rdv_write, &second_id, 202).await;
        let third =
            match parse_control_message(&read_answering_pings(&mut rdv, &mut rdv_write).await) {
                Ok(ControlMessage::Request(r)) => r,
                other => panic!("expected request, got {other:?}"),
            };
        assert_eq!(third.request_target.as_deref(), Some("/hyco/c"));
        assert_eq!(
            read_answering_pings(&mut rdv, &mut rdv_write).await,
            b"hello"
        );
        // Answered, then closed right away, as the .NET listener does.
        let json = format!(
            "{{\"response\":{{\"requestId\":\"{}\",\"statusCode\":203,\"body\":false}}}}",
            third.id.expect("id")
        );
        let mut frames = Vec::new();
        push_frame(&mut frames, true, OpCode::Text, json.as_bytes(), mask()).expect("frame");
        hycod::proto::ws::encode::push_close(
            &mut frames,
            hycod::proto::ws::CloseCode::NORMAL,
            "NormalClosure",
            mask(),
        )
        .expect("close");
        rdv_write.write_all(frames).await.0.expect("respond");

        // A closed rendezvous is not used again: the next request is routed afresh.
        let fourth = next_request(&mut control).await;
        assert_eq!(fourth.request_target.as_deref(), Some("/hyco/d"));
        respond(&mut control_write, &fourth.id.expect("id"), 204).await;
        let answers = sender.await;
        let statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
        assert_eq!(statuses, [201, 202, 203, 204]);
        assert_eq!(answers[0].2, b"one");
    });
}

/// A listener may close a rendezvous it holds once it has been idle a while (hycod's daemon after
/// a second); the sender's next request can meet that close on its way. Here the listener
/// closes (1000) as soon as the relay turns to the held rendezvous again, whatever the relay
/// sends first: the request is not lost with it (before, the sender got 502) but routed afresh.
#[test]
fn a_request_meeting_the_listeners_close_of_its_held_rendezvous_is_routed_afresh() {
    let relay = relay(&[]);
    let addr = relay.local_addr;
    run(async move {
        let (mut control, _control_write) = listen_on(&relay.url, "hyco").await;
        let t = token("hyco");
        let sender = monoio::spawn(async move {
            let mut conn = HttpConn::connect(addr).await;
            let mut answers = Vec::new();
            for (path, len) in [("a", 70_000), ("b", 100_000)] {
                let mut request = format!(
                    "POST /hyco/{path} HTTP/1.1\r\nHost: localhost\r\nServiceBusAuthorization: {t}\r\nContent-Length: {len}\r\n\r\n"
                )
                .into_bytes();
                request.resize(request.len() + len, b'x');
                answers.push(conn.send(request).await.0);
            }
            answers
        });
        let notice = next_request(&mut control).await;
        let (mut rdv, mut rdv_write, first) = common::open_rendezvous(&notice).await;
        assert_eq!(first.request_target.as_deref(), Some("/hyco/a"));
        assert_eq!(read_message(&mut rdv).await.1.len(), 70_000);
        respond(&mut rdv_write, &first.id.expect("id"), 201).await;
        // The listener's idle time runs out as the relay's next frame arrives: it closes.
        let next = rdv.next_event().await.expect("the relay's next frame");
        println!("the relay's first frame on the held rendezvous: {next:?}");
        let mut close = Vec::new();
        hycod::proto::ws::encode::push_close(
            &mut close,
            hycod::proto::ws::CloseCode::NORMAL,
            "",
            mask(),
        )
        .expect("close");
        rdv_write.write_all(close).await.0.expect("close");
        drop((rdv, rdv_write));

        let afresh =
            monoio::time::timeout(Duration::from_secs(10), next_request(&mut control)).await;
        let Ok(notice) = afresh else {
            panic!(
                "the request was not routed afresh; the sender got {:?}",
                sender.await
            );
        };
        let (_, mut rdv_write, second) = common::open_rendezvous(&notice).await;
        assert_eq!(second.request_target.as_deref(), Some("/hyco/b"));
        respond(&mut rdv_write, &second.id.expect("id"), 202).await;
        assert_eq!(sender.await, [201, 202]);
    });
}

#[test]
fn with_a_namespace_requests_and_upgrades_for_another_host_get_404() {
    let relay = relay(&["--namespace", "LocalHost"]);
    let addr = relay.local_addr;
    // The same relay by name (Host: localhost:PORT) and by address (Host: 127.0.0.1:PORT).
    let named = format!("ws://localhost:{}", addr.port());
    run(async move {
        let listen = |base: &str| format!("{base}/$hc/hyco?sb-hc-action=listen");
        let (status, description) = refusal(&listen(&relay.url), Some(&token("hyco"))).await;
        assert_eq!(
            (status, description.as_str()),
            (
                404,
                format!("No such host here: \"{}\".", &relay.url[5..]).as_str()
            )
        );
        let (mut control, mut control_write) = listen_on(&named, "hyco").await;
        let connect = |base: &str| format!("{base}/$hc/hyco?sb-hc-action=connect");
        let (status, _) = refusal(&connect(&relay.url), Some(&token("hyco"))).await;
        assert_eq!(status, 404);

        // A rendezvous must name the host of the address handed out, not the namespace.
        let t = token("hyco");
        let url = connect(&named);
        let sender = monoio::spawn(async move {
            dialer()
                .connect(&url, &[("ServiceBusAuthorization", &t)], None)
                .await
        });
        let accept = next_accept(&mut control).await;
        assert!(
            accept.address.starts_with("ws://127.0.0.1:"),
            "{}",
            accept.address
        );
        let by_name = accept.address.replacen("127.0.0.1", "localhost", 1);
        assert_eq!(refusal(&by_name, None).await.0, 404);
        let _rendezvous = open(&accept.address, None).await.expect("rendezvous");
        sender.await.expect("the sender is joined to its listener");

        // Every request of a keep-alive connection is checked, not only the first.
        let t = token("hyco");
        let sender = monoio::spawn(async move {
            let mut conn = HttpConn::connect(addr).await;
            let auth = format!("ServiceBusAuthorization: {t}\r\n");
            let first = conn
                .send(format!(
                    "GET /hyco/a HTTP/1.1\r\nHost: LOCALHOST:443\r\n{auth}\r\n"
                ))
                .await;
            let second = conn
                .send(format!(
                    "GET /hyco/b HTTP/1.1\r\nHost: other.example\r\n{auth}\r\n"
                ))
                .await;
            (first, second)
        });
        let request = next_request(&mut control).await;
        assert_eq!(request.request_target.as_deref(), Some("/hyco/a"));
        respond(&mut control_write, &request.id.expect("id"), 200).await;
        let (first, second) = sender.await;
        assert_eq!(first.0, 200);
        assert_eq!(second.0, 404, "{}", String::from_utf8_lossy(&second.2));
        let body: serde_json::Value = serde_json::from_slice(&second.2).expect("json");
        assert_eq!(body["error"]["code"], "EndpointNotFound");
        assert_eq!(
            body["error"]["message"],
            "No such host here: \"other.example\"."
        );
    });
}

#[test]
fn without_a_namespace_any_host_is_served() {
    let relay = relay(&[]);
    let addr = relay.local_addr;
    run(async move {
        let (mut control, mut control_write) = listen_on(&relay.url, "hyco").await;
        let t = token("hyco");
        let sender = monoio::spawn(async move {
            http(
                addr,
                format!("GET /hyco/a HTTP/1.1\r\nHost: other.example\r\nServiceBusAuthorization: {t}\r\n\r\n"),
            )
            .await
        });
        let request = next_request(&mut control).await;
        respond(&mut control_write, &request.id.expect("id"), 200).await;
        assert_eq!(sender.await.0, 200);
    });
}

#[test]
fn requests_over_a_held_rendezvous_count_for_their_listener_in_the_admin_view() {
    let relay = relay(&["--admin", "127.0.0.1:0"]);
    let addr = relay.local_addr;
    let admin = relay.admin_addr.expect("admin").to_string();
    run(async move {
        let (mut control, _control_write) = listen_on(&relay.url, "hyco").await;
        let t = token("hyco");
        let sender = monoio::spawn(async move {
            let mut conn = HttpConn::connect(addr).await;
            let auth = format!("Host: localhost\r\nServiceBusAuthorization: {t}\r\n");
            let mut large = format!("POST /hyco/a HTTP/1.1\r\n{auth}Content-Length: 70000\r\n\r\n")
                .into_bytes();
            large.resize(large.len() + 70_000, b'x');
            let first = conn.send(large).await.0;
            let second = conn
                .send(format!("GET /hyco/b HTTP/1.1\r\n{auth}\r\n"))
                .await
                .0;
            (first, second)
        });
        let notice = next_request(&mut control).await;
        let (mut rdv, mut rdv_write) = open(notice.address.as_deref().expect("address"), None)
            .await
            .expect("rendezvous");
        for status in [201, 202] {
            let request = match parse_control_message(
                &read_answering_pings(&mut rdv, &mut rdv_write).await,
            ) {
                Ok(ControlMessage::Request(r)) => r,
                other => panic!("expected request, got {other:?}"),
            };
            if request.has_body() {
                assert_eq!(
                    read_answering_pings(&mut rdv, &mut rdv_write).await.len(),
                    70_000
                );
            }
            respond(&mut rdv_write, &request.id.expect("id"), status).await;
        }
        assert_eq!(sender.await, (201, 202));
        let (_, body) = common::processes::http_get(&admin, "/$status");
        let status: serde_json::Value = serde_json::from_str(&body).expect("status json");
        let hyco = &status["hybrid_connections"][0];
        assert_eq!(hyco["path"], "hyco");
        assert_eq!(hyco["listeners"][0]["requests"], 2, "{hyco}");
    });
}
