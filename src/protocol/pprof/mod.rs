//! pprof profiles (`perftools.profiles.Profile`, docs/push.md §12.4): a bounded decoder and
//! an encoder, for the stages that must look inside a profile (validation, normalisation,
//! splitting series by sample labels).
//!
//! The decoder ([`decode`]) is written for hostile input: every length is checked against
//! what remains of the input before anything is sliced or allocated, the number of strings
//! and samples is capped ([`Limits`]), nesting is fixed by the schema (no recursion driven
//! by the input), and nothing panics on any byte sequence. It is also written for speed:
//! strings stay ranges into the (decompressed) input, and the repeated fields of all
//! samples live in three flat arrays instead of three vectors per sample.
//!
//! [`has_string_sample_labels`] answers the one question ring mode asks of every profile
//! (do its samples carry string labels?) from the wire format, without decoding or
//! allocating.
//!
//! [`encode`] writes a [`Profile`] back (packed repeated fields, fields in number order, as
//! Go's and prost's encoders do); unknown fields of the input are not kept.

mod decode;
mod encode;
mod model;
mod scan;

pub use decode::{DecodeError, Limits, decode, decode_bytes};
pub use encode::{PartEncoder, encode, encode_with_samples, encoded_len, encoded_len_hint};
pub use scan::has_string_sample_labels;

/// Sample labels that stay on samples instead of splitting a profile into series
/// (Pyroscope's split by sample labels; docs/distributor.md §4.1).
pub const NON_SPLITTING_LABELS: [&[u8]; 3] = [b"trace_id", b"span_id", b"profile_id"];
pub use model::{Function, Label, Line, Location, Mapping, Profile, Sample, ValueType};

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;
    use pyrogate_testdata::pprof::{Kind, Spec};

    use super::*;

    const LIMITS: Limits = Limits {
        max_size: 16 << 20,
        max_strings: 1 << 20,
        max_samples: 1 << 20,
    };

    /// Everything a profile says, with strings as their contents (two decodings of the
    /// same profile from different buffers compare equal).
    fn view(p: &Profile) -> impl PartialEq + std::fmt::Debug {
        let strings: Vec<Vec<u8>> = (0..p.strings.len() as i64)
            .map(|i| p.string(i).unwrap_or(&[]).to_vec())
            .collect();
        let samples: Vec<(Vec<u64>, Vec<i64>, Vec<Label>)> = p
            .samples
            .iter()
            .map(|s| {
                (
                    p.sample_locations(s).to_vec(),
                    p.sample_values(s).to_vec(),
                    p.sample_labels(s).to_vec(),
                )
            })
            .collect();
        let locations: Vec<(u64, u64, u64, Vec<Line>, bool)> = p
            .locations
            .iter()
            .map(|l| {
                (
                    l.id,
                    l.mapping_id,
                    l.address,
                    p.location_lines(l).to_vec(),
                    l.is_folded,
                )
            })
            .collect();
        (
            strings,
            samples,
            locations,
            p.sample_type.clone(),
            p.mappings.clone(),
            p.functions.clone(),
            (p.drop_frames, p.keep_frames, p.time_nanos, p.duration_nanos),
            (
                p.period_type,
                p.period,
                p.comments.clone(),
                p.default_sample_type,
            ),
        )
    }

    /// Profiles encoded by the independent test-data encoder (prost) decode to the model
    /// they were made from, and re-encode to the same bytes.
    #[test]
    fn independent_encodings_decode_and_reencode_byte_for_byte() {
        for kind in Kind::ALL {
            let spec = Spec::new(11, kind).negatives(3);
            let model = spec.profile();
            let bytes = Bytes::from(spec.plain());
            let p = decode(bytes.clone(), LIMITS).expect("decodes");
            assert_eq!(p.samples.len(), model.sample.len(), "{kind:?}");
            for (s, m) in p.samples.iter().zip(&model.sample) {
                assert_eq!(p.sample_locations(s), &m.location_id[..]);
                assert_eq!(p.sample_values(s), &m.value[..]);
                let labels: Vec<(i64, i64, i64, i64)> = p
                    .sample_labels(s)
                    .iter()
                    .map(|l| (l.key, l.str, l.num, l.num_unit))
                    .collect();
                let want: Vec<(i64, i64, i64, i64)> = m
                    .label
                    .iter()
                    .map(|l| (l.key, l.str, l.num, l.num_unit))
                    .collect();
                assert_eq!(labels, want);
            }
            for (i, s) in model.string_table.iter().enumerate() {
                assert_eq!(p.string(i as i64), Some(s.as_bytes()));
            }
            assert_eq!(p.locations.len(), model.location.len());
            assert_eq!(p.functions.len(), model.function.len());
            assert_eq!(p.time_nanos, model.time_nanos);
            assert_eq!(encode(&p), bytes.to_vec(), "{kind:?}: re-encoding differs");
            assert_eq!(encoded_len(&p), bytes.len(), "{kind:?}: encoded_len");
            // And gzip'd.
            let gz = Bytes::from(spec.gzip());
            assert_eq!(view(&decode_bytes(&gz, LIMITS).expect("gzip")), view(&p));
        }
    }

    #[test]
    fn packed_and_unpacked_repeated_fields() {
        // Sample{location_id: [1, 2], value: [7]} packed, and the same unpacked.
        let packed = [0x12, 0x07, 0x0a, 0x02, 0x01, 0x02, 0x12, 0x01, 0x07];
        let unpacked = [0x12, 0x06, 0x08, 0x01, 0x08, 0x02, 0x10, 0x07];
        for b in [&packed[..], &unpacked[..]] {
            let p = decode(Bytes::copy_from_slice(b), LIMITS).expect("decodes");
            assert_eq!(p.sample_locations(&p.samples[0]), &[1, 2]);
            assert_eq!(p.sample_values(&p.samples[0]), &[7]);
        }
    }

    #[test]
    fn hostile_input_is_refused_cleanly() {
        let cases: &[(&[u8], &str)] = &[
            // A string claiming 1 GiB with 3 bytes behind it.
            (
                &[0x32, 0x80, 0x80, 0x80, 0x80, 0x04, b'a', b'b', b'c'],
                "unexpected end",
            ),
            // Truncated varint.
            (&[0x48, 0xff, 0xff], "unexpected end"),
            // 11-byte varint.
            (
                &[
                    0x48, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
                ],
                "invalid varint",
            ),
            // `sample` (2) as a varint.
            (&[0x10, 0x01], "invalid wire type"),
            // A group.
            (&[0x7b], "invalid wire type"),
            // Field 0.
            (&[0x00, 0x00], "field number 0"),
            // An embedded message whose length runs past its parent.
            (&[0x12, 0x02, 0x1a, 0x05], "unexpected end"),
        ];
        for (b, want) in cases {
            let e = decode(Bytes::copy_from_slice(b), LIMITS).expect_err("refused");
            assert!(e.to_string().contains(want), "{b:?}: {e}");
        }
        let strings: Vec<u8> = std::iter::repeat_n([0x32, 0x00], 11).flatten().collect();
        let small = Limits {
            max_strings: 10,
            max_samples: 2,
            ..LIMITS
        };
        assert_eq!(
            decode(Bytes::from(strings), small),
            Err(DecodeError::TooManyStrings { max: 10 })
        );
        let samples: Vec<u8> = std::iter::repeat_n([0x12, 0x00], 3).flatten().collect();
        assert_eq!(
            decode(Bytes::from(samples), small),
            Err(DecodeError::TooManySamples { max: 2 })
        );
        let big = Spec::new(1, Kind::Cpu).samples(2000).gzip();
        let tight = Limits {
            max_size: 10_000,
            ..LIMITS
        };
        assert_eq!(
            decode_bytes(&Bytes::from(big), tight),
            Err(DecodeError::TooLarge { max: 10_000 })
        );
        assert_eq!(
            decode_bytes(&Bytes::from_static(b"short"), LIMITS),
            Err(DecodeError::Eof)
        );
        // Unknown fields (here Line.column and a fixed64 field) are skipped.
        let line_with_column = [0x22, 0x08, 0x22, 0x06, 0x08, 0x03, 0x10, 0x09, 0x18, 0x05];
        let p = decode(Bytes::copy_from_slice(&line_with_column), LIMITS).expect("decodes");
        assert_eq!(
            p.location_lines(&p.locations[0])[0],
            Line {
                function_id: 3,
                line: 9
            }
        );
        let fixed64 = [0x79, 1, 2, 3, 4, 5, 6, 7, 8];
        assert!(decode(Bytes::copy_from_slice(&fixed64), LIMITS).is_ok());
    }

    proptest! {
        /// Any byte sequence: a decode error or a profile, never a panic; a profile that
        /// decodes re-encodes to one that decodes to the same thing.
        #[test]
        fn arbitrary_bytes_round_trip_or_fail(body in prop::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(p) = decode(Bytes::from(body), LIMITS) {
                let enc = encode(&p);
                prop_assert_eq!(encoded_len(&p), enc.len());
                let again = decode(Bytes::from(enc), LIMITS).expect("re-encoding decodes");
                prop_assert_eq!(view(&again), view(&p));
            }
        }

        /// A split profile's parts: the part encoder writes what `encode_with_samples` does.
        #[test]
        fn parts_encode_as_encode_with_samples(
            seed in any::<u64>(),
            kind in prop::sample::select(Kind::ALL.to_vec()),
            samples in 0usize..120,
            pick in any::<u64>(),
        ) {
            let spec = Spec::new(seed, kind).samples(samples).negatives(2);
            let p = decode(Bytes::from(spec.plain()), LIMITS).expect("decodes");
            let parts = PartEncoder::new(&p);
            let odd: Vec<Sample> = p.samples.iter().enumerate()
                .filter(|(i, _)| pick >> (i % 64) & 1 == 1)
                .map(|(_, s)| s.clone())
                .collect();
            for chosen in [&odd[..], &p.samples[..], &[]] {
                prop_assert_eq!(parts.encode(&p, chosen), encode_with_samples(&p, chosen));
            }
        }

        /// Generated profiles of every shape: decode → encode → decode is the identity.
        #[test]
        fn generated_profiles_round_trip(
            seed in any::<u64>(),
            kind in prop::sample::select(Kind::ALL.to_vec()),
            samples in 0usize..300,
            zeros in 0u32..50,
            dups in 0u32..80,
        ) {
            let spec = Spec::new(seed, kind).samples(samples).functions(50).zeros(zeros).duplicates(dups);
            let p = decode(Bytes::from(spec.plain()), LIMITS).expect("decodes");
            let again = decode(Bytes::from(encode(&p)), LIMITS).expect("re-encoding decodes");
            prop_assert_eq!(view(&again), view(&p));
        }
    }
}
