//! Parsing an HTTP/1.x response head: status, framing of the body, whether the server keeps
//! the connection, and the few headers a client acts on (`Retry-After`, a JSON body). One
//! parser for every client in the workspace (the forwarding stage's, the load generator's
//! and its probes).

use std::time::Duration;

/// Header slots given to `httparse`; a response with more headers is malformed to us.
const MAX_HEADERS: usize = 64;
/// Longest `Retry-After` honoured: a bad or hostile value must not park a client for hours.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// How the body that follows the head is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body at all (1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// Until the server closes the connection (no length, not chunked).
    UntilClose,
}

/// A parsed response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// Bytes of the head, the blank line included.
    pub len: usize,
    pub framing: ResponseFraming,
    /// The server closes the connection after this response (`Connection: close`, or an
    /// HTTP/1.0 response without `keep-alive`).
    pub close: bool,
    /// `Retry-After` in delta-seconds (the HTTP-date form is rare from APIs and ignored),
    /// capped at [`MAX_RETRY_AFTER`].
    pub retry_after: Option<Duration>,
    /// `Content-Type` is `application/json…`.
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResponseHeadError {
    #[error("malformed response head")]
    Malformed,
    #[error("bad Content-Length")]
    BadContentLength,
}

/// Parses the response head at the start of `buf`; `Ok(None)` while it is incomplete.
///
/// # Errors
/// [`ResponseHeadError`] for anything that is not a valid response head, and for
/// conflicting or unparsable `Content-Length` values.
pub fn parse(buf: &[u8]) -> Result<Option<ResponseHead>, ResponseHeadError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut slots);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err(ResponseHeadError::Malformed),
    };
    let status = resp.code.ok_or(ResponseHeadError::Malformed)?;
    let http10 = resp.version == Some(0);
    let mut length: Option<u64> = None;
    let mut chunked = false;
    let mut close = http10;
    let mut retry_after = None;
    let mut json = false;
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or(ResponseHeadError::BadContentLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(ResponseHeadError::BadContentLength);
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // The last coding decides (RFC 9112 §6.3).
            chunked = h
                .value
                .split(|b| *b == b',')
                .next_back()
                .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case(b"connection") {
            for tok in h.value.split(|b| *b == b',') {
                let tok = tok.trim_ascii();
                if tok.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if tok.eq_ignore_ascii_case(b"keep-alive") && http10 {
                    close = false;
                }
            }
        } else if name.eq_ignore_ascii_case(b"retry-after") {
            retry_after = parse_retry_after(h.value);
        } else if name.eq_ignore_ascii_case(b"content-type") {
            json = h.value.starts_with(b"application/json");
        }
    }
    let framing = if (100..200).contains(&status) || status == 204 || status == 304 {
        ResponseFraming::None
    } else if chunked {
        ResponseFraming::Chunked
    } else if let Some(n) = length {
        ResponseFraming::Length(n)
    } else {
        ResponseFraming::UntilClose
    };
    Ok(Some(ResponseHead {
        status,
        len,
        framing,
        close,
        retry_after,
        json,
    }))
}

pub fn parse_retry_after(v: &[u8]) -> Option<Duration> {
    let secs: u64 = std::str::from_utf8(v).ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(b: &[u8]) -> ResponseHead {
        parse(b).expect("valid").expect("complete")
    }

    #[test]
    fn heads() {
        let h = head(b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 3\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n");
        assert_eq!(
            (h.status, h.framing, h.retry_after, h.json, h.close),
            (
                503,
                ResponseFraming::Length(10),
                Some(Duration::from_secs(3)),
                true,
                false
            )
        );
        assert_eq!(h.len, 104);
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\nContent-Le"), Ok(None));
        let h = head(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n",
        );
        assert_eq!((h.framing, h.close), (ResponseFraming::Chunked, true));
        let h = head(b"HTTP/1.0 200 OK\r\n\r\n");
        assert_eq!((h.framing, h.close), (ResponseFraming::UntilClose, true));
        let h = head(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
        assert!(!h.close);
        assert_eq!(
            head(b"HTTP/1.1 100 Continue\r\n\r\n").framing,
            ResponseFraming::None
        );
        assert_eq!(
            head(b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n").framing,
            ResponseFraming::None
        );
        assert_eq!(
            head(b"HTTP/1.1 429 Too Many\r\nRetry-After: 999999\r\n\r\n").retry_after,
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(parse(b"garbage\r\n\r\n"), Err(ResponseHeadError::Malformed));
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
            Err(ResponseHeadError::BadContentLength)
        );
        assert_eq!(
            parse(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Err(ResponseHeadError::BadContentLength)
        );
    }
}
