//! The inbound HTTP/1.1 connection loop: keep-alive, pipelining, `Content-Length` and
//! chunked bodies, `Expect: 100-continue`, header/body limits and the three server timeouts.
//!
//! The loop is generic over a [`Service`] so that the gateway and the load generator's sink
//! share one hardened implementation.
//!
//! Memory per idle connection is kept small on purpose: between requests the connection waits
//! for readability without a read buffer armed (an io_uring recv armed with a buffer would pin
//! that buffer for as long as the client stays idle), read and write buffers are released
//! before that wait, and the per-request state machine is boxed so that it is allocated only
//! while a request is being served.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use monoio::buf::IoBufMut;
use monoio::net::TcpStream;

use super::chunked::{ChunkedDecoder, ChunkedError, Progress};
use super::h2::{self as http2, Setup};
use super::head::{
    BodyFraming, HeadError, Method, RequestHead, find_head_end, leading_empty_lines,
};
use super::response::Response;
pub use super::service::{Admission, ConnEnv, ConnLimits, Request, Service};
use super::transport::Transport;
use crate::metrics::RejectReason;
use crate::util::coarse_timer::CoarseSleep;
#[cfg(test)]
use crate::util::notify::LocalSignal;

/// First read of a request: enough for any SDK's head plus a small body.
const FIRST_READ: usize = 4096;
/// Smallest spare capacity offered to a read while a body streams in.
const MIN_READ: usize = 16 * 1024;
/// Largest single read while a chunked body streams in.
const MAX_READ: usize = 256 * 1024;
/// Buffers above this are released between requests instead of kept for the next one.
const KEEP_BUFFER: usize = 64 * 1024;
/// Most a `Content-Length` body gets reserved before its bytes arrive. The declared length
/// is only the client's claim: reserving all of it at once let connections that each
/// declare `max_request_body` (256 MiB) and send 1000 bytes hold 256 MiB of address space
/// and ~2.7 MB of RSS each (measured: 100 such connections, +268 MB), i.e. tens of GB at
/// `conn_limit`. Most profiles (0.5 - 50 KiB) still arrive into one allocation.
const MAX_BODY_PRESIZE: usize = 64 * 1024;
/// After an error response that leaves request bytes unread, keep reading (and discarding)
/// this long before closing, so the client sees the response rather than a reset.
const LINGER: Duration = Duration::from_millis(500);
const LINGER_BYTES: usize = 4 << 20;

enum ReadOutcome {
    Data,
    Eof,
    TimedOut,
    Failed,
}

/// A connection while it serves requests: the stream (owned by the connection's task) and
/// the buffers, which exist only between the first byte of a request and the moment the
/// connection goes idle again.
struct Conn<'s, T: Transport> {
    stream: &'s mut T,
    buf: BytesMut,
    out: Vec<u8>,
}

impl<T: Transport> Conn<'_, T> {
    /// Reads at least one byte into spare capacity of at least `want` bytes. On
    /// `TimedOut` the buffer (and what it held) is gone: the cancelled read owned it.
    async fn read_more(&mut self, want: usize, deadline: Instant) -> ReadOutcome {
        if self.buf.capacity() - self.buf.len() < want {
            self.buf.reserve(want);
        }
        let buf = std::mem::take(&mut self.buf);
        let len = buf.len();
        let cap = buf.capacity();
        let slice = buf.slice_mut(len..cap);
        let remaining = deadline.saturating_duration_since(Instant::now());
        match monoio::time::timeout(remaining, self.stream.read(slice)).await {
            Err(_) => ReadOutcome::TimedOut,
            Ok((res, slice)) => {
                self.buf = slice.into_inner();
                match res {
                    Ok(0) => ReadOutcome::Eof,
                    Ok(_) => ReadOutcome::Data,
                    Err(_) => ReadOutcome::Failed,
                }
            }
        }
    }

    async fn write_response(
        &mut self,
        resp: &Response,
        head_only: bool,
        deadline: Instant,
    ) -> bool {
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        resp.write_to(&mut out, head_only);
        let remaining = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100));
        let ok = match monoio::time::timeout(remaining, self.stream.write_all(out)).await {
            Ok((Ok(_), buf)) => {
                out = buf;
                true
            }
            Ok((Err(_), buf)) => {
                out = buf;
                false
            }
            Err(_) => return false,
        };
        if out.capacity() <= KEEP_BUFFER {
            self.out = out;
        }
        ok
    }

    /// Half-closes and discards what the client still sends, for a bounded time, so that
    /// an early error response is read before the kernel resets the connection.
    async fn linger_close(mut self) {
        // SAFETY: shutdown(2) on a socket we own; failure is harmless.
        unsafe {
            libc::shutdown(self.stream.raw_fd(), libc::SHUT_WR);
        }
        let deadline = Instant::now() + LINGER;
        let mut discarded = 0;
        while discarded < LINGER_BYTES {
            self.buf.clear();
            match self.read_more(64 * 1024, deadline).await {
                ReadOutcome::Data => discarded += self.buf.len(),
                _ => break,
            }
        }
    }
}

/// Serves one connection until the client closes it, a timeout fires, or the worker drains.
/// `guard` (e.g. the connection-quota permit) is dropped when the connection ends; taking it
/// here, rather than in a wrapping task, keeps one connection one small future.
/// The stream is expected ready for request/response traffic ([`prepare_stream`]).
///
/// Not an `async fn`: an async fn's future keeps its arguments twice, once as they were
/// passed and once in the locals they are moved into (rust-lang/rust#62958), and this
/// future is what every idle keep-alive connection is. The `async move` block below owns its
/// captures once. While idle the future holds the stream, three `Rc`s, the age, and
/// [`IdleWait`]; everything a request needs lives in the boxed [`serve_busy`] future, which
/// exists only while requests are being served (the type sizes are in docs/performance.md §6
/// and checked by `idle_connection_future_stays_small` below).
pub fn serve_conn<S: Service, G: 'static, T: Transport>(
    mut stream: T,
    svc: Rc<S>,
    env: Rc<ConnEnv>,
    guard: G,
) -> impl Future<Output = ()> + 'static {
    let age = Age::new(&env);
    async move {
        // Captured (dropped with this future), but not moved into a second local.
        let _ = &guard;
        let (setup, buf) = loop {
            if env.drain.is_fired() {
                return;
            }
            // Wait for the next request holding no read or write buffer: an idle keep-alive
            // connection is then just its socket and this small future. Awaited by value, so
            // that the wait is stored once, in place.
            let deadline = Instant::now() + env.limits.get().idle_timeout;
            let readable = IdleWait {
                readable: stream.wait_readable(),
                deadline: env.idle_timer.sleep_until(deadline),
            }
            .await;
            if !readable {
                return;
            }
            // Boxed: the request state machine is large (~2.5 KiB) and must not be part of
            // every idle connection's future.
            match Box::pin(serve_busy(&mut stream, &svc, &env, age)).await {
                Busy::Idle => {}
                Busy::Closed => return,
                Busy::Http2(setup, buf) => break (setup, buf),
            }
        };
        // The connection speaks HTTP/2 from here on (out of the loop: a `match` arm that
        // awaited would keep the matched `Busy` in every state of this future).
        let age_at = age.deadline(&env, env.limits.get());
        if let Some(sock) = stream.into_tcp() {
            Box::pin(http2::serve(sock, buf.freeze(), setup, svc, env, age_at)).await;
        }
    }
}

/// When a connection was opened and how its `max_age` is jittered: the age limit is read
/// from the (reloadable) limits at every request, the jitter is drawn once per connection.
/// 8 B (milliseconds on [`ConnEnv::now_ms`]'s clock and an `f32`) where an `Instant` and an
/// `f64` took 24: every idle keep-alive connection's future holds one
/// (docs/performance.md §6).
#[derive(Clone, Copy)]
struct Age {
    opened_ms: u32,
    /// In (1 - `max_age_jitter`, 1]; an `f32` is precise to well under a second a day.
    factor: f32,
}

impl Age {
    fn new(env: &ConnEnv) -> Self {
        Self {
            opened_ms: env.now_ms(),
            factor: (1.0 - env.limits.get().max_age_jitter * crate::util::rand::unit()) as f32,
        }
    }

    /// This connection's `max_age` under `limits` (`None`: no age limit) and its age now.
    fn max_and_age(self, env: &ConnEnv, limits: ConnLimits) -> Option<(Duration, Duration)> {
        let max_age = limits.max_age.mul_f64(f64::from(self.factor));
        if max_age.is_zero() {
            return None;
        }
        let age = Duration::from_millis(u64::from(env.now_ms().wrapping_sub(self.opened_ms)));
        Some((max_age, age))
    }

    /// Whether the connection is too old under `limits` (one clock read, per request).
    fn too_old(self, env: &ConnEnv, limits: ConnLimits) -> bool {
        self.max_and_age(env, limits)
            .is_some_and(|(max_age, age)| age >= max_age)
    }

    /// The moment the connection is too old under `limits` (`None`: no age limit).
    fn deadline(self, env: &ConnEnv, limits: ConnLimits) -> Option<Instant> {
        let (max_age, age) = self.max_and_age(env, limits)?;
        let now = Instant::now();
        Some((now + max_age).checked_sub(age).unwrap_or(now))
    }
}

/// The keep-alive wait: resolves `true` when the stream is readable, `false` when the idle
/// deadline passes, the worker drains (which cuts the idle timer's waits short,
/// [`ConnEnv::start_drain`]), or the socket fails. A hand-written future rather than
/// `select!`, which keeps a completion flag, an output slot and a `PollFn` beside the
/// futures.
struct IdleWait<R> {
    readable: R,
    deadline: CoarseSleep,
}

impl<R: Future<Output = io::Result<()>>> Future for IdleWait<R> {
    type Output = bool;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        // SAFETY: `readable` is structurally pinned: it is never moved out of `self` (this
        // type has no `Drop` impl and no other method reaches it), so pinning `self` pins it.
        // The other field is `Unpin` and is only reached through `&mut`.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above; `this.readable` stays in place until `self` is dropped.
        let readable = unsafe { Pin::new_unchecked(&mut this.readable) };
        // Readability first: a request that arrived together with the deadline or the drain
        // is served (with `Connection: close` when draining) rather than reset.
        if let Poll::Ready(r) = readable.poll(cx) {
            return Poll::Ready(r.is_ok());
        }
        if Pin::new(&mut this.deadline).poll(cx).is_ready() {
            return Poll::Ready(false);
        }
        Poll::Pending
    }
}

/// How a busy connection continues.
enum Busy {
    /// Every request received so far is answered and nothing is buffered: wait for more.
    Idle,
    Closed,
    /// The connection speaks HTTP/2 from here on; what was read past the HTTP/1.1 part.
    Http2(Setup, BytesMut),
}

/// Serves requests from the first byte of one until the connection is idle again (all
/// pipelined requests answered), closes, or switches to HTTP/2. The read and write buffers
/// live here and are freed when it returns.
async fn serve_busy<S: Service, T: Transport>(
    stream: &mut T,
    svc: &Rc<S>,
    env: &ConnEnv,
    age: Age,
) -> Busy {
    let mut c = Conn {
        stream,
        buf: BytesMut::new(),
        out: Vec::new(),
    };
    loop {
        let limits = env.limits.get();
        let started = Instant::now();
        let too_old = age.too_old(env, limits);
        match serve_one(&mut c, svc, env, limits, started, too_old).await {
            Next::KeepAlive if c.buf.is_empty() => return Busy::Idle,
            // Pipelined: the next request's bytes are here already.
            Next::KeepAlive => {}
            Next::Close => return Busy::Closed,
            Next::Linger => {
                c.linger_close().await;
                return Busy::Closed;
            }
            Next::Http2(setup) => return Busy::Http2(setup, c.buf),
        }
    }
}

enum Next {
    KeepAlive,
    Close,
    Linger,
    /// The connection speaks HTTP/2 from here on.
    Http2(Setup),
}

async fn serve_one<S: Service, T: Transport>(
    c: &mut Conn<'_, T>,
    svc: &Rc<S>,
    env: &ConnEnv,
    limits: ConnLimits,
    started: Instant,
    too_old: bool,
) -> Next {
    let read_deadline = started + limits.read_timeout;
    // --- head ---
    let mut scanned = 0;
    let head_end = loop {
        if scanned == 0 {
            // RFC 9112 §2.2: empty lines before the request-line are ignored (an old
            // client's CRLF after a body). When that was all there was, go back to the
            // idle wait rather than hold the request state.
            let empty = leading_empty_lines(&c.buf);
            if empty > 0 {
                c.buf.advance(empty);
                if c.buf.is_empty() {
                    return Next::KeepAlive;
                }
            }
        }
        if let Some(end) = find_head_end(&c.buf, scanned) {
            break end;
        }
        if c.buf.len() >= limits.max_header_bytes {
            return head_too_large(c, svc, limits.max_header_bytes).await;
        }
        // A lone CR may be the start of an empty line: look at it again with what follows.
        scanned = if c.buf[..] == b"\r"[..] {
            0
        } else {
            c.buf.len()
        };
        let want = if c.buf.is_empty() {
            FIRST_READ
        } else {
            MIN_READ.min(limits.max_header_bytes)
        };
        // A timed-out read drops the buffer it was given (the read owned it), so whether
        // part of a head had arrived must be known before the read.
        let partial = !c.buf.is_empty();
        match c.read_more(want, read_deadline).await {
            ReadOutcome::Data => {}
            ReadOutcome::TimedOut if partial => {
                return fail(c, svc, RejectReason::ReadTimeout, 408, "request timeout").await;
            }
            _ => return Next::Close,
        }
    };
    if head_end > limits.max_header_bytes {
        return head_too_large(c, svc, limits.max_header_bytes).await;
    }
    if head_end == http2::upgrade::PREFACE_HEAD.len()
        && c.buf.starts_with(http2::upgrade::PREFACE_HEAD)
        && limits.http2.is_some()
        && c.stream.h2c_capable()
    {
        return Next::Http2(Setup::PriorKnowledge);
    }
    let head_bytes = c.buf.split_to(head_end).freeze();
    // Every refusal of a head closes the connection: after a malformed head the framing
    // of whatever follows cannot be trusted.
    let head = match RequestHead::parse(head_bytes).and_then(|h| h.check_host().map(|()| h)) {
        Ok(h) => h,
        Err(e) => return fail(c, svc, e.reason(), e.status(), &e.to_string()).await,
    };
    let head_only = head.method == Method::Head;
    let (route, max_body) = match svc.admit(&head) {
        Admission::Accept { route, max_body } => (route, max_body),
        Admission::Respond { route, response } => {
            return respond_early(c, svc, &head, &route, response, started, limits).await;
        }
    };
    // --- body ---
    let body = match head.framing {
        BodyFraming::None => Bytes::new(),
        BodyFraming::Length(n) => {
            if n > max_body {
                return fail_body(c, svc, &route, BodyFailure::TooLarge, started).await;
            }
            let n = n as usize;
            if head.expect_continue && c.buf.len() < n && !send_continue(c, read_deadline).await {
                return Next::Close;
            }
            // The body stays one contiguous buffer, split off without a copy. Only up to
            // MAX_BODY_PRESIZE is reserved on the client's word; beyond that the buffer
            // grows as bytes arrive (see `grow_for_body`).
            let presize = n.min(MAX_BODY_PRESIZE);
            if c.buf.capacity() < presize {
                c.buf.reserve(presize - c.buf.len());
            }
            while c.buf.len() < n {
                let want = grow_for_body(&mut c.buf, n);
                match c.read_more(want, read_deadline).await {
                    ReadOutcome::Data => {}
                    ReadOutcome::TimedOut => {
                        return fail_body(c, svc, &route, BodyFailure::TimedOut, started).await;
                    }
                    _ => return Next::Close,
                }
            }
            c.buf.split_to(n).freeze()
        }
        BodyFraming::Chunked => {
            if head.expect_continue && !send_continue(c, read_deadline).await {
                return Next::Close;
            }
            match read_chunked(c, max_body, read_deadline).await {
                Ok(b) => b,
                Err(Some(why)) => return fail_body(c, svc, &route, why, started).await,
                Err(None) => return Next::Close,
            }
        }
    };
    if limits.http2.is_some()
        && c.stream.h2c_capable()
        && http2::upgrade::wants_h2c(&head)
        && let Some(frames) = http2::upgrade::stream_one(&head, &body)
    {
        let remaining = read_deadline.saturating_duration_since(Instant::now());
        return match monoio::time::timeout(remaining, c.stream.write_all(http2::upgrade::SWITCHING))
            .await
        {
            Ok((Ok(_), _)) => Next::Http2(Setup::Upgrade(frames)),
            _ => Next::Close,
        };
    }
    let deadline = Instant::now() + limits.write_timeout;
    let body_len = body.len() as u64;
    let keep_alive = head.keep_alive;
    let http10 = head.minor_version == 0;
    let admitted = route.clone();
    let req = Request {
        head,
        body,
        route,
        received_at: started,
        deadline,
        fd: c.stream.raw_fd(),
        peer_cert: c.stream.peer_cert(),
    };
    // Boxed so that the (possibly large) service future does not inflate every idle
    // connection's state.
    let resp = match monoio::time::timeout_at(deadline.into(), Box::pin(svc.call(req))).await {
        Ok(r) => r,
        Err(_) => {
            svc.rejected(RejectReason::WriteTimeout);
            svc.error_response(
                Some(&admitted),
                RejectReason::WriteTimeout,
                503,
                "Service Unavailable",
            )
            .header("Retry-After", "1")
            .closing()
        }
    };
    let close = resp.close || !keep_alive || env.drain.is_fired() || too_old;
    let resp = persistence(resp, close, http10);
    let status = resp.status;
    let written = c.write_response(&resp, head_only, deadline).await;
    svc.record(Some(&admitted), status, started.elapsed(), body_len);
    if !written || close {
        return Next::Close;
    }
    Next::KeepAlive
}

/// Marks how the connection continues after `resp`: `Connection: close` when the server
/// closes, and `Connection: keep-alive` when an HTTP/1.0 client asked to keep it open (a
/// 1.0 client assumes close unless the response says otherwise, RFC 9112 §C.2.2).
fn persistence(resp: Response, close: bool, http10: bool) -> Response {
    if close {
        if resp.close { resp } else { resp.closing() }
    } else if http10 {
        resp.header("Connection", "keep-alive")
    } else {
        resp
    }
}

/// Makes room for more of a `Content-Length` body of `n` bytes and returns how much to
/// read: when the buffer is full it doubles (never past the body), so memory stays within
/// about twice what the client actually sent, and a large body costs a few reallocations
/// (amortised one copy) instead of an up-front reservation of its declared size.
fn grow_for_body(buf: &mut BytesMut, n: usize) -> usize {
    let len = buf.len();
    if buf.capacity() == len {
        let target = n
            .min(len.saturating_mul(2))
            .max(len + MIN_READ.min(n - len));
        buf.reserve(target - len);
    }
    (buf.capacity() - len).min(n - len).clamp(1, MAX_READ)
}

async fn send_continue<T: Transport>(c: &mut Conn<'_, T>, deadline: Instant) -> bool {
    const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";
    let remaining = deadline.saturating_duration_since(Instant::now());
    matches!(
        monoio::time::timeout(remaining, c.stream.write_all(CONTINUE)).await,
        Ok((Ok(_), _))
    )
}

/// Why a body could not be read; each is answered with its own status and reason.
#[derive(Debug, Clone, Copy)]
enum BodyFailure {
    TooLarge,
    Malformed,
    TimedOut,
}

impl BodyFailure {
    fn parts(self) -> (RejectReason, u16, &'static str) {
        match self {
            BodyFailure::TooLarge => (RejectReason::BodyTooLarge, 413, "request body too large"),
            BodyFailure::Malformed => (RejectReason::BadRequest, 400, "malformed chunked body"),
            BodyFailure::TimedOut => (RejectReason::ReadTimeout, 408, "request timeout"),
        }
    }
}

async fn fail_body<S: Service, T: Transport>(
    c: &mut Conn<'_, T>,
    svc: &Rc<S>,
    route: &S::Route,
    why: BodyFailure,
    started: Instant,
) -> Next {
    let (reason, status, msg) = why.parts();
    fail_route(c, svc, Some(route), reason, status, msg, Some(started)).await
}

/// Reads a chunked body; `Err(None)` means the client went away.
async fn read_chunked<T: Transport>(
    c: &mut Conn<'_, T>,
    max_body: u64,
    deadline: Instant,
) -> Result<Bytes, Option<BodyFailure>> {
    let mut dec = ChunkedDecoder::new(max_body);
    let mut body = BytesMut::new();
    loop {
        if !c.buf.is_empty() {
            let (used, progress) = dec.decode(&c.buf, &mut body).map_err(|e| match e {
                ChunkedError::TooLarge => Some(BodyFailure::TooLarge),
                ChunkedError::Invalid => Some(BodyFailure::Malformed),
            })?;
            c.buf.advance(used);
            if progress == Progress::Done {
                return Ok(body.freeze());
            }
        }
        if c.buf.is_empty() && c.buf.capacity() > KEEP_BUFFER {
            c.buf = BytesMut::new();
        }
        match c.read_more(MIN_READ, deadline).await {
            ReadOutcome::Data => {}
            ReadOutcome::TimedOut => return Err(Some(BodyFailure::TimedOut)),
            _ => return Err(None),
        }
    }
}

/// Answers an admission-time rejection. If the request carries a body that is already
/// fully buffered it is skipped and the connection kept; otherwise the connection closes
/// (reading an unwanted body could take as long as the body is large).
async fn respond_early<S: Service, T: Transport>(
    c: &mut Conn<'_, T>,
    svc: &Rc<S>,
    head: &RequestHead,
    route: &S::Route,
    resp: Response,
    started: Instant,
    limits: ConnLimits,
) -> Next {
    let skip = match head.framing {
        BodyFraming::None => Some(0),
        BodyFraming::Length(n) if (n as usize) <= c.buf.len() => Some(n as usize),
        _ => None,
    };
    let close = skip.is_none() || !head.keep_alive || resp.close;
    let resp = persistence(resp, close, head.minor_version == 0);
    if let Some(n) = skip {
        c.buf.advance(n);
    }
    let status = resp.status;
    let deadline = Instant::now() + limits.write_timeout;
    let ok = c
        .write_response(&resp, head.method == Method::Head, deadline)
        .await;
    svc.record(Some(route), status, started.elapsed(), 0);
    match (ok, close, skip) {
        (true, false, _) => Next::KeepAlive,
        (true, true, None) if !head.expect_continue => Next::Linger,
        _ => Next::Close,
    }
}

/// The head limit was reached: 414 when the request line alone does not fit (RFC 9110
/// §15.5.15), else 431.
async fn head_too_large<S: Service, T: Transport>(
    c: &mut Conn<'_, T>,
    svc: &Rc<S>,
    max_header_bytes: usize,
) -> Next {
    let line = c
        .buf
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(c.buf.len());
    let e = if line >= max_header_bytes {
        HeadError::UriTooLong
    } else {
        HeadError::TooLarge
    };
    fail(c, svc, e.reason(), e.status(), &e.to_string()).await
}

async fn fail<S: Service, T: Transport>(
    c: &mut Conn<'_, T>,
    svc: &Rc<S>,
    reason: RejectReason,
    status: u16,
    msg: &str,
) -> Next {
    fail_route(c, svc, None, reason, status, msg, None).await
}

/// Writes an error response and closes (lingering when request bytes may still arrive).
async fn fail_route<S: Service, T: Transport>(
    c: &mut Conn<'_, T>,
    svc: &Rc<S>,
    route: Option<&S::Route>,
    reason: RejectReason,
    status: u16,
    msg: &str,
    started: Option<Instant>,
) -> Next {
    svc.rejected(reason);
    let resp = svc.error_response(route, reason, status, msg).closing();
    let ok = c
        .write_response(&resp, false, Instant::now() + Duration::from_secs(1))
        .await;
    svc.record(
        route,
        status,
        started.map_or(Duration::ZERO, |s| s.elapsed()),
        0,
    );
    if ok && reason.lingers() {
        Next::Linger
    } else {
        Next::Close
    }
}

/// Writes `resp` to a connection the server will not serve (connection limit in `reject`
/// mode) and closes it gracefully.
pub async fn reject_connection(mut stream: TcpStream, resp: &Response) {
    let mut c = Conn {
        stream: &mut stream,
        buf: BytesMut::new(),
        out: Vec::new(),
    };
    if c.write_response(resp, false, Instant::now() + Duration::from_secs(1))
        .await
    {
        c.linger_close().await;
    }
}

/// Returns a `TcpStream` configured for request/response traffic.
pub fn prepare_stream(stream: &TcpStream) -> io::Result<()> {
    // Responses are written in one piece; without NODELAY a second small write would wait
    // for the peer's delayed ACK (the monoio-http pitfall).
    stream.set_nodelay(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulates reads of `step` bytes into a body of `n` bytes: the buffer never grows past
    /// about twice what was received (plus the presize) and ends as one allocation >= n.
    #[test]
    fn body_buffer_grows_with_the_data_not_the_claim() {
        for (n, step) in [
            (10usize, 3usize),
            (64 * 1024, 1000),
            (300 * 1024, 4096),
            (5 << 20, 256 * 1024),
            (5 << 20, 1),
        ] {
            let mut buf = BytesMut::new();
            buf.reserve(n.min(MAX_BODY_PRESIZE));
            let mut reads = 0;
            while buf.len() < n {
                let want = grow_for_body(&mut buf, n);
                assert!((1..=MAX_READ).contains(&want), "n={n}: want {want}");
                assert!(buf.capacity() - buf.len() >= want);
                let got = want.min(step);
                buf.extend_from_slice(&vec![7u8; got]);
                assert!(
                    buf.capacity() <= (2 * buf.len()).max(MAX_BODY_PRESIZE) + 2 * MIN_READ,
                    "n={n} len={} cap={}",
                    buf.len(),
                    buf.capacity()
                );
                reads += 1;
                assert!(reads <= n, "no progress");
            }
            assert_eq!(buf.len(), n);
        }
    }

    struct Nop;
    impl Service for Nop {
        type Route = ();
        fn admit(&self, _: &RequestHead) -> Admission<()> {
            Admission::Accept {
                route: (),
                max_body: 0,
            }
        }
        async fn call(&self, _: Request<()>) -> Response {
            Response::new(200)
        }
    }

    const MAX_IDLE_FUTURE: usize = 320 - 48;

    /// An idle connection is its task's future; keeping it small is what keeps memory per
    /// idle keep-alive connection small (10,000 idle connections are routine).
    #[test]
    fn idle_connection_future_stays_small() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime");
        let size = rt.block_on(async {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let s = std::net::TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
            let stream = TcpStream::from_std(s).expect("monoio stream");
            let env = ConnEnv::new(
                ConnLimits {
                    max_header_bytes: 1024,
                    read_timeout: Duration::from_secs(1),
                    write_timeout: Duration::from_secs(1),
                    idle_timeout: Duration::from_secs(1),
                    max_age: Duration::ZERO,
                    max_age_jitter: 0.0,
                    http2: None,
                },
                Rc::new(LocalSignal::new()),
            );
            let fut = serve_conn(stream, Rc::new(Nop), env, ());
            std::mem::size_of_val(&fut)
        });
        // monoio's task cell adds 48 B (header 24, stage tag 8, join waker 16) and mimalloc
        // rounds the cell up to its next size class (320, 384, 448, ...): 272 B of future
        // is what fits the 320 B class (the gateway's quota permit adds 8 B to this test's
        // 240), i.e. under 500 B of RSS per idle connection (docs/performance.md §6).
        assert!(size <= MAX_IDLE_FUTURE, "serve_conn future is {size} bytes");
    }
}
