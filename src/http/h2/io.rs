//! The byte stream an HTTP/2 connection runs on: the socket driven by completion-based
//! monoio operations (io_uring `recv`/`send`, or the legacy driver's readiness loop), with
//! owned buffers, presented as the `AsyncRead`/`AsyncWrite` the `h2` crate drives, and
//! preceded by bytes the HTTP/1.1 loop had already read (the client preface) or that the
//! h2c upgrade injects (docs/http2.md §8).
//!
//! Reads: one `recv` at a time into an owned buffer; `poll_read` copies from it. A read
//! that finds the buffer empty submits the next `recv` and waits for its completion, so
//! there is no readiness round trip and no read that finds the socket empty.
//!
//! Writes: `poll_write` copies into an owned buffer and returns at once while it has room;
//! `poll_flush` hands the buffer to one `send` (all of it, short writes continued) and
//! waits for it. While that write is in flight, new writes fill a second buffer.
//!
//! Cancellation: an operation in flight owns its buffer (and a handle on the socket).
//! Dropping the connection drops the operation's future; monoio keeps the buffer alive
//! until the kernel is done with it and, with its `async-cancel` feature (Cargo.toml),
//! submits an `ASYNC_CANCEL` for it, so a `recv` waiting on a silent peer does not keep
//! the socket open.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use monoio::BufResult;
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable,
};
use monoio::net::TcpStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Size of the read buffer while the connection carries little: a few frames, or one
/// small request. An idle connection holds this much in its pending `recv`.
const READ_BUF_MIN: usize = 16 * 1024;
/// Size of the read buffer after a `recv` filled the smaller one: bodies of many KiB over
/// several streams then arrive in few operations. Back to the minimum after a `recv` that
/// fits in it. Bounded far below what the connection window already lets a client make
/// `h2` buffer (`initial_connection_window_size`, docs/http2.md §3).
const READ_BUF_MAX: usize = 64 * 1024;
/// Bytes `poll_write` accepts into the buffer waiting to be sent before it makes the
/// caller wait for the write in flight: with the buffer in flight, at most twice this is
/// held per connection.
const WRITE_BUF_MAX: usize = 64 * 1024;

type ReadOp = Pin<Box<dyn Future<Output = (OwnedReadHalf<TcpStream>, BufResult<usize, Vec<u8>>)>>>;
type WriteOp =
    Pin<Box<dyn Future<Output = (OwnedWriteHalf<TcpStream>, BufResult<usize, Vec<u8>>)>>>;

enum Reader {
    /// No `recv` in flight; `buf[pos..]` is data not yet served.
    Idle {
        half: OwnedReadHalf<TcpStream>,
        buf: Vec<u8>,
        pos: usize,
    },
    /// A `recv` in flight, owning the buffer.
    Busy(ReadOp),
    /// The socket half is gone (only while a transition panicked).
    Gone,
}

struct Writer {
    /// The socket half while no write is in flight.
    half: Option<OwnedWriteHalf<TcpStream>>,
    /// The write in flight, owning the other buffer.
    op: Option<WriteOp>,
    /// Bytes accepted and not yet handed to a write.
    pending: Vec<u8>,
    /// The buffer the last write returned, reused for the next `pending`.
    spare: Vec<u8>,
}

/// The socket with `prefix` served before anything read from it.
pub struct Prefixed {
    prefix: Bytes,
    reader: Reader,
    writer: Writer,
    /// The peer closed its side: reads return end of stream without a `recv`.
    eof: bool,
}

impl Prefixed {
    pub fn new(prefix: Bytes, sock: TcpStream) -> Self {
        let (read, write) = sock.into_split();
        Self {
            prefix,
            reader: Reader::Idle {
                half: read,
                buf: Vec::new(),
                pos: 0,
            },
            writer: Writer {
                half: Some(write),
                op: None,
                pending: Vec::new(),
                spare: Vec::new(),
            },
            eof: false,
        }
    }

    /// Reads from the socket (not the prefix) into `out`'s spare capacity.
    pub fn poll_read_socket(
        &mut self,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            match &mut self.reader {
                Reader::Idle { buf, pos, .. } => {
                    if *pos < buf.len() {
                        let n = (buf.len() - *pos).min(out.remaining());
                        out.put_slice(&buf[*pos..*pos + n]);
                        *pos += n;
                        return Poll::Ready(Ok(()));
                    }
                    if self.eof || out.remaining() == 0 {
                        return Poll::Ready(Ok(()));
                    }
                    // The last `recv` filled the buffer: more is likely waiting.
                    let want = if buf.len() == buf.capacity() && !buf.is_empty() {
                        READ_BUF_MAX
                    } else {
                        READ_BUF_MIN
                    };
                    let mut buf = std::mem::take(buf);
                    if buf.capacity() != want {
                        buf = Vec::with_capacity(want);
                    }
                    buf.clear();
                    let Reader::Idle { mut half, .. } =
                        std::mem::replace(&mut self.reader, Reader::Gone)
                    else {
                        continue;
                    };
                    self.reader = Reader::Busy(Box::pin(async move {
                        let r = half.read(buf).await;
                        (half, r)
                    }));
                }
                Reader::Busy(op) => {
                    let (half, (res, buf)) = ready!(op.as_mut().poll(cx));
                    self.reader = Reader::Idle { half, buf, pos: 0 };
                    match res {
                        Ok(0) => {
                            self.eof = true;
                            return Poll::Ready(Ok(()));
                        }
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Poll::Ready(Err(e)),
                    }
                }
                Reader::Gone => {
                    return Poll::Ready(Err(io::Error::other("HTTP/2 socket reader lost")));
                }
            }
        }
    }

    /// Puts `bytes` before whatever is still to be served.
    pub fn unread(&mut self, bytes: Bytes) {
        if self.prefix.is_empty() {
            self.prefix = bytes;
        } else {
            let mut joined = Vec::with_capacity(bytes.len() + self.prefix.len());
            joined.extend_from_slice(&bytes);
            joined.extend_from_slice(&self.prefix);
            self.prefix = joined.into();
        }
    }

    /// Takes the prefix still unserved.
    pub fn take_prefix(&mut self) -> Bytes {
        std::mem::take(&mut self.prefix)
    }
}

impl Writer {
    /// Waits for the write in flight, if any, and takes its buffer back.
    fn poll_op(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(op) = self.op.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        let (half, (res, mut buf)) = ready!(op.as_mut().poll(cx));
        self.op = None;
        self.half = Some(half);
        buf.clear();
        self.spare = buf;
        Poll::Ready(res.map(|_| ()))
    }

    /// Hands `pending` to a write. The caller made sure none is in flight.
    fn submit(&mut self) -> io::Result<()> {
        let Some(mut half) = self.half.take() else {
            return Err(io::Error::other("HTTP/2 socket writer lost"));
        };
        let buf = std::mem::replace(&mut self.pending, std::mem::take(&mut self.spare));
        self.op = Some(Box::pin(async move {
            let r = half.write_all(buf).await;
            (half, r)
        }));
        Ok(())
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.poll_op(cx))?;
            if self.pending.is_empty() {
                return Poll::Ready(Ok(()));
            }
            self.submit()?;
        }
    }

    /// Room for at least one byte in `pending`, waiting for the write in flight when full.
    fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.pending.len() >= WRITE_BUF_MAX {
            ready!(self.poll_op(cx))?;
            self.submit()?;
        }
        Poll::Ready(Ok(WRITE_BUF_MAX - self.pending.len()))
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        this.poll_read_socket(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let w = &mut self.get_mut().writer;
        let room = ready!(w.poll_room(cx))?;
        let n = room.min(buf.len());
        w.pending.extend_from_slice(&buf[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let w = &mut self.get_mut().writer;
        let mut room = ready!(w.poll_room(cx))?;
        let mut n = 0;
        for b in bufs {
            let take = room.min(b.len());
            w.pending.extend_from_slice(&b[..take]);
            n += take;
            room -= take;
            if room == 0 {
                break;
            }
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().writer.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let w = &mut self.get_mut().writer;
        ready!(w.poll_flush(cx))?;
        let Some(half) = w.half.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        // TcpStream's shutdown is a plain `shutdown(SHUT_WR)`, done before its future is
        // first polled: it is ready at once.
        let fut = std::pin::pin!(half.shutdown());
        fut.poll(cx)
    }
}
