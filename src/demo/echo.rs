//! The TCP echo service the demo's stream hybrid connection points at (`target = "tcp://..."`):
//! every byte read is written back; the peer's FIN is answered with a FIN once everything has
//! been echoed, so half-close can be observed end to end (protocol §5.3, §5.4).

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

/// Bytes read per read call.
const CHUNK_BYTES: usize = 64 * 1024;

/// Serves `listener` until the process ends, one task per connection.
pub(crate) async fn serve(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((tcp, _)) => {
                monoio::spawn(echo(tcp));
            }
            Err(e) => tracing::warn!(error = %e, "echo service: accept failed"),
        }
    }
}

/// Echoes one connection until its peer stops sending, then shuts down the write side.
pub(crate) async fn echo(mut tcp: TcpStream) {
    let _ = tcp.set_nodelay(true);
    let mut buf = Vec::with_capacity(CHUNK_BYTES);
    loop {
        let (result, read) = tcp.read(buf).await;
        buf = read;
        match result {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let (result, written) = tcp.write_all(buf).await;
                buf = written;
                if result.is_err() {
                    return;
                }
                buf.clear();
            }
        }
    }
    let _ = tcp.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_come_back_and_fin_is_answered_with_fin() {
        crate::runtime::workers::block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            monoio::spawn(serve(listener));
            let mut tcp = TcpStream::connect(addr).await.expect("connect");
            let sent: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
            tcp.write_all(sent.clone()).await.0.expect("send");
            tcp.shutdown().await.expect("half-close");
            let mut received = Vec::new();
            loop {
                let (n, buf) = tcp.read(Vec::with_capacity(CHUNK_BYTES)).await;
                match n.expect("read") {
                    0 => break,
                    _ => received.extend_from_slice(&buf),
                }
            }
            assert_eq!(received, sent);
        })
        .expect("runtime");
    }
}
