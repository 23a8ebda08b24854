//! The request head path of the connection loop: the terminator scan (resumed after every
//! read, as the server does), then `RequestHead::parse` and its accessors.
//!
//! Input: byte 0 = read step (bytes added per simulated read), then the request bytes.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pyrogate::http::head::{BodyFraming, MAX_HEADERS, RequestHead, find_head_end};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the read size, so resumed scans are exercised too.
    let Some((&step, buf)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let full = find_head_end(buf, 0);
    let mut scanned = 0;
    let mut resumed = None;
    let mut len = 0;
    while len < buf.len() {
        len = (len + step).min(buf.len());
        if let Some(end) = find_head_end(&buf[..len], scanned) {
            resumed = Some(end);
            break;
        }
        scanned = len;
    }
    assert_eq!(full, resumed, "resumed scan disagrees with a full scan");
    let Some(end) = full else {
        return;
    };
    assert!(end <= buf.len());
    let Ok(head) = RequestHead::parse(Bytes::copy_from_slice(&buf[..end])) else {
        return;
    };
    assert_eq!(head.raw_len(), end);
    assert!(head.headers().count() <= MAX_HEADERS);
    let _ = (head.path(), head.query(), head.header("content-type"));
    let _ = head.headers_named("content-type").count();
    if head.framing == BodyFraming::Chunked {
        assert_eq!(head.minor_version, 1);
    }
    assert_ne!(head.framing, BodyFraming::Length(0));
});
