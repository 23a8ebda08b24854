//! HTTP/1.1 `Upgrade: h2c` (RFC 7540 §3.2): the request that asked for the upgrade becomes
//! stream 1 of the HTTP/2 connection, answered over HTTP/2.
//!
//! The upgrade request is handed to the HTTP/2 server as the frames a prior-knowledge
//! client would have sent: after the client's preface and first SETTINGS frame, a HEADERS frame for stream 1 (HPACK
//! literals, no table state) and DATA frames with the body the HTTP/1.1 loop already read.
//! Requests whose head or body would not fit in the frames a peer may send before our
//! SETTINGS are acknowledged (16 KiB frames, a 65,535-byte window) are answered over
//! HTTP/1.1 instead, which RFC 9110 §7.8 allows ("a server MAY ignore a received Upgrade").

use std::future::poll_fn;
use std::time::Instant;

use bytes::Bytes;

use super::frame::{self, PREFACE};
use super::hpack;
use super::io::Prefixed;
use crate::http::head::RequestHead;

/// The part of the preface that parses as an HTTP/1.x head.
pub const PREFACE_HEAD: &[u8] = b"PRI * HTTP/2.0\r\n\r\n";
/// The largest frame a client may send before it has our SETTINGS.
const INITIAL_MAX_FRAME: usize = frame::DEFAULT_MAX_FRAME as usize;
/// The initial flow-control window: the most body a client may send on a stream before
/// it has our SETTINGS and WINDOW_UPDATEs.
pub const INITIAL_WINDOW: usize = frame::DEFAULT_WINDOW as usize;

/// Headers that are about the HTTP/1.1 connection and must not appear in HTTP/2.
const CONNECTION_SPECIFIC: [&str; 8] = [
    "connection",
    "upgrade",
    "http2-settings",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "host",
    "expect",
];

/// Whether `head` is a valid h2c upgrade request (RFC 7540 §3.2): `Upgrade` lists `h2c`,
/// exactly one `HTTP2-Settings`, and `Connection` names both.
pub fn wants_h2c(head: &RequestHead) -> bool {
    let lists = |name: &str, token: &[u8]| {
        head.headers_named(name).any(|v| {
            v.split(|b| *b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
        })
    };
    lists("upgrade", b"h2c")
        && head.headers_named("http2-settings").count() == 1
        && lists("connection", b"upgrade")
        && lists("connection", b"http2-settings")
}

/// The answer that switches the connection to HTTP/2.
pub const SWITCHING: &[u8] =
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";

/// The frames that open stream 1 with `head` and `body`, or `None` when they would not
/// fit in what a client may send before our SETTINGS arrive.
pub fn stream_one(head: &RequestHead, body: &Bytes) -> Option<Bytes> {
    if body.len() > INITIAL_WINDOW {
        return None;
    }
    let mut block = Vec::with_capacity(256);
    hpack::encode_literal(&mut block, b":method", head.method_str().as_bytes());
    hpack::encode_literal(&mut block, b":scheme", b"http");
    hpack::encode_literal(&mut block, b":authority", head.host().unwrap_or(b""));
    let target = match head.query() {
        Some(q) => format!("{}?{q}", head.path()),
        None => head.path().to_string(),
    };
    hpack::encode_literal(&mut block, b":path", target.as_bytes());
    for (name, value) in head.headers() {
        let lower = name.to_ascii_lowercase();
        if CONNECTION_SPECIFIC.iter().any(|c| c.as_bytes() == lower) {
            continue;
        }
        if lower == b"te" && !value.trim_ascii().eq_ignore_ascii_case(b"trailers") {
            continue;
        }
        hpack::encode_literal(&mut block, &lower, value);
    }
    if block.len() > INITIAL_MAX_FRAME {
        return None;
    }
    let mut out = Vec::with_capacity(frame::HEADER_LEN * 6 + block.len() + body.len());
    let end = if body.is_empty() {
        frame::END_STREAM
    } else {
        0
    };
    frame::put_head(
        &mut out,
        block.len(),
        frame::HEADERS,
        frame::END_HEADERS | end,
        1,
    );
    out.extend_from_slice(&block);
    let mut chunks = body.chunks(INITIAL_MAX_FRAME).peekable();
    while let Some(chunk) = chunks.next() {
        let flags = if chunks.peek().is_none() {
            frame::END_STREAM
        } else {
            0
        };
        frame::put_head(&mut out, chunk.len(), frame::DATA, flags, 1);
        out.extend_from_slice(chunk);
    }
    Some(Bytes::from(out))
}

/// Reads the client preface and its first frame (which must be SETTINGS), then places
/// `stream_one` right after them, so the server sees stream 1 as the client's first
/// request. Returns false when the client did not send a valid start in time; the
/// connection is then closed.
pub async fn inject_after_preface(io: &mut Prefixed, stream_one: Bytes, deadline: Instant) -> bool {
    loop {
        let Some(got) = io.buf() else {
            return false;
        };
        if got.len() >= PREFACE.len() + frame::HEADER_LEN {
            if &got[..PREFACE.len()] != PREFACE {
                return false;
            }
            let h = &got[PREFACE.len()..];
            let len = (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
            if h[3] != frame::SETTINGS || len > INITIAL_MAX_FRAME {
                return false;
            }
            let end = PREFACE.len() + frame::HEADER_LEN + len;
            if got.len() >= end {
                let rest = got.split_off(end);
                got.extend_from_slice(&stream_one);
                got.extend_from_slice(&rest);
                return true;
            }
        }
        // Incomplete: a valid start is shorter than this.
        if got.len() > PREFACE.len() + frame::HEADER_LEN + INITIAL_MAX_FRAME {
            return false;
        }
        let read = poll_fn(|cx| io.poll_fill(cx));
        match monoio::time::timeout_at(deadline.into(), read).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(s: &str) -> RequestHead {
        RequestHead::parse(Bytes::copy_from_slice(s.as_bytes())).expect("head")
    }

    #[test]
    fn recognises_a_valid_upgrade_only() {
        let ok = "POST /p HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n";
        assert!(wants_h2c(&head(ok)));
        let no_settings =
            "POST /p HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
        assert!(!wants_h2c(&head(no_settings)));
        let websocket = "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: websocket\r\nHTTP2-Settings: x\r\n\r\n";
        assert!(!wants_h2c(&head(websocket)));
        let two = "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: x\r\nHTTP2-Settings: y\r\n\r\n";
        assert!(!wants_h2c(&head(two)));
    }

    /// Decodes the literal-only header block we produce (an independent reading of RFC 7541
    /// §5.1 / §6.2.2).
    fn decode_literals(mut b: &[u8]) -> Vec<(String, String)> {
        fn int(b: &mut &[u8], n: u32) -> usize {
            let max = (1usize << n) - 1;
            let mut v = usize::from(b[0]) & max;
            *b = &b[1..];
            if v == max {
                let mut m = 0;
                loop {
                    let x = b[0];
                    *b = &b[1..];
                    v += usize::from(x & 0x7f) << m;
                    m += 7;
                    if x & 0x80 == 0 {
                        break;
                    }
                }
            }
            v
        }
        let mut out = Vec::new();
        while !b.is_empty() {
            assert_eq!(b[0], 0);
            b = &b[1..];
            let n = int(&mut b, 7);
            let name = String::from_utf8(b[..n].to_vec()).expect("utf8");
            b = &b[n..];
            let n = int(&mut b, 7);
            let value = String::from_utf8(b[..n].to_vec()).expect("utf8");
            b = &b[n..];
            out.push((name, value));
        }
        out
    }

    #[test]
    fn stream_one_carries_the_request() {
        let long = "v".repeat(300);
        let h = head(&format!(
            "POST /push.v1.PusherService/Push?a=1 HTTP/1.1\r\nHost: gw:1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: x\r\nContent-Type: application/proto\r\nX-Long: {long}\r\nContent-Length: 20000\r\n\r\n"
        ));
        let body = Bytes::from(vec![7u8; 20_000]);
        let frames = stream_one(&h, &body).expect("fits");
        let len =
            (usize::from(frames[0]) << 16) | (usize::from(frames[1]) << 8) | usize::from(frames[2]);
        assert_eq!(frames[3], frame::HEADERS);
        assert_eq!(frames[4], frame::END_HEADERS);
        assert_eq!(&frames[5..9], &[0, 0, 0, 1]);
        let fields = decode_literals(&frames[9..9 + len]);
        let get = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(get(":method"), Some("POST"));
        assert_eq!(get(":path"), Some("/push.v1.PusherService/Push?a=1"));
        assert_eq!(get(":authority"), Some("gw:1"));
        assert_eq!(get("content-type"), Some("application/proto"));
        assert_eq!(get("x-long"), Some(long.as_str()));
        assert_eq!(get("upgrade"), None);
        assert_eq!(get("host"), None);
        // Two DATA frames (16 KiB + rest), END_STREAM on the last only.
        let mut at = 9 + len;
        let mut data = Vec::new();
        let mut flags = Vec::new();
        while at < frames.len() {
            let n = (usize::from(frames[at]) << 16)
                | (usize::from(frames[at + 1]) << 8)
                | usize::from(frames[at + 2]);
            assert_eq!(frames[at + 3], frame::DATA);
            flags.push(frames[at + 4]);
            data.extend_from_slice(&frames[at + 9..at + 9 + n]);
            at += 9 + n;
        }
        assert_eq!(flags, vec![0, frame::END_STREAM]);
        assert_eq!(data, body.to_vec());
        let too_big = Bytes::from(vec![0u8; INITIAL_WINDOW + 1]);
        assert!(stream_one(&h, &too_big).is_none());
    }
}
