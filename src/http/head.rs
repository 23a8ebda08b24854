//! Request head parsing on `httparse`, with our own limits and framing decisions.
//!
//! monoio-http has no header or body limits and no `Expect: 100-continue`, so the inbound
//! side parses heads itself. The head bytes are kept as one `Bytes` and every header is a
//! pair of offsets into it: parsing allocates nothing per header.

use std::ops::Range;

use bytes::Bytes;

use crate::metrics::RejectReason;

/// Headers beyond this count are answered with 431, like an oversized head. Real SDKs send
/// fewer than 15.
pub const MAX_HEADERS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Other,
}

impl Method {
    fn from_str(m: &str) -> Self {
        match m {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }
}

/// Why a head was refused; each maps to one status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("request header fields too large")]
    TooLarge,
    #[error("too many header fields")]
    TooManyHeaders,
    #[error("malformed request head")]
    Malformed,
    #[error("invalid Content-Length")]
    BadContentLength,
    #[error("both Transfer-Encoding and Content-Length")]
    AmbiguousLength,
    #[error("unsupported Transfer-Encoding")]
    UnsupportedTransferEncoding,
    #[error("unsupported Expect")]
    UnsupportedExpect,
}

impl HeadError {
    pub fn status(self) -> u16 {
        match self {
            HeadError::TooLarge | HeadError::TooManyHeaders => 431,
            HeadError::UnsupportedTransferEncoding => 501,
            HeadError::UnsupportedExpect => 417,
            HeadError::Malformed | HeadError::BadContentLength | HeadError::AmbiguousLength => 400,
        }
    }

    /// Why the request is refused, for the rejected-requests metric.
    pub fn reason(self) -> RejectReason {
        match self {
            HeadError::TooLarge | HeadError::TooManyHeaders => RejectReason::HeaderTooLarge,
            HeadError::UnsupportedTransferEncoding => RejectReason::UnsupportedTransferEncoding,
            HeadError::UnsupportedExpect => RejectReason::UnsupportedExpect,
            _ => RejectReason::BadRequest,
        }
    }
}

/// How the body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
}

#[derive(Debug, Clone)]
pub struct RequestHead {
    raw: Bytes,
    pub method: Method,
    path: Range<u32>,
    query: Option<Range<u32>>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    headers: Vec<(Range<u32>, Range<u32>)>,
    pub framing: BodyFraming,
    pub expect_continue: bool,
    /// Whether the client allows the connection to stay open after this request.
    pub keep_alive: bool,
}

/// Finds the end of the head (`\r\n\r\n`, or the bare `\n\n` httparse also accepts), scanning
/// only from `from` so that a head arriving in many small reads is not rescanned each time.
pub fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    let mut i = start;
    while i < buf.len() {
        let nl = buf[i..].iter().position(|b| *b == b'\n')? + i;
        if buf.get(nl + 1) == Some(&b'\n') {
            return Some(nl + 2);
        }
        if buf.get(nl + 1) == Some(&b'\r') && buf.get(nl + 2) == Some(&b'\n') {
            return Some(nl + 3);
        }
        i = nl + 1;
    }
    None
}

impl RequestHead {
    /// Parses a complete head (`raw` ends at the blank line, see [`find_head_end`]).
    pub fn parse(raw: Bytes) -> Result<Self, HeadError> {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut slots);
        match req.parse(&raw) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(HeadError::Malformed),
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
            Err(_) => return Err(HeadError::Malformed),
        }
        let base = raw.as_ptr() as usize;
        let off = |s: &[u8]| -> Range<u32> {
            let start = s.as_ptr() as usize - base;
            start as u32..(start + s.len()) as u32
        };
        let method = Method::from_str(req.method.unwrap_or(""));
        let target = req.path.unwrap_or("");
        let (path, query) = match target.find('?') {
            Some(q) => {
                let p = off(&target.as_bytes()[..q]);
                let qs = off(&target.as_bytes()[q + 1..]);
                (p, Some(qs))
            }
            None => (off(target.as_bytes()), None),
        };
        let minor_version = req.version.unwrap_or(1);
        let mut headers = Vec::with_capacity(req.headers.len());
        let mut content_length: Option<u64> = None;
        let mut chunked = false;
        let mut te_seen = false;
        let mut expect_continue = false;
        let mut conn_close = false;
        let mut conn_keep_alive = false;
        for h in req.headers.iter() {
            headers.push((off(h.name.as_bytes()), off(h.value)));
            let name = h.name.as_bytes();
            if name.eq_ignore_ascii_case(b"content-length") {
                let v = parse_content_length(h.value)?;
                if content_length.is_some_and(|c| c != v) {
                    return Err(HeadError::BadContentLength);
                }
                content_length = Some(v);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                te_seen = true;
                chunked = transfer_encoding_is_chunked(h.value, chunked)?;
            } else if name.eq_ignore_ascii_case(b"expect") {
                if trim(h.value).eq_ignore_ascii_case(b"100-continue") {
                    expect_continue = true;
                } else {
                    return Err(HeadError::UnsupportedExpect);
                }
            } else if name.eq_ignore_ascii_case(b"connection") {
                for tok in h.value.split(|b| *b == b',') {
                    let tok = trim(tok);
                    conn_close |= tok.eq_ignore_ascii_case(b"close");
                    conn_keep_alive |= tok.eq_ignore_ascii_case(b"keep-alive");
                }
            }
        }
        // RFC 9112 §6.1: a request with both is a smuggling vector; refuse it.
        if te_seen && content_length.is_some() {
            return Err(HeadError::AmbiguousLength);
        }
        if te_seen && (!chunked || minor_version == 0) {
            return Err(HeadError::UnsupportedTransferEncoding);
        }
        let framing = match (chunked, content_length) {
            (true, _) => BodyFraming::Chunked,
            (false, Some(0)) | (false, None) => BodyFraming::None,
            (false, Some(n)) => BodyFraming::Length(n),
        };
        let keep_alive = if minor_version == 0 {
            conn_keep_alive && !conn_close
        } else {
            !conn_close
        };
        Ok(Self {
            raw,
            method,
            path,
            query,
            minor_version,
            headers,
            framing,
            expect_continue: expect_continue && minor_version >= 1 && framing != BodyFraming::None,
            keep_alive,
        })
    }

    fn slice(&self, r: &Range<u32>) -> &[u8] {
        &self.raw[r.start as usize..r.end as usize]
    }

    /// The path without the query string. httparse only accepts visible ASCII in the target,
    /// so this is always valid UTF-8.
    pub fn path(&self) -> &str {
        std::str::from_utf8(self.slice(&self.path)).unwrap_or("")
    }

    /// The raw (still percent-encoded) query string, without the `?`.
    pub fn query(&self) -> Option<&str> {
        self.query
            .as_ref()
            .and_then(|q| std::str::from_utf8(self.slice(q)).ok())
    }

    /// The first value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| self.slice(n).eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| self.slice(v))
    }

    /// Every value of a header, in the order received.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| self.slice(n).eq_ignore_ascii_case(name.as_bytes()))
            .map(move |(_, v)| self.slice(v))
    }

    /// All headers as (name, value) byte slices.
    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.headers
            .iter()
            .map(move |(n, v)| (self.slice(n), self.slice(v)))
    }

    pub fn raw_len(&self) -> usize {
        self.raw.len()
    }
}

fn trim(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

/// Digits only, at most 19 (fits u64); a list like `5, 5` is tolerated when the values agree,
/// as Go does.
fn parse_content_length(v: &[u8]) -> Result<u64, HeadError> {
    let mut result: Option<u64> = None;
    for part in v.split(|b| *b == b',') {
        let p = trim(part);
        if p.is_empty() || p.len() > 19 || !p.iter().all(u8::is_ascii_digit) {
            return Err(HeadError::BadContentLength);
        }
        let n = p.iter().fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
        if result.is_some_and(|r| r != n) {
            return Err(HeadError::BadContentLength);
        }
        result = Some(n);
    }
    result.ok_or(HeadError::BadContentLength)
}

/// `chunked` must be the last coding; any other coding (gzip, compress) is not supported for
/// requests (Go answers 501 too).
fn transfer_encoding_is_chunked(v: &[u8], already: bool) -> Result<bool, HeadError> {
    let mut chunked = already;
    for tok in v.split(|b| *b == b',') {
        let tok = trim(tok);
        if tok.is_empty() {
            continue;
        }
        if chunked {
            // Anything after `chunked` means chunked is not final.
            return Err(HeadError::UnsupportedTransferEncoding);
        }
        if tok.eq_ignore_ascii_case(b"chunked") {
            chunked = true;
        } else {
            return Err(HeadError::UnsupportedTransferEncoding);
        }
    }
    Ok(chunked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<RequestHead, HeadError> {
        let end = find_head_end(s.as_bytes(), 0).expect("complete head");
        RequestHead::parse(Bytes::copy_from_slice(&s.as_bytes()[..end]))
    }

    #[test]
    fn basic_post() {
        let h = parse(
            "POST /ingest?name=app&from=1 HTTP/1.1\r\nHost: x\r\nContent-Type: a\r\n\
             content-type: b\r\nContent-Length: 12\r\n\r\nbody",
        )
        .unwrap();
        assert_eq!(h.method, Method::Post);
        assert_eq!(h.path(), "/ingest");
        assert_eq!(h.query(), Some("name=app&from=1"));
        assert_eq!(h.framing, BodyFraming::Length(12));
        assert!(h.keep_alive);
        let cts: Vec<_> = h.headers_named("Content-Type").collect();
        assert_eq!(cts, vec![&b"a"[..], &b"b"[..]]);
    }

    #[test]
    fn head_end_detection() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nX", 0), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\nX", 0), Some(16));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: b\r\n", 0), None);
        // Resuming near the end still finds a terminator split across reads.
        let buf = b"GET / HTTP/1.1\r\nA: b\r\n\r\n";
        assert_eq!(find_head_end(buf, 22), Some(buf.len()));
    }

    #[test]
    fn framing_rules() {
        assert_eq!(
            parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap()
                .framing,
            BodyFraming::Chunked
        );
        assert_eq!(
            parse("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").unwrap_err(),
            HeadError::UnsupportedTransferEncoding
        );
        assert_eq!(
            parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n")
                .unwrap_err(),
            HeadError::AmbiguousLength
        );
        assert_eq!(
            parse("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n").unwrap_err(),
            HeadError::BadContentLength
        );
        assert_eq!(
            parse("POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n")
                .unwrap()
                .framing,
            BodyFraming::Length(5)
        );
        assert_eq!(
            parse("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n").unwrap_err(),
            HeadError::BadContentLength
        );
        assert_eq!(
            parse("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n").unwrap_err(),
            HeadError::BadContentLength
        );
    }

    #[test]
    fn connection_semantics() {
        assert!(
            !parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
                .unwrap()
                .keep_alive
        );
        assert!(!parse("GET / HTTP/1.0\r\n\r\n").unwrap().keep_alive);
        assert!(
            parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                .unwrap()
                .keep_alive
        );
    }

    #[test]
    fn expect() {
        let h =
            parse("POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert!(h.expect_continue);
        assert_eq!(
            parse("POST / HTTP/1.1\r\nExpect: something\r\n\r\n").unwrap_err(),
            HeadError::UnsupportedExpect
        );
    }

    #[test]
    fn malformed_and_too_many() {
        assert_eq!(parse("GARBAGE\r\n\r\n").unwrap_err(), HeadError::Malformed);
        let mut s = String::from("GET / HTTP/1.1\r\n");
        for i in 0..(MAX_HEADERS + 1) {
            s.push_str(&format!("X-{i}: v\r\n"));
        }
        s.push_str("\r\n");
        assert_eq!(parse(&s).unwrap_err(), HeadError::TooManyHeaders);
        assert_eq!(HeadError::TooManyHeaders.status(), 431);
    }
}
