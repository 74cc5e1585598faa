//! A relay the test scripts by hand (std threads, blocking sockets): it completes every
//! WebSocket upgrade it receives and hands the connection to the test, which then sends raw
//! control messages and reads what the daemon writes. It checks nothing itself, so a daemon
//! test built on it cannot lean on `hycod relay`'s own rules. A rejection (an upgrade to an
//! `accept` address with `sb-hc-statusCode`) is answered 410, as the service does.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use hycod::proto::http1::Limits as HeadLimits;
use hycod::proto::ws::encode::push_frame;
use hycod::proto::ws::handshake::{parse_upgrade_request, write_switching_protocols};
use hycod::proto::ws::{DataKind, Decoder, Event, Limits, OpCode, Role};

/// A listening scripted relay; every upgrade it completes arrives on [`ScriptedRelay::next`].
pub(crate) struct ScriptedRelay {
    addr: SocketAddr,
    dialed: mpsc::Receiver<Dialed>,
}

/// One upgrade the daemon made: its request-target and headers, and the open connection
/// (`None` for a rejection, which was answered 410).
pub(crate) struct Dialed {
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub conn: Option<Conn>,
}

impl Dialed {
    /// The first value of header `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value of query parameter `name` (raw).
    pub(crate) fn query(&self, name: &str) -> Option<&str> {
        let (_, query) = self.target.split_once('?')?;
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    /// The open connection; panics for a rejection.
    pub(crate) fn conn(&mut self) -> &mut Conn {
        self.conn
            .as_mut()
            .expect("an open connection, not a rejection")
    }
}

/// One frame the daemon sent, unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Frame {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>),
}

/// The relay's end of one upgraded connection.
pub(crate) struct Conn {
    stream: TcpStream,
    decoder: Decoder,
    buf: Vec<u8>,
    message: Vec<u8>,
}

impl ScriptedRelay {
    /// Listens on `ip:0` and completes upgrades until dropped with the test.
    pub(crate) fn start_on(ip: &str) -> Self {
        let listener = TcpListener::bind((ip, 0)).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, dialed) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                let tx = tx.clone();
                std::thread::spawn(move || {
                    if let Some(d) = upgrade(stream) {
                        let _ = tx.send(d);
                    }
                });
            }
        });
        Self { addr, dialed }
    }

    /// [`ScriptedRelay::start_on`] `127.0.0.1`.
    pub(crate) fn start() -> Self {
        Self::start_on("127.0.0.1")
    }

    /// `ws://{addr}`.
    pub(crate) fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The next upgrade, within `timeout`.
    pub(crate) fn next(&self, timeout: Duration) -> Option<Dialed> {
        self.dialed.recv_timeout(timeout).ok()
    }

    /// The next upgrade whose `sb-hc-action` is `action`, within `timeout`; others are dropped.
    pub(crate) fn next_action(&self, action: &str, timeout: Duration) -> Option<Dialed> {
        let until = Instant::now() + timeout;
        loop {
            let left = until.checked_duration_since(Instant::now())?;
            let dialed = self.next(left)?;
            if dialed.query("sb-hc-action") == Some(action) {
                return Some(dialed);
            }
        }
    }
}

fn upgrade(mut stream: TcpStream) -> Option<Dialed> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (request, used) = loop {
        if let Ok(Some(parsed)) = parse_upgrade_request(&buf, &HeadLimits::default()) {
            break parsed;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let target = match request.query() {
        Some(query) => format!("{}?{query}", request.path()),
        None => request.path().to_owned(),
    };
    let headers = request
        .headers()
        .iter()
        .map(|(n, v)| (n.to_owned(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    let mut dialed = Dialed {
        target,
        headers,
        conn: None,
    };
    if dialed.query("sb-hc-statusCode").is_some() {
        stream
            .write_all(b"HTTP/1.1 410 Gone\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .ok()?;
        return Some(dialed);
    }
    let mut out = Vec::new();
    write_switching_protocols(&mut out, &request.accept_key(), None).ok()?;
    stream.write_all(&out).ok()?;
    buf.drain(..used);
    let limits = Limits {
        max_message_size: u64::MAX,
        max_frame_size: u64::MAX,
    };
    dialed.conn = Some(Conn {
        stream,
        decoder: Decoder::new(Role::Server, limits),
        buf,
        message: Vec::new(),
    });
    Some(dialed)
}

impl Conn {
    fn send(&mut self, opcode: OpCode, payload: &[u8]) {
        let mut out = Vec::new();
        push_frame(&mut out, true, opcode, payload, None).expect("frame");
        self.stream.write_all(&out).expect("write to the daemon");
    }

    /// Sends one unmasked text message.
    pub(crate) fn send_text(&mut self, text: &str) {
        self.send(OpCode::Text, text.as_bytes());
    }

    /// Sends one unmasked binary message.
    pub(crate) fn send_binary(&mut self, payload: &[u8]) {
        self.send(OpCode::Binary, payload);
    }

    /// Sends one unmasked binary frame of `payload` from another thread (so the test can read
    /// while it is written); joins when it is written.
    pub(crate) fn send_binary_in_background(
        &self,
        payload: Vec<u8>,
    ) -> std::thread::JoinHandle<()> {
        let mut stream = self.stream.try_clone().expect("clone the socket");
        std::thread::spawn(move || {
            let mut out = Vec::with_capacity(payload.len() + 14);
            push_frame(&mut out, true, OpCode::Binary, &payload, None).expect("frame");
            stream.write_all(&out).expect("write to the daemon");
        })
    }

    /// Sends a pong.
    pub(crate) fn send_pong(&mut self, payload: &[u8]) {
        self.send(OpCode::Pong, payload);
    }

    /// Sends a ping.
    pub(crate) fn send_ping(&mut self, payload: &[u8]) {
        self.send(OpCode::Ping, payload);
    }

    /// The next whole message or control frame within `timeout`; `None` on timeout or end of
    /// stream.
    pub(crate) fn next_frame(&mut self, timeout: Duration) -> Option<Frame> {
        let until = Instant::now() + timeout;
        loop {
            let mut at = 0;
            while at < self.buf.len() {
                let (used, event) = self.decoder.decode(&mut self.buf[at..]).ok()?;
                if used == 0 && event.is_none() {
                    break;
                }
                at += used;
                let frame = match event {
                    Some(Event::Data {
                        kind,
                        payload,
                        message_end,
                        ..
                    }) => {
                        self.message.extend_from_slice(payload);
                        if !message_end {
                            continue;
                        }
                        let whole = std::mem::take(&mut self.message);
                        match kind {
                            DataKind::Text => Frame::Text(whole),
                            DataKind::Binary => Frame::Binary(whole),
                        }
                    }
                    Some(Event::Ping(p)) => Frame::Ping(p.to_vec()),
                    Some(Event::Pong(p)) => Frame::Pong(p.to_vec()),
                    Some(Event::Close(close)) => Frame::Close(close.code.map(|c| c.as_u16())),
                    None => continue,
                };
                self.buf.drain(..at);
                return Some(frame);
            }
            self.buf.drain(..at);
            let left = until.checked_duration_since(Instant::now())?;
            self.stream
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok()?;
            let mut chunk = [0u8; 64 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// The next text message, skipping control frames, within `timeout`.
    pub(crate) fn next_text(&mut self, timeout: Duration) -> Option<String> {
        let until = Instant::now() + timeout;
        loop {
            let left = until.checked_duration_since(Instant::now())?;
            match self.next_frame(left)? {
                Frame::Text(text) => return Some(String::from_utf8(text).expect("utf-8")),
                Frame::Close(_) => return None,
                _ => {}
            }
        }
    }
}
