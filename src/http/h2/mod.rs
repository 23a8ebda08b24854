//! HTTP/2 on the listener: cleartext (h2c) by prior knowledge or `Upgrade: h2c`, served by
//! the `h2` crate over completion-based socket I/O (`io.rs`), each stream handed to the same
//! [`Service`] the HTTP/1.1 loop serves (docs/http2.md).
//!
//! What a hostile peer can make this connection hold is bounded:
//! - streams: `max_concurrent_streams` open streams, and as many running handlers (a stream
//!   the client resets stops its handler; a new stream beyond that is refused);
//! - rapid reset (CVE-2023-44487): the `h2` crate's pending-accept reset limit, plus our
//!   own budget of premature client resets and refused streams (a token bucket), both
//!   ending in GOAWAY `ENHANCE_YOUR_CALM`;
//! - headers: `max_header_list_size` (HPACK-decoded size, which also stops CONTINUATION
//!   floods) and the HPACK table size;
//! - bodies: the flow-control windows, `max_request_body` per stream, the read timeout;
//! - responses to a peer that never opens its window: the write timeout resets the stream.

pub mod client;
pub mod io;
pub mod limits;
mod stream;
pub mod upgrade;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::Reason;

use self::io::Prefixed;
pub use self::limits::Http2Limits;
use super::service::{ConnEnv, Service};
use crate::metrics::http2::Http2Metrics;
use crate::util::notify::LocalSignal;

/// After a GOAWAY, how long streams still running may take to finish before the socket
/// closes, at most (a drain's own grace period bounds it further).
const CLOSE_GRACE_CAP: Duration = Duration::from_secs(30);
/// After a GOAWAY for abuse or on an idle connection, the peer gets this long to read it
/// before the socket closes.
const ABUSE_LINGER: Duration = Duration::from_secs(1);
/// Premature client resets and refused streams a connection may cause per second, beyond
/// its burst (`max_rapid_resets`): an SDK cancels a request on its own timeout, a few per
/// minute at most, while a rapid-reset attack sends thousands per second.
const RAPID_RESET_REFILL_PER_SEC: f64 = 10.0;

/// How the connection became HTTP/2.
pub enum Setup {
    /// The client sent the connection preface first.
    PriorKnowledge,
    /// An HTTP/1.1 request asked for `Upgrade: h2c`: these frames replay it as stream 1.
    Upgrade(Bytes),
}

/// What a connection's stream tasks share with it.
struct ConnState {
    /// Handlers still running (a client reset ends a stream in `h2` at once, but not the
    /// work it started: that is bounded here).
    live: Cell<u32>,
    /// When the last handler ended (or the connection started): the idle timeout counts
    /// from here while no handler runs.
    last_active: Cell<Instant>,
    /// Token bucket of premature resets and refused streams.
    reset_tokens: Cell<f64>,
    reset_refilled: Cell<Instant>,
    /// Fired when the bucket runs dry.
    calm: LocalSignal,
    metrics: Option<Arc<Http2Metrics>>,
}

impl ConnState {
    /// Counts one premature reset or refused stream; fires `calm` when over budget.
    fn strike(&self, burst: u32) {
        let now = Instant::now();
        let refill = now
            .saturating_duration_since(self.reset_refilled.get())
            .as_secs_f64()
            * RAPID_RESET_REFILL_PER_SEC;
        let tokens = (self.reset_tokens.get() + refill).min(f64::from(burst)) - 1.0;
        self.reset_refilled.set(now);
        self.reset_tokens.set(tokens);
        if tokens < 0.0 {
            self.calm.fire();
        }
    }

    fn reset(&self, reason: &str) {
        if let Some(m) = &self.metrics {
            m.stream_resets.with_label_values(&[reason]).inc();
        }
    }
}

/// The `pyrogate_http2_goaways_total{code}` label of an HTTP/2 error code.
fn code_label(r: Reason) -> &'static str {
    match r {
        Reason::NO_ERROR => "no_error",
        Reason::PROTOCOL_ERROR => "protocol_error",
        Reason::INTERNAL_ERROR => "internal_error",
        Reason::FLOW_CONTROL_ERROR => "flow_control_error",
        Reason::SETTINGS_TIMEOUT => "settings_timeout",
        Reason::STREAM_CLOSED => "stream_closed",
        Reason::FRAME_SIZE_ERROR => "frame_size_error",
        Reason::REFUSED_STREAM => "refused_stream",
        Reason::CANCEL => "cancel",
        Reason::COMPRESSION_ERROR => "compression_error",
        Reason::CONNECT_ERROR => "connect_error",
        Reason::ENHANCE_YOUR_CALM => "enhance_your_calm",
        Reason::INADEQUATE_SECURITY => "inadequate_security",
        Reason::HTTP_1_1_REQUIRED => "http_1_1_required",
        _ => "unknown",
    }
}

/// Sends GOAWAY `NO_ERROR` and returns when the socket closes at the latest. Without a
/// stream running the connection closes once the GOAWAY (naming the last stream we
/// processed, so the client knows what to retry) is out, as Go's server closes an idle
/// connection; with streams running, the two-step graceful shutdown lets them finish.
fn shut_down<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    conn: &mut h2::server::Connection<T, Bytes>,
    idle: bool,
    write_timeout: Duration,
) -> Instant {
    if idle {
        conn.abrupt_shutdown(Reason::NO_ERROR);
        Instant::now() + ABUSE_LINGER
    } else {
        conn.graceful_shutdown();
        Instant::now() + write_timeout.min(CLOSE_GRACE_CAP)
    }
}

/// Serves an HTTP/2 connection until the client closes it, an error ends it, or a GOAWAY
/// we sent (drain, `max_connection_age`, idle timeout, abuse) has run its course.
/// `prefix` holds what the HTTP/1.1 loop already read from the socket.
pub async fn serve<S: Service>(
    sock: monoio::net::TcpStream,
    prefix: Bytes,
    setup: Setup,
    svc: Rc<S>,
    env: Rc<ConnEnv>,
    max_age_at: Option<Instant>,
) {
    let limits = env.limits.get();
    let Some(h2l) = limits.http2 else { return };
    let metrics = env.http2_metrics.clone();
    let mut io = Prefixed::new(prefix, sock);
    let handshake_deadline = Instant::now() + limits.read_timeout;
    let setup_label = match setup {
        Setup::PriorKnowledge => "prior_knowledge",
        Setup::Upgrade(frames) => {
            if !upgrade::inject_after_preface(&mut io, frames, handshake_deadline).await {
                return;
            }
            "upgrade"
        }
    };
    let mut builder = h2::server::Builder::new();
    builder
        .max_concurrent_streams(h2l.max_concurrent_streams)
        .initial_window_size(h2l.initial_stream_window)
        .initial_connection_window_size(h2l.initial_connection_window)
        .max_frame_size(h2l.max_frame_size)
        .max_header_list_size(h2l.max_header_list_size)
        .header_table_size(h2l.header_table_size)
        .max_pending_accept_reset_streams(h2l.max_pending_reset_streams)
        .max_local_error_reset_streams(Some(h2l.max_local_error_resets))
        .max_send_buffer_size(h2l.max_send_buffer as usize);
    let handshake = builder.handshake::<_, Bytes>(io);
    let mut conn = match monoio::time::timeout_at(handshake_deadline.into(), handshake).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => {
            if let (Some(m), Some(r)) = (&metrics, e.reason()) {
                m.goaways.with_label_values(&[code_label(r)]).inc();
            }
            return;
        }
        Err(_) => return,
    };
    if let Some(m) = &metrics {
        m.connections.with_label_values(&[setup_label]).inc();
        h2l.publish(m);
    }
    let now = Instant::now();
    let state = Rc::new(ConnState {
        live: Cell::new(0),
        last_active: Cell::new(now),
        reset_tokens: Cell::new(f64::from(h2l.max_rapid_resets)),
        reset_refilled: Cell::new(now),
        calm: LocalSignal::new(),
        metrics: metrics.clone(),
    });
    // Set once a GOAWAY is sent: the socket closes when the streams are done or then.
    let mut close_by: Option<Instant> = None;
    let goaway = |code: Reason| {
        if let Some(m) = &metrics {
            m.goaways.with_label_values(&[code_label(code)]).inc();
        }
    };
    // One timer for the connection, moved only when its deadline changes, never per
    // stream: the next idle check, `max_connection_age`, and after a GOAWAY the close
    // deadline. The idle check is lazy: when it fires on a busy connection (or one that
    // was busy since), it moves to the earliest moment the connection could have been
    // idle for `idle_timeout`.
    let mut idle_check = now + limits.idle_timeout;
    let mut armed = idle_check;
    let mut timer = std::pin::pin!(monoio::time::sleep_until(armed.into()));
    loop {
        let limits_now = env.limits.get();
        // Read when a branch fires: handlers end without waking this loop.
        let idle = || state.live.get() == 0;
        let closing = close_by.is_some();
        let wake = if closing {
            close_by.unwrap_or(idle_check)
        } else {
            max_age_at.map_or(idle_check, |a| a.min(idle_check))
        };
        if wake != armed {
            armed = wake;
            timer.as_mut().reset(wake.into());
        }
        monoio::select! {
            next = conn.accept() => match next {
                Some(Ok((req, respond))) => {
                    stream::start(req, respond, &svc, &env, &state, h2l);
                }
                Some(Err(e)) => {
                    // The library sent (or received) a GOAWAY for a protocol violation.
                    if let Some(r) = e.reason()
                        && !e.is_remote()
                        && !closing
                    {
                        goaway(r);
                    }
                    tracing::debug!(error = %e, "HTTP/2 connection ended");
                    return;
                }
                None => return,
            },
            _ = timer.as_mut() => {
                let t = Instant::now();
                if close_by.is_some_and(|c| t >= c) {
                    return;
                }
                if closing {
                    continue;
                }
                if max_age_at.is_some_and(|a| t >= a) {
                    close_by = Some(shut_down(&mut conn, idle(), limits_now.write_timeout));
                    goaway(Reason::NO_ERROR);
                } else if t >= idle_check {
                    let since = if idle() { state.last_active.get() } else { t };
                    idle_check = since + limits_now.idle_timeout;
                    if t >= idle_check {
                        close_by = Some(shut_down(&mut conn, true, limits_now.write_timeout));
                        goaway(Reason::NO_ERROR);
                    }
                }
            },
            _ = env.drain.wait(), if !closing => {
                close_by = Some(shut_down(&mut conn, idle(), limits_now.write_timeout));
                goaway(Reason::NO_ERROR);
            },
            _ = state.calm.wait(), if !closing => {
                conn.abrupt_shutdown(Reason::ENHANCE_YOUR_CALM);
                goaway(Reason::ENHANCE_YOUR_CALM);
                close_by = Some(Instant::now() + ABUSE_LINGER);
            },
        }
    }
}
