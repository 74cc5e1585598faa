use std::sync::Arc;

use monoio::io::{
    AsyncReadRent, AsyncReadRentExt, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf,
    OwnedWriteHalf, Splitable,
};
use monoio::net::{TcpListener, TcpStream};
use rustls::crypto::ring::default_provider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::RootCertStore;

use super::*;

fn run<F: std::future::Future>(f: F) -> F::Output {
    crate::runtime::workers::block_on(f).expect("runtime")
}

struct Pki {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

fn pki() -> Pki {
    let issued = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let cert = CertificateDer::from(issued.cert.der().to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(issued.key_pair.serialize_der()));
    let server = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .expect("server config");
    let mut roots = RootCertStore::empty();
    roots.add(cert).expect("root");
    Pki {
        server: Arc::new(server),
        client: Arc::new(client_config(roots)),
    }
}

fn client_config(roots: RootCertStore) -> ClientConfig {
    ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

fn localhost() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("name")
}

async fn tcp_pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let client = TcpStream::connect_addr(addr).await.expect("connect");
    let (accepted, _) = listener.accept().await.expect("accept");
    (client, accepted)
}

/// Copies `from` to `to` until `stop` has a message; gives both back.
async fn forward_until(
    mut from: OwnedReadHalf<TcpStream>,
    mut to: OwnedWriteHalf<TcpStream>,
    stop: flume::Receiver<()>,
) -> (OwnedReadHalf<TcpStream>, OwnedWriteHalf<TcpStream>) {
    loop {
        let (n, buf) = monoio::select! {
            biased;
            _ = stop.recv_async() => return (from, to),
            r = from.read(vec![0u8; 64 * 1024]) => r,
        };
        match n {
            Ok(0) | Err(_) => return (from, to),
            Ok(n) => to.write_all(buf.slice(..n)).await.0.expect("forward"),
        };
    }
}

/// A connected client and server TLS stream pair.
async fn tls_pair(pki: &Pki) -> (TlsStream<TcpStream>, TlsStream<TcpStream>) {
    let (client_tcp, server_tcp) = tcp_pair().await;
    let acceptor = Acceptor::from(pki.server.clone());
    let server = monoio::spawn(async move { acceptor.accept(server_tcp).await });
    let client = Connector::from(pki.client.clone())
        .connect(localhost(), client_tcp)
        .await
        .expect("client handshake");
    (client, server.await.expect("server handshake"))
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

fn tls_error(e: &io::Error) -> &TlsStreamError {
    TlsStreamError::of(e).unwrap_or_else(|| panic!("not a TLS stream error: {e:?}"))
}

#[test]
fn split_halves_echo_large_messages_both_ways() {
    let pki = pki();
    run(async {
        let (client, server) = tls_pair(&pki).await;
        let echo = monoio::spawn(async move {
            let (mut read, mut write) = server.into_split();
            let mut buf = vec![0u8; 256 * 1024];
            loop {
                let (n, back) = read.read(buf).await;
                let n = n.expect("server read");
                if n == 0 {
                    break;
                }
                let (w, back) = write.write_all(back.slice(..n)).await;
                w.expect("server write");
                buf = back.into_inner();
            }
            write.shutdown().await.expect("server shutdown");
        });
        let (mut read, mut write) = client.into_split();
        let sent = pattern(3 * 256 * 1024 + 17);
        let to_send = sent.clone();
        let writer = monoio::spawn(async move {
            for piece in to_send.chunks(256 * 1024 + 10) {
                write
                    .write_all(piece.to_vec())
                    .await
                    .0
                    .expect("client write");
            }
            write.shutdown().await.expect("client shutdown");
        });
        let (n, got) = read.read_exact(vec![0u8; sent.len()]).await;
        assert_eq!(n.expect("read back"), sent.len());
        assert_eq!(got, sent);
        writer.await;
        echo.await;
        let (n, _) = read.read(vec![0u8; 16]).await;
        assert_eq!(n.expect("close_notify is a clean end"), 0);
    });
}

#[test]
fn one_read_returns_many_records() {
    let pki = pki();
    run(async {
        let (mut client, mut server) = tls_pair(&pki).await;
        let sent = pattern(96 * 1024);
        client.write_all(sent.clone()).await.0.expect("write");
        let mut got = Vec::new();
        let mut largest = 0;
        while got.len() < sent.len() {
            let (n, buf) = server.read(vec![0u8; 256 * 1024]).await;
            let n = n.expect("read");
            largest = largest.max(n);
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, sent);
        // One record carries at most 16 KiB of plaintext (RFC 8446 §5.1).
        assert!(largest > 16 * 1024, "largest read {largest}");
    });
}

#[test]
fn a_dropped_read_loses_no_bytes() {
    let pki = pki();
    run(async {
        let (mut client, mut server) = tls_pair(&pki).await;
        let (tx, rx) = flume::unbounded::<()>();
        let mut got = Vec::new();
        for round in 0..5u8 {
            tx.send(()).expect("signal");
            monoio::select! {
                biased;
                r = server.read(vec![0u8; 1024]) => panic!("nothing was sent yet: {:?}", r.0),
                _ = rx.recv_async() => {}
            }
            client.write_all(vec![round; 3000]).await.0.expect("write");
            let (n, buf) = server.read_exact(vec![0u8; 3000]).await;
            n.expect("read after a dropped read");
            got.extend_from_slice(&buf);
        }
        let want: Vec<u8> = (0..5u8).flat_map(|r| vec![r; 3000]).collect();
        assert_eq!(got, want);
    });
}

#[test]
fn a_read_dropped_mid_record_loses_no_bytes() {
    let pki = pki();
    run(async {
        // client <-> (a | test copies | b) <-> server: the test decides which ciphertext
        // bytes reach the server.
        let (client_tcp, a) = tcp_pair().await;
        let (b, server_tcp) = tcp_pair().await;
        let (a_read, a_write) = a.into_split();
        let (b_read, b_write) = b.into_split();
        let (_keep_down, never) = flume::unbounded::<()>();
        let down = monoio::spawn(forward_until(b_read, a_write, never));
        let (stop_up, stop) = flume::unbounded::<()>();
        let up = monoio::spawn(forward_until(a_read, b_write, stop));
        let acceptor = Acceptor::from(pki.server.clone());
        let server = monoio::spawn(async move { acceptor.accept(server_tcp).await });
        let mut client = Connector::from(pki.client.clone())
            .connect(localhost(), client_tcp)
            .await
            .expect("client handshake");
        let mut server = server.await.expect("server handshake");
        stop_up.send(()).expect("stop");
        let (mut a_read, mut b_write) = up.await;

        // Two records of 3,000 bytes (TLS 1.3: 5-byte header + data + 1 content type + 16-byte tag).
        let sent = pattern(6000);
        client
            .write_all(sent[..3000].to_vec())
            .await
            .0
            .expect("write record 1");
        client
            .write_all(sent[3000..].to_vec())
            .await
            .0
            .expect("write record 2");
        let record = 5 + 3000 + 1 + 16;
        let (n, head) = a_read.read_exact(vec![0u8; record + 1500]).await;
        n.expect("record 1 and half of record 2");
        b_write.write_all(head).await.0.expect("forward");
        // Record 1 comes back at once: a read never waits while it holds plaintext.
        let mut got = Vec::new();
        while got.len() < 3000 {
            monoio::select! {
                r = server.read(vec![0u8; 8192]) => {
                    let (n, buf) = r;
                    got.extend_from_slice(&buf[..n.expect("record 1")]);
                }
                _ = monoio::time::sleep(std::time::Duration::from_millis(500)) => {
                    panic!("record 1 held back; {} bytes so far", got.len())
                }
            }
        }
        assert_eq!(got, sent[..3000]);
        // This read takes the half record into rustls, then waits for the rest; it is dropped
        // while it waits.
        monoio::select! {
            biased;
            r = server.read(vec![0u8; 4096]) => panic!("half a record decrypted: {:?}", r.0),
            _ = monoio::time::sleep(std::time::Duration::from_millis(50)) => {}
        }
        let (_stop_rest, never) = flume::unbounded::<()>();
        let rest = monoio::spawn(forward_until(a_read, b_write, never));
        let (n, got) = server.read_exact(vec![0u8; 3000]).await;
        n.expect("read after the dropped read");
        assert_eq!(got, sent[3000..]);
        drop((client, server, rest, down));
    });
}

#[test]
fn a_write_dropped_mid_send_refuses_later_writes() {
    let pki = pki();
    run(async {
        // The server reads nothing, so the socket buffers fill and a send has to wait.
        let (mut client, _server) = tls_pair(&pki).await;
        let (tx, rx) = flume::unbounded::<()>();
        let mut interrupted = false;
        for _ in 0..256 {
            tx.send(()).expect("signal");
            monoio::select! {
                biased;
                r = client.write(vec![7u8; 256 * 1024]) => {
                    r.0.expect("a write with room in the socket");
                    rx.try_recv().expect("the unused signal");
                }
                _ = rx.recv_async() => {
                    interrupted = true;
                    break;
                }
            }
        }
        assert!(interrupted, "no write ever had to wait");
        let (r, _) = client.write(vec![1u8; 10]).await;
        let e = r.expect_err("the stream is broken");
        assert!(matches!(tls_error(&e), TlsStreamError::WriteInterrupted));
        let e = client.flush().await.expect_err("flush too");
        assert!(matches!(tls_error(&e), TlsStreamError::WriteInterrupted));
    });
}

#[test]
fn an_untrusted_certificate_fails_the_handshake_with_a_protocol_error() {
    let pki = pki();
    let other = self::pki();
    run(async {
        let (client_tcp, server_tcp) = tcp_pair().await;
        let acceptor = Acceptor::from(pki.server.clone());
        let server = monoio::spawn(async move { acceptor.accept(server_tcp).await });
        let e = Connector::from(other.client.clone())
            .connect(localhost(), client_tcp)
            .await
            .err()
            .expect("untrusted server");
        assert!(matches!(
            tls_error(&e),
            TlsStreamError::Protocol(rustls::Error::InvalidCertificate(_))
        ));
        let e = server.await.err().expect("the client sent an alert");
        assert!(matches!(
            tls_error(&e),
            TlsStreamError::Protocol(rustls::Error::AlertReceived(_))
        ));
    });
}

#[test]
fn a_peer_that_closes_during_the_handshake_is_handshake_eof() {
    let pki = pki();
    run(async {
        let (client_tcp, server_tcp) = tcp_pair().await;
        drop(client_tcp);
        let e = Acceptor::from(pki.server.clone())
            .accept(server_tcp)
            .await
            .err()
            .expect("no client");
        assert!(matches!(tls_error(&e), TlsStreamError::HandshakeEof));
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    });
}

#[test]
fn a_close_without_close_notify_is_unexpected_eof() {
    let pki = pki();
    run(async {
        let (mut client, mut server) = tls_pair(&pki).await;
        // The client reads a byte the server sent after its session tickets, so it has taken
        // the tickets and its close is a FIN, not a reset.
        server
            .write_all(b"x".to_vec())
            .await
            .0
            .expect("server writes");
        let (n, _) = client.read_exact(vec![0u8; 1]).await;
        n.expect("the byte after the tickets");
        drop(client);
        let (r, _) = server.read(vec![0u8; 64]).await;
        assert_eq!(
            r.expect_err("truncation").kind(),
            io::ErrorKind::UnexpectedEof
        );
    });
}

#[test]
fn errors_name_what_failed() {
    assert_eq!(
        TlsStreamError::HandshakeEof.to_string(),
        "connection closed during the TLS handshake"
    );
    assert!(TlsStreamError::WriteInterrupted
        .to_string()
        .contains("accepts no more writes"));
    assert!(TlsStreamError::Protocol(rustls::Error::DecryptError)
        .to_string()
        .starts_with("TLS protocol error"));
}

/// A transport that keeps a copy of every write call's bytes.
struct Recording {
    tcp: TcpStream,
    writes: std::rc::Rc<std::cell::RefCell<Vec<Vec<u8>>>>,
}

impl AsyncReadRent for Recording {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.tcp.read(buf).await
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        self.tcp.readv(buf).await
    }
}

impl AsyncWriteRent for Recording {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: `IoBuf` guarantees `read_ptr()` is valid for `bytes_init()` bytes.
        let bytes = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        self.writes.borrow_mut().push(bytes.to_vec());
        self.tcp.write(buf).await
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        self.writes.borrow_mut().push(Vec::new());
        self.tcp.writev(buf).await
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush().await
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        self.tcp.shutdown().await
    }
}

/// The (content type, length) of each TLS record in `wire` (RFC 8446 §5.1).
fn records(wire: &[u8]) -> Vec<(u8, usize)> {
    let mut found = Vec::new();
    let mut rest = wire;
    while let [kind, _, _, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        found.push((*kind, len));
        rest = &tail[len.min(tail.len())..];
    }
    found
}

#[test]
fn a_256_kib_write_hands_the_socket_all_its_full_records_in_one_write_call() {
    let pki = pki();
    run(async {
        let (client_tcp, server_tcp) = tcp_pair().await;
        let acceptor = Acceptor::from(pki.server.clone());
        let server = monoio::spawn(async move { acceptor.accept(server_tcp).await });
        let writes = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let recording = Recording {
            tcp: client_tcp,
            writes: writes.clone(),
        };
        let mut client = Connector::from(pki.client.clone())
            .connect(localhost(), recording)
            .await
            .expect("client handshake");
        let mut server = server.await.expect("server handshake");
        writes.borrow_mut().clear();

        let sent = pattern(256 * 1024 + 10);
        let reader = monoio::spawn(async move {
            let (n, got) = server.read_exact(vec![0u8; 256 * 1024 + 10]).await;
            n.expect("read");
            got
        });
        let (n, _) = client.write(sent.clone()).await;
        assert_eq!(
            n.expect("write"),
            sent.len(),
            "the whole buffer in one call"
        );
        assert_eq!(reader.await, sent);

        // The first write call carries every record (the kernel may take less, and write_all
        // then offers the rest).
        let writes = writes.borrow();
        let found = records(writes.first().expect("a write"));
        assert_eq!(found.len(), 17, "sixteen full records and one for the rest");
        let application_data = 23;
        let full = (1 << 14) + 1 + 16;
        assert!(found[..16].iter().all(|r| *r == (application_data, full)));
        assert_eq!(found[16], (application_data, 10 + 1 + 16));
    });
}
