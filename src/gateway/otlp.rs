//! `POST /v1development/profiles`: OpenTelemetry profiles over OTLP/HTTP (docs/otlp.md).
//!
//! The body is inflated (bounded) and scanned, never decoded into structs: its profiles are
//! counted and its schema layout checked against what the downstream reads (`otlp.schema`),
//! so a request whose samples would arrive misread is refused instead of forwarded. A
//! request is forwarded byte for byte (gzip included) unless external labels must be added
//! to its resources; then the protobuf message is re-encoded with only the resources
//! rebuilt. Answers are OTLP's: `ExportProfilesServiceResponse` (with the downstream's
//! `partial_success`) or `google.rpc.Status`, in the request's encoding.
//!
//! [`export`] is the part shared with the gRPC `Export` method: it takes the inflated
//! message and answers with a [`Reply`] each transport renders its own way.

use std::time::Instant;

use bytes::Bytes;

use super::{Caller, Gateway, Route};
use crate::config::otlp::SchemaChoice;
use crate::distributor::tenant;
use crate::forward::envelope::{Envelope, Kind, Outcome};
use crate::http::Response;
use crate::http::server::Request;
use crate::metrics::RejectReason;
use crate::protocol::otlp::{
    self, Accept, ContentType, Decoded, GrpcCode, OtlpError, OtlpHead, PartialSuccess, Schema,
    reply, resource,
};
use crate::protocol::push::{self, PushHead};

/// `Retry-After` (seconds) on a 503: OTLP clients otherwise back off on their own.
const UNAVAILABLE_RETRY_AFTER_SECS: u32 = 1;

/// The accepted layout of a configured `otlp.schema`.
pub fn accept_for(c: SchemaChoice) -> Accept {
    match c {
        SchemaChoice::V1_7 => Accept::Only(Schema::V1_7),
        SchemaChoice::V1_9 => Accept::Only(Schema::V1_9),
        SchemaChoice::V1_10 => Accept::Only(Schema::V1_10),
        SchemaChoice::Any => Accept::Any,
    }
}

/// The gRPC code of an authentication refusal (`401` or `429`).
pub fn code_for_denied(status: u16) -> GrpcCode {
    if status == 429 {
        GrpcCode::ResourceExhausted
    } else {
        GrpcCode::Unauthenticated
    }
}

/// An error the connection loop raises on this route (body too large, read timeout, …), as
/// a `google.rpc.Status` in the request's encoding with the loop's HTTP status.
pub fn loop_error(ct: ContentType, reason: RejectReason, status: u16, message: &str) -> Response {
    let code = match reason {
        RejectReason::BodyTooLarge => GrpcCode::ResourceExhausted,
        RejectReason::WriteTimeout => GrpcCode::Unavailable,
        RejectReason::BadRequest => GrpcCode::InvalidArgument,
        _ => GrpcCode::for_http_status(status),
    };
    reply::status_response(ct, status, code, message)
}

/// The outcome of an export, for either transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// Accepted; `partial` is what the destinations reported refusing (docs/otlp.md §7).
    Ok { partial: Option<PartialSuccess> },
    /// Refused: the HTTP status OTLP/HTTP answers with, the gRPC code, the message, and
    /// the `Retry-After` seconds of a retryable refusal.
    Err {
        status: u16,
        code: GrpcCode,
        message: String,
        retry_after_secs: Option<u32>,
    },
}

impl Reply {
    fn error(status: u16, code: GrpcCode, message: impl Into<String>) -> Self {
        Reply::Err {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    fn from_otlp(e: &OtlpError) -> Self {
        Reply::error(e.http_status(), e.code(), e.to_string())
    }

    /// The gRPC status number (0 = OK), for the HTTP/2 `Export` method.
    pub fn grpc_status(&self) -> u32 {
        match self {
            Reply::Ok { .. } => 0,
            Reply::Err { code, .. } => code.number(),
        }
    }

    /// The OTLP/HTTP answer in the request's encoding.
    pub fn to_response(&self, ct: ContentType) -> Response {
        match self {
            Reply::Ok { partial } => reply::ok_response(ct, partial.as_ref()),
            Reply::Err {
                status,
                code,
                message,
                retry_after_secs,
            } => {
                let r = reply::status_response(ct, *status, *code, message);
                match retry_after_secs {
                    Some(s) => r.header("Retry-After", s.to_string()),
                    None => r,
                }
            }
        }
    }
}

/// The body as it came, for forwarding it verbatim.
pub struct Wire {
    pub body: Bytes,
    /// The body is gzip'd (`Content-Encoding: gzip`).
    pub gzip: bool,
    /// The request's own `Content-Type` value.
    pub content_type: ContentType,
}

pub async fn handle(
    gw: &Gateway,
    req: &Request<Route>,
    head: &OtlpHead,
    caller: &Caller,
) -> Response {
    let ct = head.content_type;
    let max = usize::try_from(gw.settings().max_decompressed_body).unwrap_or(usize::MAX);
    let decoded = match otlp::decode_body(head, req.body.clone(), max) {
        Ok(d) => d,
        Err(e) => return Reply::from_otlp(&e).to_response(ct),
    };
    let wire = Wire {
        body: req.body.clone(),
        gzip: head.gzip,
        content_type: ct,
    };
    export(
        gw,
        decoded,
        Some(wire),
        caller,
        req.deadline,
        req.received_at,
    )
    .await
    .to_response(ct)
}

/// The gRPC `Export` method's entry: `message` is the inflated `ExportProfilesServiceRequest`
/// (protobuf, or JSON for `application/grpc+json`), `tenant` the caller's (already
/// authenticated) tenant. The downstream gets it over OTLP/HTTP as `ct`.
pub async fn export_message(
    gw: &Gateway,
    message: Bytes,
    ct: ContentType,
    tenant: Option<Bytes>,
    deadline: Instant,
    received_at: Instant,
) -> Reply {
    let decoded = match otlp::decode_message(message, ct) {
        Ok(d) => d,
        Err(e) => return Reply::from_otlp(&e),
    };
    let wire = Wire {
        body: decoded.message.clone(),
        gzip: false,
        content_type: ct,
    };
    export(
        gw,
        decoded,
        Some(wire),
        &Caller { tenant },
        deadline,
        received_at,
    )
    .await
}

/// The gRPC `ProfilesService/Export` method over HTTP/2: the one length-prefixed message is
/// unframed and inflated (bounded as a Push is), exported as OTLP/HTTP, and answered with
/// gRPC's status: the `ExportProfilesServiceResponse` (with `partial_success`) and
/// `grpc-status: 0`, or a trailers-only error (docs/otlp.md).
pub async fn handle_grpc(
    gw: &Gateway,
    req: &Request<Route>,
    head: &PushHead,
    caller: &Caller,
) -> Response {
    let codec = head.content_type.codec;
    let max = usize::try_from(gw.settings().max_decompressed_body).unwrap_or(usize::MAX);
    let message = push::unframe_grpc_web(req.body.clone(), max).and_then(|(msg, compressed)| {
        let enc = push::message_encoding(compressed, head.encoding.clone())?;
        push::inflate_message(msg, enc, max)
    });
    let message = match message {
        Ok(m) => m,
        Err(e) => return push::grpc_error(codec, e.code(), &e.to_string()),
    };
    let ct = match codec {
        push::Codec::Json => ContentType::Json,
        push::Codec::Proto => ContentType::XProtobuf,
    };
    let deadline = match head.timeout {
        Some(t) => (req.received_at + t).min(req.deadline),
        None => req.deadline,
    };
    let reply = export_message(
        gw,
        message,
        ct,
        caller.tenant.clone(),
        deadline,
        req.received_at,
    )
    .await;
    match reply {
        Reply::Ok { partial } => {
            push::grpc_message(codec, &reply::encode_response(ct, partial.as_ref()))
        }
        Reply::Err { code, message, .. } => push::grpc_status(codec, code.number(), &message),
    }
}

/// Checks, forwards and answers one decoded request.
pub async fn export(
    gw: &Gateway,
    decoded: Decoded,
    wire: Option<Wire>,
    caller: &Caller,
    deadline: Instant,
    received_at: Instant,
) -> Reply {
    let settings = gw.settings();
    if let Err(e) = settings.otlp_accept.check(decoded.scan.detected) {
        crate::util::lograte::warn_limited("otlp schema refused", |suppressed| {
            tracing::warn!(suppressed, error = %e, "refused an OTLP profiles request");
        });
        return Reply::from_otlp(&e);
    }
    if settings.policy.config.enabled()
        && let Err(e) = tenant::resolve(
            caller.tenant.as_deref(),
            settings.policy.config.multitenancy_enabled,
        )
    {
        return Reply::error(401, GrpcCode::Unauthenticated, e.to_string());
    }
    if gw.ring.is_some() {
        // Pyroscope's distributor splits an OTLP request into series before placing them;
        // pyrogate does not convert OTLP, so it cannot place it on the ring.
        return Reply::error(
            501,
            GrpcCode::Unimplemented,
            "pyrogate: OTLP profiles are not supported in ring mode (docs/otlp.md §8); send them to Pyroscope's distributor",
        );
    }
    if !gw.forwarder.has_endpoints() {
        return Reply::Ok { partial: None };
    }
    let Some(wire) = wire else {
        return Reply::error(500, GrpcCode::Internal, "pyrogate: no request body");
    };
    let external = &settings.external_labels;
    let rewrite = !wire.content_type.is_json()
        && match resource::needs_rewrite(&decoded.message, external) {
            Ok(r) => r,
            Err(e) => return Reply::from_otlp(&e),
        };
    let (headers, body) = if rewrite {
        match resource::rewrite(&decoded.message, external) {
            Ok(chunks) => (
                vec![(
                    "Content-Type",
                    Bytes::from_static(wire.content_type.as_str().as_bytes()),
                )],
                chunks,
            ),
            Err(e) => return Reply::from_otlp(&e),
        }
    } else {
        let mut h = vec![(
            "Content-Type",
            Bytes::from_static(wire.content_type.as_str().as_bytes()),
        )];
        if wire.gzip && !wire.body.is_empty() {
            h.push(("Content-Encoding", Bytes::from_static(b"gzip")));
        }
        (h, vec![wire.body])
    };
    let body_len = body.iter().map(Bytes::len).sum();
    let env = Envelope {
        kind: Kind::Otlp,
        path_and_query: otlp::PATH.to_string(),
        headers,
        body,
        body_len,
        tenant: caller.tenant.clone(),
        deadline,
        received_at,
        profiles: decoded.scan.profiles,
        profile_bytes: body_len as u64,
    };
    let (outcome, partial) = gw.forwarder.forward_detailed(env).await;
    match outcome {
        Outcome::Accepted => Reply::Ok { partial },
        Outcome::Rejected {
            status, message, ..
        } => Reply::error(status, GrpcCode::for_http_status(status), message),
        Outcome::Unavailable { message, .. } => Reply::Err {
            status: 503,
            code: GrpcCode::Unavailable,
            message,
            retry_after_secs: Some(UNAVAILABLE_RETRY_AFTER_SECS),
        },
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
            Reply::Err {
                status: 429,
                code: GrpcCode::ResourceExhausted,
                message: message.into(),
                retry_after_secs: Some(retry_after_secs),
            }
        }
    }
}
