//! The sample ERP web service as an HTTP/1.1 server (RFC 9112): keep-alive connections, each
//! request answered by [`erp::answer`] with `Content-Length` framing. This is what the daemon's
//! `http_target` points at, as it would point at an ERPConnect service next to an SAP system.

use monoio::io::AsyncWriteRentExt;
use monoio::net::{TcpListener, TcpStream};

use super::erp;
use super::http_io::{read_body, read_request_head, HttpIoError, BUFFER_BYTES};
use crate::io::read_buf::ReadBuf;
use crate::io::stream::Stream;
use crate::proto::http1::{reason_phrase, request_body_kind, write_response_head};

/// The largest request body the service reads.
pub(crate) const MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;

/// Serves `listener` until the process ends, one task per connection.
pub(crate) async fn serve(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                monoio::spawn(serve_connection(tcp));
            }
            Err(e) => tracing::warn!(error = %e, "sample ERP service: accept failed"),
        }
    }
}

async fn serve_connection(tcp: TcpStream) {
    let Ok(mut stream) = Stream::plain(tcp) else {
        return;
    };
    let mut buf = ReadBuf::new(BUFFER_BYTES, 0);
    loop {
        let (answer, keep_alive) = match next_answer(&mut stream, &mut buf).await {
            Ok(Some(next)) => next,
            Ok(None) => return,
            Err(e) => {
                tracing::debug!(error = %e, "sample ERP service: unreadable request");
                let status = match e {
                    HttpIoError::BodyTooLarge { .. } => 413,
                    _ => 400,
                };
                (
                    erp::Answer {
                        status,
                        body: e.to_string().into_bytes(),
                    },
                    false,
                )
            }
        };
        let out = encode_response(&answer, keep_alive);
        if stream.write_all(out).await.0.is_err() || !keep_alive {
            return;
        }
    }
}

/// Reads one request and computes its answer; `None` when the client is done.
async fn next_answer(
    stream: &mut Stream,
    buf: &mut ReadBuf,
) -> Result<Option<(erp::Answer, bool)>, HttpIoError> {
    let Some(head) = read_request_head(stream, buf).await? else {
        return Ok(None);
    };
    let kind = request_body_kind(&head).map_err(HttpIoError::Framing)?;
    let body = read_body(stream, buf, kind, MAX_REQUEST_BODY).await?;
    let answer = erp::answer(&head.method, &head.target, &body);
    Ok(Some((answer, head.keep_alive())))
}

/// The response head and body, framed by `Content-Length`.
pub(crate) fn encode_response(answer: &erp::Answer, keep_alive: bool) -> Vec<u8> {
    let length = answer.body.len().to_string();
    let mut fields = vec![
        ("Content-Type", erp::CONTENT_TYPE),
        ("Content-Length", length.as_str()),
    ];
    if !keep_alive {
        fields.push(("Connection", "close"));
    }
    let mut out = Vec::with_capacity(160 + answer.body.len());
    // The status comes from erp::answer (200..=413) and the fields are constants or digits, so
    // the writer's checks cannot fail; an empty Vec (connection closed) would be the result.
    if write_response_head(
        &mut out,
        answer.status,
        reason_phrase(answer.status),
        fields,
    )
    .is_ok()
    {
        out.extend_from_slice(&answer.body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::http1::{parse_response_head, Limits};

    #[test]
    fn responses_carry_length_type_and_close_when_asked() {
        let answer = erp::answer("GET", "/ErpConnect/api/materials/M-1", b"");
        let wire = encode_response(&answer, true);
        let (head, len) = parse_response_head(&wire, &Limits::default())
            .expect("valid")
            .expect("complete");
        assert_eq!(head.status, 200);
        assert_eq!(
            head.headers.get("content-type"),
            Some(erp::CONTENT_TYPE.as_bytes())
        );
        assert_eq!(&wire[len..], answer.body.as_slice());
        assert!(head.keep_alive());
        let closing = encode_response(&answer, false);
        let (head, _) = parse_response_head(&closing, &Limits::default())
            .expect("valid")
            .expect("complete");
        assert!(!head.keep_alive());
    }

    #[test]
    fn keep_alive_requests_are_answered_in_order_over_one_connection() {
        crate::runtime::workers::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            monoio::spawn(serve(listener));
            let mut tcp = TcpStream::connect(addr).await.expect("connect");
            let body = r#"{"function":"BAPI_MATERIAL_AVAILABILITY","material":"M-1","plant":"1000","quantity":2}"#;
            let request = format!(
                "GET /ErpConnect/api/materials/M-1 HTTP/1.1\r\nHost: x\r\n\r\n\
                 POST /ErpConnect/api/bapi HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            tcp.write_all(request.into_bytes()).await.0.expect("send");
            let mut buf = ReadBuf::new(BUFFER_BYTES, 0);
            let mut bodies = Vec::new();
            for _ in 0..2 {
                let head = super::super::http_io::read_response_head(&mut tcp, &mut buf)
                    .await
                    .expect("head");
                let kind = crate::proto::http1::response_body_kind("GET", &head).expect("framing");
                bodies.push(read_body(&mut tcp, &mut buf, kind, 1 << 20).await.expect("body"));
            }
            assert_eq!(bodies[0], erp::answer("GET", "/ErpConnect/api/materials/M-1", b"").body);
            assert_eq!(
                bodies[1],
                erp::answer("POST", "/ErpConnect/api/bapi", body.as_bytes()).body
            );
        })
        .expect("runtime");
    }
}
