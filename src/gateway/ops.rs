//! The operational endpoints: `/metrics`, `/-/ready`, `/-/healthy`, and 404.

use crate::http::Response;
use crate::runtime::Shared;

/// Prometheus text exposition of every metric.
pub fn metrics(shared: &Shared) -> Response {
    Response::new(200)
        .header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        .body(shared.metrics.render())
}

/// 200 once every worker listens; 503 while draining.
pub fn ready(shared: &Shared) -> Response {
    if shared.is_ready() {
        Response::text(200, "ready\n")
    } else {
        Response::text(503, "not ready\n")
    }
}

/// 200 while the process runs (the watchdog tells whether every worker does).
pub fn healthy() -> Response {
    Response::text(200, "healthy\n")
}

/// Go's `http.NotFound`, as Alloy's router answers an unknown path.
pub fn not_found() -> Response {
    Response::text(404, "404 page not found\n")
}
