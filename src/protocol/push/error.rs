//! Why a Push body could not be decoded, with the Connect code and message connect-go
//! answers each case with.

use crate::protocol::connect::Code;
use crate::protocol::gzip::GzipError;

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

    pub(super) fn from_gzip(e: GzipError) -> DecodeError {
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
