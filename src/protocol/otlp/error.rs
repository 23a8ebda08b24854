//! Why an OTLP request is refused, with the gRPC code and HTTP status OTLP/HTTP answers it
//! with (docs/otlp.md §5).

use thiserror::Error;

use super::wire::WireError;
use crate::protocol::gzip::GzipError;

/// gRPC status codes used in `google.rpc.Status` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcCode {
    InvalidArgument = 3,
    PermissionDenied = 7,
    ResourceExhausted = 8,
    Unimplemented = 12,
    Internal = 13,
    Unavailable = 14,
    Unauthenticated = 16,
}

impl GrpcCode {
    /// The code for an HTTP status a downstream (or the gateway) answered, as grpc-go maps
    /// HTTP statuses, refined for the statuses OTLP/HTTP gives meaning to.
    pub const fn for_http_status(status: u16) -> GrpcCode {
        match status {
            400 | 413 | 415 => GrpcCode::InvalidArgument,
            401 => GrpcCode::Unauthenticated,
            403 => GrpcCode::PermissionDenied,
            404 | 501 => GrpcCode::Unimplemented,
            429 => GrpcCode::ResourceExhausted,
            502..=504 => GrpcCode::Unavailable,
            _ => GrpcCode::Internal,
        }
    }

    pub const fn number(self) -> u32 {
        self as u32
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OtlpError {
    #[error("unmarshal ExportProfilesServiceRequest: {0}")]
    Unmarshal(String),
    #[error("decompress: {0}")]
    Decompress(GzipError),
    #[error("message is larger than the configured max of {max} bytes")]
    TooLarge { max: usize },
    #[error(
        "OTLP profiles schema {found} is not what the downstream reads ({want}): its samples would arrive with their values misread; send {want} (opentelemetry-proto {want}.0) or change [otlp] schema"
    )]
    Schema { found: String, want: &'static str },
}

impl OtlpError {
    pub fn unmarshal(e: WireError) -> Self {
        OtlpError::Unmarshal(e.to_string())
    }

    /// The HTTP status of the answer (OTLP/HTTP: bad data is 400 and not retried).
    pub const fn http_status(&self) -> u16 {
        match self {
            OtlpError::TooLarge { .. } => 413,
            _ => 400,
        }
    }

    pub const fn code(&self) -> GrpcCode {
        match self {
            OtlpError::TooLarge { .. } => GrpcCode::ResourceExhausted,
            _ => GrpcCode::InvalidArgument,
        }
    }
}
