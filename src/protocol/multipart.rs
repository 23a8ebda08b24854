//! `multipart/form-data`: a bounded parser (`docs/ingest.md` §9.1).
//!
//! The parser follows Go's `mime/multipart` reader, which is what Pyroscope uses: a preamble
//! before the first delimiter is skipped, the line ending (`\r\n`, or bare `\n` when the first
//! delimiter line ends so) is taken from the first delimiter, transport padding (spaces and
//! tabs) after a delimiter is allowed, and the epilogue after the close delimiter is ignored.
//! Every part's data is a zero-copy slice of the body.
//!
//! Bounds: the number of parts and each part's header block are capped ([`Limits`]); the body
//! itself is already bounded by the HTTP layer, and the parser allocates only the small
//! per-part header strings.

use bytes::Bytes;

/// Longest boundary RFC 2046 allows.
pub const MAX_BOUNDARY: usize = 70;

/// Parser bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// More parts than this is an error. Go's default (`multipartmaxparts`) is 1000; SDKs send
    /// at most three, so a much lower cap costs nothing.
    pub max_parts: usize,
    /// Bytes of one part's header block (all header lines). Go's default is 10 MiB in total;
    /// real parts have two or three short lines.
    pub max_header_bytes: usize,
    /// Header lines per part.
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_parts: 128,
            max_header_bytes: 16 * 1024,
            max_headers: 32,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultipartError {
    /// The Content-Type is not `multipart/…` or has no usable `boundary`. The text is what
    /// Go's `Request.MultipartReader` reports and Pyroscope relays.
    BadContentType,
    /// No delimiter line was found at all.
    NoDelimiter,
    /// The body ended before the close delimiter.
    UnexpectedEof,
    /// A part's header block is malformed or over the limits.
    BadPartHeader(&'static str),
    /// More than [`Limits::max_parts`] parts.
    TooManyParts,
    /// Something other than `--`, padding or a line end follows a delimiter.
    BadDelimiter,
}

impl std::fmt::Display for MultipartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MultipartError::BadContentType => {
                f.write_str("malformed multipart content type header")
            }
            MultipartError::NoDelimiter => f.write_str("multipart: NextPart: EOF"),
            MultipartError::UnexpectedEof => f.write_str("multipart: NextPart: unexpected EOF"),
            MultipartError::BadPartHeader(why) => {
                write!(f, "multipart: malformed part header: {why}")
            }
            MultipartError::TooManyParts => f.write_str("multipart: message too large"),
            MultipartError::BadDelimiter => {
                f.write_str("multipart: expecting a new Part; got invalid delimiter")
            }
        }
    }
}

impl std::error::Error for MultipartError {}

/// One parsed part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// `name` parameter of `Content-Disposition: form-data`.
    pub name: Option<String>,
    /// `filename` parameter; Go treats a part as a file only when it is present and non-empty.
    pub filename: Option<String>,
    pub content_type: Option<String>,
    /// The part's data, a slice of the body.
    pub data: Bytes,
}

impl Part {
    /// Whether Go's `ReadForm` files this part under `File` (what Pyroscope reads).
    pub fn is_file(&self) -> bool {
        self.filename.as_deref().is_some_and(|f| !f.is_empty())
    }
}

/// Extracts the boundary from a `multipart/…; boundary=…` Content-Type (case-insensitive
/// type and parameter name, quoted or bare value).
///
/// # Errors
/// [`MultipartError::BadContentType`] when the type is not multipart or the boundary is
/// missing, empty or longer than [`MAX_BOUNDARY`].
pub fn boundary(content_type: &str) -> Result<String, MultipartError> {
    let mut parts = split_params(content_type);
    let media = parts.next().unwrap_or_default();
    if !media
        .get(..10)
        .is_some_and(|p| p.eq_ignore_ascii_case("multipart/"))
    {
        return Err(MultipartError::BadContentType);
    }
    for param in parts {
        if let Some((k, v)) = param.split_once('=')
            && k.trim().eq_ignore_ascii_case("boundary")
        {
            let v = unquote(v.trim());
            if v.is_empty() || v.len() > MAX_BOUNDARY {
                return Err(MultipartError::BadContentType);
            }
            return Ok(v);
        }
    }
    Err(MultipartError::BadContentType)
}

/// Parses a complete multipart body.
///
/// # Errors
/// See [`MultipartError`].
pub fn parse(body: &Bytes, boundary: &str, limits: Limits) -> Result<Vec<Part>, MultipartError> {
    let dash = format!("--{boundary}");
    let dash = dash.as_bytes();
    let mut parts = Vec::new();
    // --- preamble: find the first delimiter line; it fixes the line ending ---
    let mut pos = 0;
    let crlf = loop {
        let Some((line, next)) = next_line(body, pos) else {
            return Err(MultipartError::NoDelimiter);
        };
        if let Some(rest) = line.strip_prefix(dash) {
            if rest.starts_with(b"--") {
                return Ok(parts); // close delimiter first: an empty form
            }
            let crlf = rest.ends_with(b"\r");
            let pad = rest.strip_suffix(b"\r").unwrap_or(rest);
            if pad.iter().all(|b| *b == b' ' || *b == b'\t') {
                pos = next;
                break crlf;
            }
        }
        pos = next;
    };
    let nl: &[u8] = if crlf { b"\r\n" } else { b"\n" };
    let mut delim = Vec::with_capacity(nl.len() + dash.len());
    delim.extend_from_slice(nl);
    delim.extend_from_slice(dash);
    loop {
        if parts.len() >= limits.max_parts {
            return Err(MultipartError::TooManyParts);
        }
        // --- part headers ---
        let (headers, data_start) = read_headers(body, pos, crlf, limits)?;
        // --- data up to the next delimiter ---
        let Some(end) = find(&body[data_start..], &delim).map(|i| data_start + i) else {
            return Err(MultipartError::UnexpectedEof);
        };
        let mut part = Part {
            name: None,
            filename: None,
            content_type: None,
            data: body.slice(data_start..end),
        };
        apply_headers(&mut part, &headers);
        parts.push(part);
        // --- after the delimiter: `--` closes, else padding + line end ---
        let after = end + delim.len();
        let rest = &body[after..];
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        let Some((line, next)) = next_line(body, after) else {
            return Err(MultipartError::UnexpectedEof);
        };
        let pad = line.strip_suffix(b"\r").unwrap_or(line);
        if !pad.iter().all(|b| *b == b' ' || *b == b'\t') {
            return Err(MultipartError::BadDelimiter);
        }
        pos = next;
    }
}

/// The line starting at `pos` (without its `\n`) and the offset after it.
fn next_line(body: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = body.get(pos..)?;
    let i = rest.iter().position(|b| *b == b'\n')?;
    Some((&rest[..i], pos + i + 1))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut i = 0;
    while i + needle.len() <= hay.len() {
        let j = hay[i..=hay.len() - needle.len()]
            .iter()
            .position(|b| *b == first)?;
        i += j;
        if hay[i..].starts_with(needle) {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Reads header lines up to the blank line; returns (lower-cased name, value) pairs and the
/// offset of the part's data.
fn read_headers(
    body: &[u8],
    mut pos: usize,
    crlf: bool,
    limits: Limits,
) -> Result<(Vec<(String, String)>, usize), MultipartError> {
    let start = pos;
    let mut headers = Vec::new();
    loop {
        let Some((line, next)) = next_line(body, pos) else {
            return Err(MultipartError::UnexpectedEof);
        };
        if next - start > limits.max_header_bytes {
            return Err(MultipartError::BadPartHeader("header block too large"));
        }
        let line = if crlf {
            line.strip_suffix(b"\r").unwrap_or(line)
        } else {
            line
        };
        pos = next;
        if line.is_empty() {
            return Ok((headers, pos));
        }
        if headers.len() >= limits.max_headers {
            return Err(MultipartError::BadPartHeader("too many header lines"));
        }
        let text = std::str::from_utf8(line)
            .map_err(|_| MultipartError::BadPartHeader("header is not UTF-8"))?;
        let Some((name, value)) = text.split_once(':') else {
            return Err(MultipartError::BadPartHeader("header line without colon"));
        };
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err(MultipartError::BadPartHeader("invalid header name"));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
}

fn apply_headers(part: &mut Part, headers: &[(String, String)]) {
    for (name, value) in headers {
        match name.as_str() {
            "content-disposition" if part.name.is_none() && part.filename.is_none() => {
                let mut params = split_params(value);
                let disposition = params.next().unwrap_or_default();
                if !disposition.trim().eq_ignore_ascii_case("form-data") {
                    continue;
                }
                for p in params {
                    if let Some((k, v)) = p.split_once('=') {
                        let k = k.trim();
                        if k.eq_ignore_ascii_case("name") {
                            part.name = Some(unquote(v.trim()));
                        } else if k.eq_ignore_ascii_case("filename") {
                            part.filename = Some(unquote(v.trim()));
                        }
                    }
                }
            }
            "content-type" if part.content_type.is_none() => {
                part.content_type = Some(value.clone());
            }
            _ => {}
        }
    }
}

/// Splits `a; b=c; d="e;f"` at semicolons outside quotes.
fn split_params(s: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let s = rest?;
        let mut quoted = false;
        let mut escaped = false;
        for (i, c) in s.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if quoted => escaped = true,
                '"' => quoted = !quoted,
                ';' if !quoted => {
                    rest = Some(&s[i + 1..]);
                    return Some(s[..i].trim());
                }
                _ => {}
            }
        }
        rest = None;
        Some(s.trim())
    })
    .filter(|p| !p.is_empty())
}

/// Removes surrounding quotes and backslash escapes (`"a\"b"` → `a"b`).
fn unquote(v: &str) -> String {
    let Some(inner) = v.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return v.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use pyrogate_testdata::formats::{Part as NewPart, Style, multipart as build};

    fn part<'a>(name: &'a str, filename: Option<&'a str>, data: &'a [u8]) -> NewPart<'a> {
        NewPart {
            name,
            filename,
            content_type: None,
            data,
        }
    }

    #[test]
    fn boundary_parsing() {
        assert_eq!(
            boundary("multipart/form-data; boundary=abc").as_deref(),
            Ok("abc")
        );
        assert_eq!(
            boundary("Multipart/Form-Data;BOUNDARY=\"a b;c\"").as_deref(),
            Ok("a b;c")
        );
        for bad in [
            "multipart/form-data",
            "multipart/form-data; boundary=",
            "application/octet-stream; boundary=x",
            "",
        ] {
            assert_eq!(boundary(bad), Err(MultipartError::BadContentType), "{bad}");
        }
        let long = format!("multipart/form-data; boundary={}", "x".repeat(71));
        assert_eq!(boundary(&long), Err(MultipartError::BadContentType));
        assert_eq!(
            MultipartError::BadContentType.to_string(),
            "malformed multipart content type header"
        );
    }

    #[test]
    fn go_style_round_trip() {
        let profile: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
        let parts = [
            NewPart {
                name: "profile",
                filename: Some("profile.pprof"),
                content_type: Some("application/octet-stream"),
                data: &profile,
            },
            part(
                "sample_type_config",
                Some("sample_type_config.json"),
                b"{\"a\":1}",
            ),
        ];
        let body = Bytes::from(build("b0undary", &parts, Style::Go));
        let text = String::from_utf8_lossy(&body[..200]).into_owned();
        assert!(text.starts_with(
            "--b0undary\r\nContent-Disposition: form-data; name=\"profile\"; \
             filename=\"profile.pprof\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        ));
        assert!(body.ends_with(b"\r\n--b0undary--\r\n"));
        let got = parse(&body, "b0undary", Limits::default()).expect("parses");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].name.as_deref(), Some("profile"));
        assert_eq!(got[0].filename.as_deref(), Some("profile.pprof"));
        assert_eq!(
            got[0].content_type.as_deref(),
            Some("application/octet-stream")
        );
        assert_eq!(&got[0].data[..], &profile[..]);
        assert!(got[0].is_file());
        assert_eq!(&got[1].data[..], b"{\"a\":1}");
        // Zero-copy: part data points into the body.
        let r = body.as_ptr_range();
        assert!(r.contains(&got[0].data.as_ptr()));
    }

    #[test]
    fn okhttp_style_has_content_length() {
        let body = build(
            "uuid",
            &[NewPart {
                name: "labels",
                filename: Some("labels"),
                content_type: Some("application/x-protobuf"),
                data: b"xyz",
            }],
            Style::OkHttp,
        );
        assert_eq!(
            body,
            b"--uuid\r\nContent-Disposition: form-data; name=\"labels\"; filename=\"labels\"\r\n\
              Content-Type: application/x-protobuf\r\nContent-Length: 3\r\n\r\nxyz\r\n--uuid--\r\n"
        );
    }

    #[test]
    fn preamble_epilogue_padding_and_lf_only() {
        let body = Bytes::from_static(
            b"preamble\r\n--x  \r\ncontent-disposition: form-data; name=a\r\n\r\n1\r\n--x\t\r\n\
              Content-Disposition: form-data; name=\"b\"; filename=\"\"\r\n\r\n\r\n--x--epilogue",
        );
        let got = parse(&body, "x", Limits::default()).expect("parses");
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].name.as_deref(), Some("a"));
        assert_eq!(&got[0].data[..], b"1");
        assert!(!got[0].is_file());
        assert_eq!(got[1].filename.as_deref(), Some(""));
        assert!(!got[1].is_file());
        assert!(got[1].data.is_empty());

        let lf = Bytes::from_static(
            b"--x\nContent-Disposition: form-data; name=\"a\"; filename=\"f\"\n\nab\r\nc\n--x--\n",
        );
        let got = parse(&lf, "x", Limits::default()).expect("parses");
        assert_eq!(&got[0].data[..], b"ab\r\nc");
        // A delimiter-looking line inside data that is not preceded by a newline is data.
        let tricky = Bytes::from_static(
            b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\nfoo--x\r\n--x--\r\n",
        );
        let got = parse(&tricky, "x", Limits::default()).expect("parses");
        assert_eq!(&got[0].data[..], b"foo--x");
        // Empty form.
        let empty = Bytes::from_static(b"--x--\r\n");
        assert_eq!(parse(&empty, "x", Limits::default()), Ok(vec![]));
    }

    #[test]
    fn errors_and_bounds() {
        let lim = Limits::default();
        let e = |b: &'static [u8]| parse(&Bytes::from_static(b), "x", lim).expect_err("error");
        assert_eq!(e(b""), MultipartError::NoDelimiter);
        assert_eq!(e(b"no delimiter here\r\n"), MultipartError::NoDelimiter);
        assert_eq!(
            e(b"--x\r\nContent-Disposition: form-data; name=a\r\n\r\ndata without end"),
            MultipartError::UnexpectedEof
        );
        assert_eq!(
            e(b"--x\r\nContent-Disposition: form-data\r\n"),
            MultipartError::UnexpectedEof
        );
        assert!(matches!(
            e(b"--x\r\nno colon\r\n\r\n\r\n--x--"),
            MultipartError::BadPartHeader(_)
        ));
        assert_eq!(
            e(b"--x\r\nA: b\r\n\r\n1\r\n--xjunk\r\n\r\n2\r\n--x--"),
            MultipartError::BadDelimiter
        );
        // Too many parts.
        let many: Vec<NewPart<'_>> = (0..5).map(|_| part("p", None, b"d")).collect();
        let body = Bytes::from(build("x", &many, Style::Go));
        let small = Limits {
            max_parts: 4,
            ..lim
        };
        assert_eq!(parse(&body, "x", small), Err(MultipartError::TooManyParts));
        assert_eq!(parse(&body, "x", lim).map(|p| p.len()), Ok(5));
        // Header block too large.
        let mut big = b"--x\r\nX: ".to_vec();
        big.extend(std::iter::repeat_n(b'a', 20_000));
        big.extend_from_slice(b"\r\n\r\n\r\n--x--");
        assert!(matches!(
            parse(&Bytes::from(big), "x", lim),
            Err(MultipartError::BadPartHeader(_))
        ));
    }

    #[test]
    fn quoting_round_trips() {
        let body = Bytes::from(build(
            "q",
            &[part("we\"ird\\name", Some("f;\"x\".bin"), b"1")],
            Style::Go,
        ));
        let got = parse(&body, "q", Limits::default()).expect("parses");
        assert_eq!(got[0].name.as_deref(), Some("we\"ird\\name"));
        assert_eq!(got[0].filename.as_deref(), Some("f;\"x\".bin"));
    }
}
