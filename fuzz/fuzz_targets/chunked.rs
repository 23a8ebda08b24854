//! The chunked request-body decoder: whatever the bytes and however they are split across
//! reads, the outcome is the same and the body limit holds.
//!
//! Input: byte 0 = body limit / 16, byte 1 = read step, then the encoded body.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pyrogate::http::chunked::{ChunkedDecoder, ChunkedError, Progress};

/// Feeds `input` in pieces of `step` bytes (re-offering unconsumed bytes, as the server
/// does); returns (error, consumed, done, output).
fn feed(input: &[u8], step: usize, max: u64) -> (Option<ChunkedError>, usize, bool, BytesMut) {
    let mut d = ChunkedDecoder::new(max);
    let mut out = BytesMut::new();
    let mut consumed = 0;
    let mut avail = 0;
    while avail < input.len() || avail == 0 {
        avail = (avail + step).min(input.len());
        match d.decode(&input[consumed..avail], &mut out) {
            Err(e) => return (Some(e), consumed, false, out),
            Ok((n, Progress::Done)) => return (None, consumed + n, true, out),
            Ok((n, Progress::NeedMore)) => consumed += n,
        }
        if input.is_empty() {
            break;
        }
    }
    (None, consumed, false, out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&[a, b], input)) = data.split_first_chunk::<2>() else {
        return;
    };
    let max = u64::from(a) * 16;
    let step = usize::from(b).max(1);
    let whole = feed(input, input.len().max(1), max);
    let split = feed(input, step, max);
    assert_eq!(whole.0, split.0, "error differs with the split");
    assert_eq!(whole.2, split.2, "completion differs with the split");
    assert_eq!(whole.3, split.3, "output differs with the split");
    if whole.2 {
        assert_eq!(whole.1, split.1);
    }
    assert!(whole.3.len() as u64 <= max, "body limit exceeded");
});
