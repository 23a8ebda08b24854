//! What an OTLP/HTTP request's head says: its codec (from `Content-Type`, matched exactly as
//! Pyroscope's handler does) and its compression (docs/otlp.md §2).

use thiserror::Error;

use crate::http::RequestHead;

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

/// Why a head is refused (both answered `415`, see `reply::head_refusal`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HeadError {
    /// Pyroscope's own message; the request's encoding is unknown, so it is plain text.
    #[error("Unsupported Content-Type: {0}")]
    ContentType(String),
    /// Answered in the request's encoding.
    #[error("unsupported Content-Encoding {encoding:?}: supported encodings are gzip and identity")]
    ContentEncoding {
        content_type: ContentType,
        encoding: String,
    },
}

/// Checks an OTLP request's head.
///
/// # Errors
/// A `Content-Type` Pyroscope would refuse, a `Content-Encoding` other than gzip or
/// identity.
pub fn parse_head(head: &RequestHead) -> Result<OtlpHead, HeadError> {
    let raw = head.header("content-type").unwrap_or(b"");
    let Some(content_type) = ContentType::parse(raw) else {
        return Err(HeadError::ContentType(
            String::from_utf8_lossy(raw).into_owned(),
        ));
    };
    let gzip = match head.header("content-encoding").map(<[u8]>::trim_ascii) {
        None | Some(b"" | b"identity") => false,
        Some(v) if v.eq_ignore_ascii_case(b"gzip") => true,
        Some(v) => {
            return Err(HeadError::ContentEncoding {
                content_type,
                encoding: String::from_utf8_lossy(v).into_owned(),
            });
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
            assert!(matches!(r, HeadError::ContentType(_)), "{ct}");
        }
        let r = parse_head(&head("POST /p HTTP/1.1\r\n\r\n")).expect_err("no type");
        assert_eq!(r, HeadError::ContentType(String::new()));
        let r = parse_head(&head(
            "POST /p HTTP/1.1\r\nContent-Type: application/json\r\nContent-Encoding: zstd\r\n\r\n",
        ))
        .expect_err("zstd");
        assert!(
            matches!(r, HeadError::ContentEncoding { content_type: ContentType::Json, ref encoding } if encoding == "zstd")
        );
    }
}
