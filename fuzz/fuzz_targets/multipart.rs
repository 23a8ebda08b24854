//! The multipart/form-data parser of `/ingest` (`protocol::multipart`, Go's
//! `mime/multipart` as Pyroscope reads it).
//!
//! Input: byte 0 = boundary length (1..=70, from the bytes that follow, lossily), then the
//! body. Checks besides "never panics": every part's data lies inside the body, parts stay
//! within the limit.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pyrogate::protocol::multipart::{self, Limits, MAX_BOUNDARY};

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = (n as usize % MAX_BOUNDARY).max(1).min(rest.len());
    let boundary = String::from_utf8_lossy(&rest[..n]).into_owned();
    let body = Bytes::copy_from_slice(&rest[n..]);
    let limits = Limits::default();
    if let Ok(parts) = multipart::parse(&body, &boundary, limits) {
        assert!(parts.len() <= limits.max_parts);
        let range = body.as_ptr() as usize..body.as_ptr() as usize + body.len() + 1;
        for p in &parts {
            assert!(p.data.is_empty() || range.contains(&(p.data.as_ptr() as usize)));
            assert!(p.data.len() <= body.len());
        }
    }
    // The Content-Type parser too.
    let _ = multipart::boundary(&String::from_utf8_lossy(data));
});
