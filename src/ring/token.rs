//! A series' ring token, as Pyroscope computes it (`TokenFor`; docs/ring.md §2): FNV-1
//! (not FNV-1a), 32 bits, over the tenant ID followed by the series' label set rendered as
//! `LabelPairsString` (names sorted, values Go-quoted).

use crate::protocol::goquote;

const OFFSET_BASIS: u32 = 0x811c_9dc5;
const PRIME: u32 = 16_777_619;

/// Go's `hash/fnv.New32` (FNV-1: multiply, then xor) over `bytes`, continuing from `h`.
#[inline]
pub fn fnv1_32_from(mut h: u32, bytes: &[u8]) -> u32 {
    for b in bytes {
        h = h.wrapping_mul(PRIME) ^ u32::from(*b);
    }
    h
}

/// FNV-1 32 of `bytes`.
pub fn fnv1_32(bytes: &[u8]) -> u32 {
    fnv1_32_from(OFFSET_BASIS, bytes)
}

/// The token of a series of `tenant` whose labels, sorted by name, are `labels`.
pub fn token<N: AsRef<[u8]>, V: AsRef<[u8]>>(tenant: &str, labels: &[(N, V)]) -> u32 {
    token_of(tenant, labels.iter().map(|(n, v)| (n.as_ref(), v.as_ref())))
}

/// [`token`] over `(name, value)` pairs, sorted by name.
///
/// The hash runs over the bytes `labelstring::render` would produce, without building
/// them: names as they are (lossily converted when not UTF-8, as the rendering does), `=`,
/// and values quoted by Go's rules; a value of printable ASCII without `"` or `\` (nearly
/// every value) is its own quoted form between quotes, and only other values are quoted
/// into a temporary string.
pub fn token_of<'a>(tenant: &str, labels: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> u32 {
    let mut h = fnv1_32_from(fnv1_32(tenant.as_bytes()), b"{");
    for (i, (name, value)) in labels.enumerate() {
        h = label(h, i == 0, name, value);
    }
    fnv1_32_from(h, b"}")
}

/// The hash continued over one label's rendering (`, ` first unless it is the first).
#[inline]
fn label(mut h: u32, first: bool, name: &[u8], value: &[u8]) -> u32 {
    if !first {
        h = fnv1_32_from(h, b", ");
    }
    h = if name.is_ascii() {
        fnv1_32_from(h, name)
    } else {
        fnv1_32_from(h, String::from_utf8_lossy(name).as_bytes())
    };
    if value
        .iter()
        .all(|b| (b' '..=b'~').contains(b) && *b != b'"' && *b != b'\\')
    {
        h = fnv1_32_from(h, b"=\"");
        h = fnv1_32_from(h, value);
        fnv1_32_from(h, b"\"")
    } else {
        h = fnv1_32_from(h, b"=");
        fnv1_32_from(h, goquote::quote(value).as_bytes())
    }
}

/// Tokens of consecutive series of one tenant, each hash resuming after the labels the
/// series shares with the previous one (FNV is a running state, and the parts of a split
/// profile share their series' labels up to the first one the split adds).
pub struct Hasher {
    /// `states[i]`: the hash after the tenant, `{` and the previous series' first `i` labels.
    states: Vec<u32>,
}

impl Hasher {
    pub fn new(tenant: &str) -> Self {
        Self {
            states: vec![fnv1_32_from(fnv1_32(tenant.as_bytes()), b"{")],
        }
    }

    /// [`token_of`] `labels`, whose first `shared` labels are those of the previous call's.
    pub fn token<'a>(
        &mut self,
        shared: usize,
        labels: impl Iterator<Item = (&'a [u8], &'a [u8])>,
    ) -> u32 {
        let shared = shared.min(self.states.len() - 1);
        self.states.truncate(shared + 1);
        let mut h = self.states[shared];
        for (i, (name, value)) in labels.enumerate().skip(shared) {
            h = label(h, i == 0, name, value);
            self.states.push(h);
        }
        fnv1_32_from(h, b"}")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Golden vectors: FNV-1 32 of Pyroscope's token input.
    #[test]
    fn golden_vectors() {
        assert_eq!(fnv1_32(b""), 0x811c_9dc5);
        assert_eq!(fnv1_32(b"a"), 0x050c_5d7e, "FNV-1, not FNV-1a (0xe40c292c)");
        let svc = [("__name__", "process_cpu"), ("service_name", "svc")];
        assert_eq!(token("anonymous", &svc), 0x4439_2ba6);
        assert_eq!(token("anonymous", &svc), 1_144_597_414);
        assert_eq!(token("", &svc), 0x0941_5323);
        assert_eq!(
            token(
                "tenant-a",
                &[
                    ("__name__", "memory"),
                    ("service_name", "my \"quoted\" app")
                ]
            ),
            3_435_395_357
        );
        let python = [
            ("__name__", "process_cpu"),
            ("env", "feas"),
            ("otel.scope.name", "com.grafana.pyroscope/python"),
            ("otel.scope.version", "1.4.0"),
            ("process.runtime.name", "cpython"),
            ("process.runtime.version", "3.11.7"),
            ("region", "local"),
            ("service_name", "feas.python.app"),
        ];
        assert_eq!(token("anonymous", &python), 0x87a7_e1e5);
        assert_eq!(token("anonymous", &python), 2_275_926_501);
    }

    proptest! {
        /// The streamed hash is the hash of Pyroscope's rendering, for any names and values
        /// (invalid UTF-8, escapes, control characters, non-ASCII runes included).
        #[test]
        fn streams_the_rendering(
            tenant in "\\PC{0,8}",
            labels in prop::collection::vec(
                (
                    prop::collection::vec(any::<u8>(), 0..8),
                    prop_oneof![
                        "[ -~]{0,12}".prop_map(String::into_bytes),
                        "\\PC{0,6}".prop_map(String::into_bytes),
                        prop::collection::vec(any::<u8>(), 0..8),
                    ],
                ),
                0..5,
            ),
        ) {
            let rendered = crate::protocol::labelstring::render(&labels);
            let want = fnv1_32_from(fnv1_32(tenant.as_bytes()), rendered.as_bytes());
            prop_assert_eq!(token(&tenant, &labels), want);
        }

        /// Resuming after shared labels gives every series its own token.
        #[test]
        fn resumed_hashes_are_the_tokens(
            tenant in "[a-z]{0,4}",
            base in proptest::collection::vec(("[a-z]{1,4}", "\\PC{0,5}"), 0..6),
            series in proptest::collection::vec(
                (0usize..7, proptest::collection::vec(("[a-z]{1,4}", "[ -~]{0,5}"), 0..3)),
                1..6,
            ),
        ) {
            let mut h = Hasher::new(&tenant);
            let mut prev: Vec<(String, String)> = Vec::new();
            for (keep, extra) in series {
                let mut labels: Vec<(String, String)> =
                    base.iter().take(keep).cloned().collect();
                labels.extend(extra);
                let shared = prev.iter().zip(&labels).take_while(|(a, b)| a == b).count();
                let got = h.token(
                    shared,
                    labels.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())),
                );
                prop_assert_eq!(got, token(&tenant, &labels));
                prev = labels;
            }
        }
    }
}
