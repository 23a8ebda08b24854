//! Answers to a Push in the request's own protocol: Connect unary (JSON errors with the
//! code's status) or gRPC-Web (status in trailers) (docs/push.md §4–§6, §10).

use bytes::{BufMut, BytesMut};

use super::media::{Codec, ContentType, Protocol};
use crate::http::Response;
use crate::metrics::RejectReason;
use crate::protocol::connect::{self, Code};

/// What connect-go lists in `Accept-Post` for a Connect unary handler with both codecs.
pub const ACCEPT_POST: &str = "application/json, application/proto";

/// An error the HTTP connection loop raises itself on the Push route (body too large, read
/// timeout, malformed chunked body, the handler missing its deadline), in Connect JSON with
/// the code the reason means to a Connect client. The HTTP status stays the loop's (413 for
/// an oversized body): Connect clients read the code from the JSON, and plain HTTP clients
/// and proxies see a status that says "don't retry".
pub fn loop_error(reason: RejectReason, status: u16, message: &str) -> Response {
    Response::json(status, connect::error_body(loop_code(reason), message))
}

/// The Connect/gRPC code of an error the connection loop raises itself.
pub fn loop_code(reason: RejectReason) -> Code {
    match reason {
        RejectReason::BodyTooLarge => Code::ResourceExhausted,
        RejectReason::ReadTimeout => Code::DeadlineExceeded,
        RejectReason::WriteTimeout => Code::Unavailable,
        RejectReason::BadRequest => Code::InvalidArgument,
        _ => Code::Unknown,
    }
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
        (Protocol::Grpc, codec) => grpc_ok(codec),
        (Protocol::GrpcWeb, codec) => grpc_web_ok(codec),
    }
}

/// An error in the request's protocol: Connect JSON with the code's status, or a gRPC-Web
/// trailers-only answer.
pub fn reply_error(ct: ContentType, code: Code, message: &str) -> Response {
    match ct.protocol {
        Protocol::Connect => connect_error(code, message),
        Protocol::Grpc => grpc_error(ct.codec, code, message),
        Protocol::GrpcWeb => grpc_web_error(ct.codec, code, message),
    }
}

/// The response `Content-Type` of gRPC, as connect-go names the codec.
pub fn grpc_content_type(codec: Codec) -> &'static str {
    match codec {
        Codec::Proto => "application/grpc",
        Codec::Json => "application/grpc+json",
    }
}

/// gRPC success (HTTP/2): one empty `PushResponse` message, then `grpc-status: 0` in the
/// trailers.
pub fn grpc_ok(codec: Codec) -> Response {
    let empty: &[u8] = if codec == Codec::Json { b"{}" } else { b"" };
    grpc_message(codec, empty)
}

/// gRPC error (HTTP/2), trailers-only: HTTP 200 with the status in the single HEADERS
/// frame, as connect-go and grpc-go answer before any message was written.
pub fn grpc_error(codec: Codec, code: Code, message: &str) -> Response {
    grpc_status(codec, code.grpc_number(), message)
}

/// A gRPC trailers-only answer with status `number` (any gRPC service on HTTP/2).
pub fn grpc_status(codec: Codec, number: u32, message: &str) -> Response {
    Response::new(200)
        .header("Content-Type", grpc_content_type(codec))
        .header("Grpc-Accept-Encoding", "gzip")
        .header("Grpc-Status", number.to_string())
        .header("Grpc-Message", percent_encode_grpc(message))
}

/// A gRPC success carrying one uncompressed `message`, then `grpc-status: 0`.
pub fn grpc_message(codec: Codec, message: &[u8]) -> Response {
    let mut body = BytesMut::with_capacity(5 + message.len());
    body.put_u8(0);
    body.put_u32(message.len() as u32);
    body.put_slice(message);
    Response::new(200)
        .header("Content-Type", grpc_content_type(codec))
        .header("Grpc-Accept-Encoding", "gzip")
        .body(body.freeze())
        .trailer("Grpc-Status", "0")
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
}
