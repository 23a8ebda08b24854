//! Re-encoding a `PushRequest` whose labels were rewritten, without copying profiles.
//!
//! A Push body is mostly `raw_profile` payloads; the labels around them are a few hundred
//! bytes. When a feature must change labels (external labels, relabeling, ring splitting),
//! [`encode_chunks`] writes only the small framing and label parts into one fresh buffer and
//! interleaves them with refcounted handles to the original `raw_profile` bytes. The chunks
//! go out with a vectored write (docs/architecture.md §2.2).
//!
//! The output is a *fresh* encoding of the prost structs: unknown fields of the original
//! body are not carried over. A request that needs no change must be forwarded as its
//! original bytes instead. The result is uncompressed (send it without `Content-Encoding`).

use bytes::{BufMut, Bytes, BytesMut};
use prost::Message as _;

use crate::protocol::proto::{PushRequest, RawProfileSeries, RawSample};

/// Wire type of every field written here: strings, bytes and messages are length-delimited.
const LEN: u8 = 2;

// Field numbers (docs/push.md §12.2–§12.3).
const PUSH_REQUEST_SERIES: u8 = 1;
const SERIES_LABELS: u8 = 1;
const SERIES_SAMPLES: u8 = 2;
const SERIES_ANNOTATIONS: u8 = 3;
const SAMPLE_RAW_PROFILE: u8 = 1;
const SAMPLE_ID: u8 = 2;
const PAIR_FIRST: u8 = 1; // LabelPair.name, ProfileAnnotation.key
const PAIR_SECOND: u8 = 2; // LabelPair.value, ProfileAnnotation.value

/// Encodes `req` as a list of chunks whose concatenation is byte-identical to
/// `req.encode_to_vec()`.
///
/// Every non-empty `raw_profile` becomes its own chunk (a clone of the input's `Bytes`, so
/// the same memory); everything between two profiles is merged into one chunk. That gives at
/// most `2 × samples + 1` chunks, and all the small chunks share a single allocation sized
/// exactly up front.
pub fn encode_chunks(req: &PushRequest) -> Vec<Bytes> {
    encode_series_chunks(req.series.iter())
}

/// [`encode_chunks`] of a `PushRequest` whose series are `series`, in order, without
/// building that request (ring mode sends each member a selection of one request's series).
pub fn encode_series_chunks<'a, I>(series: I) -> Vec<Bytes>
where
    I: Iterator<Item = &'a RawProfileSeries> + Clone,
{
    let (mut profiles, mut profile_bytes, mut total) = (0usize, 0usize, 0usize);
    for s in series.clone() {
        let len = s.encoded_len();
        total += 1 + prost::length_delimiter_len(len) + len;
        for p in s.samples.iter().map(|x| &x.raw_profile) {
            if !p.is_empty() {
                profiles += 1;
                profile_bytes += p.len();
            }
        }
    }
    let mut enc = ChunkEncoder {
        small: BytesMut::with_capacity(total.saturating_sub(profile_bytes)),
        chunks: Vec::with_capacity(2 * profiles + 1),
    };
    for s in series {
        enc.series(s);
    }
    enc.finish()
}

/// Total length of `chunks`, e.g. for the outbound `Content-Length`.
pub fn encoded_len(chunks: &[Bytes]) -> usize {
    chunks.iter().map(Bytes::len).sum()
}

/// Accumulates small parts in `small` and cuts a chunk whenever a profile is spliced in.
struct ChunkEncoder {
    small: BytesMut,
    chunks: Vec<Bytes>,
}

// === impl ChunkEncoder ===

impl ChunkEncoder {
    fn series(&mut self, series: &RawProfileSeries) {
        self.key(PUSH_REQUEST_SERIES);
        self.varint(series.encoded_len());
        for label in &series.labels {
            self.pair(SERIES_LABELS, &label.name, &label.value);
        }
        for sample in &series.samples {
            self.sample(sample);
        }
        for annotation in &series.annotations {
            self.pair(SERIES_ANNOTATIONS, &annotation.key, &annotation.value);
        }
    }

    fn sample(&mut self, sample: &RawSample) {
        self.key(SERIES_SAMPLES);
        self.varint(sample.encoded_len());
        // proto3: default (empty) values are not encoded, exactly as prost does.
        if !sample.raw_profile.is_empty() {
            self.key(SAMPLE_RAW_PROFILE);
            self.varint(sample.raw_profile.len());
            self.cut();
            self.chunks.push(sample.raw_profile.clone());
        }
        self.string_field(SAMPLE_ID, &sample.id);
    }

    /// A `LabelPair` or `ProfileAnnotation`: a message of two string fields.
    fn pair(&mut self, tag: u8, first: &str, second: &str) {
        self.key(tag);
        self.varint(string_field_len(first) + string_field_len(second));
        self.string_field(PAIR_FIRST, first);
        self.string_field(PAIR_SECOND, second);
    }

    fn string_field(&mut self, tag: u8, s: &str) {
        if s.is_empty() {
            return;
        }
        self.key(tag);
        self.varint(s.len());
        self.small.put_slice(s.as_bytes());
    }

    /// Field numbers here are < 16, so a key is always one byte.
    fn key(&mut self, tag: u8) {
        self.small.put_u8(tag << 3 | LEN);
    }

    fn varint(&mut self, value: usize) {
        let mut v = value as u64;
        while v >= 0x80 {
            self.small.put_u8((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.small.put_u8(v as u8);
    }

    /// Ends the current small chunk (if any); it shares `small`'s allocation.
    fn cut(&mut self) {
        if !self.small.is_empty() {
            self.chunks.push(self.small.split().freeze());
        }
    }

    fn finish(mut self) -> Vec<Bytes> {
        self.cut();
        self.chunks
    }
}

/// Encoded size of a proto3 string field (0 when empty, since defaults are omitted).
fn string_field_len(s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        1 + prost::length_delimiter_len(s.len()) + s.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::proto::{LabelPair, ProfileAnnotation};
    use crate::protocol::push::decode::test_support::arb_request;
    use crate::protocol::push::{self as push_decode, Codec, Encoding};
    use proptest::prelude::*;

    fn concat(chunks: &[Bytes]) -> Vec<u8> {
        chunks.iter().flat_map(|c| c.iter().copied()).collect()
    }

    fn profile_ptrs(req: &PushRequest) -> Vec<*const u8> {
        req.series
            .iter()
            .flat_map(|s| &s.samples)
            .filter(|s| !s.raw_profile.is_empty())
            .map(|s| s.raw_profile.as_ptr())
            .collect()
    }

    fn sample(raw: Vec<u8>, id: &str) -> RawSample {
        RawSample {
            raw_profile: Bytes::from(raw),
            id: id.into(),
        }
    }

    fn label(name: &str, value: &str) -> LabelPair {
        LabelPair {
            name: name.into(),
            value: value.into(),
        }
    }

    fn assert_encodes_like_prost(req: &PushRequest) -> Vec<Bytes> {
        let chunks = encode_chunks(req);
        assert_eq!(concat(&chunks), req.encode_to_vec());
        assert_eq!(encoded_len(&chunks), req.encoded_len());
        chunks
    }

    #[test]
    fn rewritten_request_reencodes_without_copying_profiles() {
        let sdk = pyrogate_testdata::sdk::python_push(5);
        let body = Bytes::from(sdk.body);
        let mut req =
            push_decode::decode(body, Codec::Proto, Encoding::Gzip, 1 << 20).expect("decodes");
        req.series[0].labels.push(label("cluster", "eu-west-1"));
        req.series[0].labels.sort();
        let chunks = assert_encodes_like_prost(&req);
        assert_eq!(chunks.len(), 3);
        assert_eq!(
            chunks[1].as_ptr(),
            req.series[0].samples[0].raw_profile.as_ptr()
        );
        assert_eq!(chunks[1][..], sdk.series[0].samples[0].raw_profile[..]);
        // The result decodes back to the rewritten request.
        let again = Bytes::from(concat(&chunks));
        assert_eq!(
            push_decode::decode(again, Codec::Proto, Encoding::Identity, 1 << 20),
            Ok(req)
        );
    }

    #[test]
    fn edge_cases_match_prost() {
        let big = vec![0xab; 200_000]; // three-byte length varints
        let req = PushRequest {
            series: vec![
                RawProfileSeries::default(),
                RawProfileSeries {
                    labels: vec![
                        label("", ""),
                        label("k", ""),
                        label("", "v"),
                        label(&"n".repeat(300), "x"),
                    ],
                    samples: vec![
                        sample(vec![], ""),
                        sample(vec![], "only-id"),
                        sample(vec![1, 2, 3], ""),
                        sample(big, "id"),
                        sample(vec![9], "last"),
                    ],
                    annotations: vec![
                        ProfileAnnotation {
                            key: "a".into(),
                            value: "b".into(),
                        },
                        ProfileAnnotation::default(),
                    ],
                },
                RawProfileSeries {
                    labels: vec![],
                    samples: vec![sample(vec![7; 10], "")],
                    annotations: vec![],
                },
            ],
        };
        let chunks = assert_encodes_like_prost(&req);
        let ptrs = profile_ptrs(&req);
        assert_eq!(ptrs.len(), 4);
        // Profiles are exactly the odd chunks; small chunks alternate with them, and the
        // message ends with a profile, so there is no trailing small chunk.
        assert_eq!(chunks.len(), 2 * ptrs.len());
        for (i, p) in ptrs.iter().enumerate() {
            assert_eq!(chunks[2 * i + 1].as_ptr(), *p);
        }
    }

    #[test]
    fn empty_request_is_empty() {
        assert!(encode_chunks(&PushRequest::default()).is_empty());
        let only_labels = PushRequest {
            series: vec![RawProfileSeries {
                labels: vec![label("a", "b")],
                ..Default::default()
            }],
        };
        assert_eq!(assert_encodes_like_prost(&only_labels).len(), 1);
    }

    #[test]
    fn small_chunks_share_one_allocation() {
        let req = PushRequest {
            series: vec![RawProfileSeries {
                labels: vec![label("a", "b")],
                samples: vec![sample(vec![1; 50], "x"), sample(vec![2; 50], "y")],
                annotations: vec![],
            }],
        };
        let chunks = assert_encodes_like_prost(&req);
        assert_eq!(chunks.len(), 5);
        // Small chunks are contiguous pieces of one buffer.
        let (a, b, c) = (&chunks[0], &chunks[2], &chunks[4]);
        assert_eq!(a.as_ptr_range().end, b.as_ptr());
        assert_eq!(b.as_ptr_range().end, c.as_ptr());
    }

    proptest! {
        /// A selection of a request's series encodes as the request of just those.
        #[test]
        fn selected_series_encode_as_their_request(req in arb_request(), pick in any::<u16>()) {
            let chosen: Vec<&RawProfileSeries> = req
                .series
                .iter()
                .enumerate()
                .filter(|(i, _)| pick >> (i % 16) & 1 == 1)
                .map(|(_, s)| s)
                .collect();
            let alone = PushRequest { series: chosen.iter().map(|s| (*s).clone()).collect() };
            let chunks = encode_series_chunks(chosen.iter().copied());
            prop_assert_eq!(concat(&chunks), alone.encode_to_vec());
        }

        #[test]
        fn matches_prost_and_never_copies(req in arb_request()) {
            let chunks = encode_chunks(&req);
            prop_assert_eq!(concat(&chunks), req.encode_to_vec());
            prop_assert_eq!(encoded_len(&chunks), req.encoded_len());
            let ptrs = profile_ptrs(&req);
            prop_assert!(chunks.len() <= 2 * ptrs.len() + 1);
            for p in ptrs {
                prop_assert!(chunks.iter().any(|c| c.as_ptr() == p));
            }
        }
    }
}
