//! The Push handler: Connect unary (proto and JSON, optional gzip) and gRPC-Web over
//! HTTP/1.1 (docs/push.md §14).
//!
//! A Push whose labels need no change is forwarded byte for byte (gzip included); otherwise
//! the labels are rewritten and the message re-encoded with every `raw_profile` shared, not
//! copied. The whole request goes downstream as one request (Alloy sends one per series).
//! Failures are reported with the Connect code that tells the caller the truth: a permanent
//! downstream 4xx keeps its meaning (so nobody resends poison data), exhausted retries are
//! `unavailable`.

use bytes::Bytes;

use super::{Caller, Gateway, Route};
use crate::distributor::push::Verdict;
use crate::distributor::{self, Now, Policy, Rejection, tenant};
use crate::forward::envelope::{Envelope, Kind, Outcome};
use crate::http::Response;
use crate::http::server::Request;
use crate::metrics::RejectReason;
use crate::protocol::connect::Code;
use crate::protocol::labels;
use crate::protocol::labelset::Labels;
use crate::protocol::proto::{LabelPair, PushRequest};
use crate::protocol::push::encode as push_encode;
use crate::protocol::push::{self, PushHead};
use crate::protocol::push::{Encoding, Protocol};

pub async fn handle(
    gw: &Gateway,
    req: &Request<Route>,
    head: &PushHead,
    caller: &Caller,
) -> Response {
    let ct = head.content_type;
    let settings = gw.settings();
    let max = settings.max_decompressed_body as usize;
    let (mut decoded, encoding) = match push::decode_body(head, req.body.clone(), max) {
        Ok(d) => d,
        Err(e) => return push::reply_error(ct, e.code(), &e.to_string()),
    };
    let mut rewritten_profiles = false;
    if settings.policy.config.enabled() {
        match distribute(gw, caller, &settings.policy, &decoded) {
            Ok(None) => {}
            Ok(Some(verdict)) => {
                if verdict.all_empty() {
                    return push::reply_ok(ct);
                }
                decoded = verdict.apply(decoded);
                rewritten_profiles = true;
            }
            Err(r) => {
                let mut resp = push::reply_error(ct, r.code, &r.message);
                if let Some(secs) = r.retry_after_secs {
                    resp.headers.push(("Retry-After", secs.to_string().into()));
                }
                return resp;
            }
        }
    }
    let deadline = match head.timeout {
        Some(t) => (req.received_at + t).min(req.deadline),
        None => req.deadline,
    };
    if let Some(ring) = &gw.ring {
        let tenant = caller.tenant.clone();
        let hash_tenant = tenant.as_ref().map_or_else(
            || "anonymous".to_string(),
            |t| String::from_utf8_lossy(t).into_owned(),
        );
        let decoded = rewrite_labels(decoded, &settings.external_labels);
        let series = crate::ring::route::push_series(decoded, max);
        let common = crate::ring::route::Common {
            tenant,
            deadline,
            received_at: req.received_at,
        };
        let outcome = crate::ring::route::push(ring, &hash_tenant, series, common).await;
        return reply(gw, ct, outcome);
    }
    if !gw.forwarder.has_endpoints() {
        return push::reply_ok(ct);
    }
    let rewrite = rewritten_profiles
        || ct.protocol != Protocol::Connect
        || decoded.series.iter().any(|s| {
            let pairs: Vec<(&str, &str)> = push::series_labels(s).collect();
            labels::push_needs_rewrite(&pairs, &settings.external_labels)
        });
    let (profiles, profile_bytes) = count_profiles(&decoded);
    let (headers, body) = if rewrite {
        let rewritten = rewrite_labels(decoded, &settings.external_labels);
        (
            vec![("Content-Type", Bytes::from_static(b"application/proto"))],
            push_encode::encode_chunks(&rewritten),
        )
    } else {
        let mut h = vec![(
            "Content-Type",
            Bytes::copy_from_slice(
                req.head
                    .header("content-type")
                    .unwrap_or(b"application/proto"),
            ),
        )];
        if encoding == Encoding::Gzip && !req.body.is_empty() {
            h.push(("Content-Encoding", Bytes::from_static(b"gzip")));
        }
        (h, vec![req.body.clone()])
    };
    let tenant = caller.tenant.clone();
    let body_len = push_encode::encoded_len(&body);
    let env = Envelope {
        kind: Kind::Push,
        path_and_query: push::PATH.to_string(),
        headers,
        body,
        body_len,
        tenant,
        deadline,
        received_at: req.received_at,
        profiles,
        profile_bytes,
    };
    reply(gw, ct, gw.forwarder.forward(env).await)
}

/// The answer to a forwarded Push in its protocol.
fn reply(gw: &Gateway, ct: push::ContentType, outcome: Outcome) -> Response {
    match outcome {
        Outcome::Accepted => push::reply_ok(ct),
        Outcome::Rejected {
            status,
            code,
            message,
        } => {
            let code = code.unwrap_or_else(|| Code::for_downstream_status(status));
            push::reply_error(ct, code, &message)
        }
        Outcome::Unavailable { message, .. } => push::reply_error(ct, Code::Unavailable, &message),
        Outcome::Overloaded {
            retry_after_secs,
            spool,
        } => {
            gw.metrics.rejected(RejectReason::QueueFull);
            let message = if spool {
                "pyrogate: spool full, retry later"
            } else {
                "pyrogate: forwarding queue full, retry later"
            };
            let mut r = push::reply_error(ct, Code::ResourceExhausted, message);
            r.headers
                .push(("Retry-After", retry_after_secs.to_string().into()));
            r
        }
    }
}

/// The edge distributor's checks (docs/distributor.md): the tenant, then Pyroscope's
/// validation, limits and normalisation. `Ok(Some)` when profiles are to be forwarded
/// rewritten (or not at all).
fn distribute(
    gw: &Gateway,
    caller: &Caller,
    policy: &Policy,
    decoded: &PushRequest,
) -> Result<Option<Verdict>, Rejection> {
    let tenant = tenant::resolve(caller.tenant.as_deref(), policy.config.multitenancy_enabled)
        .map_err(|e| Rejection::new(Code::Unauthenticated, e.to_string()))?;
    if !(policy.config.validate || policy.config.normalize) {
        return Ok(None);
    }
    let verdict = distributor::push::check(&gw.distributor, policy, &tenant, decoded, Now::read())?;
    Ok(verdict.changed().then_some(verdict))
}

/// Alloy's counting: one profile per sample, bytes = the raw_profile sizes.
fn count_profiles(req: &PushRequest) -> (u64, u64) {
    req.series
        .iter()
        .flat_map(|s| &s.samples)
        .fold((0, 0), |(n, b), s| (n + 1, b + s.raw_profile.len() as u64))
}

fn rewrite_labels(mut req: PushRequest, external: &Labels) -> PushRequest {
    for s in &mut req.series {
        let pairs: Vec<(&str, &str)> = push::series_labels(s).collect();
        let new = labels::push_rewrite(&pairs, external);
        s.labels = new
            .into_iter()
            .map(|(name, value)| LabelPair { name, value })
            .collect();
    }
    req
}
