//! `POST /push.v1.PusherService/Push` on the wire: the paths, what the head of a request
//! says (protocol, codec, compression, the caller's deadline), and the responses in each
//! protocol (Connect unary and gRPC-Web over HTTP/1.1) (docs/push.md §1–§10).
//!
//! The request body is decoded by [`super::push_decode`]; what a gateway does with a Push
//! lives above this layer.

use std::time::Duration;

use bytes::{BufMut, BytesMut};

use super::connect::{self, Code};
use super::proto::PushRequest;
use super::push_decode::{self, Codec, ContentType, DecodeError, Encoding, Protocol};
use crate::http::{RequestHead, Response};
use crate::metrics::RejectReason;

/// The Push method's path.
pub const PATH: &str = "/push.v1.PusherService/Push";
/// Every method of the service starts so; an unknown one is answered 404.
pub const SERVICE_PREFIX: &str = "/push.v1.PusherService/";

/// What connect-go lists in `Accept-Post` for a Connect unary handler with both codecs.
pub const ACCEPT_POST: &str = "application/json, application/proto";

/// What the head of a Push request says, checked as connect-go checks it before reading
/// the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushHead {
    pub content_type: ContentType,
    /// Connect: the body's `Content-Encoding` (checked here). gRPC-Web: the
    /// `grpc-encoding` header, whose error (an unsupported algorithm) is reported when the
    /// body is read ([`push_decode::grpc_message_encoding`]).
    pub encoding: Result<Encoding, DecodeError>,
    /// The caller's own deadline (`Connect-Timeout-Ms`, or `grpc-timeout`), if it sent one.
    pub timeout: Option<Duration>,
}

/// Checks the head of a Push: content type (415 otherwise), and for Connect the protocol
/// version, compression and timeout headers. The `Err` is the response to send.
pub fn parse_head(head: &RequestHead) -> Result<PushHead, Response> {
    let ct = head.header("content-type").unwrap_or(b"");
    let Some(content_type) = push_decode::content_type(ct) else {
        return Err(unsupported_media_type());
    };
    match content_type.protocol {
        Protocol::Grpc => {
            // Plain gRPC needs HTTP/2 trailers; clients that speak it over HTTP/1.1 get a
            // clear refusal instead of a hang.
            Err(connect_error(
                Code::Unimplemented,
                "gRPC requires HTTP/2; use the Connect or gRPC-Web protocol over HTTP/1.1",
            ))
        }
        Protocol::Connect => {
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
            let encoding = push_decode::encoding_for(head.header("content-encoding"))
                .map_err(|e| connect_error(e.code(), &e.to_string()))?;
            let timeout = match head.header("connect-timeout-ms") {
                Some(v) => Some(Duration::from_millis(
                    connect::parse_timeout_ms(v)
                        .map_err(|e| connect_error(e.code(), &e.to_string()))?,
                )),
                None => None,
            };
            Ok(PushHead {
                content_type,
                encoding: Ok(encoding),
                timeout,
            })
        }
        Protocol::GrpcWeb => Ok(PushHead {
            content_type,
            encoding: push_decode::encoding_for(head.header("grpc-encoding")),
            timeout: head
                .header("grpc-timeout")
                .and_then(connect::parse_grpc_timeout),
        }),
    }
}

/// Decodes a Push body as its head described it: a Connect body whole, a gRPC-Web body
/// unframed first; inflated (bounded by `max`) when compressed. Returns the message and
/// the compression the body used.
///
/// # Errors
/// [`DecodeError`], each with the Connect code connect-go answers it with.
pub fn decode_body(
    head: &PushHead,
    body: bytes::Bytes,
    max: usize,
) -> Result<(PushRequest, Encoding), DecodeError> {
    let ct = head.content_type;
    match ct.protocol {
        Protocol::Connect => {
            let enc = head.encoding.clone()?;
            Ok((push_decode::decode(body, ct.codec, enc, max)?, enc))
        }
        Protocol::GrpcWeb | Protocol::Grpc => {
            let (msg, compressed) = push_decode::unframe_grpc_web(body, max)?;
            let enc = push_decode::message_encoding(compressed, head.encoding.clone())?;
            Ok((push_decode::decode(msg, ct.codec, enc, max)?, enc))
        }
    }
}

/// An error the HTTP connection loop raises itself on the Push route (body too large, read
/// timeout, malformed chunked body, the handler missing its deadline), in Connect JSON with
/// the code the reason means to a Connect client. The HTTP status stays the loop's (413 for
/// an oversized body): Connect clients read the code from the JSON, and plain HTTP clients
/// and proxies see a status that says "don't retry".
pub fn loop_error(reason: RejectReason, status: u16, message: &str) -> Response {
    let code = match reason {
        RejectReason::BodyTooLarge => Code::ResourceExhausted,
        RejectReason::ReadTimeout => Code::DeadlineExceeded,
        RejectReason::WriteTimeout => Code::Unavailable,
        RejectReason::BadRequest => Code::InvalidArgument,
        _ => Code::Unknown,
    };
    Response::json(status, connect::error_body(code, message))
}

/// 415 with the accepted types, as connect-go answers an unknown content type.
pub fn unsupported_media_type() -> Response {
    Response::new(415).header("Accept-Post", ACCEPT_POST)
}

/// A Connect error response.
pub fn connect_error(code: Code, message: &str) -> Response {
    Response::json(code.http_status(), connect::error_body(code, message))
}

/// connect-go answers a method it does not know under a known service with 404.
pub fn unknown_method() -> Response {
    Response::text(404, "404 page not found\n")
}

/// A success in the request's protocol: an empty `PushResponse`.
pub fn reply_ok(ct: ContentType) -> Response {
    match (ct.protocol, ct.codec) {
        (Protocol::Connect, Codec::Proto) => {
            Response::new(200).header("Content-Type", "application/proto")
        }
        (Protocol::Connect, Codec::Json) => Response::json(200, bytes::Bytes::from_static(b"{}")),
        (_, codec) => grpc_web_ok(codec),
    }
}

/// An error in the request's protocol: Connect JSON with the code's status, or a gRPC-Web
/// trailers-only answer.
pub fn reply_error(ct: ContentType, code: Code, message: &str) -> Response {
    match ct.protocol {
        Protocol::Connect => connect_error(code, message),
        _ => grpc_web_error(ct.codec, code, message),
    }
}

/// The response `Content-Type` of gRPC-Web.
pub fn grpc_web_content_type(codec: Codec) -> &'static str {
    match codec {
        Codec::Proto => "application/grpc-web+proto",
        Codec::Json => "application/grpc-web+json",
    }
}

/// gRPC-Web success: one empty message frame, then the trailers frame (flag `0x80`).
pub fn grpc_web_ok(codec: Codec) -> Response {
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
        .header("Content-Type", grpc_web_content_type(codec))
        .body(body.freeze())
}

/// gRPC-Web error, trailers-only: status in the headers, as connect-go does when nothing
/// was written yet.
pub fn grpc_web_error(codec: Codec, code: Code, message: &str) -> Response {
    Response::new(200)
        .header("Content-Type", grpc_web_content_type(codec))
        .header("Grpc-Status", code.grpc_number().to_string())
        .header("Grpc-Message", percent_encode_grpc(message))
}

/// `grpc-message` percent-encoding: bytes outside 0x20..=0x7E and `%` become `%XX`.
pub fn percent_encode_grpc(m: &str) -> String {
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

    fn head(s: &str) -> RequestHead {
        RequestHead::parse(bytes::Bytes::copy_from_slice(s.as_bytes())).expect("valid head")
    }

    #[test]
    fn grpc_message_encoding() {
        assert_eq!(percent_encode_grpc("a b%c\n"), "a b%25c%0A");
        assert_eq!(percent_encode_grpc("é"), "%C3%A9");
    }

    #[test]
    fn grpc_web_success_frames() {
        let r = grpc_web_ok(Codec::Proto);
        assert_eq!(
            &r.body[..],
            b"\x00\x00\x00\x00\x00\x80\x00\x00\x00\x10grpc-status: 0\r\n"
        );
    }

    #[test]
    fn heads() {
        let h = parse_head(&head(
            "POST /p HTTP/1.1\r\nContent-Type: application/proto\r\nContent-Encoding: gzip\r\nConnect-Timeout-Ms: 1500\r\n\r\n",
        ))
        .expect("valid");
        assert_eq!(h.encoding, Ok(Encoding::Gzip));
        assert_eq!(h.timeout, Some(Duration::from_millis(1500)));
        let h = parse_head(&head(
            "POST /p HTTP/1.1\r\nContent-Type: application/grpc-web+proto\r\nGrpc-Encoding: br\r\nGrpc-Timeout: 2S\r\n\r\n",
        ))
        .expect("valid head: a gRPC-Web encoding is judged with the body");
        assert!(h.encoding.is_err());
        assert_eq!(h.timeout, Some(Duration::from_secs(2)));
        let r = parse_head(&head(
            "POST /p HTTP/1.1\r\nContent-Type: text/plain\r\n\r\n",
        ))
        .expect_err("415");
        assert_eq!(r.status, 415);
        let r = parse_head(&head(
            "POST /p HTTP/1.1\r\nContent-Type: application/proto\r\nConnect-Timeout-Ms: soon\r\n\r\n",
        ))
        .expect_err("bad timeout");
        assert_eq!(r.status, 400);
        let r = parse_head(&head(
            "POST /p HTTP/1.1\r\nContent-Type: application/grpc\r\n\r\n",
        ))
        .expect_err("gRPC over HTTP/1.1");
        assert_eq!(r.status, 501);
    }
}
