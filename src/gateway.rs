//! The gateway's route table: which handler serves which path, decided from the head alone
//! (so 404, 405, 415 and 413 are answered before any body byte is read).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::http::server::{Admission, ROUTE_NONE, Request, Service};
use crate::http::{Method, RequestHead, Response};
use crate::metrics::CoreMetrics;
use crate::metrics::core::{
    ROUTE_HEALTHY, ROUTE_INGEST, ROUTE_METRICS, ROUTE_OTHER, ROUTE_PUSH, ROUTE_READY,
};
use crate::protocol::labels::LabelsError;
use crate::protocol::labelset::Labels;
use crate::protocol::{ingest, push};
use crate::runtime::Shared;

/// GET endpoints accept no meaningful body; a small cap keeps them from being abused.
const MAX_GET_BODY: u64 = 64 * 1024;

pub const PUSH_PATH: &str = "/push.v1.PusherService/Push";
const PUSH_SERVICE_PREFIX: &str = "/push.v1.PusherService/";

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
    pub forward_tenant: bool,
    pub deadline_reserve: Duration,
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
            forward_tenant: cfg.forward.forward_tenant,
            deadline_reserve: cfg.forward.deadline_reserve,
            name_cache: RefCell::new(HashMap::new()),
        }
    }
}

/// One per worker.
pub struct Gateway {
    core: usize,
    pub shared: Arc<Shared>,
    pub metrics: Arc<CoreMetrics>,
    settings: RefCell<Rc<Settings>>,
}

impl Gateway {
    pub fn new(core: usize, shared: Arc<Shared>, cfg: &Config) -> Self {
        let metrics = shared.metrics.cores[core].clone();
        Self {
            core,
            shared,
            metrics,
            settings: RefCell::new(Rc::new(Settings::from_config(cfg))),
        }
    }

    pub fn core(&self) -> usize {
        self.core
    }

    /// The settings in force for a request that starts now.
    pub fn settings(&self) -> Rc<Settings> {
        self.settings.borrow().clone()
    }

    pub fn reload(&self, cfg: &Config) {
        *self.settings.borrow_mut() = Rc::new(Settings::from_config(cfg));
    }
}

fn not_found() -> Response {
    Response::text(404, "404 page not found\n")
}

/// Alloy (gorilla mux) answers a wrong method with an empty 405.
fn method_not_allowed(allow: &'static str) -> Response {
    Response::new(405).header("Allow", allow)
}

fn get_route(head: &RequestHead, route: u8) -> Admission {
    match head.method {
        Method::Get | Method::Head => Admission::Accept {
            route,
            max_body: MAX_GET_BODY,
        },
        _ => Admission::Respond {
            route,
            response: method_not_allowed("GET, HEAD"),
        },
    }
}

impl Service for Gateway {
    fn admit(&self, head: &RequestHead) -> Admission {
        let path = head.path();
        match path {
            "/ingest" | "/pyroscope/ingest" => {
                if head.method != Method::Post {
                    return Admission::Respond {
                        route: ROUTE_INGEST,
                        response: method_not_allowed("POST"),
                    };
                }
                Admission::Accept {
                    route: ROUTE_INGEST,
                    max_body: self.settings.borrow().max_request_body,
                }
            }
            PUSH_PATH => {
                if head.method != Method::Post {
                    return Admission::Respond {
                        route: ROUTE_PUSH,
                        response: method_not_allowed("POST"),
                    };
                }
                match push::admit(head) {
                    Ok(()) => Admission::Accept {
                        route: ROUTE_PUSH,
                        max_body: self.settings.borrow().max_request_body,
                    },
                    Err(response) => Admission::Respond {
                        route: ROUTE_PUSH,
                        response,
                    },
                }
            }
            "/metrics" => get_route(head, ROUTE_METRICS),
            "/-/ready" | "/ready" => get_route(head, ROUTE_READY),
            "/-/healthy" => get_route(head, ROUTE_HEALTHY),
            p if p.starts_with(PUSH_SERVICE_PREFIX) => Admission::Respond {
                route: ROUTE_OTHER,
                response: push::unknown_method(),
            },
            _ => Admission::Respond {
                route: ROUTE_OTHER,
                response: not_found(),
            },
        }
    }

    async fn call(&self, req: Request) -> Response {
        match req.route {
            ROUTE_INGEST => {
                self.metrics.inflight_delta(ROUTE_INGEST, 1);
                let r = ingest::handle(self, req).await;
                self.metrics.inflight_delta(ROUTE_INGEST, -1);
                r
            }
            ROUTE_PUSH => {
                self.metrics.inflight_delta(ROUTE_PUSH, 1);
                let r = push::handle(self, req).await;
                self.metrics.inflight_delta(ROUTE_PUSH, -1);
                r
            }
            ROUTE_METRICS => Response::new(200)
                .header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                .body(self.shared.metrics.render()),
            ROUTE_READY => {
                if self.shared.is_ready() {
                    Response::text(200, "ready\n")
                } else {
                    Response::text(503, "not ready\n")
                }
            }
            ROUTE_HEALTHY => Response::text(200, "healthy\n"),
            _ => not_found(),
        }
    }

    fn record(&self, route: u8, status: u16, elapsed: Duration, body_bytes: u64) {
        let route = if route == ROUTE_NONE {
            ROUTE_OTHER
        } else {
            route
        };
        self.metrics
            .request_done(route, status, elapsed, body_bytes);
    }

    fn rejected(&self, reason: &'static str) {
        self.metrics.rejected(reason);
    }

    fn error_response(&self, route: u8, status: u16, message: &str) -> Response {
        if route == ROUTE_PUSH {
            push::loop_error(status, message)
        } else {
            Response::text(status, format!("{message}\n"))
        }
    }
}
