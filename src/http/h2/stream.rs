//! One HTTP/2 stream's request and answer: the decoded header list becomes a
//! [`RequestHead`] (after RFC 9113 §8.2–8.3's checks), the handler runs as its own task on
//! this worker, and a [`Response`] is encoded as HEADERS, DATA and trailers.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant;

use super::hpack::{self, HeaderList};
use crate::http::head::{HeadError, RequestHead};
use crate::http::response::{Response, decimal};
use crate::http::service::{Request, Service};
use crate::metrics::RejectReason;
use crate::metrics::http2::Http2Metrics;
use crate::util::notify::LocalSignal;

/// Headers that are about one HTTP/1.1 connection: malformed in an HTTP/2 request, left
/// out of our HTTP/2 responses (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: [&[u8]; 5] = [
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"upgrade",
];

/// What a connection shares with its streams' handler tasks.
pub(super) struct Shared {
    /// Handlers still running (a client reset ends a stream at once, and its handler at
    /// its next poll: until then it counts here, and `max_concurrent_streams` bounds it).
    pub live: Cell<u32>,
    /// When the last stream ended (or the connection started): the idle timeout counts
    /// from here while no stream is open.
    pub last_active: Cell<Instant>,
    /// Answers of finished handlers, by stream, for the connection to send.
    done: RefCell<Vec<(u32, Response)>>,
    /// The connection task, woken when an answer is ready.
    waker: RefCell<Option<Waker>>,
    pub metrics: Option<Arc<Http2Metrics>>,
}

impl Shared {
    pub fn new(now: Instant, metrics: Option<Arc<Http2Metrics>>) -> Self {
        Self {
            live: Cell::new(0),
            last_active: Cell::new(now),
            done: RefCell::new(Vec::new()),
            waker: RefCell::new(None),
            metrics,
        }
    }

    /// Remembers the connection task's waker.
    pub fn register(&self, w: &Waker) {
        let mut slot = self.waker.borrow_mut();
        if !slot.as_ref().is_some_and(|s| s.will_wake(w)) {
            *slot = Some(w.clone());
        }
    }

    /// Takes the answers ready so far into `into` (emptied first).
    pub fn take_done(&self, into: &mut Vec<(u32, Response)>) {
        into.clear();
        std::mem::swap(&mut *self.done.borrow_mut(), into);
    }

    fn complete(&self, stream: u32, resp: Response) {
        let first = {
            let mut d = self.done.borrow_mut();
            d.push((stream, resp));
            d.len() == 1
        };
        if first && let Some(w) = self.waker.borrow().as_ref() {
            w.wake_by_ref();
        }
    }

    /// Counts a stream reset in `pyrogate_http2_stream_resets_total{reason}`.
    pub fn reset(&self, reason: &str) {
        if let Some(m) = &self.metrics {
            m.stream_resets.with_label_values(&[reason]).inc();
        }
    }
}

/// Decrements the live count however the handler ends.
struct Live(Rc<Shared>);

impl Drop for Live {
    fn drop(&mut self) {
        let live = self.0.live.get().saturating_sub(1);
        self.0.live.set(live);
        self.0.last_active.set(Instant::now());
    }
}

/// Starts the handler of a complete request on this worker. Firing the returned signal
/// (the client reset the stream, or the connection ended) stops it.
pub(super) fn spawn_handler<S: Service>(
    svc: &Rc<S>,
    shared: &Rc<Shared>,
    stream: u32,
    request: Request<S::Route>,
) -> Rc<LocalSignal> {
    let cancel = Rc::new(LocalSignal::new());
    shared.live.set(shared.live.get() + 1);
    let (svc, shared, c) = (svc.clone(), shared.clone(), cancel.clone());
    monoio::spawn(async move {
        let live = Live(shared.clone());
        Box::pin(run(svc, shared, stream, request, c)).await;
        drop(live);
    });
    cancel
}

async fn run<S: Service>(
    svc: Rc<S>,
    shared: Rc<Shared>,
    stream: u32,
    request: Request<S::Route>,
    cancel: Rc<LocalSignal>,
) {
    let started = request.received_at;
    let deadline = request.deadline;
    let body_len = request.body.len() as u64;
    let route = request.route.clone();
    let call = monoio::time::timeout_at(deadline.into(), svc.call(request));
    let resp = monoio::select! {
        r = call => match r {
            Ok(r) => r,
            Err(_) => {
                svc.rejected(RejectReason::WriteTimeout);
                svc.error_response(Some(&route), RejectReason::WriteTimeout, 503, "Service Unavailable")
                    .header("Retry-After", "1")
            }
        },
        _ = cancel.wait() => {
            // The client gave up (or the connection ended): the work stops with it.
            svc.record(Some(&route), 499, started.elapsed(), body_len);
            return;
        }
    };
    let status = resp.status;
    shared.complete(stream, resp);
    svc.record(Some(&route), status, started.elapsed(), body_len);
}

/// How a header list failed to be a request.
pub(super) enum BadHead {
    /// Malformed in HTTP/2 terms (RFC 9113 §8.1.1): the stream is reset with
    /// PROTOCOL_ERROR.
    Malformed,
    /// A well-formed HTTP/2 request the HTTP layer refuses (answered with its status).
    Refused(HeadError),
}

/// The request head of a decoded header list, after RFC 9113's checks: pseudo-headers
/// first, each once, only the request ones, `:method`, `:scheme` and `:path` present
/// (CONNECT is not served); lower-case field names of token characters; no
/// connection-specific fields; `te` only as `trailers`; no NUL, CR or LF in values.
pub(super) fn request_head(fields: &HeaderList) -> Result<RequestHead, BadHead> {
    let (mut method, mut scheme, mut path, mut authority) = (None, None, None, None);
    let mut regular = 0usize;
    for (name, value) in fields.iter() {
        if value.iter().any(|b| matches!(b, 0 | b'\r' | b'\n')) {
            return Err(BadHead::Malformed);
        }
        if let Some(pseudo) = name.strip_prefix(b":") {
            if regular > 0 {
                return Err(BadHead::Malformed);
            }
            let slot = match pseudo {
                b"method" => &mut method,
                b"scheme" => &mut scheme,
                b"path" => &mut path,
                b"authority" => &mut authority,
                _ => return Err(BadHead::Malformed),
            };
            if slot.replace(value).is_some() {
                return Err(BadHead::Malformed);
            }
            continue;
        }
        regular += 1;
        if name.is_empty() || !name.iter().all(|b| is_name_byte(*b)) {
            return Err(BadHead::Malformed);
        }
        if CONNECTION_SPECIFIC.contains(&name) || (name == b"te" && value != b"trailers") {
            return Err(BadHead::Malformed);
        }
    }
    let (Some(method), Some(_), Some(path)) = (method, scheme, path) else {
        return Err(BadHead::Malformed);
    };
    if path.is_empty() || method == b"CONNECT" {
        return Err(BadHead::Malformed);
    }
    let (Ok(method), Ok(path)) = (std::str::from_utf8(method), std::str::from_utf8(path)) else {
        return Err(BadHead::Malformed);
    };
    let authority = match authority.map(std::str::from_utf8) {
        Some(Ok(a)) => Some(a),
        Some(Err(_)) => return Err(BadHead::Malformed),
        None => None,
    };
    let headers = fields.iter().filter(|(n, _)| !n.starts_with(b":"));
    RequestHead::from_h2(method, path, authority, headers).map_err(BadHead::Refused)
}

/// RFC 9110 token characters, lower case only (RFC 9113 §8.2.1).
fn is_name_byte(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*'
        | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~')
}

/// Encodes `resp`'s head into `block` (emptied first): `:status`, its headers minus
/// those HTTP/2 forbids, and `content-length` for a body.
pub(super) fn encode_head(block: &mut Vec<u8>, resp: &Response) {
    block.clear();
    hpack::encode_status(block, resp.status);
    for (name, value) in &resp.headers {
        let name = name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length")
            || CONNECTION_SPECIFIC
                .iter()
                .any(|c| c.eq_ignore_ascii_case(name))
        {
            continue;
        }
        field(block, name, value.as_bytes());
    }
    if !resp.body.is_empty() {
        let mut digits = [0u8; 20];
        hpack::encode_field(
            block,
            b"content-length",
            decimal(resp.body.len() as u64, &mut digits),
        );
    }
}

/// Encodes `resp`'s trailers into `block` (emptied first); empty when it has none.
pub(super) fn encode_trailers(block: &mut Vec<u8>, resp: &Response) {
    block.clear();
    for (name, value) in &resp.trailers {
        field(block, name.as_bytes(), value.as_bytes());
    }
}

/// Longest header name lower-cased on the stack (ours are constants well below it).
const NAME_MAX: usize = 64;

/// One field, its name lower-cased (our names are constants such as `Content-Type`).
fn field(block: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    if !name.iter().any(u8::is_ascii_uppercase) {
        hpack::encode_field(block, name, value);
    } else if let Some(lower) = (name.len() <= NAME_MAX).then(|| {
        let mut buf = [0u8; NAME_MAX];
        buf[..name.len()].copy_from_slice(name);
        buf[..name.len()].make_ascii_lowercase();
        buf
    }) {
        hpack::encode_field(block, &lower[..name.len()], value);
    } else {
        hpack::encode_field(block, &name.to_ascii_lowercase(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::h2::hpack::Decoder;
    use bytes::Bytes;

    fn list(fields: &[(&str, &str)]) -> HeaderList {
        let mut block = Vec::new();
        for (n, v) in fields {
            hpack::encode_field(&mut block, n.as_bytes(), v.as_bytes());
        }
        let mut out = HeaderList::default();
        Decoder::new(4096)
            .decode(&block, 1 << 20, &mut out)
            .expect("decodes");
        out
    }

    const OK: [(&str, &str); 4] = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/ingest?name=a"),
        (":authority", "gw:4040"),
    ];

    #[test]
    fn a_valid_request_becomes_a_head() {
        let mut f = OK.to_vec();
        f.push(("content-type", "application/grpc"));
        f.push(("te", "trailers"));
        let head = request_head(&list(&f)).ok().expect("valid");
        assert_eq!(head.method_str(), "POST");
        assert_eq!(head.path(), "/ingest");
        assert_eq!(head.query(), Some("name=a"));
        assert_eq!(head.host(), Some(&b"gw:4040"[..]));
        assert_eq!(head.header("content-type"), Some(&b"application/grpc"[..]));
    }

    #[test]
    fn malformed_requests_are_refused() {
        let bad: Vec<Vec<(&str, &str)>> = vec![
            // a pseudo-header after a regular one
            vec![
                (":method", "GET"),
                ("x", "1"),
                (":scheme", "http"),
                (":path", "/"),
            ],
            // a duplicate, an unknown and a response pseudo-header
            vec![
                (":method", "GET"),
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
            ],
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":foo", "x"),
            ],
            vec![
                (":status", "200"),
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
            ],
            // missing :path, empty :path, CONNECT
            vec![(":method", "GET"), (":scheme", "http")],
            vec![(":method", "GET"), (":scheme", "http"), (":path", "")],
            vec![(":method", "CONNECT"), (":scheme", "http"), (":path", "/")],
            // upper case, connection-specific, te other than trailers, CR in a value
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("X-Up", "1"),
            ],
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("connection", "close"),
            ],
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("te", "gzip"),
            ],
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                ("x", "a\rb"),
            ],
        ];
        for f in bad {
            assert!(
                matches!(request_head(&list(&f)), Err(BadHead::Malformed)),
                "{f:?} accepted"
            );
        }
    }

    #[test]
    fn responses_encode_without_forbidden_headers() {
        let mut resp = Response::new(503)
            .header("Retry-After", "1")
            .header("Connection", "close")
            .header("Content-Length", "999");
        resp.body = Bytes::from_static(b"{}");
        resp.trailers.push(("grpc-status", "14".into()));
        let mut block = Vec::new();
        encode_head(&mut block, &resp);
        let mut out = HeaderList::default();
        let mut d = Decoder::new(4096);
        d.decode(&block, 1 << 20, &mut out).expect("decodes");
        let got: Vec<(Vec<u8>, Vec<u8>)> =
            out.iter().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
        assert_eq!(
            got,
            vec![
                (b":status".to_vec(), b"503".to_vec()),
                (b"retry-after".to_vec(), b"1".to_vec()),
                (b"content-length".to_vec(), b"2".to_vec()),
            ]
        );
        encode_trailers(&mut block, &resp);
        out.clear();
        d.decode(&block, 1 << 20, &mut out).expect("decodes");
        assert_eq!(out.iter().next(), Some((&b"grpc-status"[..], &b"14"[..])));
    }
}
