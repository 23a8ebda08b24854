//! gRPC and gRPC-Web message framing: a flag byte, a big-endian length, the message
//! (docs/push.md §9, §10).

use bytes::Bytes;

use super::error::DecodeError;

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
