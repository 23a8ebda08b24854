//! The Push handler: Connect unary (proto and JSON, optional gzip) and gRPC-Web over
//! HTTP/1.1 (docs/push.md §14).
//!
//! With `forward.decode_push = "auto"` (the default) a Connect Push that nothing configured
//! reads (no external labels, no validation or normalisation, fan-out mode, an endpoint to
//! send to) is forwarded unread: not inflated, not decoded, its bytes and `Content-Type` /
//! `Content-Encoding` as received, and a malformed one gets the downstream's answer
//! (docs/push.md §14). Otherwise it is decoded: a Push whose labels need no change is still
//! forwarded byte for byte (gzip included); else the labels are rewritten and the message
//! re-encoded with every `raw_profile` shared, not copied. The whole request goes downstream
//! as one request (Alloy sends one per series).
//! Failures are reported with the Connect code that tells the caller the truth: a permanent
//! downstream 4xx keeps its meaning (so nobody resends poison data), exhausted retries are
//! `unavailable`.

use bytes::Bytes;

use super::{Caller, Gateway, Route, Settings};
use crate::config::choices::DecodePush;
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
    if passes_unread(gw, &settings) {
        return forward_unread(gw, req, head, caller, &settings).await;
    }
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
    let deadline = deadline(req, head);
    let rewrite = rewritten_profiles
        || decoded.series.iter().any(|s| {
            let pairs: Vec<(&str, &str)> = push::series_labels(s).collect();
            labels::push_needs_rewrite(&pairs, &settings.external_labels)
        });
    if let Some(ring) = &gw.ring {
        let tenant = caller.tenant.clone();
        let hash_tenant = tenant.as_ref().map_or_else(
            || "anonymous".to_string(),
            |t| String::from_utf8_lossy(t).into_owned(),
        );
        let decoded = if rewrite {
            rewrite_labels(decoded, &settings.external_labels)
        } else {
            decoded
        };
        let (series, as_sent) = crate::ring::route::push_series_as_sent(decoded, max);
        // Owners of the whole, unchanged request get the client's bytes (a gRPC message
        // unframed); a request that cannot be unframed is re-encoded instead.
        let verbatim = (as_sent && !rewrite)
            .then(|| verbatim_payload(req, ct, encoding, max).ok())
            .flatten();
        let common = crate::ring::route::Common {
            tenant,
            deadline,
            received_at: req.received_at,
        };
        let outcome = crate::ring::route::push(ring, &hash_tenant, series, common, verbatim).await;
        return reply(gw, ct, outcome);
    }
    if !gw.forwarder.has_endpoints() {
        return push::reply_ok(ct);
    }
    let counts = count_profiles(&decoded);
    let payload = if rewrite {
        let rewritten = rewrite_labels(decoded, &settings.external_labels);
        (
            vec![("Content-Type", Bytes::from_static(b"application/proto"))],
            push_encode::encode_chunks(&rewritten),
        )
    } else {
        match verbatim_payload(req, ct, encoding, max) {
            Ok(p) => p,
            Err(e) => return push::reply_error(ct, e.code(), &e.to_string()),
        }
    };
    let env = envelope(req, caller, deadline, payload, counts);
    reply(gw, ct, gw.forwarder.forward(env).await)
}

/// Whether this Push may go downstream unread (`decode_push = "auto"`): any protocol (a
/// gRPC or gRPC-Web message is unframed, not decoded), and nothing configured that reads
/// the message — no external labels to apply, no
/// distributor validation or normalisation (their limits apply only with them), fan-out
/// (ring mode routes on the labels) — and a destination to give the truthful answer (a
/// gateway without endpoints decodes, as Alloy with an empty `forward_to` does). The
/// distributor's tenant rule reads only the `X-Scope-OrgID` header and is still applied.
fn passes_unread(gw: &Gateway, settings: &Settings) -> bool {
    let policy = &settings.policy.config;
    settings.decode_push == DecodePush::Auto
        && settings.external_labels.is_empty()
        && !(policy.validate || policy.normalize)
        && gw.ring.is_none()
        && gw.forwarder.has_endpoints()
}

/// Forwards a Push without reading it: its bytes, its `Content-Type` and (for a non-empty
/// gzip body) `Content-Encoding: gzip`, as [`handle`] forwards a decoded Push whose labels
/// need no change. The metrics count it as one profile of the body's size as received (see
/// [`UNREAD_PROFILES`]).
async fn forward_unread(
    gw: &Gateway,
    req: &Request<Route>,
    head: &PushHead,
    caller: &Caller,
    settings: &Settings,
) -> Response {
    let ct = head.content_type;
    if settings.policy.config.multitenancy_enabled
        && let Err(e) = tenant::resolve(caller.tenant.as_deref(), true)
    {
        return push::reply_error(ct, Code::Unauthenticated, &e.to_string());
    }
    let max = settings.max_decompressed_body as usize;
    // gRPC and gRPC-Web: the message out of its frame, as the client sent it.
    let (message, encoding, headers) = if ct.protocol == Protocol::Connect {
        let encoding = match &head.encoding {
            Ok(e) => *e,
            Err(e) => return push::reply_error(ct, e.code(), &e.to_string()),
        };
        (req.body.clone(), encoding, verbatim_headers(req, encoding))
    } else {
        let unframed = push::unframe_grpc_web(req.body.clone(), max).and_then(|(m, compressed)| {
            Ok((
                m,
                push::message_encoding(compressed, head.encoding.clone())?,
            ))
        });
        match unframed {
            Ok((m, encoding)) => {
                let h = grpc_message_headers(ct.codec, encoding, &m);
                (m, encoding, h)
            }
            Err(e) => return push::reply_error(ct, e.code(), &e.to_string()),
        }
    };
    // An uncompressed message's size is known without reading it: the same bound (and
    // answer) as a decoded one. A gzip'd one is not inflated here, so its inflated size is
    // the downstream's to bound (docs/push.md §14.1).
    if encoding == Encoding::Identity
        && let Err(e) = push::inflate_message(message.clone(), encoding, max)
    {
        return push::reply_error(ct, e.code(), &e.to_string());
    }
    let body_len = message.len() as u64;
    let body = vec![message];
    let env = envelope(
        req,
        caller,
        deadline(req, head),
        (headers, body),
        (UNREAD_PROFILES, body_len),
    );
    reply(gw, ct, gw.forwarder.forward(env).await)
}

/// What the sent/dropped profile metrics count for a Push forwarded unread: one profile per
/// request, which is exact for every SDK that pushes (pyroscope-io, pyroscope-rs and
/// Alloy's `pyroscope.write` send one series with one sample per request); the byte
/// counters get the body as received (compressed when gzip'd) instead of the sum of the
/// `raw_profile` sizes, which only decoding can tell.
const UNREAD_PROFILES: u64 = 1;

/// The caller's deadline: the server's, or the caller's own when it sent a shorter one.
fn deadline(req: &Request<Route>, head: &PushHead) -> std::time::Instant {
    match head.timeout {
        Some(t) => (req.received_at + t).min(req.deadline),
        None => req.deadline,
    }
}

/// The headers and body chunks of the request forwarded downstream.
type Payload = (Vec<(&'static str, Bytes)>, Vec<Bytes>);

/// A Push whose labels need no change, as received: a Connect body with its own headers,
/// or a gRPC / gRPC-Web message as a Connect unary request (the message bytes inside the
/// frame, as the client sent them: gzip'd when its compressed flag was set), so the
/// downstream gets the caller's exact message.
fn verbatim_payload(
    req: &Request<Route>,
    ct: push::ContentType,
    encoding: Encoding,
    max: usize,
) -> Result<Payload, push::DecodeError> {
    if ct.protocol == Protocol::Connect {
        return Ok((verbatim_headers(req, encoding), vec![req.body.clone()]));
    }
    let (message, _) = push::unframe_grpc_web(req.body.clone(), max)?;
    Ok((
        grpc_message_headers(ct.codec, encoding, &message),
        vec![message],
    ))
}

/// The Connect headers of a gRPC or gRPC-Web message forwarded as sent.
fn grpc_message_headers(
    codec: push::Codec,
    encoding: Encoding,
    message: &Bytes,
) -> Vec<(&'static str, Bytes)> {
    let content_type: &'static [u8] = match codec {
        push::Codec::Proto => b"application/proto",
        push::Codec::Json => b"application/json",
    };
    let mut h = vec![("Content-Type", Bytes::from_static(content_type))];
    if encoding == Encoding::Gzip && !message.is_empty() {
        h.push(("Content-Encoding", Bytes::from_static(b"gzip")));
    }
    h
}

/// The payload headers of a Push forwarded as received: its `Content-Type`, and
/// `Content-Encoding: gzip` for a non-empty gzip'd body (connect-go never inflates an empty
/// one, so neither does the downstream).
fn verbatim_headers(req: &Request<Route>, encoding: Encoding) -> Vec<(&'static str, Bytes)> {
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
    h
}

/// The envelope of a forwarded Push: `payload` = (headers, body chunks), `counts` =
/// (profiles, profile bytes) for the metrics.
fn envelope(
    req: &Request<Route>,
    caller: &Caller,
    deadline: std::time::Instant,
    payload: Payload,
    counts: (u64, u64),
) -> Envelope {
    let (headers, body) = payload;
    let body_len = push_encode::encoded_len(&body);
    Envelope {
        kind: Kind::Push,
        path_and_query: push::PATH.to_string(),
        headers,
        body,
        body_len,
        tenant: caller.tenant.clone(),
        deadline,
        received_at: req.received_at,
        profiles: counts.0,
        profile_bytes: counts.1,
    }
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
