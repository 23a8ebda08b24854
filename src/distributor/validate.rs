//! `ValidateProfile`: Pyroscope's checks of one decoded profile, in its order, with its
//! messages (docs/distributor.md §4.2). Two of them repair instead of refusing: stacks
//! deeper than the limit lose their leaf-side frames, and strings longer than the symbol
//! limit keep their last bytes. Both happen here so that later checks see what Pyroscope
//! sees, and a normalised profile carries them.

use crate::config::distributor::Limits;
use crate::protocol::pprof::Profile;

use super::gofmt;
use super::labels::{Pair, pairs_string};
use super::reason::{Invalid, Reason};

/// What validation changed in the profile (nothing is changed when it fails).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Repairs {
    /// A zero or negative timestamp was set to now.
    pub time_set: bool,
    /// Stacks cut to the depth limit.
    pub truncated_stacks: usize,
    /// Strings cut to the symbol limit.
    pub truncated_strings: usize,
}

impl Repairs {
    pub fn any(&self) -> bool {
        self.time_set || self.truncated_stacks > 0 || self.truncated_strings > 0
    }
}

/// Validates `p`, whose series labels are `labels` (sorted, `service_name` set) and whose
/// re-encoded size is `size`, at `now_ms` (Unix milliseconds).
pub fn validate_profile(
    limits: &Limits,
    p: &mut Profile,
    labels: &[Pair],
    size: usize,
    now_ms: i64,
) -> Result<Repairs, Invalid> {
    let malformed = |m: &str| Invalid::new(Reason::MalformedProfile, m);
    let mut repairs = Repairs::default();
    if p.sample_type.is_empty() {
        return Err(malformed("empty profile"));
    }
    if p.time_nanos > 0 {
        check_window(limits, p.time_nanos, labels, now_ms)?;
    } else {
        p.time_nanos = now_ms.saturating_mul(1_000_000);
        repairs.time_set = true;
    }
    let max_size = limits.max_profile_size_bytes;
    if max_size != 0 && size as u64 > max_size {
        return Err(Invalid::new(
            Reason::ProfileSizeLimit,
            format!(
                "the profile with labels '{}' exceeds the size limit (max_profile_size_byte, actual: {size}, limit: {max_size})",
                pairs_string(labels)
            ),
        ));
    }
    let max_samples = limits.max_profile_stacktrace_samples;
    if max_samples != 0 && p.samples.len() > max_samples {
        return Err(Invalid::new(
            Reason::SamplesLimit,
            format!(
                "the profile with labels '{}' exceeds the samples count limit (max_profile_stacktrace_samples, actual: {}, limit: {max_samples})",
                pairs_string(labels),
                p.samples.len()
            ),
        ));
    }
    let depth = limits.max_profile_stacktrace_depth;
    let max_labels = limits.max_profile_stacktrace_sample_labels;
    for s in &mut p.samples {
        let len = s.locations.len();
        if depth != 0 && len > depth {
            // Location 0 is the leaf: the root-most `depth` frames stay.
            s.locations.start = s.locations.end - depth as u32;
            repairs.truncated_stacks += 1;
        }
        let n = s.labels.len();
        if max_labels != 0 && n > max_labels {
            return Err(Invalid::new(
                Reason::SampleLabelsLimit,
                format!(
                    "the profile with labels '{}' exceeds the sample labels limit (max_profile_stacktrace_sample_labels, actual: {n}, limit: {max_labels})",
                    pairs_string(labels)
                ),
            ));
        }
    }
    let max_symbol = limits.max_profile_symbol_value_length;
    if max_symbol > 0 {
        for r in &mut p.strings {
            if r.len() > max_symbol {
                let mut start = r.end as usize - max_symbol;
                while start < r.end as usize && !is_rune_start(p.buf[start]) {
                    start += 1;
                }
                r.start = start as u32;
                repairs.truncated_strings += 1;
            }
        }
    }
    if p.locations.iter().any(|l| l.id == 0) {
        return Err(malformed("location id is 0"));
    }
    if p.functions.iter().any(|f| f.id == 0) {
        return Err(malformed("function id is 0"));
    }
    let types = p.sample_type.len();
    if p.samples.iter().any(|s| s.values.len() != types) {
        return Err(malformed("sample value length mismatch"));
    }
    check_string_indices(p)?;
    for vt in &p.sample_type {
        if p.string(vt.r#type).is_some_and(|s| s.contains(&b'-')) {
            return Err(malformed("sample type contains -"));
        }
    }
    for i in 0..p.strings.len() {
        let s = p.string(i as i64).unwrap_or_default();
        if std::str::from_utf8(s).is_err() {
            return Err(malformed(&format!("invalid utf8 string hex: {}", hex(s))));
        }
    }
    Ok(repairs)
}

/// The ingestion window: strictly after now − `reject_older_than` and strictly before
/// now + `reject_newer_than`, compared in milliseconds; a bound set to 0 is off.
fn check_window(limits: &Limits, nanos: i64, labels: &[Pair], now_ms: i64) -> Result<(), Invalid> {
    let t = nanos / 1_000_000;
    let older = limits.reject_older_than.as_millis() as i64;
    let newer = limits.reject_newer_than.as_millis() as i64;
    let from = (older != 0).then(|| now_ms - older);
    let to = (newer != 0).then(|| now_ms + newer);
    if from.is_none_or(|f| t > f) && to.is_none_or(|u| t < u) {
        return Ok(());
    }
    let window = match (from, to) {
        (Some(f), Some(u)) => format!(
            "the ingestion window starts at {} and ends at {}",
            gofmt::time_millis(f),
            gofmt::time_millis(u)
        ),
        (Some(f), None) => format!("the ingestion window starts at {}", gofmt::time_millis(f)),
        (None, Some(u)) => format!("the ingestion window ends at {}", gofmt::time_millis(u)),
        (None, None) => unreachable!("no bound cannot be violated"),
    };
    Err(Invalid::new(
        Reason::NotInIngestionWindow,
        format!(
            "profile with labels '{}' is outside of ingestion window (profile timestamp: {}, {window})",
            pairs_string(labels),
            gofmt::time_millis(t)
        ),
    ))
}

/// `validateStringTableAccess`: string 0 is "", and the string indices Pyroscope reads are
/// in range (negative ones and the ones it never reads are not checked).
fn check_string_indices(p: &Profile) -> Result<(), Invalid> {
    let malformed = |m: &str| Err(Invalid::new(Reason::MalformedProfile, m));
    let n = p.strings.len() as i64;
    if n == 0 || p.string(0) != Some(&[][..]) {
        return malformed("string 0 should be empty string");
    }
    if p.sample_type.iter().any(|vt| vt.r#type >= n) {
        return malformed("sample type type string index out of range");
    }
    if p.labels.iter().any(|l| l.str >= n || l.key >= n) {
        return malformed("sample label string index out of range");
    }
    for f in &p.functions {
        if f.name >= n {
            return malformed("function name string index out of range");
        }
        if f.system_name >= n {
            return malformed("function system name index string out of range");
        }
        if f.filename >= n {
            return malformed("function file name string index out of range");
        }
    }
    for m in &p.mappings {
        if m.filename >= n {
            return malformed("mapping file name string index out of range");
        }
        if m.build_id >= n {
            return malformed("mapping build id string index out of range");
        }
    }
    Ok(())
}

fn is_rune_start(b: u8) -> bool {
    b & 0xc0 != 0x80
}

fn hex(s: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len() * 2);
    for b in s {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use pyrogate_testdata::invalid::{self, Break, INVALID_UTF8};

    use super::*;
    use crate::distributor::reason::Reason;
    use crate::protocol::pprof::{self, decode};

    /// 2023-11-09 12:59:42.373 UTC, in milliseconds.
    const NOW_MS: i64 = 1_699_534_782_373;

    fn labels() -> Vec<Pair> {
        vec![
            (b"__name__".to_vec(), b"process_cpu".to_vec()),
            (b"service_name".to_vec(), b"svc".to_vec()),
        ]
    }

    fn run(limits: &Limits, bytes: Vec<u8>) -> Result<(Repairs, Profile), String> {
        let mut p = decode(Bytes::from(bytes), pprof::Limits::default()).expect("decodes");
        let size = pprof::encoded_len(&p);
        validate_profile(limits, &mut p, &labels(), size, NOW_MS)
            .map(|r| (r, p))
            .map_err(|e| e.message)
    }

    /// Every break is refused, with its reason; the ones whose message depends on a clock
    /// or the labels are checked word for word here (the others are in the integration
    /// table of tests/distributor.rs, over HTTP).
    #[test]
    fn every_break_is_refused_with_its_reason() {
        let limits = Limits {
            max_profile_stacktrace_samples: 30,
            max_profile_stacktrace_sample_labels: 5,
            ..Limits::default()
        };
        let now_nanos = NOW_MS * 1_000_000;
        for b in invalid::all(31, 6) {
            let mut p = decode(
                Bytes::from(invalid::profile(b, 7, now_nanos)),
                pprof::Limits::default(),
            )
            .expect("decodes");
            let size = pprof::encoded_len(&p);
            let got =
                validate_profile(&limits, &mut p, &labels(), size, NOW_MS).expect_err("refused");
            let want = match b {
                Break::TooOld | Break::TooNew => Reason::NotInIngestionWindow,
                Break::Samples(_) => Reason::SamplesLimit,
                Break::SampleLabels(_) => Reason::SampleLabelsLimit,
                _ => Reason::MalformedProfile,
            };
            assert_eq!(got.reason, want, "{b:?}: {}", got.message);
        }
        let l = "{__name__=\"process_cpu\", service_name=\"svc\"}";
        let window = "the ingestion window starts at 2023-11-09 11:59:42.373 +0000 UTC and ends at 2023-11-09 13:09:42.373 +0000 UTC";
        assert_eq!(
            run(&limits, invalid::profile(Break::TooOld, 7, now_nanos)).err(),
            Some(format!(
                "profile with labels '{l}' is outside of ingestion window (profile timestamp: 2023-11-09 10:59:42.373 +0000 UTC, {window})"
            ))
        );
        assert_eq!(
            run(&limits, invalid::profile(Break::TooNew, 7, now_nanos)).err(),
            Some(format!(
                "profile with labels '{l}' is outside of ingestion window (profile timestamp: 2023-11-09 13:19:42.373 +0000 UTC, {window})"
            ))
        );
        assert_eq!(INVALID_UTF8, [0x66, 0xc5, 0x6f, 0xff]);
        assert_eq!(
            run(&limits, invalid::profile(Break::InvalidUtf8, 7, now_nanos)).err(),
            Some("invalid utf8 string hex: 66c56fff".to_string())
        );
        // The unbroken profile passes.
        assert!(
            run(
                &limits,
                prost::Message::encode_to_vec(&invalid::base(7, now_nanos))
            )
            .is_ok()
        );
    }

    #[test]
    fn size_limit_and_one_sided_windows() {
        let now_nanos = NOW_MS * 1_000_000;
        let bytes = prost::Message::encode_to_vec(&invalid::base(7, now_nanos));
        let size = bytes.len();
        let tight = Limits {
            max_profile_size_bytes: size as u64 - 1,
            ..Limits::default()
        };
        assert_eq!(
            run(&tight, bytes.clone()).err(),
            Some(format!(
                "the profile with labels '{{__name__=\"process_cpu\", service_name=\"svc\"}}' exceeds the size limit (max_profile_size_byte, actual: {size}, limit: {})",
                size - 1
            ))
        );
        let old = invalid::profile(Break::TooOld, 7, now_nanos);
        let only_from = Limits {
            reject_newer_than: std::time::Duration::ZERO,
            ..Limits::default()
        };
        assert!(
            run(&only_from, old.clone())
                .unwrap_err()
                .ends_with(", the ingestion window starts at 2023-11-09 11:59:42.373 +0000 UTC)")
        );
        let only_to = Limits {
            reject_older_than: std::time::Duration::ZERO,
            ..Limits::default()
        };
        assert!(run(&only_to, old).is_ok());
        let new = invalid::profile(Break::TooNew, 7, now_nanos);
        assert!(
            run(&only_to, new)
                .unwrap_err()
                .ends_with(", the ingestion window ends at 2023-11-09 13:09:42.373 +0000 UTC)")
        );
    }

    #[test]
    fn repairs_truncate_stacks_and_symbols_and_set_the_time() {
        let limits = Limits {
            max_profile_stacktrace_depth: 2,
            max_profile_symbol_value_length: 5,
            ..Limits::default()
        };
        let mut base = invalid::base(7, 0);
        base.string_table.push("abcdé".into()); // 6 bytes: 'é' is 2
        let (r, p) = run(&limits, prost::Message::encode_to_vec(&base)).expect("valid");
        assert!(r.time_set);
        assert_eq!(p.time_nanos, NOW_MS * 1_000_000);
        assert_eq!(
            r.truncated_stacks,
            base.sample
                .iter()
                .filter(|s| s.location_id.len() > 2)
                .count()
        );
        for (s, orig) in p.samples.iter().zip(&base.sample) {
            let kept = p.sample_locations(s);
            // The root side (the end) stays.
            assert_eq!(
                kept,
                &orig.location_id[orig.location_id.len().saturating_sub(2)..]
            );
        }
        // At most 5 trailing bytes, starting on a character: "bcdé" (5 bytes).
        let last = p.string(p.strings.len() as i64 - 1).expect("string");
        assert_eq!(last, "bcdé".as_bytes());
        assert!(r.truncated_strings >= 1);
    }
}
