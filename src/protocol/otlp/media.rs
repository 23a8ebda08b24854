//! What an OTLP/HTTP request's head says: its codec (from `Content-Type`, matched exactly as
//! Pyroscope's handler does) and its compression (docs/otlp.md §2).

use crate::http::{RequestHead, Response};

/// The request's `Content-Type`, which its answer repeats (OTLP/HTTP: the response uses
/// the request's encoding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// `application/x-protobuf` (what the Collector and the SDK exporters send).
    XProtobuf,
    /// `application/protobuf`.
    Protobuf,
    /// `application/json` (OTLP/JSON).
    Json,
}

impl ContentType {
    /// Pyroscope compares the header to these three strings exactly: no parameters, no
    /// case folding. Anything else is its 415.
    pub fn parse(v: &[u8]) -> Option<Self> {
        match v {
            b"application/x-protobuf" => Some(ContentType::XProtobuf),
            b"application/protobuf" => Some(ContentType::Protobuf),
            b"application/json" => Some(ContentType::Json),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            ContentType::XProtobuf => "application/x-protobuf",
            ContentType::Protobuf => "application/protobuf",
            ContentType::Json => "application/json",
        }
    }

    pub const fn is_json(self) -> bool {
        matches!(self, ContentType::Json)
    }
}

/// What admission learnt from an OTLP request's head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OtlpHead {
    pub content_type: ContentType,
    /// `Content-Encoding: gzip` (case-insensitive, as Pyroscope's `strings.EqualFold`).
    pub gzip: bool,
}

/// Checks an OTLP request's head.
///
/// # Errors
/// `415`: plain text for a `Content-Type` Pyroscope would refuse (its own answer, since the
/// request's encoding is unknown), a `google.rpc.Status` in the request's encoding for a
/// `Content-Encoding` other than gzip or identity.
pub fn parse_head(head: &RequestHead) -> Result<OtlpHead, Response> {
    let raw = head.header("content-type").unwrap_or(b"");
    let Some(content_type) = ContentType::parse(raw) else {
        return Err(Response::text(
            415,
            format!(
                "Unsupported Content-Type: {}\n",
                String::from_utf8_lossy(raw)
            ),
        ));
    };
    let gzip = match head.header("content-encoding").map(<[u8]>::trim_ascii) {
        None | Some(b"" | b"identity") => false,
        Some(v) if v.eq_ignore_ascii_case(b"gzip") => true,
        Some(v) => {
            let msg = format!(
                "unsupported Content-Encoding {:?}: supported encodings are gzip and identity",
                String::from_utf8_lossy(v)
            );
            return Err(super::reply::status_response(
                content_type,
                415,
                super::GrpcCode::InvalidArgument,
                &msg,
            ));
        }
    };
    Ok(OtlpHead { content_type, gzip })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(s: &str) -> RequestHead {
        RequestHead::parse(bytes::Bytes::copy_from_slice(s.as_bytes())).expect("valid head")
    }

    #[test]
    fn content_types_match_exactly() {
        let h = parse_head(&head(
            "POST /v1development/profiles HTTP/1.1\r\nContent-Type: application/x-protobuf\r\nContent-Encoding: GZIP\r\n\r\n",
        ))
        .expect("valid");
        assert_eq!(h.content_type, ContentType::XProtobuf);
        assert!(h.gzip);
        let h = parse_head(&head(
            "POST /p HTTP/1.1\r\nContent-Type: application/json\r\n\r\n",
        ))
        .expect("valid");
        assert_eq!((h.content_type, h.gzip), (ContentType::Json, false));
        for ct in [
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/proto",
            "text/plain",
        ] {
            let r = parse_head(&head(&format!(
                "POST /p HTTP/1.1\r\nContent-Type: {ct}\r\n\r\n"
            )))
            .expect_err(ct);
            assert_eq!(r.status, 415, "{ct}");
        }
        let r = parse_head(&head("POST /p HTTP/1.1\r\n\r\n")).expect_err("no type");
        assert_eq!(r.status, 415);
        let r = parse_head(&head(
            "POST /p HTTP/1.1\r\nContent-Type: application/json\r\nContent-Encoding: zstd\r\n\r\n",
        ))
        .expect_err("zstd");
        assert_eq!(r.status, 415);
        assert!(String::from_utf8_lossy(&r.body).contains("\"code\":3"));
    }
}
