//! Connect protocol vocabulary: error codes and their HTTP/gRPC mappings, error bodies,
//! Alloy's retry classification and the deadline headers (docs/push.md §2–§9,
//! docs/alloy-compat.md §11).
//!
//! Everything here mirrors connect-go byte for byte where a client could observe the
//! difference (code names, status table, JSON escaping), because SDKs and Alloy are built on
//! connect-go and pyrogate must be indistinguishable from Pyroscope to them.

use simd_json::prelude::*;
use std::time::Duration;

/// A Connect (= gRPC) status code. Success has no code: it is a 200 with no error body.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    Canceled,
    Unknown,
    InvalidArgument,
    DeadlineExceeded,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    ResourceExhausted,
    FailedPrecondition,
    Aborted,
    OutOfRange,
    Unimplemented,
    Internal,
    Unavailable,
    DataLoss,
    Unauthenticated,
}

/// All codes in gRPC-number order (index + 1 = number).
const ALL: [Code; 16] = [
    Code::Canceled,
    Code::Unknown,
    Code::InvalidArgument,
    Code::DeadlineExceeded,
    Code::NotFound,
    Code::AlreadyExists,
    Code::PermissionDenied,
    Code::ResourceExhausted,
    Code::FailedPrecondition,
    Code::Aborted,
    Code::OutOfRange,
    Code::Unimplemented,
    Code::Internal,
    Code::Unavailable,
    Code::DataLoss,
    Code::Unauthenticated,
];

// === impl Code ===

impl Code {
    /// Every code, in gRPC-number order.
    pub const ALL: [Code; 16] = ALL;

    /// The wire name used in Connect JSON error bodies (`"invalid_argument"`, …).
    pub const fn name(self) -> &'static str {
        match self {
            Code::Canceled => "canceled",
            Code::Unknown => "unknown",
            Code::InvalidArgument => "invalid_argument",
            Code::DeadlineExceeded => "deadline_exceeded",
            Code::NotFound => "not_found",
            Code::AlreadyExists => "already_exists",
            Code::PermissionDenied => "permission_denied",
            Code::ResourceExhausted => "resource_exhausted",
            Code::FailedPrecondition => "failed_precondition",
            Code::Aborted => "aborted",
            Code::OutOfRange => "out_of_range",
            Code::Unimplemented => "unimplemented",
            Code::Internal => "internal",
            Code::Unavailable => "unavailable",
            Code::DataLoss => "data_loss",
            Code::Unauthenticated => "unauthenticated",
        }
    }

    /// Parses a wire name (exact, case-sensitive, as connect-go does).
    pub fn from_name(name: &str) -> Option<Code> {
        ALL.into_iter().find(|c| c.name() == name)
    }

    /// The HTTP status a server answers with for this code (docs/push.md §6).
    pub const fn http_status(self) -> u16 {
        match self {
            Code::Canceled => 499,
            Code::Unknown | Code::Internal | Code::DataLoss => 500,
            Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
            Code::DeadlineExceeded => 504,
            Code::NotFound => 404,
            Code::AlreadyExists | Code::Aborted => 409,
            Code::PermissionDenied => 403,
            Code::ResourceExhausted => 429,
            Code::Unimplemented => 501,
            Code::Unavailable => 503,
            Code::Unauthenticated => 401,
        }
    }

    /// Pyroscope's HTTP status → code table: the `code` of the JSON error bodies its HTTP
    /// handlers write (docs/ingest.md §12.1).
    pub const fn from_http_status(status: u16) -> Code {
        match status {
            400 | 413 => Code::InvalidArgument,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::Unimplemented,
            412 => Code::FailedPrecondition,
            429 | 431 => Code::ResourceExhausted,
            499 => Code::Canceled,
            502 | 503 => Code::Unavailable,
            504 => Code::DeadlineExceeded,
            _ => Code::Unknown,
        }
    }

    /// The code pyrogate relays for a downstream refusal that carries no Connect body:
    /// Pyroscope's table, except three statuses it leaves `unknown` that keep their meaning
    /// here (408 → `deadline_exceeded`, 409 → `aborted`, 422 → `invalid_argument`, so a
    /// permanent 422 is not resent). Unlike connect-go's client-side inference it never
    /// turns a 400 into a retryable `internal` (docs/push.md §7.3).
    pub const fn for_downstream_status(status: u16) -> Code {
        match status {
            408 => Code::DeadlineExceeded,
            409 => Code::Aborted,
            422 => Code::InvalidArgument,
            s => Code::from_http_status(s),
        }
    }

    /// The code a connect-go (or gRPC) client infers from a non-200 response that carries no
    /// parsable Connect error body, e.g. a proxy's plain-text error (docs/push.md §7.1).
    /// Note the asymmetry with [`Code::http_status`]: 400 becomes `internal`, and 429 becomes
    /// `unavailable` (which Alloy retries regardless of `retry_on_http_429`).
    pub const fn from_http_status_inferred(status: u16) -> Code {
        match status {
            400 => Code::Internal,
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            404 => Code::Unimplemented,
            429 | 502 | 503 | 504 => Code::Unavailable,
            _ => Code::Unknown,
        }
    }

    /// The gRPC status number (`grpc-status` trailer), 1–16.
    pub const fn grpc_number(self) -> u32 {
        match self {
            Code::Canceled => 1,
            Code::Unknown => 2,
            Code::InvalidArgument => 3,
            Code::DeadlineExceeded => 4,
            Code::NotFound => 5,
            Code::AlreadyExists => 6,
            Code::PermissionDenied => 7,
            Code::ResourceExhausted => 8,
            Code::FailedPrecondition => 9,
            Code::Aborted => 10,
            Code::OutOfRange => 11,
            Code::Unimplemented => 12,
            Code::Internal => 13,
            Code::Unavailable => 14,
            Code::DataLoss => 15,
            Code::Unauthenticated => 16,
        }
    }

    /// Inverse of [`Code::grpc_number`]; `None` for 0 (OK) and out-of-range numbers.
    pub fn from_grpc_number(n: u32) -> Option<Code> {
        let idx = usize::try_from(n).ok()?.checked_sub(1)?;
        ALL.get(idx).copied()
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

// === error bodies ===

/// Serializes a Connect unary error body exactly as connect-go does (`json.Marshal` of
/// `{code, message,omitempty}`): `{"code":"…","message":"…"}`, with `message` omitted when
/// empty and Go's HTML-safe string escaping (see [`push_json_string`]). No trailing newline;
/// the `/ingest` error writer (Go `json.Encoder`) appends one itself.
pub fn error_body(code: Code, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + code.name().len() + message.len());
    out.extend_from_slice(b"{\"code\":\"");
    out.extend_from_slice(code.name().as_bytes());
    out.push(b'"');
    if !message.is_empty() {
        out.extend_from_slice(b",\"message\":");
        push_json_string(&mut out, message);
    }
    out.push(b'}');
    out
}

/// Appends `s` as a JSON string literal, escaped like Go's `encoding/json` with HTML escaping
/// on (its default): `"` and `\` backslash-escaped; `\b \f \n \r \t` short forms; other
/// control characters and `<`, `>`, `&` as `\u00XX` (lower-case hex); U+2028 and U+2029 as
/// `\u2028`/`\u2029` (they break JavaScript string literals).
pub fn push_json_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, ch) in s.char_indices() {
        let short: Option<&[u8]> = match ch {
            '"' => Some(b"\\\""),
            '\\' => Some(b"\\\\"),
            '\u{8}' => Some(b"\\b"),
            '\u{c}' => Some(b"\\f"),
            '\n' => Some(b"\\n"),
            '\r' => Some(b"\\r"),
            '\t' => Some(b"\\t"),
            '\u{2028}' => Some(b"\\u2028"),
            '\u{2029}' => Some(b"\\u2029"),
            _ => None,
        };
        let needs_hex = ch < ' ' || matches!(ch, '<' | '>' | '&');
        if short.is_none() && !needs_hex {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        start = i + ch.len_utf8();
        match short {
            Some(esc) => out.extend_from_slice(esc),
            None => {
                let b = ch as u32 as u8; // ASCII here: controls and <>&
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            }
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Error bodies larger than this are not parsed: a real Connect error is a few hundred
/// bytes, and the outbound client must not spend unbounded CPU on a hostile downstream.
pub const MAX_ERROR_BODY: usize = 64 * 1024;

/// Reads a downstream Connect error body the way connect-go's client does, so pyrogate's
/// retry decisions match Alloy's (docs/push.md §7.2, docs/alloy-compat.md §11).
///
/// Returns `None` when connect-go would fall back to inferring the code from the HTTP status
/// ([`Code::from_http_status_inferred`]): not JSON, not an object, `code` or `message` of the
/// wrong type, or an unrecognised code name; also for bodies over [`MAX_ERROR_BODY`].
/// Like Go's `encoding/json`, keys match case-insensitively, the last duplicate wins, and
/// extra fields (`details`, …) are ignored. A missing `code` (or a JSON `null` body) yields
/// `unknown`, again as in connect-go.
pub fn parse_error_body(body: &[u8]) -> Option<(Code, String)> {
    if body.len() > MAX_ERROR_BODY {
        return None;
    }
    let mut copy = body.to_vec(); // simd-json parses in place
    let tape = simd_json::to_tape(&mut copy).ok()?;
    let root = tape.as_value();
    if root.is_null() {
        return Some((Code::Unknown, String::new()));
    }
    let obj = root.as_object()?;
    let mut code = Code::Unknown;
    let mut message = String::new();
    for (key, value) in obj.iter() {
        if key.eq_ignore_ascii_case("code") {
            if value.is_null() {
                continue;
            }
            code = parse_wire_code(value.as_str()?)?;
        } else if key.eq_ignore_ascii_case("message") {
            if value.is_null() {
                continue;
            }
            message = value.as_str()?.to_owned();
        }
    }
    Some((code, message))
}

/// A code name, or connect-go's `code_N` spelling for numbers outside 1–16 (which it then
/// treats as `unknown`).
fn parse_wire_code(name: &str) -> Option<Code> {
    if let Some(code) = Code::from_name(name) {
        return Some(code);
    }
    let n: i64 = name.strip_prefix("code_")?.parse().ok()?;
    (!(1..=16).contains(&n)).then_some(Code::Unknown)
}

// === retries ===

/// Alloy's `shouldRetry` for a Connect error code (docs/alloy-compat.md §11): transient codes
/// are retried, `resource_exhausted` only when `retry_on_http_429` is set, the rest never.
/// Errors that never reached a Connect layer (connection refused, EOF, …) count as `unknown`
/// and are therefore retried.
pub const fn is_retryable_alloy(code: Code, retry_on_429: bool) -> bool {
    match code {
        Code::DeadlineExceeded
        | Code::Unknown
        | Code::Internal
        | Code::Unavailable
        | Code::DataLoss
        | Code::Aborted => true,
        Code::ResourceExhausted => retry_on_429,
        Code::Canceled
        | Code::InvalidArgument
        | Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::FailedPrecondition
        | Code::OutOfRange
        | Code::Unimplemented
        | Code::Unauthenticated => false,
    }
}

// === deadlines ===

/// The most digits `Connect-Timeout-Ms` may have (Connect spec; ≈ 115 days).
const MAX_TIMEOUT_MS_DIGITS: usize = 10;

/// The most digits a `grpc-timeout` value may have (gRPC spec), before its unit.
const MAX_GRPC_TIMEOUT_DIGITS: usize = 8;

/// A malformed `Connect-Timeout-Ms` header; answered with `invalid_argument`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeoutError {
    #[error("protocol error: timeout {0:?} is too long")]
    TooLong(String),
    #[error("protocol error: invalid timeout {0:?}")]
    Invalid(String),
}

impl TimeoutError {
    /// The Connect code to answer with.
    pub const fn code(&self) -> Code {
        Code::InvalidArgument
    }
}

/// The headers of a Connect unary request with a deadline `timeout` from now (what
/// connect-go's client sends: protocol version 1 and the remaining time in milliseconds,
/// at least 1).
pub fn write_unary_request_headers(out: &mut Vec<u8>, timeout: Duration) {
    out.extend_from_slice(b"Connect-Protocol-Version: 1\r\nConnect-Timeout-Ms: ");
    crate::http::response::push_u64(out, timeout.as_millis().max(1) as u64);
    out.extend_from_slice(b"\r\n");
}

/// Parses `Connect-Timeout-Ms`: 1–10 ASCII digits, in milliseconds (docs/push.md §2).
/// `0` is valid and means the deadline has already passed.
///
/// # Errors
/// [`TimeoutError`] for an empty value, non-digits or more than 10 digits.
pub fn parse_timeout_ms(v: &[u8]) -> Result<u64, TimeoutError> {
    let shown = || String::from_utf8_lossy(v).into_owned();
    if v.len() > MAX_TIMEOUT_MS_DIGITS {
        return Err(TimeoutError::TooLong(shown()));
    }
    parse_digits(v).ok_or_else(|| TimeoutError::Invalid(shown()))
}

/// Parses `grpc-timeout` (docs/push.md §9): 1–8 ASCII digits and a unit (`H` `M` `S` `m` `u`
/// `n`). `None` means "no usable deadline": malformed, or too large for Go's `time.Duration`
/// (≈ 292 years), which grpc-go and connect-go also treat as no deadline.
pub fn parse_grpc_timeout(v: &[u8]) -> Option<Duration> {
    let (&unit, digits) = v.split_last()?;
    if digits.len() > MAX_GRPC_TIMEOUT_DIGITS {
        return None;
    }
    let n = parse_digits(digits)?;
    let timeout = match unit {
        b'H' => Duration::from_secs(n.checked_mul(3600)?),
        b'M' => Duration::from_secs(n.checked_mul(60)?),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    };
    let go_max = Duration::from_nanos(i64::MAX.unsigned_abs());
    (timeout <= go_max).then_some(timeout)
}

/// A non-empty run of ASCII digits short enough not to overflow (callers bound the length).
fn parse_digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |acc, &d| {
        acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_round_trip() {
        for (i, code) in Code::ALL.into_iter().enumerate() {
            assert_eq!(Code::from_name(code.name()), Some(code));
            assert_eq!(code.grpc_number() as usize, i + 1);
            assert_eq!(Code::from_grpc_number(code.grpc_number()), Some(code));
            assert_eq!(code.to_string(), code.name());
        }
        assert_eq!(Code::from_name("INVALID_ARGUMENT"), None);
        assert_eq!(Code::from_name("ok"), None);
        assert_eq!(Code::from_grpc_number(0), None);
        assert_eq!(Code::from_grpc_number(17), None);
    }

    #[test]
    fn http_status_table() {
        let table = [
            (Code::Canceled, 499),
            (Code::Unknown, 500),
            (Code::InvalidArgument, 400),
            (Code::DeadlineExceeded, 504),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::PermissionDenied, 403),
            (Code::ResourceExhausted, 429),
            (Code::FailedPrecondition, 400),
            (Code::Aborted, 409),
            (Code::OutOfRange, 400),
            (Code::Unimplemented, 501),
            (Code::Internal, 500),
            (Code::Unavailable, 503),
            (Code::DataLoss, 500),
            (Code::Unauthenticated, 401),
        ];
        for (code, status) in table {
            assert_eq!(code.http_status(), status, "{code}");
        }
    }

    #[test]
    fn inferred_codes() {
        let table = [
            (400, Code::Internal),
            (401, Code::Unauthenticated),
            (403, Code::PermissionDenied),
            (404, Code::Unimplemented),
            (429, Code::Unavailable),
            (502, Code::Unavailable),
            (503, Code::Unavailable),
            (504, Code::Unavailable),
            (500, Code::Unknown),
            (408, Code::Unknown),
            (413, Code::Unknown),
            (302, Code::Unknown),
        ];
        for (status, code) in table {
            assert_eq!(Code::from_http_status_inferred(status), code, "{status}");
        }
    }

    #[test]
    fn error_body_matches_go_json_marshal() {
        assert_eq!(
            error_body(Code::InvalidArgument, "bad"),
            br#"{"code":"invalid_argument","message":"bad"}"#
        );
        assert_eq!(error_body(Code::Unknown, ""), br#"{"code":"unknown"}"#);
        let msg = "labels '{a=\"b\"}' <&> \\ \n\t\u{1}\u{7f} é \u{2028}";
        let want = concat!(
            r#"{"code":"invalid_argument","message":"labels '{a=\"b\"}' "#,
            r#"\u003c\u0026\u003e \\ \n\t\u0001"#,
            "\u{7f} é ",
            r#"\u2028"}"#
        );
        assert_eq!(
            String::from_utf8_lossy(&error_body(Code::InvalidArgument, msg)),
            want
        );
    }

    #[test]
    fn error_body_round_trips_through_parser() {
        let msgs = [
            "",
            "plain",
            "quote \" back \\ <>& \u{0} \u{1f} \u{2029} ü 🦀",
        ];
        for code in Code::ALL {
            for msg in msgs {
                let body = error_body(code, msg);
                assert_eq!(parse_error_body(&body), Some((code, msg.to_owned())));
            }
        }
    }

    #[test]
    fn parse_error_body_is_tolerant_like_connect_go() {
        let ok = |b: &str| parse_error_body(b.as_bytes());
        assert_eq!(
            ok(concat!(
                r#"{"code":"resource_exhausted","message":"rate limited","#,
                r#""details":[{"type":"x.Y","value":"AAE","debug":{"a":1}}]}"#
            )),
            Some((Code::ResourceExhausted, "rate limited".into()))
        );
        assert_eq!(
            ok("{\"code\":\"unavailable\"}\n"),
            Some((Code::Unavailable, String::new()))
        );
        assert_eq!(
            ok(r#"{"Code":"not_found","MESSAGE":"x","extra":{"a":[1,2]}}"#),
            Some((Code::NotFound, "x".into()))
        );
        assert_eq!(
            ok(r#"{"message":"no code"}"#),
            Some((Code::Unknown, "no code".into()))
        );
        assert_eq!(
            ok(r#"{"code":"code_99"}"#),
            Some((Code::Unknown, String::new()))
        );
        assert_eq!(ok("null"), Some((Code::Unknown, String::new())));
        assert_eq!(ok(r#"{"code":"code_3"}"#), None);
        assert_eq!(ok(r#"{"code":"bogus","message":"x"}"#), None);
        assert_eq!(ok(r#"{"code":3}"#), None);
        assert_eq!(ok(r#"{"code":"internal","message":5}"#), None);
        assert_eq!(ok("Too Many Requests\n"), None);
        assert_eq!(ok(""), None);
        assert_eq!(ok("[]"), None);
        assert_eq!(ok(r#"{"code":"internal""#), None);
        let huge = format!(
            r#"{{"code":"internal","message":"{}"}}"#,
            "a".repeat(MAX_ERROR_BODY)
        );
        assert_eq!(ok(&huge), None);
    }

    #[test]
    fn alloy_retry_matrix() {
        let retried = [
            Code::DeadlineExceeded,
            Code::Unknown,
            Code::Internal,
            Code::Unavailable,
            Code::DataLoss,
            Code::Aborted,
        ];
        for code in Code::ALL {
            let want = retried.contains(&code);
            if code == Code::ResourceExhausted {
                assert!(is_retryable_alloy(code, true));
                assert!(!is_retryable_alloy(code, false));
            } else {
                assert_eq!(is_retryable_alloy(code, true), want, "{code}");
                assert_eq!(is_retryable_alloy(code, false), want, "{code}");
            }
        }
        // A plain 429 from a proxy is inferred as unavailable: retried even with the flag off.
        assert!(is_retryable_alloy(
            Code::from_http_status_inferred(429),
            false
        ));
        // A plain 400 is inferred as internal: retried.
        assert!(is_retryable_alloy(
            Code::from_http_status_inferred(400),
            false
        ));
    }

    #[test]
    fn connect_timeout_ms() {
        assert_eq!(parse_timeout_ms(b"0"), Ok(0));
        assert_eq!(parse_timeout_ms(b"1500"), Ok(1500));
        assert_eq!(parse_timeout_ms(b"9999999999"), Ok(9_999_999_999));
        assert_eq!(
            parse_timeout_ms(b"12345678901"),
            Err(TimeoutError::TooLong("12345678901".into()))
        );
        for bad in [&b""[..], b"-1", b"+1", b"1.5", b" 1", b"1s", b"\xff"] {
            assert!(matches!(
                parse_timeout_ms(bad),
                Err(TimeoutError::Invalid(_))
            ));
        }
        let err = parse_timeout_ms(b"x").expect_err("invalid");
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(err.to_string(), "protocol error: invalid timeout \"x\"");
    }

    #[test]
    fn grpc_timeout() {
        let d = |v: &[u8]| parse_grpc_timeout(v);
        assert_eq!(d(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(d(b"2M"), Some(Duration::from_secs(120)));
        assert_eq!(d(b"3S"), Some(Duration::from_secs(3)));
        assert_eq!(d(b"250m"), Some(Duration::from_millis(250)));
        assert_eq!(d(b"7u"), Some(Duration::from_micros(7)));
        assert_eq!(d(b"99999999n"), Some(Duration::from_nanos(99_999_999)));
        assert_eq!(d(b"0m"), Some(Duration::ZERO));
        assert_eq!(d(b"99999999H"), None); // beyond Go's time.Duration: no deadline
        for bad in [
            &b""[..],
            b"S",
            b"123456789S",
            b"10",
            b"1x",
            b"-1S",
            b"1.5S",
            b"1 S",
        ] {
            assert_eq!(d(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
