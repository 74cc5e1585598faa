//! Tiny targets for benchmarks: a TCP echo and an HTTP/1.1 server answering each request with
//! its own body (RFC 9112 framing through hycod's parsers). One monoio runtime, one task per
//! connection, TCP_NODELAY (benchmarking.md rule 5).

use std::net::SocketAddr;

use monoio::buf::IoBuf;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

use hycod::demo::http_io::{read_body, read_request_head, BUFFER_BYTES};
use hycod::io::read_buf::ReadBuf;
use hycod::proto::http1::request_body_kind;

/// The largest request body the HTTP target accepts.
pub const MAX_REQUEST_BODY: usize = 16 * 1024 * 1024;

/// Serves `handle` on `listen` forever, printing the bound address first.
pub fn serve<F, Fut>(listen: SocketAddr, handle: F) -> std::io::Result<()>
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
pub async fn echo(mut stream: TcpStream) {
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

/// Answers each request with `200` and the request's body.
pub async fn http(mut stream: TcpStream) {
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
