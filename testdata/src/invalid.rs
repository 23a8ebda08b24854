//! Profiles built to break exactly one of Pyroscope's profile checks each (its
//! `ValidateProfile`, docs/distributor.md §4.2): a small valid profile with one thing
//! changed. The expected messages are not here: the tests that use these write them down.

use prost::Message as _;

use crate::pprof::{Kind, Spec};
use crate::wire::{Label, Profile};

/// One way to break a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Break {
    /// No sample types.
    NoSampleTypes,
    /// Stamped two hours before `now`.
    TooOld,
    /// Stamped twenty minutes after `now`.
    TooNew,
    /// `n` samples (for a limit below `n`).
    Samples(usize),
    /// One sample with `n` string labels (for a limit below `n`).
    SampleLabels(usize),
    LocationIdZero,
    FunctionIdZero,
    /// One sample with one value more than there are sample types.
    ValueLengthMismatch,
    /// `string_table[0]` is not empty.
    StringZeroNotEmpty,
    SampleTypeIndex,
    SampleLabelIndex,
    FunctionNameIndex,
    FunctionSystemNameIndex,
    FunctionFileNameIndex,
    MappingFileNameIndex,
    MappingBuildIdIndex,
    /// The first sample type's name contains `-`.
    SampleTypeDash,
    /// A string that is not UTF-8: [`INVALID_UTF8`] appended to the string table.
    InvalidUtf8,
}

/// The bytes of the string [`Break::InvalidUtf8`] adds.
pub const INVALID_UTF8: [u8; 4] = [b'f', 0xc5, b'o', 0xff];

/// A placeholder of the same length, replaced by [`INVALID_UTF8`] after encoding (the
/// message type cannot hold invalid UTF-8).
const PLACEHOLDER: &str = "\u{1}@@\u{1}";

/// The small valid profile every break starts from: 20 samples, each with one string
/// label, no duplicates or zeros, stamped `time_nanos`.
pub fn base(seed: u64, time_nanos: i64) -> Profile {
    Spec::new(seed, Kind::Cpu)
        .samples(20)
        .functions(30)
        .depth(3, 8)
        .zeros(0)
        .duplicates(0)
        .labels(true, false)
        .time(time_nanos)
        .profile()
}

/// The serialized (plain) profile with `b` applied, for a server whose clock reads
/// `now_nanos`.
pub fn profile(b: Break, seed: u64, now_nanos: i64) -> Vec<u8> {
    let mut p = base(seed, now_nanos);
    let big = p.string_table.len() as i64 + 5;
    match b {
        Break::NoSampleTypes => p.sample_type.clear(),
        Break::TooOld => p.time_nanos = now_nanos - 2 * 3600 * 1_000_000_000,
        Break::TooNew => p.time_nanos = now_nanos + 20 * 60 * 1_000_000_000,
        Break::Samples(n) => {
            p = Spec::new(seed, Kind::Cpu)
                .samples(n)
                .functions(30)
                .depth(3, 8)
                .zeros(0)
                .duplicates(0)
                .labels(false, false)
                .time(now_nanos)
                .profile();
        }
        Break::SampleLabels(n) => {
            let mut labels = Vec::with_capacity(n);
            for i in 0..n {
                let key = intern(&mut p, &format!("key{i}"));
                let value = intern(&mut p, &format!("value{i}"));
                labels.push(Label {
                    key,
                    str: value,
                    ..Label::default()
                });
            }
            p.sample[0].label = labels;
        }
        Break::LocationIdZero => p.location[0].id = 0,
        Break::FunctionIdZero => p.function[0].id = 0,
        Break::ValueLengthMismatch => p.sample[0].value.push(1),
        Break::StringZeroNotEmpty => p.string_table[0] = "not empty".into(),
        Break::SampleTypeIndex => p.sample_type[0].r#type = big,
        Break::SampleLabelIndex => p.sample[0].label.push(Label {
            key: 1,
            str: big,
            ..Label::default()
        }),
        Break::FunctionNameIndex => p.function[0].name = big,
        Break::FunctionSystemNameIndex => p.function[0].system_name = big,
        Break::FunctionFileNameIndex => p.function[0].filename = big,
        Break::MappingFileNameIndex => p.mapping[0].filename = big,
        Break::MappingBuildIdIndex => p.mapping[0].build_id = big,
        Break::SampleTypeDash => {
            let t = intern(&mut p, "cpu-time");
            p.sample_type[0].r#type = t;
        }
        Break::InvalidUtf8 => {
            p.string_table.push(PLACEHOLDER.into());
            let mut bytes = p.encode_to_vec();
            let at = find(&bytes, PLACEHOLDER.as_bytes()).unwrap_or(0);
            bytes[at..at + INVALID_UTF8.len()].copy_from_slice(&INVALID_UTF8);
            return bytes;
        }
    }
    p.encode_to_vec()
}

/// Every break, with the sample and sample-label counts given.
pub fn all(samples: usize, sample_labels: usize) -> Vec<Break> {
    vec![
        Break::NoSampleTypes,
        Break::TooOld,
        Break::TooNew,
        Break::Samples(samples),
        Break::SampleLabels(sample_labels),
        Break::LocationIdZero,
        Break::FunctionIdZero,
        Break::ValueLengthMismatch,
        Break::StringZeroNotEmpty,
        Break::SampleTypeIndex,
        Break::SampleLabelIndex,
        Break::FunctionNameIndex,
        Break::FunctionSystemNameIndex,
        Break::FunctionFileNameIndex,
        Break::MappingFileNameIndex,
        Break::MappingBuildIdIndex,
        Break::SampleTypeDash,
        Break::InvalidUtf8,
    ]
}

/// The index of `s` in the string table, added when missing.
pub fn intern(p: &mut Profile, s: &str) -> i64 {
    match p.string_table.iter().position(|x| x == s) {
        Some(i) => i as i64,
        None => {
            p.string_table.push(s.into());
            p.string_table.len() as i64 - 1
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
