//! A series' ring token, as Pyroscope computes it (`TokenFor`; docs/ring.md §2): FNV-1
//! (not FNV-1a), 32 bits, over the tenant ID followed by the series' label set rendered as
//! `LabelPairsString` (names sorted, values Go-quoted).

use crate::protocol::labelstring;

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
    let rendered = labelstring::render(labels);
    fnv1_32_from(fnv1_32(tenant.as_bytes()), rendered.as_bytes())
}

#[cfg(test)]
mod tests {
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
}
