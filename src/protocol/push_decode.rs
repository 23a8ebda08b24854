//! Decoding an inbound `POST /push.v1.PusherService/Push` body (docs/push.md §1–§10).
//!
//! The request head tells us the protocol and codec ([`content_type`]) and the body
//! compression ([`encoding_for`]); gRPC-Web bodies are first unwrapped with
//! [`unframe_grpc_web`]. [`decode`] then inflates (bounded) and parses into
//! [`proto::PushRequest`]. The binary codec slices every `raw_profile` out of the
//! (decompressed) buffer without copying (docs/architecture.md §2.2).
//!
//! Errors carry the Connect code and message connect-go would produce for the same input,
//! so a client cannot tell pyrogate's edge validation from Pyroscope's.

use bytes::Bytes;
use prost::Message as _;

use super::connect::Code;
use super::gzip::{self, GzipError};
use super::proto;

// === content types ===

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

// === errors ===

/// Why a Push body could not be decoded. [`DecodeError::code`] gives the Connect code to
/// answer with; `Display` gives connect-go's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not a valid protobuf / protojson `PushRequest`.
    #[error("unmarshal message: {0}")]
    Unmarshal(String),
    /// The (decompressed) message is over the configured limit and its size is known.
    #[error("message size {size} is larger than configured max {max}")]
    TooLarge { size: u64, max: usize },
    /// Over the limit, and inflation stopped before the real size was known.
    #[error("message is larger than configured max {max}")]
    TooLargeUnknownSize { max: usize },
    /// The gzip stream is corrupt.
    #[error("decompress: {0}")]
    Decompress(GzipError),
    /// A compression algorithm other than gzip/identity.
    #[error("unknown compression {0:?}: supported encodings are gzip")]
    UnsupportedEncoding(String),
    /// A malformed gRPC / gRPC-Web envelope.
    #[error("protocol error: {0}")]
    Envelope(String),
    /// A gRPC message with the compressed flag but no `grpc-encoding`.
    #[error("protocol error: sent compressed message without compression support")]
    CompressedWithoutEncoding,
    /// A unary gRPC body with zero or several messages (`"zero"` / `"multiple"`).
    #[error("unary request has {0} messages")]
    Cardinality(&'static str),
}

impl DecodeError {
    /// The Connect code connect-go answers this error with.
    pub const fn code(&self) -> Code {
        match self {
            DecodeError::Unmarshal(_) | DecodeError::Decompress(_) | DecodeError::Envelope(_) => {
                Code::InvalidArgument
            }
            DecodeError::TooLarge { .. } | DecodeError::TooLargeUnknownSize { .. } => {
                Code::ResourceExhausted
            }
            DecodeError::UnsupportedEncoding(_) | DecodeError::Cardinality(_) => {
                Code::Unimplemented
            }
            DecodeError::CompressedWithoutEncoding => Code::Internal,
        }
    }

    fn from_gzip(e: GzipError) -> DecodeError {
        match e {
            GzipError::TooLarge { max, declared } if declared > max as u64 => {
                DecodeError::TooLarge {
                    size: declared,
                    max,
                }
            }
            GzipError::TooLarge { max, .. } => DecodeError::TooLargeUnknownSize { max },
            invalid @ GzipError::Invalid(_) => DecodeError::Decompress(invalid),
        }
    }
}

// === gRPC-Web framing ===

/// Flag bit 0 of a gRPC envelope: the message is compressed with `grpc-encoding`.
const FLAG_COMPRESSED: u8 = 0x01;

/// Flag byte plus the big-endian `u32` length.
const ENVELOPE_HEADER_LEN: usize = 5;

/// Unwraps the single length-prefixed message of a unary gRPC-Web (or gRPC) request body.
/// Returns the message (a zero-copy slice of `body`) and its compressed flag.
///
/// # Errors
/// `unimplemented` for zero or several messages; `invalid_argument` for a truncated
/// envelope or unknown flags (a trailers frame, flag `0x80`, is response-only);
/// `resource_exhausted` when the declared length exceeds `max`.
pub fn unframe_grpc_web(body: Bytes, max: usize) -> Result<(Bytes, bool), DecodeError> {
    if body.is_empty() {
        return Err(DecodeError::Cardinality("zero"));
    }
    let Some(header) = body.first_chunk::<ENVELOPE_HEADER_LEN>() else {
        return Err(DecodeError::Envelope(format!(
            "incomplete envelope: {} bytes",
            body.len()
        )));
    };
    let flags = header[0];
    if flags & !FLAG_COMPRESSED != 0 {
        return Err(DecodeError::Envelope(format!(
            "invalid envelope flags {flags}"
        )));
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    let size = u64::from(len);
    if size > max as u64 {
        return Err(DecodeError::TooLarge { size, max });
    }
    let got = body.len() - ENVELOPE_HEADER_LEN;
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if got < len {
        return Err(DecodeError::Envelope(format!(
            "promised {len} bytes in enveloped message, got {got} bytes"
        )));
    }
    if got > len {
        return Err(DecodeError::Cardinality("multiple"));
    }
    let message = body.slice(ENVELOPE_HEADER_LEN..);
    Ok((message, flags & FLAG_COMPRESSED != 0))
}

// === decoding ===

/// Decodes a Push body into a [`proto::PushRequest`].
///
/// Gzip bodies are inflated into a fresh buffer of at most `max_decompressed` bytes
/// (zero-length bodies are never inflated, as in connect-go); identity bodies larger than
/// `max_decompressed` are rejected too, since the limit is on the message size. With
/// [`Codec::Proto`] every `raw_profile` is a slice of that (decompressed) buffer, not a copy.
///
/// # Errors
/// See [`DecodeError`]; each variant maps to its Connect code with [`DecodeError::code`].
pub fn decode(
    body: Bytes,
    codec: Codec,
    encoding: Encoding,
    max_decompressed: usize,
) -> Result<proto::PushRequest, DecodeError> {
    let message = inflate_message(body, encoding, max_decompressed)?;
    match codec {
        Codec::Proto => decode_proto(message),
        Codec::Json => json::decode_push_request(&message).map_err(DecodeError::Unmarshal),
    }
}

/// The message bytes of a body: inflated when gzip'd and non-empty, bounded either way.
///
/// # Errors
/// `resource_exhausted` over the limit, `invalid_argument` for corrupt gzip.
pub fn inflate_message(body: Bytes, encoding: Encoding, max: usize) -> Result<Bytes, DecodeError> {
    if encoding == Encoding::Gzip && !body.is_empty() {
        return gzip::inflate_bounded(&body, max).map_err(DecodeError::from_gzip);
    }
    if body.len() > max {
        return Err(DecodeError::TooLarge {
            size: body.len() as u64,
            max,
        });
    }
    Ok(body)
}

/// Binary protobuf; decoding from `Bytes` makes prost slice `raw_profile` in place.
fn decode_proto(message: Bytes) -> Result<proto::PushRequest, DecodeError> {
    proto::PushRequest::decode(message).map_err(|e| DecodeError::Unmarshal(e.to_string()))
}

/// The labels of a series as `(name, value)` pairs, in wire order.
pub fn series_labels(series: &proto::RawProfileSeries) -> impl Iterator<Item = (&str, &str)> {
    series
        .labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
}

/// protojson decoding of `PushRequest` over simd-json's tape (no intermediate value tree).
///
/// Rules follow Go's `protojson.Unmarshal` with `DiscardUnknown` (what connect-go uses):
/// proto and JSON field names both accepted, unknown fields ignored, `null` means "default",
/// a field given twice (even under its two names) is an error, `bytes` are base64 in the
/// standard or URL-safe alphabet, padded or not.
///
/// Memory: simd-json builds a tape of about 24 bytes per JSON token plus padded copies of
/// the input, so a hostile body costs a small constant multiple of its (already bounded)
/// size. No real SDK sends JSON; this path exists for curl users and tests.
mod json {
    use super::proto::{LabelPair, ProfileAnnotation, PushRequest, RawProfileSeries, RawSample};
    use base64::Engine as _;
    use base64::alphabet;
    use base64::engine::DecodePaddingMode;
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    use bytes::Bytes;
    use simd_json::prelude::*;
    use simd_json::tape::Value;

    type Result<T> = std::result::Result<T, String>;

    /// A message field: its accepted JSON keys (JSON name first, then the proto name).
    type Fields = &'static [&'static [&'static str]];

    pub(super) fn decode_push_request(body: &[u8]) -> Result<PushRequest> {
        if body.is_empty() {
            return Err("zero-length payload is not a valid JSON object".to_owned());
        }
        let mut buf = body.to_vec(); // simd-json unescapes in place
        let tape = simd_json::to_tape(&mut buf).map_err(|e| format!("proto: syntax error: {e}"))?;
        push_request(tape.as_value())
    }

    fn push_request(v: Value<'_, '_>) -> Result<PushRequest> {
        let mut req = PushRequest::default();
        fields(v, &[&["series"]], |_, val| {
            req.series = list(val, "series", raw_profile_series)?;
            Ok(())
        })?;
        Ok(req)
    }

    fn raw_profile_series(v: Value<'_, '_>) -> Result<RawProfileSeries> {
        const F: Fields = &[&["labels"], &["samples"], &["annotations"]];
        let mut s = RawProfileSeries::default();
        fields(v, F, |idx, val| {
            match idx {
                0 => s.labels = list(val, "labels", label_pair)?,
                1 => s.samples = list(val, "samples", raw_sample)?,
                _ => s.annotations = list(val, "annotations", annotation)?,
            }
            Ok(())
        })?;
        Ok(s)
    }

    fn raw_sample(v: Value<'_, '_>) -> Result<RawSample> {
        const F: Fields = &[&["rawProfile", "raw_profile"], &["ID"]];
        let mut s = RawSample::default();
        fields(v, F, |idx, val| {
            match idx {
                0 => s.raw_profile = Bytes::from(base64_field(val, "raw_profile")?),
                _ => s.id = string(val, "ID")?,
            }
            Ok(())
        })?;
        Ok(s)
    }

    fn label_pair(v: Value<'_, '_>) -> Result<LabelPair> {
        let mut l = LabelPair::default();
        fields(v, &[&["name"], &["value"]], |idx, val| {
            match idx {
                0 => l.name = string(val, "name")?,
                _ => l.value = string(val, "value")?,
            }
            Ok(())
        })?;
        Ok(l)
    }

    fn annotation(v: Value<'_, '_>) -> Result<ProfileAnnotation> {
        let mut a = ProfileAnnotation::default();
        fields(v, &[&["key"], &["value"]], |idx, val| {
            match idx {
                0 => a.key = string(val, "key")?,
                _ => a.value = string(val, "value")?,
            }
            Ok(())
        })?;
        Ok(a)
    }

    /// Calls `set(field_index, value)` for each known, non-null member of the object `v`.
    fn fields<'t, 'i>(
        v: Value<'t, 'i>,
        known: Fields,
        mut set: impl FnMut(usize, Value<'t, 'i>) -> Result<()>,
    ) -> Result<()> {
        let obj = v
            .as_object()
            .ok_or_else(|| format!("proto: unexpected token {}, want object", kind(v)))?;
        let mut seen = 0u32; // messages here have at most 3 fields
        for (key, val) in obj.iter() {
            let Some(idx) = known.iter().position(|names| names.contains(&key)) else {
                continue; // DiscardUnknown
            };
            let bit = 1u32 << idx;
            if seen & bit != 0 {
                return Err(format!("proto: duplicate field {key:?}"));
            }
            seen |= bit;
            if !val.is_null() {
                set(idx, val)?;
            }
        }
        Ok(())
    }

    /// A repeated message field: an array whose elements are all objects (`null` elements
    /// are rejected, as protojson does).
    fn list<'t, 'i, T>(
        v: Value<'t, 'i>,
        field: &str,
        item: impl Fn(Value<'t, 'i>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let arr = v
            .as_array()
            .ok_or_else(|| format!("proto: invalid value for list field {field}: {}", kind(v)))?;
        arr.iter().map(item).collect()
    }

    fn string(v: Value<'_, '_>, field: &str) -> Result<String> {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("proto: invalid value for string field {field}: {}", kind(v)))
    }

    fn base64_field(v: Value<'_, '_>, field: &str) -> Result<Vec<u8>> {
        let s = v
            .as_str()
            .ok_or_else(|| format!("proto: invalid value for bytes field {field}: {}", kind(v)))?;
        decode_base64(s).map_err(|e| format!("proto: invalid value for bytes field {field}: {e}"))
    }

    const fn engine(alphabet: &alphabet::Alphabet, padded: bool) -> GeneralPurpose {
        let mode = if padded {
            DecodePaddingMode::RequireCanonical
        } else {
            DecodePaddingMode::RequireNone
        };
        // Go's non-strict decoder ignores non-zero trailing bits; so do we.
        let config = GeneralPurposeConfig::new()
            .with_decode_padding_mode(mode)
            .with_decode_allow_trailing_bits(true);
        GeneralPurpose::new(alphabet, config)
    }

    const STD: GeneralPurpose = engine(&alphabet::STANDARD, true);
    const STD_RAW: GeneralPurpose = engine(&alphabet::STANDARD, false);
    const URL: GeneralPurpose = engine(&alphabet::URL_SAFE, true);
    const URL_RAW: GeneralPurpose = engine(&alphabet::URL_SAFE, false);

    /// protojson's choice: URL alphabet if `-` or `_` occurs, unpadded if the length is not a
    /// multiple of 4. Go's decoder skips `\r` and `\n`, so they are removed first.
    pub(super) fn decode_base64(s: &str) -> std::result::Result<Vec<u8>, base64::DecodeError> {
        let cleaned;
        let s = if s.contains(['\r', '\n']) {
            cleaned = s.replace(['\r', '\n'], "");
            cleaned.as_str()
        } else {
            s
        };
        let url = s.contains(['-', '_']);
        let padded = s.len().is_multiple_of(4);
        let engine = match (url, padded) {
            (false, true) => &STD,
            (false, false) => &STD_RAW,
            (true, true) => &URL,
            (true, false) => &URL_RAW,
        };
        engine.decode(s)
    }

    fn kind(v: Value<'_, '_>) -> &'static str {
        if v.is_null() {
            "null"
        } else if v.is_array() {
            "array"
        } else if v.is_object() {
            "object"
        } else if v.as_str().is_some() {
            "string"
        } else if v.as_bool().is_some() {
            "bool"
        } else {
            "number"
        }
    }
}

/// Generators shared with the encoder's tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::proto;
    use bytes::Bytes;
    use proptest::prelude::*;

    /// Arbitrary small `PushRequest`s, including empty strings, empty `raw_profile`s and
    /// annotations, so every proto3 "default value is not encoded" branch is exercised.
    pub(crate) fn arb_request() -> impl Strategy<Value = proto::PushRequest> {
        let s = || "\\PC{0,12}";
        let label = (s(), s()).prop_map(|(name, value)| proto::LabelPair { name, value });
        let ann = (s(), s()).prop_map(|(key, value)| proto::ProfileAnnotation { key, value });
        let sample = (prop::collection::vec(any::<u8>(), 0..40), s()).prop_map(|(raw, id)| {
            proto::RawSample {
                raw_profile: Bytes::from(raw),
                id,
            }
        });
        let series = (
            prop::collection::vec(label, 0..4),
            prop::collection::vec(sample, 0..3),
            prop::collection::vec(ann, 0..2),
        )
            .prop_map(|(labels, samples, annotations)| proto::RawProfileSeries {
                labels,
                samples,
                annotations,
            });
        prop::collection::vec(series, 0..3).prop_map(|series| proto::PushRequest { series })
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::arb_request;
    use super::*;
    use crate::protocol::gzip::test_support::{gzip, zero_bomb};
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use proptest::prelude::*;
    use serde_json::json;

    const MIB: usize = 1 << 20;

    /// A pyroscope-io 1.4.0 style request (gzip'd protobuf, one series of eight unsorted
    /// labels, one plain pprof), generated by the test-data crate.
    fn python() -> pyrogate_testdata::sdk::Request {
        pyrogate_testdata::sdk::python_push(7)
    }

    fn python_body() -> Bytes {
        Bytes::from(python().body)
    }

    fn python_request() -> proto::PushRequest {
        decode(python_body(), Codec::Proto, Encoding::Gzip, MIB).expect("generated body decodes")
    }

    /// protojson rendering of a request, built independently with serde_json.
    fn to_json(req: &proto::PushRequest, raw_key: &str, b64: impl Fn(&[u8]) -> String) -> Vec<u8> {
        let series: Vec<_> = req
            .series
            .iter()
            .map(|s| {
                let labels: Vec<_> = (s.labels.iter())
                    .map(|l| json!({"name": l.name, "value": l.value}))
                    .collect();
                let samples: Vec<_> = (s.samples.iter())
                    .map(|x| json!({raw_key: b64(&x.raw_profile), "ID": x.id}))
                    .collect();
                let annotations: Vec<_> = (s.annotations.iter())
                    .map(|a| json!({"key": a.key, "value": a.value}))
                    .collect();
                json!({"labels": labels, "samples": samples, "annotations": annotations})
            })
            .collect();
        serde_json::to_vec(&json!({ "series": series })).expect("serializable")
    }

    fn json_decode(body: &str) -> Result<proto::PushRequest, DecodeError> {
        decode(
            Bytes::copy_from_slice(body.as_bytes()),
            Codec::Json,
            Encoding::Identity,
            MIB,
        )
    }

    // --- content types and encodings ---

    #[test]
    fn connect_content_types() {
        let ok = [
            ("application/proto", Codec::Proto),
            ("application/json", Codec::Json),
            ("application/json; charset=utf-8", Codec::Json),
            ("Application/JSON;charset=UTF-8", Codec::Json),
            ("application/json ;  charset = \"utf-8\" ;", Codec::Json),
            ("  APPLICATION/PROTO  ", Codec::Proto),
        ];
        for (ct, codec) in ok {
            assert_eq!(codec_for_content_type(ct.as_bytes()), Some(codec), "{ct}");
        }
        let rejected = [
            "application/x-protobuf",
            "application/protobuf",
            "application/proto; charset=utf-8",
            "application/json; charset=latin1",
            "application/json; charset=utf-8; charset=utf-8",
            "application/json; foo=bar",
            "application/json; charset",
            "application/grpc",
            "application/grpc-web-text",
            "text/plain",
            "",
        ];
        for ct in rejected {
            assert_eq!(codec_for_content_type(ct.as_bytes()), None, "{ct}");
        }
    }

    #[test]
    fn grpc_content_types() {
        let cases = [
            ("application/grpc", Protocol::Grpc, Codec::Proto),
            ("application/grpc+proto", Protocol::Grpc, Codec::Proto),
            (
                "application/grpc+json; charset=utf-8",
                Protocol::Grpc,
                Codec::Json,
            ),
            ("application/grpc-web", Protocol::GrpcWeb, Codec::Proto),
            (
                "application/grpc-web+proto",
                Protocol::GrpcWeb,
                Codec::Proto,
            ),
            ("application/GRPC-WEB+JSON", Protocol::GrpcWeb, Codec::Json),
        ];
        for (ct, protocol, codec) in cases {
            assert_eq!(
                content_type(ct.as_bytes()),
                Some(ContentType { protocol, codec }),
                "{ct}"
            );
        }
        assert_eq!(content_type(b"application/grpc-web-text"), None);
        assert_eq!(
            content_type(b"application/grpc-web+proto; charset=utf-8"),
            None
        );
    }

    #[test]
    fn encodings() {
        assert_eq!(encoding_for(None), Ok(Encoding::Identity));
        assert_eq!(encoding_for(Some(b"")), Ok(Encoding::Identity));
        assert_eq!(encoding_for(Some(b"identity")), Ok(Encoding::Identity));
        assert_eq!(encoding_for(Some(b"gzip")), Ok(Encoding::Gzip));
        assert_eq!(encoding_for(Some(b" gzip ")), Ok(Encoding::Gzip));
        let err = encoding_for(Some(b"br")).expect_err("unsupported");
        assert_eq!(err.code(), Code::Unimplemented);
        assert_eq!(
            err.to_string(),
            "unknown compression \"br\": supported encodings are gzip"
        );
        for other in [&b"GZIP"[..], b"zstd", b"gzip, br", b"deflate"] {
            assert_eq!(
                encoding_for(Some(other)).map_err(|e| e.code()),
                Err(Code::Unimplemented)
            );
        }
    }

    #[test]
    fn grpc_message_encodings() {
        assert_eq!(grpc_message_encoding(false, None), Ok(Encoding::Identity));
        assert_eq!(
            grpc_message_encoding(false, Some(b"gzip")),
            Ok(Encoding::Identity)
        );
        assert_eq!(
            grpc_message_encoding(true, Some(b"gzip")),
            Ok(Encoding::Gzip)
        );
        let err = grpc_message_encoding(true, None).expect_err("no algorithm");
        assert_eq!(err.code(), Code::Internal);
        assert_eq!(
            grpc_message_encoding(false, Some(b"snappy")).map_err(|e| e.code()),
            Err(Code::Unimplemented)
        );
    }

    // --- an SDK-shaped request ---

    #[test]
    fn python_request_decodes_as_generated() {
        let want = python();
        let req = python_request();
        assert_eq!(req.series.len(), 1);
        let series = &req.series[0];
        let labels: Vec<(String, String)> = series_labels(series)
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(labels, want.series[0].labels, "wire order is kept");
        assert_eq!(labels[0].0, "__name__");
        assert_eq!(series.samples.len(), 1);
        assert!(series.annotations.is_empty());
        let sample = &series.samples[0];
        assert_eq!(
            sample.raw_profile[..],
            want.series[0].samples[0].raw_profile[..]
        );
        assert!(sample.raw_profile.starts_with(&[0x0a]));
        assert!(!gzip::is_gzip(&sample.raw_profile));
        assert_eq!(sample.id, want.series[0].samples[0].id);
    }

    /// The captured pyroscope-io request, when the captured corpus is present.
    #[test]
    fn captured_python_request_decodes_as_documented() {
        let Some(gz) = pyrogate_testdata::corpus::fixture(
            "clients/pyroscope-io-1.4.0-push.bin",
            "push_decode: captured pyroscope-io request",
        ) else {
            return;
        };
        let req = decode(Bytes::from(gz), Codec::Proto, Encoding::Gzip, MIB).expect("decodes");
        let labels: Vec<_> = series_labels(&req.series[0]).collect();
        assert_eq!(
            labels,
            [
                ("__name__", "process_cpu"),
                ("env", "feas"),
                ("region", "local"),
                ("service_name", "feas.python.app"),
                ("otel.scope.name", "com.grafana.pyroscope/python"),
                ("otel.scope.version", "1.4.0"),
                ("process.runtime.name", "cpython"),
                ("process.runtime.version", "3.11.7"),
            ]
        );
        let sample = &req.series[0].samples[0];
        assert_eq!(sample.raw_profile.len(), 731);
        assert_eq!(sample.id, "cc6eb922-fbf0-4dbf-91e1-ed16428f51ca");
    }

    #[test]
    fn identity_proto_slices_raw_profile_from_the_body() {
        let raw = gzip::inflate_bounded(&python_body(), MIB).expect("body inflates");
        assert_eq!(
            raw[..],
            pyrogate_testdata::push::encode(&python().series)[..]
        );
        let range = raw.as_ptr_range();
        let req = decode(raw.clone(), Codec::Proto, Encoding::Identity, MIB).expect("decodes");
        let p = req.series[0].samples[0].raw_profile.as_ptr_range();
        assert!(
            range.start <= p.start && p.end <= range.end,
            "raw_profile was copied"
        );
        assert_eq!(req, python_request());
    }

    #[test]
    fn request_as_json_decodes_to_the_same_message() {
        let req = python_request();
        let std_json = to_json(&req, "rawProfile", |b| STANDARD.encode(b));
        let url_json = to_json(&req, "raw_profile", |b| URL_SAFE_NO_PAD.encode(b));
        for body in [std_json, url_json] {
            let got = decode(
                Bytes::from(body.clone()),
                Codec::Json,
                Encoding::Identity,
                MIB,
            );
            assert_eq!(got, Ok(req.clone()));
            // And gzip'd.
            let got = decode(Bytes::from(gzip(&body)), Codec::Json, Encoding::Gzip, MIB);
            assert_eq!(got, Ok(req.clone()));
        }
    }

    // --- protojson details ---

    #[test]
    fn json_accepts_nulls_unknown_fields_and_escapes() {
        let body = r#" {
            "unknown": {"deep": [1, 2, {"x": null}]},
            "series": [
                {"labels": [{"name": "a\u00e9\"", "value": "\ud83e\udd80", "extra": 1},
                            {"name": null}],
                 "samples": [{"rawProfile": "AQID", "ID": null},
                             {"raw_profile": null, "ID": "x"}],
                 "annotations": null},
                {}
            ]
        } "#;
        let want = proto::PushRequest {
            series: vec![
                proto::RawProfileSeries {
                    labels: vec![
                        proto::LabelPair {
                            name: "aé\"".into(),
                            value: "🦀".into(),
                        },
                        proto::LabelPair::default(),
                    ],
                    samples: vec![
                        proto::RawSample {
                            raw_profile: Bytes::from_static(&[1, 2, 3]),
                            id: String::new(),
                        },
                        proto::RawSample {
                            raw_profile: Bytes::new(),
                            id: "x".into(),
                        },
                    ],
                    annotations: vec![],
                },
                proto::RawProfileSeries::default(),
            ],
        };
        assert_eq!(json_decode(body), Ok(want));
        assert_eq!(json_decode("{}"), Ok(proto::PushRequest::default()));
        assert_eq!(
            json_decode(r#"{"series":null}"#),
            Ok(proto::PushRequest::default())
        );
    }

    #[test]
    fn json_base64_variants() {
        let data: Vec<u8> = (0u8..=255).collect();
        for enc in [
            STANDARD.encode(&data),
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(&data),
            base64::engine::general_purpose::URL_SAFE.encode(&data),
            URL_SAFE_NO_PAD.encode(&data),
        ] {
            assert_eq!(json::decode_base64(&enc).as_deref(), Ok(&data[..]), "{enc}");
        }
        let wrapped = STANDARD
            .encode(&data)
            .as_bytes()
            .chunks(76)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("\r\n");
        assert_eq!(json::decode_base64(&wrapped).as_deref(), Ok(&data[..]));
        assert!(json::decode_base64("A").is_err());
        assert!(json::decode_base64("AB=C").is_err());
        assert!(json::decode_base64("****").is_err());
    }

    #[test]
    fn json_errors_are_invalid_argument() {
        let bad = [
            "",
            "null",
            "[]",
            "\"x\"",
            "{",
            r#"{"series": {}}"#,
            r#"{"series": [null]}"#,
            r#"{"series": [1]}"#,
            r#"{"series": [], "series": []}"#,
            r#"{"series": [{"samples": [{"rawProfile": "AQID", "raw_profile": "AQID"}]}]}"#,
            r#"{"series": [{"samples": [{"rawProfile": "not base64!"}]}]}"#,
            r#"{"series": [{"samples": [{"rawProfile": 5}]}]}"#,
            r#"{"series": [{"samples": [{"ID": 5}]}]}"#,
            r#"{"series": [{"samples": [{"iD": "x"}]}]}"#,
            r#"{"series": [{"labels": [{"name": true}]}]}"#,
            r#"{"series": [{"annotations": [{"key": []}]}]}"#,
            r#"{"series": []} trailing"#,
        ];
        for body in bad {
            match json_decode(body) {
                // `iD` is an unknown field (ignored), not the `ID` field.
                Ok(req) if body.contains("iD") => assert!(req.series[0].samples[0].id.is_empty()),
                Ok(req) => panic!("{body:?} decoded to {req:?}"),
                Err(e) => {
                    assert_eq!(e.code(), Code::InvalidArgument, "{body:?}");
                    assert!(e.to_string().starts_with("unmarshal message: "), "{e}");
                }
            }
        }
    }

    #[test]
    fn json_depth_is_bounded() {
        let deep = format!(r#"{{"x":{}{}}}"#, "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(
            json_decode(&deep).map_err(|e| e.code()),
            Err(Code::InvalidArgument)
        );
    }

    // --- protobuf and size errors ---

    #[test]
    fn truncated_or_corrupt_protobuf_is_invalid_argument() {
        let raw = gzip::inflate_bounded(&python_body(), MIB).expect("body inflates");
        let mut corrupt = raw.to_vec();
        corrupt[1] = 0xff; // series length varint now runs past the end
        for body in [
            raw.slice(..raw.len() - 1),
            raw.slice(..100),
            Bytes::from(corrupt),
        ] {
            let err = decode(body, Codec::Proto, Encoding::Identity, MIB).expect_err("invalid");
            assert_eq!(err.code(), Code::InvalidArgument);
            assert!(err.to_string().starts_with("unmarshal message: "), "{err}");
        }
        // Invalid UTF-8 in a label name.
        const BAD_UTF8: [u8; 8] = [0x0a, 0x06, 0x0a, 0x04, 0x0a, 0x02, 0xff, 0xfe];
        let err = decode(
            Bytes::from_static(&BAD_UTF8),
            Codec::Proto,
            Encoding::Identity,
            MIB,
        );
        assert_eq!(err.map_err(|e| e.code()), Err(Code::InvalidArgument));
    }

    #[test]
    fn gzip_bomb_is_resource_exhausted() {
        let err = decode(
            Bytes::from(zero_bomb(100)),
            Codec::Proto,
            Encoding::Gzip,
            MIB,
        )
        .expect_err("too large");
        assert_eq!(err.code(), Code::ResourceExhausted);
        assert_eq!(
            err.to_string(),
            "message size 104857600 is larger than configured max 1048576"
        );
    }

    #[test]
    fn size_limit_applies_without_compression_too() {
        let body = python_body();
        let len = body.len();
        let err = decode(body, Codec::Proto, Encoding::Identity, len - 1).expect_err("too large");
        assert_eq!(err.code(), Code::ResourceExhausted);
        assert_eq!(
            err.to_string(),
            format!(
                "message size {len} is larger than configured max {}",
                len - 1
            )
        );
        // The inflated size is the limit that passes; one byte less fails.
        let inflated = gzip::inflate_bounded(&python_body(), MIB)
            .expect("inflates")
            .len();
        assert!(decode(python_body(), Codec::Proto, Encoding::Gzip, inflated).is_ok());
        let err = decode(python_body(), Codec::Proto, Encoding::Gzip, inflated - 1)
            .expect_err("too large");
        assert_eq!(err.code(), Code::ResourceExhausted);
    }

    #[test]
    fn bad_gzip_is_invalid_argument() {
        let err = decode(
            Bytes::from_static(b"\x1f\x8b\x08 definitely not deflate data"),
            Codec::Proto,
            Encoding::Gzip,
            MIB,
        )
        .expect_err("bad gzip");
        assert_eq!(err.code(), Code::InvalidArgument);
        assert!(err.to_string().starts_with("decompress: "), "{err}");
    }

    #[test]
    fn empty_body_is_never_inflated() {
        let empty = decode(Bytes::new(), Codec::Proto, Encoding::Gzip, MIB);
        assert_eq!(empty, Ok(proto::PushRequest::default()));
        let err = decode(Bytes::new(), Codec::Json, Encoding::Gzip, MIB).expect_err("empty JSON");
        assert_eq!(
            err.to_string(),
            "unmarshal message: zero-length payload is not a valid JSON object"
        );
    }

    // --- gRPC-Web framing ---

    fn frame(flags: u8, msg: &[u8]) -> Bytes {
        let mut b = vec![flags];
        b.extend_from_slice(&u32::try_from(msg.len()).expect("small").to_be_bytes());
        b.extend_from_slice(msg);
        Bytes::from(b)
    }

    #[test]
    fn grpc_web_unframes_one_message_without_copy() {
        let body = frame(0, b"hello");
        let (msg, compressed) = unframe_grpc_web(body.clone(), 100).expect("valid");
        assert_eq!(&msg[..], b"hello");
        assert!(!compressed);
        assert_eq!(msg.as_ptr(), body[5..].as_ptr());
        let (msg, compressed) = unframe_grpc_web(frame(1, b""), 100).expect("valid");
        assert!(msg.is_empty() && compressed);
    }

    #[test]
    fn grpc_web_framing_errors() {
        let code = |body: Bytes, max| unframe_grpc_web(body, max).map_err(|e| e.code());
        assert_eq!(code(Bytes::new(), 100), Err(Code::Unimplemented));
        assert_eq!(
            code(Bytes::from_static(&[0, 0, 0]), 100),
            Err(Code::InvalidArgument)
        );
        assert_eq!(code(frame(0x80, b"x"), 100), Err(Code::InvalidArgument));
        assert_eq!(code(frame(0x02, b"x"), 100), Err(Code::InvalidArgument));
        assert_eq!(
            code(frame(0, b"hello").slice(..7), 100),
            Err(Code::InvalidArgument)
        );
        assert_eq!(code(frame(0, b"hello"), 4), Err(Code::ResourceExhausted));
        let mut two = frame(0, b"a").to_vec();
        two.extend_from_slice(&frame(0, b"b"));
        assert_eq!(code(Bytes::from(two), 100), Err(Code::Unimplemented));
        let huge = Bytes::from_static(&[0, 0xff, 0xff, 0xff, 0xff]);
        let err = unframe_grpc_web(huge, MIB).expect_err("too large");
        assert_eq!(
            err.to_string(),
            "message size 4294967295 is larger than configured max 1048576"
        );
    }

    #[test]
    fn grpc_web_json_end_to_end() {
        let req = python_request();
        let json_body = to_json(&req, "rawProfile", |b| STANDARD.encode(b));
        let body = frame(1, &gzip(&json_body));
        let ct = content_type(b"application/grpc-web+json").expect("known");
        let (msg, compressed) = unframe_grpc_web(body, MIB).expect("framed");
        let enc = grpc_message_encoding(compressed, Some(b"gzip")).expect("gzip");
        assert_eq!(decode(msg, ct.codec, enc, MIB), Ok(req));
    }

    // --- properties ---

    proptest! {
        #[test]
        fn decode_never_panics(
            body in prop::collection::vec(any::<u8>(), 0..512),
            gz in any::<bool>(),
        ) {
            let enc = if gz { Encoding::Gzip } else { Encoding::Identity };
            for codec in [Codec::Proto, Codec::Json] {
                let _ = decode(Bytes::from(body.clone()), codec, enc, 4096);
            }
            let _ = unframe_grpc_web(Bytes::from(body), 4096);
        }

        #[test]
        fn decode_never_panics_on_json_like_soup(
            parts in prop::collection::vec(prop::sample::select(vec![
                "{", "}", "[", "]", ",", ":", "null", "1", "\"series\"", "\"labels\"",
                "\"samples\"", "\"annotations\"", "\"rawProfile\"", "\"ID\"", "\"name\"",
                "\"AQID\"", "\"\\u0000\"",
            ]), 0..64)
        ) {
            let body = parts.concat();
            let _ = json_decode(&body);
        }

        #[test]
        fn proto_and_json_round_trip(req in arb_request()) {
            let proto_body = Bytes::from(req.encode_to_vec());
            let from_proto = decode(proto_body, Codec::Proto, Encoding::Identity, MIB);
            prop_assert_eq!(from_proto, Ok(req.clone()));
            let json_body = Bytes::from(to_json(&req, "rawProfile", |b| STANDARD.encode(b)));
            let from_json = decode(json_body, Codec::Json, Encoding::Identity, MIB);
            prop_assert_eq!(from_json, Ok(req));
        }
    }
}
