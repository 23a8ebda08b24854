//! Property tests of every parser that reads the network, through the public API: the HTTP
//! head parser, the chunked decoder, the `name` label-set grammar and the Push decoder.
//!
//! They give CI the coverage of the cargo-fuzz targets in `fuzz/` (same entry points):
//! never panic on any input, respect every bound, and agree with a simple reference model
//! (naive terminator scan, split-invariance, a literal transcription of Pyroscope's label-set
//! state machine).

use std::collections::BTreeMap;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use prost::Message as _;

use pyrogate::http::chunked::{ChunkedDecoder, ChunkedError, Progress};
use pyrogate::http::head::{
    BodyFraming, HeadError, MAX_HEADERS, Method, RequestHead, find_head_end,
};
use pyrogate::protocol::labelset::{self, LabelSetError, NAME_LABEL};
use pyrogate::protocol::proto::{LabelPair, PushRequest, RawProfileSeries, RawSample};
use pyrogate::protocol::push::{self as push_decode, Codec, Encoding};

// === HTTP head ===

/// The obvious reference: the end of the first `\n\n` or `\n\r\n`.
fn naive_head_end(buf: &[u8]) -> Option<usize> {
    (0..buf.len()).find_map(|i| {
        if buf[i] != b'\n' {
            return None;
        }
        match (buf.get(i + 1), buf.get(i + 2)) {
            (Some(b'\n'), _) => Some(i + 2),
            (Some(b'\r'), Some(b'\n')) => Some(i + 3),
            _ => None,
        }
    })
}

/// Tokens that make random inputs look like heads, so the parser's deeper branches run.
fn head_soup() -> impl Strategy<Value = Vec<u8>> {
    let tokens = prop::sample::select(vec![
        "GET ",
        "POST ",
        "HEAD ",
        "/",
        "/ingest",
        "?",
        "a=b",
        " HTTP/1.1",
        " HTTP/1.0",
        " HTTP/2.0",
        "\r\n",
        "\n",
        "\r",
        ":",
        ": ",
        "Host",
        "Content-Length",
        "content-length",
        "Transfer-Encoding",
        "chunked",
        "gzip",
        ",",
        " ",
        "\t",
        "0",
        "5",
        "18446744073709551616",
        "99999999999999999999",
        "-1",
        "Expect",
        "100-continue",
        "Connection",
        "close",
        "keep-alive",
        "\x00",
        "\x7f",
        "\u{e9}",
        "x",
    ]);
    prop::collection::vec(tokens, 0..40).prop_map(|v| v.concat().into_bytes())
}

/// A syntactically valid head and what parsing it must yield.
#[derive(Debug, Clone)]
struct GenHead {
    bytes: Vec<u8>,
    method: Method,
    path: String,
    query: Option<String>,
    minor: u8,
    headers: Vec<(String, String)>,
    framing: BodyFraming,
    keep_alive: bool,
    expect_continue: bool,
}

fn gen_head() -> impl Strategy<Value = GenHead> {
    let method = prop::sample::select(vec![
        ("GET", Method::Get),
        ("HEAD", Method::Head),
        ("POST", Method::Post),
        ("PUT", Method::Put),
        ("DELETE", Method::Delete),
        ("OPTIONS", Method::Options),
        ("PATCH", Method::Other),
    ]);
    let path = prop::collection::vec("[A-Za-z0-9._~%-]{0,8}", 0..4)
        .prop_map(|segs| format!("/{}", segs.join("/")));
    let query = prop::option::of("[A-Za-z0-9=&%._?/{}-]{0,40}");
    let value = "[!-~]([ !-~\t]{0,20}[!-~])?";
    let name = "[A-Za-z][A-Za-z0-9-]{0,15}".prop_filter("reserved", |n: &String| {
        ![
            "content-length",
            "transfer-encoding",
            "expect",
            "connection",
        ]
        .contains(&n.to_ascii_lowercase().as_str())
    });
    let headers = prop::collection::vec((name, value), 0..(MAX_HEADERS - 3));
    // framing: 0 none, 1 content-length, 2 chunked; connection: 0 none, 1 close, 2 keep-alive
    // Content-Length values up to 19 digits (the parser refuses longer ones, as Go refuses
    // values above 2^63 - 1).
    let framing = (0u8..3, 0u64..10_000_000_000_000_000_000u64);
    (
        method,
        path,
        query,
        0u8..2,
        headers,
        framing,
        0u8..3,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |((m, method), path, query, minor, headers, (fr, len), conn, expect, lf_only)| {
                let eol = if lf_only { "\n" } else { "\r\n" };
                let target = match &query {
                    Some(q) => format!("{path}?{q}"),
                    None => path.clone(),
                };
                let mut s = format!("{m} {target} HTTP/1.{minor}{eol}");
                let mut all = headers.clone();
                // Chunked is only valid on HTTP/1.1 requests.
                let fr = if fr == 2 && minor == 0 { 1 } else { fr };
                let framing = match fr {
                    1 => {
                        all.push(("Content-Length".into(), len.to_string()));
                        if len == 0 {
                            BodyFraming::None
                        } else {
                            BodyFraming::Length(len)
                        }
                    }
                    2 => {
                        all.push(("Transfer-Encoding".into(), "chunked".into()));
                        BodyFraming::Chunked
                    }
                    _ => BodyFraming::None,
                };
                match conn {
                    1 => all.push(("Connection".into(), "close".into())),
                    2 => all.push(("Connection".into(), "Keep-Alive".into())),
                    _ => {}
                }
                if expect {
                    all.push(("Expect".into(), "100-continue".into()));
                }
                for (n, v) in &all {
                    s.push_str(&format!("{n}: {v}{eol}"));
                }
                s.push_str(eol);
                let keep_alive = if minor == 0 { conn == 2 } else { conn != 1 };
                GenHead {
                    bytes: s.into_bytes(),
                    method,
                    path,
                    query,
                    minor,
                    headers: all,
                    framing,
                    keep_alive,
                    expect_continue: expect && minor == 1 && framing != BodyFraming::None,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn head_end_matches_naive_scan(buf in prop::collection::vec(
        prop::sample::select(vec![b'\r', b'\n', b'a', b' ']), 0..64)) {
        prop_assert_eq!(find_head_end(&buf, 0), naive_head_end(&buf));
    }

    /// The server resumes the scan where the previous read ended; however the bytes arrive,
    /// the head ends where a full scan says.
    #[test]
    fn head_end_incremental_equals_full(
        buf in prop::collection::vec(prop::sample::select(vec![b'\r', b'\n', b'x']), 0..64),
        cuts in prop::collection::vec(0usize..64, 0..8),
    ) {
        let want = naive_head_end(&buf);
        let mut cuts: Vec<usize> = cuts.into_iter().filter(|c| *c <= buf.len()).collect();
        cuts.push(buf.len());
        cuts.sort_unstable();
        let mut scanned = 0;
        let mut found = None;
        for cut in cuts {
            if let Some(end) = find_head_end(&buf[..cut], scanned) {
                found = Some(end);
                break;
            }
            scanned = cut;
        }
        prop_assert_eq!(found, want);
    }

    #[test]
    fn head_end_never_panics(buf in prop::collection::vec(any::<u8>(), 0..256), from in 0usize..300) {
        if let Some(end) = find_head_end(&buf, from) {
            prop_assert!(end <= buf.len());
            prop_assert!(buf[..end].ends_with(b"\n\n") || buf[..end].ends_with(b"\n\r\n"));
        }
    }

    #[test]
    fn parse_never_panics_on_bytes(buf in prop::collection::vec(any::<u8>(), 0..512)) {
        check_parse_invariants(&buf);
        let mut with_end = buf;
        with_end.extend_from_slice(b"\r\n\r\n");
        check_parse_invariants(&with_end);
    }

    #[test]
    fn parse_never_panics_on_head_soup(mut buf in head_soup()) {
        buf.extend_from_slice(b"\r\n\r\n");
        check_parse_invariants(&buf);
    }

    #[test]
    fn valid_heads_round_trip(h in gen_head(), trailing in prop::collection::vec(any::<u8>(), 0..16)) {
        let mut buf = h.bytes.clone();
        buf.extend_from_slice(&trailing); // a body or the next request follows the head
        let end = find_head_end(&buf, 0).expect("complete head");
        prop_assert_eq!(end, h.bytes.len());
        let head = RequestHead::parse(Bytes::copy_from_slice(&buf[..end]))
            .map_err(|e| TestCaseError::fail(format!("{e:?} for {:?}", String::from_utf8_lossy(&h.bytes))))?;
        prop_assert_eq!(head.method, h.method);
        prop_assert_eq!(head.path(), h.path.as_str());
        prop_assert_eq!(head.query(), h.query.as_deref());
        prop_assert_eq!(head.minor_version, h.minor);
        prop_assert_eq!(head.framing, h.framing);
        prop_assert_eq!(head.keep_alive, h.keep_alive);
        prop_assert_eq!(head.expect_continue, h.expect_continue);
        prop_assert_eq!(head.raw_len(), h.bytes.len());
        let got: Vec<(String, String)> = head
            .headers()
            .map(|(n, v)| (String::from_utf8_lossy(n).into_owned(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        prop_assert_eq!(&got, &h.headers);
        // Lookups are case-insensitive and return the first value.
        for (n, v) in &h.headers {
            let first = h.headers.iter().find(|(m, _)| m.eq_ignore_ascii_case(n)).map(|(_, v)| v.as_bytes());
            prop_assert_eq!(head.header(&n.to_ascii_uppercase()), first);
            prop_assert!(head.headers_named(&n.to_ascii_lowercase()).any(|x| x == v.as_bytes()));
        }
    }

    #[test]
    fn header_count_limit(n in 0usize..(2 * MAX_HEADERS)) {
        let mut s = String::from("GET / HTTP/1.1\r\n");
        for i in 0..n {
            s.push_str(&format!("X-{i}: v\r\n"));
        }
        s.push_str("\r\n");
        let r = RequestHead::parse(Bytes::from(s));
        if n <= MAX_HEADERS {
            prop_assert_eq!(r.map(|h| h.headers().count()).ok(), Some(n));
        } else {
            prop_assert_eq!(r.err(), Some(HeadError::TooManyHeaders));
            prop_assert_eq!(HeadError::TooManyHeaders.status(), 431);
        }
    }

    #[test]
    fn content_length_values(digits in "[0-9]{1,25}") {
        let s = format!("POST / HTTP/1.1\r\nContent-Length: {digits}\r\n\r\n");
        let r = RequestHead::parse(Bytes::from(s)).map(|h| h.framing);
        if digits.len() > 19 {
            prop_assert_eq!(r, Err(HeadError::BadContentLength));
        } else {
            // Up to 19 digits always fit in a u64.
            match digits.parse::<u64>().expect("19 digits fit") {
                0 => prop_assert_eq!(r, Ok(BodyFraming::None)),
                n => prop_assert_eq!(r, Ok(BodyFraming::Length(n))),
            }
        }
    }
}

/// Parsing any bytes never panics, and whatever parses is self-consistent.
fn check_parse_invariants(buf: &[u8]) {
    let Some(end) = find_head_end(buf, 0) else {
        return;
    };
    let Ok(h) = RequestHead::parse(Bytes::copy_from_slice(&buf[..end])) else {
        return;
    };
    assert!(h.headers().count() <= MAX_HEADERS);
    assert_eq!(h.raw_len(), end);
    assert!(h.path().len() < end);
    if h.framing == BodyFraming::Chunked {
        assert_eq!(h.minor_version, 1, "chunked only on HTTP/1.1");
        assert!(
            h.header("content-length").is_none(),
            "TE and CL together must be refused"
        );
    }
    assert!(h.framing != BodyFraming::Length(0));
    if h.expect_continue {
        assert!(h.framing != BodyFraming::None);
    }
}

// === chunked ===

/// Feeds `input` in pieces; returns (error, consumed, done, output) at the first error or
/// completion.
fn feed(input: &[u8], cuts: &[usize], max: u64) -> (Option<ChunkedError>, usize, bool, Vec<u8>) {
    let mut d = ChunkedDecoder::new(max);
    let mut out = BytesMut::new();
    let mut consumed = 0;
    let mut prev = 0;
    let mut points: Vec<usize> = cuts.iter().copied().filter(|c| *c <= input.len()).collect();
    points.push(input.len());
    points.sort_unstable();
    for cut in points {
        if cut < prev {
            continue;
        }
        // The server re-offers unconsumed bytes together with the new ones.
        let piece = &input[consumed..cut];
        match d.decode(piece, &mut out) {
            Err(e) => return (Some(e), consumed, false, out.to_vec()),
            Ok((n, Progress::Done)) => return (None, consumed + n, true, out.to_vec()),
            Ok((n, Progress::NeedMore)) => consumed += n,
        }
        prev = cut;
    }
    (None, consumed, false, out.to_vec())
}

fn chunk_soup() -> impl Strategy<Value = Vec<u8>> {
    let tokens = prop::sample::select(vec![
        "0",
        "1",
        "3",
        "a",
        "F",
        "ffffffffffffffff",
        "10000000000000000",
        ";",
        ";x=y",
        " ",
        "\r\n",
        "\n",
        "\r",
        "abc",
        "X-T: 1",
        "\r\n\r\n",
        "0\r\n\r\n",
    ]);
    prop::collection::vec(tokens, 0..40).prop_map(|v| v.concat().into_bytes())
}

/// A valid chunked encoding with extensions and trailers, and the data it carries.
fn gen_chunked() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    (
        prop::collection::vec(prop::collection::vec(any::<u8>(), 1..64), 0..8),
        prop::collection::vec("[a-z]{1,5}(=[a-z0-9]{0,5})?", 0..3),
        prop::collection::vec("X-[A-Za-z]{1,8}: [ -~]{0,20}", 0..3),
        any::<bool>(),
    )
        .prop_map(|(chunks, exts, trailers, upper)| {
            let mut enc = Vec::new();
            let mut data = Vec::new();
            for (i, c) in chunks.iter().enumerate() {
                let size = if upper {
                    format!("{:X}", c.len())
                } else {
                    format!("{:x}", c.len())
                };
                enc.extend_from_slice(size.as_bytes());
                if let Some(e) = exts.get(i % exts.len().max(1)) {
                    enc.extend_from_slice(format!(";{e}").as_bytes());
                }
                enc.extend_from_slice(b"\r\n");
                enc.extend_from_slice(c);
                enc.extend_from_slice(b"\r\n");
                data.extend_from_slice(c);
            }
            enc.extend_from_slice(b"0\r\n");
            for t in &trailers {
                enc.extend_from_slice(t.as_bytes());
                enc.extend_from_slice(b"\r\n");
            }
            enc.extend_from_slice(b"\r\n");
            (enc, data)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// However the bytes are split across reads, a valid body decodes to the same data and
    /// stops exactly at its end (the pipelined request after it is left alone).
    #[test]
    fn chunked_valid_split_invariant(
        (enc, data) in gen_chunked(),
        cuts in prop::collection::vec(0usize..600, 0..10),
    ) {
        let mut input = enc.clone();
        input.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let (err, consumed, done, out) = feed(&input, &cuts, 1 << 20);
        prop_assert_eq!(err, None);
        prop_assert!(done);
        prop_assert_eq!(consumed, enc.len());
        prop_assert_eq!(out, data);
    }

    /// On any input the decoder is split-invariant: same error or completion, same output.
    #[test]
    fn chunked_any_input_split_invariant(
        input in prop_oneof![chunk_soup(), prop::collection::vec(any::<u8>(), 0..200)],
        cuts in prop::collection::vec(0usize..300, 0..10),
        max in 0u64..64,
    ) {
        let whole = feed(&input, &[], max);
        let split = feed(&input, &cuts, max);
        prop_assert_eq!(whole.0, split.0);
        prop_assert_eq!(whole.2, split.2);
        prop_assert_eq!(&whole.3, &split.3);
        if whole.2 {
            prop_assert_eq!(whole.1, split.1);
        }
        // The body limit holds whatever the input.
        prop_assert!(whole.3.len() as u64 <= max);
    }

    #[test]
    fn chunked_limit_is_exact((enc, data) in gen_chunked(), slack in -3i64..3) {
        let max = (data.len() as i64 + slack).max(0) as u64;
        let (err, _, done, out) = feed(&enc, &[], max);
        if data.len() as u64 <= max {
            prop_assert!(done && err.is_none());
            prop_assert_eq!(out, data);
        } else {
            prop_assert_eq!(err, Some(ChunkedError::TooLarge));
        }
    }
}

// === label-set grammar ===

/// A literal transcription of the state-machine table in docs/ingest.md §3.1 (Pyroscope's
/// `labelset.Parse`), with separate key/value buffers as the Go code has. The production
/// parser slices the input instead; both must agree on every input.
fn reference_labelset(name: &str) -> Result<BTreeMap<String, String>, LabelSetError> {
    enum St {
        App,
        Key,
        Value,
    }
    let mut labels = BTreeMap::new();
    let (mut app, mut key, mut value) = (String::new(), String::new(), String::new());
    let mut st = St::App;
    for c in name.chars().chain(std::iter::once('{')) {
        match st {
            St::App => {
                if c == '{' {
                    let a = app.trim();
                    labelset::validate_service_name(a)?;
                    labels.insert(NAME_LABEL.to_string(), a.to_string());
                    st = St::Key;
                } else {
                    app.push(c);
                }
            }
            St::Key => match c {
                '}' => return Ok(labels),
                '=' => {
                    value.clear();
                    st = St::Value;
                }
                _ => key.push(c),
            },
            St::Value => match c {
                ',' | '}' => {
                    let k = key.trim();
                    if k != NAME_LABEL {
                        labelset::validate_label_name(k)?;
                    }
                    labels.insert(k.to_string(), value.trim().to_string());
                    key.clear();
                    st = St::Key;
                }
                _ => value.push(c),
            },
        }
    }
    Ok(labels)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn labelset_matches_reference_on_grammar_soup(s in "[ab_.{}=, \t\u{a0}é/-]{0,32}") {
        prop_assert_eq!(labelset::parse(&s), reference_labelset(&s));
    }

    #[test]
    fn labelset_matches_reference_on_any_string(s in any::<String>()) {
        prop_assert_eq!(labelset::parse(&s), reference_labelset(&s));
    }
}

#[test]
fn labelset_reference_agrees_with_the_spec_table() {
    // A few rows of docs/ingest.md §3.3, to make sure the reference itself is right.
    let ok = |s: &str, want: &[(&str, &str)]| {
        let want: BTreeMap<String, String> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(reference_labelset(s), Ok(want.clone()), "{s}");
        assert_eq!(labelset::parse(s), Ok(want), "{s}");
    };
    ok("app", &[("__name__", "app")]);
    ok(
        " my.app { env = prod } ",
        &[("__name__", "my.app"), ("env", "prod")],
    );
    ok("app{a=x=y}", &[("__name__", "app"), ("a", "x=y")]);
    ok("app{a=1,a=2}", &[("__name__", "app"), ("a", "2")]);
    ok(
        "app{a=1}b=2}",
        &[("__name__", "app"), ("a", "1"), ("b", "2")],
    );
    ok("app{a=1", &[("__name__", "app")]);
    ok("app{a=1}c=2", &[("__name__", "app"), ("a", "1")]);
    ok("app{__name__=other}", &[("__name__", "other")]);
    ok("app{}junk=1}", &[("__name__", "app")]);
    for bad in [
        "app{flag,a=1}",
        "app{a=1,,b=2}",
        "app{a=1}{b=2}",
        "app{a-b=1}",
        "",
        "{a=1}",
        "app name{}",
    ] {
        assert!(reference_labelset(bad).is_err(), "{bad}");
        assert_eq!(labelset::parse(bad), reference_labelset(bad), "{bad}");
    }
}

// === Push decoding ===

fn gen_push() -> impl Strategy<Value = PushRequest> {
    let label =
        ("[a-z_.]{1,10}", "[ -~]{0,12}").prop_map(|(name, value)| LabelPair { name, value });
    let sample = (
        prop::collection::vec(any::<u8>(), 0..128),
        "[0-9a-f-]{0,36}",
    )
        .prop_map(|(p, id)| RawSample {
            raw_profile: Bytes::from(p),
            id,
        });
    let series = (
        prop::collection::vec(label, 0..6),
        prop::collection::vec(sample, 0..4),
    )
        .prop_map(|(labels, samples)| RawProfileSeries {
            labels,
            samples,
            annotations: vec![],
        });
    prop::collection::vec(series, 0..4).prop_map(|series| PushRequest { series })
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Binary decoding is zero-copy: every non-empty `raw_profile` points into the request
    /// buffer, and the message round-trips.
    #[test]
    fn push_proto_round_trip_zero_copy(req in gen_push()) {
        let body = Bytes::from(req.encode_to_vec());
        let range = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
        let got = push_decode::decode(body.clone(), Codec::Proto, Encoding::Identity, 1 << 20)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        for s in got.series.iter().flat_map(|s| &s.samples) {
            if !s.raw_profile.is_empty() {
                prop_assert!(range.contains(&(s.raw_profile.as_ptr() as usize)), "raw_profile was copied");
            }
        }
        prop_assert_eq!(got, req);
    }

    /// Inflation never exceeds the bound: exactly the data when it fits, a
    /// `resource_exhausted` error when it does not.
    #[test]
    fn push_inflate_is_bounded(data in prop::collection::vec(any::<u8>(), 0..4096), max in 0usize..4096) {
        let r = push_decode::inflate_message(Bytes::from(gzip(&data)), Encoding::Gzip, max);
        if data.len() <= max {
            prop_assert_eq!(r.map(|b| b.to_vec()), Ok(data));
        } else {
            let e = r.expect_err("over the limit");
            prop_assert_eq!(e.code().name(), "resource_exhausted");
        }
    }

    /// Any body, any codec, any framing: an answer, never a panic, and errors carry a code.
    #[test]
    fn push_decode_never_panics(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..300),
            gen_push().prop_map(|r| { let mut v = r.encode_to_vec(); v.truncate(v.len() / 2); v }),
            gen_push().prop_map(|r| gzip(&r.encode_to_vec())),
        ],
        flip in any::<(usize, u8)>(),
    ) {
        let mut body = body;
        if !body.is_empty() {
            let i = flip.0 % body.len();
            body[i] ^= flip.1;
        }
        for codec in [Codec::Proto, Codec::Json] {
            for enc in [Encoding::Identity, Encoding::Gzip] {
                if let Err(e) = push_decode::decode(Bytes::from(body.clone()), codec, enc, 1 << 16) {
                    prop_assert!(!e.to_string().is_empty());
                }
            }
        }
        if let Ok((msg, _)) = push_decode::unframe_grpc_web(Bytes::from(body.clone()), 1 << 16) {
            prop_assert_eq!(msg.len() + 5, body.len());
        }
    }
}

// === pprof decode, validation and normalisation (the `pprof` fuzz target's checks) ===

#[path = "../fuzz/fuzz_targets/pprof_check.rs"]
mod pprof_check;

/// Generated profiles with a few bytes changed, gzip'd or not: mostly still decodable, so
/// the checks reach validation and normalisation.
fn mutated_profile() -> impl Strategy<Value = (u8, Vec<u8>)> {
    (
        any::<u64>(),
        0usize..60,
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        any::<u8>(),
        any::<bool>(),
    )
        .prop_map(|(seed, samples, flips, mode, gzipped)| {
            let spec =
                pyrogate_testdata::pprof::Spec::new(seed, pyrogate_testdata::pprof::Kind::Heap)
                    .samples(samples)
                    .functions(20)
                    .zeros(20)
                    .duplicates(30)
                    .negatives(5);
            let mut bytes = spec.plain();
            for (at, b) in flips {
                if !bytes.is_empty() {
                    let i = at.index(bytes.len());
                    bytes[i] = b;
                }
            }
            if gzipped {
                bytes = pyrogate_testdata::gz::gzip(&bytes);
            }
            (mode, bytes)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn pprof_pipeline_on_mutated_profiles((mode, bytes) in mutated_profile()) {
        pprof_check::check(mode, &bytes);
    }

    #[test]
    fn pprof_pipeline_on_bytes(mode in any::<u8>(), bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        pprof_check::check(mode, &bytes);
    }
}
