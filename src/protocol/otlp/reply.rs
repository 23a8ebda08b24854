//! OTLP's answers (docs/otlp.md §5): `ExportProfilesServiceResponse` with its
//! `partial_success` on success, `google.rpc.Status` on failure, each in the request's
//! encoding; and the `partial_success` a downstream answered, read back.

use bytes::Bytes;
use simd_json::prelude::*;

use super::error::GrpcCode;
use super::media::{ContentType, HeadError};
use super::wire::{Reader, WireType, put_len, put_uint};
use crate::http::Response;
use crate::protocol::connect::push_json_string;

/// `ExportProfilesPartialSuccess`: some profiles were refused although the request as a
/// whole was accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartialSuccess {
    pub rejected_profiles: i64,
    pub error_message: String,
}

impl PartialSuccess {
    /// Whether it says anything (a server sets the field only then).
    pub fn is_set(&self) -> bool {
        self.rejected_profiles != 0 || !self.error_message.is_empty()
    }

    /// Folds another destination's report in: the larger count (every destination got the
    /// same profiles) and both messages.
    pub fn merge(&mut self, other: PartialSuccess) {
        self.rejected_profiles = self.rejected_profiles.max(other.rejected_profiles);
        if !other.error_message.is_empty() && !self.error_message.contains(&other.error_message) {
            if !self.error_message.is_empty() {
                self.error_message.push_str("; ");
            }
            self.error_message.push_str(&other.error_message);
        }
    }
}

/// The encoded `ExportProfilesServiceResponse`.
pub fn encode_response(ct: ContentType, partial: Option<&PartialSuccess>) -> Vec<u8> {
    let partial = partial.filter(|p| p.is_set());
    if ct.is_json() {
        let Some(p) = partial else {
            return b"{}".to_vec();
        };
        let mut out = b"{\"partialSuccess\":{".to_vec();
        let mut comma = false;
        if p.rejected_profiles != 0 {
            // protojson writes int64 as a string.
            out.extend_from_slice(
                format!("\"rejectedProfiles\":\"{}\"", p.rejected_profiles).as_bytes(),
            );
            comma = true;
        }
        if !p.error_message.is_empty() {
            if comma {
                out.push(b',');
            }
            out.extend_from_slice(b"\"errorMessage\":");
            push_json_string(&mut out, &p.error_message);
        }
        out.extend_from_slice(b"}}");
        return out;
    }
    let Some(p) = partial else {
        return Vec::new();
    };
    let mut inner = Vec::new();
    if p.rejected_profiles != 0 {
        // int64: negative values are ten-byte two's complement varints.
        put_uint(&mut inner, 1, p.rejected_profiles as u64);
    }
    if !p.error_message.is_empty() {
        put_len(&mut inner, 2, p.error_message.as_bytes());
    }
    let mut out = Vec::with_capacity(inner.len() + 4);
    put_len(&mut out, 1, &inner);
    out
}

/// `200` with the response message in the request's encoding.
pub fn ok_response(ct: ContentType, partial: Option<&PartialSuccess>) -> Response {
    Response::new(200)
        .header("Content-Type", ct.as_str())
        .body(encode_response(ct, partial))
}

/// The encoded `google.rpc.Status { code, message }`.
pub fn encode_status(ct: ContentType, code: GrpcCode, message: &str) -> Vec<u8> {
    if ct.is_json() {
        let mut out = format!("{{\"code\":{},\"message\":", code.number()).into_bytes();
        push_json_string(&mut out, message);
        out.push(b'}');
        return out;
    }
    let mut out = Vec::with_capacity(message.len() + 8);
    put_uint(&mut out, 1, u64::from(code.number()));
    if !message.is_empty() {
        put_len(&mut out, 2, message.as_bytes());
    }
    out
}

/// An error answer: `status` with a `google.rpc.Status` in the request's encoding.
pub fn status_response(ct: ContentType, status: u16, code: GrpcCode, message: &str) -> Response {
    Response::new(status)
        .header("Content-Type", ct.as_str())
        .body(encode_status(ct, code, message))
}

/// The `415` for a refused head: Pyroscope's plain text for an unknown `Content-Type`
/// (the request's encoding is unknown), a `google.rpc.Status` in the request's encoding for
/// an unknown `Content-Encoding`.
pub fn head_refusal(e: HeadError) -> Response {
    match &e {
        HeadError::ContentType(_) => Response::text(415, format!("{e}\n")),
        HeadError::ContentEncoding { content_type, .. } => status_response(
            *content_type,
            415,
            GrpcCode::InvalidArgument,
            &e.to_string(),
        ),
    }
}

/// The `partial_success` of a downstream's `200` body, proto or JSON as its
/// `Content-Type` said; `None` when there is none or the body is not a response message
/// (Pyroscope answers an empty message today).
pub fn parse_partial_success(body: &Bytes, json: bool) -> Option<PartialSuccess> {
    let p = if json {
        parse_json(body)?
    } else {
        parse_proto(body)?
    };
    p.is_set().then_some(p)
}

/// A downstream error body as text for messages: the `message` of a protobuf
/// `google.rpc.Status`, else the body itself (plain text as Pyroscope writes it, or JSON).
pub fn error_text(body: &[u8], json: bool) -> String {
    if !json {
        let mut r = Reader::new(body);
        let mut message = None;
        let mut well_formed = true;
        loop {
            match r.next_field() {
                Ok(Some(f)) if f.number == 2 && f.wire == WireType::Len => {
                    message = std::str::from_utf8(f.bytes).ok().map(str::to_owned);
                }
                Ok(Some(f)) if f.number == 1 && f.wire == WireType::Varint => {}
                Ok(None) => break,
                _ => {
                    well_formed = false;
                    break;
                }
            }
        }
        if well_formed && let Some(m) = message {
            return m;
        }
    }
    String::from_utf8_lossy(body).trim_end().to_string()
}

fn parse_proto(body: &[u8]) -> Option<PartialSuccess> {
    let mut r = Reader::new(body);
    let mut found = None;
    while let Some(f) = r.next_field().ok()? {
        if f.number == 1 && f.wire == WireType::Len {
            let mut p = PartialSuccess::default();
            let mut inner = Reader::new(f.bytes);
            while let Some(g) = inner.next_field().ok()? {
                match (g.number, g.wire) {
                    (1, WireType::Varint) => p.rejected_profiles = g.value as i64,
                    (2, WireType::Len) => {
                        p.error_message = String::from_utf8_lossy(g.bytes).into_owned();
                    }
                    _ => {}
                }
            }
            found = Some(p);
        }
    }
    found
}

fn parse_json(body: &[u8]) -> Option<PartialSuccess> {
    let mut buf = body.to_vec();
    let tape = simd_json::to_tape(&mut buf).ok()?;
    let root = tape.as_value();
    let obj = root.as_object()?;
    let mut p = PartialSuccess::default();
    for (k, v) in obj.iter() {
        if k != "partialSuccess" && k != "partial_success" {
            continue;
        }
        let inner = v.as_object()?;
        for (ik, iv) in inner.iter() {
            match ik {
                "rejectedProfiles" | "rejected_profiles" => {
                    p.rejected_profiles = iv
                        .as_i64()
                        .or_else(|| iv.as_str().and_then(|s| s.parse().ok()))
                        .unwrap_or(0);
                }
                "errorMessage" | "error_message" => {
                    p.error_message = iv.as_str().unwrap_or("").to_owned();
                }
                _ => {}
            }
        }
    }
    Some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial() -> PartialSuccess {
        PartialSuccess {
            rejected_profiles: 2,
            error_message: "too \"old\"".into(),
        }
    }

    #[test]
    fn responses_in_both_encodings() {
        assert!(encode_response(ContentType::XProtobuf, None).is_empty());
        assert_eq!(encode_response(ContentType::Json, None), b"{}");
        // Golden bytes: field 1 { field 1 = 2, field 2 = "too \"old\"" }.
        let mut want = vec![0x0a, 0x0d, 0x08, 0x02, 0x12, 0x09];
        want.extend_from_slice(b"too \"old\"");
        assert_eq!(
            encode_response(ContentType::Protobuf, Some(&partial())),
            want
        );
        assert_eq!(
            String::from_utf8(encode_response(ContentType::Json, Some(&partial()))).unwrap(),
            r#"{"partialSuccess":{"rejectedProfiles":"2","errorMessage":"too \"old\""}}"#
        );
        // An unset partial success is not written.
        let empty = PartialSuccess::default();
        assert!(encode_response(ContentType::XProtobuf, Some(&empty)).is_empty());
        let r = ok_response(ContentType::XProtobuf, None);
        assert_eq!(r.status, 200);
        assert!(
            r.headers
                .iter()
                .any(|(k, v)| *k == "Content-Type" && v == "application/x-protobuf")
        );
    }

    #[test]
    fn status_in_both_encodings() {
        assert_eq!(
            encode_status(ContentType::XProtobuf, GrpcCode::InvalidArgument, "bad"),
            [0x08, 0x03, 0x12, 0x03, b'b', b'a', b'd']
        );
        assert_eq!(
            String::from_utf8(encode_status(
                ContentType::Json,
                GrpcCode::Unavailable,
                "x\ny"
            ))
            .unwrap(),
            r#"{"code":14,"message":"x\ny"}"#
        );
        let r = status_response(ContentType::Json, 429, GrpcCode::ResourceExhausted, "m");
        assert_eq!(r.status, 429);
        let r = head_refusal(HeadError::ContentType("text/plain".into()));
        assert_eq!(
            (r.status, &r.body[..]),
            (415, &b"Unsupported Content-Type: text/plain\n"[..])
        );
        let r = head_refusal(HeadError::ContentEncoding {
            content_type: ContentType::Json,
            encoding: "br".into(),
        });
        assert_eq!(r.status, 415);
        assert!(String::from_utf8_lossy(&r.body).starts_with("{\"code\":3,"));
    }

    #[test]
    fn error_text_reads_a_proto_status() {
        let proto = encode_status(ContentType::XProtobuf, GrpcCode::InvalidArgument, "bad");
        assert_eq!(error_text(&proto, false), "bad");
        assert_eq!(error_text(b"Failed to parse\n", false), "Failed to parse");
        assert_eq!(error_text(br#"{"code":3}"#, true), r#"{"code":3}"#);
    }

    #[test]
    fn partial_success_round_trips_and_merges() {
        for ct in [ContentType::XProtobuf, ContentType::Json] {
            let body = Bytes::from(encode_response(ct, Some(&partial())));
            assert_eq!(parse_partial_success(&body, ct.is_json()), Some(partial()));
        }
        assert_eq!(parse_partial_success(&Bytes::new(), false), None);
        assert_eq!(
            parse_partial_success(&Bytes::from_static(b"{}"), true),
            None
        );
        assert_eq!(
            parse_partial_success(&Bytes::from_static(b"not json"), true),
            None
        );
        assert_eq!(
            parse_partial_success(
                &Bytes::from_static(br#"{"partial_success":{"rejected_profiles":3}}"#),
                true
            ),
            Some(PartialSuccess {
                rejected_profiles: 3,
                error_message: String::new()
            })
        );
        let mut a = partial();
        a.merge(PartialSuccess {
            rejected_profiles: 5,
            error_message: "b".into(),
        });
        a.merge(PartialSuccess {
            rejected_profiles: 1,
            error_message: "b".into(),
        });
        assert_eq!(a.rejected_profiles, 5);
        assert_eq!(a.error_message, "too \"old\"; b");
    }
}
