//! What the inbound connection loops (HTTP/1.1 in [`super::server`], HTTP/2 in
//! [`super::h2`]) share: the per-connection limits and environment, and the [`Service`]
//! a request is handed to with what admission decided.

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::h2::limits::Http2Limits;
use super::head::RequestHead;
use super::response::Response;
use super::transport::PeerCert;
use crate::metrics::RejectReason;
use crate::metrics::http2::Http2Metrics;
use crate::util::coarse_timer::CoarseTimer;
use crate::util::notify::LocalSignal;

/// Per-request limits, read at the start of each request so that a reload applies to
/// established connections too.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnLimits {
    pub max_header_bytes: usize,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub idle_timeout: Duration,
    /// Close keep-alive connections after this age (0 = never), so that clients behind an
    /// L4 balancer spread again across instances.
    pub max_age: Duration,
    /// Fraction of `max_age` randomly taken off per connection, so connections opened
    /// together do not all close together.
    pub max_age_jitter: f64,
    /// HTTP/2 on this listener (`None`: HTTP/1.1 only).
    pub http2: Option<Http2Limits>,
}

/// What the connection loop needs from its worker.
pub struct ConnEnv {
    pub limits: Cell<ConnLimits>,
    /// Fired when the worker starts draining: idle connections close, busy ones answer with
    /// `Connection: close`.
    pub drain: Rc<LocalSignal>,
    /// Keep-alive idle waits use this coarse timer (a few bytes per idle connection instead
    /// of a ~640-byte monoio `Sleep`). [`ConnEnv::start_drain`] cuts its waits short.
    pub idle_timer: Rc<CoarseTimer>,
    /// When this env was made: connection ages are kept as milliseconds since then.
    pub epoch: Instant,
    /// Where HTTP/2 connections are counted (none in the load generator's sink).
    pub http2_metrics: Option<Arc<Http2Metrics>>,
}

impl ConnEnv {
    pub fn new(limits: ConnLimits, drain: Rc<LocalSignal>) -> Rc<Self> {
        Self::with_metrics(limits, drain, None)
    }

    pub fn with_metrics(
        limits: ConnLimits,
        drain: Rc<LocalSignal>,
        http2_metrics: Option<Arc<Http2Metrics>>,
    ) -> Rc<Self> {
        Rc::new(Self {
            limits: Cell::new(limits),
            drain,
            idle_timer: CoarseTimer::new(),
            epoch: Instant::now(),
            http2_metrics,
        })
    }

    /// Starts the worker's drain: waiters on `drain` wake, and idle keep-alive connections
    /// (which wait on `idle_timer` only) close.
    pub fn start_drain(&self) {
        self.drain.fire();
        self.idle_timer.cut_all();
    }

    /// Milliseconds since [`ConnEnv::epoch`], wrapping every 49.7 days: only differences
    /// are used, and no connection age that matters comes near that.
    pub fn now_ms(&self) -> u32 {
        self.epoch.elapsed().as_millis() as u32
    }
}

/// The decision taken from the head alone, before any body byte is read. `R` is the
/// service's own route type: what it learnt from the head travels with the request.
pub enum Admission<R> {
    Accept { route: R, max_body: u64 },
    Respond { route: R, response: Response },
}

pub struct Request<R> {
    pub head: RequestHead,
    pub body: Bytes,
    pub route: R,
    /// When the first byte of the request arrived.
    pub received_at: Instant,
    /// The server's own answer deadline (end of head + write timeout); the service should
    /// answer before it.
    pub deadline: Instant,
    /// The connection's socket (valid while the request is served; -1 in tests), for
    /// [`Request::peer_ip`]: looked up only when needed, so the normal path makes no
    /// `getpeername` call.
    pub fd: std::os::fd::RawFd,
    /// The client certificate, on a TLS connection where one was presented.
    pub peer_cert: Option<Rc<PeerCert>>,
}

impl<R> Request<R> {
    /// The client's IP address, if the socket still has a peer.
    pub fn peer_ip(&self) -> Option<std::net::IpAddr> {
        if self.fd < 0 {
            return None;
        }
        // SAFETY: `fd` is the socket of the connection serving this request; it stays open
        // for as long as the request exists, and is only borrowed here.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.fd) };
        socket2::SockRef::from(&fd)
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map(|a| a.ip())
    }
}

pub trait Service: 'static {
    /// What `admit` learns from the head and hands to `call` (a copy is kept for the
    /// accounting and for the loop's own error answers).
    type Route: Clone;
    fn admit(&self, head: &RequestHead) -> Admission<Self::Route>;
    fn call(&self, req: Request<Self::Route>) -> impl Future<Output = Response>;
    /// Called once per response written, including the loop's own error responses (with
    /// the admitted route, or `None` when the head could not be read).
    fn record(
        &self,
        _route: Option<&Self::Route>,
        _status: u16,
        _elapsed: Duration,
        _body_bytes: u64,
    ) {
    }
    /// Called when the loop refuses a request itself.
    fn rejected(&self, _reason: RejectReason) {}
    /// The response to an error the loop answers itself (413, 408, 400, 503 on a known
    /// route), so a route can speak its own protocol (Connect JSON on Push).
    fn error_response(
        &self,
        _route: Option<&Self::Route>,
        _reason: RejectReason,
        status: u16,
        message: &str,
    ) -> Response {
        Response::text(status, format!("{message}\n"))
    }
}
