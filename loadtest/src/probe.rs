//! A blocking keep-alive HTTP/1.1 client for the control plane of `demo` and `bench`:
//! readiness checks, `/stats` of the sinks, one-off fixture requests, and the idle
//! connections of the memory benchmark. Every operation is bounded by a timeout; the load
//! itself goes through [`crate::load`], never through this. A gateway with `[server.tls]` is
//! spoken to over blocking rustls ([`ProbeTls`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;

use bytes::BytesMut;
use pyrogate::http::chunked::{ChunkedDecoder, Progress};

use crate::load::client::{Framing, MAX_RESPONSE_BODY, MAX_RESPONSE_HEAD, parse_head};

/// One response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// The server closes the connection after this response.
    pub close: bool,
}

impl Answer {
    pub fn json(&self) -> Result<serde_json::Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("response is not JSON: {e}"))
    }
}

/// How to speak TLS to a server: the client configuration and the name to verify.
#[derive(Debug, Clone)]
pub struct ProbeTls {
    pub config: Arc<rustls::ClientConfig>,
    pub name: ServerName<'static>,
}

/// The socket of a [`Client`]: plain, or TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A keep-alive connection.
pub struct Client {
    stream: Stream,
    buf: Vec<u8>,
    timeout: Duration,
}

impl Client {
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Self, String> {
        Self::connect_with(addr, timeout, None)
    }

    /// [`Client::connect`], over TLS when `tls` is given (the handshake completes here).
    pub fn connect_with(
        addr: SocketAddr,
        timeout: Duration,
        tls: Option<&ProbeTls>,
    ) -> Result<Self, String> {
        let tcp = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let set = |r: std::io::Result<()>| r.map_err(|e| format!("socket option: {e}"));
        set(tcp.set_read_timeout(Some(timeout)))?;
        set(tcp.set_write_timeout(Some(timeout)))?;
        set(tcp.set_nodelay(true))?;
        let stream = match tls {
            None => Stream::Plain(tcp),
            Some(t) => {
                let conn = rustls::ClientConnection::new(t.config.clone(), t.name.clone())
                    .map_err(|e| format!("TLS: {e}"))?;
                let mut s = rustls::StreamOwned::new(conn, tcp);
                while s.conn.is_handshaking() {
                    s.conn
                        .complete_io(&mut s.sock)
                        .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
                }
                Stream::Tls(Box::new(s))
            }
        };
        Ok(Self {
            stream,
            buf: Vec::new(),
            timeout,
        })
    }

    /// Writes a complete request (head and framed body) and reads one response (interim
    /// `1xx` responses are skipped).
    pub fn send(&mut self, raw: &[u8]) -> Result<Answer, String> {
        self.stream
            .write_all(raw)
            .and_then(|()| self.stream.flush())
            .map_err(|e| format!("write: {e}"))?;
        self.read_response()
    }

    fn read_response(&mut self) -> Result<Answer, String> {
        let deadline = Instant::now() + self.timeout;
        let head = loop {
            match parse_head(&self.buf).map_err(|e| format!("bad response: {}", e.kind()))? {
                Some(h) if (100..200).contains(&h.status) => {
                    self.buf.drain(..h.len);
                }
                Some(h) => break h,
                None if self.buf.len() > MAX_RESPONSE_HEAD => {
                    return Err("response head too large".into());
                }
                None => {
                    if !self.fill(deadline)? {
                        return Err("connection closed before a response".into());
                    }
                }
            }
        };
        self.buf.drain(..head.len);
        let body = match head.framing {
            Framing::None => Vec::new(),
            Framing::Length(n) => {
                if n > MAX_RESPONSE_BODY {
                    return Err("response body too large".into());
                }
                while self.buf.len() < n {
                    if !self.fill(deadline)? {
                        return Err("connection closed inside a response body".into());
                    }
                }
                self.buf.drain(..n).collect()
            }
            Framing::Chunked => {
                let mut dec = ChunkedDecoder::new(MAX_RESPONSE_BODY as u64);
                let mut out = BytesMut::new();
                loop {
                    let (used, progress) = dec
                        .decode(&self.buf, &mut out)
                        .map_err(|_| "bad chunked response".to_owned())?;
                    self.buf.drain(..used);
                    if progress == Progress::Done {
                        break out.to_vec();
                    }
                    if !self.fill(deadline)? {
                        return Err("connection closed inside a chunked body".into());
                    }
                }
            }
            Framing::UntilClose => {
                while self.fill(deadline)? {
                    if self.buf.len() > MAX_RESPONSE_BODY {
                        return Err("response body too large".into());
                    }
                }
                std::mem::take(&mut self.buf)
            }
        };
        Ok(Answer {
            status: head.status,
            body,
            close: head.close || head.framing == Framing::UntilClose,
        })
    }

    /// Reads more bytes; false on EOF.
    fn fill(&mut self, deadline: Instant) -> Result<bool, String> {
        if Instant::now() >= deadline {
            return Err("timed out".into());
        }
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(true);
                }
                // A stop/continue of the process interrupts reads that have a timeout
                // (signal(7)), even without a handler.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                    if Instant::now() >= deadline {
                        return Err("timed out".into());
                    }
                }
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}

/// `GET path` on a fresh connection.
pub fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Answer, String> {
    get_with(addr, path, timeout, None)
}

/// [`get`], over TLS when `tls` is given.
pub fn get_with(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
    tls: Option<&ProbeTls>,
) -> Result<Answer, String> {
    let mut c = Client::connect_with(addr, timeout, tls)?;
    c.send(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes())
}

/// `GET path` answered 200 (for readiness polls).
pub fn is_ok(addr: SocketAddr, path: &str) -> bool {
    is_ok_with(addr, path, None)
}

/// [`is_ok`], over TLS when `tls` is given.
pub fn is_ok_with(addr: SocketAddr, path: &str, tls: Option<&ProbeTls>) -> bool {
    get_with(addr, path, Duration::from_secs(1), tls).is_ok_and(|a| a.status == 200)
}

/// A sink's `/stats` document.
pub fn sink_stats(addr: SocketAddr, records: bool) -> Result<serde_json::Value, String> {
    let path = if records {
        "/stats?records=1"
    } else {
        "/stats"
    };
    let a = get(addr, path, Duration::from_secs(10))?;
    if a.status != 200 {
        return Err(format!("{addr}{path}: status {}", a.status));
    }
    a.json()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn keep_alive_lengths_chunks_and_interim_responses() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            let mut buf = [0u8; 4096];
            for a in [
                &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"[..],
                &b"HTTP/1.1 503 X\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"[..],
                &b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbye"[..],
            ] {
                let n = s.read(&mut buf).expect("read");
                assert!(n > 0);
                s.write_all(a).expect("write");
            }
        });
        let mut c = Client::connect(addr, Duration::from_secs(5)).expect("connect");
        let req = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        let a = c.send(req).expect("first");
        assert_eq!(
            (a.status, a.body.as_slice(), a.close),
            (200, &b"{}"[..], false)
        );
        assert_eq!(a.json().expect("json"), serde_json::json!({}));
        let a = c.send(req).expect("second");
        assert_eq!((a.status, a.body.as_slice()), (503, &b"abc"[..]));
        let a = c.send(req).expect("third");
        assert_eq!(
            (a.status, a.body.as_slice(), a.close),
            (200, &b"bye"[..], true)
        );
        server.join().expect("server");
        assert!(!is_ok(addr, "/"));
    }
}
