//! `POST /ingest` on the wire as Pyroscope answers it (docs/ingest.md §12.1): its paths and
//! its JSON error responses. What a gateway does with an `/ingest` request lives above this
//! layer.

use super::connect::{self, Code};
use crate::http::Response;

/// The path, and the alias Pyroscope also serves.
pub const PATHS: [&str; 2] = ["/ingest", "/pyroscope/ingest"];

/// Pyroscope's error answer with the code its HTTP→code table gives `status`.
pub fn error_response(status: u16, message: &str) -> Response {
    error_response_with_code(status, Code::from_http_status(status), message)
}

/// Pyroscope's error answer: `{"code":"…","message":"…"}` and a newline (Go's
/// `json.Encoder`), `application/json`, `X-Content-Type-Options: nosniff`.
pub fn error_response_with_code(status: u16, code: Code, message: &str) -> Response {
    let mut body = connect::error_body(code, message);
    body.push(b'\n');
    Response::json(status, body).header("X-Content-Type-Options", "nosniff")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyroscope_error_shape() {
        let r = error_response(422, "pushing IngestInput-pprof failed <x>");
        assert_eq!(r.status, 422);
        assert_eq!(
            &r.body[..],
            b"{\"code\":\"unknown\",\"message\":\"pushing IngestInput-pprof failed \\u003cx\\u003e\"}\n"
        );
        assert!(
            r.headers
                .contains(&("X-Content-Type-Options", "nosniff".into()))
        );
        assert_eq!(error_response(429, "m").status, 429);
        assert!(
            String::from_utf8_lossy(&error_response(429, "m").body).contains("resource_exhausted")
        );
    }
}
