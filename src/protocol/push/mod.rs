//! `POST /push.v1.PusherService/Push` on the wire (docs/push.md §1–§14): the paths and
//! what the head of a request says ([`PushHead`]: protocol, codec, compression, the
//! caller's deadline), then the body ([`media`] content types and compression, [`error`],
//! [`grpc_web`] framing, [`decode`] with [`json`] for protojson, [`encode`] for rewritten
//! requests) and the answers in each protocol ([`reply`]). What a gateway does with a Push
//! lives above this layer.

pub mod decode;
pub mod encode;
pub mod error;
pub mod grpc_web;
pub mod json;
pub mod media;
pub mod reply;

pub use decode::{decode, inflate_message, series_labels};
pub use error::DecodeError;
pub use grpc_web::unframe_grpc_web;
pub use media::{
    Codec, ContentType, Encoding, Protocol, codec_for_content_type, content_type, encoding_for,
    grpc_message_encoding, message_encoding,
};
pub use reply::*;

use std::time::Duration;

use super::connect::{self, Code};
use super::proto::PushRequest;
use crate::http::{RequestHead, Response};

/// The Push method's path.
pub const PATH: &str = "/push.v1.PusherService/Push";
/// Every method of the service starts so; an unknown one is answered 404.
pub const SERVICE_PREFIX: &str = "/push.v1.PusherService/";

/// What the head of a Push request says, checked as connect-go checks it before reading
/// the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushHead {
    pub content_type: ContentType,
    /// Connect: the body's `Content-Encoding` (checked here). gRPC-Web: the
    /// `grpc-encoding` header, whose error (an unsupported algorithm) is reported when the
    /// body is read ([`grpc_message_encoding`]).
    pub encoding: Result<Encoding, DecodeError>,
    /// The caller's own deadline (`Connect-Timeout-Ms`, or `grpc-timeout`), if it sent one.
    pub timeout: Option<Duration>,
}

/// Checks the head of a Push: content type (415 otherwise), and for Connect the protocol
/// version, compression and timeout headers. The `Err` is the response to send.
pub fn parse_head(head: &RequestHead) -> Result<PushHead, Response> {
    let ct = head.header("content-type").unwrap_or(b"");
    let Some(content_type) = content_type(ct) else {
        return Err(unsupported_media_type());
    };
    match content_type.protocol {
        Protocol::Grpc if head.http2 => Ok(PushHead {
            content_type,
            encoding: encoding_for(head.header("grpc-encoding")),
            timeout: head
                .header("grpc-timeout")
                .and_then(connect::parse_grpc_timeout),
        }),
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
            let encoding = encoding_for(head.header("content-encoding"))
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
            encoding: encoding_for(head.header("grpc-encoding")),
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
            Ok((decode(body, ct.codec, enc, max)?, enc))
        }
        Protocol::GrpcWeb | Protocol::Grpc => {
            let (msg, compressed) = unframe_grpc_web(body, max)?;
            let enc = message_encoding(compressed, head.encoding.clone())?;
            Ok((decode(msg, ct.codec, enc, max)?, enc))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(s: &str) -> RequestHead {
        RequestHead::parse(bytes::Bytes::copy_from_slice(s.as_bytes())).expect("valid head")
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
