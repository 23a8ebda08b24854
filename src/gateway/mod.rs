//! The gateway: the service every worker runs. Routes ([`route`]), the `/ingest` and Push
//! handlers ([`ingest`], [`push`]) and the operational endpoints ([`ops`]), on top of the
//! wire formats (`protocol`) and the forwarding stage (`forward`), of which it owns a
//! handle.
//!
//! A request's path through it: `admit` (route table, from the head) → the handler (decode
//! only as deep as a configured stage needs, build the envelope) → `Forwarder::forward` →
//! the answer in the route's protocol. A new stage (validation, ring routing, spool) plugs
//! in between the handler's decode and the envelope (docs/architecture.md §5).

pub mod ingest;
pub mod ops;
pub mod push;
pub mod route;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

pub use route::Route;

use crate::config::Config;
use crate::forward::Forwarder;
use crate::http::server::{Admission, Request, Service};
use crate::http::{RequestHead, Response};
use crate::metrics::{CoreMetrics, RejectReason};
use crate::protocol::labels::LabelsError;
use crate::protocol::labelset::Labels;
use crate::protocol::push as push_wire;
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
            name_cache: RefCell::new(HashMap::new()),
        }
    }
}

/// Makes one [`Gateway`] per worker.
pub struct Factory {
    pub forwarder: Forwarder,
    pub config: Arc<Config>,
}

impl ServiceFactory for Factory {
    type Service = Gateway;

    fn make(&self, worker: usize, shared: &Arc<Shared>) -> Gateway {
        Gateway::new(worker, shared.clone(), self.forwarder.clone(), &self.config)
    }
}

/// One per worker.
pub struct Gateway {
    pub shared: Arc<Shared>,
    pub metrics: Arc<CoreMetrics>,
    pub forwarder: Forwarder,
    settings: RefCell<Rc<Settings>>,
}

impl Gateway {
    pub fn new(core: usize, shared: Arc<Shared>, forwarder: Forwarder, cfg: &Config) -> Self {
        let metrics = shared.metrics.cores[core].clone();
        Self {
            shared,
            metrics,
            forwarder,
            settings: RefCell::new(Rc::new(Settings::from_config(cfg))),
        }
    }

    /// The settings in force for a request that starts now.
    pub fn settings(&self) -> Rc<Settings> {
        self.settings.borrow().clone()
    }

    /// Runs a profile handler with the route's in-flight gauge raised.
    async fn profile(&self, index: usize, handler: impl Future<Output = Response>) -> Response {
        self.metrics.inflight_delta(index, 1);
        let r = handler.await;
        self.metrics.inflight_delta(index, -1);
        r
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
            Route::Ingest => self.profile(index, ingest::handle(self, &req)).await,
            Route::Push(ref head) => self.profile(index, push::handle(self, &req, head)).await,
            Route::Metrics => ops::metrics(&self.shared),
            Route::Ready => ops::ready(&self.shared),
            Route::Healthy => ops::healthy(),
            Route::PushRefused | Route::Other => ops::not_found(),
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
