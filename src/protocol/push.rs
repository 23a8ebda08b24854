//! `POST /push.v1.PusherService/Push`: Connect unary (proto and JSON, optional gzip) and
//! gRPC-Web over HTTP/1.1.
//!
//! A Push whose labels need no change is forwarded byte for byte (gzip included); otherwise
//! the labels are rewritten and the message re-encoded with every `raw_profile` shared, not
//! copied. The whole request goes downstream as one request (Alloy sends one per series).
//! Failures are reported with the Connect code that tells the caller the truth: a permanent
//! downstream 4xx keeps its meaning (so nobody resends poison data), exhausted retries are
//! `unavailable`.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use super::connect::{self, Code};
use super::labels;
use super::proto::{LabelPair, PushRequest};
use super::push_decode::{self, Codec, ContentType, Encoding, Protocol};
use super::push_encode;
use crate::forward::envelope::{Envelope, Kind, Outcome};
use crate::gateway::{Gateway, PUSH_PATH};
use crate::http::server::Request;
use crate::http::{RequestHead, Response};

/// What connect-go lists in `Accept-Post` for a Connect unary handler with both codecs.
const ACCEPT_POST: &str = "application/json, application/proto";

/// A Connect error response.
pub fn connect_error(code: Code, message: &str) -> Response {
    Response::json(code.http_status(), connect::error_body(code, message))
}

/// connect-go answers a method it does not know under a known service with 404.
pub fn unknown_method() -> Response {
    Response::text(404, "404 page not found\n")
}

/// Errors the connection loop raises itself on the Push route (body too large, read
/// timeout, malformed chunked body), in Connect form.
pub fn loop_error(status: u16, message: &str) -> Response {
    let code = match status {
        413 => Code::ResourceExhausted,
        408 => Code::DeadlineExceeded,
        400 => Code::InvalidArgument,
        503 => Code::Unavailable,
        _ => Code::Unknown,
    };
    // The HTTP status stays 413 for an oversized body: Connect clients read the code from
    // the JSON, and plain HTTP clients and proxies see a status that says "don't retry".
    Response::json(status, connect::error_body(code, message))
}

/// Checks made from the head alone, before the body is read (as connect-go does).
pub fn admit(head: &RequestHead) -> Result<(), Response> {
    let ct = head.header("content-type").unwrap_or(b"");
    let Some(ct) = push_decode::content_type(ct) else {
        return Err(Response::new(415).header("Accept-Post", ACCEPT_POST));
    };
    if ct.protocol == Protocol::Grpc {
        // Plain gRPC needs HTTP/2 trailers; clients that speak it over HTTP/1.1 get a clear
        // refusal instead of a hang.
        return Err(connect_error(
            Code::Unimplemented,
            "gRPC requires HTTP/2; use the Connect or gRPC-Web protocol over HTTP/1.1",
        ));
    }
    if ct.protocol == Protocol::Connect {
        if let Some(v) = head.header("connect-protocol-version")
            && v != b"1"
        {
            return Err(connect_error(
                Code::InvalidArgument,
                &format!(
                    "connect-protocol-version must be \"1\": got {:?}",
                    String::from_utf8_lossy(v)
                ),
            ));
        }
        if let Err(e) = push_decode::encoding_for(head.header("content-encoding")) {
            return Err(connect_error(e.code(), &e.to_string()));
        }
        if let Some(v) = head.header("connect-timeout-ms")
            && let Err(e) = connect::parse_timeout_ms(v)
        {
            return Err(connect_error(e.code(), &e.to_string()));
        }
    }
    Ok(())
}

pub async fn handle(gw: &Gateway, req: Request) -> Response {
    let ct = match push_decode::content_type(req.head.header("content-type").unwrap_or(b"")) {
        Some(ct) => ct,
        None => return Response::new(415).header("Accept-Post", ACCEPT_POST),
    };
    let settings = gw.settings();
    let max = settings.max_decompressed_body as usize;
    let (decoded, encoding) = match decode(&req, ct, max) {
        Ok(d) => d,
        Err(e) => return reply_error(ct, e.code(), &e.to_string()),
    };
    if !gw.shared.forwarder.has_endpoints() {
        return reply_ok(ct);
    }
    let caller_timeout = caller_timeout(&req.head, ct);
    let (deadline, caller_deadline) = match caller_timeout {
        Some(t) => {
            let caller = req.received_at + t;
            (caller.min(req.deadline), caller <= req.deadline)
        }
        None => (req.deadline, false),
    };
    let rewrite = ct.protocol != Protocol::Connect
        || decoded.series.iter().any(|s| {
            let pairs: Vec<(&str, &str)> = push_decode::series_labels(s).collect();
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
    let tenant = req
        .head
        .header("x-scope-orgid")
        .filter(|v| !v.is_empty())
        .map(Bytes::copy_from_slice);
    let body_len = push_encode::encoded_len(&body);
    let env = Envelope {
        kind: Kind::Push,
        path_and_query: PUSH_PATH.to_string(),
        headers,
        body,
        body_len,
        tenant,
        deadline,
        caller_deadline,
        received_at: req.received_at,
        profiles,
        profile_bytes,
    };
    match gw.shared.forwarder.forward(env).await {
        Outcome::Accepted => reply_ok(ct),
        Outcome::Rejected {
            status,
            connect_code,
            message,
        } => {
            let code = connect_code
                .as_deref()
                .and_then(Code::from_name)
                .unwrap_or_else(|| code_for_downstream_status(status));
            reply_error(ct, code, &message)
        }
        Outcome::Unavailable { message, .. } => reply_error(ct, Code::Unavailable, &message),
        Outcome::Overloaded { retry_after_secs } => {
            let mut r = reply_error(
                ct,
                Code::ResourceExhausted,
                "pyrogate: forwarding queue full, retry later",
            );
            r.headers
                .push(("Retry-After", retry_after_secs.to_string().into()));
            r
        }
    }
}

fn decode(
    req: &Request,
    ct: ContentType,
    max: usize,
) -> Result<(PushRequest, Encoding), push_decode::DecodeError> {
    match ct.protocol {
        Protocol::Connect => {
            let enc = push_decode::encoding_for(req.head.header("content-encoding"))?;
            Ok((
                push_decode::decode(req.body.clone(), ct.codec, enc, max)?,
                enc,
            ))
        }
        Protocol::GrpcWeb | Protocol::Grpc => {
            let (msg, compressed) = push_decode::unframe_grpc_web(req.body.clone(), max)?;
            let enc =
                push_decode::grpc_message_encoding(compressed, req.head.header("grpc-encoding"))?;
            Ok((push_decode::decode(msg, ct.codec, enc, max)?, enc))
        }
    }
}

fn caller_timeout(head: &RequestHead, ct: ContentType) -> Option<Duration> {
    match ct.protocol {
        Protocol::Connect => head
            .header("connect-timeout-ms")
            .and_then(|v| connect::parse_timeout_ms(v).ok())
            .map(Duration::from_millis),
        _ => head
            .header("grpc-timeout")
            .and_then(connect::parse_grpc_timeout),
    }
}

/// Alloy's counting: one profile per sample, bytes = the raw_profile sizes.
fn count_profiles(req: &PushRequest) -> (u64, u64) {
    req.series
        .iter()
        .flat_map(|s| &s.samples)
        .fold((0, 0), |(n, b), s| (n + 1, b + s.raw_profile.len() as u64))
}

fn rewrite_labels(mut req: PushRequest, external: &super::labelset::Labels) -> PushRequest {
    for s in &mut req.series {
        let pairs: Vec<(&str, &str)> = push_decode::series_labels(s).collect();
        let new = labels::push_rewrite(&pairs, external);
        s.labels = new
            .into_iter()
            .map(|(name, value)| LabelPair { name, value })
            .collect();
    }
    req
}

/// Pyroscope's HTTP-status → code table, used when a downstream refused without a Connect
/// body: it keeps the meaning (400 stays "don't resend"), unlike connect-go's client-side
/// inference that turns 400 into a retryable `internal`.
pub fn code_for_downstream_status(status: u16) -> Code {
    match status {
        400 | 413 | 422 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::Unimplemented,
        408 | 504 => Code::DeadlineExceeded,
        409 => Code::Aborted,
        412 => Code::FailedPrecondition,
        429 | 431 => Code::ResourceExhausted,
        499 => Code::Canceled,
        502 | 503 => Code::Unavailable,
        _ => Code::Unknown,
    }
}

fn reply_ok(ct: ContentType) -> Response {
    match (ct.protocol, ct.codec) {
        (Protocol::Connect, Codec::Proto) => {
            Response::new(200).header("Content-Type", "application/proto")
        }
        (Protocol::Connect, Codec::Json) => Response::json(200, Bytes::from_static(b"{}")),
        (_, codec) => grpc_web_response(codec, Code::Unknown, "", true),
    }
}

fn reply_error(ct: ContentType, code: Code, message: &str) -> Response {
    match ct.protocol {
        Protocol::Connect => connect_error(code, message),
        _ => grpc_web_response(ct.codec, code, message, false),
    }
}

/// A gRPC-Web response: on success one empty message frame then the trailers frame; on
/// error trailers-only (status in the headers, as connect-go does when nothing was written).
fn grpc_web_response(codec: Codec, code: Code, message: &str, ok: bool) -> Response {
    let ct = match codec {
        Codec::Proto => "application/grpc-web+proto",
        Codec::Json => "application/grpc-web+json",
    };
    if !ok {
        return Response::new(200)
            .header("Content-Type", ct)
            .header("Grpc-Status", code.grpc_number().to_string())
            .header("Grpc-Message", percent_encode_grpc(message));
    }
    let empty: &[u8] = if codec == Codec::Json { b"{}" } else { b"" };
    let trailer = b"grpc-status: 0\r\n";
    let mut body = BytesMut::with_capacity(10 + empty.len() + trailer.len());
    body.put_u8(0);
    body.put_u32(empty.len() as u32);
    body.put_slice(empty);
    body.put_u8(0x80);
    body.put_u32(trailer.len() as u32);
    body.put_slice(trailer);
    Response::new(200)
        .header("Content-Type", ct)
        .body(body.freeze())
}

/// `grpc-message` percent-encoding: bytes outside 0x20..=0x7E and `%` become `%XX`.
fn percent_encode_grpc(m: &str) -> String {
    let mut out = String::with_capacity(m.len());
    for b in m.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downstream_status_keeps_its_meaning() {
        assert_eq!(code_for_downstream_status(400), Code::InvalidArgument);
        assert_eq!(code_for_downstream_status(429), Code::ResourceExhausted);
        assert_eq!(code_for_downstream_status(503), Code::Unavailable);
        assert_eq!(code_for_downstream_status(500), Code::Unknown);
    }

    #[test]
    fn grpc_message_encoding() {
        assert_eq!(percent_encode_grpc("a b%c\n"), "a b%25c%0A");
    }

    #[test]
    fn grpc_web_success_frames() {
        let r = grpc_web_response(Codec::Proto, Code::Unknown, "", true);
        assert_eq!(
            &r.body[..],
            b"\x00\x00\x00\x00\x00\x80\x00\x00\x00\x10grpc-status: 0\r\n"
        );
    }
}
