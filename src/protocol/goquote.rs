//! Go's `strconv.Quote`, byte for byte: Pyroscope renders label values with it in its
//! error messages (`{name="value", …}`, docs/distributor.md §4) and in the string it hashes
//! into a series' ring token, so both must match Go exactly.
//!
//! Rules: `"` and `\` are escaped with a backslash; `\a \b \f \n \r \t \v` by name; other
//! bytes below 0x20 and 0x7F as `\xNN`; invalid UTF-8 bytes as `\xNN`; printable runes (Go's
//! `unicode.IsPrint`: letters, marks, numbers, punctuation, symbols and the ASCII space) as
//! they are; other runes as `\uNNNN` or `\UNNNNNNNN`. Hex digits are lower case.

use unicode_general_category::{GeneralCategory as G, get_general_category};

/// `strconv.Quote(s)` for the bytes `s` (which need not be valid UTF-8).
pub fn quote(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    quote_into(&mut out, s);
    out
}

/// Appends `strconv.Quote(s)` to `out`.
pub fn quote_into(out: &mut String, s: &[u8]) {
    out.push('"');
    let mut rest = s;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                escape_str(out, valid);
                break;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                // `good` was just validated; the fallback is never taken.
                escape_str(out, std::str::from_utf8(good).unwrap_or_default());
                // Go decodes one invalid byte at a time as RuneError of width 1.
                let b = bad[0];
                push_hex_byte(out, b);
                rest = &bad[1..];
            }
        }
    }
    out.push('"');
}

fn escape_str(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            _ if is_print(c) => out.push(c),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => push_hex_byte(out, c as u8),
            c if (c as u32) < 0x10000 => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
}

fn push_hex_byte(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push_str("\\x");
    out.push(char::from(HEX[usize::from(b >> 4)]));
    out.push(char::from(HEX[usize::from(b & 0xf)]));
}

/// Go's `unicode.IsPrint`.
pub fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if (c as u32) < 0x80 {
        return c.is_ascii_graphic();
    }
    matches!(
        get_general_category(c),
        G::UppercaseLetter
            | G::LowercaseLetter
            | G::TitlecaseLetter
            | G::ModifierLetter
            | G::OtherLetter
            | G::NonspacingMark
            | G::SpacingMark
            | G::EnclosingMark
            | G::DecimalNumber
            | G::LetterNumber
            | G::OtherNumber
            | G::ConnectorPunctuation
            | G::DashPunctuation
            | G::OpenPunctuation
            | G::ClosePunctuation
            | G::InitialPunctuation
            | G::FinalPunctuation
            | G::OtherPunctuation
            | G::MathSymbol
            | G::CurrencySymbol
            | G::ModifierSymbol
            | G::OtherSymbol
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Outputs of Go's `strconv.Quote` (go1.19) for the same inputs.
    #[test]
    fn matches_go() {
        let cases: &[(&[u8], &str)] = &[
            (b"", r#""""#),
            (b"svc", r#""svc""#),
            (b"my \"quoted\" app", r#""my \"quoted\" app""#),
            (b"back\\slash", r#""back\\slash""#),
            (b"tab\tnl\ncr\r", r#""tab\tnl\ncr\r""#),
            (b"\x07\x08\x0b\x0c", r#""\a\b\v\f""#),
            (b"\x00\x01\x1f\x7f", r#""\x00\x01\x1f\x7f""#),
            (b"\xff\xfe", r#""\xff\xfe""#),
            ("é ü 日本".as_bytes(), "\"é ü 日本\""),
            ("\u{a0}".as_bytes(), r#""\u00a0""#),
            ("\u{200b}".as_bytes(), r#""\u200b""#),
            ("\u{feff}".as_bytes(), r#""\ufeff""#),
            ("\u{10ffff}".as_bytes(), r#""\U0010ffff""#),
            ("🦀".as_bytes(), "\"🦀\""),
            ("\u{fffd}".as_bytes(), "\"\u{fffd}\""),
            // A truncated 3-byte sequence: each byte on its own.
            (b"a\xe6\x97b", r#""a\xe6\x97b""#),
            // Unassigned, space and line separators, format characters.
            ("\u{378}".as_bytes(), r#""\u0378""#),
            ("\u{1680}".as_bytes(), r#""\u1680""#),
            ("\u{2028}".as_bytes(), r#""\u2028""#),
            ("\u{e0001}".as_bytes(), r#""\U000e0001""#),
            ("\u{ad}".as_bytes(), r#""\u00ad""#),
        ];
        for (input, want) in cases {
            assert_eq!(quote(input), *want, "{input:?}");
        }
    }
}
