//! The gateway: the service every worker runs. Routes ([`route`]), the `/ingest` and Push
//! handlers ([`ingest`], [`push`]) and the operational endpoints ([`ops`]), on top of the
//! wire formats (`protocol`) and the forwarding stage (`forward`), of which it owns a
//! handle.
//!
//! A request's path through it: `admit` (route table, from the head) → the handler (decode
//! only as deep as a configured stage needs, build the envelope) → `Forwarder::forward` →
//! the answer in the route's protocol. A new stage (validation, ring routing, spool) plugs
//! in between the handler's decode and the envelope (docs/architecture.md §5).

pub mod auth;
pub mod ingest;
pub mod ops;
pub mod otlp;
pub mod push;
pub mod route;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

pub use route::Route;

use crate::config::Config;
use crate::distributor::{self, Policy, Stage};
use crate::forward::Forwarder;
use crate::http::server::{Admission, Request, Service};
use crate::http::{RequestHead, Response};
use crate::metrics::{CoreMetrics, RejectReason};
use crate::protocol::labels::LabelsError;
use crate::protocol::labelset::Labels;
use crate::protocol::push as push_wire;
use crate::ring::membership::Membership;
use crate::runtime::{ServiceFactory, Shared, WorkerService};

/// Rebuilt `/ingest` names kept per worker; SDKs send the same `name` on every upload, so
/// the label-set parse, validation and rendering run once per distinct name.
const NAME_CACHE_ENTRIES: usize = 4096;

/// Settings derived from the configuration; swapped as a whole on reload (which also drops
/// the caches derived from them).
#[derive(Debug)]
pub struct Settings {
    pub max_request_body: u64,
    pub max_decompressed_body: u64,
    pub external_labels: Labels,
    /// The edge distributor's switches and limits.
    pub policy: Policy,
    /// `[server.auth]`: the worker's authenticator and its credential cache.
    pub auth: Option<auth::Auth>,
    /// `otlp.schema`: the OTLP profiles layout the downstream reads.
    pub otlp_accept: crate::protocol::otlp::Accept,
    /// `forward.decode_push`: whether a Push nothing configured reads is decoded anyway.
    pub decode_push: crate::config::choices::DecodePush,
    name_cache: RefCell<HashMap<String, Result<String, LabelsError>>>,
}

impl Settings {
    /// The forwarded `name` (query-escaped) for a raw `name` parameter, from the cache when
    /// possible.
    pub fn forward_name(
        &self,
        raw: Option<&str>,
        compute: impl FnOnce() -> Result<String, LabelsError>,
    ) -> Result<String, LabelsError> {
        let key = raw.unwrap_or("");
        if let Some(v) = self.name_cache.borrow().get(key) {
            return v.clone();
        }
        let v = compute();
        let mut cache = self.name_cache.borrow_mut();
        if cache.len() >= NAME_CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key.to_string(), v.clone());
        v
    }

    pub fn from_config(cfg: &Config) -> Self {
        Self {
            max_request_body: cfg.server.max_request_body,
            max_decompressed_body: cfg.server.max_decompressed_body,
            external_labels: cfg.external_labels.clone(),
            policy: Policy {
                config: cfg.distributor.clone(),
                limits: cfg.limits.clone(),
                hard_max_decoded: usize::try_from(cfg.server.max_decompressed_body)
                    .unwrap_or(usize::MAX),
            },
            auth: cfg.auth.as_ref().map(auth::Auth::new),
            otlp_accept: otlp::accept_for(cfg.otlp.schema),
            decode_push: cfg.forward.decode_push,
            name_cache: RefCell::new(HashMap::new()),
        }
    }
}

/// Who sent a profile request: the tenant its forwarded request carries.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The authenticated tenant (`[server.auth]`), else the client's `X-Scope-OrgID`.
    pub tenant: Option<bytes::Bytes>,
}

/// Makes one [`Gateway`] per worker.
pub struct Factory {
    pub forwarder: Forwarder,
    pub config: Arc<Config>,
    /// The distributor's shared state (tenants' buckets, metrics).
    pub distributor: Arc<distributor::Shared>,
    /// Ring mode's membership (`forward.mode = "ring"`).
    pub ring: Option<Arc<Membership>>,
    /// Authentication failure counters (`[server.auth]`).
    pub auth_metrics: Option<Arc<auth::AuthMetrics>>,
}

impl ServiceFactory for Factory {
    type Service = Gateway;

    fn make(&self, worker: usize, shared: &Arc<Shared>) -> Gateway {
        let mut gw = Gateway::new(
            worker,
            shared.clone(),
            self.forwarder.clone(),
            Stage::new(self.distributor.clone()),
            &self.config,
        );
        gw.ring = self.ring.clone();
        gw.auth_metrics = self.auth_metrics.clone();
        gw
    }
}

/// One per worker.
pub struct Gateway {
    pub shared: Arc<Shared>,
    pub metrics: Arc<CoreMetrics>,
    pub forwarder: Forwarder,
    /// The edge distributor stage (does nothing unless `[distributor]` enables it).
    pub distributor: Stage,
    /// Ring mode: where series go (`None`: fan-out to every endpoint).
    pub ring: Option<Arc<Membership>>,
    pub auth_metrics: Option<Arc<auth::AuthMetrics>>,
    settings: RefCell<Rc<Settings>>,
}

impl Gateway {
    pub fn new(
        core: usize,
        shared: Arc<Shared>,
        forwarder: Forwarder,
        distributor: Stage,
        cfg: &Config,
    ) -> Self {
        let metrics = shared.metrics.cores[core].clone();
        Self {
            shared,
            metrics,
            forwarder,
            distributor,
            ring: None,
            auth_metrics: None,
            settings: RefCell::new(Rc::new(Settings::from_config(cfg))),
        }
    }

    /// The settings in force for a request that starts now.
    pub fn settings(&self) -> Rc<Settings> {
        self.settings.borrow().clone()
    }

    /// Who sent a profile request: with `[server.auth]`, its credentials are checked and
    /// their tenant stamped; without, the client's `X-Scope-OrgID` is passed on.
    ///
    /// # Errors
    /// The refusal to send: `401` (Connect `unauthenticated` on Push, plain on `/ingest`),
    /// `429` when the verifier is saturated.
    async fn caller(&self, req: &Request<Route>) -> Result<Caller, Response> {
        let client = req.head.header("x-scope-orgid").filter(|v| !v.is_empty());
        let settings = self.settings();
        let Some(auth) = &settings.auth else {
            return Ok(Caller {
                tenant: client.map(bytes::Bytes::copy_from_slice),
            });
        };
        let peer = req.peer_cert.as_deref();
        match auth
            .check(req.head.header("authorization"), client, peer)
            .await
        {
            Ok(tenant) => Ok(Caller {
                tenant: Some(tenant),
            }),
            Err(d) => {
                if let Some(m) = &self.auth_metrics {
                    m.failed(d, req.peer_ip());
                }
                let (status, code) = match d {
                    auth::Denied::Busy => (429, crate::protocol::connect::Code::ResourceExhausted),
                    _ => (401, crate::protocol::connect::Code::Unauthenticated),
                };
                let mut resp = match &req.route {
                    Route::Otlp(head) => crate::protocol::otlp::reply::status_response(
                        head.content_type,
                        status,
                        otlp::code_for_denied(status),
                        d.message(),
                    ),
                    Route::Push(head) => {
                        push_wire::reply_error(head.content_type, code, d.message())
                    }
                    Route::OtlpGrpc(head) => push_wire::grpc_status(
                        head.content_type.codec,
                        otlp::code_for_denied(status).number(),
                        d.message(),
                    ),
                    _ => Response::text(status, format!("{}\n", d.message())),
                };
                if status == 401 {
                    resp.headers.push((
                        "WWW-Authenticate",
                        "Basic realm=\"pyrogate\", Bearer".into(),
                    ));
                } else {
                    resp.headers.push(("Retry-After", "1".into()));
                }
                Err(resp)
            }
        }
    }

    /// Runs a profile handler with the route's in-flight gauge raised.
    /// Counts a profile request in flight until the guard drops, also when the request's
    /// future is dropped before it finishes (the server's request timeout).
    fn in_flight(&self, index: usize) -> InFlight<'_> {
        self.metrics.inflight_delta(index, 1);
        InFlight {
            metrics: &self.metrics,
            index,
        }
    }
}

/// See [`Gateway::in_flight`]. A guard rather than a wrapping `async fn`: the wrapper kept
/// the handler's future twice in the request's future (as its argument and as the awaited
/// value), 1 KiB more per request.
struct InFlight<'a> {
    metrics: &'a CoreMetrics,
    index: usize,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.metrics.inflight_delta(self.index, -1);
    }
}

impl Service for Gateway {
    type Route = Route;

    fn admit(&self, head: &RequestHead) -> Admission<Route> {
        route::admit(head, self.settings.borrow().max_request_body)
    }

    async fn call(&self, req: Request<Route>) -> Response {
        let index = req.route.index();
        match req.route {
            Route::Ingest => match self.caller(&req).await {
                Ok(c) => {
                    let _counted = self.in_flight(index);
                    ingest::handle(self, &req, &c).await
                }
                Err(resp) => resp,
            },
            Route::Push(ref head) => match self.caller(&req).await {
                Ok(c) => {
                    let _counted = self.in_flight(index);
                    push::handle(self, &req, head, &c).await
                }
                Err(resp) => resp,
            },
            Route::Otlp(head) => match self.caller(&req).await {
                Ok(c) => {
                    let _counted = self.in_flight(index);
                    otlp::handle(self, &req, &head, &c).await
                }
                Err(resp) => resp,
            },
            Route::OtlpGrpc(ref head) => match self.caller(&req).await {
                Ok(c) => {
                    let _counted = self.in_flight(index);
                    otlp::handle_grpc(self, &req, head, &c).await
                }
                Err(resp) => resp,
            },
            Route::Metrics => ops::metrics(&self.shared),
            Route::Ready => ops::ready(&self.shared),
            Route::Healthy => ops::healthy(),
            Route::Ring => match &self.ring {
                Some(m) => {
                    let json = req
                        .head
                        .header("accept")
                        .is_some_and(|a| a.windows(16).any(|w| w == b"application/json"));
                    crate::ring::page::render(m, json)
                }
                None => ops::not_found(),
            },
            Route::PushRefused | Route::OtlpRefused | Route::Other => ops::not_found(),
        }
    }

    fn record(&self, route: Option<&Route>, status: u16, elapsed: Duration, body_bytes: u64) {
        let index = route.map_or(Route::Other.index(), Route::index);
        self.metrics
            .request_done(index, status, elapsed, body_bytes);
    }

    fn rejected(&self, reason: RejectReason) {
        self.metrics.rejected(reason);
    }

    /// Errors the connection loop raises itself: Connect JSON on the Push route, else
    /// plain text as Go's `http.Error` writes it.
    fn error_response(
        &self,
        route: Option<&Route>,
        reason: RejectReason,
        status: u16,
        message: &str,
    ) -> Response {
        match route {
            // gRPC over HTTP/2 carries the error in its status (HTTP 200), like grpc-go.
            Some(Route::Push(head)) if head.content_type.protocol == push_wire::Protocol::Grpc => {
                push_wire::grpc_error(
                    head.content_type.codec,
                    push_wire::loop_code(reason),
                    message,
                )
            }
            Some(Route::Otlp(head)) => otlp::loop_error(head.content_type, reason, status, message),
            Some(Route::OtlpGrpc(head)) => push_wire::grpc_error(
                head.content_type.codec,
                push_wire::loop_code(reason),
                message,
            ),
            Some(Route::Push(_) | Route::PushRefused) => {
                push_wire::loop_error(reason, status, message)
            }
            _ => Response::text(status, format!("{message}\n")),
        }
    }
}

impl WorkerService for Gateway {
    type Config = Config;

    fn reload(&self, cfg: &Arc<Config>) {
        *self.settings.borrow_mut() = Rc::new(Settings::from_config(cfg));
    }

    /// Deliveries still running on this worker (`dispatch = "worker"`): a drain waits for
    /// them, or profiles a caller was already answered for would be lost.
    fn pending(&self) -> usize {
        crate::forward::local_deliveries()
    }
}

/// The gateway's handlers in-process: a [`Gateway`] made by its factory against a runtime
/// state, called with requests built from raw heads, no server and no socket.
#[cfg(test)]
mod tests {
    use std::time::Instant;

    use bytes::Bytes;

    use super::*;
    use crate::http::head::{RequestHead, find_head_end};
    use crate::metrics::Metrics;
    use crate::runtime::{DriverKind, Settings};

    fn gateway() -> Gateway {
        let config = Config::from_toml("[runtime]\nworkers = 1\n").expect("config");
        let metrics = Metrics::new(1, config.server.conn_limit, &Route::LABELS);
        let shared = Arc::new(Shared::new(
            Settings::from_config(&config),
            metrics,
            DriverKind::Legacy,
        ));
        let factory = Factory {
            forwarder: Forwarder::discard(),
            distributor: distributor::Shared::new(&shared.metrics.registry).expect("metrics"),
            ring: None,
            auth_metrics: None,
            config: Arc::new(config),
        };
        factory.make(0, &shared)
    }

    /// Admits and calls one request the way the connection loop does.
    fn serve(gw: &Gateway, head: &str, body: &[u8]) -> Response {
        let raw = Bytes::copy_from_slice(head.as_bytes());
        let end = find_head_end(&raw, 0).expect("a complete head");
        let head = RequestHead::parse(raw.slice(..end)).expect("a valid head");
        let route = match gw.admit(&head) {
            Admission::Respond { response, .. } => return response,
            Admission::Accept { route, .. } => route,
        };
        let req = Request {
            head,
            body: Bytes::copy_from_slice(body),
            route,
            received_at: Instant::now(),
            deadline: Instant::now() + Duration::from_secs(5),
            fd: -1,
            peer_cert: None,
        };
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime");
        rt.block_on(gw.call(req))
    }

    #[test]
    fn handlers_answer_in_process() {
        let gw = gateway();
        let push = pyrogate_testdata::sdk::python_push(1);
        let r = serve(
            &gw,
            "POST /push.v1.PusherService/Push HTTP/1.1\r\nContent-Type: application/proto\r\nContent-Encoding: gzip\r\n\r\n",
            &push.body,
        );
        assert_eq!(r.status, 200);
        assert!(r.body.is_empty());
        // A body that is not what the head says: Connect's invalid_argument.
        let r = serve(
            &gw,
            "POST /push.v1.PusherService/Push HTTP/1.1\r\nContent-Type: application/proto\r\nContent-Encoding: gzip\r\n\r\n",
            b"not gzip at all",
        );
        assert_eq!(r.status, 400);
        assert!(String::from_utf8_lossy(&r.body).contains("\"code\":\"invalid_argument\""));
        // gRPC-Web: errors travel in trailers-only headers of a 200.
        let r = serve(
            &gw,
            "POST /push.v1.PusherService/Push HTTP/1.1\r\nContent-Type: application/grpc-web+proto\r\n\r\n",
            b"\x00\x00\x00",
        );
        assert_eq!(r.status, 200);
        assert!(
            r.headers
                .iter()
                .any(|(k, v)| *k == "Grpc-Status" && v == "3"),
            "{r:?}"
        );
        // /ingest with no endpoint: accepted and discarded, as Alloy with no forward_to.
        let r = serve(&gw, "POST /ingest?name=app HTTP/1.1\r\n\r\n", b"body");
        assert_eq!(r.status, 200);
        let r = serve(&gw, "GET /metrics HTTP/1.1\r\n\r\n", b"");
        assert_eq!(r.status, 200);
        assert!(
            String::from_utf8_lossy(&r.body).contains("pyroscope_receive_http_tcp_connections")
        );
        // Nothing is ready before the runtime's workers are.
        assert_eq!(serve(&gw, "GET /-/ready HTTP/1.1\r\n\r\n", b"").status, 503);
        assert_eq!(serve(&gw, "GET /nope HTTP/1.1\r\n\r\n", b"").status, 404);
    }

    #[test]
    fn reload_replaces_the_settings() {
        let gw = gateway();
        assert!(gw.settings().external_labels.is_empty());
        let cfg = Config::from_toml("external_labels = { env = \"prod\" }\n").expect("config");
        gw.reload(&Arc::new(cfg));
        assert_eq!(
            gw.settings().external_labels.get("env").map(String::as_str),
            Some("prod")
        );
    }
}
