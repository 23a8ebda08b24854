//! Outbound HTTP/1.1 for the forwarding stage: one keep-alive connection, one request at a
//! time, head and body chunks in a single vectored write (no per-destination body copy, no
//! Nagle stall between head and body).

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use monoio::BufResult;
use monoio::buf::{IoBufMut, IoVecBuf};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use monoio_rustls::{ClientTlsStream, TlsConnector};
use rustls::pki_types::ServerName;

use super::chunked::{ChunkedDecoder, Progress};
use super::response_head::{self, ResponseFraming as Framing};
use crate::util::deadline::Deadline;

/// Largest response head accepted from a downstream.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Response body bytes kept for error messages (Alloy keeps 2048).
pub const KEPT_BODY: usize = 2048;
/// Response body bytes read and discarded to keep the connection reusable; beyond this the
/// connection is closed instead.
const MAX_DRAIN: u64 = 1 << 20;
const READ_CHUNK: usize = 8 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("dial {addr}: {source}")]
    Connect { addr: SocketAddr, source: io::Error },
    #[error("timeout")]
    Timeout,
    #[error("tls handshake with {addr}: {source}")]
    Tls { addr: SocketAddr, source: io::Error },
    /// The connection was closed before any response byte arrived. On a reused connection
    /// this usually means the server closed it while idle, and the request can be resent.
    #[error("connection closed before the response: {0}")]
    Closed(String),
    #[error("io: {0}")]
    Io(io::Error),
    #[error("invalid response: {0}")]
    Protocol(&'static str),
}

impl ClientError {
    /// Whether resending on a fresh connection is safe: nothing came back, so the server
    /// most likely never processed the request.
    pub fn is_stale_connection(&self) -> bool {
        matches!(self, ClientError::Closed(_))
    }
}

#[derive(Debug)]
pub struct ClientResponse {
    pub status: u16,
    /// The first [`KEPT_BODY`] bytes of the body.
    pub body: Bytes,
    pub retry_after: Option<Duration>,
    pub content_type_json: bool,
    /// The connection may carry another request.
    pub reusable: bool,
}

/// Head plus body chunks as one iovec list for `writev`.
struct IoVecs {
    _parts: Vec<Bytes>,
    iovecs: Vec<libc::iovec>,
}

// SAFETY: the iovecs point into `_parts`, which this struct owns and never mutates while the
// runtime holds it; `Bytes` data does not move when the `Vec<Bytes>` itself moves.
unsafe impl IoVecBuf for IoVecs {
    fn read_iovec_ptr(&self) -> *const libc::iovec {
        self.iovecs.as_ptr()
    }
    fn read_iovec_len(&self) -> usize {
        self.iovecs.len()
    }
}

impl IoVecs {
    fn new(parts: Vec<Bytes>) -> Self {
        let iovecs = parts
            .iter()
            .filter(|p| !p.is_empty())
            .map(|p| libc::iovec {
                iov_base: p.as_ptr() as *mut libc::c_void,
                iov_len: p.len(),
            })
            .collect();
        Self {
            _parts: parts,
            iovecs,
        }
    }
}

/// Plain TCP or TLS over TCP.
enum Io {
    Plain(TcpStream),
    Tls(Box<ClientTlsStream<TcpStream>>),
}

// The TLS branches are boxed: their futures are several times the plain ones, and an
// async fn's future is as large as its largest branch, so inline they would make every
// plaintext request's future (copied into each delivery task) that much larger.
impl Io {
    async fn write_all_vectored(&mut self, bufs: IoVecs) -> BufResult<usize, IoVecs> {
        match self {
            Io::Plain(s) => s.write_vectored_all(bufs).await,
            Io::Tls(s) => Box::pin(s.write_vectored_all(bufs)).await,
        }
    }

    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            Io::Plain(s) => s.read(buf).await,
            Io::Tls(s) => Box::pin(s.read(buf)).await,
        }
    }
}

/// What a connection needs to start TLS: the endpoint's connector and verified name.
pub type TlsTarget<'a> = (&'a TlsConnector, &'a ServerName<'static>);

pub struct ClientConn {
    stream: Io,
    buf: BytesMut,
    pub created: Instant,
    pub last_used: Instant,
    pub requests: u32,
}

impl ClientConn {
    pub async fn connect(
        addr: SocketAddr,
        timeout: Duration,
        tls: Option<TlsTarget<'_>>,
    ) -> Result<Self, ClientError> {
        let deadline = Instant::now() + timeout;
        let tcp = match monoio::time::timeout(timeout, TcpStream::connect_addr(addr)).await {
            Err(_) => return Err(ClientError::Timeout),
            Ok(Err(source)) => return Err(ClientError::Connect { addr, source }),
            Ok(Ok(s)) => s,
        };
        let _ = tcp.set_nodelay(true);
        let stream = match tls {
            None => Io::Plain(tcp),
            Some((connector, name)) => {
                let remaining = deadline.saturating_duration_since(Instant::now());
                match monoio::time::timeout(remaining, connector.connect(name.clone(), tcp)).await {
                    Err(_) => return Err(ClientError::Timeout),
                    Ok(Err(e)) => {
                        return Err(ClientError::Tls {
                            addr,
                            source: e.into(),
                        });
                    }
                    Ok(Ok(s)) => Io::Tls(Box::new(s)),
                }
            }
        };
        let now = Instant::now();
        Ok(Self {
            stream,
            buf: BytesMut::new(),
            created: now,
            last_used: now,
            requests: 0,
        })
    }

    /// Sends one request and reads the response, all before `deadline`.
    pub async fn request(
        &mut self,
        head: Bytes,
        body: &[Bytes],
        deadline: Instant,
    ) -> Result<ClientResponse, ClientError> {
        self.requests += 1;
        let mut parts = Vec::with_capacity(body.len() + 1);
        parts.push(head);
        parts.extend(body.iter().cloned());
        let reused = self.requests > 1;
        // One timer for the write and every read of the response (util/deadline.rs).
        let mut deadline = Deadline::new(deadline);
        match deadline
            .run(self.stream.write_all_vectored(IoVecs::new(parts)))
            .await
        {
            None => return Err(ClientError::Timeout),
            Some((Err(e), _)) => {
                return Err(if reused && is_reset(&e) {
                    ClientError::Closed(e.to_string())
                } else {
                    ClientError::Io(e)
                });
            }
            Some((Ok(_), _)) => {}
        }
        let resp = self.read_response(&mut deadline).await;
        self.last_used = Instant::now();
        resp
    }

    async fn fill(&mut self, deadline: &mut Deadline) -> Result<usize, ClientError> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK {
            self.buf.reserve(READ_CHUNK);
        }
        let buf = std::mem::take(&mut self.buf);
        let (len, cap) = (buf.len(), buf.capacity());
        match deadline
            .run(self.stream.read(buf.slice_mut(len..cap)))
            .await
        {
            None => Err(ClientError::Timeout),
            Some((res, slice)) => {
                self.buf = slice.into_inner();
                match res {
                    Ok(n) => Ok(n),
                    Err(e) if is_reset(&e) => Ok(0),
                    Err(e) => Err(ClientError::Io(e)),
                }
            }
        }
    }

    async fn read_response(
        &mut self,
        deadline: &mut Deadline,
    ) -> Result<ClientResponse, ClientError> {
        loop {
            let head = loop {
                match response_head::parse(&self.buf)
                    .map_err(|_| ClientError::Protocol("malformed response head"))?
                {
                    Some(h) => break h,
                    None => {
                        if self.buf.len() > MAX_RESPONSE_HEAD {
                            return Err(ClientError::Protocol("response head too large"));
                        }
                        let n = self.fill(deadline).await?;
                        if n == 0 {
                            return Err(if self.buf.is_empty() {
                                ClientError::Closed("EOF".into())
                            } else {
                                ClientError::Protocol("truncated response head")
                            });
                        }
                    }
                }
            };
            self.buf.advance(head.len);
            if (100..200).contains(&head.status) {
                continue; // 100 Continue and friends precede the real response
            }
            let (body, complete) = self.read_body(head.framing, deadline).await?;
            return Ok(ClientResponse {
                status: head.status,
                body,
                retry_after: head.retry_after,
                content_type_json: head.json,
                reusable: complete && !head.close && head.framing != Framing::UntilClose,
            });
        }
    }

    /// Reads the body, keeping the first [`KEPT_BODY`] bytes. Returns whether the body was
    /// read completely (so the connection can be reused).
    async fn read_body(
        &mut self,
        framing: Framing,
        deadline: &mut Deadline,
    ) -> Result<(Bytes, bool), ClientError> {
        let mut kept = BytesMut::new();
        match framing {
            Framing::None => Ok((kept.freeze(), true)),
            Framing::Length(n) => {
                let mut left = n;
                loop {
                    let take = (self.buf.len() as u64).min(left) as usize;
                    keep(&mut kept, &self.buf[..take]);
                    self.buf.advance(take);
                    left -= take as u64;
                    if left == 0 {
                        return Ok((kept.freeze(), true));
                    }
                    if n - left > MAX_DRAIN {
                        return Ok((kept.freeze(), false));
                    }
                    if self.fill(deadline).await? == 0 {
                        return Err(ClientError::Protocol("truncated response body"));
                    }
                }
            }
            Framing::Chunked => {
                let mut dec = ChunkedDecoder::new(MAX_DRAIN);
                let mut out = BytesMut::new();
                loop {
                    let (used, p) = dec
                        .decode(&self.buf, &mut out)
                        .map_err(|_| ClientError::Protocol("bad chunked response"))?;
                    self.buf.advance(used);
                    keep(&mut kept, &out);
                    out.clear();
                    if p == Progress::Done {
                        return Ok((kept.freeze(), true));
                    }
                    if self.fill(deadline).await? == 0 {
                        return Err(ClientError::Protocol("truncated chunked response"));
                    }
                }
            }
            Framing::UntilClose => {
                let mut total = 0u64;
                loop {
                    keep(&mut kept, &self.buf);
                    total += self.buf.len() as u64;
                    self.buf.clear();
                    if total > MAX_DRAIN || self.fill(deadline).await? == 0 {
                        return Ok((kept.freeze(), false));
                    }
                }
            }
        }
    }
}

fn keep(kept: &mut BytesMut, data: &[u8]) {
    let room = KEPT_BODY.saturating_sub(kept.len());
    kept.extend_from_slice(&data[..data.len().min(room)]);
}

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_bounded_prefix() {
        let mut k = BytesMut::new();
        keep(&mut k, &[1u8; 3000]);
        keep(&mut k, &[2u8; 10]);
        assert_eq!(k.len(), KEPT_BODY);
    }
}
