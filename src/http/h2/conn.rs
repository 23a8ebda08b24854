//! The server side of one HTTP/2 connection (RFC 9113), built for what the gateway serves:
//! unary requests (a head and a body) answered with a head, a body and trailers.
//!
//! One task owns the connection. Each time it runs it takes the answers its handlers have
//! finished, reads and handles every complete frame, and hands everything it wrote to one
//! `send`: answers to many streams leave in one system call, and a unary request costs no
//! wake-up of its own besides its handler's. Bodies are gathered here; a handler starts
//! when its request is complete.
//!
//! Bounds (docs/http2.md §3–4): the frame size we advertise; a header block's encoded size
//! (`max_header_list_size`) and decoded size (HPACK bombs get 431 and cost only the time to
//! read them); open streams and running handlers (`max_concurrent_streams`); the flow-control
//! windows and `max_body` per stream; resets of streams by the client (two token buckets,
//! `max_pending_reset_streams` for requests still arriving and `max_rapid_resets` for
//! running ones) and streams refused for the client's errors (`max_local_error_resets`),
//! each ending in GOAWAY `ENHANCE_YOUR_CALM`; output waiting for the socket (reading stops
//! while it is over [`OUT_HIGH`], so a peer that sends PINGs or SETTINGS and never reads
//! gets no more of our attention than its socket buffer).

use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};

use super::Http2Limits;
use super::frame::{self, Head, Reason};
use super::hpack::{Decoder, HeaderList, ListSize};
use super::io::Prefixed;
use super::stream::{self, BadHead, Shared};
use crate::http::head::{HeadError, RequestHead};
use crate::http::response::Response;
use crate::http::service::{Admission, ConnEnv, ConnLimits, Request, Service};
use crate::metrics::RejectReason;
use crate::util::notify::LocalSignal;

/// After a GOAWAY, how long streams still running may take to finish before the socket
/// closes, at most (the write timeout bounds it further).
const CLOSE_GRACE_CAP: Duration = Duration::from_secs(30);
/// After our last frame, how long the peer gets to read it (we read and drop what it
/// still sends, so that closing does not reset the connection under our GOAWAY).
const LINGER: Duration = Duration::from_secs(1);
/// Premature resets and refused streams a connection may cause per second, beyond its
/// burst: an SDK cancels a request on its own timeout, a few per minute at most, while a
/// rapid-reset attack sends thousands per second.
const RESET_REFILL_PER_SEC: f64 = 10.0;
/// The soonest the timer fires again after it fired: bounds how often a deadline that
/// stays due is looked at.
const MIN_TICK: Duration = Duration::from_millis(10);
/// Output bytes waiting behind a `send` in flight at which reading stops until it is done.
const OUT_HIGH: usize = 64 * 1024;
/// DATA frames from this size on are split off the read buffer instead of copied: a body of
/// one such frame is then kept as is (smaller ones are cheaper to copy than to pin the read
/// buffer with).
const ZERO_COPY_MIN: usize = 8 * 1024;
/// Slack over `max_header_list_size` for a header block's encoded size (HPACK never needs
/// more bytes than the list it decodes to, except for Huffman codes longer than 8 bits,
/// which no encoder uses for header text).
const BLOCK_SLACK: usize = 1024;

/// Where the connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Serving streams.
    Open,
    /// GOAWAY sent (or the peer's received, or its side closed): no new streams; the open
    /// ones finish.
    Closing,
    /// Everything is said: the output is flushed, then the connection closes (after a
    /// protocol error or abuse) or lingers (after a graceful GOAWAY).
    Flushing {
        linger: bool,
    },
    /// Write side shut: reading what the peer still sends until it closes or [`LINGER`].
    Linger,
    Done,
}

enum State<R> {
    /// The head is being read: only within the frame that opened the stream.
    Opening,
    /// The head is read; DATA frames are arriving.
    Receiving(Box<Receiving<R>>),
    /// The handler runs; firing the signal stops it.
    Running(Rc<LocalSignal>),
    /// The answer waits for the peer's flow-control window.
    Sending(Box<Sending>),
}

struct Receiving<R> {
    head: RequestHead,
    route: R,
    max_body: u64,
    declared: Option<u64>,
    body: Vec<u8>,
    started: Instant,
}

struct Sending {
    rest: Bytes,
    /// The encoded trailer block, empty for none.
    trailers: Vec<u8>,
    /// RST_STREAM NO_ERROR after the answer: it came before the request was complete.
    reset_after: bool,
    deadline: Instant,
}

struct Stream<R> {
    id: u32,
    state: State<R>,
    /// What the peer lets us send on this stream.
    send_window: i64,
    /// What the peer may still send on this stream before our next WINDOW_UPDATE.
    recv_window: i64,
    /// Bytes received since our last WINDOW_UPDATE for this stream.
    recv_unacked: u32,
}

/// A header block whose CONTINUATION frames are still arriving.
struct Partial {
    stream: u32,
    end_stream: bool,
    block: Vec<u8>,
}

/// A token bucket of client resets.
struct Bucket {
    tokens: f64,
    refilled: Instant,
    burst: f64,
}

impl Bucket {
    fn new(burst: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(burst),
            refilled: now,
            burst: f64::from(burst),
        }
    }

    /// Takes a token; false when there was none left.
    fn take(&mut self, now: Instant) -> bool {
        let refill =
            now.saturating_duration_since(self.refilled).as_secs_f64() * RESET_REFILL_PER_SEC;
        self.refilled = now;
        self.tokens = (self.tokens + refill).min(self.burst) - 1.0;
        self.tokens >= 0.0
    }
}

/// The connection.
pub(super) struct Conn<S: Service> {
    io: Prefixed,
    svc: Rc<S>,
    env: Rc<ConnEnv>,
    limits: ConnLimits,
    h2l: Http2Limits,
    shared: Rc<Shared>,
    decoder: Decoder,
    fields: HeaderList,
    /// Scratch for encoding header and trailer blocks, and for taking finished answers.
    block: Vec<u8>,
    trailers: Vec<u8>,
    done: Vec<(u32, Response)>,
    streams: Vec<Stream<S::Route>>,
    /// The highest stream the client opened.
    last_id: u32,
    /// Streams above this one are ignored (after a GOAWAY).
    accept_up_to: u32,
    partial: Option<Partial>,
    preface_read: bool,
    settings_read: bool,
    settings_acked: bool,
    peer_initial_window: i64,
    peer_max_frame: usize,
    send_window: i64,
    recv_window: i64,
    recv_unacked: u32,
    local_errors: usize,
    pending_resets: Bucket,
    rapid_resets: Bucket,
    phase: Phase,
    /// When the socket closes at the latest, once closing.
    close_by: Option<Instant>,
    /// Before the client's preface and SETTINGS arrived.
    handshake_by: Option<Instant>,
    max_age_at: Option<Instant>,
    idle_check: Instant,
    /// The earliest read or write deadline of a stream, if one may be due.
    stream_due: Option<Instant>,
    armed: Instant,
    timer: std::pin::Pin<Box<monoio::time::Sleep>>,
}

impl<S: Service> Conn<S> {
    pub(super) fn new(
        io: Prefixed,
        svc: Rc<S>,
        env: Rc<ConnEnv>,
        h2l: Http2Limits,
        max_age_at: Option<Instant>,
    ) -> Self {
        let limits = env.limits.get();
        let now = Instant::now();
        let idle_check = now + limits.idle_timeout;
        let handshake_by = now + limits.read_timeout;
        let mut c = Self {
            io,
            shared: Rc::new(Shared::new(now, env.http2_metrics.clone())),
            svc,
            env,
            limits,
            h2l,
            decoder: Decoder::new(h2l.header_table_size as usize),
            fields: HeaderList::default(),
            block: Vec::new(),
            trailers: Vec::new(),
            done: Vec::new(),
            streams: Vec::new(),
            last_id: 0,
            accept_up_to: u32::MAX,
            partial: None,
            preface_read: false,
            settings_read: false,
            settings_acked: false,
            peer_initial_window: i64::from(frame::DEFAULT_WINDOW),
            peer_max_frame: frame::DEFAULT_MAX_FRAME as usize,
            send_window: i64::from(frame::DEFAULT_WINDOW),
            recv_window: i64::from(h2l.initial_connection_window.max(frame::DEFAULT_WINDOW)),
            recv_unacked: 0,
            local_errors: 0,
            pending_resets: Bucket::new(
                h2l.max_pending_reset_streams.min(u32::MAX as usize) as u32,
                now,
            ),
            rapid_resets: Bucket::new(h2l.max_rapid_resets, now),
            phase: Phase::Open,
            close_by: None,
            handshake_by: Some(handshake_by),
            max_age_at,
            idle_check,
            stream_due: None,
            armed: handshake_by,
            timer: Box::pin(monoio::time::sleep_until(handshake_by.into())),
        };
        // Our SETTINGS, then the connection window beyond the initial 65,535 bytes.
        let out = c.io.out();
        frame::put_settings(
            out,
            &[
                (frame::SETTINGS_HEADER_TABLE_SIZE, h2l.header_table_size),
                (frame::SETTINGS_ENABLE_PUSH, 0),
                (
                    frame::SETTINGS_MAX_CONCURRENT_STREAMS,
                    h2l.max_concurrent_streams,
                ),
                (
                    frame::SETTINGS_INITIAL_WINDOW_SIZE,
                    h2l.initial_stream_window,
                ),
                (frame::SETTINGS_MAX_FRAME_SIZE, h2l.max_frame_size),
                (
                    frame::SETTINGS_MAX_HEADER_LIST_SIZE,
                    h2l.max_header_list_size,
                ),
            ],
        );
        if h2l.initial_connection_window > frame::DEFAULT_WINDOW {
            frame::put_window_update(
                out,
                0,
                h2l.initial_connection_window - frame::DEFAULT_WINDOW,
            );
        }
        c
    }

    /// Whether the client's preface and first SETTINGS arrived (the connection counts as
    /// HTTP/2 from then).
    pub(super) fn started(&self) -> bool {
        self.settings_read
    }

    /// Starts the graceful shutdown of a drain.
    pub(super) fn drain(&mut self) {
        self.go_away_gracefully();
    }

    pub(super) fn closing(&self) -> bool {
        self.phase != Phase::Open
    }

    /// Runs the connection as far as it can go; ready when it is over.
    pub(super) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.shared.register(cx.waker());
        if !self.preface_read {
            // What the HTTP/1.1 loop (or the h2c upgrade) read before: the client may have
            // sent its whole request already.
            self.on_bytes();
        }
        loop {
            let mut again = false;
            self.shared.take_done(&mut self.done);
            if !self.done.is_empty() && matches!(self.phase, Phase::Open | Phase::Closing) {
                let mut done = std::mem::take(&mut self.done);
                for (id, resp) in done.drain(..) {
                    if let Some(i) = self.find(id)
                        && matches!(self.streams[i].state, State::Running(_))
                    {
                        self.answer(i, resp, false);
                    }
                }
                self.done = done;
            }
            if self.phase != Phase::Done && self.reading() {
                match self.io.poll_fill(cx) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) if self.phase == Phase::Linger => {
                        self.phase = Phase::Done;
                    }
                    Poll::Ready(Ok(0)) => self.peer_closed(),
                    Poll::Ready(Ok(_)) => {
                        if self.phase == Phase::Linger {
                            if let Some(b) = self.io.buf() {
                                b.clear();
                            }
                        } else {
                            self.on_bytes();
                        }
                        again = true;
                    }
                    Poll::Ready(Err(_)) => self.phase = Phase::Done,
                    Poll::Pending => {}
                }
            }
            self.settle();
            if self.phase != Phase::Done && (!self.io.out().is_empty() || self.io.sending()) {
                match self.io.poll_send(cx) {
                    Poll::Ready(Ok(())) => {
                        // Room again for answers that waited for the socket.
                        if self
                            .streams
                            .iter()
                            .any(|s| matches!(s.state, State::Sending(_)))
                        {
                            let before = self.io.out().len();
                            self.resume_all();
                            again |= self.io.out().len() != before;
                        }
                    }
                    Poll::Ready(Err(_)) => self.phase = Phase::Done,
                    Poll::Pending => {}
                }
            }
            if let Phase::Flushing { linger } = self.phase
                && self.io.out().is_empty()
                && !self.io.sending()
            {
                if !linger {
                    // After an error the peer's frames are not wanted: closing now makes
                    // its writes fail instead of filling our socket buffer.
                    return Poll::Ready(());
                }
                // A plain `shutdown(SHUT_WR)`: ready at once (io.rs).
                let _ = self.io.poll_shutdown(cx);
                self.phase = Phase::Linger;
                let by = Instant::now() + LINGER;
                self.close_by = Some(self.close_by.map_or(by, |c| c.min(by)));
                again = true;
            }
            if self.phase == Phase::Done {
                return Poll::Ready(());
            }
            let fired = self.timer.as_mut().poll(cx).is_ready();
            if fired {
                self.on_timer();
                again = true;
            }
            self.rearm(fired);
            if self.phase == Phase::Done {
                return Poll::Ready(());
            }
            if !again {
                return Poll::Pending;
            }
        }
    }

    /// Whether to read now: not while the output waits for a slow peer.
    fn reading(&mut self) -> bool {
        let backlog = self.io.sending() && self.io.out().len() >= OUT_HIGH;
        !(backlog || matches!(self.phase, Phase::Flushing { .. }))
    }

    /// Moves a closing connection on once its streams are done.
    fn settle(&mut self) {
        if self.phase == Phase::Closing && self.streams.is_empty() && self.shared.live.get() == 0 {
            self.phase = Phase::Flushing { linger: true };
        }
    }

    /// The peer closed its side: nothing more will arrive. Requests still arriving are
    /// dropped; the rest are answered, then the connection closes.
    fn peer_closed(&mut self) {
        match self.phase {
            Phase::Open | Phase::Closing if self.settings_read => {
                self.phase = Phase::Closing;
                if self.close_by.is_none() {
                    self.close_by = Some(Instant::now() + self.grace());
                }
                self.streams
                    .retain(|s| !matches!(s.state, State::Receiving(_)));
            }
            Phase::Done => {}
            _ => self.phase = Phase::Done,
        }
    }

    fn find(&self, id: u32) -> Option<usize> {
        self.streams.iter().position(|s| s.id == id)
    }

    /// Closes stream `i` on our side.
    fn remove(&mut self, i: usize) -> Stream<S::Route> {
        let s = self.streams.swap_remove(i);
        if self.streams.is_empty() {
            self.shared.last_active.set(Instant::now());
        }
        s
    }

    // ---- reading ----

    fn on_bytes(&mut self) {
        let Some(buf) = self.io.buf() else {
            return;
        };
        let mut buf = std::mem::take(buf);
        if !self.preface_read {
            let n = buf.len().min(frame::PREFACE.len());
            if buf[..n] != frame::PREFACE[..n] {
                self.phase = Phase::Done;
                return;
            }
            if n == frame::PREFACE.len() {
                buf.advance(n);
                self.preface_read = true;
            }
        }
        while self.preface_read && matches!(self.phase, Phase::Open | Phase::Closing) {
            let Some(h) = Head::parse(&buf) else {
                break;
            };
            if h.len > self.h2l.max_frame_size {
                self.fail(Reason::FRAME_SIZE_ERROR);
                break;
            }
            let len = h.len as usize;
            let end = frame::HEADER_LEN + len;
            if buf.len() < end {
                buf.reserve(end - buf.len());
                break;
            }
            buf.advance(frame::HEADER_LEN);
            let done = if h.kind == frame::DATA && len >= ZERO_COPY_MIN && self.partial.is_none() {
                let payload = buf.split_to(len).freeze();
                self.on_data(h, &payload, Some(&payload))
            } else {
                let r = self.on_frame(h, &buf[..len]);
                buf.advance(len);
                r
            };
            if let Err(reason) = done {
                self.fail(reason);
            }
        }
        if let Some(b) = self.io.buf() {
            *b = buf;
        }
    }

    fn on_frame(&mut self, h: Head, payload: &[u8]) -> Result<(), Reason> {
        if !self.settings_read && (h.kind != frame::SETTINGS || h.has(frame::ACK)) {
            return Err(Reason::PROTOCOL_ERROR);
        }
        if let Some(p) = &self.partial
            && (h.kind != frame::CONTINUATION || h.stream != p.stream)
        {
            return Err(Reason::PROTOCOL_ERROR);
        }
        match h.kind {
            frame::DATA => self.on_data(h, payload, None),
            frame::HEADERS => self.on_headers(h, payload),
            frame::CONTINUATION => self.on_continuation(h, payload),
            frame::PRIORITY => {
                if h.stream == 0 {
                    return Err(Reason::PROTOCOL_ERROR);
                }
                if payload.len() != 5 {
                    return Err(Reason::FRAME_SIZE_ERROR);
                }
                Ok(())
            }
            frame::RST_STREAM => self.on_rst(h, payload),
            frame::SETTINGS => self.on_settings(h, payload),
            frame::PUSH_PROMISE => Err(Reason::PROTOCOL_ERROR),
            frame::PING => {
                if h.stream != 0 {
                    return Err(Reason::PROTOCOL_ERROR);
                }
                let p: &[u8; 8] = payload.try_into().map_err(|_| Reason::FRAME_SIZE_ERROR)?;
                if !h.has(frame::ACK) {
                    frame::put_ping_ack(self.io.out(), p);
                }
                Ok(())
            }
            frame::GOAWAY => {
                if h.stream != 0 {
                    return Err(Reason::PROTOCOL_ERROR);
                }
                if payload.len() < 8 {
                    return Err(Reason::FRAME_SIZE_ERROR);
                }
                // The peer opens no more streams; the open ones finish.
                if self.phase == Phase::Open {
                    self.phase = Phase::Closing;
                    self.close_by = Some(Instant::now() + self.grace());
                }
                Ok(())
            }
            frame::WINDOW_UPDATE => self.on_window_update(h, payload),
            // Unknown frame types are ignored (RFC 9113 §4.1).
            _ => Ok(()),
        }
    }

    fn on_settings(&mut self, h: Head, payload: &[u8]) -> Result<(), Reason> {
        if h.stream != 0 {
            return Err(Reason::PROTOCOL_ERROR);
        }
        if h.has(frame::ACK) {
            if !payload.is_empty() {
                return Err(Reason::FRAME_SIZE_ERROR);
            }
            self.settings_acked = true;
            return Ok(());
        }
        if !payload.len().is_multiple_of(6) {
            return Err(Reason::FRAME_SIZE_ERROR);
        }
        for s in payload.chunks_exact(6) {
            let id = u16::from_be_bytes([s[0], s[1]]);
            let v = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
            match id {
                frame::SETTINGS_ENABLE_PUSH if v > 1 => return Err(Reason::PROTOCOL_ERROR),
                frame::SETTINGS_INITIAL_WINDOW_SIZE => {
                    if i64::from(v) > frame::MAX_WINDOW {
                        return Err(Reason::FLOW_CONTROL_ERROR);
                    }
                    let delta = i64::from(v) - self.peer_initial_window;
                    for st in &mut self.streams {
                        st.send_window += delta;
                        if st.send_window > frame::MAX_WINDOW {
                            return Err(Reason::FLOW_CONTROL_ERROR);
                        }
                    }
                    self.peer_initial_window = i64::from(v);
                }
                frame::SETTINGS_MAX_FRAME_SIZE => {
                    if !(frame::DEFAULT_MAX_FRAME..=frame::MAX_FRAME_LIMIT).contains(&v) {
                        return Err(Reason::PROTOCOL_ERROR);
                    }
                    self.peer_max_frame = v as usize;
                }
                // We never push, never index our headers, and answer within any list size.
                _ => {}
            }
        }
        if !self.settings_read {
            self.settings_read = true;
            self.handshake_by = None;
            self.started_metrics();
        }
        frame::put_settings_ack(self.io.out());
        self.resume_all();
        Ok(())
    }

    fn started_metrics(&self) {
        if let Some(m) = &self.shared.metrics {
            self.h2l.publish(m);
        }
    }

    fn on_window_update(&mut self, h: Head, payload: &[u8]) -> Result<(), Reason> {
        let p: &[u8; 4] = payload.try_into().map_err(|_| Reason::FRAME_SIZE_ERROR)?;
        let inc = i64::from(u32::from_be_bytes(*p) & 0x7fff_ffff);
        if h.stream == 0 {
            if inc == 0 {
                return Err(Reason::PROTOCOL_ERROR);
            }
            self.send_window += inc;
            if self.send_window > frame::MAX_WINDOW {
                return Err(Reason::FLOW_CONTROL_ERROR);
            }
            self.resume_all();
            return Ok(());
        }
        if h.stream > self.last_id {
            return Err(Reason::PROTOCOL_ERROR);
        }
        let Some(i) = self.find(h.stream) else {
            return Ok(());
        };
        if inc == 0 {
            self.stream_error(i, Reason::PROTOCOL_ERROR);
            return Ok(());
        }
        self.streams[i].send_window += inc;
        if self.streams[i].send_window > frame::MAX_WINDOW {
            self.stream_error(i, Reason::FLOW_CONTROL_ERROR);
            return Ok(());
        }
        self.resume(i);
        Ok(())
    }

    fn on_rst(&mut self, h: Head, payload: &[u8]) -> Result<(), Reason> {
        if payload.len() != 4 {
            return Err(Reason::FRAME_SIZE_ERROR);
        }
        if h.stream == 0 || h.stream > self.last_id {
            return Err(Reason::PROTOCOL_ERROR);
        }
        let Some(i) = self.find(h.stream) else {
            return Ok(());
        };
        let now = Instant::now();
        let ok = match self.remove(i).state {
            State::Receiving(_) => {
                self.shared.reset("client_cancel");
                self.pending_resets.take(now) & self.rapid_resets.take(now)
            }
            State::Running(cancel) => {
                cancel.fire();
                self.shared.reset("client_cancel");
                self.rapid_resets.take(now)
            }
            State::Opening | State::Sending(_) => true,
        };
        if !ok {
            self.calm();
        }
        Ok(())
    }

    fn on_headers(&mut self, h: Head, payload: &[u8]) -> Result<(), Reason> {
        if h.stream == 0 || h.stream.is_multiple_of(2) {
            return Err(Reason::PROTOCOL_ERROR);
        }
        let (start, end) = frame::unpad(&h, payload).ok_or(Reason::PROTOCOL_ERROR)?;
        let mut fragment = &payload[start..end];
        if h.has(frame::PRIORITY_FLAG) {
            fragment = fragment.get(5..).ok_or(Reason::FRAME_SIZE_ERROR)?;
        }
        if h.has(frame::END_HEADERS) {
            return self.on_header_block(h.stream, h.has(frame::END_STREAM), fragment);
        }
        if fragment.len() > self.max_block() {
            return Err(Reason::ENHANCE_YOUR_CALM);
        }
        self.partial = Some(Partial {
            stream: h.stream,
            end_stream: h.has(frame::END_STREAM),
            block: fragment.to_vec(),
        });
        Ok(())
    }

    fn on_continuation(&mut self, h: Head, payload: &[u8]) -> Result<(), Reason> {
        let max = self.max_block();
        let Some(p) = self.partial.as_mut() else {
            return Err(Reason::PROTOCOL_ERROR);
        };
        if p.block.len() + payload.len() > max {
            // A CONTINUATION flood, or a block we would refuse anyway: the connection's
            // HPACK state cannot be kept without reading it all, so it ends here.
            return Err(Reason::ENHANCE_YOUR_CALM);
        }
        p.block.extend_from_slice(payload);
        if !h.has(frame::END_HEADERS) {
            return Ok(());
        }
        let Some(p) = self.partial.take() else {
            return Err(Reason::PROTOCOL_ERROR);
        };
        self.on_header_block(p.stream, p.end_stream, &p.block)
    }

    fn max_block(&self) -> usize {
        self.h2l.max_header_list_size as usize + BLOCK_SLACK
    }

    fn on_header_block(&mut self, id: u32, end_stream: bool, block: &[u8]) -> Result<(), Reason> {
        self.fields.clear();
        let size = self
            .decoder
            .decode(
                block,
                self.h2l.max_header_list_size as usize,
                &mut self.fields,
            )
            .map_err(|_| Reason::COMPRESSION_ERROR)?;
        if id <= self.last_id {
            // Trailers, or frames on a stream we closed.
            if let Some(i) = self.find(id) {
                match &self.streams[i].state {
                    State::Receiving(_) if end_stream => self.finish_request(i, None),
                    _ => self.stream_error(i, Reason::PROTOCOL_ERROR),
                }
            }
            return Ok(());
        }
        self.last_id = id;
        if let Some(m) = &self.shared.metrics {
            m.streams.inc();
        }
        if id > self.accept_up_to || self.phase != Phase::Open {
            return Ok(());
        }
        let max = self.h2l.max_concurrent_streams;
        if self.streams.len() >= max as usize || self.shared.live.get() >= max {
            // Only reachable when the client ignores our limit, or streams it reset still
            // have handlers running.
            frame::put_rst(self.io.out(), id, Reason::REFUSED_STREAM);
            self.shared.reset("refused");
            if !self.rapid_resets.take(Instant::now()) {
                self.calm();
            }
            return Ok(());
        }
        let started = Instant::now();
        let recv_window = if self.settings_acked {
            i64::from(self.h2l.initial_stream_window)
        } else {
            i64::from(self.h2l.initial_stream_window.max(frame::DEFAULT_WINDOW))
        };
        self.streams.push(Stream {
            id,
            state: State::Opening,
            send_window: self.peer_initial_window,
            recv_window,
            recv_unacked: 0,
        });
        let i = self.streams.len() - 1;
        if size == ListSize::TooLarge {
            self.local_error();
            let e = HeadError::TooLarge;
            self.refuse(i, None, e.reason(), e.status(), &e.to_string(), !end_stream);
            return Ok(());
        }
        let head = match stream::request_head(&self.fields) {
            Ok(h) => h,
            Err(BadHead::Malformed) => {
                self.stream_error(i, Reason::PROTOCOL_ERROR);
                return Ok(());
            }
            Err(BadHead::Refused(e)) => {
                self.refuse(i, None, e.reason(), e.status(), &e.to_string(), !end_stream);
                return Ok(());
            }
        };
        let (route, max_body) = match self.svc.admit(&head) {
            Admission::Accept { route, max_body } => (route, max_body),
            Admission::Respond { route, response } => {
                let status = response.status;
                self.answer(i, response, !end_stream);
                self.svc.record(Some(&route), status, started.elapsed(), 0);
                return Ok(());
            }
        };
        let declared = head
            .header("content-length")
            .and_then(|v| std::str::from_utf8(v).ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max_body) {
            self.too_large(i, &route, !end_stream);
            return Ok(());
        }
        let capacity = declared.unwrap_or(0).min(max_body) as usize;
        self.streams[i].state = State::Receiving(Box::new(Receiving {
            head,
            route,
            max_body,
            declared,
            body: Vec::with_capacity(capacity),
            started,
        }));
        if end_stream {
            self.finish_request(i, None);
        } else {
            self.due(started + self.limits.read_timeout);
        }
        Ok(())
    }

    /// A DATA frame; `whole` is the frame's payload when it was split off the read buffer
    /// (a large frame), so that a body of one frame is kept without a copy.
    fn on_data(&mut self, h: Head, payload: &[u8], whole: Option<&Bytes>) -> Result<(), Reason> {
        if h.stream == 0 {
            return Err(Reason::PROTOCOL_ERROR);
        }
        // The connection window counts every DATA byte, padding included, whatever the
        // stream's state; credit goes back as it is received (`max_body` bounds what a
        // stream keeps, the window what is in flight).
        let len = i64::from(h.len);
        self.recv_window -= len;
        if self.recv_window < 0 {
            return Err(Reason::FLOW_CONTROL_ERROR);
        }
        self.recv_unacked += h.len;
        if self.recv_unacked >= self.h2l.initial_connection_window / 2 {
            frame::put_window_update(self.io.out(), 0, self.recv_unacked);
            self.recv_window += i64::from(self.recv_unacked);
            self.recv_unacked = 0;
        }
        if h.stream > self.last_id {
            return Err(Reason::PROTOCOL_ERROR);
        }
        let (start, end) = frame::unpad(&h, payload).ok_or(Reason::PROTOCOL_ERROR)?;
        let Some(i) = self.find(h.stream) else {
            return Ok(());
        };
        let end_stream = h.has(frame::END_STREAM);
        let s = &mut self.streams[i];
        let State::Receiving(r) = &mut s.state else {
            // DATA after the request was complete.
            self.stream_error(i, Reason::STREAM_CLOSED);
            return Ok(());
        };
        s.recv_window -= len;
        if s.recv_window < 0 {
            self.stream_error(i, Reason::FLOW_CONTROL_ERROR);
            return Ok(());
        }
        let data = &payload[start..end];
        let total = (r.body.len() + data.len()) as u64;
        if total > r.max_body {
            let route = r.route.clone();
            self.too_large(i, &route, !end_stream);
            return Ok(());
        }
        if r.declared
            .is_some_and(|d| total > d || (end_stream && total != d))
        {
            self.stream_error(i, Reason::PROTOCOL_ERROR);
            return Ok(());
        }
        if end_stream
            && r.body.is_empty()
            && data.len() == payload.len()
            && let Some(w) = whole
        {
            self.finish_request(i, Some(w.clone()));
            return Ok(());
        }
        r.body.extend_from_slice(data);
        if end_stream {
            self.finish_request(i, None);
            return Ok(());
        }
        s.recv_unacked += h.len;
        if s.recv_unacked >= self.h2l.initial_stream_window / 2 {
            frame::put_window_update(self.io.out(), s.id, s.recv_unacked);
            s.recv_window += i64::from(s.recv_unacked);
            s.recv_unacked = 0;
        }
        Ok(())
    }

    /// The request on stream `i` is complete: its handler starts. `whole` is its body when
    /// it came in one large frame.
    fn finish_request(&mut self, i: usize, whole: Option<Bytes>) {
        let s = &mut self.streams[i];
        let State::Receiving(r) = std::mem::replace(&mut s.state, State::Opening) else {
            return;
        };
        let r = *r;
        let body = whole.unwrap_or_else(|| Bytes::from(r.body));
        if r.declared.is_some_and(|d| d != body.len() as u64) {
            self.stream_error(i, Reason::PROTOCOL_ERROR);
            return;
        }
        let request = Request {
            head: r.head,
            body,
            route: r.route,
            received_at: r.started,
            deadline: Instant::now() + self.limits.write_timeout,
            // The socket belongs to this connection, which may end before the handler.
            fd: -1,
            peer_cert: None,
        };
        let cancel = stream::spawn_handler(&self.svc, &self.shared, s.id, request);
        self.streams[i].state = State::Running(cancel);
    }

    // ---- answering ----

    /// Answers stream `i` with an error the connection produces itself.
    fn refuse(
        &mut self,
        i: usize,
        route: Option<&S::Route>,
        reason: RejectReason,
        status: u16,
        msg: &str,
        reset_after: bool,
    ) {
        self.svc.rejected(reason);
        let resp = self.svc.error_response(route, reason, status, msg);
        let started = match &self.streams[i].state {
            State::Receiving(r) => r.started,
            _ => Instant::now(),
        };
        self.answer(i, resp, reset_after);
        self.svc.record(route, status, started.elapsed(), 0);
    }

    /// 413 for a body over `max_request_body` (declared or arriving).
    fn too_large(&mut self, i: usize, route: &S::Route, reset_after: bool) {
        let (reason, msg) = (RejectReason::BodyTooLarge, "request body too large");
        self.refuse(i, Some(route), reason, 413, msg, reset_after);
    }

    /// Writes `resp` on stream `i`: head, then as much body as the windows allow (the rest
    /// waits in [`State::Sending`]), then trailers.
    fn answer(&mut self, i: usize, resp: Response, reset_after: bool) {
        if !matches!(self.phase, Phase::Open | Phase::Closing) {
            return;
        }
        let (mut block, mut trailers) = (
            std::mem::take(&mut self.block),
            std::mem::take(&mut self.trailers),
        );
        stream::encode_head(&mut block, &resp);
        stream::encode_trailers(&mut trailers, &resp);
        let end_now = resp.body.is_empty() && trailers.is_empty();
        let id = self.streams[i].id;
        frame::put_header_block(self.io.out(), id, &block, end_now, self.peer_max_frame);
        let mut rest = resp.body;
        let done = if end_now {
            if reset_after {
                frame::put_rst(self.io.out(), id, Reason::NO_ERROR);
            }
            true
        } else {
            let (max_frame, room) = (self.peer_max_frame, self.out_room());
            let s = &mut self.streams[i];
            let mut w = Windows {
                conn: &mut self.send_window,
                stream: &mut s.send_window,
            };
            send_body(
                self.io.out(),
                &mut w,
                id,
                &mut rest,
                &trailers,
                reset_after,
                max_frame,
                room,
            )
        };
        if done {
            self.remove(i);
        } else {
            // The peer's window (or the socket) holds the rest back.
            let deadline = Instant::now() + self.limits.write_timeout;
            self.streams[i].state = State::Sending(Box::new(Sending {
                rest,
                trailers: trailers.clone(),
                reset_after,
                deadline,
            }));
            self.due(deadline);
        }
        (self.block, self.trailers) = (block, trailers);
    }

    /// Response DATA queued for the socket at once, at least a frame.
    fn out_room(&self) -> usize {
        (self.h2l.max_send_buffer as usize).max(self.peer_max_frame)
    }

    /// Sends what stream `i` may of its waiting answer; true when it is all out (the
    /// stream is then closed).
    fn resume(&mut self, i: usize) -> bool {
        let (max_frame, room) = (self.peer_max_frame, self.out_room());
        let s = &mut self.streams[i];
        let id = s.id;
        let State::Sending(snd) = &mut s.state else {
            return false;
        };
        let mut w = Windows {
            conn: &mut self.send_window,
            stream: &mut s.send_window,
        };
        let out = self.io.out();
        if !send_body(
            out,
            &mut w,
            id,
            &mut snd.rest,
            &snd.trailers,
            snd.reset_after,
            max_frame,
            room,
        ) {
            return false;
        }
        self.remove(i);
        true
    }

    fn resume_all(&mut self) {
        let mut i = 0;
        while i < self.streams.len() {
            if matches!(self.streams[i].state, State::Sending(_)) && self.resume(i) {
                // `remove` moved the last stream here.
                continue;
            }
            i += 1;
        }
    }

    // ---- errors and shutdown ----

    /// A stream error (RFC 9113 §5.4.2): RST_STREAM, the stream closed, its handler
    /// stopped. Protocol errors count against `max_local_error_resets`.
    fn stream_error(&mut self, i: usize, reason: Reason) {
        let s = self.remove(i);
        if let State::Running(cancel) = s.state {
            cancel.fire();
        }
        frame::put_rst(self.io.out(), s.id, reason);
        self.shared.reset(reason.label());
        self.local_error();
    }

    fn local_error(&mut self) {
        self.local_errors += 1;
        if self.local_errors > self.h2l.max_local_error_resets {
            self.calm();
        }
    }

    /// GOAWAY `ENHANCE_YOUR_CALM`: the client's resets or errors are over budget.
    fn calm(&mut self) {
        self.fail(Reason::ENHANCE_YOUR_CALM);
    }

    /// A connection error: GOAWAY with `reason`, then close.
    fn fail(&mut self, reason: Reason) {
        if matches!(
            self.phase,
            Phase::Flushing { .. } | Phase::Linger | Phase::Done
        ) {
            return;
        }
        self.goaway(reason);
        self.phase = Phase::Flushing { linger: false };
        self.cancel_all();
        let by = Instant::now() + LINGER;
        self.close_by = Some(self.close_by.map_or(by, |c| c.min(by)));
    }

    fn goaway(&mut self, reason: Reason) {
        frame::put_goaway(self.io.out(), self.last_id, reason);
        self.accept_up_to = self.last_id;
        if let Some(m) = &self.shared.metrics {
            m.goaways.with_label_values(&[reason.label()]).inc();
        }
    }

    /// GOAWAY `NO_ERROR`: streams up to the last one read are still answered, then the
    /// connection closes; at once when none is open.
    fn go_away_gracefully(&mut self) {
        if self.phase != Phase::Open || !self.settings_read {
            if !self.settings_read {
                self.phase = Phase::Done;
            }
            return;
        }
        self.goaway(Reason::NO_ERROR);
        self.phase = Phase::Closing;
        self.close_by = Some(Instant::now() + self.grace());
        self.settle();
    }

    fn grace(&self) -> Duration {
        self.limits.write_timeout.min(CLOSE_GRACE_CAP)
    }

    /// Stops every running handler (the streams stay, so that indexes held by callers
    /// remain valid; nothing more is read or answered).
    fn cancel_all(&mut self) {
        for s in &self.streams {
            if let State::Running(cancel) = &s.state {
                cancel.fire();
            }
        }
    }

    // ---- time ----

    /// A stream deadline at `at` may be due.
    fn due(&mut self, at: Instant) {
        self.stream_due = Some(self.stream_due.map_or(at, |d| d.min(at)));
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        if self.close_by.is_some_and(|c| now >= c) || self.handshake_by.is_some_and(|h| now >= h) {
            self.phase = Phase::Done;
            return;
        }
        if self.stream_due.is_some_and(|d| now >= d) {
            self.expire_streams(now);
        }
        if self.phase != Phase::Open {
            return;
        }
        self.limits = self.env.limits.get();
        if self.max_age_at.is_some_and(|a| now >= a) {
            self.go_away_gracefully();
        } else if now >= self.idle_check {
            let idle = self.streams.is_empty() && self.shared.live.get() == 0;
            let since = if idle {
                self.shared.last_active.get()
            } else {
                now
            };
            self.idle_check = since + self.limits.idle_timeout;
            if now >= self.idle_check {
                self.go_away_gracefully();
            }
        }
    }

    /// Answers requests whose body is late with 408, resets answers the peer's window
    /// held back too long, and finds the next such deadline.
    fn expire_streams(&mut self, now: Instant) {
        self.stream_due = None;
        let mut i = 0;
        while i < self.streams.len() {
            let s = &self.streams[i];
            match &s.state {
                State::Receiving(r) => {
                    let at = r.started + self.limits.read_timeout;
                    if now >= at {
                        let route = r.route.clone();
                        self.refuse(
                            i,
                            Some(&route),
                            RejectReason::ReadTimeout,
                            408,
                            "request timeout",
                            true,
                        );
                        continue;
                    }
                    self.due(at);
                }
                State::Sending(snd) => {
                    if now >= snd.deadline {
                        let id = s.id;
                        self.remove(i);
                        frame::put_rst(self.io.out(), id, Reason::CANCEL);
                        self.shared.reset("write_timeout");
                        continue;
                    }
                    let at = snd.deadline;
                    self.due(at);
                }
                State::Opening | State::Running(_) => {}
            }
            i += 1;
        }
    }

    /// Points the timer at the next thing that may be due.
    /// After the timer `fired`, it never points at the past again: a deadline `on_timer`
    /// did not move would otherwise make the connection spin.
    fn rearm(&mut self, fired: bool) {
        let mut wake = self.close_by.unwrap_or(self.idle_check);
        if self.phase == Phase::Open {
            wake = wake.min(self.idle_check);
            if let Some(a) = self.max_age_at {
                wake = wake.min(a);
            }
        }
        for t in [self.handshake_by, self.stream_due].into_iter().flatten() {
            wake = wake.min(t);
        }
        if fired {
            wake = wake.max(Instant::now() + MIN_TICK);
        }
        if wake != self.armed {
            self.armed = wake;
            self.timer.as_mut().reset(wake.into());
        }
    }
}

/// The send windows an answer's DATA uses up: the connection's and its stream's.
struct Windows<'a> {
    conn: &'a mut i64,
    stream: &'a mut i64,
}

/// Writes `rest` as DATA frames as far as the windows and the output `room` allow, then
/// `trailers` and, with `reset_after`, RST_STREAM `NO_ERROR`. True when the answer is all
/// out; otherwise `rest` holds what is left.
#[allow(clippy::too_many_arguments)]
fn send_body(
    out: &mut Vec<u8>,
    w: &mut Windows<'_>,
    id: u32,
    rest: &mut Bytes,
    trailers: &[u8],
    reset_after: bool,
    max_frame: usize,
    room: usize,
) -> bool {
    while !rest.is_empty() {
        let window = (*w.conn).min(*w.stream).max(0) as usize;
        let n = rest.len().min(max_frame).min(window);
        if n == 0 || out.len() >= room {
            return false;
        }
        let chunk = rest.split_to(n);
        let last = rest.is_empty() && trailers.is_empty();
        let flags = if last { frame::END_STREAM } else { 0 };
        frame::put_head(out, n, frame::DATA, flags, id);
        out.extend_from_slice(&chunk);
        *w.conn -= n as i64;
        *w.stream -= n as i64;
    }
    if !trailers.is_empty() {
        frame::put_header_block(out, id, trailers, true, max_frame);
    }
    if reset_after {
        frame::put_rst(out, id, Reason::NO_ERROR);
    }
    true
}

impl<S: Service> Drop for Conn<S> {
    fn drop(&mut self) {
        // Handlers of streams that can no longer be answered stop.
        self.cancel_all();
    }
}
