//! Go `net/url` query semantics: `url.ParseQuery`, `Values.Get/Set/Add`, `Values.Encode`,
//! `QueryEscape` and `QueryUnescape`.
//!
//! Alloy forwards `/ingest` with the incoming query parsed by Go and re-encoded with the keys
//! sorted (`docs/ingest.md` §5.6), and Pyroscope reads `name` the same way (`docs/ingest.md` §2.1).
//! Matching the forwarded bytes therefore means matching Go's quirks: only `&` separates pairs, a
//! pair containing `;` or a malformed `%` escape is silently dropped, `+` decodes to a space.
//!
//! Go strings are byte strings, so a value such as `%FF` decodes to a byte that is not UTF-8 and
//! is re-encoded as `%FF` by Alloy. To forward such values byte for byte, every decoded key and
//! value keeps its exact bytes when they are not UTF-8, next to a lossy text view for
//! [`Query::get`] and [`Query::iter`]. The lossy view replaces **each** invalid byte with U+FFFD,
//! which is what Go's `for … range` over a string yields, so the label-set parser sees exactly the
//! characters Pyroscope's parser sees.
//!
//! Not reproduced: Go ≥ 1.24.12/1.25.6 refuses queries with more than 10 000 parameters
//! (`GODEBUG=urlmaxqueryparams`) and `URL.Query()` then yields an empty set. Request-line size
//! limits bound the parameter count long before that matters here.

use std::borrow::Cow;

/// Upper-case hex digits, as Go's `QueryEscape` writes them.
const UPPER_HEX: &[u8; 16] = b"0123456789ABCDEF";

/// One decoded key or value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Text {
    /// The decoded text; each byte that is not part of valid UTF-8 is shown as U+FFFD.
    text: String,
    /// The exact decoded bytes, kept only when they are not valid UTF-8 (then `text` is lossy).
    /// `None` in the common case, so valid text costs no second allocation.
    raw: Option<Box<[u8]>>,
}

impl Text {
    fn from_text(s: &str) -> Self {
        Text {
            text: s.to_owned(),
            raw: None,
        }
    }

    fn from_bytes(bytes: Cow<'_, [u8]>) -> Self {
        match bytes {
            Cow::Borrowed(b) => match std::str::from_utf8(b) {
                Ok(s) => Text::from_text(s),
                Err(_) => Text {
                    text: go_lossy(b),
                    raw: Some(b.into()),
                },
            },
            Cow::Owned(v) => match String::from_utf8(v) {
                Ok(text) => Text { text, raw: None },
                Err(e) => {
                    let raw = e.into_bytes().into_boxed_slice();
                    Text {
                        text: go_lossy(&raw),
                        raw: Some(raw),
                    }
                }
            },
        }
    }

    /// The exact bytes, as Go would hold them.
    fn bytes(&self) -> &[u8] {
        self.raw.as_deref().unwrap_or(self.text.as_bytes())
    }
}

/// Decoded query pairs in arrival order, with Go `url.Values` operations.
///
/// A `Vec` instead of a map: real queries have fewer than ten pairs, arrival order is useful for
/// logging, and [`Query::encode`] sorts anyway.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(Text, Text)>,
}

/// Parses a raw query (the part after `?`, without `#fragment`) like Go's `url.ParseQuery`,
/// silently dropping what Go drops (Go's error return is ignored by `URL.Query()`).
pub fn parse(raw: &str) -> Query {
    parse_bytes(raw.as_bytes())
}

/// [`parse`] for a raw query that is not known to be UTF-8 (request lines are bytes).
pub fn parse_bytes(raw: &[u8]) -> Query {
    let mut pairs = Vec::with_capacity(raw.iter().filter(|&&b| b == b'&').count() + 1);
    for segment in raw.split(|&b| b == b'&') {
        if segment.is_empty() || segment.contains(&b';') {
            continue;
        }
        if let Some(pair) = parse_pair(segment) {
            pairs.push(pair);
        }
    }
    Query { pairs }
}

/// Splits one `key=value` segment at the first `=` and unescapes both sides; `None` if either
/// side has a malformed escape (Go drops the whole pair).
fn parse_pair(segment: &[u8]) -> Option<(Text, Text)> {
    let (key, value) = match segment.iter().position(|&b| b == b'=') {
        Some(i) => (&segment[..i], &segment[i + 1..]),
        None => (segment, &[][..]),
    };
    let key = unescape_bytes(key)?;
    let value = unescape_bytes(value)?;
    Some((Text::from_bytes(key), Text::from_bytes(value)))
}

impl Query {
    /// First value of `key` (Go `Values.Get`), or `None` if absent. Values that were not UTF-8
    /// are returned in their lossy form (see the module documentation).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k.bytes() == key.as_bytes())
            .map(|(_, v)| v.text.as_str())
    }

    /// Replaces every value of `key` with `value` (Go `Values.Set`). The pair takes the place of
    /// the first existing one, or is appended.
    pub fn set(&mut self, key: &str, value: &str) {
        let mut seen = false;
        self.pairs.retain_mut(|(k, v)| {
            if k.bytes() != key.as_bytes() {
                return true;
            }
            if seen {
                return false;
            }
            seen = true;
            *v = Text::from_text(value);
            true
        });
        if !seen {
            self.add(key, value);
        }
    }

    /// Appends a value for `key` (Go `Values.Add`).
    pub fn add(&mut self, key: &str, value: &str) {
        self.pairs
            .push((Text::from_text(key), Text::from_text(value)));
    }

    /// The pairs in arrival order, as (lossy) text.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs
            .iter()
            .map(|(k, v)| (k.text.as_str(), v.text.as_str()))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// True when no pair survived parsing.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Go `Values.Encode`: keys sorted byte-wise, each key's values in arrival order,
    /// `key=value` joined by `&`, both sides escaped with [`query_escape`]; empty → `""`.
    /// Non-UTF-8 bytes are re-encoded exactly as they arrived (`%FF` stays `%FF`).
    pub fn encode(&self) -> String {
        self.encode_inner(None)
    }

    /// [`encode`](Self::encode) as if `Set(key, value)` had been called, with `value` given
    /// already escaped: `/ingest` rebuilds `name` per request, and its escaped form is cached.
    pub fn encode_with_escaped(&self, key: &str, escaped_value: &str) -> String {
        self.encode_inner(Some((key, escaped_value)))
    }

    fn encode_inner(&self, replace: Option<(&str, &str)>) -> String {
        let mut sorted: Vec<(&[u8], Value<'_>)> = self
            .pairs
            .iter()
            .filter(|(k, _)| replace.is_none_or(|(rk, _)| k.bytes() != rk.as_bytes()))
            .map(|(k, v)| (k.bytes(), Value::Raw(v.bytes())))
            .collect();
        if let Some((k, v)) = replace {
            sorted.push((k.as_bytes(), Value::Escaped(v)));
        }
        // Stable: a key's values keep their arrival order, as in Go's `map[string][]string`.
        sorted.sort_by(|a, b| a.0.cmp(b.0));
        let len: usize = sorted
            .iter()
            .map(|(k, v)| k.len() * 3 + 2 + v.max_len())
            .sum();
        let mut out: Vec<u8> = Vec::with_capacity(len);
        for (i, (k, v)) in sorted.into_iter().enumerate() {
            if i > 0 {
                out.push(b'&');
            }
            escape_into(k, &mut out);
            out.push(b'=');
            match v {
                Value::Raw(b) => escape_into(b, &mut out),
                Value::Escaped(e) => out.extend_from_slice(e.as_bytes()),
            }
        }
        // Escaped output is ASCII by construction.
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

enum Value<'a> {
    Raw(&'a [u8]),
    Escaped(&'a str),
}

impl Value<'_> {
    fn max_len(&self) -> usize {
        match self {
            Value::Raw(b) => b.len() * 3,
            Value::Escaped(e) => e.len(),
        }
    }
}

// === escaping ===

/// Go `url.QueryEscape`, appended to `out`: unreserved `A-Z a-z 0-9 - _ . ~` kept, space → `+`,
/// every other byte `%XX` with upper-case hex.
pub fn query_escape(s: &str, out: &mut String) {
    let mut v = Vec::with_capacity(s.len() * 3);
    escape_into(s.as_bytes(), &mut v);
    out.push_str(&String::from_utf8_lossy(&v));
}

/// Bytes kept as they are, as a table (the escape loop runs over every byte of every
/// forwarded query).
const UNRESERVED: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' || b == b'~';
        i += 1;
    }
    t
};

/// Escapes `bytes` into `out`, copying runs of unreserved bytes in one go.
fn escape_into(bytes: &[u8], out: &mut Vec<u8>) {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if UNRESERVED[usize::from(b)] {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        if b == b' ' {
            out.push(b'+');
        } else {
            out.extend_from_slice(&[
                b'%',
                UPPER_HEX[usize::from(b >> 4)],
                UPPER_HEX[usize::from(b & 0x0F)],
            ]);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

// === unescaping ===

/// Go `url.QueryUnescape`: `%XX` (either hex case) decoded, `+` → space; `None` on a malformed
/// escape (`%` not followed by two hex digits). Decoded bytes that are not UTF-8 become U+FFFD,
/// one per byte as in Go's string iteration; use [`parse_bytes`]/[`Query`] to keep them exact.
pub fn query_unescape(s: &str) -> Option<String> {
    match unescape_bytes(s.as_bytes())? {
        Cow::Borrowed(_) => Some(s.to_owned()),
        Cow::Owned(v) => Some(match String::from_utf8(v) {
            Ok(s) => s,
            Err(e) => go_lossy(e.as_bytes()),
        }),
    }
}

/// Byte-level unescape; borrows when there is nothing to decode (the common case for `from`,
/// `until`, `format`, …).
fn unescape_bytes(s: &[u8]) -> Option<Cow<'_, [u8]>> {
    if !s.iter().any(|&b| b == b'%' || b == b'+') {
        return Some(Cow::Borrowed(s));
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'%' => {
                let hi = s.get(i + 1).copied().and_then(hex_value)?;
                let lo = s.get(i + 2).copied().and_then(hex_value)?;
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(Cow::Owned(out))
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Converts bytes to text the way Go iterates a string: every byte that does not start a valid
/// UTF-8 sequence becomes one U+FFFD. (Rust's `from_utf8_lossy` folds a truncated multi-byte
/// sequence into a single U+FFFD, which would change the label-set parser's input.)
pub fn go_lossy(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 8);
    loop {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (valid, rest) = bytes.split_at(e.valid_up_to());
                // `valid` is valid UTF-8 by construction; the fallback is never taken.
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                let bad = e.error_len().unwrap_or(rest.len());
                out.extend(std::iter::repeat_n('\u{FFFD}', bad));
                bytes = &rest[bad..];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pairs(q: &Query) -> Vec<(&str, &str)> {
        q.iter().collect()
    }

    /// `q` with its pairs stably sorted by key bytes: what `parse(encode(q))` must give back.
    fn sorted(q: &Query) -> Query {
        let mut pairs = q.pairs.clone();
        pairs.sort_by(|a, b| a.0.bytes().cmp(b.0.bytes()));
        Query { pairs }
    }

    fn escape(s: &str) -> String {
        let mut out = String::new();
        query_escape(s, &mut out);
        out
    }

    // --- ParseQuery ---

    #[test]
    fn parses_pairs_in_order_and_first_value_wins() {
        let q = parse("x=1&y=2&y=3");
        assert_eq!(pairs(&q), [("x", "1"), ("y", "2"), ("y", "3")]);
        assert_eq!(q.get("y"), Some("2"));
        assert_eq!(q.get("z"), None);
    }

    #[test]
    fn pairs_with_semicolons_are_dropped() {
        assert!(parse("a=1;b=2").is_empty());
        assert_eq!(pairs(&parse("a=1&b=2;c=3&d=4")), [("a", "1"), ("d", "4")]);
        assert_eq!(pairs(&parse("a=%3B&b;=1")), [("a", ";")]);
    }

    #[test]
    fn malformed_escapes_drop_the_pair() {
        assert_eq!(pairs(&parse("a=%zz&b=2")), [("b", "2")]);
        assert_eq!(pairs(&parse("a=%&b")), [("b", "")]);
        assert_eq!(pairs(&parse("a=%4&c=3")), [("c", "3")]);
        assert_eq!(pairs(&parse("%g1=x&c=3")), [("c", "3")]);
        assert_eq!(pairs(&parse("c=3&a=x%")), [("c", "3")]);
    }

    #[test]
    fn plus_is_space_and_escapes_decode() {
        let q = parse("a+b=c+d&e=%2B%2b%41%c3%a9");
        assert_eq!(pairs(&q), [("a b", "c d"), ("e", "++Aé")]);
    }

    #[test]
    fn empty_segments_and_odd_shapes() {
        assert_eq!(pairs(&parse("&&a=1&&")), [("a", "1")]);
        assert_eq!(pairs(&parse("a")), [("a", "")]);
        assert_eq!(pairs(&parse("=v")), [("", "v")]);
        assert_eq!(pairs(&parse("a==b")), [("a", "=b")]);
        assert_eq!(pairs(&parse("a=b?c/d")), [("a", "b?c/d")]);
        assert!(parse("").is_empty());
    }

    #[test]
    fn non_utf8_bytes_are_lossy_in_text_and_exact_in_encoding() {
        let q = parse("a=%FF%E2%82x&b=%C3%A9");
        assert_eq!(q.get("a"), Some("\u{FFFD}\u{FFFD}\u{FFFD}x"));
        assert_eq!(q.encode(), "a=%FF%E2%82x&b=%C3%A9");
        let raw = parse_bytes(b"k=\xff\xfe");
        assert_eq!(raw.get("k"), Some("\u{FFFD}\u{FFFD}"));
        assert_eq!(raw.encode(), "k=%FF%FE");
    }

    #[test]
    fn non_utf8_keys_never_match_text_keys() {
        let mut q = parse("%FF=1");
        assert_eq!(q.get("\u{FFFD}"), None);
        q.set("\u{FFFD}", "2");
        assert_eq!(q.encode(), "%EF%BF%BD=2&%FF=1");
    }

    // --- Values operations ---

    #[test]
    fn set_replaces_all_values_in_place() {
        let mut q = parse("a=1&name=x&b=2&name=y");
        q.set("name", "z");
        assert_eq!(pairs(&q), [("a", "1"), ("name", "z"), ("b", "2")]);
        q.set("new", "v");
        assert_eq!(q.get("new"), Some("v"));
        assert_eq!(q.len(), 4);
    }

    #[test]
    fn encode_matches_go_example() {
        // From the Go documentation of `Values.Encode`.
        let mut q = Query::default();
        q.set("name", "Ava");
        q.add("friend", "Jess");
        q.add("friend", "Sarah");
        q.add("friend", "Zoe");
        assert_eq!(q.encode(), "friend=Jess&friend=Sarah&friend=Zoe&name=Ava");
    }

    #[test]
    fn encode_sorts_keys_keeps_value_order_and_escapes() {
        let q = parse("b=2&a=y&B=0&a=x&flag&c=a%20b+c");
        assert_eq!(q.encode(), "B=0&a=y&a=x&b=2&c=a+b+c&flag=");
        assert_eq!(Query::default().encode(), "");
    }

    // --- QueryEscape / QueryUnescape ---

    #[test]
    fn query_escape_matches_go() {
        assert_eq!(
            escape("my/cool+blog&about,stuff"),
            "my%2Fcool%2Bblog%26about%2Cstuff"
        );
        assert_eq!(escape("AZaz09-_.~"), "AZaz09-_.~");
        assert_eq!(escape("a b"), "a+b");
        assert_eq!(
            escape("{=,}/:;?@$!*'()#[]%"),
            "%7B%3D%2C%7D%2F%3A%3B%3F%40%24%21%2A%27%28%29%23%5B%5D%25"
        );
        assert_eq!(escape("é\u{0}\n"), "%C3%A9%00%0A");
        assert_eq!(escape(""), "");
    }

    #[test]
    fn query_unescape_matches_go() {
        assert_eq!(query_unescape("%41%42+c"), Some("AB c".to_owned()));
        assert_eq!(query_unescape("%2f%2F"), Some("//".to_owned()));
        assert_eq!(query_unescape("plain"), Some("plain".to_owned()));
        assert_eq!(query_unescape("%FF"), Some("\u{FFFD}".to_owned()));
        for bad in ["%", "%a", "a%", "%4G", "%G4", "%%41", "x%2"] {
            assert_eq!(query_unescape(bad), None, "{bad}");
        }
    }

    #[test]
    fn go_lossy_replaces_each_invalid_byte() {
        assert_eq!(go_lossy(b"a\xe2\x82b"), "a\u{FFFD}\u{FFFD}b");
        assert_eq!(go_lossy(b"\xed\xa0\x80"), "\u{FFFD}\u{FFFD}\u{FFFD}");
        assert_eq!(go_lossy(b"\xc0\x80"), "\u{FFFD}\u{FFFD}");
        assert_eq!(go_lossy(b"ok\xf0\x9f\x98"), "ok\u{FFFD}\u{FFFD}\u{FFFD}");
        assert_eq!(go_lossy("é😀".as_bytes()), "é😀");
    }

    // --- captured client traffic ---

    /// The query string of the Node.js 0.6.4 capture (docs/sdks.md §4).
    const NODE_QUERY: &str = "format=pprof&from=1795312298&name=feas.node.app%7Botel.scope.name%3Dcom.grafana.pyroscope%2Fnodejs%2Cotel.scope.version%3D0.6.4%2Cprocess.runtime.name%3Dnodejs%2Cprocess.runtime.version%3D20.20.2%2Cenv%3Dfeas%2Cregion%3Dlocal%7D&spyName=nodespy&until=1795312309&sampleRate=17";

    const NODE_NAME: &str = "feas.node.app{otel.scope.name=com.grafana.pyroscope/nodejs,otel.scope.version=0.6.4,process.runtime.name=nodejs,process.runtime.version=20.20.2,env=feas,region=local}";

    #[test]
    fn node_query_parses() {
        let q = parse(NODE_QUERY);
        assert_eq!(q.get("name"), Some(NODE_NAME));
        assert_eq!(q.get("format"), Some("pprof"));
        assert_eq!(q.get("from"), Some("1795312298"));
        assert_eq!(q.get("until"), Some("1795312309"));
        assert_eq!(q.get("spyName"), Some("nodespy"));
        assert_eq!(q.get("sampleRate"), Some("17"));
        assert_eq!(q.len(), 6);
    }

    /// Queries of every generated agent request parse back to what the agent encoded:
    /// `name` round-trips through Go's and OkHttp's escaping.
    #[test]
    fn agent_queries_parse() {
        use pyrogate_testdata::corpus;
        for case in corpus::every_route_and_format(1, corpus::FIXED_NOW_S) {
            let Some(raw) = case.request.query() else {
                continue;
            };
            let q = parse(raw);
            let name = q
                .get("name")
                .unwrap_or_else(|| panic!("{}: no name", case.name()));
            assert!(name.starts_with("feas."), "{}: {name}", case.name());
            assert!(
                q.get("from")
                    .is_some_and(|v| v.bytes().all(|b| b.is_ascii_digit()))
            );
            if name.contains('{') {
                assert!(name.ends_with('}'), "{}: {name}", case.name());
            }
        }
    }

    /// Reads the query straight from the captured Node.js request, when the captured corpus
    /// is present.
    #[test]
    fn captured_node_query_parses() {
        let Some(text) = pyrogate_testdata::corpus::fixture(
            "clients/pyroscope-nodejs-0.6.4-ingest-wall.txt",
            "query: captured Node.js request line",
        ) else {
            return;
        };
        let text = String::from_utf8_lossy(&text);
        let request_line = text.lines().find(|l| l.starts_with("POST /ingest?"));
        let query = request_line
            .and_then(|l| l.strip_prefix("POST /ingest?"))
            .and_then(|l| l.strip_suffix(" HTTP/1.1"));
        assert_eq!(query, Some(NODE_QUERY));
        assert_eq!(parse(NODE_QUERY).get("name"), Some(NODE_NAME));
    }

    // --- properties ---

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn escape_unescape_round_trips(s in any::<String>()) {
            prop_assert_eq!(query_unescape(&escape(&s)), Some(s));
        }

        #[test]
        fn encode_with_escaped_equals_set_then_encode(
            kv in proptest::collection::vec((any::<String>(), any::<String>()), 0..8),
            key in "[a-z]{1,4}",
            value in any::<String>(),
        ) {
            let mut q = Query::default();
            for (k, v) in &kv {
                q.add(k, v);
            }
            let fast = q.encode_with_escaped(&key, &escape(&value));
            q.set(&key, &value);
            prop_assert_eq!(fast, q.encode());
        }

        #[test]
        fn parse_of_encode_is_sorted_query(
            kv in proptest::collection::vec((any::<String>(), any::<String>()), 0..8),
        ) {
            let mut q = Query::default();
            for (k, v) in &kv {
                q.add(k, v);
            }
            prop_assert_eq!(parse(&q.encode()), sorted(&q));
        }

        #[test]
        fn byte_values_survive_parse_and_encode(
            kv in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..6),
                 proptest::collection::vec(any::<u8>(), 0..6)),
                1..6,
            ),
        ) {
            let mut raw = String::new();
            for (k, v) in &kv {
                if !raw.is_empty() {
                    raw.push('&');
                }
                let mut b = Vec::new();
                escape_into(k, &mut b);
                b.push(b'=');
                escape_into(v, &mut b);
                raw.push_str(&String::from_utf8_lossy(&b));
            }
            let q = parse(&raw);
            prop_assert_eq!(q.len(), kv.len());
            let again = parse(&q.encode());
            prop_assert_eq!(&again, &sorted(&q));
            prop_assert_eq!(again.encode(), q.encode());
        }

        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let q = parse(&s);
            let _ = q.encode();
        }

        #[test]
        fn parse_bytes_never_panics(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let q = parse_bytes(&b);
            let _ = q.encode();
        }

        #[test]
        fn parse_never_panics_on_escape_soup(s in "[a%+=&;0-9A-Fg]{0,30}") {
            let q = parse(&s);
            prop_assert_eq!(parse(&q.encode()), sorted(&q));
        }
    }
}
