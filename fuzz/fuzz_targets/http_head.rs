//! The request head path of the connection loop: the terminator scan (resumed after every
//! read, as the server does), then `RequestHead::parse` and its accessors.
//!
//! Input: byte 0 = read step (bytes added per simulated read), then the request bytes.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pyrogate::http::head::{
    BodyFraming, MAX_HEADERS, Method, RequestHead, TargetForm, find_head_end,
};

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
        assert!(head.header("content-length").is_none());
    }
    // RFC 9112 §3.2: the target forms and where the host comes from.
    let _ = head.check_host();
    match head.target_form() {
        TargetForm::Origin | TargetForm::Absolute => assert!(head.path().starts_with('/')),
        TargetForm::Asterisk => assert_eq!((head.method, head.path()), (Method::Options, "*")),
        TargetForm::Authority => assert!(head.host().is_some() && head.path().is_empty()),
    }
    if head.target_form() == TargetForm::Absolute {
        assert!(head.host().is_some_and(|h| !h.is_empty()));
    }
    assert_ne!(head.framing, BodyFraming::Length(0));
});
