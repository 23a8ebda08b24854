//! What the connection loop reads from and writes to: a plain TCP stream or a TLS session
//! over one ([`super::tls::TlsConn`]).

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;

use monoio::BufResult;
use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::util::x509::CertIdentity;

/// Who the client proved to be at the TLS layer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerCert {
    /// Whether it was verified against the configured client CAs (only a verified
    /// certificate may identify a tenant).
    pub verified: bool,
    /// Its subject and subjectAltNames (`None` when they could not be read).
    pub identity: Option<CertIdentity>,
}

pub trait Transport: 'static {
    /// Reads at least one byte into `buf`'s spare capacity (0 = end of stream).
    fn read<T: IoBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>>;
    /// Writes all of `buf`.
    fn write_all<T: IoBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>>;
    /// Waits until a read would make progress, holding no read buffer meanwhile (the
    /// keep-alive idle wait).
    fn wait_readable(&mut self) -> impl Future<Output = io::Result<()>>;
    /// The socket, for `getpeername` and `shutdown`.
    fn raw_fd(&self) -> RawFd;
    /// The client certificate of a TLS session, if one was presented.
    fn peer_cert(&self) -> Option<Rc<PeerCert>> {
        None
    }
    /// Whether cleartext HTTP/2 (h2c) can take this connection over.
    fn h2c_capable(&self) -> bool {
        false
    }
    /// The plain socket, for the HTTP/2 server ([`h2c_capable`](Self::h2c_capable)
    /// transports only).
    fn into_tcp(self) -> Option<TcpStream>
    where
        Self: Sized,
    {
        None
    }
}

impl Transport for TcpStream {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        AsyncReadRent::read(self, buf).await
    }

    async fn write_all<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        AsyncWriteRentExt::write_all(self, buf).await
    }

    // monoio's own future, not wrapped in an `async fn` of ours: it is held by every idle
    // keep-alive connection, and a wrapper would add 16 B to each (docs/performance.md §6).
    fn wait_readable(&mut self) -> impl Future<Output = io::Result<()>> {
        self.readable(false)
    }

    fn raw_fd(&self) -> RawFd {
        self.as_raw_fd()
    }

    fn h2c_capable(&self) -> bool {
        true
    }

    fn into_tcp(self) -> Option<TcpStream> {
        Some(self)
    }
}
