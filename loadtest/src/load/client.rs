//! The load generator's keep-alive HTTP/1.1 client: one pre-rendered request written with a
//! single write, the response head read with pyrogate's parser (`Content-Length`, chunked, or
//! read-until-close bodies; `1xx` interim responses skipped), `TCP_NODELAY` on.
//!
//! Deliberately minimal: no pipelining, no redirects. [`Conn`] is generic over its stream:
//! a plain `TcpStream` ([`Conn::connect`]) or a TLS client stream ([`super::tls`]), so the
//! plaintext path is compiled on its own and does no TLS work. Every read and write is under
//! the request's deadline, response heads and bodies are bounded.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Buf, Bytes, BytesMut};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use pyrogate::http::chunked::{ChunkedDecoder, Progress};
use pyrogate::http::response_head::{self, ResponseFraming};

/// Largest response head accepted.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Largest response body accepted (sinks and gateways answer with a few bytes; error
/// bodies are small).
pub const MAX_RESPONSE_BODY: usize = 1 << 20;
/// Read size.
const READ_CHUNK: usize = 16 * 1024;

/// Why a request got no usable response. [`ClientError::kind`] names it in reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    Connect(io::ErrorKind),
    /// The TLS handshake failed (rustls's message).
    Handshake(String),
    Timeout,
    Write(io::ErrorKind),
    Read(io::ErrorKind),
    /// The server closed the connection before a complete response.
    Closed,
    Malformed,
    TooLarge,
}

impl ClientError {
    pub fn kind(&self) -> String {
        match self {
            ClientError::Connect(k) => format!("connect: {}", kind_name(*k)),
            ClientError::Handshake(m) => format!("tls handshake: {m}"),
            ClientError::Timeout => "timeout".into(),
            ClientError::Write(k) => format!("write: {}", kind_name(*k)),
            ClientError::Read(k) => format!("read: {}", kind_name(*k)),
            ClientError::Closed => "closed before response".into(),
            ClientError::Malformed => "malformed response".into(),
            ClientError::TooLarge => "response too large".into(),
        }
    }
}

fn kind_name(k: io::ErrorKind) -> String {
    match k {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        io::ErrorKind::BrokenPipe => "broken pipe".into(),
        io::ErrorKind::TimedOut => "timed out".into(),
        io::ErrorKind::AddrNotAvailable => "address not available".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseInfo {
    pub status: u16,
    /// The server will close (or closed) the connection.
    pub close: bool,
    pub body_len: usize,
    /// Response bytes read (head + body framing).
    pub bytes_read: usize,
}

/// One keep-alive connection over `S`: a `TcpStream`, or a TLS stream over one.
pub struct Conn<S = TcpStream> {
    stream: S,
    buf: BytesMut,
}

pub(crate) async fn with_deadline<F: std::future::Future>(
    deadline: Instant,
    f: F,
) -> Option<F::Output> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    monoio::time::timeout(remaining, f).await.ok()
}

/// A TCP connection with `TCP_NODELAY`, under `deadline`.
pub(crate) async fn tcp_connect(
    addr: SocketAddr,
    deadline: Instant,
) -> Result<TcpStream, ClientError> {
    let stream = match with_deadline(deadline, TcpStream::connect_addr(addr)).await {
        None => return Err(ClientError::Timeout),
        Some(Err(e)) => return Err(ClientError::Connect(e.kind())),
        Some(Ok(s)) => s,
    };
    stream
        .set_nodelay(true)
        .map_err(|e| ClientError::Connect(e.kind()))?;
    Ok(stream)
}

impl Conn<TcpStream> {
    pub async fn connect(addr: SocketAddr, deadline: Instant) -> Result<Self, ClientError> {
        Ok(Self::new(tcp_connect(addr, deadline).await?))
    }
}

impl<S> Conn<S> {
    /// A connection over an established stream.
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
        }
    }

    /// The stream, once the connection is done with.
    pub fn into_stream(self) -> S {
        self.stream
    }
}

impl<S: AsyncReadRent + AsyncWriteRent> Conn<S> {
    /// Writes `request` (a complete request: head and framed body) in one write and reads
    /// the response. On error the connection must be dropped.
    pub async fn send(
        &mut self,
        request: Bytes,
        deadline: Instant,
    ) -> Result<ResponseInfo, ClientError> {
        match with_deadline(deadline, self.stream.write_all(request)).await {
            None => return Err(ClientError::Timeout),
            Some((Err(e), _)) => return Err(ClientError::Write(e.kind())),
            Some((Ok(_), _)) => {}
        }
        self.read_response(deadline).await
    }

    /// Reads more bytes; `Ok(false)` on EOF.
    async fn fill(&mut self, deadline: Instant) -> Result<bool, ClientError> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK {
            self.buf.reserve(READ_CHUNK);
        }
        let buf = std::mem::take(&mut self.buf);
        let (len, cap) = (buf.len(), buf.capacity());
        let read = self.stream.read(buf.slice_mut(len..cap));
        let (res, slice) = match with_deadline(deadline, read).await {
            None => return Err(ClientError::Timeout),
            Some(r) => r,
        };
        self.buf = slice.into_inner();
        match res {
            Ok(0) => Ok(false),
            Ok(_) => Ok(true),
            Err(e) => Err(ClientError::Read(e.kind())),
        }
    }

    async fn read_response(&mut self, deadline: Instant) -> Result<ResponseInfo, ClientError> {
        let mut bytes_read = 0;
        loop {
            let head = loop {
                match parse_head(&self.buf)? {
                    Some(h) => break h,
                    None if self.buf.len() >= MAX_RESPONSE_HEAD => {
                        return Err(ClientError::TooLarge);
                    }
                    None => {
                        if !self.fill(deadline).await? {
                            return Err(ClientError::Closed);
                        }
                    }
                }
            };
            self.buf.advance(head.len);
            bytes_read += head.len;
            if (100..200).contains(&head.status) {
                continue; // 100 Continue and friends: the real answer follows
            }
            let (body_len, framing_bytes, eof_close) = self.read_body(&head, deadline).await?;
            bytes_read += framing_bytes;
            return Ok(ResponseInfo {
                status: head.status,
                close: head.close || eof_close,
                body_len,
                bytes_read,
            });
        }
    }

    /// Returns (decoded body length, wire bytes consumed, closed by EOF).
    async fn read_body(
        &mut self,
        head: &Head,
        deadline: Instant,
    ) -> Result<(usize, usize, bool), ClientError> {
        match head.framing {
            Framing::Length(n) => {
                if n > MAX_RESPONSE_BODY {
                    return Err(ClientError::TooLarge);
                }
                while self.buf.len() < n {
                    if !self.fill(deadline).await? {
                        return Err(ClientError::Closed);
                    }
                }
                self.buf.advance(n);
                Ok((n, n, false))
            }
            Framing::Chunked => {
                let mut dec = ChunkedDecoder::new(MAX_RESPONSE_BODY as u64);
                let mut sink = BytesMut::new();
                let mut consumed = 0;
                loop {
                    if !self.buf.is_empty() {
                        let (used, progress) = dec
                            .decode(&self.buf, &mut sink)
                            .map_err(|_| ClientError::Malformed)?;
                        self.buf.advance(used);
                        consumed += used;
                        sink.clear();
                        if progress == Progress::Done {
                            return Ok((dec.total() as usize, consumed, false));
                        }
                    }
                    if !self.fill(deadline).await? {
                        return Err(ClientError::Closed);
                    }
                }
            }
            Framing::UntilClose => {
                while self.fill(deadline).await? {
                    if self.buf.len() > MAX_RESPONSE_BODY {
                        return Err(ClientError::TooLarge);
                    }
                }
                let n = self.buf.len();
                self.buf.clear();
                Ok((n, n, true))
            }
            Framing::None => Ok((0, 0, false)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub len: usize,
    pub framing: Framing,
    pub close: bool,
}

/// Parses a response head at the start of `buf` (pyrogate's parser); `Ok(None)` when
/// incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, ClientError> {
    let Some(h) = response_head::parse(buf).map_err(|_| ClientError::Malformed)? else {
        return Ok(None);
    };
    let framing = match h.framing {
        ResponseFraming::None => Framing::None,
        ResponseFraming::Length(n) => {
            Framing::Length(usize::try_from(n).map_err(|_| ClientError::TooLarge)?)
        }
        ResponseFraming::Chunked => Framing::Chunked,
        ResponseFraming::UntilClose => Framing::UntilClose,
    };
    Ok(Some(Head {
        status: h.status,
        len: h.len,
        framing,
        close: h.close,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let h = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            .expect("valid")
            .expect("complete");
        assert_eq!(h.status, 200);
        assert_eq!(h.framing, Framing::Length(2));
        assert_eq!(h.len, 38);
        assert!(!h.close);
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le"), Ok(None));
        let h = parse_head(b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n")
            .expect("valid")
            .expect("complete");
        assert_eq!((h.framing, h.close), (Framing::Chunked, true));
        let h = parse_head(b"HTTP/1.0 200 OK\r\n\r\n")
            .expect("valid")
            .expect("complete");
        assert_eq!((h.framing, h.close), (Framing::UntilClose, true));
        let h = parse_head(b"HTTP/1.1 100 Continue\r\n\r\n")
            .expect("valid")
            .expect("complete");
        assert_eq!(h.framing, Framing::None);
        assert_eq!(parse_head(b"garbage\r\n\r\n"), Err(ClientError::Malformed));
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
            Err(ClientError::Malformed)
        );
    }

    #[test]
    fn round_trip_over_loopback_both_drivers() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut buf = [0u8; 4096];
            let answers: [&[u8]; 3] = [
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
                b"HTTP/1.1 503 X\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
            ];
            for a in answers {
                let n = s.read(&mut buf).expect("read");
                assert!(n > 0);
                s.write_all(a).expect("write");
            }
        });
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let deadline = Instant::now() + std::time::Duration::from_secs(5);
            let mut c = Conn::connect(addr, deadline).await.expect("connect");
            let req = Bytes::from_static(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
            let r = c.send(req.clone(), deadline).await.expect("first");
            assert_eq!((r.status, r.body_len, r.close), (200, 2, false));
            let r = c.send(req.clone(), deadline).await.expect("second");
            assert_eq!((r.status, r.body_len), (503, 3));
            let r = c.send(req, deadline).await.expect("third");
            assert_eq!((r.status, r.close), (204, true));
        });
        server.join().expect("server");
    }
}
