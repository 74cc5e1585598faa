//! Tiny targets for benchmarks: a TCP echo, an HTTP/1.1 server answering each request with its
//! own body or a fixed-size body (RFC 9112 framing through hycod's parsers), and the bulk
//! target (discard, write endlessly, or both, as the first byte asks). One monoio runtime, one
//! task per connection, TCP_NODELAY (benchmarking.md rule 5).

use std::net::SocketAddr;

use monoio::buf::IoBuf;
use std::rc::Rc;

use monoio::io::{AsyncReadRent, AsyncReadRentExt, AsyncWriteRentExt, Splitable};
use monoio::net::{TcpListener, TcpStream};

use hycod::demo::http_io::{read_body, read_request_head, BUFFER_BYTES};
use hycod::io::read_buf::ReadBuf;
use hycod::proto::http1::request_body_kind;

/// The largest request body the HTTP target accepts.
pub(crate) const MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;

/// Serves `handle` on `listen` forever, printing the bound address first.
pub(crate) fn serve<F, Fut>(listen: SocketAddr, handle: F) -> std::io::Result<()>
where
    F: Fn(TcpStream) -> Fut + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    hycod::runtime::workers::block_on(async move {
        let listener = TcpListener::bind(listen)?;
        println!("listening on {}", listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            monoio::spawn(handle(stream));
        }
    })?
}

/// Echoes every byte back until the peer closes.
pub(crate) async fn echo(mut stream: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let (read, back) = stream.read(buf).await;
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let (written, back) = stream.write_all(back.slice(0..n)).await;
        buf = back.into_inner();
        if written.is_err() {
            return;
        }
    }
}

/// The bytes `serve-bulk` writes per write.
pub(crate) const BULK_CHUNK: usize = 64 * 1024;

/// The largest fixed response `serve-http --response-size` sends.
pub(crate) const MAX_RESPONSE_SIZE: usize = 256 * 1024 * 1024;

/// The bulk target: reads the direction byte, answers [`crate::bulk::ACK`], then discards
/// (`U`), writes endlessly (`D`) or both (`B`) until the peer goes away.
pub(crate) async fn bulk(stream: TcpStream) {
    let mut stream = stream;
    let (got, code) = stream.read_exact(vec![0u8; 1]).await;
    let Some(direction) = got
        .ok()
        .and_then(|_| crate::bulk::Direction::from_code(code[0]))
    else {
        return;
    };
    let (sent, _) = stream.write_all(vec![crate::bulk::ACK]).await;
    if sent.is_err() {
        return;
    }
    let (mut read, mut write) = stream.into_split();
    let writer = direction.receives().then(|| {
        monoio::spawn(async move {
            let mut chunk = vec![0xa5_u8; BULK_CHUNK];
            loop {
                let (sent, back) = write.write_all(chunk).await;
                chunk = back;
                if sent.is_err() {
                    return;
                }
            }
        })
    });
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let (got, back) = read.read(buf).await;
        buf = back;
        if matches!(got, Ok(0) | Err(_)) {
            break;
        }
    }
    if let Some(writer) = writer {
        writer.await;
    }
}

/// The head and body of a fixed `--response-size` answer.
pub(crate) fn fixed_response(size: usize) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n"
    )
    .into_bytes();
    out.resize(out.len() + size, b'r');
    out
}

/// Answers each request with `200` and `response` (a [`fixed_response`]), after reading the
/// request's body.
pub(crate) async fn http_fixed(mut stream: TcpStream, response: Rc<Vec<u8>>) {
    let mut buf = ReadBuf::new(BUFFER_BYTES, 0);
    while let Ok(Some(head)) = read_request_head(&mut stream, &mut buf).await {
        let Ok(kind) = request_body_kind(&head) else {
            return;
        };
        if read_body(&mut stream, &mut buf, kind, MAX_REQUEST_BODY)
            .await
            .is_err()
        {
            return;
        }
        let (written, _) = stream.write_all(Rc::clone(&response)).await;
        if written.is_err() {
            return;
        }
    }
}

/// Answers each request with `200` and the request's body.
pub(crate) async fn http(mut stream: TcpStream) {
    let mut buf = ReadBuf::new(BUFFER_BYTES, 0);
    let mut out = Vec::with_capacity(4096);
    while let Ok(Some(head)) = read_request_head(&mut stream, &mut buf).await {
        let Ok(kind) = request_body_kind(&head) else {
            return;
        };
        let Ok(body) = read_body(&mut stream, &mut buf, kind, MAX_REQUEST_BODY).await else {
            return;
        };
        out.clear();
        out.extend_from_slice(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(&body);
        let (written, back) = stream.write_all(std::mem::take(&mut out)).await;
        out = back;
        if written.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_response_announces_its_length() {
        let response = fixed_response(5);
        let text = String::from_utf8(response).expect("ascii");
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
        assert!(text.contains("Content-Length: 5\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\nrrrrr"), "{text}");
    }
}
