//! One HTTP/2 stream: its head becomes a [`RequestHead`], admission and the body limit
//! apply as on HTTP/1.1, and the [`Service`]'s [`Response`] goes back with its trailers.

use std::borrow::Cow;
use std::future::poll_fn;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{Reason, RecvStream};

use super::{ConnState, Http2Limits};
use crate::http::head::RequestHead;
use crate::http::response::{HeaderValue, Response};
use crate::http::service::{Admission, ConnEnv, Request, Service};
use crate::metrics::RejectReason;

/// Headers HTTP/2 forbids in a response (RFC 9113 §8.2.2); our HTTP/1.1 responses may carry
/// them.
const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
];

/// Starts serving a stream the connection accepted: refused when the connection already
/// runs `max_concurrent_streams` handlers, else spawned on this worker.
pub(super) fn start<S: Service>(
    req: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    svc: &Rc<S>,
    env: &Rc<ConnEnv>,
    state: &Rc<ConnState>,
    h2l: Http2Limits,
) {
    if let Some(m) = &state.metrics {
        m.streams.inc();
    }
    if state.live.get() >= h2l.max_concurrent_streams {
        // Only reachable when streams the client reset still have handlers running.
        respond.send_reset(Reason::REFUSED_STREAM);
        state.reset("refused");
        state.strike(h2l.max_rapid_resets);
        return;
    }
    state.live.set(state.live.get() + 1);
    let (svc, env, state) = (svc.clone(), env.clone(), state.clone());
    monoio::spawn(async move {
        let live = Live(state.clone());
        Box::pin(serve_stream(req, respond, &svc, &env, &state, h2l)).await;
        drop(live);
    });
}

/// Decrements the live count however the handler ends; the last one to end starts the
/// connection's idle time (its timer checks it lazily, so nothing is woken here).
struct Live(Rc<ConnState>);

impl Drop for Live {
    fn drop(&mut self) {
        let live = self.0.live.get().saturating_sub(1);
        self.0.live.set(live);
        if live == 0 {
            self.0.last_active.set(Instant::now());
        }
    }
}

enum BodyError {
    TooLarge,
    TimedOut,
    /// The client reset the stream or the connection ended.
    Gone,
}

async fn serve_stream<S: Service>(
    req: http::Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    svc: &Rc<S>,
    env: &Rc<ConnEnv>,
    state: &Rc<ConnState>,
    h2l: Http2Limits,
) {
    let started = Instant::now();
    let limits = env.limits.get();
    let (parts, mut recv) = req.into_parts();
    let headers = parts
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()));
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = parts.uri.authority().map(|a| a.as_str());
    let head = match RequestHead::from_h2(parts.method.as_str(), target, authority, headers) {
        Ok(h) => h,
        Err(e) => {
            svc.rejected(e.reason());
            let resp = svc.error_response(None, e.reason(), e.status(), &e.to_string());
            let status = resp.status;
            send(&mut respond, resp, state, limits.write_timeout).await;
            svc.record(None, status, started.elapsed(), 0);
            return;
        }
    };
    let (route, max_body) = match svc.admit(&head) {
        Admission::Accept { route, max_body } => (route, max_body),
        Admission::Respond { route, response } => {
            let status = response.status;
            send(&mut respond, response, state, limits.write_timeout).await;
            svc.record(Some(&route), status, started.elapsed(), 0);
            return;
        }
    };
    let declared = head
        .header("content-length")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.parse::<u64>().ok());
    let body = if declared.is_some_and(|n| n > max_body) {
        Err(BodyError::TooLarge)
    } else {
        let read_deadline = started + limits.read_timeout;
        read_body(&mut recv, max_body, declared, read_deadline).await
    };
    let body = match body {
        Ok(b) => b,
        Err(BodyError::Gone) => {
            state.reset("client_cancel");
            state.strike(h2l.max_rapid_resets);
            return;
        }
        Err(why) => {
            let (reason, status, msg) = match why {
                BodyError::TooLarge => (RejectReason::BodyTooLarge, 413, "request body too large"),
                _ => (RejectReason::ReadTimeout, 408, "request timeout"),
            };
            svc.rejected(reason);
            let resp = svc.error_response(Some(&route), reason, status, msg);
            send(&mut respond, resp, state, limits.write_timeout).await;
            // The rest of the body is not wanted: dropping `recv` resets our receiving side.
            drop(recv);
            svc.record(Some(&route), status, started.elapsed(), 0);
            return;
        }
    };
    let deadline = Instant::now() + limits.write_timeout;
    let body_len = body.len() as u64;
    let admitted = route.clone();
    let request = Request {
        head,
        body,
        route,
        received_at: started,
        deadline,
        // The socket belongs to the connection task, which may end before this handler:
        // the peer address is not looked up on HTTP/2 streams.
        fd: -1,
        peer_cert: None,
    };
    let call = Box::pin(monoio::time::timeout_at(deadline.into(), svc.call(request)));
    let reset = poll_fn(|cx| respond.poll_reset(cx));
    let resp = monoio::select! {
        r = call => match r {
            Ok(r) => r,
            Err(_) => {
                svc.rejected(RejectReason::WriteTimeout);
                svc.error_response(Some(&admitted), RejectReason::WriteTimeout, 503, "Service Unavailable")
                    .header("Retry-After", "1")
            }
        },
        _ = reset => {
            // The client gave up: the handler's work stops with it.
            state.reset("client_cancel");
            state.strike(h2l.max_rapid_resets);
            svc.record(Some(&admitted), 499, started.elapsed(), body_len);
            return;
        }
    };
    let status = resp.status;
    send(
        &mut respond,
        resp,
        state,
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100)),
    )
    .await;
    svc.record(Some(&admitted), status, started.elapsed(), body_len);
}

/// Collects a stream's body up to `max` bytes, returning flow-control credit as it goes
/// (the window then bounds what is in flight, `max` what is kept). A body of several DATA
/// frames is gathered in one buffer sized by its `content-length` (`declared`, at most
/// `max`), so it is not reallocated as the frames arrive.
async fn read_body(
    recv: &mut RecvStream,
    max: u64,
    declared: Option<u64>,
    deadline: Instant,
) -> Result<Bytes, BodyError> {
    let mut body = BytesMut::new();
    loop {
        let next = poll_fn(|cx| recv.poll_data(cx));
        let chunk = match monoio::time::timeout_at(deadline.into(), next).await {
            Err(_) => return Err(BodyError::TimedOut),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(BodyError::Gone),
            Ok(Some(Ok(c))) => c,
        };
        let _ = recv.flow_control().release_capacity(chunk.len());
        if (body.len() + chunk.len()) as u64 > max {
            return Err(BodyError::TooLarge);
        }
        if body.is_empty() && recv.is_end_stream() {
            // The common case, one DATA frame: no copy.
            return Ok(chunk);
        }
        if body.is_empty() {
            let want = declared.unwrap_or(0).min(max) as usize;
            body.reserve(want.max(chunk.len()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Sends `resp` (head, body, trailers). A body the peer's window does not let out within
/// `timeout` resets the stream, so a peer that never reads cannot make us keep it.
async fn send(
    respond: &mut SendResponse<Bytes>,
    mut resp: Response,
    state: &ConnState,
    timeout: Duration,
) {
    let Some(head) = response_head(&mut resp) else {
        respond.send_reset(Reason::INTERNAL_ERROR);
        state.reset("internal");
        return;
    };
    let trailers = trailer_map(std::mem::take(&mut resp.trailers));
    let end_now = resp.body.is_empty() && trailers.is_none();
    let Ok(mut out) = respond.send_response(head, end_now) else {
        return;
    };
    if end_now {
        return;
    }
    let mut rest = resp.body;
    let deadline = Instant::now() + timeout;
    while !rest.is_empty() {
        out.reserve_capacity(rest.len());
        while out.capacity() == 0 {
            let more = poll_fn(|cx| out.poll_capacity(cx));
            match monoio::time::timeout_at(deadline.into(), more).await {
                Ok(Some(Ok(_))) => {}
                Ok(_) => return,
                Err(_) => {
                    out.send_reset(Reason::CANCEL);
                    state.reset("write_timeout");
                    return;
                }
            }
        }
        let chunk = rest.split_to(out.capacity().min(rest.len()));
        if out
            .send_data(chunk, rest.is_empty() && trailers.is_none())
            .is_err()
        {
            return;
        }
    }
    if let Some(t) = trailers {
        let _ = out.send_trailers(t);
    }
}

/// The response head for `h2`: names and values converted without the builder's
/// re-parsing (names are our own constants: `from_bytes` lowercases them; values are
/// validated but not copied, the headers are taken out of `resp`), minus what HTTP/2
/// forbids.
fn response_head(resp: &mut Response) -> Option<http::Response<()>> {
    let mut head = http::Response::new(());
    *head.status_mut() = http::StatusCode::from_u16(resp.status).ok()?;
    let map = head.headers_mut();
    map.reserve(resp.headers.len() + 1);
    for (name, value) in std::mem::take(&mut resp.headers) {
        if CONNECTION_SPECIFIC
            .iter()
            .any(|c| c.eq_ignore_ascii_case(name))
            || name.eq_ignore_ascii_case("content-length")
        {
            continue;
        }
        map.append(header_name(name)?, header_value(value)?);
    }
    if !resp.body.is_empty() {
        map.insert(http::header::CONTENT_LENGTH, resp.body.len().into());
    }
    Some(head)
}

fn header_name(name: &'static str) -> Option<http::header::HeaderName> {
    http::header::HeaderName::from_bytes(name.as_bytes()).ok()
}

fn header_value(value: HeaderValue) -> Option<http::HeaderValue> {
    let bytes = match value {
        Cow::Borrowed(s) => Bytes::from_static(s.as_bytes()),
        Cow::Owned(s) => Bytes::from(s),
    };
    http::HeaderValue::from_maybe_shared(bytes).ok()
}

fn trailer_map(trailers: Vec<(&'static str, HeaderValue)>) -> Option<http::HeaderMap> {
    if trailers.is_empty() {
        return None;
    }
    let mut map = http::HeaderMap::with_capacity(trailers.len());
    for (name, value) in trailers {
        if let (Some(n), Some(v)) = (header_name(name), header_value(value)) {
            map.append(n, v);
        }
    }
    Some(map)
}
