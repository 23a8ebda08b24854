//! Which layout of the OTLP profiles messages a request uses, read from its protobuf bytes
//! (docs/otlp.md §4).
//!
//! The profiles signal is still in development and its messages changed incompatibly twice
//! in the releases senders use today (checked against the descriptors generated into the
//! `opentelemetry-proto` Python packages 1.39.1 = proto v1.7.0, 1.42.1 = v1.9.0 and
//! 1.43.0 = v1.10.0):
//!
//! | `Sample` field | v1.7.0 | v1.9.0 | v1.10.0 |
//! |---|---|---|---|
//! | 1 | `locations_start_index` varint | `stack_index` varint | `stack_index` varint |
//! | 2 | `locations_length` varint | `values` packed | `attribute_indices` packed |
//! | 3 | `value` packed | `attribute_indices` packed | `link_index` varint |
//! | 4 | `attribute_indices` packed | `link_index` varint | `values` packed |
//! | 5 | `link_index` varint | `timestamps_unix_nano` packed | `timestamps_unix_nano` packed |
//! | 6 | `timestamps_unix_nano` packed | — | — |
//!
//! A v1.10 reader given a v1.9 sample reads its values as attribute indices and finds no
//! values: the profile arrives empty and nobody is told. So the layout is inferred from the
//! wire types, which differ where the numbers moved, and a request the downstream cannot
//! read is refused instead of forwarded.
//!
//! Evidence, each narrowing the set of candidate layouts:
//! * `Sample`: the wire type of fields 2–6 (table above); and a sample whose only payload is
//!   field 2 (no 3, 4 or 5) is v1.9: under v1.10 it would carry neither values nor
//!   timestamps, that is no measurement at all.
//! * `Profile` (v1.7 → v1.9 reshuffled it): field 3 `location_indices` (packed) vs
//!   `time_unix_nano` (fixed64), fields 5–9 and 11 varint vs length-delimited, 12–14 only in
//!   v1.7.
//! * `KeyValue.key_strindex` (3) and `AnyValue.string_value_strindex` (8), new in v1.10's
//!   `common.proto`, in resource or scope attributes.
//!
//! Encoders pack repeated scalars (proto3's default, and what Go, Java, Python and the
//! Collector do); an encoder that does not could be misread by this inference.

use std::fmt;

use super::error::OtlpError;
use super::wire::{Field, Reader, WireType};

/// Samples inspected per request at most: every sample of a request comes from one encoder,
/// so the first ones decide, and a huge request costs no more than this to classify.
pub const MAX_SAMPLES_INSPECTED: usize = 4096;

/// A layout of the OTLP profiles messages, named by the opentelemetry-proto release that
/// introduced it (v1.8.0 was not checked: no package of it was at hand).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Schema {
    V1_7,
    V1_9,
    V1_10,
}

impl Schema {
    pub const ALL: [Schema; 3] = [Schema::V1_7, Schema::V1_9, Schema::V1_10];

    pub const fn name(self) -> &'static str {
        match self {
            Schema::V1_7 => "v1.7",
            Schema::V1_9 => "v1.9",
            Schema::V1_10 => "v1.10",
        }
    }

    /// Parses a configured name (`v1.7`, `v1.9`, `v1.10`, with or without the `v` and a
    /// trailing `.0`).
    pub fn parse(s: &str) -> Option<Schema> {
        let s = s.trim();
        let s = s.strip_prefix('v').unwrap_or(s);
        let s = s
            .strip_suffix(".0")
            .filter(|r| r.contains('.'))
            .unwrap_or(s);
        match s {
            "1.7" => Some(Schema::V1_7),
            "1.9" => Some(Schema::V1_9),
            "1.10" => Some(Schema::V1_10),
            _ => None,
        }
    }

    const fn bit(self) -> u8 {
        match self {
            Schema::V1_7 => 1,
            Schema::V1_9 => 2,
            Schema::V1_10 => 4,
        }
    }
}

impl fmt::Display for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of candidate layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidates(u8);

impl Candidates {
    pub const ALL: Candidates = Candidates(7);
    pub const V7: Candidates = Candidates(1);
    pub const V9: Candidates = Candidates(2);
    pub const V10: Candidates = Candidates(4);
    pub const V9_V10: Candidates = Candidates(6);
    pub const V7_V9: Candidates = Candidates(3);
    pub const V7_V10: Candidates = Candidates(5);

    pub fn contains(self, s: Schema) -> bool {
        self.0 & s.bit() != 0
    }

    pub fn narrow(&mut self, other: Candidates) {
        self.0 &= other.0;
    }

    /// The one layout left, if exactly one is.
    pub fn single(self) -> Option<Schema> {
        let mut it = Schema::ALL.into_iter().filter(|s| self.contains(*s));
        match (it.next(), it.next()) {
            (Some(s), None) => Some(s),
            _ => None,
        }
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// `v1.9 or v1.10`.
    pub fn describe(self) -> String {
        let names: Vec<&str> = Schema::ALL
            .into_iter()
            .filter(|s| self.contains(*s))
            .map(Schema::name)
            .collect();
        names.join(" or ")
    }
}

/// What the request's bytes say about its layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// No profile with a sample: nothing a reader could misread.
    Empty,
    /// The evidence leaves these layouts (one when it is conclusive).
    Layout(Candidates),
    /// Samples of different layouts in one request.
    Inconsistent,
}

impl Detected {
    /// The layout, when the evidence names exactly one.
    pub fn schema(self) -> Option<Schema> {
        match self {
            Detected::Layout(c) => c.single(),
            _ => None,
        }
    }

    /// The metric label of this result.
    pub fn label(self) -> &'static str {
        match self {
            Detected::Empty => "empty",
            Detected::Inconsistent => "inconsistent",
            Detected::Layout(c) => match c.single() {
                Some(s) => s.name(),
                None => "ambiguous",
            },
        }
    }
}

/// Which layouts the downstream reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// Only this layout (the default: what current Pyroscope reads).
    Only(Schema),
    /// Forward whatever arrives (the check is off).
    Any,
}

/// What current Pyroscope (2.1, built on opentelemetry-proto v1.10.0) reads.
pub const DEFAULT_ACCEPT: Accept = Accept::Only(Schema::V1_10);

impl Accept {
    /// `any` or a layout name.
    pub fn parse(s: &str) -> Option<Accept> {
        if s.trim().eq_ignore_ascii_case("any") {
            return Some(Accept::Any);
        }
        Schema::parse(s).map(Accept::Only)
    }

    pub fn name(self) -> &'static str {
        match self {
            Accept::Any => "any",
            Accept::Only(s) => s.name(),
        }
    }

    /// Whether a request with this layout may be forwarded. An ambiguous request passes when
    /// the accepted layout is among its candidates: nothing shows it is wrong.
    ///
    /// # Errors
    /// [`OtlpError::Schema`] naming what was found and what the downstream reads.
    pub fn check(self, d: Detected) -> Result<(), OtlpError> {
        let Accept::Only(want) = self else {
            return Ok(());
        };
        match d {
            Detected::Empty => Ok(()),
            Detected::Layout(c) if c.contains(want) => Ok(()),
            Detected::Layout(c) => Err(OtlpError::Schema {
                found: c.describe(),
                want: want.name(),
            }),
            Detected::Inconsistent => Err(OtlpError::Schema {
                found: "a mix of layouts".into(),
                want: want.name(),
            }),
        }
    }
}

/// The profile count and layout of a protobuf `ExportProfilesServiceRequest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// `Profile` messages in the request (for the sent/dropped profile metrics).
    pub profiles: u64,
    pub detected: Detected,
}

struct Evidence {
    candidates: Candidates,
    samples_seen: usize,
    any_sample: bool,
}

impl Evidence {
    fn add(&mut self, c: Candidates) {
        self.candidates.narrow(c);
    }

    fn decided(&self) -> bool {
        self.candidates.single().is_some() || self.candidates.is_empty()
    }
}

/// Scans a protobuf `ExportProfilesServiceRequest`: counts its profiles and infers the
/// layout. Allocation-free; samples are inspected until the layout is decided or
/// [`MAX_SAMPLES_INSPECTED`] were seen.
///
/// # Errors
/// [`OtlpError::Unmarshal`] when the bytes are not a well-formed message along the path read.
pub fn scan(msg: &[u8]) -> Result<Scan, OtlpError> {
    let mut ev = Evidence {
        candidates: Candidates::ALL,
        samples_seen: 0,
        any_sample: false,
    };
    let mut profiles = 0u64;
    for_each(msg, |f| {
        if f.number == 1 && f.wire == WireType::Len {
            resource_profiles(f.bytes, &mut ev, &mut profiles)?;
        }
        Ok(())
    })?;
    let detected = if !ev.any_sample {
        Detected::Empty
    } else if ev.candidates.is_empty() {
        Detected::Inconsistent
    } else {
        Detected::Layout(ev.candidates)
    };
    Ok(Scan { profiles, detected })
}

fn for_each<'a>(
    msg: &'a [u8],
    mut f: impl FnMut(Field<'a>) -> Result<(), OtlpError>,
) -> Result<(), OtlpError> {
    let mut r = Reader::new(msg);
    while let Some(field) = r.next_field().map_err(OtlpError::unmarshal)? {
        f(field)?;
    }
    Ok(())
}

fn resource_profiles(msg: &[u8], ev: &mut Evidence, profiles: &mut u64) -> Result<(), OtlpError> {
    for_each(msg, |f| {
        match (f.number, f.wire) {
            // Resource { attributes = 1 }
            (1, WireType::Len) => attributes_in(f.bytes, 1, ev)?,
            (2, WireType::Len) => scope_profiles(f.bytes, ev, profiles)?,
            _ => {}
        }
        Ok(())
    })
}

fn scope_profiles(msg: &[u8], ev: &mut Evidence, profiles: &mut u64) -> Result<(), OtlpError> {
    for_each(msg, |f| {
        match (f.number, f.wire) {
            // InstrumentationScope { attributes = 3 }
            (1, WireType::Len) => attributes_in(f.bytes, 3, ev)?,
            (2, WireType::Len) => {
                *profiles += 1;
                let done =
                    ev.any_sample && (ev.decided() || ev.samples_seen >= MAX_SAMPLES_INSPECTED);
                if !done {
                    profile(f.bytes, ev)?;
                }
            }
            _ => {}
        }
        Ok(())
    })
}

/// `KeyValue` messages at `field` of `msg`: v1.10's string-table references are evidence.
fn attributes_in(msg: &[u8], field: u32, ev: &mut Evidence) -> Result<(), OtlpError> {
    for_each(msg, |f| {
        if f.number == field && f.wire == WireType::Len {
            for_each(f.bytes, |kv| {
                match (kv.number, kv.wire) {
                    (3, _) => ev.add(Candidates::V10),
                    (2, WireType::Len) => for_each(kv.bytes, |av| {
                        if av.number == 8 {
                            ev.add(Candidates::V10);
                        }
                        Ok(())
                    })?,
                    _ => {}
                }
                Ok(())
            })?;
        }
        Ok(())
    })
}

fn profile(msg: &[u8], ev: &mut Evidence) -> Result<(), OtlpError> {
    use Candidates as C;
    use WireType::{I64, Len, Varint};
    for_each(msg, |f| {
        let c = match (f.number, f.wire) {
            (2, Len) => {
                ev.any_sample = true;
                if ev.samples_seen < MAX_SAMPLES_INSPECTED && !ev.decided() {
                    ev.samples_seen += 1;
                    sample(f.bytes, ev)?;
                }
                return Ok(());
            }
            (3, Len) => C::V7,
            (3, I64) => C::V9_V10,
            (5 | 7 | 9 | 11, Varint) => C::V7,
            (5 | 7 | 9 | 11, Len) => C::V9_V10,
            (6 | 8, Len) => C::V7,
            (6 | 8, Varint) => C::V9_V10,
            (12..=14, _) => C::V7,
            _ => return Ok(()),
        };
        ev.add(c);
        Ok(())
    })
}

fn sample(msg: &[u8], ev: &mut Evidence) -> Result<(), OtlpError> {
    use Candidates as C;
    use WireType::{I64, Len, Varint};
    let mut seen = [false; 7];
    for_each(msg, |f| {
        if let Some(s) = seen.get_mut(f.number as usize) {
            *s = true;
        }
        let c = match (f.number, f.wire) {
            (2, Varint) => C::V7,
            (2, Len) => C::V9_V10,
            (3, Len) => C::V7_V9,
            (3, Varint) => C::V10,
            (4, Len) => C::V7_V10,
            (4, Varint) => C::V9,
            (5, Varint) => C::V7,
            (5, Len | I64) => C::V9_V10,
            (6, _) => C::V7,
            _ => return Ok(()),
        };
        ev.add(c);
        Ok(())
    })?;
    if seen[2] && !seen[3] && !seen[4] && !seen[5] && !seen[6] {
        // Under v1.10 field 2 alone is attribute indices: a sample without any measurement.
        ev.add(C::V7_V9);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::otlp::wire::{put_len, put_uint};

    fn packed(values: &[u64]) -> Vec<u8> {
        let mut out = Vec::new();
        for v in values {
            crate::protocol::otlp::wire::put_varint(&mut out, *v);
        }
        out
    }

    /// A request with one resource, one scope, one profile holding `samples`.
    fn request(profile_extra: &[u8], samples: &[Vec<u8>]) -> Vec<u8> {
        let mut profile = profile_extra.to_vec();
        for s in samples {
            put_len(&mut profile, 2, s);
        }
        let mut scope = Vec::new();
        put_len(&mut scope, 2, &profile);
        let mut rp = Vec::new();
        put_len(&mut rp, 2, &scope);
        let mut req = Vec::new();
        put_len(&mut req, 1, &rp);
        // A dictionary (field 2) that the scan must skip.
        put_len(&mut req, 2, &[0x2a, 0x00]);
        req
    }

    fn v1_9_sample(values: &[u64], attrs: &[u64], link: u64) -> Vec<u8> {
        let mut s = Vec::new();
        put_uint(&mut s, 1, 3);
        put_len(&mut s, 2, &packed(values));
        if !attrs.is_empty() {
            put_len(&mut s, 3, &packed(attrs));
        }
        if link != 0 {
            put_uint(&mut s, 4, link);
        }
        s
    }

    fn v1_10_sample(values: &[u64], attrs: &[u64], link: u64) -> Vec<u8> {
        let mut s = Vec::new();
        put_uint(&mut s, 1, 3);
        if !attrs.is_empty() {
            put_len(&mut s, 2, &packed(attrs));
        }
        if link != 0 {
            put_uint(&mut s, 3, link);
        }
        put_len(&mut s, 4, &packed(values));
        s
    }

    fn detect(req: &[u8]) -> Detected {
        scan(req).expect("well-formed").detected
    }

    #[test]
    fn v1_10_samples_are_recognised() {
        let d = detect(&request(&[], &[v1_10_sample(&[10], &[1], 0)]));
        assert_eq!(d.schema(), Some(Schema::V1_10));
        // Values only (no attributes): field 4 alone says v1.10 (or v1.7, ruled out by
        // nothing else here): the layout stays open between the two.
        let d = detect(&request(&[], &[v1_10_sample(&[10], &[], 0)]));
        assert_eq!(d, Detected::Layout(Candidates::V7_V10));
        assert!(DEFAULT_ACCEPT.check(d).is_ok());
        // A v1.9-style profile header (time as fixed64) settles it.
        let mut header = vec![0x19];
        header.extend_from_slice(&1_700_000_000_000_000_000u64.to_le_bytes());
        let d = detect(&request(&header, &[v1_10_sample(&[10], &[], 0)]));
        assert_eq!(d.schema(), Some(Schema::V1_10));
        let d = detect(&request(&[], &[v1_10_sample(&[10], &[2], 4)]));
        assert_eq!(d.schema(), Some(Schema::V1_10));
    }

    #[test]
    fn v1_9_samples_are_recognised_and_refused_by_default() {
        for s in [
            v1_9_sample(&[10], &[1], 0),
            v1_9_sample(&[10], &[], 0),
            v1_9_sample(&[10], &[], 7),
        ] {
            let d = detect(&request(&[], &[s]));
            assert_eq!(d.schema(), Some(Schema::V1_9), "{d:?}");
            let e = DEFAULT_ACCEPT
                .check(d)
                .expect_err("v1.9 is not what Pyroscope reads");
            assert!(e.to_string().contains("v1.9"), "{e}");
            assert!(Accept::Only(Schema::V1_9).check(d).is_ok());
            assert!(Accept::Any.check(d).is_ok());
        }
    }

    #[test]
    fn v1_7_samples_are_recognised() {
        let mut s = Vec::new();
        put_uint(&mut s, 1, 0);
        put_uint(&mut s, 2, 3);
        put_len(&mut s, 3, &packed(&[5]));
        let d = detect(&request(&[], &[s]));
        assert_eq!(d.schema(), Some(Schema::V1_7));
        assert!(DEFAULT_ACCEPT.check(d).is_err());
    }

    #[test]
    fn mixed_and_empty_requests() {
        let d = detect(&request(
            &[],
            &[v1_9_sample(&[1], &[1], 0), v1_10_sample(&[1], &[1], 0)],
        ));
        // Decided by the first sample; the second is not inspected.
        assert_eq!(d.schema(), Some(Schema::V1_9));
        let d = detect(&request(
            &[],
            &[v1_10_sample(&[1], &[], 0), v1_9_sample(&[1], &[1], 0)],
        ));
        assert_eq!(d, Detected::Inconsistent);
        assert!(DEFAULT_ACCEPT.check(d).is_err());
        assert_eq!(detect(&request(&[], &[])), Detected::Empty);
        assert_eq!(detect(&[]), Detected::Empty);
        assert!(DEFAULT_ACCEPT.check(Detected::Empty).is_ok());
    }

    #[test]
    fn v1_10_common_fields_are_evidence() {
        // Resource { attributes: [KeyValue { key_strindex: 4 }] } and a sample whose
        // field 2 alone would otherwise say v1.9.
        let mut kv = Vec::new();
        put_uint(&mut kv, 3, 4);
        let mut resource = Vec::new();
        put_len(&mut resource, 1, &kv);
        let mut profile = Vec::new();
        put_len(&mut profile, 2, &v1_10_sample(&[9], &[1], 0));
        let mut scope = Vec::new();
        put_len(&mut scope, 2, &profile);
        let mut rp = Vec::new();
        put_len(&mut rp, 1, &resource);
        put_len(&mut rp, 2, &scope);
        let mut req = Vec::new();
        put_len(&mut req, 1, &rp);
        assert_eq!(detect(&req).schema(), Some(Schema::V1_10));
    }

    #[test]
    fn counts_profiles_and_rejects_garbage() {
        let req = request(&[], &[v1_10_sample(&[1], &[1], 0)]);
        assert_eq!(scan(&req).unwrap().profiles, 1);
        let mut two = req.clone();
        two.extend_from_slice(&req);
        assert_eq!(scan(&two).unwrap().profiles, 2);
        assert!(scan(&[0x0a, 0x05, 0x01]).is_err());
        assert!(scan(b"{\"resourceProfiles\":[]}").is_err());
    }

    #[test]
    fn names() {
        assert_eq!(Schema::parse("v1.10"), Some(Schema::V1_10));
        assert_eq!(Schema::parse("1.10.0"), Some(Schema::V1_10));
        assert_eq!(Schema::parse("v1.9.0"), Some(Schema::V1_9));
        assert_eq!(Schema::parse("v1.8"), None);
        assert_eq!(Accept::parse("ANY"), Some(Accept::Any));
        assert_eq!(Accept::parse("v1.7"), Some(Accept::Only(Schema::V1_7)));
        assert_eq!(Candidates::V9_V10.describe(), "v1.9 or v1.10");
    }
}
