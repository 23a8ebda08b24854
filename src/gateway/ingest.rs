//! `POST /ingest`: the legacy SDK endpoint. The body, the raw query parameters and every
//! `Content-Type` value are forwarded untouched; only `name` is rebuilt (canonical form,
//! `service_name` rule, external labels), exactly as Alloy's `receive_http` +
//! `pyroscope.write` do (docs/alloy-compat.md §4, §12.1; docs/ingest.md §5.5–§5.6).

use bytes::Bytes;

use super::{Caller, Gateway, Route};
use crate::distributor::ingest::{Refusal, Verdict};
use crate::distributor::{self, Now};
use crate::forward::envelope::{Envelope, Kind, Outcome};
use crate::http::server::Request;
use crate::http::{Response, response::reason};
use crate::protocol::labels::{self, LabelsError};
use crate::protocol::labelset::{self, Labels};
use crate::protocol::query;
use crate::protocol::{self, connect};

pub async fn handle(gw: &Gateway, req: &Request<Route>, caller: &Caller) -> Response {
    let settings = gw.settings();
    let q = query::parse(req.head.query().unwrap_or(""));
    let mut body = vec![req.body.clone()];
    if settings.policy.config.enabled() {
        let content_type = req.head.header("content-type").unwrap_or(b"");
        let check = distributor::ingest::Request {
            tenant_header: caller.tenant.as_deref(),
            query: &q,
            content_type: &String::from_utf8_lossy(content_type),
            body: &req.body,
        };
        match distributor::ingest::check(&gw.distributor, &settings.policy, &check, Now::read()) {
            Ok(Verdict::Unchanged) => {}
            Ok(Verdict::Replaced(chunks)) => body = chunks,
            Ok(Verdict::Empty) => return Response::new(200),
            Err(refusal) => return refused(&refusal),
        }
    }
    // Alloy with an empty `forward_to` answers 200 without looking at the request.
    if gw.ring.is_none() && !gw.forwarder.has_endpoints() {
        return Response::new(200);
    }
    let raw_name = q.get("name");
    // The rebuilt name, already query-escaped: computed once per distinct `name`.
    let escaped_name = settings.forward_name(raw_name, || {
        labels::ingest_forward_name(&parse_name(raw_name), &settings.external_labels).map(|n| {
            let mut e = String::with_capacity(n.len() * 2);
            query::query_escape(&n, &mut e);
            e
        })
    });
    let escaped_name = match escaped_name {
        Ok(n) => n,
        Err(e) => return invalid_labels(&e),
    };
    let mut path_and_query = String::from("/ingest?");
    path_and_query.push_str(&q.encode_with_escaped("name", &escaped_name));

    let headers: Vec<(&'static str, Bytes)> = req
        .head
        .headers_named("content-type")
        .map(|v| ("Content-Type", Bytes::copy_from_slice(v)))
        .collect();
    let tenant = caller.tenant.clone();
    let body_len = body.iter().map(Bytes::len).sum();
    let env = Envelope {
        kind: Kind::Ingest,
        path_and_query,
        headers,
        body,
        body_len,
        tenant,
        deadline: req.deadline,
        received_at: req.received_at,
        profiles: 1,
        profile_bytes: body_len as u64,
    };
    if let Some(ring) = &gw.ring {
        let mut series = parse_name(raw_name);
        labels::apply_external(&mut series, &settings.external_labels);
        let pairs: Vec<(String, String)> = series.into_iter().collect();
        let hash_tenant = env.tenant.as_ref().map_or_else(
            || "anonymous".to_string(),
            |t| String::from_utf8_lossy(t).into_owned(),
        );
        return match crate::ring::route::ingest(ring, &hash_tenant, &pairs, env).await {
            Outcome::Rejected {
                status,
                code: Some(code),
                message,
            } => protocol::ingest::error_response_with_code(status, code, &message),
            other => respond(other),
        };
    }
    respond(gw.forwarder.forward(env).await)
}

/// Pyroscope's answer to a refused request, in the shape its code path writes.
fn refused(r: &Refusal) -> Response {
    let resp = if r.newline {
        protocol::ingest::error_response_with_code(r.status, r.code, &r.message)
    } else {
        Response::json(r.status, connect::error_body(r.code, &r.message))
    };
    match r.retry_after_secs {
        Some(secs) => resp.header("Retry-After", secs.to_string()),
        None => resp,
    }
}

/// Alloy logs a warning and continues with no labels when `name` does not parse; the
/// request then fails label validation (answered below).
fn parse_name(name: Option<&str>) -> Labels {
    match name {
        None | Some("") => Labels::new(),
        Some(n) => labelset::parse(n).unwrap_or_else(|e| {
            tracing::warn!(name = n, error = %e, "failed to parse labels from name parameter");
            Labels::new()
        }),
    }
}

/// Alloy answers 500 here, which makes the Java SDK (and an upstream Alloy) resend a
/// profile that can never be accepted; pyrogate says 400 so they drop it.
fn invalid_labels(e: &LabelsError) -> Response {
    Response::text(400, format!("invalid labels in profile: {e}\n"))
}

/// Maps the forwarding outcome the way Alloy's receive_http does: a destination's status is
/// relayed with Go's status text, any other failure is a 500.
fn respond(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Accepted => Response::new(200),
        Outcome::Rejected { status, .. }
        | Outcome::Unavailable {
            last_status: Some(status),
            ..
        } => Response::text(status, format!("{}\n", reason(status))),
        Outcome::Unavailable {
            last_status: None, ..
        } => Response::text(500, "Failed to process request\n"),
        Outcome::Overloaded {
            retry_after_secs, ..
        } => Response::text(429, "Too Many Requests\n")
            .header("Retry-After", retry_after_secs.to_string()),
    }
}
