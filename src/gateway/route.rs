//! The route table: which handler serves which path, decided from the head alone (so 404,
//! 405, 415 and 413 are answered before any body byte is read), and what the head said,
//! carried to the handler so nothing is parsed twice.

use crate::http::server::Admission;
use crate::http::{Method, RequestHead, Response};
use crate::metrics::RouteLabel;
use crate::protocol::otlp::{self, OtlpHead};
use crate::protocol::push::{self, PushHead};

/// GET endpoints accept no meaningful body; a small cap keeps them from being abused.
const MAX_GET_BODY: u64 = 64 * 1024;

/// A request's route, with what admission learnt from its head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `POST /ingest` (alias `/pyroscope/ingest`).
    Ingest,
    /// `POST /push.v1.PusherService/Push`, its head already checked.
    Push(Box<PushHead>),
    /// A Push refused from its head (wrong method, content type, headers).
    PushRefused,
    Metrics,
    Ready,
    Healthy,
    /// `GET /ring` (ring mode).
    Ring,
    /// `POST /v1development/profiles` (OTLP/HTTP profiles), its head already checked.
    Otlp(OtlpHead),
    /// An OTLP request refused from its head (wrong method, content type or encoding).
    OtlpRefused,
    /// The gRPC `ProfilesService/Export` method (HTTP/2), its gRPC head already checked.
    OtlpGrpc(Box<PushHead>),
    /// Unknown paths, wrong methods, and requests refused before a route was known.
    Other,
}

impl Route {
    /// The metric labels of each route, by [`Route::index`]. `route` names are Alloy's
    /// (dskit's) where it has the route.
    pub const LABELS: [RouteLabel; 9] = [
        RouteLabel {
            name: "ingest",
            method: "POST",
            inflight: true,
        },
        RouteLabel {
            name: "push_v1_pusherservice",
            method: "POST",
            inflight: true,
        },
        RouteLabel {
            name: "metrics",
            method: "GET",
            inflight: false,
        },
        RouteLabel {
            name: "ready",
            method: "GET",
            inflight: false,
        },
        RouteLabel {
            name: "healthy",
            method: "GET",
            inflight: false,
        },
        RouteLabel {
            name: "other",
            method: "GET",
            inflight: false,
        },
        RouteLabel {
            name: "ring",
            method: "GET",
            inflight: false,
        },
        // dskit names a route by its path template: `/v1development/profiles`.
        RouteLabel {
            name: "v1development_profiles",
            method: "POST",
            inflight: true,
        },
        RouteLabel {
            name: "opentelemetry_proto_collector_profiles_v1development_profilesservice",
            method: "POST",
            inflight: true,
        },
    ];

    /// Index into [`Route::LABELS`] and the per-core counters.
    pub fn index(&self) -> usize {
        match self {
            Route::Ingest => 0,
            Route::Push(_) | Route::PushRefused => 1,
            Route::Metrics => 2,
            Route::Ready => 3,
            Route::Healthy => 4,
            Route::Other => 5,
            Route::Ring => 6,
            Route::Otlp(_) | Route::OtlpRefused => 7,
            Route::OtlpGrpc(_) => 8,
        }
    }
}

fn not_found() -> Response {
    Response::text(404, "404 page not found\n")
}

/// Alloy (gorilla mux) answers a wrong method with an empty 405.
fn method_not_allowed(allow: &'static str) -> Response {
    Response::new(405).header("Allow", allow)
}

fn get(head: &RequestHead, route: Route) -> Admission<Route> {
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

/// Routes a request from its head; profile routes may carry bodies up to `max_body`.
pub fn admit(head: &RequestHead, max_body: u64) -> Admission<Route> {
    match head.path() {
        "/ingest" | "/pyroscope/ingest" => {
            if head.method != Method::Post {
                return Admission::Respond {
                    route: Route::Ingest,
                    response: method_not_allowed("POST"),
                };
            }
            Admission::Accept {
                route: Route::Ingest,
                max_body,
            }
        }
        push::PATH => {
            if head.method != Method::Post {
                return Admission::Respond {
                    route: Route::PushRefused,
                    response: method_not_allowed("POST"),
                };
            }
            match push::parse_head(head) {
                Ok(h) => Admission::Accept {
                    route: Route::Push(Box::new(h)),
                    max_body,
                },
                Err(response) => Admission::Respond {
                    route: Route::PushRefused,
                    response,
                },
            }
        }
        otlp::GRPC_PATH => {
            if head.method != Method::Post {
                return Admission::Respond {
                    route: Route::OtlpRefused,
                    response: method_not_allowed("POST"),
                };
            }
            // Only gRPC (HTTP/2) speaks this path; Pyroscope's handler is a gRPC service.
            match push::parse_head(head) {
                Ok(h) if h.content_type.protocol == push::Protocol::Grpc => Admission::Accept {
                    route: Route::OtlpGrpc(Box::new(h)),
                    max_body,
                },
                Ok(_) => Admission::Respond {
                    route: Route::OtlpRefused,
                    response: Response::new(415).header("Accept-Post", "application/grpc"),
                },
                Err(response) => Admission::Respond {
                    route: Route::OtlpRefused,
                    response,
                },
            }
        }
        otlp::PATH => {
            if head.method != Method::Post {
                return Admission::Respond {
                    route: Route::OtlpRefused,
                    response: method_not_allowed("POST"),
                };
            }
            match otlp::parse_head(head) {
                Ok(h) => Admission::Accept {
                    route: Route::Otlp(h),
                    max_body,
                },
                Err(e) => Admission::Respond {
                    route: Route::OtlpRefused,
                    response: otlp::reply::head_refusal(e),
                },
            }
        }
        "/metrics" => get(head, Route::Metrics),
        "/-/ready" | "/ready" => get(head, Route::Ready),
        "/-/healthy" => get(head, Route::Healthy),
        "/ring" => get(head, Route::Ring),
        p if p.starts_with(push::SERVICE_PREFIX) => Admission::Respond {
            route: Route::Other,
            response: push::unknown_method(),
        },
        _ => Admission::Respond {
            route: Route::Other,
            response: not_found(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(raw: &str) -> (Route, Option<u16>) {
        let head =
            RequestHead::parse(bytes::Bytes::copy_from_slice(raw.as_bytes())).expect("valid head");
        match admit(&head, 1000) {
            Admission::Accept { route, max_body } => {
                assert!(max_body == 1000 || max_body == MAX_GET_BODY);
                (route, None)
            }
            Admission::Respond { route, response } => (route, Some(response.status)),
        }
    }

    #[test]
    fn table() {
        assert_eq!(
            admitted("POST /ingest?name=a HTTP/1.1\r\n\r\n"),
            (Route::Ingest, None)
        );
        assert_eq!(
            admitted("POST /pyroscope/ingest HTTP/1.1\r\n\r\n"),
            (Route::Ingest, None)
        );
        assert_eq!(
            admitted("GET /ingest HTTP/1.1\r\n\r\n"),
            (Route::Ingest, Some(405))
        );
        assert_eq!(
            admitted("GET /metrics HTTP/1.1\r\n\r\n"),
            (Route::Metrics, None)
        );
        assert_eq!(
            admitted("POST /metrics HTTP/1.1\r\n\r\n"),
            (Route::Metrics, Some(405))
        );
        assert_eq!(
            admitted("HEAD /-/ready HTTP/1.1\r\n\r\n"),
            (Route::Ready, None)
        );
        assert_eq!(
            admitted("GET /-/healthy HTTP/1.1\r\n\r\n"),
            (Route::Healthy, None)
        );
        assert_eq!(
            admitted("GET /nope HTTP/1.1\r\n\r\n"),
            (Route::Other, Some(404))
        );
        assert_eq!(
            admitted("POST /push.v1.PusherService/Other HTTP/1.1\r\n\r\n"),
            (Route::Other, Some(404))
        );
        let (r, status) = admitted(
            "POST /push.v1.PusherService/Push HTTP/1.1\r\nContent-Type: application/proto\r\n\r\n",
        );
        assert!(matches!(r, Route::Push(_)), "{r:?}");
        assert_eq!(status, None);
        assert_eq!(
            admitted("POST /push.v1.PusherService/Push HTTP/1.1\r\n\r\n"),
            (Route::PushRefused, Some(415))
        );
        assert_eq!(Route::PushRefused.index(), 1);
        let (r, status) = admitted(
            "POST /v1development/profiles HTTP/1.1\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: gzip\r\n\r\n",
        );
        assert!(matches!(r, Route::Otlp(h) if h.gzip), "{r:?}");
        assert_eq!(status, None);
        assert_eq!(
            admitted("GET /v1development/profiles HTTP/1.1\r\n\r\n"),
            (Route::OtlpRefused, Some(405))
        );
        assert_eq!(
            admitted(
                "POST /v1development/profiles HTTP/1.1\r\nContent-Type: application/proto\r\n\r\n"
            ),
            (Route::OtlpRefused, Some(415))
        );
        assert_eq!(
            admitted("POST /v1development/profile HTTP/1.1\r\n\r\n"),
            (Route::Other, Some(404))
        );
        assert_eq!(Route::OtlpRefused.index(), 7);
        assert_eq!(Route::LABELS[7].name, "v1development_profiles");
        for (i, label) in Route::LABELS.iter().enumerate() {
            assert!(!label.name.is_empty(), "{i}");
        }
    }
}
