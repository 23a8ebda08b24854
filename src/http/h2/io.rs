//! The byte stream an HTTP/2 connection runs on: the socket driven by completion-based
//! monoio operations (io_uring `recv`/`send`, or the legacy driver's readiness loop), with
//! owned buffers, preceded by bytes the HTTP/1.1 loop had already read (the client
//! preface) or that the h2c upgrade injects (docs/http2.md §8).
//!
//! Reads: one `recv` at a time, appending to the connection's frame buffer
//! ([`Prefixed::poll_fill`], [`Prefixed::buf`]), which starts with the bytes read before.
//! There is no readiness round trip and no read that finds the socket empty.
//!
//! Writes: the connection writes frames straight into [`Prefixed::out`];
//! [`Prefixed::poll_send`] hands that buffer to one `send` (all of it, short writes
//! continued). While that write is in flight, new frames fill a second buffer.
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

use bytes::{Bytes, BytesMut};
use monoio::BufResult;
use monoio::buf::{IoBufMut, SliceMut};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, OwnedReadHalf, OwnedWriteHalf, Splitable,
};
use monoio::net::TcpStream;

/// Size of the read buffer while the connection carries little: a few frames, or one
/// small request. An idle connection holds this much in its pending `recv`.
const READ_BUF_MIN: usize = 16 * 1024;
/// Size of the read buffer after a `recv` filled the smaller one: bodies of many KiB over
/// several streams then arrive in few operations. Back to the minimum after a `recv` that
/// fits in it. Bounded far below what the connection window already lets a client send
/// (`initial_connection_window_size`, docs/http2.md §3).
const READ_BUF_MAX: usize = 64 * 1024;
type ReadOp = Pin<
    Box<
        dyn Future<
            Output = (
                OwnedReadHalf<TcpStream>,
                BufResult<usize, SliceMut<BytesMut>>,
            ),
        >,
    >,
>;
type WriteOp =
    Pin<Box<dyn Future<Output = (OwnedWriteHalf<TcpStream>, BufResult<usize, Vec<u8>>)>>>;

enum Reader {
    /// No `recv` in flight; `buf` holds what was read and not yet consumed.
    Idle {
        half: OwnedReadHalf<TcpStream>,
        buf: BytesMut,
    },
    /// A `recv` in flight, appending to the buffer it owns.
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

/// The socket, with what was read before it became HTTP/2 in front.
pub struct Prefixed {
    reader: Reader,
    writer: Writer,
    /// The peer closed its side: no more `recv`.
    eof: bool,
    /// The last `recv` filled the room it had: more is likely waiting.
    filled: bool,
}

impl Prefixed {
    pub fn new(prefix: Bytes, sock: TcpStream) -> Self {
        let (read, write) = sock.into_split();
        let mut buf = BytesMut::with_capacity(READ_BUF_MIN.max(prefix.len()));
        buf.extend_from_slice(&prefix);
        Self {
            reader: Reader::Idle { half: read, buf },
            writer: Writer {
                half: Some(write),
                op: None,
                pending: Vec::new(),
                spare: Vec::new(),
            },
            eof: false,
            filled: false,
        }
    }

    /// What was read and not yet consumed (the consumer advances it), while no `recv` is
    /// in flight.
    pub fn buf(&mut self) -> Option<&mut BytesMut> {
        match &mut self.reader {
            Reader::Idle { buf, .. } => Some(buf),
            _ => None,
        }
    }

    /// Reads more: submits a `recv` that appends to the buffer when none is in flight, and
    /// waits for it. `Ok(0)` is the end of the stream.
    pub fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        loop {
            match &mut self.reader {
                Reader::Idle { buf, .. } => {
                    if self.eof {
                        return Poll::Ready(Ok(0));
                    }
                    if buf.is_empty() && buf.capacity() > READ_BUF_MAX {
                        // A large frame passed: its room is not kept for the connection.
                        *buf = BytesMut::new();
                    }
                    buf.reserve(if self.filled {
                        READ_BUF_MAX
                    } else {
                        READ_BUF_MIN
                    });
                    let buf = std::mem::take(buf);
                    let Reader::Idle { mut half, .. } =
                        std::mem::replace(&mut self.reader, Reader::Gone)
                    else {
                        continue;
                    };
                    let at = buf.len();
                    self.reader = Reader::Busy(Box::pin(async move {
                        let r = half.read(buf.slice_mut(at..)).await;
                        (half, r)
                    }));
                }
                Reader::Busy(op) => {
                    let (half, (res, slice)) = ready!(op.as_mut().poll(cx));
                    let room = slice.end() - slice.begin();
                    let buf = slice.into_inner();
                    self.reader = Reader::Idle { half, buf };
                    match res {
                        Ok(n) => {
                            self.eof = n == 0;
                            self.filled = n == room;
                            return Poll::Ready(Ok(n));
                        }
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

    /// The bytes waiting to be handed to the next `send`: frames are written here directly.
    pub fn out(&mut self) -> &mut Vec<u8> {
        &mut self.writer.pending
    }

    /// Whether a `send` is in flight.
    pub fn sending(&self) -> bool {
        self.writer.op.is_some()
    }

    /// Moves the output along: finishes the `send` in flight, then hands what is waiting
    /// to the next. Ready once everything written is sent.
    pub fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.writer.poll_flush(cx)
    }

    /// Shuts the write side once everything written is sent.
    pub fn poll_shutdown(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let w = &mut self.writer;
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
}
