//! Looking inside a profile without decoding it: does any sample carry a string label that
//! splits a series (docs/ring.md §2)? Ring mode asks this of every profile; nearly all
//! answer no, and those need neither the decoder's tables nor any allocation.
//!
//! The scan walks the wire format with the decoder's bounded reader (every length checked
//! against what remains, nothing sliced or allocated, no recursion driven by the input) and
//! reads only `Profile.sample` (2) → `Sample.label` (3) → `Label.key` (1) / `Label.str` (2),
//! then, when some label carries a string, `Profile.string_table` (6) for those keys' names.

use std::ops::Range;

use super::decode::DecodeError;

/// Distinct label keys remembered on the stack; a profile whose string labels use more
/// answers `true` (only three names are ignored, so more keys almost surely split, and a
/// `true` only costs the full decode that settles it).
const MAX_KEYS: usize = 16;

// Field numbers (perftools.profiles, docs/push.md §12.4).
const PROFILE_SAMPLE: u64 = 2;
const PROFILE_STRING_TABLE: u64 = 6;
const SAMPLE_LOCATION_ID: u64 = 1;
const SAMPLE_VALUE: u64 = 2;
const SAMPLE_LABEL: u64 = 3;
const LABEL_KEY: u64 = 1;
const LABEL_STR: u64 = 2;
const LABEL_NUM: u64 = 3;
const LABEL_NUM_UNIT: u64 = 4;

/// Whether some sample of the plain (uncompressed) profile `buf` carries a label with a
/// string value (`str` ≠ 0) whose key's name is not one of `ignore`, i.e. whether the full
/// decoder ([`super::decode`]) would find such a label.
///
/// `Ok(false)` is exact: no sample has such a label. `Ok(true)` is exact too, except that a
/// profile whose string labels use more than 16 distinct keys answers `true` without
/// looking at their names. A key outside the string table names the empty string (as
/// [`super::Profile::string`] falls back to). Size and count limits are not checked: the
/// scan allocates nothing.
///
/// # Errors
/// [`DecodeError`] when the parts it reads are not valid protobuf; the decoder would refuse
/// them too (it is stricter: fields the scan skips are not checked).
pub fn has_string_sample_labels(buf: &[u8], ignore: &[&[u8]]) -> Result<bool, DecodeError> {
    scan(buf, ignore).map_err(Bad::into_error)
}

fn scan(buf: &[u8], ignore: &[&[u8]]) -> Result<bool, Bad> {
    let mut keys = [0i64; MAX_KEYS];
    let mut n = 0usize;
    let mut r = Cursor::new(buf, 0);
    while !r.done() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (PROFILE_SAMPLE, 2) => {
                let mut s = r.message()?;
                while !s.done() {
                    let (field, wt) = s.key()?;
                    match (field, wt) {
                        (SAMPLE_LABEL, 2) => {
                            let (key, str) = label(s.message()?)?;
                            if str != 0 && !keys[..n].contains(&key) {
                                if n == MAX_KEYS {
                                    return Ok(true);
                                }
                                keys[n] = key;
                                n += 1;
                            }
                        }
                        (SAMPLE_LOCATION_ID | SAMPLE_VALUE, 0 | 2) => s.skip(field, wt)?,
                        (SAMPLE_LOCATION_ID..=SAMPLE_LABEL, _) => {
                            return Err(Bad::WireType(field, wt));
                        }
                        _ => s.skip(field, wt)?,
                    }
                }
            }
            (PROFILE_SAMPLE | PROFILE_STRING_TABLE, 0 | 1 | 3..) => {
                return Err(Bad::WireType(field, wt));
            }
            _ => r.skip(field, wt)?,
        }
    }
    let keys = &keys[..n];
    if keys.is_empty() {
        return Ok(false);
    }
    // The keys' names. The first pass read the whole message, so this one cannot fail.
    let mut resolved = 0usize;
    let mut index = 0i64;
    let mut r = Cursor::new(buf, 0);
    while !r.done() {
        let (field, wt) = r.key()?;
        if field != PROFILE_STRING_TABLE {
            r.skip(field, wt)?;
            continue;
        }
        let range = r.len_delimited()?;
        if keys.contains(&index) {
            let name = buf.get(range).unwrap_or_default();
            if !ignore.contains(&name) {
                return Ok(true);
            }
            resolved += 1;
        }
        index += 1;
    }
    // Keys outside the table (negative or too large) name the empty string.
    Ok(resolved < keys.len() && !ignore.contains(&&b""[..]))
}

/// A label's `key` and `str` (the last of each, as the decoder keeps).
fn label(mut r: Cursor<'_>) -> Result<(i64, i64), Bad> {
    let (mut key, mut str) = (0, 0);
    while !r.done() {
        let (field, wt) = r.key()?;
        match (field, wt) {
            (LABEL_KEY, 0) => key = r.varint()? as i64,
            (LABEL_STR, 0) => str = r.varint()? as i64,
            (LABEL_NUM | LABEL_NUM_UNIT, 0) => r.skip(field, wt)?,
            (LABEL_KEY..=LABEL_NUM_UNIT, _) => return Err(Bad::WireType(field, wt)),
            _ => r.skip(field, wt)?,
        }
    }
    Ok((key, str))
}

/// What went wrong, made into a [`DecodeError`] only at the end (the scan's inner loop
/// passes around a word, not the decoder's error).
#[derive(Debug, Clone, Copy)]
enum Bad {
    Truncated(usize),
    Varint(usize),
    WireType(u64, u8),
    FieldZero(usize),
}

impl Bad {
    fn into_error(self) -> DecodeError {
        const WHAT: &str = "Profile";
        match self {
            Bad::Truncated(offset) => DecodeError::Truncated { what: WHAT, offset },
            Bad::Varint(offset) => DecodeError::Varint { what: WHAT, offset },
            Bad::WireType(field, wire_type) => DecodeError::WireType {
                what: WHAT,
                field,
                wire_type,
            },
            Bad::FieldZero(offset) => DecodeError::FieldZero { offset },
        }
    }
}

/// A cursor over one message, `base` its offset in the whole input (for errors): the
/// decoder's reader cut down to what the scan needs, every step inlined.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8], base: usize) -> Self {
        Self { buf, pos: 0, base }
    }

    #[inline(always)]
    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    #[inline(always)]
    fn varint(&mut self) -> Result<u64, Bad> {
        if let Some(&b) = self.buf.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        self.varint_slow()
    }

    #[inline(never)]
    fn varint_slow(&mut self) -> Result<u64, Bad> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(Bad::Truncated(self.base + self.pos));
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(Bad::Varint(self.base + self.pos - 1));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(Bad::Varint(self.base + self.pos))
    }

    /// The next field's number and wire type (the caller checked [`Self::done`]).
    #[inline(always)]
    fn key(&mut self) -> Result<(u64, u8), Bad> {
        let at = self.pos;
        let k = self.varint()?;
        let field = k >> 3;
        if field == 0 {
            return Err(Bad::FieldZero(self.base + at));
        }
        Ok((field, (k & 7) as u8))
    }

    #[inline(always)]
    fn len_delimited(&mut self) -> Result<Range<usize>, Bad> {
        let len = self.varint()?;
        let left = (self.buf.len() - self.pos) as u64;
        if len > left {
            return Err(Bad::Truncated(self.base + self.pos));
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(start..self.pos)
    }

    #[inline(always)]
    fn message(&mut self) -> Result<Cursor<'a>, Bad> {
        let r = self.len_delimited()?;
        let base = self.base + r.start;
        Ok(Cursor::new(self.buf.get(r).unwrap_or_default(), base))
    }

    /// Skips a field of wire type `wt` (groups are not used by pprof: an error, as in the
    /// decoder).
    #[inline(always)]
    fn skip(&mut self, field: u64, wt: u8) -> Result<(), Bad> {
        let n = match wt {
            0 => return self.varint().map(drop),
            2 => return self.len_delimited().map(drop),
            1 => 8,
            5 => 4,
            _ => return Err(Bad::WireType(field, wt)),
        };
        if self.buf.len() - self.pos < n {
            return Err(Bad::Truncated(self.base + self.pos));
        }
        self.pos += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;
    use prost::Message as _;
    use pyrogate_testdata::pprof::{Kind, Spec};
    use pyrogate_testdata::wire;

    use super::super::{Limits, NON_SPLITTING_LABELS, decode};
    use super::*;

    const LIMITS: Limits = Limits {
        max_size: 16 << 20,
        max_strings: 1 << 20,
        max_samples: 1 << 20,
    };

    /// The answer the full decoder gives: `None` when it refuses the profile.
    fn truth(buf: &[u8], ignore: &[&[u8]]) -> Option<bool> {
        let p = decode(Bytes::copy_from_slice(buf), LIMITS).ok()?;
        Some(p.samples.iter().any(|s| {
            p.sample_labels(s)
                .iter()
                .any(|l| l.str != 0 && !ignore.contains(&p.string(l.key).unwrap_or_default()))
        }))
    }

    /// The scan agrees with the decoder wherever the decoder accepts the profile.
    fn agrees(buf: &[u8], ignore: &[&[u8]]) -> Result<(), String> {
        let scan = has_string_sample_labels(buf, ignore);
        match truth(buf, ignore) {
            Some(t) if scan != Ok(t) => Err(format!("scan {scan:?}, decoder {t}")),
            _ => Ok(()),
        }
    }

    fn label(key: i64, str: i64) -> wire::Label {
        wire::Label {
            key,
            str,
            num: 0,
            num_unit: 0,
        }
    }

    #[test]
    fn generated_profiles() {
        for kind in Kind::ALL {
            for (string, numeric) in [(false, false), (false, true), (true, false), (true, true)] {
                let plain = Spec::new(3, kind)
                    .labels(string, numeric)
                    .samples(50)
                    .plain();
                assert_eq!(
                    has_string_sample_labels(&plain, &NON_SPLITTING_LABELS),
                    Ok(string),
                    "{kind:?} string {string} numeric {numeric}"
                );
                agrees(&plain, &NON_SPLITTING_LABELS).expect("agrees");
            }
        }
    }

    #[test]
    fn ignored_names_missing_keys_and_many_keys() {
        let mut p = Spec::new(4, Kind::Cpu)
            .labels(false, true)
            .samples(10)
            .profile();
        let first = p.string_table.len() as i64;
        for name in ["trace_id", "span_id", "profile_id", "v", "thread_name"] {
            p.string_table.push(name.into());
        }
        let v = first + 3;
        let enc = |p: &wire::Profile| p.encode_to_vec();
        // Only ignored keys: no split.
        p.sample[0].label = vec![label(first, v), label(first + 1, v)];
        p.sample[1].label = vec![label(first + 2, v)];
        assert_eq!(
            has_string_sample_labels(&enc(&p), &NON_SPLITTING_LABELS),
            Ok(false)
        );
        assert_eq!(has_string_sample_labels(&enc(&p), &[]), Ok(true));
        // One splitting key among them.
        p.sample[2].label = vec![label(first + 4, v)];
        assert_eq!(
            has_string_sample_labels(&enc(&p), &NON_SPLITTING_LABELS),
            Ok(true)
        );
        // A key outside the table (the empty name) splits, unless "" is ignored.
        p.sample[2].label = vec![label(first + 100, v)];
        assert_eq!(
            has_string_sample_labels(&enc(&p), &NON_SPLITTING_LABELS),
            Ok(true)
        );
        let and_empty: [&[u8]; 4] = [b"trace_id", b"span_id", b"profile_id", b""];
        assert_eq!(has_string_sample_labels(&enc(&p), &and_empty), Ok(false));
        agrees(&enc(&p), &and_empty).expect("agrees");
        p.sample[2].label = vec![label(-1, v)];
        assert_eq!(
            has_string_sample_labels(&enc(&p), &NON_SPLITTING_LABELS),
            Ok(true)
        );
        // More distinct keys than remembered: true, without reading names.
        p.sample[2].label = (0..MAX_KEYS as i64 + 1)
            .map(|k| label(100 + k, v))
            .collect();
        assert_eq!(has_string_sample_labels(&enc(&p), &[]), Ok(true));
        // Strings before samples (any field order) are found too.
        p.sample[2].label = vec![label(first + 4, v)];
        let mut reordered = Vec::new();
        let strings = wire::Profile {
            string_table: p.string_table.clone(),
            ..Default::default()
        };
        reordered.extend(strings.encode_to_vec());
        reordered.extend(
            wire::Profile {
                string_table: Vec::new(),
                ..p.clone()
            }
            .encode_to_vec(),
        );
        assert_eq!(
            has_string_sample_labels(&reordered, &NON_SPLITTING_LABELS),
            Ok(true)
        );
        agrees(&reordered, &NON_SPLITTING_LABELS).expect("agrees");
    }

    #[test]
    fn malformed_input_is_an_error() {
        // `sample` as a varint; a label message running past the sample; truncated varint.
        for b in [
            &[0x10, 0x01][..],
            &[0x12, 0x02, 0x1a, 0x05],
            &[0x12, 0x03, 0x1a, 0x01, 0x10],
            &[0x12, 0x02, 0x1a, 0x00, 0x32],
        ] {
            assert!(has_string_sample_labels(b, &[]).is_err(), "{b:?}");
            assert!(truth(b, &[]).is_none(), "{b:?}: the decoder refuses it too");
        }
        assert_eq!(has_string_sample_labels(&[], &[]), Ok(false));
    }

    proptest! {
        /// Generated profiles of every shape, with labels renamed to ignored names or
        /// pointed outside the table: the scan answers what the decoder finds.
        #[test]
        fn matches_the_decoder(
            seed in any::<u64>(),
            kind in prop::sample::select(Kind::ALL.to_vec()),
            samples in 0usize..120,
            string in any::<bool>(),
            numeric in any::<bool>(),
            rename in prop::sample::select(vec!["", "trace_id", "span_id", "profile_id", "x"]),
            stray in any::<bool>(),
        ) {
            let mut p = Spec::new(seed, kind).labels(string, numeric).samples(samples).profile();
            if !rename.is_empty() {
                // The thread-name key (the first string label's key) renamed.
                if let Some(k) = p.sample.iter().flat_map(|s| &s.label).find(|l| l.str != 0).map(|l| l.key) {
                    p.string_table[k as usize] = rename.into();
                }
            }
            if stray && let Some(s) = p.sample.first_mut() {
                s.label.push(label(1 << 20, 1));
            }
            let plain = p.encode_to_vec();
            prop_assert_eq!(agrees(&plain, &NON_SPLITTING_LABELS), Ok(()));
            prop_assert_eq!(agrees(&plain, &[]), Ok(()));
            prop_assert!(truth(&plain, &[]).is_some(), "generated profiles decode");
        }

        /// Any bytes: an answer or an error, never a panic; the decoder's answer when it
        /// accepts them.
        #[test]
        fn arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..400)) {
            prop_assert_eq!(agrees(&body, &NON_SPLITTING_LABELS), Ok(()));
        }

        /// Small well-formed messages built from samples and strings in any order.
        #[test]
        fn arbitrary_samples_and_strings(
            parts in prop::collection::vec(
                prop_oneof![
                    prop::collection::vec((0i64..8, 0i64..3), 0..4).prop_map(Err),
                    prop::sample::select(vec!["", "trace_id", "span_id", "a", "b"]).prop_map(Ok),
                ],
                0..12,
            )
        ) {
            let mut buf = Vec::new();
            for part in parts {
                match part {
                    Err(labels) => {
                        let s = wire::Profile {
                            sample: vec![wire::Sample {
                                label: labels.into_iter().map(|(k, v)| label(k, v)).collect(),
                                ..Default::default()
                            }],
                            ..Default::default()
                        };
                        buf.extend(s.encode_to_vec());
                    }
                    Ok(name) => buf.extend(
                        wire::Profile {
                            string_table: vec![name.into()],
                            ..Default::default()
                        }
                        .encode_to_vec(),
                    ),
                }
            }
            prop_assert!(truth(&buf, &[]).is_some());
            prop_assert_eq!(agrees(&buf, &NON_SPLITTING_LABELS), Ok(()));
            prop_assert_eq!(agrees(&buf, &[]), Ok(()));
        }
    }
}
