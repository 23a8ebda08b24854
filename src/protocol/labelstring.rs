//! Pyroscope's rendering of a label set (`LabelPairsString`): `{name="value", …}` with names
//! raw, values quoted as Go's `strconv.Quote` quotes them, separated by `, `, in the order
//! given. It appears in Pyroscope's error messages (docs/distributor.md §6.1) and is the
//! string a series' ring token is hashed from (docs/ring.md §2).

use super::goquote;

/// Appends the rendering of `pairs` to `out`.
pub fn render_into<N: AsRef<[u8]>, V: AsRef<[u8]>>(out: &mut String, pairs: &[(N, V)]) {
    out.push('{');
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&String::from_utf8_lossy(name.as_ref()));
        out.push('=');
        goquote::quote_into(out, value.as_ref());
    }
    out.push('}');
}

/// The rendering of `pairs`.
pub fn render<N: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(N, V)]) -> String {
    let mut s = String::with_capacity(2 + pairs.len() * 24);
    render_into(&mut s, pairs);
    s
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn as_pyroscope_renders() {
        assert_eq!(render::<&str, &str>(&[]), "{}");
        assert_eq!(
            render(&[("__name__", "cpu"), ("service_name", "my \"app\"")]),
            r#"{__name__="cpu", service_name="my \"app\""}"#
        );
        assert_eq!(
            render(&[(b"k".as_slice(), [0xc5u8].as_slice())]),
            r#"{k="\xc5"}"#
        );
    }
}
