//! A TLS server session over a monoio TCP stream, driven by rustls directly.
//!
//! Not `monoio-rustls`'s server stream: that one keeps its socket and session private, so
//! the connection loop could neither wait for readability without a buffer armed (the
//! idle-memory design of [`super::server`]) nor read the client certificate for mTLS
//! tenants. Here the handshake runs on the worker that accepted the connection; the caller
//! bounds it with `server_read_timeout`.
//!
//! Ciphertext is read into a buffer of [`TLS_READ`] bytes and handed to rustls a record at a
//! time (rustls refuses more plaintext than it buffers), plaintext is copied straight from
//! rustls's buffer into the connection's read buffer, and the buffers are released while
//! the connection is idle.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use rustls::ServerConnection;

use super::transport::{PeerCert, Transport};

/// One socket read: two full TLS records (16 KiB of plaintext plus overhead each).
const TLS_READ: usize = 34 * 1024;
/// Write buffers above this are released after use instead of kept.
const KEEP_WRITE: usize = 64 * 1024;
/// What Go's HTTP server answers when the first bytes on a TLS port are an HTTP request.
const PLAIN_HTTP_RESPONSE: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// Why a handshake failed, with the metric label of each reason.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("TLS handshake timed out")]
    Timeout,
    #[error("connection closed during the TLS handshake")]
    Eof,
    #[error("client sent an HTTP request to an HTTPS server")]
    PlainHttp,
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("TLS handshake I/O: {0}")]
    Io(#[from] io::Error),
}

impl HandshakeError {
    /// Every label [`HandshakeError::reason`] can return.
    pub const REASONS: [&'static str; 10] = [
        "timeout",
        "eof",
        "plain_http",
        "no_certificate",
        "bad_certificate",
        "incompatible",
        "alert_received",
        "protocol",
        "io",
        "other",
    ];

    /// A short, bounded label for the failure metric.
    pub fn reason(&self) -> &'static str {
        use rustls::Error as E;
        match self {
            Self::Timeout => "timeout",
            Self::Eof => "eof",
            Self::PlainHttp => "plain_http",
            Self::Io(_) => "io",
            Self::Tls(e) => match e {
                E::NoCertificatesPresented => "no_certificate",
                E::InvalidCertificate(_) | E::InvalidCertRevocationList(_) => "bad_certificate",
                E::PeerIncompatible(_) | E::NoApplicationProtocol => "incompatible",
                E::AlertReceived(_) => "alert_received",
                E::InvalidMessage(_)
                | E::InappropriateMessage { .. }
                | E::InappropriateHandshakeMessage { .. }
                | E::PeerMisbehaved(_)
                | E::DecryptError => "protocol",
                _ => "other",
            },
        }
    }
}

/// Go's check: the first five bytes of a plain HTTP request the server would see.
fn looks_like_http(first: &[u8]) -> bool {
    matches!(
        first.get(..5),
        Some(b"GET /" | b"HEAD " | b"POST " | b"PUT /" | b"OPTIO")
    )
}

pub struct TlsConn {
    tcp: TcpStream,
    session: ServerConnection,
    /// Ciphertext read from the socket; `rbuf[rpos..]` is not yet given to rustls.
    rbuf: Vec<u8>,
    rpos: usize,
    wbuf: Vec<u8>,
    peer: Option<Rc<PeerCert>>,
}

impl TlsConn {
    /// Runs the server handshake on `tcp`. `verified` says whether a presented client
    /// certificate has been checked against the client CAs (the configuration's policy).
    ///
    /// # Errors
    /// The handshake failed; a TLS alert has been sent when rustls had one to send.
    pub async fn accept(
        tcp: TcpStream,
        config: Arc<rustls::ServerConfig>,
        verified: bool,
    ) -> Result<Self, HandshakeError> {
        let session = ServerConnection::new(config)?;
        let mut c = Self {
            tcp,
            session,
            rbuf: Vec::new(),
            rpos: 0,
            wbuf: Vec::new(),
            peer: None,
        };
        let mut first = true;
        while c.session.is_handshaking() {
            if c.session.wants_write() {
                c.flush().await?;
                continue;
            }
            if c.rpos >= c.rbuf.len() {
                if !c.read_socket().await? {
                    return Err(HandshakeError::Eof);
                }
                if first && looks_like_http(&c.rbuf) {
                    let _ = AsyncWriteRentExt::write_all(&mut c.tcp, PLAIN_HTTP_RESPONSE).await;
                    return Err(HandshakeError::PlainHttp);
                }
                first = false;
            }
            if let Err(e) = c.feed() {
                if let HandshakeError::Tls(_) = e {
                    // The alert rustls queued for the client.
                    let _ = c.flush().await;
                }
                return Err(e);
            }
        }
        c.flush().await?;
        c.peer = c
            .session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .map(|leaf| {
                // Read once per connection; a certificate rustls accepted but this reader
                // cannot parse identifies nobody.
                let identity = crate::util::x509::identity(leaf.as_ref()).ok();
                Rc::new(PeerCert { verified, identity })
            });
        Ok(c)
    }

    /// The negotiated protocol version, as a metric label.
    pub fn version(&self) -> &'static str {
        match self.session.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLS13",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLS12",
            _ => "other",
        }
    }

    /// One socket read into `rbuf`; `false` at end of stream (rustls is told).
    async fn read_socket(&mut self) -> io::Result<bool> {
        let mut buf = std::mem::take(&mut self.rbuf);
        buf.clear();
        buf.reserve(TLS_READ);
        let (res, buf) = AsyncReadRent::read(&mut self.tcp, buf).await;
        self.rbuf = buf;
        self.rpos = 0;
        match res? {
            0 => {
                // Marks the end of stream inside rustls: a read then reports a clean
                // close (close_notify seen) or an unexpected EOF.
                let _ = self.session.read_tls(&mut io::empty());
                Ok(false)
            }
            _ => Ok(true),
        }
    }

    /// Gives rustls what it will take of the pending ciphertext and processes it.
    fn feed(&mut self) -> Result<(), HandshakeError> {
        let mut pending = self.rbuf.get(self.rpos..).unwrap_or_default();
        let before = pending.len();
        self.session.read_tls(&mut pending)?;
        self.rpos += before - pending.len();
        self.session.process_new_packets()?;
        Ok(())
    }

    /// Sends everything rustls has queued (records, alerts, tickets).
    async fn flush(&mut self) -> io::Result<()> {
        while self.session.wants_write() {
            let mut out = std::mem::take(&mut self.wbuf);
            out.clear();
            self.session.write_tls(&mut out)?;
            let (res, out) = AsyncWriteRentExt::write_all(&mut self.tcp, out).await;
            if out.capacity() <= KEEP_WRITE {
                self.wbuf = out;
            }
            res?;
        }
        Ok(())
    }

    /// Plaintext already decrypted or ciphertext not yet processed: a read can progress
    /// without the socket.
    fn has_buffered(&mut self) -> bool {
        self.rpos < self.rbuf.len()
            || !matches!(
                io::BufRead::fill_buf(&mut self.session.reader()),
                Err(ref e) if e.kind() == io::ErrorKind::WouldBlock
            )
    }

    async fn read_plain<T: IoBufMut>(&mut self, buf: &mut T) -> io::Result<usize> {
        loop {
            let mut reader = self.session.reader();
            match io::BufRead::fill_buf(&mut reader) {
                Ok(chunk) => {
                    let n = chunk.len().min(buf.bytes_total());
                    // SAFETY: `write_ptr` is valid for `bytes_total` bytes (IoBufMut's
                    // contract) and `chunk` is rustls's own buffer, so they cannot overlap;
                    // `set_init` then covers exactly the bytes written.
                    unsafe {
                        std::ptr::copy_nonoverlapping(chunk.as_ptr(), buf.write_ptr(), n);
                        buf.set_init(n);
                    }
                    io::BufRead::consume(&mut reader, n);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if self.rpos >= self.rbuf.len() {
                self.read_socket().await?;
            }
            if let Err(e) = self.feed() {
                let _ = self.flush().await;
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            // Post-handshake messages (key updates) may want an answer.
            if self.session.wants_write() {
                self.flush().await?;
            }
        }
    }
}

impl Transport for TlsConn {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        let res = self.read_plain(&mut buf).await;
        (res, buf)
    }

    async fn write_all<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: `read_ptr` is valid for `bytes_init` bytes (IoBuf's contract) while `buf`
        // is borrowed here.
        let data = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        let mut done = 0;
        while done < data.len() {
            // rustls takes plaintext up to its buffer limit; what it took is sent before
            // the rest is offered.
            let n = match io::Write::write(&mut self.session.writer(), &data[done..]) {
                Ok(n) => n,
                Err(e) => return (Err(e), buf),
            };
            done += n;
            if let Err(e) = self.flush().await {
                return (Err(e), buf);
            }
            if n == 0 && done < data.len() {
                return (Err(io::ErrorKind::WriteZero.into()), buf);
            }
        }
        (Ok(done), buf)
    }

    async fn wait_readable(&mut self) -> io::Result<()> {
        if self.has_buffered() {
            return Ok(());
        }
        // Idle: hold no buffers.
        self.rbuf = Vec::new();
        self.rpos = 0;
        self.wbuf = Vec::new();
        self.tcp.readable(false).await
    }

    fn raw_fd(&self) -> RawFd {
        self.tcp.as_raw_fd()
    }

    fn peer_cert(&self) -> Option<Rc<PeerCert>> {
        self.peer.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_recognised_like_go() {
        for ok in [
            &b"GET / HTTP/1.1"[..],
            b"POST /ingest",
            b"HEAD /",
            b"PUT /x",
            b"OPTIONS *",
        ] {
            assert!(looks_like_http(ok), "{ok:?}");
        }
        // A TLS ClientHello record starts with 0x16 0x03.
        for no in [&b"\x16\x03\x01\x02\x00"[..], b"GET", b"PRI * HTTP/2.0", b""] {
            assert!(!looks_like_http(no), "{no:?}");
        }
    }

    #[test]
    fn reasons_are_bounded_labels() {
        let cases = [
            HandshakeError::Timeout,
            HandshakeError::Eof,
            HandshakeError::PlainHttp,
            HandshakeError::Tls(rustls::Error::NoCertificatesPresented),
            HandshakeError::Tls(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer,
            )),
            HandshakeError::Tls(rustls::Error::NoApplicationProtocol),
            HandshakeError::Tls(rustls::Error::AlertReceived(
                rustls::AlertDescription::UnknownCA,
            )),
            HandshakeError::Tls(rustls::Error::DecryptError),
            HandshakeError::Io(io::ErrorKind::ConnectionReset.into()),
            HandshakeError::Tls(rustls::Error::General("x".into())),
        ];
        let got: Vec<_> = cases.iter().map(HandshakeError::reason).collect();
        assert_eq!(got, HandshakeError::REASONS);
    }
}
