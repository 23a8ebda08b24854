//! Raw HTTP/1.1 over a TCP connection: requests built byte by byte, responses read with a
//! reader that understands `Content-Length` and chunked framing.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::*;

/// A parsed HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// Whether the server announced it closes the connection.
    pub fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }

    /// Asserts the framing every response must have: `Date` and `Content-Length` matching
    /// the body (unless `head_only`).
    pub fn assert_framing(&self) {
        assert!(self.header("date").is_some(), "no Date header: {self:?}");
        let cl: usize = self
            .header("content-length")
            .unwrap_or_else(|| panic!("no Content-Length: {self:?}"))
            .parse()
            .expect("numeric Content-Length");
        assert_eq!(cl, self.body.len(), "Content-Length vs body: {self:?}");
    }
}

/// A raw TCP connection to the gateway with a read buffer (bytes after one response stay
/// for the next, so pipelined responses can be read one by one).
pub struct Conn {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
        })
    }

    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Sends a request: `method path HTTP/1.1`, `Host`, the given headers, a
    /// `Content-Length` unless the headers frame the body themselves, and the body.
    pub fn send_request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<()> {
        let req = build_request(method, path, headers, body);
        self.send(&req)
    }

    /// Sends a request and reads its final response.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<Response> {
        self.send_request(method, path, headers, body)?;
        self.read_final_response(IO_TIMEOUT)
    }

    pub fn get(&mut self, path: &str) -> io::Result<Response> {
        self.request("GET", path, &[], b"")
    }

    /// `/metrics` on this connection (useful when every connection slot is taken).
    pub fn metrics(&mut self) -> Metrics {
        let r = self.get("/metrics").expect("GET /metrics");
        assert_eq!(r.status, 200, "{r:?}");
        Metrics::parse(r.body_str())
    }

    fn fill(&mut self, deadline: Instant) -> io::Result<usize> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "response timed out",
            ));
        }
        self.stream.set_read_timeout(Some(remaining))?;
        let mut chunk = [0u8; 64 * 1024];
        let n = match self.stream.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "response timed out",
                ));
            }
            Err(e) => return Err(e),
        };
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Reads the next response (an interim `100 Continue` included), with its body framed
    /// by `Content-Length`.
    pub fn read_response(&mut self, timeout: Duration) -> io::Result<Response> {
        self.read_response_inner(timeout, false)
    }

    /// Reads the next response to a `HEAD` request (no body follows the head).
    pub fn read_head_response(&mut self, timeout: Duration) -> io::Result<Response> {
        self.read_response_inner(timeout, true)
    }

    /// Reads responses until a final (non-1xx) one.
    pub fn read_final_response(&mut self, timeout: Duration) -> io::Result<Response> {
        let deadline = Instant::now() + timeout;
        for _ in 0..8 {
            let r = self.read_response(deadline.saturating_duration_since(Instant::now()))?;
            if r.status >= 200 {
                return Ok(r);
            }
        }
        Err(io::Error::other("too many interim responses"))
    }

    fn read_response_inner(&mut self, timeout: Duration, head_only: bool) -> io::Result<Response> {
        let deadline = Instant::now() + timeout;
        let (head_len, mut resp, content_length) = loop {
            let mut hs = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut hs);
            match r.parse(&self.buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let headers: Vec<(String, String)> = r
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_string(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect();
                    let resp = Response {
                        status: r.code.unwrap_or(0),
                        reason: r.reason.unwrap_or("").to_string(),
                        headers,
                        body: Vec::new(),
                    };
                    let cl = resp
                        .header("content-length")
                        .map(|v| v.trim().parse::<usize>())
                        .transpose()
                        .map_err(|_| io::Error::other("bad Content-Length"))?;
                    break (n, resp, cl);
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => {
                    return Err(io::Error::other(format!(
                        "bad response head ({e}): {:?}",
                        String::from_utf8_lossy(&self.buf)
                    )));
                }
            }
            if self.fill(deadline)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "connection closed before a complete response head; got {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ),
                ));
            }
        };
        self.buf.drain(..head_len);
        let body_len = if head_only || resp.status < 200 || resp.status == 204 {
            0
        } else {
            content_length.ok_or_else(|| io::Error::other("response without Content-Length"))?
        };
        while self.buf.len() < body_len {
            if self.fill(deadline)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside the body",
                ));
            }
        }
        resp.body = self.buf.drain(..body_len).collect();
        Ok(resp)
    }

    /// Bytes received but not yet consumed by a response read.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Waits until the server closes the connection (EOF or reset), at most `timeout`.
    /// Returns false if it is still open then. Data received meanwhile is kept.
    pub fn wait_closed(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            match self.fill(deadline) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return false,
                Err(_) => return true, // reset
            }
        }
    }

    /// Asserts that nothing arrives (and the connection stays open) for `window`.
    pub fn assert_silent(&mut self, window: Duration, what: &str) {
        let deadline = Instant::now() + window;
        match self.fill(deadline) {
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {}
            Ok(0) => panic!("{what}: connection closed, expected it to stay open and silent"),
            Ok(_) => panic!(
                "{what}: expected silence, got {:?}",
                String::from_utf8_lossy(&self.buf)
            ),
            Err(e) => panic!("{what}: {e}"),
        }
    }

    /// Half-closes the write side.
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

/// A request as bytes; adds `Host` and (unless the headers carry `Content-Length` or
/// `Transfer-Encoding`, or the body is empty) `Content-Length`.
pub fn build_request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut s = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        s.push_str("Host: 127.0.0.1\r\n");
    }
    let framed = headers.iter().any(|(n, _)| {
        n.eq_ignore_ascii_case("content-length") || n.eq_ignore_ascii_case("transfer-encoding")
    });
    for (n, v) in headers {
        s.push_str(&format!("{n}: {v}\r\n"));
    }
    if !framed && !body.is_empty() {
        s.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    s.push_str("\r\n");
    let mut out = s.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Encodes `body` as chunked transfer coding with chunks of `chunk` bytes and optional
/// trailer lines (each without CRLF).
pub fn chunked(body: &[u8], chunk: usize, trailers: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(chunk.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    for t in trailers {
        out.extend_from_slice(t.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}
