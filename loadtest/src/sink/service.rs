//! The sink's routes: Pyroscope's two ingest endpoints plus `/stats`, `/stats/reset`,
//! `/control` and health checks, served by pyrogate's own connection loop.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pyrogate::http::server::{Admission, ROUTE_NONE, Request, Service};
use pyrogate::http::{BodyFraming, Method, RequestHead, Response};
use pyrogate::protocol::connect::{self, Code};
use pyrogate::protocol::push;
use pyrogate::protocol::push_decode::{self, Codec, Protocol};
use pyrogate::protocol::query;

use super::check::{self, CheckLimits, Checks, Verdict};
use super::faults::{Decision, Faults, InjectedError};
use super::stats::{Outcome, Route, Stats};
use crate::fnv;

pub const PUSH_PATH: &str = "/push.v1.PusherService/Push";
const PUSH_SERVICE_PREFIX: &str = "/push.v1.PusherService/";

const ROUTE_PUSH: u8 = 0;
const ROUTE_INGEST: u8 = 1;
const ROUTE_STATS: u8 = 2;
const ROUTE_STATS_RESET: u8 = 3;
const ROUTE_CONTROL: u8 = 4;
const ROUTE_HEALTH: u8 = 5;

/// Control and stats requests carry no meaningful body.
const MAX_ADMIN_BODY: u64 = 64 * 1024;
/// Bounds of what one record keeps from the head.
const MAX_RECORDED_HEADERS: usize = 32;
const MAX_HEADER_VALUE: usize = 1024;
const MAX_TARGET: usize = 8 * 1024;
const MAX_TENANT: usize = 256;
/// The tenant of requests without `X-Scope-OrgID` (Pyroscope's default).
pub const DEFAULT_TENANT: &str = "anonymous";

/// State shared by every worker.
pub struct Shared {
    pub stats: Mutex<Stats>,
    pub faults: Mutex<Faults>,
    pub limits: CheckLimits,
    pub checks: Checks,
    /// Checksum bodies (`body_fnv`, `checksum_sum`).
    pub checksum: bool,
    /// Largest accepted request body.
    pub max_body: u64,
    /// How long an injected hang holds a request before the sink gives up on it.
    pub hang_for: Duration,
}

impl Shared {
    pub fn stats(&self) -> MutexGuard<'_, Stats> {
        // A panic while holding the lock leaves plain counters behind; keep serving them.
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One per worker.
pub struct SinkService {
    worker: usize,
    shared: Arc<Shared>,
}

impl SinkService {
    pub fn new(worker: usize, shared: Arc<Shared>) -> Self {
        Self { worker, shared }
    }

    fn outcome(&self, head: &RequestHead, route: Route) -> Outcome {
        let mut target = head.path().to_owned();
        if let Some(q) = head.query() {
            target.push('?');
            target.push_str(q);
        }
        Outcome {
            worker: self.worker,
            route: Some(route),
            method: method_name(head.method).to_owned(),
            target: cut(&target, MAX_TARGET),
            tenant: tenant(head),
            headers: selected_headers(head),
            framing: match head.framing {
                BodyFraming::None => "none",
                BodyFraming::Length(_) => "length",
                BodyFraming::Chunked => "chunked",
            },
            ..Outcome::default()
        }
    }

    /// Records a request refused from its head alone and returns the response.
    fn refuse(&self, head: &RequestHead, route: Route, resp: Response) -> Admission {
        let mut o = self.outcome(head, route);
        o.status = Some(resp.status);
        if let Some((code, message)) = connect::parse_error_body(&resp.body) {
            o.error = Some((code.name().to_owned(), message));
        }
        self.shared.stats().add(o);
        Admission::Respond {
            route: route_id(route),
            response: resp,
        }
    }

    async fn profile(&self, req: Request, route: Route) -> Response {
        let head = &req.head;
        let mut o = self.outcome(head, route);
        o.body_len = Some(req.body.len() as u64);
        if self.shared.checksum {
            o.body_fnv = Some(fnv::fnv1a64(&req.body));
        }
        let verdict = match (self.shared.checks, route) {
            (Checks::None, _) => Verdict {
                error: None,
                profiles: 1,
                detail: check::Detail::None,
            },
            (Checks::Full, Route::Push) => check::push(head, req.body.clone(), self.shared.limits),
            (Checks::Full, Route::Ingest) => check::ingest(head, &req.body, self.shared.limits),
        };
        let (decision, latency) = self
            .shared
            .faults()
            .decide(pyrogate::util::rand::unit(), pyrogate::util::rand::unit());
        let Verdict {
            error,
            profiles,
            detail,
        } = verdict;
        o.detail = detail;
        let push_ct = push_decode::content_type(head.header("content-type").unwrap_or(b""));
        let resp = match decision {
            Decision::Hang => {
                o.fault = Some("hang");
                self.shared.stats().add(o);
                monoio::time::sleep(self.shared.hang_for).await;
                return Response::text(503, "Service Unavailable\n")
                    .header("Retry-After", "1")
                    .closing();
            }
            Decision::Fail(e) => {
                o.fault = Some("error");
                let code = e.code.unwrap_or_else(|| status_code(route, e.status));
                o.error = Some((code.name().to_owned(), e.message.clone()));
                injected(route, push_ct, &e, code)
            }
            Decision::Pass => match error {
                None => {
                    o.profiles = profiles;
                    success(route, push_ct)
                }
                Some(rej) => {
                    o.error = Some((rej.code.name().to_owned(), rej.message.clone()));
                    error_response(route, push_ct, rej.status, rej.code, &rej.message)
                }
            },
        };
        o.status = Some(resp.status);
        if !latency.is_zero() {
            o.delay_ms = latency.as_millis() as u64;
            monoio::time::sleep(latency).await;
        }
        self.shared.stats().add(o);
        resp
    }

    fn stats(&self, head: &RequestHead) -> Response {
        let q = query::parse(head.query().unwrap_or(""));
        let records = q.get("records").is_some_and(|v| v == "1" || v == "true");
        let limit = q.get("limit").and_then(|v| v.parse().ok());
        let mut doc = self.shared.stats().to_json(records, limit);
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("checks".into(), self.shared.checks.name().into());
        }
        json(200, &doc)
    }

    fn control(&self, head: &RequestHead) -> Response {
        let mut f = self.shared.faults();
        if head.method == Method::Post
            && let Err(e) = f.control(head.query().unwrap_or(""))
        {
            return Response::text(400, format!("{e}\n"));
        }
        json(200, &f.to_json(|s| status_code(Route::Push, s)))
    }
}

fn json(status: u16, v: &serde_json::Value) -> Response {
    Response::json(status, serde_json::to_vec(v).unwrap_or_default())
}

fn route_id(r: Route) -> u8 {
    match r {
        Route::Push => ROUTE_PUSH,
        Route::Ingest => ROUTE_INGEST,
    }
}

fn route_of(id: u8) -> Option<Route> {
    match id {
        ROUTE_PUSH => Some(Route::Push),
        ROUTE_INGEST => Some(Route::Ingest),
        _ => None,
    }
}

/// The Connect code an error status carries on each route: Push inverts the Connect table
/// (docs/push.md §6), `/ingest` uses Pyroscope's HTTP→code table (docs/ingest.md §12.1).
fn status_code(route: Route, status: u16) -> Code {
    match route {
        Route::Ingest => check::ingest_code(status),
        Route::Push => match status {
            400 => Code::InvalidArgument,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::NotFound,
            409 => Code::Aborted,
            429 => Code::ResourceExhausted,
            499 => Code::Canceled,
            501 => Code::Unimplemented,
            502 | 503 => Code::Unavailable,
            504 => Code::DeadlineExceeded,
            _ => Code::Unknown,
        },
    }
}

fn success(route: Route, ct: Option<push_decode::ContentType>) -> Response {
    match (route, ct) {
        (Route::Ingest, _) => Response::new(200),
        (Route::Push, Some(ct)) if ct.protocol != Protocol::Connect => grpc_web_ok(ct.codec),
        (Route::Push, Some(ct)) if ct.codec == Codec::Json => Response::new(200)
            .header("Content-Type", "application/json")
            .header("Accept-Encoding", "gzip")
            .body("{}"),
        (Route::Push, _) => Response::new(200)
            .header("Content-Type", "application/proto")
            .header("Accept-Encoding", "gzip"),
    }
}

fn error_response(
    route: Route,
    ct: Option<push_decode::ContentType>,
    status: u16,
    code: Code,
    message: &str,
) -> Response {
    match (route, ct) {
        (Route::Ingest, _) => {
            let mut body = connect::error_body(code, message);
            body.push(b'\n');
            Response::json(status, body).header("X-Content-Type-Options", "nosniff")
        }
        (Route::Push, Some(ct)) if ct.protocol != Protocol::Connect && status != 415 => {
            grpc_web_error(ct.codec, code, message)
        }
        (Route::Push, _) if status == 415 => {
            Response::new(415).header("Accept-Post", "application/json, application/proto")
        }
        (Route::Push, _) => Response::json(status, connect::error_body(code, message)),
    }
}

fn injected(
    route: Route,
    ct: Option<push_decode::ContentType>,
    e: &InjectedError,
    code: Code,
) -> Response {
    let resp = match (route, ct) {
        // gRPC-Web reports the code in trailers; the HTTP status stays 200 unless the test
        // asked for a plain HTTP failure (a status other than the code's own).
        (Route::Push, Some(ct))
            if ct.protocol != Protocol::Connect && e.status == code.http_status() =>
        {
            grpc_web_error(ct.codec, code, &e.message)
        }
        (Route::Ingest, _) => {
            let mut body = connect::error_body(code, &e.message);
            body.push(b'\n');
            Response::json(e.status, body).header("X-Content-Type-Options", "nosniff")
        }
        (Route::Push, _) => Response::json(e.status, connect::error_body(code, &e.message)),
    };
    match e.retry_after {
        Some(s) => resp.header("Retry-After", s.to_string()),
        None => resp,
    }
}

// === gRPC-Web ===

fn grpc_web_ct(codec: Codec) -> &'static str {
    match codec {
        Codec::Proto => "application/grpc-web+proto",
        Codec::Json => "application/grpc-web+json",
    }
}

fn grpc_web_ok(codec: Codec) -> Response {
    let msg: &[u8] = match codec {
        Codec::Proto => b"",
        Codec::Json => b"{}",
    };
    let mut body = Vec::with_capacity(32);
    body.push(0);
    body.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    body.extend_from_slice(msg);
    let trailers = b"grpc-status: 0\r\n";
    body.push(0x80);
    body.extend_from_slice(&(trailers.len() as u32).to_be_bytes());
    body.extend_from_slice(trailers);
    Response::new(200)
        .header("Content-Type", grpc_web_ct(codec))
        .header("Grpc-Accept-Encoding", "gzip")
        .body(body)
}

/// Trailers-only error: status and message as headers, no body.
fn grpc_web_error(codec: Codec, code: Code, message: &str) -> Response {
    Response::new(200)
        .header("Content-Type", grpc_web_ct(codec))
        .header("Grpc-Status", code.grpc_number().to_string())
        .header("Grpc-Message", grpc_percent_encode(message))
}

/// gRPC's `grpc-message` encoding: bytes outside 0x20..=0x7E and `%` become `%XX`.
fn grpc_percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// === head helpers ===

fn method_name(m: Method) -> &'static str {
    match m {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
        Method::Put => "PUT",
        Method::Delete => "DELETE",
        Method::Options => "OPTIONS",
        Method::Other => "OTHER",
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// `X-Scope-OrgID`, or [`DEFAULT_TENANT`] when absent or empty.
pub fn tenant(head: &RequestHead) -> String {
    match head.header("x-scope-orgid").map(|v| v.trim_ascii()) {
        Some(v) if !v.is_empty() => cut(&String::from_utf8_lossy(v), MAX_TENANT),
        _ => DEFAULT_TENANT.to_owned(),
    }
}

const RECORDED_HEADERS: &[&str] = &[
    "content-type",
    "content-encoding",
    "authorization",
    "user-agent",
    "connect-timeout-ms",
    "connect-protocol-version",
];

fn selected_headers(head: &RequestHead) -> Vec<(String, String)> {
    head.headers()
        .filter_map(|(n, v)| {
            let name = String::from_utf8_lossy(n).to_ascii_lowercase();
            let keep = RECORDED_HEADERS.contains(&name.as_str())
                || name.starts_with("x-")
                || name.starts_with("grpc-");
            keep.then(|| (name, cut(&String::from_utf8_lossy(v), MAX_HEADER_VALUE)))
        })
        .take(MAX_RECORDED_HEADERS)
        .collect()
}

fn not_found() -> Response {
    Response::text(404, "404 page not found\n")
}

fn method_not_allowed(route: u8, allow: &'static str) -> Admission {
    Admission::Respond {
        route,
        response: Response::new(405).header("Allow", allow),
    }
}

fn admin(head: &RequestHead, route: u8, allowed: &[Method], allow: &'static str) -> Admission {
    if allowed.contains(&head.method) {
        Admission::Accept {
            route,
            max_body: MAX_ADMIN_BODY,
        }
    } else {
        method_not_allowed(route, allow)
    }
}

// === impl Service ===

impl Service for SinkService {
    fn admit(&self, head: &RequestHead) -> Admission {
        let path = head.path();
        match path {
            PUSH_PATH => {
                if head.method != Method::Post {
                    let resp = Response::new(405).header("Allow", "POST");
                    return self.refuse(head, Route::Push, resp);
                }
                if let Err(resp) = push::admit(head) {
                    return self.refuse(head, Route::Push, resp);
                }
                Admission::Accept {
                    route: ROUTE_PUSH,
                    max_body: self.shared.max_body,
                }
            }
            "/ingest" | "/pyroscope/ingest" => {
                if head.method != Method::Post {
                    let resp = Response::new(405).header("Allow", "POST");
                    return self.refuse(head, Route::Ingest, resp);
                }
                Admission::Accept {
                    route: ROUTE_INGEST,
                    max_body: self.shared.max_body,
                }
            }
            "/stats" => admin(head, ROUTE_STATS, &[Method::Get, Method::Head], "GET, HEAD"),
            "/stats/reset" => admin(head, ROUTE_STATS_RESET, &[Method::Post], "POST"),
            "/control" => admin(
                head,
                ROUTE_CONTROL,
                &[Method::Get, Method::Post],
                "GET, POST",
            ),
            "/ready" | "/-/ready" | "/-/healthy" => admin(
                head,
                ROUTE_HEALTH,
                &[Method::Get, Method::Head],
                "GET, HEAD",
            ),
            p if p.starts_with(PUSH_SERVICE_PREFIX) => Admission::Respond {
                route: ROUTE_NONE,
                response: not_found(),
            },
            _ => Admission::Respond {
                route: ROUTE_NONE,
                response: not_found(),
            },
        }
    }

    async fn call(&self, req: Request) -> Response {
        match req.route {
            ROUTE_PUSH => self.profile(req, Route::Push).await,
            ROUTE_INGEST => self.profile(req, Route::Ingest).await,
            ROUTE_STATS => self.stats(&req.head),
            ROUTE_STATS_RESET => {
                self.shared.stats().reset();
                json(200, &serde_json::json!({"reset": true}))
            }
            ROUTE_CONTROL => self.control(&req.head),
            ROUTE_HEALTH => Response::text(200, "ready\n"),
            _ => not_found(),
        }
    }

    fn rejected(&self, reason: &'static str) {
        self.shared.stats().loop_rejection(reason);
    }

    fn error_response(&self, route: u8, status: u16, message: &str) -> Response {
        let r = route_of(route);
        self.shared.stats().loop_error(r, status);
        match r {
            Some(Route::Push) => push::loop_error(status, message),
            Some(Route::Ingest) => {
                let mut body = connect::error_body(check::ingest_code(status), message);
                body.push(b'\n');
                Response::json(status, body).header("X-Content-Type-Options", "nosniff")
            }
            None => Response::text(status, format!("{message}\n")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_message_encoding() {
        assert_eq!(grpc_percent_encode("a b%c\né"), "a b%25c%0A%C3%A9");
    }

    #[test]
    fn push_status_codes() {
        assert_eq!(status_code(Route::Push, 503), Code::Unavailable);
        assert_eq!(status_code(Route::Push, 429), Code::ResourceExhausted);
        assert_eq!(status_code(Route::Push, 500), Code::Unknown);
        assert_eq!(status_code(Route::Ingest, 422), Code::Unknown);
        assert_eq!(status_code(Route::Ingest, 404), Code::Unimplemented);
        let ok = grpc_web_ok(Codec::Proto);
        assert_eq!(&ok.body[..5], &[0, 0, 0, 0, 0]);
        assert_eq!(ok.body[5], 0x80);
    }
}
