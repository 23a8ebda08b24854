//! The `/ingest` `name` label-set grammar (`docs/ingest.md` §3), bug for bug.
//!
//! SDKs put the app name and their tags into one query parameter, e.g.
//! `my.app.cpu{env=prod,region=eu}`. Pyroscope and Alloy read it with a small character state
//! machine (grafana/pyroscope `api/model/labelset`) that has no escaping and several surprising
//! edge cases; every one of them is observable (a label silently dropped, a request rejected), so
//! this module reproduces the machine exactly rather than implementing a "nicer" grammar.
//!
//! Everything here is pure and allocation-light: the parser works on slices of the input and
//! only allocates the strings it stores in the result map.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A label set: name → value, keys sorted byte-wise (Rust `String` ordering is byte-wise, the
/// same as Go string comparison and Prometheus label sorting). The app name lives under
/// [`NAME_LABEL`].
pub type Labels = BTreeMap<String, String>;

/// The reserved label holding the app (service) name. It is the only `__`-prefixed key the
/// parser treats specially: inside braces it is accepted without name validation.
pub const NAME_LABEL: &str = "__name__";

/// Errors of the label-set grammar. The `Display` texts are Pyroscope's, byte for byte, because
/// they end up in log lines and error bodies that operators compare with Pyroscope's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabelSetError {
    /// The app name before `{` is empty (after trimming).
    #[error("service name is required")]
    ServiceNameRequired,
    /// A label key is empty (after trimming), e.g. `app{=x}`.
    #[error("label name is required")]
    LabelNameRequired,
    /// The app name contains a character outside `[A-Za-z0-9_.\-/]`; `rune` is the first one.
    #[error("invalid service name: {name}: character is not allowed: {}", go_quote_rune(*.rune))]
    InvalidServiceName {
        /// The trimmed app name as written.
        name: String,
        /// The first offending character.
        rune: char,
    },
    /// A label key contains a character outside `[A-Za-z0-9_.]`; `rune` is the first one.
    #[error("invalid label name: {name}: character is not allowed: {}", go_quote_rune(*.rune))]
    InvalidLabelName {
        /// The trimmed key as written.
        name: String,
        /// The first offending character.
        rune: char,
    },
    /// [`validate_label_name`] was asked about `__name__` itself. Pyroscope's `ValidateLabelName`
    /// reports this; the parser and Alloy's validation never reach it because they skip
    /// `__name__` before validating.
    #[error("label name is reserved: {0}")]
    LabelNameReserved(String),
}

// === parsing ===

/// Parser states of `docs/ingest.md` §3.1. Instead of Go's growing buffers we remember where the
/// current token started: every buffer of the Go machine only ever holds one contiguous run of
/// input characters (the app name up to the first `{`, a key up to `=`, a value up to `,`/`}`),
/// so slicing the input is equivalent and allocation-free.
#[derive(Clone, Copy)]
enum State {
    /// Reading the app name; it always starts at offset 0.
    App,
    /// Reading a key that starts at byte offset `start`.
    Key { start: usize },
    /// Reading a value starting at `start` for the key `input[key_start..key_end]`.
    Value {
        key_start: usize,
        key_end: usize,
        start: usize,
    },
}

/// Parses a `name` query value into labels, exactly like Pyroscope's `labelset.Parse`.
///
/// The machine runs over `name + "{"`: the appended `{` is what ends the app name when there
/// are no braces, and it is also why an unterminated value (`app{a=1`) is silently dropped
/// instead of reported. See the consequences table in `docs/ingest.md` §3.3.
pub fn parse(name: &str) -> Result<Labels, LabelSetError> {
    let mut labels = Labels::new();
    let mut state = State::App;
    let virtual_brace = std::iter::once((name.len(), '{'));
    for (pos, c) in name.char_indices().chain(virtual_brace) {
        state = match state {
            State::App if c == '{' => {
                let app = name[..pos].trim();
                validate_service_name(app)?;
                labels.insert(NAME_LABEL.to_owned(), app.to_owned());
                State::Key { start: pos + 1 }
            }
            State::App => State::App,
            // A `}` in key state ends parsing; whatever follows (even more labels) is ignored.
            State::Key { .. } if c == '}' => return Ok(labels),
            State::Key { start } if c == '=' => State::Value {
                key_start: start,
                key_end: pos,
                start: pos + 1,
            },
            // `,` is an ordinary key character: `app{flag,a=1}` yields the key `flag,a`.
            State::Key { start } => State::Key { start },
            State::Value {
                key_start,
                key_end,
                start,
            } if c == ',' || c == '}' => {
                store_pair(&mut labels, &name[key_start..key_end], &name[start..pos])?;
                State::Key { start: pos + 1 }
            }
            value @ State::Value { .. } => value,
        };
    }
    Ok(labels)
}

/// "Store pair" of the state machine: trim both sides, validate the key unless it is exactly
/// `__name__`, and insert (a later duplicate overwrites an earlier one).
fn store_pair(labels: &mut Labels, key: &str, value: &str) -> Result<(), LabelSetError> {
    let key = key.trim();
    if key != NAME_LABEL {
        validate_label_name(key)?;
    }
    let value = value.trim();
    match labels.get_mut(key) {
        // Reuse the existing allocations for the (rare) duplicate key.
        Some(existing) => {
            existing.clear();
            existing.push_str(value);
        }
        None => {
            labels.insert(key.to_owned(), value.to_owned());
        }
    }
    Ok(())
}

// === validation ===

/// Characters allowed in label names: `[A-Za-z0-9_.]`.
fn is_label_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

/// Characters allowed in app (service) names: label-name characters plus `-` and `/`.
fn is_service_name_char(c: char) -> bool {
    is_label_name_char(c) || c == '-' || c == '/'
}

/// Validates an app (service) name: non-empty, only `[A-Za-z0-9_.\-/]`.
pub fn validate_service_name(s: &str) -> Result<(), LabelSetError> {
    if s.is_empty() {
        return Err(LabelSetError::ServiceNameRequired);
    }
    match s.chars().find(|&c| !is_service_name_char(c)) {
        Some(rune) => Err(LabelSetError::InvalidServiceName {
            name: s.to_owned(),
            rune,
        }),
        None => Ok(()),
    }
}

/// Validates a label name: non-empty, only `[A-Za-z0-9_.]`, and not `__name__` (checked last,
/// as Pyroscope does, so a bad character is reported before reservation).
pub fn validate_label_name(s: &str) -> Result<(), LabelSetError> {
    if s.is_empty() {
        return Err(LabelSetError::LabelNameRequired);
    }
    if let Some(rune) = s.chars().find(|&c| !is_label_name_char(c)) {
        return Err(LabelSetError::InvalidLabelName {
            name: s.to_owned(),
            rune,
        });
    }
    if s == NAME_LABEL {
        return Err(LabelSetError::LabelNameReserved(s.to_owned()));
    }
    Ok(())
}

// === rendering ===

/// Renders labels the way Alloy and pyroscope-go build `name`: the `__name__` value, then `{`,
/// the other labels as `k=v` in key order joined by `,`, then `}`. No quoting or escaping, so a
/// value containing `,` or `}` does not survive a round trip (neither does it in Go).
pub fn render_canonical(labels: &Labels) -> String {
    let mut out = String::with_capacity(rendered_len(labels));
    if let Some(app) = labels.get(NAME_LABEL) {
        out.push_str(app);
    }
    out.push('{');
    let mut first = true;
    for (key, value) in labels.iter().filter(|(k, _)| k.as_str() != NAME_LABEL) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(key);
        out.push('=');
        out.push_str(value);
    }
    out.push('}');
    out
}

/// Exact byte length of [`render_canonical`]'s output, so the string is allocated once.
fn rendered_len(labels: &Labels) -> usize {
    let mut len = 2; // `{` and `}`
    let mut others = 0usize;
    for (key, value) in labels {
        if key == NAME_LABEL {
            len += value.len();
        } else {
            others += 1;
            len += key.len() + 1 + value.len(); // `k=v`
        }
    }
    len + others.saturating_sub(1) // `,` between pairs
}

// === Go `%q` for runes ===

/// Formats a character like Go's `fmt.Sprintf("%q", r)` for a rune (`strconv.QuoteRune`), used
/// in error texts: `'-'`, `' '`, `'\n'`, `'\''`, `'\x00'`, `'\u200b'`.
///
/// Go decides "printable" with Unicode category tables (letters, marks, numbers, punctuation,
/// symbols and ASCII space). Rust's standard library exposes no category tables, so this
/// recognises the non-printable classes explicitly: controls, every space/separator except
/// ASCII space, format characters (`Cf`), private-use code points and noncharacters. The only
/// divergence left is unassigned code points, which Go escapes and this prints as is.
pub fn go_quote_rune(c: char) -> String {
    let mut out = String::with_capacity(12);
    out.push('\'');
    match c {
        '\'' => out.push_str("\\'"),
        '\\' => out.push_str("\\\\"),
        '\u{07}' => out.push_str("\\a"),
        '\u{08}' => out.push_str("\\b"),
        '\u{0C}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{0B}' => out.push_str("\\v"),
        c if is_go_printable(c) => out.push(c),
        c if (c as u32) < 0x20 || c == '\u{7F}' => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if (c as u32) < 0x1_0000 => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
    out.push('\'');
    out
}

/// Approximation of Go's `strconv.IsPrint` without Unicode category tables (see
/// [`go_quote_rune`] for what is and is not covered).
fn is_go_printable(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    !(c.is_control() || c.is_whitespace() || is_format_char(c) || is_private_or_nonchar(c))
}

/// Unicode general category `Cf` (format characters), Unicode 15.
fn is_format_char(c: char) -> bool {
    matches!(c as u32,
        0x00AD
        | 0x0600..=0x0605
        | 0x061C
        | 0x06DD
        | 0x070F
        | 0x0890..=0x0891
        | 0x08E2
        | 0x180E
        | 0x200B..=0x200F
        | 0x202A..=0x202E
        | 0x2060..=0x2064
        | 0x2066..=0x206F
        | 0xFEFF
        | 0xFFF9..=0xFFFB
        | 0x110BD
        | 0x110CD
        | 0x13430..=0x1343F
        | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A
        | 0xE0001
        | 0xE0020..=0xE007F)
}

/// Private-use code points (`Co`) and noncharacters (unassigned, `Cn`).
fn is_private_or_nonchar(c: char) -> bool {
    let u = c as u32;
    matches!(u, 0xE000..=0xF8FF | 0xF_0000..=0xF_FFFD | 0x10_0000..=0x10_FFFD | 0xFDD0..=0xFDEF)
        || u & 0xFFFE == 0xFFFE
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Builds a label map from literal pairs.
    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn ok(input: &str) -> Labels {
        match parse(input) {
            Ok(l) => l,
            Err(e) => panic!("parse({input:?}) failed: {e}"),
        }
    }

    fn err(input: &str) -> String {
        match parse(input) {
            Ok(l) => panic!("parse({input:?}) succeeded: {l:?}"),
            Err(e) => e.to_string(),
        }
    }

    // --- the consequences table of docs/ingest.md §3.3, row by row ---

    #[test]
    fn bare_app_name() {
        assert_eq!(ok("app"), labels(&[("__name__", "app")]));
    }

    #[test]
    fn empty_braces() {
        assert_eq!(ok("app{}"), labels(&[("__name__", "app")]));
    }

    #[test]
    fn whitespace_is_trimmed_everywhere() {
        assert_eq!(
            ok(" my.app { env = prod } "),
            labels(&[("__name__", "my.app"), ("env", "prod")])
        );
    }

    #[test]
    fn values_may_contain_equals_braces_and_spaces() {
        assert_eq!(ok("app{a=x=y}")["a"], "x=y");
        assert_eq!(ok("app{a=x{y z}")["a"], "x{y z");
    }

    #[test]
    fn empty_value_is_kept() {
        assert_eq!(ok("app{a=}"), labels(&[("__name__", "app"), ("a", "")]));
    }

    #[test]
    fn later_duplicate_wins() {
        assert_eq!(
            ok("app{a=1,a=2}"),
            labels(&[("__name__", "app"), ("a", "2")])
        );
    }

    #[test]
    fn trailing_comma_is_fine() {
        assert_eq!(ok("app{a=1,}"), labels(&[("__name__", "app"), ("a", "1")]));
    }

    #[test]
    fn bare_token_before_closing_brace_is_dropped() {
        assert_eq!(ok("app{flag}"), labels(&[("__name__", "app")]));
        assert_eq!(
            ok("app{a=1,flag}"),
            labels(&[("__name__", "app"), ("a", "1")])
        );
        // Not even validated: `-` would be rejected in a real key.
        assert_eq!(
            ok("test.app{invalid-label-syntax}"),
            labels(&[("__name__", "test.app")])
        );
    }

    #[test]
    fn bare_token_before_pair_is_an_error() {
        assert_eq!(
            err("app{flag,a=1}"),
            "invalid label name: flag,a: character is not allowed: ','"
        );
    }

    #[test]
    fn double_comma_is_an_error() {
        assert_eq!(
            err("app{a=1,,b=2}"),
            "invalid label name: ,b: character is not allowed: ','"
        );
    }

    #[test]
    fn brace_ending_a_value_does_not_end_parsing() {
        assert_eq!(
            ok("app{a=1}b=2}"),
            labels(&[("__name__", "app"), ("a", "1"), ("b", "2")])
        );
    }

    #[test]
    fn unterminated_value_after_close_is_dropped() {
        assert_eq!(
            ok("app{a=1}c=2"),
            labels(&[("__name__", "app"), ("a", "1")])
        );
    }

    #[test]
    fn unterminated_value_is_dropped() {
        assert_eq!(ok("app{a=1"), labels(&[("__name__", "app")]));
    }

    #[test]
    fn second_brace_group_is_an_error() {
        assert_eq!(
            err("app{a=1}{b=2}"),
            "invalid label name: {b: character is not allowed: '{'"
        );
    }

    #[test]
    fn closing_brace_in_key_state_ends_parsing() {
        assert_eq!(ok("app{}junk=1}"), labels(&[("__name__", "app")]));
    }

    #[test]
    fn dash_in_label_name_is_an_error() {
        assert_eq!(
            err("app{a-b=1}"),
            "invalid label name: a-b: character is not allowed: '-'"
        );
    }

    #[test]
    fn app_name_allows_dash_slash_dot() {
        assert_eq!(ok("my-app/x.y{}"), labels(&[("__name__", "my-app/x.y")]));
    }

    #[test]
    fn name_label_inside_braces_overrides_app_name_unvalidated() {
        assert_eq!(ok("app{__name__=other}"), labels(&[("__name__", "other")]));
        assert_eq!(
            ok("app{__name__=not valid!}"),
            labels(&[("__name__", "not valid!")])
        );
    }

    #[test]
    fn missing_app_name_is_an_error() {
        assert_eq!(err(""), "service name is required");
        assert_eq!(err("{a=1}"), "service name is required");
        assert_eq!(err("   {a=1}"), "service name is required");
    }

    #[test]
    fn space_inside_app_name_is_an_error() {
        assert_eq!(
            err("app name{}"),
            "invalid service name: app name: character is not allowed: ' '"
        );
    }

    // --- further edges of the machine ---

    #[test]
    fn empty_key_is_an_error() {
        assert_eq!(err("app{=x}"), "label name is required");
        assert_eq!(err("app{ =x}"), "label name is required");
    }

    #[test]
    fn other_reserved_keys_parse() {
        assert_eq!(ok("app{__session_id__=abc}")["__session_id__"], "abc");
    }

    #[test]
    fn unicode_whitespace_is_trimmed_like_go() {
        // U+00A0 and U+3000 are Unicode White_Space, as in Go's strings.TrimSpace.
        assert_eq!(
            ok("\u{a0}app\u{3000}{k=\u{2003}v\u{85}}"),
            labels(&[("__name__", "app"), ("k", "v")])
        );
    }

    #[test]
    fn non_ascii_app_name_reports_the_rune() {
        assert_eq!(
            err("ap\u{e9}p"),
            "invalid service name: ap\u{e9}p: character is not allowed: '\u{e9}'"
        );
        assert_eq!(
            err("a\u{200b}b"),
            "invalid service name: a\u{200b}b: character is not allowed: '\\u200b'"
        );
    }

    #[test]
    fn closing_brace_inside_app_name_is_an_error() {
        assert_eq!(
            err("a}b{}"),
            "invalid service name: a}b: character is not allowed: '}'"
        );
    }

    #[test]
    fn reserved_name_via_validate_label_name() {
        assert_eq!(
            validate_label_name("__name__").map_err(|e| e.to_string()),
            Err("label name is reserved: __name__".to_owned())
        );
        assert_eq!(validate_label_name("__delta__"), Ok(()));
        assert_eq!(validate_label_name("otel.scope.name"), Ok(()));
        assert_eq!(validate_label_name("__meta_x"), Ok(()));
    }

    #[test]
    fn character_classes() {
        assert_eq!(validate_service_name("A-z_0.9/x"), Ok(()));
        assert_eq!(
            validate_service_name("a:b").map_err(|e| e.to_string()),
            Err("invalid service name: a:b: character is not allowed: ':'".to_owned())
        );
        assert_eq!(validate_label_name("A_z.09"), Ok(()));
        assert_eq!(
            validate_label_name("a/b").map_err(|e| e.to_string()),
            Err("invalid label name: a/b: character is not allowed: '/'".to_owned())
        );
        assert_eq!(
            validate_label_name(""),
            Err(LabelSetError::LabelNameRequired)
        );
        assert_eq!(
            validate_service_name(""),
            Err(LabelSetError::ServiceNameRequired)
        );
    }

    // --- Go %q ---

    #[test]
    fn go_quote_rune_matches_go() {
        let cases = [
            ('-', r"'-'"),
            (' ', r"' '"),
            ('\n', r"'\n'"),
            ('\t', r"'\t'"),
            ('\r', r"'\r'"),
            ('\u{07}', r"'\a'"),
            ('\u{08}', r"'\b'"),
            ('\u{0B}', r"'\v'"),
            ('\u{0C}', r"'\f'"),
            ('\'', r"'\''"),
            ('"', r#"'"'"#),
            ('\\', r"'\\'"),
            ('\0', r"'\x00'"),
            ('\u{1b}', r"'\x1b'"),
            ('\u{7f}', r"'\x7f'"),
            ('\u{80}', r"'\u0080'"),
            ('\u{a0}', r"'\u00a0'"),
            ('\u{ad}', r"'\u00ad'"),
            ('\u{200b}', r"'\u200b'"),
            ('\u{2028}', r"'\u2028'"),
            ('\u{feff}', r"'\ufeff'"),
            ('\u{e000}', r"'\ue000'"),
            ('\u{ffff}', r"'\uffff'"),
            ('\u{e0001}', r"'\U000e0001'"),
            ('\u{10fffd}', r"'\U0010fffd'"),
            ('é', "'é'"),
            ('\u{fffd}', "'\u{fffd}'"),
            ('日', "'日'"),
            ('😀', "'😀'"),
        ];
        for (c, want) in cases {
            assert_eq!(go_quote_rune(c), want, "rune U+{:04X}", c as u32);
        }
    }

    // --- canonical rendering ---

    #[test]
    fn render_examples() {
        assert_eq!(
            render_canonical(&labels(&[
                ("__name__", "svc"),
                ("service_name", "svc"),
                ("env", "prod"),
                ("app_name", "test.app"),
            ])),
            "svc{app_name=test.app,env=prod,service_name=svc}"
        );
        assert_eq!(render_canonical(&labels(&[("__name__", "app")])), "app{}");
        assert_eq!(render_canonical(&labels(&[("a", "1")])), "{a=1}");
        assert_eq!(render_canonical(&Labels::new()), "{}");
        // Byte-wise order: upper case sorts before lower case.
        assert_eq!(
            render_canonical(&labels(&[("__name__", "x"), ("b", "1"), ("B", "2")])),
            "x{B=2,b=1}"
        );
    }

    #[test]
    fn rendered_len_is_exact() {
        for l in [
            Labels::new(),
            labels(&[("__name__", "app")]),
            labels(&[("a", "1")]),
            labels(&[("__name__", "app"), ("a", "1"), ("bb", "")]),
        ] {
            assert_eq!(rendered_len(&l), render_canonical(&l).len(), "{l:?}");
        }
    }

    // --- properties ---

    fn label_name() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_.]{1,12}".prop_filter("reserved", |s| s != NAME_LABEL)
    }

    fn service_name() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_./-]{1,16}"
    }

    /// Values that survive trimming and contain neither `,` nor `}`.
    fn label_value() -> impl Strategy<Value = String> {
        "[^,}]{0,12}".prop_map(|s| s.trim().to_owned())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = parse(&s);
        }

        #[test]
        fn parse_never_panics_on_grammar_soup(s in "[a{}=, _.\\-\u{a0}é]{0,40}") {
            let _ = parse(&s);
        }

        #[test]
        fn render_then_parse_round_trips(
            app in service_name(),
            pairs in proptest::collection::btree_map(label_name(), label_value(), 0..8),
        ) {
            let mut l = pairs;
            l.insert(NAME_LABEL.to_owned(), app);
            let rendered = render_canonical(&l);
            prop_assert_eq!(parse(&rendered), Ok(l));
        }

        #[test]
        fn parsed_keys_are_valid_label_names(s in "[a-z{}=, _.\\-]{0,40}") {
            if let Ok(l) = parse(&s) {
                for key in l.keys().filter(|k| k.as_str() != NAME_LABEL) {
                    prop_assert_eq!(validate_label_name(key), Ok(()));
                }
            }
        }

        #[test]
        fn parsed_keys_are_valid_label_names_any(s in any::<String>()) {
            if let Ok(l) = parse(&s) {
                for key in l.keys().filter(|k| k.as_str() != NAME_LABEL) {
                    prop_assert_eq!(validate_label_name(key), Ok(()));
                }
            }
        }

        #[test]
        fn rendered_len_matches(
            pairs in proptest::collection::btree_map("[_a-z]{0,10}", ".{0,5}", 0..6),
        ) {
            prop_assert_eq!(rendered_len(&pairs), render_canonical(&pairs).len());
        }
    }
}
