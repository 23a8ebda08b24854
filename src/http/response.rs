//! Responses and their serialisation. Every response carries `Date` and `Content-Length`
//! (so keep-alive framing never depends on closing) and `Connection: close` when the server
//! is about to close.

use std::borrow::Cow;

use bytes::Bytes;

use super::date::with_http_date;

pub type HeaderValue = Cow<'static, str>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, HeaderValue)>,
    pub body: Bytes,
    /// Close the connection after this response.
    pub close: bool,
    /// Sent after the body as HTTP/2 trailers (gRPC's status); HTTP/1.1 never sends them
    /// (no HTTP/1.1 client of ours asks for trailers).
    pub trailers: Vec<(&'static str, HeaderValue)>,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Bytes::new(),
            close: false,
            trailers: Vec::new(),
        }
    }

    /// A plain-text body, as Go's `http.Error` writes it.
    pub fn text(status: u16, body: impl Into<Bytes>) -> Self {
        Self::new(status)
            .header("Content-Type", "text/plain; charset=utf-8")
            .header("X-Content-Type-Options", "nosniff")
            .body(body)
    }

    pub fn json(status: u16, body: impl Into<Bytes>) -> Self {
        Self::new(status)
            .header("Content-Type", "application/json")
            .body(body)
    }

    pub fn header(mut self, name: &'static str, value: impl Into<HeaderValue>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn trailer(mut self, name: &'static str, value: impl Into<HeaderValue>) -> Self {
        self.trailers.push((name, value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    pub fn closing(mut self) -> Self {
        self.close = true;
        self
    }

    /// Appends the status line and headers (and, unless `head_only`, the body) to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>, head_only: bool) {
        out.reserve(128 + self.body.len());
        out.extend_from_slice(b"HTTP/1.1 ");
        push_u64(out, u64::from(self.status));
        out.push(b' ');
        out.extend_from_slice(reason(self.status).as_bytes());
        out.extend_from_slice(b"\r\nDate: ");
        with_http_date(|d| out.extend_from_slice(d));
        out.extend_from_slice(b"\r\nContent-Length: ");
        push_u64(out, self.body.len() as u64);
        out.extend_from_slice(b"\r\n");
        if self.close {
            out.extend_from_slice(b"Connection: close\r\n");
        }
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if !head_only {
            out.extend_from_slice(&self.body);
        }
    }
}

pub fn push_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(decimal(v, &mut [0u8; 20]));
}

/// `v` in decimal, written into the end of `buf`.
pub fn decimal(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[i..];
        }
    }
}

/// Reason phrases as Go's `http.StatusText` (an unknown code gets none).
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Request Entity Too Large",
        414 => "Request URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        499 => "",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_with_date_and_length() {
        let r = Response::text(404, "404 page not found\n").closing();
        let mut out = Vec::new();
        r.write_to(&mut out, false);
        let s = String::from_utf8(out).unwrap();
        assert!(s.starts_with("HTTP/1.1 404 Not Found\r\nDate: "), "{s}");
        assert!(s.contains("\r\nContent-Length: 19\r\n"), "{s}");
        assert!(s.contains("\r\nConnection: close\r\n"), "{s}");
        assert!(s.ends_with("\r\n\r\n404 page not found\n"), "{s}");
    }

    #[test]
    fn head_only_omits_body() {
        let mut out = Vec::new();
        Response::text(200, "abc").write_to(&mut out, true);
        assert!(String::from_utf8(out).unwrap().ends_with("Content-Length: 3\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n\r\n"));
    }

    #[test]
    fn numbers() {
        let mut v = Vec::new();
        push_u64(&mut v, 0);
        push_u64(&mut v, 1234567890);
        assert_eq!(v, b"01234567890");
    }
}
