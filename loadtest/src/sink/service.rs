//! The sink's routes: Pyroscope's two ingest endpoints plus `/stats`, `/stats/reset`,
//! `/control` and health checks, served by pyrogate's own runtime and connection loop with
//! pyrogate's wire helpers (Push head and decode, Connect/gRPC-Web and `/ingest` answers).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pyrogate::http::server::{Admission, Request, Service};
use pyrogate::http::{BodyFraming, Method, RequestHead, Response};
use pyrogate::metrics::{RejectReason, RouteLabel};
use pyrogate::protocol::connect::{self, Code};
use pyrogate::protocol::otlp::{self, OtlpHead};
use pyrogate::protocol::push::Protocol;
use pyrogate::protocol::push::{self, PushHead};
use pyrogate::protocol::{ingest, query};
use pyrogate::runtime::{ServiceFactory, WorkerService};

use super::check::{self, CheckLimits, Checks, Verdict};
use super::faults::{Decision, Faults, InjectedError};
use super::stats::{Outcome, Route, Stats};
use crate::fnv;

/// A sink request's route, with what its head said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkRoute {
    Push(Box<PushHead>),
    Ingest,
    /// `POST /v1development/profiles` (OTLP/HTTP), answered as Pyroscope 2.1 does.
    Otlp(OtlpHead),
    Stats,
    StatsReset,
    Control,
    Health,
    /// Refused from the head (recorded there), or an unknown path.
    Refused(Option<Route>),
}

impl SinkRoute {
    /// The sink's routes in the runtime's per-core counters (only connections are read).
    pub const LABELS: [RouteLabel; 1] = [RouteLabel {
        name: "sink",
        method: "POST",
        inflight: false,
    }];

    fn profile_route(&self) -> Option<Route> {
        match self {
            SinkRoute::Push(_) => Some(Route::Push),
            SinkRoute::Ingest => Some(Route::Ingest),
            SinkRoute::Otlp(_) => Some(Route::Otlp),
            SinkRoute::Refused(r) => *r,
            _ => None,
        }
    }
}

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

/// Makes one [`SinkService`] per worker of pyrogate's runtime.
pub struct SinkFactory(pub Arc<Shared>);

impl ServiceFactory for SinkFactory {
    type Service = SinkService;

    fn make(&self, worker: usize, _: &Arc<pyrogate::runtime::Shared>) -> SinkService {
        SinkService::new(worker, self.0.clone())
    }
}

/// One per worker.
pub struct SinkService {
    worker: usize,
    shared: Arc<Shared>,
}

impl WorkerService for SinkService {
    /// The sink is configured once, at start; its faults change through `/control`.
    type Config = ();
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
                // An HTTP/2 stream: DATA frames, whatever its content-length says.
                _ if head.http2 => "http2",
                BodyFraming::None => "none",
                BodyFraming::Length(_) => "length",
                BodyFraming::Chunked => "chunked",
            },
            ..Outcome::default()
        }
    }

    /// Records a request refused from its head alone and returns the response.
    fn refuse(&self, head: &RequestHead, route: Route, resp: Response) -> Admission<SinkRoute> {
        let mut o = self.outcome(head, route);
        o.status = Some(resp.status);
        if let Some((code, message)) = connect::parse_error_body(&resp.body) {
            o.error = Some((code.name().to_owned(), message));
        }
        self.shared.stats().add(o);
        Admission::Respond {
            route: SinkRoute::Refused(Some(route)),
            response: resp,
        }
    }

    async fn profile(&self, req: &Request<SinkRoute>, push_head: Option<&PushHead>) -> Response {
        let route = if push_head.is_some() {
            Route::Push
        } else {
            Route::Ingest
        };
        let head = &req.head;
        let mut o = self.outcome(head, route);
        o.body_len = Some(req.body.len() as u64);
        if self.shared.checksum {
            o.body_fnv = Some(fnv::fnv1a64(&req.body));
        }
        let verdict = match (self.shared.checks, push_head) {
            (Checks::None, _) => Verdict {
                error: None,
                profiles: 1,
                detail: check::Detail::None,
            },
            (Checks::Full, Some(h)) => check::push(h, req.body.clone(), self.shared.limits),
            (Checks::Full, None) => check::ingest(head, &req.body, self.shared.limits),
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
                let code = e.code.unwrap_or_else(|| Code::from_http_status(e.status));
                o.error = Some((code.name().to_owned(), e.message.clone()));
                injected(push_head, &e, code)
            }
            Decision::Pass => match error {
                None => {
                    o.profiles = profiles;
                    success(push_head)
                }
                Some(rej) => {
                    o.error = Some((rej.code.name().to_owned(), rej.message.clone()));
                    error_response(push_head, rej.status, rej.code, &rej.message)
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

    /// An OTLP request: recorded like the others; with full checks the body must be an
    /// `ExportProfilesServiceRequest` in the layout Pyroscope 2.1 reads (v1.10), else 400
    /// with Pyroscope's plain-text message. Success answers `application/x-protobuf` (as
    /// Pyroscope does whatever the request's type), with the `partial_success` set by
    /// `/control?otlp_partial=N`.
    async fn otlp(&self, req: &Request<SinkRoute>, h: &OtlpHead) -> Response {
        let mut o = self.outcome(&req.head, Route::Otlp);
        o.body_len = Some(req.body.len() as u64);
        if self.shared.checksum {
            o.body_fnv = Some(fnv::fnv1a64(&req.body));
        }
        let checked = match self.shared.checks {
            Checks::None => Ok(1),
            Checks::Full => {
                let max = usize::try_from(self.shared.max_body).unwrap_or(usize::MAX);
                otlp::decode_body(h, req.body.clone(), max).and_then(|d| {
                    otlp::schema::DEFAULT_ACCEPT
                        .check(d.scan.detected)
                        .map(|()| d.scan.profiles)
                })
            }
        };
        let (decision, latency) = self
            .shared
            .faults()
            .decide(pyrogate::util::rand::unit(), pyrogate::util::rand::unit());
        let resp = match (decision, checked) {
            (Decision::Hang, _) => {
                o.fault = Some("hang");
                self.shared.stats().add(o);
                monoio::time::sleep(self.shared.hang_for).await;
                return Response::text(503, "Service Unavailable\n")
                    .header("Retry-After", "1")
                    .closing();
            }
            (Decision::Fail(e), _) => {
                o.fault = Some("error");
                o.error = Some(("http".into(), e.message.clone()));
                let r = Response::text(e.status, format!("{}\n", e.message));
                match e.retry_after {
                    Some(s) => r.header("Retry-After", s.to_string()),
                    None => r,
                }
            }
            (Decision::Pass, Err(e)) => {
                o.error = Some(("invalid_argument".into(), e.to_string()));
                Response::text(400, format!("{e}\n"))
            }
            (Decision::Pass, Ok(profiles)) => {
                o.profiles = profiles;
                let rejected = self.shared.faults().otlp_partial();
                let partial = (rejected != 0).then(|| otlp::PartialSuccess {
                    rejected_profiles: rejected,
                    error_message: format!("sink: {rejected} profiles refused"),
                });
                otlp::reply::ok_response(otlp::ContentType::XProtobuf, partial.as_ref())
            }
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
        json(200, &f.to_json(Code::from_http_status))
    }
}

fn json(status: u16, v: &serde_json::Value) -> Response {
    Response::json(status, serde_json::to_vec(v).unwrap_or_default())
}

/// A success in the request's protocol, advertising gzip as connect-go's server does.
fn success(push_head: Option<&PushHead>) -> Response {
    match push_head {
        None => Response::new(200),
        Some(h) if h.content_type.protocol == Protocol::Connect => {
            push::reply_ok(h.content_type).header("Accept-Encoding", "gzip")
        }
        Some(h) => push::reply_ok(h.content_type).header("Grpc-Accept-Encoding", "gzip"),
    }
}

/// A check's refusal in the request's protocol (Pyroscope's JSON on `/ingest`).
fn error_response(
    push_head: Option<&PushHead>,
    status: u16,
    code: Code,
    message: &str,
) -> Response {
    match push_head {
        None => ingest::error_response_with_code(status, code, message),
        Some(h) => push::reply_error(h.content_type, code, message),
    }
}

/// An injected failure: gRPC-Web reports the code in trailers, and the HTTP status stays
/// 200 unless the test asked for a plain HTTP failure (a status other than the code's own).
fn injected(push_head: Option<&PushHead>, e: &InjectedError, code: Code) -> Response {
    let resp = match push_head {
        Some(h)
            if h.content_type.protocol != Protocol::Connect && e.status == code.http_status() =>
        {
            push::reply_error(h.content_type, code, &e.message)
        }
        None => ingest::error_response_with_code(e.status, code, &e.message),
        Some(_) => Response::json(e.status, connect::error_body(code, &e.message)),
    };
    match e.retry_after {
        Some(s) => resp.header("Retry-After", s.to_string()),
        None => resp,
    }
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

fn admin(
    head: &RequestHead,
    route: SinkRoute,
    allowed: &[Method],
    allow: &'static str,
) -> Admission<SinkRoute> {
    if allowed.contains(&head.method) {
        Admission::Accept {
            route,
            max_body: MAX_ADMIN_BODY,
        }
    } else {
        Admission::Respond {
            route: SinkRoute::Refused(None),
            response: Response::new(405).header("Allow", allow),
        }
    }
}

// === impl Service ===

impl Service for SinkService {
    type Route = SinkRoute;

    fn admit(&self, head: &RequestHead) -> Admission<SinkRoute> {
        let path = head.path();
        match path {
            push::PATH => {
                if head.method != Method::Post {
                    let resp = Response::new(405).header("Allow", "POST");
                    return self.refuse(head, Route::Push, resp);
                }
                match push::parse_head(head) {
                    Ok(h) => Admission::Accept {
                        route: SinkRoute::Push(Box::new(h)),
                        max_body: self.shared.max_body,
                    },
                    Err(resp) => self.refuse(head, Route::Push, resp),
                }
            }
            otlp::PATH => {
                if head.method != Method::Post {
                    let resp = Response::new(405).header("Allow", "POST");
                    return self.refuse(head, Route::Otlp, resp);
                }
                match otlp::parse_head(head) {
                    Ok(h) => Admission::Accept {
                        route: SinkRoute::Otlp(h),
                        max_body: self.shared.max_body,
                    },
                    Err(e) => self.refuse(head, Route::Otlp, otlp::reply::head_refusal(e)),
                }
            }
            p if ingest::PATHS.contains(&p) => {
                if head.method != Method::Post {
                    let resp = Response::new(405).header("Allow", "POST");
                    return self.refuse(head, Route::Ingest, resp);
                }
                Admission::Accept {
                    route: SinkRoute::Ingest,
                    max_body: self.shared.max_body,
                }
            }
            "/stats" => admin(
                head,
                SinkRoute::Stats,
                &[Method::Get, Method::Head],
                "GET, HEAD",
            ),
            "/stats/reset" => admin(head, SinkRoute::StatsReset, &[Method::Post], "POST"),
            "/control" => admin(
                head,
                SinkRoute::Control,
                &[Method::Get, Method::Post],
                "GET, POST",
            ),
            "/ready" | "/-/ready" | "/-/healthy" => admin(
                head,
                SinkRoute::Health,
                &[Method::Get, Method::Head],
                "GET, HEAD",
            ),
            _ => Admission::Respond {
                route: SinkRoute::Refused(None),
                response: not_found(),
            },
        }
    }

    async fn call(&self, req: Request<SinkRoute>) -> Response {
        match &req.route {
            SinkRoute::Push(h) => self.profile(&req, Some(h)).await,
            SinkRoute::Ingest => self.profile(&req, None).await,
            SinkRoute::Otlp(h) => self.otlp(&req, h).await,
            SinkRoute::Stats => self.stats(&req.head),
            SinkRoute::StatsReset => {
                self.shared.stats().reset();
                json(200, &serde_json::json!({"reset": true}))
            }
            SinkRoute::Control => self.control(&req.head),
            SinkRoute::Health => Response::text(200, "ready\n"),
            SinkRoute::Refused(_) => not_found(),
        }
    }

    fn rejected(&self, reason: RejectReason) {
        self.shared.stats().loop_rejection(reason.label());
    }

    /// The loop's own errors in each route's protocol: Connect JSON with the code the reason
    /// means on Push, Pyroscope's JSON on `/ingest`.
    fn error_response(
        &self,
        route: Option<&SinkRoute>,
        reason: RejectReason,
        status: u16,
        message: &str,
    ) -> Response {
        let r = route.and_then(SinkRoute::profile_route);
        self.shared.stats().loop_error(r, status);
        match r {
            Some(Route::Push) => push::loop_error(reason, status, message),
            Some(Route::Ingest) => ingest::error_response(status, message),
            Some(Route::Otlp) => Response::text(status, format!("{message}\n")),
            None => Response::text(status, format!("{message}\n")),
        }
    }
}
