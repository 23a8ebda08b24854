//! What the head of a Push says about its body: the RPC protocol and codec
//! (`Content-Type`, matched as connect-go matches it) and the compression
//! (`Content-Encoding` / `grpc-encoding`) (docs/push.md §2, §9, §10).

use super::error::DecodeError;

/// How the message is serialized.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Codec {
    /// Binary protobuf (`application/proto`, `application/grpc[-web][+proto]`).
    Proto,
    /// protojson (`application/json`, `application/grpc[-web]+json`).
    Json,
}

/// Which RPC protocol the request speaks; all three share the Push path.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Connect unary: the body is the bare message.
    Connect,
    /// gRPC (HTTP/2 only): the body is one 5-byte-prefixed message.
    Grpc,
    /// gRPC-Web (any HTTP version): framed like gRPC, trailers in the body.
    GrpcWeb,
}

/// A recognised request `Content-Type`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct ContentType {
    pub protocol: Protocol,
    pub codec: Codec,
}

/// Classifies a request `Content-Type` the way connect-go matches it: the media type is
/// case-insensitive and may carry whitespace, but the only parameter accepted is
/// `charset=utf-8`, and only on JSON codecs. Anything else (`application/x-protobuf`,
/// `application/grpc-web-text`, other parameters) is `None`: answer 415.
pub fn content_type(ct: &[u8]) -> Option<ContentType> {
    let (base, has_utf8_charset) = split_media_type(ct)?;
    let (protocol, codec) = match_base(base)?;
    if has_utf8_charset && codec != Codec::Json {
        return None;
    }
    Some(ContentType { protocol, codec })
}

/// The codec of a Connect unary request (`application/proto`, `application/json`,
/// `application/json; charset=utf-8`); `None` for everything else, including gRPC types.
pub fn codec_for_content_type(ct: &[u8]) -> Option<Codec> {
    match content_type(ct)? {
        ContentType {
            protocol: Protocol::Connect,
            codec,
        } => Some(codec),
        _ => None,
    }
}

/// The media types served on the Push path.
const MEDIA_TYPES: [(&str, Protocol, Codec); 8] = [
    ("application/proto", Protocol::Connect, Codec::Proto),
    ("application/json", Protocol::Connect, Codec::Json),
    ("application/grpc", Protocol::Grpc, Codec::Proto),
    ("application/grpc+proto", Protocol::Grpc, Codec::Proto),
    ("application/grpc+json", Protocol::Grpc, Codec::Json),
    ("application/grpc-web", Protocol::GrpcWeb, Codec::Proto),
    (
        "application/grpc-web+proto",
        Protocol::GrpcWeb,
        Codec::Proto,
    ),
    ("application/grpc-web+json", Protocol::GrpcWeb, Codec::Json),
];

fn match_base(base: &[u8]) -> Option<(Protocol, Codec)> {
    MEDIA_TYPES
        .iter()
        .find(|(name, _, _)| base.eq_ignore_ascii_case(name.as_bytes()))
        .map(|&(_, p, c)| (p, c))
}

/// Splits `type/subtype; params` into the trimmed media type and whether the parameters are
/// exactly one `charset=utf-8` (`None` if any other parameter is present). Mirrors Go's
/// `mime.ParseMediaType` tolerance: whitespace around `;` and `=`, a quoted value, a
/// trailing `;`, case-insensitive names and charset value.
fn split_media_type(ct: &[u8]) -> Option<(&[u8], bool)> {
    let mut parts = ct.split(|&b| b == b';');
    let base = parts.next().map(<[u8]>::trim_ascii)?;
    let mut charset = false;
    for param in parts {
        let param = param.trim_ascii();
        if param.is_empty() {
            continue;
        }
        let eq = param.iter().position(|&b| b == b'=')?;
        let (name, value) = (param[..eq].trim_ascii(), param[eq + 1..].trim_ascii());
        let value = value
            .strip_prefix(b"\"")
            .and_then(|v| v.strip_suffix(b"\""))
            .unwrap_or(value);
        let is_utf8 = name.eq_ignore_ascii_case(b"charset") && value.eq_ignore_ascii_case(b"utf-8");
        if !is_utf8 || charset {
            return None; // unknown parameter, or a duplicate (Go rejects duplicates)
        }
        charset = true;
    }
    Some((base, charset))
}

// === compression ===

/// Body compression (`Content-Encoding` for Connect, `grpc-encoding` for gRPC/gRPC-Web).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
}

/// Longest header value echoed back in an "unknown compression" message.
const MAX_ECHOED_ENCODING: usize = 64;

/// Maps the compression header. Absent, empty and `identity` mean no compression; `gzip` is
/// the only algorithm Pyroscope and Alloy register. Matching is exact and case-sensitive, as
/// in connect-go: accepting `GZIP` here would let through a request the downstream rejects.
///
/// # Errors
/// [`DecodeError::UnsupportedEncoding`] (Connect `unimplemented`) for anything else.
pub fn encoding_for(header: Option<&[u8]>) -> Result<Encoding, DecodeError> {
    match header.map(<[u8]>::trim_ascii) {
        None | Some(b"" | b"identity") => Ok(Encoding::Identity),
        Some(b"gzip") => Ok(Encoding::Gzip),
        Some(other) => {
            let shown = &other[..other.len().min(MAX_ECHOED_ENCODING)];
            Err(DecodeError::UnsupportedEncoding(
                String::from_utf8_lossy(shown).into_owned(),
            ))
        }
    }
}

/// The encoding of one gRPC/gRPC-Web message: its compressed flag decides, and a set flag
/// needs a `grpc-encoding` we support.
///
/// # Errors
/// [`DecodeError::UnsupportedEncoding`] for an unknown algorithm, and
/// [`DecodeError::CompressedWithoutEncoding`] when the flag is set without an algorithm.
pub fn grpc_message_encoding(
    compressed: bool,
    grpc_encoding: Option<&[u8]>,
) -> Result<Encoding, DecodeError> {
    message_encoding(compressed, encoding_for(grpc_encoding))
}

/// [`grpc_message_encoding`] with the `grpc-encoding` header already mapped.
///
/// # Errors
/// As [`grpc_message_encoding`].
pub fn message_encoding(
    compressed: bool,
    grpc_encoding: Result<Encoding, DecodeError>,
) -> Result<Encoding, DecodeError> {
    let encoding = grpc_encoding?;
    match (compressed, encoding) {
        (false, _) => Ok(Encoding::Identity),
        (true, Encoding::Identity) => Err(DecodeError::CompressedWithoutEncoding),
        (true, Encoding::Gzip) => Ok(Encoding::Gzip),
    }
}
