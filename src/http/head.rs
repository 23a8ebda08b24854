//! Request head parsing on `httparse`, with our own limits and framing decisions.
//!
//! monoio-http has no header or body limits and no `Expect: 100-continue`, so the inbound
//! side parses heads itself. The head bytes are kept as one `Bytes` and every header is a
//! pair of offsets into it: parsing allocates nothing per header.
//!
//! Strictness follows RFC 9112 point by point (the table is in docs/security.md, "HTTP/1.1
//! strictness (RFC 9112)"): httparse checks the request-line and field syntax (single SP,
//! token method, no whitespace before a colon, no obs-fold, no CTLs in values, no bare CR);
//! [`RequestHead::parse`] adds the version rules, the request-target forms and the body
//! framing rules of §6; [`RequestHead::check_host`] the `Host` rules of §3.2, which the
//! server applies to every request it reads.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use crate::metrics::RejectReason;

/// Headers beyond this count are answered with 431, like an oversized head. Real SDKs send
/// fewer than 15.
pub const MAX_HEADERS: usize = 100;
/// Room reserved for the HTTP/1.1 rendering of an HTTP/2 request's head besides its target:
/// a gRPC or Connect client's dozen fields fit without growing it.
const H2_HEAD_CAPACITY: usize = 512;

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

/// The form of the request-target (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetForm {
    /// `/path?query`: every route.
    Origin,
    /// `http://authority/path?query` (§3.2.2): routed on its path, Host from the target.
    Absolute,
    /// `host:port`, CONNECT only (§3.2.3).
    Authority,
    /// `*`, OPTIONS only (§3.2.4).
    Asterisk,
}

/// Why a head was refused; each maps to one status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    #[error("request header fields too large")]
    TooLarge,
    /// The request line alone exceeds the head limit (the server decides this one).
    #[error("URI too long")]
    UriTooLong,
    #[error("too many header fields")]
    TooManyHeaders,
    #[error("malformed request head")]
    Malformed,
    #[error("HTTP version not supported")]
    VersionNotSupported,
    #[error("invalid request-target")]
    BadTarget,
    #[error("missing required Host header")]
    MissingHost,
    #[error("too many Host headers")]
    DuplicateHost,
    #[error("malformed Host header")]
    InvalidHost,
    #[error("invalid Content-Length")]
    BadContentLength,
    #[error("both Transfer-Encoding and Content-Length")]
    AmbiguousLength,
    /// chunked missing, not final, repeated, or Transfer-Encoding on HTTP/1.0.
    #[error("invalid Transfer-Encoding")]
    BadTransferEncoding,
    /// chunked is final but another coding precedes it.
    #[error("unsupported Transfer-Encoding")]
    UnsupportedTransferEncoding,
    #[error("unsupported Expect")]
    UnsupportedExpect,
}

impl HeadError {
    pub fn status(self) -> u16 {
        match self {
            HeadError::TooLarge | HeadError::TooManyHeaders => 431,
            HeadError::UriTooLong => 414,
            HeadError::VersionNotSupported => 505,
            HeadError::UnsupportedTransferEncoding => 501,
            HeadError::UnsupportedExpect => 417,
            HeadError::Malformed
            | HeadError::BadTarget
            | HeadError::MissingHost
            | HeadError::DuplicateHost
            | HeadError::InvalidHost
            | HeadError::BadContentLength
            | HeadError::AmbiguousLength
            | HeadError::BadTransferEncoding => 400,
        }
    }

    /// Why the request is refused, for the rejected-requests metric.
    pub fn reason(self) -> RejectReason {
        match self {
            HeadError::TooLarge | HeadError::TooManyHeaders | HeadError::UriTooLong => {
                RejectReason::HeaderTooLarge
            }
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
    /// The path (for absolute-form the target's path; empty there means `/`).
    path: Range<u32>,
    query: Option<Range<u32>>,
    target_form: TargetForm,
    /// The authority of an absolute-form or authority-form target.
    authority: Option<Range<u32>>,
    /// The first `Host` field value and how many `Host` lines there were.
    host_field: Option<Range<u32>>,
    host_lines: u8,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1 (and for HTTP/1.2+, processed as 1.1).
    pub minor_version: u8,
    headers: Vec<(Range<u32>, Range<u32>)>,
    pub framing: BodyFraming,
    pub expect_continue: bool,
    /// Whether the client allows the connection to stay open after this request.
    pub keep_alive: bool,
    /// The request arrived on an HTTP/2 stream ([`RequestHead::from_h2`]).
    pub http2: bool,
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
    /// Parses a complete head (`raw` ends at the blank line, see [`find_head_end`]): syntax,
    /// version, request-target and body framing. The `Host` rules are [`check_host`]'s.
    ///
    /// [`check_host`]: RequestHead::check_host
    pub fn parse(raw: Bytes) -> Result<Self, HeadError> {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut slots);
        match req.parse(&raw) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => return Err(HeadError::Malformed),
            Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooManyHeaders),
            Err(httparse::Error::Version) => {
                // Rare path: HTTP/1.2+ is parsed again as HTTP/1.1, another major is 505.
                let as_http11 = newer_minor_as_http11(&raw)?;
                return Self::parse(as_http11);
            }
            Err(_) => return Err(HeadError::Malformed),
        }
        let base = raw.as_ptr() as usize;
        let off = |s: &[u8]| -> Range<u32> {
            let start = s.as_ptr() as usize - base;
            start as u32..(start + s.len()) as u32
        };
        let method_str = req.method.unwrap_or("");
        let method = Method::from_str(method_str);
        let target = Target::classify(method_str, req.path.unwrap_or("").as_bytes())?;
        let minor_version = req.version.unwrap_or(1);
        let mut headers = Vec::with_capacity(req.headers.len());
        let mut content_length: Option<u64> = None;
        let mut te = TransferCodings::default();
        let mut expect_continue = false;
        let mut conn_close = false;
        let mut conn_keep_alive = false;
        let mut host_field = None;
        let mut host_lines = 0u8;
        for h in req.headers.iter() {
            headers.push((off(h.name.as_bytes()), off(h.value)));
            let name = h.name.as_bytes();
            if name.eq_ignore_ascii_case(b"host") {
                host_lines = host_lines.saturating_add(1);
                if host_field.is_none() {
                    host_field = Some(off(h.value));
                }
            } else if name.eq_ignore_ascii_case(b"content-length") {
                let v = parse_content_length(h.value)?;
                if content_length.is_some_and(|c| c != v) {
                    return Err(HeadError::BadContentLength);
                }
                content_length = Some(v);
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                te.add(h.value);
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
        let chunked = te.check(minor_version, content_length.is_some())?;
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
            method,
            path: off(target.path),
            query: target.query.map(off),
            target_form: target.form,
            authority: target.authority.map(off),
            host_field,
            host_lines,
            minor_version,
            headers,
            framing,
            expect_continue: expect_continue && minor_version >= 1 && framing != BodyFraming::None,
            keep_alive,
            http2: false,
            raw,
        })
    }

    /// The head of a request received on an HTTP/2 stream, as if it had arrived as
    /// HTTP/1.1 (`:authority` as `Host`), so that admission and the handlers read both
    /// versions alike. The body is read from the stream separately.
    ///
    /// Built straight from the fields the `h2` crate decoded (it has checked the method,
    /// the path and the header names and values): the HTTP/1.1 rendering `raw` holds is
    /// written once, with the ranges recorded as it is written, not parsed again. The
    /// checks [`RequestHead::parse`] makes on the meaning of fields are the same
    /// (`from_h2_matches_the_rendered_head` compares the two).
    ///
    /// # Errors
    /// What [`RequestHead::parse`] refuses (e.g. more headers than it keeps: 431).
    pub fn from_h2<'a>(
        method: &str,
        path_and_query: &str,
        authority: Option<&str>,
        headers: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
    ) -> Result<Self, HeadError> {
        let target = if path_and_query.is_empty() {
            "/"
        } else {
            path_and_query
        };
        let mut raw = Vec::with_capacity(H2_HEAD_CAPACITY + target.len());
        raw.extend_from_slice(method.as_bytes());
        raw.push(b' ');
        let target_at = raw.len();
        raw.extend_from_slice(target.as_bytes());
        raw.extend_from_slice(b" HTTP/1.1\r\n");
        let mut fields: Vec<(Range<u32>, Range<u32>)> = Vec::with_capacity(16);
        let mut host_field = None;
        let mut host_lines = 0u8;
        let mut content_length: Option<u64> = None;
        let mut field = |raw: &mut Vec<u8>, name: &[u8], value: &[u8]| {
            if fields.len() >= MAX_HEADERS {
                return Err(HeadError::TooManyHeaders);
            }
            let n = raw.len();
            raw.extend_from_slice(name);
            raw.extend_from_slice(b": ");
            let v = raw.len();
            raw.extend_from_slice(value);
            raw.extend_from_slice(b"\r\n");
            // httparse leaves out the whitespace around a value; so does this.
            let lead = value.len() - value.trim_ascii_start().len();
            let kept = value.trim_ascii().len();
            let value_range = (v + lead) as u32..(v + lead + kept) as u32;
            fields.push((n as u32..(n + name.len()) as u32, value_range.clone()));
            Ok(value_range)
        };
        if let Some(a) = authority {
            host_field = Some(field(&mut raw, b"host", a.as_bytes())?);
            host_lines = 1;
        }
        for (name, value) in headers {
            // `:authority` wins over `host` (RFC 9113 §8.3.1); HTTP/1.1 framing headers are
            // not HTTP/2's.
            let is_host = name.eq_ignore_ascii_case(b"host");
            if (is_host && authority.is_some())
                || name.eq_ignore_ascii_case(b"transfer-encoding")
                || name.eq_ignore_ascii_case(b"connection")
            {
                continue;
            }
            let range = field(&mut raw, name, value)?;
            if is_host {
                host_lines = host_lines.saturating_add(1);
                host_field.get_or_insert(range);
            } else if name.eq_ignore_ascii_case(b"content-length") {
                let v = parse_content_length(value)?;
                if content_length.is_some_and(|c| c != v) {
                    return Err(HeadError::BadContentLength);
                }
                content_length = Some(v);
            } else if name.eq_ignore_ascii_case(b"expect")
                && !trim(value).eq_ignore_ascii_case(b"100-continue")
            {
                return Err(HeadError::UnsupportedExpect);
            }
        }
        raw.extend_from_slice(b"\r\n");
        let raw = Bytes::from(raw);
        let base = raw.as_ptr() as usize;
        let off = |s: &[u8]| -> Range<u32> {
            let start = s.as_ptr() as usize - base;
            start as u32..(start + s.len()) as u32
        };
        let t = Target::classify(method, &raw[target_at..target_at + target.len()])?;
        Ok(Self {
            method: Method::from_str(method),
            path: off(t.path),
            query: t.query.map(off),
            target_form: t.form,
            authority: t.authority.map(off),
            host_field,
            host_lines,
            minor_version: 1,
            headers: fields,
            framing: match content_length {
                Some(0) | None => BodyFraming::None,
                Some(n) => BodyFraming::Length(n),
            },
            expect_continue: false,
            keep_alive: true,
            http2: true,
            raw,
        })
    }

    /// The method as sent.
    pub fn method_str(&self) -> &str {
        let end = self.raw.iter().position(|b| *b == b' ').unwrap_or(0);
        std::str::from_utf8(&self.raw[..end]).unwrap_or("")
    }

    /// RFC 9112 §3.2: an HTTP/1.1 request without `Host`, any request with more than one
    /// `Host` line, or with an invalid `Host` value is refused with 400. HTTP/1.0 may omit
    /// it. (Kept apart from [`parse`](RequestHead::parse) so that heads built in tests of
    /// other layers need not carry a `Host`.)
    pub fn check_host(&self) -> Result<(), HeadError> {
        match (self.host_lines, &self.host_field) {
            (0, _) if self.minor_version == 0 => Ok(()),
            (0, _) => Err(HeadError::MissingHost),
            (1, Some(v)) if valid_host(self.slice(v), false) => Ok(()),
            (1, _) => Err(HeadError::InvalidHost),
            _ => Err(HeadError::DuplicateHost),
        }
    }

    fn slice(&self, r: &Range<u32>) -> &[u8] {
        &self.raw[r.start as usize..r.end as usize]
    }

    /// The path without the query string (`/` for an absolute-form target with an empty
    /// path, `*` for asterisk-form, empty for authority-form). httparse only accepts
    /// visible ASCII and valid UTF-8 in the target, so this is always valid UTF-8.
    pub fn path(&self) -> &str {
        if self.path.is_empty() && self.target_form == TargetForm::Absolute {
            return "/";
        }
        std::str::from_utf8(self.slice(&self.path)).unwrap_or("")
    }

    /// The raw (still percent-encoded) query string, without the `?`.
    pub fn query(&self) -> Option<&str> {
        self.query
            .as_ref()
            .and_then(|q| std::str::from_utf8(self.slice(q)).ok())
    }

    pub fn target_form(&self) -> TargetForm {
        self.target_form
    }

    /// The host the request is for: the target's authority for absolute-form (RFC 9112
    /// §3.2.2: the `Host` field is then ignored), else the `Host` field.
    pub fn host(&self) -> Option<&[u8]> {
        self.authority
            .as_ref()
            .or(self.host_field.as_ref())
            .map(|r| self.slice(r))
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

/// The length of the empty lines (CRLF or LF) at the start of `buf`, which a server ignores
/// before a request-line (RFC 9112 §2.2). A CR at the very end is left for the next read.
pub fn leading_empty_lines(buf: &[u8]) -> usize {
    let mut i = 0;
    loop {
        match (buf.get(i), buf.get(i + 1)) {
            (Some(b'\n'), _) => i += 1,
            (Some(b'\r'), Some(b'\n')) => i += 2,
            _ => return i,
        }
    }
}

/// Called when httparse refused the version: `HTTP/1.x` with x >= 2 is processed as
/// HTTP/1.1 (RFC 9110 §2.5: the highest minor version of the major we implement), so a
/// copy with the version rewritten is returned; `HTTP/d.d` of another major is 505; any
/// other version is malformed. The request line must otherwise be well formed (exactly two
/// SP), which also guarantees the copy parses past the version.
fn newer_minor_as_http11(raw: &[u8]) -> Result<Bytes, HeadError> {
    let start = leading_empty_lines(raw);
    let rest = &raw[start..];
    let eol = rest
        .iter()
        .position(|b| *b == b'\n')
        .ok_or(HeadError::Malformed)?;
    let line = rest[..eol].strip_suffix(b"\r").unwrap_or(&rest[..eol]);
    if line.iter().filter(|b| **b == b' ').count() != 2 {
        return Err(HeadError::Malformed);
    }
    let sp = line
        .iter()
        .rposition(|b| *b == b' ')
        .ok_or(HeadError::Malformed)?;
    let v = &line[sp + 1..];
    let [b'H', b'T', b'T', b'P', b'/', major, b'.', minor] = *v else {
        return Err(HeadError::Malformed);
    };
    if !major.is_ascii_digit() || !minor.is_ascii_digit() {
        return Err(HeadError::Malformed);
    }
    if major != b'1' {
        return Err(HeadError::VersionNotSupported);
    }
    if minor < b'2' {
        // 1.0 and 1.1 were refused for another reason; never loop.
        return Err(HeadError::Malformed);
    }
    let mut copy = BytesMut::from(raw);
    copy[start + sp + 1 + 7] = b'1';
    Ok(copy.freeze())
}

/// A classified request-target, as slices of the head.
struct Target<'a> {
    form: TargetForm,
    path: &'a [u8],
    query: Option<&'a [u8]>,
    authority: Option<&'a [u8]>,
}

impl<'a> Target<'a> {
    /// RFC 9112 §3.2: origin-form for every method but CONNECT, absolute-form (`http` or
    /// `https`, no userinfo, non-empty host), authority-form for CONNECT only, asterisk-form
    /// for OPTIONS only.
    fn classify(method: &str, t: &'a [u8]) -> Result<Self, HeadError> {
        if method == "CONNECT" {
            // host ":" port, the port not empty.
            return match t.iter().rposition(|b| *b == b':') {
                Some(c) if c + 1 < t.len() && valid_host(t, true) => Ok(Target {
                    form: TargetForm::Authority,
                    path: &t[..0],
                    query: None,
                    authority: Some(t),
                }),
                _ => Err(HeadError::BadTarget),
            };
        }
        match t.first() {
            Some(b'/') => {
                let (path, query) = split_query(t);
                Ok(Target {
                    form: TargetForm::Origin,
                    path,
                    query,
                    authority: None,
                })
            }
            Some(b'*') if t.len() == 1 => {
                if method == "OPTIONS" {
                    Ok(Target {
                        form: TargetForm::Asterisk,
                        path: t,
                        query: None,
                        authority: None,
                    })
                } else {
                    Err(HeadError::BadTarget)
                }
            }
            _ => {
                let after_scheme = strip_prefix_ci(t, b"http://")
                    .or_else(|| strip_prefix_ci(t, b"https://"))
                    .ok_or(HeadError::BadTarget)?;
                let end = after_scheme
                    .iter()
                    .position(|b| matches!(b, b'/' | b'?'))
                    .unwrap_or(after_scheme.len());
                let (authority, rest) = after_scheme.split_at(end);
                // RFC 9110 §4.2.1: an empty host is invalid; §4.2.4: userinfo is an error
                // (valid_host refuses '@').
                if authority.is_empty() || authority[0] == b':' || !valid_host(authority, false) {
                    return Err(HeadError::BadTarget);
                }
                let (path, query) = split_query(rest);
                Ok(Target {
                    form: TargetForm::Absolute,
                    path,
                    query,
                    authority: Some(authority),
                })
            }
        }
    }
}

fn split_query(t: &[u8]) -> (&[u8], Option<&[u8]>) {
    match t.iter().position(|b| *b == b'?') {
        Some(q) => (&t[..q], Some(&t[q + 1..])),
        None => (t, None),
    }
}

fn strip_prefix_ci<'a>(t: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (t.len() >= prefix.len() && t[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &t[prefix.len()..])
}

/// RFC 3986 unreserved / sub-delims.
fn is_host_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
        )
}

/// `uri-host [ ":" port ]` (RFC 9110 §7.2), uri-host being an IP-literal in brackets or a
/// reg-name (unreserved, sub-delims, %HH; IPv4 addresses are reg-names syntactically), port
/// `*DIGIT`. With `need_port` the `:port` must be there.
fn valid_host(v: &[u8], need_port: bool) -> bool {
    let host_end = if v.first() == Some(&b'[') {
        let Some(close) = v.iter().position(|b| *b == b']') else {
            return false;
        };
        // IPv6address / IPvFuture (and an RFC 6874 zone), loosely: their characters only.
        let lit = &v[1..close];
        if lit.is_empty()
            || !lit
                .iter()
                .all(|b| is_host_char(*b) || matches!(b, b':' | b'%'))
        {
            return false;
        }
        close + 1
    } else {
        let end = v.iter().position(|b| *b == b':').unwrap_or(v.len());
        let host = &v[..end];
        let mut i = 0;
        while i < host.len() {
            match host[i] {
                b'%' => {
                    let hex = |j: usize| host.get(j).is_some_and(u8::is_ascii_hexdigit);
                    if !(hex(i + 1) && hex(i + 2)) {
                        return false;
                    }
                    i += 3;
                }
                b if is_host_char(b) => i += 1,
                _ => return false,
            }
        }
        end
    };
    match &v[host_end..] {
        [] => !need_port,
        [b':', port @ ..] => port.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

fn trim(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

/// Digits only, at most 19 (fits u64); a list like `5, 5` is accepted when the values agree
/// (RFC 9110 §8.6 allows it; repeated lines are compared by the caller).
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

/// The transfer codings of every `Transfer-Encoding` line, in order.
#[derive(Default)]
struct TransferCodings {
    seen: bool,
    /// The last coding is chunked.
    chunked_last: bool,
    chunked_count: u32,
    /// A coding other than chunked appears.
    other: bool,
}

impl TransferCodings {
    fn add(&mut self, v: &[u8]) {
        self.seen = true;
        // Empty list elements are ignored (RFC 9110 §5.6.1).
        for tok in v.split(|b| *b == b',').map(trim).filter(|t| !t.is_empty()) {
            if tok.eq_ignore_ascii_case(b"chunked") {
                self.chunked_count += 1;
                self.chunked_last = true;
            } else {
                self.other = true;
                self.chunked_last = false;
            }
        }
    }

    /// Whether the body is chunked, or why the framing is refused (RFC 9112 §6.1, §6.3):
    /// Transfer-Encoding on HTTP/1.0, or with Content-Length, or without chunked as the
    /// final coding (or chunked twice) is 400; a coding we do not implement before chunked
    /// is 501. The server closes after each of these.
    fn check(&self, minor_version: u8, content_length: bool) -> Result<bool, HeadError> {
        if !self.seen {
            return Ok(false);
        }
        if minor_version == 0 {
            return Err(HeadError::BadTransferEncoding);
        }
        if content_length {
            return Err(HeadError::AmbiguousLength);
        }
        if !self.chunked_last || self.chunked_count > 1 {
            return Err(HeadError::BadTransferEncoding);
        }
        if self.other {
            return Err(HeadError::UnsupportedTransferEncoding);
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `from_h2` did before it built the head directly: render the HTTP/1.1 head and
    /// parse it.
    fn from_h2_reparsed(
        method: &str,
        path_and_query: &str,
        authority: Option<&str>,
        headers: &[(&[u8], &[u8])],
    ) -> Result<RequestHead, HeadError> {
        let mut raw = Vec::new();
        raw.extend_from_slice(method.as_bytes());
        raw.push(b' ');
        raw.extend_from_slice(if path_and_query.is_empty() {
            b"/"
        } else {
            path_and_query.as_bytes()
        });
        raw.extend_from_slice(b" HTTP/1.1\r\n");
        if let Some(a) = authority {
            raw.extend_from_slice(b"host: ");
            raw.extend_from_slice(a.as_bytes());
            raw.extend_from_slice(b"\r\n");
        }
        for (name, value) in headers {
            if (authority.is_some() && name.eq_ignore_ascii_case(b"host"))
                || name.eq_ignore_ascii_case(b"transfer-encoding")
                || name.eq_ignore_ascii_case(b"connection")
            {
                continue;
            }
            raw.extend_from_slice(name);
            raw.extend_from_slice(b": ");
            raw.extend_from_slice(value);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"\r\n");
        let mut head = RequestHead::parse(Bytes::from(raw))?;
        head.http2 = true;
        head.expect_continue = false;
        head.keep_alive = true;
        Ok(head)
    }

    #[test]
    fn from_h2_matches_the_rendered_head() {
        let many: Vec<(Vec<u8>, Vec<u8>)> = (0..MAX_HEADERS + 1)
            .map(|i| (format!("x-h{i}").into_bytes(), b"v".to_vec()))
            .collect();
        let many: Vec<(&[u8], &[u8])> = many.iter().map(|(n, v)| (&n[..], &v[..])).collect();
        type Fields<'a> = Vec<(&'a [u8], &'a [u8])>;
        let cases: Vec<(&str, &str, Option<&str>, Fields)> = vec![
            (
                "POST",
                "/push.v1.PusherService/Push",
                Some("gw:8080"),
                vec![
                    (b"content-type", b"application/grpc"),
                    (b"te", b"trailers"),
                    (b"grpc-timeout", b"10S"),
                    (b"content-length", b"1234"),
                    (b"x-scope-orgid", b"  tenant-1\t "),
                ],
            ),
            (
                "GET",
                "/ready?x=1&y",
                None,
                vec![(b"host", b"a"), (b"host", b"b")],
            ),
            ("GET", "", Some("h"), vec![(b"host", b"ignored")]),
            ("OPTIONS", "*", Some("h"), vec![]),
            ("GET", "*", Some("h"), vec![]),
            ("GET", "http://other:1/p?q", Some("h"), vec![]),
            ("CONNECT", "h:443", None, vec![]),
            ("POST", "/", Some("h"), vec![(b"content-length", b"5, 5")]),
            (
                "POST",
                "/",
                Some("h"),
                vec![(b"content-length", b"5"), (b"content-length", b"6")],
            ),
            ("POST", "/", Some("h"), vec![(b"content-length", b"x")]),
            ("POST", "/", Some("h"), vec![(b"expect", b"100-continue")]),
            ("POST", "/", Some("h"), vec![(b"expect", b"other")]),
            (
                "POST",
                "/",
                Some("h"),
                vec![
                    (b"transfer-encoding", b"chunked"),
                    (b"connection", b"close"),
                ],
            ),
            ("POST", "/", None, many.clone()),
            ("POST", "/", None, many[..MAX_HEADERS].to_vec()),
            ("POST", "/", Some("h"), many[..MAX_HEADERS].to_vec()),
        ];
        for (method, target, authority, headers) in cases {
            let label = format!("{method} {target} {authority:?} {} fields", headers.len());
            let direct = RequestHead::from_h2(method, target, authority, headers.iter().copied());
            let reparsed = from_h2_reparsed(method, target, authority, &headers);
            let (d, r) = match (direct, reparsed) {
                (Ok(d), Ok(r)) => (d, r),
                (Err(d), Err(r)) => {
                    assert_eq!(format!("{d:?}"), format!("{r:?}"), "{label}");
                    continue;
                }
                (d, r) => panic!("{label}: {:?} against {:?}", d.err(), r.err()),
            };
            assert_eq!(d.method_str(), r.method_str(), "{label}");
            assert_eq!(d.method, r.method, "{label}");
            assert_eq!(d.path(), r.path(), "{label}");
            assert_eq!(d.query(), r.query(), "{label}");
            assert_eq!(d.target_form(), r.target_form(), "{label}");
            assert_eq!(d.host(), r.host(), "{label}");
            assert_eq!(
                format!("{:?}", d.check_host()),
                format!("{:?}", r.check_host()),
                "{label}"
            );
            assert_eq!(
                d.headers().collect::<Vec<_>>(),
                r.headers().collect::<Vec<_>>(),
                "{label}"
            );
            assert_eq!(d.framing, r.framing, "{label}");
            assert_eq!(d.raw_len(), r.raw_len(), "{label}");
            assert_eq!(d.minor_version, r.minor_version, "{label}");
            assert_eq!(
                (d.expect_continue, d.keep_alive, d.http2),
                (r.expect_continue, r.keep_alive, r.http2),
                "{label}"
            );
        }
    }

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

    #[test]
    fn transfer_coding_rules() {
        let te = |v: &str, version: &str| {
            parse(&format!(
                "POST / {version}\r\nTransfer-Encoding: {v}\r\n\r\n"
            ))
            .map(|h| h.framing)
        };
        assert_eq!(te("Chunked", "HTTP/1.1"), Ok(BodyFraming::Chunked));
        assert_eq!(te(" , chunked,", "HTTP/1.1"), Ok(BodyFraming::Chunked));
        for bad in [
            "gzip",
            "chunked, gzip",
            "chunked, chunked",
            "",
            "chunked;a=b",
        ] {
            assert_eq!(
                te(bad, "HTTP/1.1"),
                Err(HeadError::BadTransferEncoding),
                "{bad}"
            );
        }
        assert_eq!(
            te("x, chunked", "HTTP/1.1"),
            Err(HeadError::UnsupportedTransferEncoding)
        );
        assert_eq!(
            te("chunked", "HTTP/1.0"),
            Err(HeadError::BadTransferEncoding)
        );
        assert_eq!(
            parse(
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            .unwrap_err(),
            HeadError::BadTransferEncoding
        );
        assert_eq!(HeadError::BadTransferEncoding.status(), 400);
        assert_eq!(HeadError::UnsupportedTransferEncoding.status(), 501);
    }

    #[test]
    fn versions() {
        let h = parse("GET /a HTTP/1.2\r\nHost: x\r\nX-A: b\r\n\r\n").unwrap();
        assert_eq!((h.minor_version, h.path(), h.keep_alive), (1, "/a", true));
        assert_eq!(h.header("x-a"), Some(&b"b"[..]));
        let h = parse("\r\nGET /a HTTP/1.9\nHost: x\n\n").unwrap();
        assert_eq!(h.minor_version, 1);
        for v in ["HTTP/2.0", "HTTP/0.9", "HTTP/3.1"] {
            assert_eq!(
                parse(&format!("GET / {v}\r\n\r\n")).unwrap_err(),
                HeadError::VersionNotSupported,
                "{v}"
            );
        }
        assert_eq!(
            parse("PRI * HTTP/2.0\r\n\r\n").unwrap_err(),
            HeadError::VersionNotSupported
        );
        for v in ["HTTP/1.10", "http/1.1", "HTTP/1", "HTTP/1.1 x", "HTTP/1.x"] {
            assert_eq!(
                parse(&format!("GET / {v}\r\n\r\n")).unwrap_err(),
                HeadError::Malformed,
                "{v}"
            );
        }
        assert_eq!(
            parse("GET / x HTTP/1.2\r\n\r\n").unwrap_err(),
            HeadError::Malformed
        );
        assert_eq!(HeadError::VersionNotSupported.status(), 505);
    }

    #[test]
    fn target_forms() {
        let h =
            parse("GET http://Example.com:8080/-/ready?x=1 HTTP/1.1\r\nHost: y\r\n\r\n").unwrap();
        assert_eq!(h.target_form(), TargetForm::Absolute);
        assert_eq!((h.path(), h.query()), ("/-/ready", Some("x=1")));
        assert_eq!(h.host(), Some(&b"Example.com:8080"[..]));
        let h = parse("GET https://h?q HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!((h.path(), h.query()), ("/", Some("q")));
        let h = parse("GET /p HTTP/1.1\r\nHost: y\r\n\r\n").unwrap();
        assert_eq!(
            (h.target_form(), h.host()),
            (TargetForm::Origin, Some(&b"y"[..]))
        );
        let h = parse("OPTIONS * HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!((h.target_form(), h.path()), (TargetForm::Asterisk, "*"));
        let h = parse("CONNECT [::1]:443 HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!((h.target_form(), h.path()), (TargetForm::Authority, ""));
        assert_eq!(h.host(), Some(&b"[::1]:443"[..]));
        for bad in [
            "GET * HTTP/1.1",
            "GET h:80 HTTP/1.1",
            "GET http:/h/ HTTP/1.1",
            "GET http:// HTTP/1.1",
            "GET http://u@h/ HTTP/1.1",
            "GET http://:80/ HTTP/1.1",
            "GET ftp://h/ HTTP/1.1",
            "CONNECT / HTTP/1.1",
            "CONNECT h HTTP/1.1",
            "CONNECT h: HTTP/1.1",
            "CONNECT http://h:1/ HTTP/1.1",
            "OPTIONS ** HTTP/1.1",
        ] {
            assert_eq!(
                parse(&format!("{bad}\r\n\r\n")).unwrap_err(),
                HeadError::BadTarget,
                "{bad}"
            );
        }
    }

    #[test]
    fn host_rules() {
        let check = |s: &str| parse(s).unwrap().check_host();
        assert_eq!(check("GET / HTTP/1.1\r\nHost: a:1\r\n\r\n"), Ok(()));
        assert_eq!(check("GET / HTTP/1.0\r\n\r\n"), Ok(()));
        assert_eq!(check("GET / HTTP/1.1\r\n\r\n"), Err(HeadError::MissingHost));
        assert_eq!(
            check("GET / HTTP/1.0\r\nHost: a\r\nhost: a\r\n\r\n"),
            Err(HeadError::DuplicateHost)
        );
        assert_eq!(
            check("GET http://a/ HTTP/1.1\r\n\r\n"),
            Err(HeadError::MissingHost)
        );
        for ok in [
            "",
            "a.b",
            "a:",
            "1.2.3.4:80",
            "[::1]",
            "[v1.x]:9",
            "[fe80::1%25en0]",
            "%41",
            "a_b~c",
        ] {
            assert!(valid_host(ok.as_bytes(), false), "{ok}");
        }
        for bad in [
            "a b", "a/b", "u@h", "[::1", "[]", "::1", "a:b", "a:1:2", "%4", "%zz", "a\"b", "[::1]x",
        ] {
            assert!(!valid_host(bad.as_bytes(), false), "{bad}");
        }
        assert!(valid_host(b"h:1", true) && !valid_host(b"h", true));
    }

    #[test]
    fn empty_lines() {
        assert_eq!(leading_empty_lines(b"\r\n\nGET"), 3);
        assert_eq!(leading_empty_lines(b"\r\n\r"), 2);
        assert_eq!(leading_empty_lines(b"\rX"), 0);
        assert_eq!(leading_empty_lines(b""), 0);
    }
}
