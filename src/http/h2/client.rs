//! Outbound HTTP/2 for endpoints with `http2 = true`: one connection per destination and
//! worker carries many requests at once (h2c on `http://`, ALPN `h2` on `https://`).
//!
//! The forwarding stage builds every attempt's head as HTTP/1.1 bytes
//! (`forward::head::build`); here that head becomes the HTTP/2 request (`:authority` from the
//! endpoint, connection-specific fields dropped), so both versions send the same fields.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use monoio::net::TcpStream;
use rustls::pki_types::ServerName;

use super::super::client::{ClientError, ClientResponse, KEPT_BODY};
use super::super::response_head::parse_retry_after;

/// Fields of an HTTP/1.1 head that HTTP/2 forbids or carries elsewhere (RFC 9113 §8.2.2,
/// `host` becomes `:authority`).
const DROPPED: [&str; 7] = [
    "host",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
];
/// Most header fields in one of our own heads (endpoint headers included).
const MAX_HEADERS: usize = 128;

/// What an HTTP/2 endpoint needs to start TLS: a client configuration offering ALPN `h2`
/// and the name to verify.
pub type H2Tls<'a> = (&'a Arc<rustls::ClientConfig>, &'a ServerName<'static>);

/// A live HTTP/2 connection to one endpoint.
pub struct H2Client {
    send: SendRequest<Bytes>,
    closed: Rc<Cell<bool>>,
    pub created: Instant,
    pub last_used: Cell<Instant>,
}

impl H2Client {
    /// Dials `addr`, negotiates TLS with ALPN `h2` when `tls` is given, and runs the
    /// HTTP/2 handshake; the connection is driven by a task of this worker from then on.
    pub async fn connect(
        addr: SocketAddr,
        timeout: Duration,
        tls: Option<H2Tls<'_>>,
    ) -> Result<Self, ClientError> {
        let deadline = Instant::now() + timeout;
        let tcp = match monoio::time::timeout(timeout, TcpStream::connect_addr(addr)).await {
            Err(_) => return Err(ClientError::Timeout),
            Ok(Err(source)) => return Err(ClientError::Connect { addr, source }),
            Ok(Ok(s)) => s,
        };
        let _ = tcp.set_nodelay(true);
        let sock = tcp
            .try_into_poll_io()
            .map_err(|(e, _)| ClientError::Io(e))?;
        let closed = Rc::new(Cell::new(false));
        let send = match tls {
            None => handshake(sock, deadline, closed.clone()).await?,
            Some((config, name)) => {
                let connector = tokio_rustls::TlsConnector::from(config.clone());
                let remaining = deadline.saturating_duration_since(Instant::now());
                let stream =
                    match monoio::time::timeout(remaining, connector.connect(name.clone(), sock))
                        .await
                    {
                        Err(_) => return Err(ClientError::Timeout),
                        Ok(Err(source)) => return Err(ClientError::Tls { addr, source }),
                        Ok(Ok(s)) => s,
                    };
                if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
                    return Err(ClientError::Tls {
                        addr,
                        source: io::Error::other("the server did not negotiate HTTP/2 (ALPN h2)"),
                    });
                }
                handshake(stream, deadline, closed.clone()).await?
            }
        };
        let now = Instant::now();
        Ok(Self {
            send,
            closed,
            created: now,
            last_used: Cell::new(now),
        })
    }

    /// Whether the connection can take another request.
    pub fn is_open(&self) -> bool {
        !self.closed.get()
    }

    /// Sends one request (`head` as HTTP/1.1 bytes, then `body`) and reads its response,
    /// all before `deadline`. Streams run concurrently on the one connection.
    pub async fn request(
        &self,
        head: &[u8],
        body: &[Bytes],
        authority: &str,
        https: bool,
        deadline: Instant,
    ) -> Result<ClientResponse, ClientError> {
        let req = to_h2(head, authority, https)?;
        let ready = self.send.clone().ready();
        let mut send = match monoio::time::timeout_at(deadline.into(), ready).await {
            Err(_) => return Err(ClientError::Timeout),
            Ok(Err(e)) => return Err(h2_error(e, true)),
            Ok(Ok(s)) => s,
        };
        let empty = body.iter().all(Bytes::is_empty);
        let (response, mut stream) = send
            .send_request(req, empty)
            .map_err(|e| h2_error(e, true))?;
        if !empty {
            let last = body.len() - 1;
            for (i, chunk) in body.iter().enumerate() {
                stream
                    .send_data(chunk.clone(), i == last)
                    .map_err(|e| h2_error(e, false))?;
            }
        }
        let resp = match monoio::time::timeout_at(deadline.into(), response).await {
            Err(_) => return Err(ClientError::Timeout),
            Ok(Err(e)) => return Err(h2_error(e, false)),
            Ok(Ok(r)) => r,
        };
        self.last_used.set(Instant::now());
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| parse_retry_after(v.as_bytes()));
        let content_type_json = resp
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        let mut recv = resp.into_body();
        let mut kept = BytesMut::new();
        loop {
            let next = std::future::poll_fn(|cx| recv.poll_data(cx));
            match monoio::time::timeout_at(deadline.into(), next).await {
                Err(_) => return Err(ClientError::Timeout),
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(h2_error(e, false)),
                Ok(Some(Ok(chunk))) => {
                    let _ = recv.flow_control().release_capacity(chunk.len());
                    let room = KEPT_BODY.saturating_sub(kept.len());
                    kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if kept.len() >= KEPT_BODY {
                        // The rest is not needed; dropping `recv` resets the stream.
                        break;
                    }
                }
            }
        }
        Ok(ClientResponse {
            status,
            body: kept.freeze(),
            retry_after,
            content_type_json,
            reusable: true,
        })
    }
}

async fn handshake<T>(
    io: T,
    deadline: Instant,
    closed: Rc<Cell<bool>>,
) -> Result<SendRequest<Bytes>, ClientError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    let hs = h2::client::Builder::new().handshake::<_, Bytes>(io);
    let (send, conn) = match monoio::time::timeout_at(deadline.into(), hs).await {
        Err(_) => return Err(ClientError::Timeout),
        Ok(Err(e)) => return Err(h2_error(e, false)),
        Ok(Ok(p)) => p,
    };
    monoio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "HTTP/2 endpoint connection ended");
        }
        closed.set(true);
    });
    Ok(send)
}

/// Maps an `h2` error. A stream the server refused or never saw (GOAWAY, `REFUSED_STREAM`,
/// or the connection ending before we sent) was not processed: resending it is safe.
fn h2_error(e: h2::Error, before_send: bool) -> ClientError {
    let unprocessed =
        before_send || e.is_go_away() || e.reason() == Some(h2::Reason::REFUSED_STREAM);
    if unprocessed {
        ClientError::Closed(e.to_string())
    } else {
        ClientError::Io(io::Error::other(e))
    }
}

/// The HTTP/2 request of an HTTP/1.1 head built by the forwarding stage.
fn to_h2(head: &[u8], authority: &str, https: bool) -> Result<http::Request<()>, ClientError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut slots);
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(ClientError::Protocol("request head not parsable")),
    }
    let scheme = if https { "https" } else { "http" };
    let uri = format!("{scheme}://{authority}{}", parsed.path.unwrap_or("/"));
    let mut b = http::Request::builder()
        .method(parsed.method.unwrap_or("POST"))
        .uri(uri);
    for h in parsed.headers.iter() {
        let lower = h.name.to_ascii_lowercase();
        if DROPPED.contains(&lower.as_str()) {
            continue;
        }
        b = b.header(lower, h.value);
    }
    b.body(())
        .map_err(|_| ClientError::Protocol("request head not representable in HTTP/2"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_becomes_an_h2_request() {
        let head = b"POST /base/ingest?name=a HTTP/1.1\r\nHost: sink:4040\r\nUser-Agent: pyrogate\r\nContent-Length: 3\r\nConnection: keep-alive\r\nX-Scope-OrgID: t\r\n\r\n";
        let r = to_h2(head, "sink:4040", false).expect("valid");
        assert_eq!(r.method(), "POST");
        assert_eq!(r.uri().to_string(), "http://sink:4040/base/ingest?name=a");
        assert_eq!(
            r.headers().get("x-scope-orgid").map(|v| v.as_bytes()),
            Some(&b"t"[..])
        );
        assert_eq!(
            r.headers().get("content-length").map(|v| v.as_bytes()),
            Some(&b"3"[..])
        );
        assert!(r.headers().get("host").is_none());
        assert!(r.headers().get("connection").is_none());
        assert!(to_h2(b"garbage", "a", true).is_err());
    }
}
