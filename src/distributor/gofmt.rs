//! How Pyroscope's Go code prints sizes, times and ids in its answers, reproduced so a
//! rejection reads byte for byte as Pyroscope's (docs/distributor.md §6):
//! go-humanize's `Bytes` (SI) and `IBytes` (IEC), Go's `Time.String` of a millisecond
//! timestamp in UTC, and a random UUID like `uuid.NewString()`.

use std::fmt::Write as _;

use crate::util::calendar::civil_from_days;

const SI: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
const IEC: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/// go-humanize `Bytes`: base 1000, e.g. 4194304 → `4.2 MB`.
pub fn si_bytes(n: u64) -> String {
    humanate(n, 1000.0, &SI)
}

/// go-humanize `IBytes`: base 1024, e.g. 4194304 → `4.0 MiB`.
pub fn iec_bytes(n: u64) -> String {
    humanate(n, 1024.0, &IEC)
}

/// go-humanize's `humanateBytes`: below 10 the integer; otherwise the value in the largest
/// unit not above it, rounded half up to one decimal, printed with one decimal below 10
/// and none from 10 up.
fn humanate(n: u64, base: f64, sizes: &[&str; 7]) -> String {
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / base.ln()).floor();
    let suffix = sizes[(e as usize).min(sizes.len() - 1)];
    let val = ((n as f64) / base.powf(e) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {suffix}")
    } else {
        format!("{val:.0} {suffix}")
    }
}

/// Pyroscope's `FormatTimeMillis`: Go's `Time.String()` of a millisecond timestamp in UTC,
/// `2006-01-02 15:04:05.999 +0000 UTC` with trailing zeros of the fraction dropped.
pub fn time_millis(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if millis != 0 {
        let frac = format!("{millis:03}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push_str(" +0000 UTC");
    out
}

/// The year of a Unix timestamp in nanoseconds, in UTC.
pub fn year_of_nanos(nanos: i64) -> i64 {
    civil_from_days(nanos.div_euclid(1_000_000_000).div_euclid(86_400)).0
}

/// A random (version 4) UUID in its canonical lower-case form, as Pyroscope gives each
/// series of an `/ingest` request (it appears in the rejection message).
pub fn uuid_v4() -> String {
    let hi = crate::util::rand::next_u64();
    let lo = crate::util::rand::next_u64();
    let hi = (hi & !0xf000) | 0x4000; // version 4
    let lo = (lo & !(0b11 << 62)) | (0b10 << 62); // RFC 4122 variant
    let mut s = String::with_capacity(36);
    let _ = write!(
        s,
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_go_humanize_prints_them() {
        // Pyroscope's own messages: the 4 MiB profile limit, a 1 MiB limit, the 256 MiB
        // body limit, and the rate limit's units.
        assert_eq!(si_bytes(4_194_304), "4.2 MB");
        assert_eq!(si_bytes(1_048_576), "1.0 MB");
        assert_eq!(si_bytes(268_435_456), "268 MB");
        assert_eq!(si_bytes(9), "9 B");
        assert_eq!(si_bytes(999), "999 B");
        assert_eq!(si_bytes(1000), "1.0 kB");
        assert_eq!(iec_bytes(4_194_304), "4.0 MiB");
        assert_eq!(iec_bytes(524_288), "512 KiB");
        assert_eq!(iec_bytes(9), "9 B");
        assert_eq!(iec_bytes(1536), "1.5 KiB");
        assert_eq!(iec_bytes(10 * 1024 - 1), "10 KiB");
        assert_eq!(iec_bytes(20 * 1024 * 1024), "20 MiB");
    }

    #[test]
    fn times_as_go_prints_them() {
        // Pyroscope's test expectation: 2023-02-17 11:12:14 UTC.
        assert_eq!(
            time_millis(1_676_632_334_000),
            "2023-02-17 11:12:14 +0000 UTC"
        );
        assert_eq!(
            time_millis(1_699_534_782_373),
            "2023-11-09 12:59:42.373 +0000 UTC"
        );
        assert_eq!(
            time_millis(1_699_534_782_370),
            "2023-11-09 12:59:42.37 +0000 UTC"
        );
        assert_eq!(
            time_millis(1_699_534_782_300),
            "2023-11-09 12:59:42.3 +0000 UTC"
        );
        assert_eq!(time_millis(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(
            time_millis(951_782_400_000),
            "2000-02-29 00:00:00 +0000 UTC"
        );
        assert_eq!(year_of_nanos(15_000_000_000), 1970);
        assert_eq!(year_of_nanos(1_699_534_782_373_000_000), 2023);
    }

    #[test]
    fn uuids_are_version_4() {
        let a = uuid_v4();
        let b = uuid_v4();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
        assert!(matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'));
        assert!(a.bytes().all(|c| c == b'-' || c.is_ascii_hexdigit()));
    }
}
