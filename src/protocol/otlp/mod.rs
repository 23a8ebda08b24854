//! OpenTelemetry profiles over OTLP/HTTP: `POST /v1development/profiles` with an
//! `ExportProfilesServiceRequest` in protobuf or JSON, optionally gzip'd (docs/otlp.md).
//!
//! Decoding goes only as deep as the gateway needs: the body is inflated (bounded), its
//! profiles counted and its schema layout inferred ([`schema`], [`json`]); external labels
//! are applied to a protobuf message by rebuilding only its resources ([`resource`]).
//! Answers are OTLP's ([`reply`]).

pub mod error;
pub mod json;
pub mod media;
pub mod reply;
pub mod resource;
pub mod schema;
pub mod wire;

use bytes::Bytes;

pub use error::{GrpcCode, OtlpError};
pub use media::{ContentType, HeadError, OtlpHead, parse_head};
pub use reply::PartialSuccess;
pub use schema::{Accept, Detected, Scan, Schema};

use crate::protocol::gzip::{self, GzipError};

/// The OTLP/HTTP path of the profiles signal (Pyroscope serves it at the root).
pub const PATH: &str = "/v1development/profiles";

/// The gRPC method of the same service (served over HTTP/2).
pub const GRPC_PATH: &str =
    "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export";

/// A request body, decoded as far as the gateway needs.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// The message, inflated when the body was gzip'd (else the body itself).
    pub message: Bytes,
    pub scan: Scan,
}

/// Inflates (at most `max` bytes) and scans a request body.
///
/// # Errors
/// [`OtlpError::TooLarge`] past `max`, [`OtlpError::Decompress`] for a broken gzip stream,
/// [`OtlpError::Unmarshal`] for a message that is not an `ExportProfilesServiceRequest`.
pub fn decode_body(head: &OtlpHead, body: Bytes, max: usize) -> Result<Decoded, OtlpError> {
    let message = if head.gzip && !body.is_empty() {
        gzip::inflate_bounded(&body, max).map_err(|e| match e {
            GzipError::TooLarge { max, .. } => OtlpError::TooLarge { max },
            other => OtlpError::Decompress(other),
        })?
    } else {
        if body.len() > max {
            return Err(OtlpError::TooLarge { max });
        }
        body
    };
    decode_message(message, head.content_type)
}

/// Scans an already inflated message (the gRPC path hands its message over this way).
///
/// # Errors
/// [`OtlpError::Unmarshal`] for a message that is not an `ExportProfilesServiceRequest`.
pub fn decode_message(message: Bytes, ct: ContentType) -> Result<Decoded, OtlpError> {
    let scan = if ct.is_json() {
        json::scan(&message)?
    } else {
        schema::scan(&message)?
    };
    Ok(Decoded { message, scan })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_inflates_bounded() {
        let head = OtlpHead {
            content_type: ContentType::XProtobuf,
            gzip: true,
        };
        let msg = vec![0x12, 0x00]; // an empty dictionary
        let gz = Bytes::from(gzip::compress(&msg));
        let d = decode_body(&head, gz.clone(), 1024).expect("valid");
        assert_eq!(&d.message[..], &msg[..]);
        assert_eq!(d.scan.detected, Detected::Empty);
        assert_eq!(
            decode_body(&head, gz, 1).unwrap_err(),
            OtlpError::TooLarge { max: 1 }
        );
        assert!(matches!(
            decode_body(
                &head,
                Bytes::from_static(b"not gzip at all, really not"),
                1024
            ),
            Err(OtlpError::Decompress(_))
        ));
        let plain = OtlpHead {
            content_type: ContentType::Json,
            gzip: false,
        };
        assert!(decode_body(&plain, Bytes::from_static(b"{}"), 1).is_err());
        assert!(decode_body(&plain, Bytes::from_static(b"{}"), 2).is_ok());
        // An empty gzip'd body is an empty message, as an empty plain protobuf body is.
        assert!(decode_body(&head, Bytes::new(), 16).is_ok());
    }
}
