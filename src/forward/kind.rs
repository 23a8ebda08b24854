//! The kinds of downstream request and what differs between them: the extra headers
//! of an attempt, how a response is classified for the retry loop (Alloy's matrix,
//! docs/alloy-compat.md §11; OTLP/HTTP's rules for OTLP, docs/otlp.md §7), what a success
//! carries back (OTLP's `partial_success`), and their names in logs and metrics. Everything protocol
//! specific about forwarding is here, in terms of the `protocol` layer.

use std::time::Duration;

use super::retry::Attempt;
use crate::http::client::ClientResponse;
use crate::protocol::connect::{self, Code};
use crate::protocol::otlp::{self, PartialSuccess};

/// Which downstream API an envelope is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ingest,
    Push,
    /// OTLP profiles (`/v1development/profiles`).
    Otlp,
}

impl Kind {
    /// The verb of Alloy's messages (`failed to push to endpoint …`).
    pub const fn verb(self) -> &'static str {
        match self {
            Kind::Ingest => "ingest",
            Kind::Push => "push",
            Kind::Otlp => "export",
        }
    }

    /// The `type` label of `pyroscope_write_latency` for a whole call.
    pub const fn latency_total(self) -> &'static str {
        match self {
            Kind::Ingest => "ingest_total",
            Kind::Push => "push_total",
            Kind::Otlp => "otlp_total",
        }
    }

    /// Headers an attempt adds, given its time budget: a Push is a Connect unary call
    /// carrying its remaining time, as connect-go's client sends it.
    pub fn write_attempt_headers(self, out: &mut Vec<u8>, budget: Duration) {
        if self == Kind::Push {
            connect::write_unary_request_headers(out, budget);
        }
    }

    /// Classifies a downstream response. Any 2xx is delivered. `/ingest` follows Alloy's
    /// status rules; Push reads the Connect code from the body, or keeps the status's
    /// meaning when there is none ([`Code::for_downstream_status`]).
    pub fn classify(self, resp: &ClientResponse, retry_on_429: bool) -> Attempt {
        if (200..300).contains(&resp.status) {
            return Attempt::Delivered;
        }
        let body = match self {
            Kind::Otlp => otlp::reply::error_text(&resp.body, resp.content_type_json),
            _ => String::from_utf8_lossy(&resp.body).trim_end().to_string(),
        };
        let message = format!(
            "remote error: pyroscope write error: status={} msg={}",
            resp.status, body
        );
        let (retry, code) = match self {
            Kind::Ingest => {
                let retry = match resp.status {
                    429 => retry_on_429,
                    408 => true,
                    s if s >= 500 => true,
                    _ => false,
                };
                (retry, None)
            }
            Kind::Push => {
                let code = connect::parse_error_body(&resp.body)
                    .map(|(c, _)| c)
                    .unwrap_or_else(|| Code::for_downstream_status(resp.status));
                (connect::is_retryable_alloy(code, retry_on_429), Some(code))
            }
            // OTLP/HTTP: only 429, 502, 503 and 504 are retryable; Pyroscope's OTLP handler
            // answers 500 for refusals (limits, invalid labels) that a retry cannot fix.
            Kind::Otlp => {
                let retry = match resp.status {
                    429 => retry_on_429,
                    502..=504 => true,
                    _ => false,
                };
                (retry, None)
            }
        };
        if retry {
            Attempt::Retryable {
                status: Some(resp.status),
                retry_after: resp.retry_after,
                message,
            }
        } else {
            Attempt::Permanent {
                status: resp.status,
                code,
                message,
            }
        }
    }
}

impl Kind {
    /// What a delivered response reports back to the caller: OTLP's `partial_success`.
    pub fn partial_success(self, resp: &ClientResponse) -> Option<PartialSuccess> {
        match self {
            Kind::Otlp => otlp::reply::parse_partial_success(&resp.body, resp.content_type_json),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn resp(status: u16, body: &str) -> ClientResponse {
        ClientResponse {
            status,
            body: Bytes::copy_from_slice(body.as_bytes()),
            retry_after: None,
            content_type_json: body.starts_with('{'),
            reusable: true,
        }
    }

    fn retried(a: Attempt) -> bool {
        matches!(a, Attempt::Retryable { .. })
    }

    #[test]
    fn ingest_matrix() {
        let k = Kind::Ingest;
        assert_eq!(k.classify(&resp(200, ""), true), Attempt::Delivered);
        assert!(retried(k.classify(&resp(503, "x"), true)));
        assert!(retried(k.classify(&resp(500, "x"), false)));
        assert!(retried(k.classify(&resp(408, ""), false)));
        assert!(retried(k.classify(&resp(429, ""), true)));
        assert!(!retried(k.classify(&resp(429, ""), false)));
        assert!(!retried(k.classify(&resp(400, "bad"), true)));
        assert!(!retried(k.classify(&resp(302, ""), true)));
        match k.classify(&resp(400, "I don't like your profile\n"), true) {
            Attempt::Permanent { message, .. } => assert_eq!(
                message,
                "remote error: pyroscope write error: status=400 msg=I don't like your profile"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn push_matrix() {
        let k = Kind::Push;
        let ce = |c: &str| format!("{{\"code\":\"{c}\",\"message\":\"m\"}}");
        assert!(!retried(
            k.classify(&resp(400, &ce("invalid_argument")), true)
        ));
        assert!(retried(
            k.classify(&resp(429, &ce("resource_exhausted")), true)
        ));
        assert!(!retried(
            k.classify(&resp(429, &ce("resource_exhausted")), false)
        ));
        assert!(retried(k.classify(&resp(503, &ce("unavailable")), false)));
        assert!(retried(k.classify(&resp(500, &ce("internal")), false)));
        assert!(retried(k.classify(&resp(500, &ce("unknown")), false)));
        assert!(!retried(
            k.classify(&resp(401, &ce("unauthenticated")), true)
        ));
        // Without a Connect body the status keeps its meaning (not connect-go's inference).
        assert!(!retried(k.classify(&resp(400, "plain"), true)));
        assert!(!retried(k.classify(&resp(429, "plain"), false)));
        assert!(retried(k.classify(&resp(502, "plain"), false)));
        match k.classify(&resp(400, &ce("invalid_argument")), true) {
            Attempt::Permanent { code, .. } => assert_eq!(code, Some(Code::InvalidArgument)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn otlp_matrix() {
        let k = Kind::Otlp;
        assert_eq!(k.classify(&resp(200, ""), true), Attempt::Delivered);
        for s in [502, 503, 504] {
            assert!(retried(k.classify(&resp(s, "x"), false)), "{s}");
        }
        assert!(retried(k.classify(&resp(429, ""), true)));
        assert!(!retried(k.classify(&resp(429, ""), false)));
        for s in [400, 401, 403, 404, 413, 415, 500, 501] {
            assert!(!retried(k.classify(&resp(s, "x"), true)), "{s}");
        }
        match k.classify(&resp(400, "Failed to parse protobuf request\n"), true) {
            Attempt::Permanent { message, code, .. } => {
                assert_eq!(code, None);
                assert_eq!(
                    message,
                    "remote error: pyroscope write error: status=400 msg=Failed to parse protobuf request"
                );
            }
            other => panic!("{other:?}"),
        }
        let ok = ClientResponse {
            status: 200,
            body: Bytes::from_static(br#"{"partialSuccess":{"rejectedProfiles":"1"}}"#),
            retry_after: None,
            content_type_json: true,
            reusable: true,
        };
        assert_eq!(k.partial_success(&ok).map(|p| p.rejected_profiles), Some(1));
        assert_eq!(Kind::Push.partial_success(&ok), None);
        let mut out = Vec::new();
        k.write_attempt_headers(&mut out, Duration::from_secs(1));
        assert!(out.is_empty());
    }

    #[test]
    fn push_attempts_carry_connect_headers() {
        let mut out = Vec::new();
        Kind::Push.write_attempt_headers(&mut out, Duration::from_millis(1500));
        assert_eq!(
            out,
            b"Connect-Protocol-Version: 1\r\nConnect-Timeout-Ms: 1500\r\n"
        );
        let mut out = Vec::new();
        Kind::Ingest.write_attempt_headers(&mut out, Duration::from_secs(1));
        assert!(out.is_empty());
        let mut out = Vec::new();
        Kind::Push.write_attempt_headers(&mut out, Duration::ZERO);
        assert!(out.ends_with(b"Connect-Timeout-Ms: 1\r\n"), "at least 1 ms");
    }
}
