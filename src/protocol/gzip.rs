//! Gzip sniffing and bounded inflation.
//!
//! Every inflate in pyrogate goes through [`inflate_bounded`] so a gzip bomb can never make
//! the gateway allocate more than the configured limit (docs/architecture.md §2.3): the output
//! buffer is grown by hand, never past `max_out`, and the limit is checked while inflating,
//! not after.

use bytes::Bytes;
use flate2::{Decompress, FlushDecompress, Status};

/// The pprof sniffing rule of docs/ingest.md §10: gzip magic plus the deflate method byte.
const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];

/// Deflate cannot expand data by more than about 1032:1, so a declared size (ISIZE) larger
/// than this multiple of the input is a lie and must not drive the initial allocation.
const MAX_DEFLATE_RATIO: usize = 1032;

/// First growth step when the size hint turned out too small (multi-member streams, or an
/// ISIZE that lied low); small enough for tiny messages, large enough to avoid many steps.
const MIN_GROWTH: usize = 4096;

/// A gzip header (10 bytes) plus the empty deflate block (2) and the trailer (8).
const MIN_GZIP_LEN: usize = 20;

/// zlib's maximum (and gzip's default) window size.
const WINDOW_BITS: u8 = 15;

/// Why [`inflate_bounded`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GzipError {
    /// The decompressed data would exceed `max` bytes. `declared` is the size the gzip
    /// trailer claims (ISIZE, mod 2^32), useful only for the error message.
    #[error("decompressed size exceeds the limit of {max} bytes")]
    TooLarge { max: usize, declared: u64 },
    /// Not a valid gzip stream: bad header, corrupt deflate data, checksum mismatch,
    /// truncation, or trailing bytes that do not start another member.
    #[error("gzip: {0}")]
    Invalid(&'static str),
}

/// Whether `b` starts like a gzip stream (`1f 8b 08`), the test Pyroscope applies to pprof
/// bodies and `raw_profile` payloads (docs/ingest.md §10).
pub fn is_gzip(b: &[u8]) -> bool {
    b.starts_with(&GZIP_MAGIC)
}

/// Compression level of re-encoded payloads (a normalised profile): zlib's fastest. The
/// payload only crosses one hop to Pyroscope; level 1 costs a fraction of the default
/// level's CPU for a ratio within about 10 % of it on pprof data.
pub const DEFLATE_LEVEL: u32 = 1;

/// Gzips `data` (one member, no name, no timestamp).
pub fn compress(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 3 + 64),
        flate2::Compression::new(DEFLATE_LEVEL),
    );
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// Inflates a gzip stream (several concatenated members are accepted, like Go's
/// `gzip.Reader`) into one buffer of at most `max_out` bytes.
///
/// The buffer is pre-sized from the ISIZE trailer (capped by `max_out` and by the deflate
/// ratio bound) so the common single-member case allocates exactly once.
///
/// # Errors
/// [`GzipError::TooLarge`] as soon as the output would exceed `max_out` (nothing beyond
/// `max_out` is ever allocated); [`GzipError::Invalid`] for anything that is not a complete,
/// valid gzip stream, including empty input.
pub fn inflate_bounded(input: &[u8], max_out: usize) -> Result<Bytes, GzipError> {
    if input.len() < MIN_GZIP_LEN {
        return Err(GzipError::Invalid("unexpected EOF"));
    }
    let mut inflater = Inflater {
        dec: Decompress::new_gzip(WINDOW_BITS),
        rest: input,
        out: Vec::with_capacity(initial_capacity(input, max_out)),
        max_out,
    };
    inflater.run().map_err(|e| match e {
        GzipError::TooLarge { max, .. } => GzipError::TooLarge {
            max,
            declared: u64::from(declared_size(input)),
        },
        other => other,
    })?;
    Ok(Bytes::from(inflater.out))
}

/// The ISIZE field: the last member's uncompressed length mod 2^32, as claimed by the sender.
fn declared_size(input: &[u8]) -> u32 {
    match input.last_chunk::<4>() {
        Some(tail) => u32::from_le_bytes(*tail),
        None => 0,
    }
}

/// Initial output capacity: the declared size, trusted only up to `max_out` and up to what
/// deflate can physically produce from this much input.
fn initial_capacity(input: &[u8], max_out: usize) -> usize {
    let declared = usize::try_from(declared_size(input)).unwrap_or(usize::MAX);
    declared
        .min(max_out)
        .min(input.len().saturating_mul(MAX_DEFLATE_RATIO))
}

/// Outcome of one inflate step.
struct Step {
    status: Status,
    consumed: usize,
    produced: usize,
}

/// State of one bounded inflate: the decoder, the unread input and the output.
struct Inflater<'a> {
    dec: Decompress,
    rest: &'a [u8],
    out: Vec<u8>,
    max_out: usize,
}

// === impl Inflater ===

impl Inflater<'_> {
    fn run(&mut self) -> Result<(), GzipError> {
        loop {
            let step = if self.out.len() < self.out.capacity() {
                self.step_into_out()?
            } else {
                self.step_probe()?
            };
            self.rest = self.rest.get(step.consumed..).unwrap_or_default();
            if self.out.len() > self.max_out {
                // Only if `Vec` handed out more capacity than requested; keep the promise.
                return Err(self.too_large());
            }
            match step.status {
                Status::StreamEnd if self.rest.is_empty() => return Ok(()),
                // Another member follows; like Go, anything that is not a valid gzip header
                // here is an error (reported by the next step).
                Status::StreamEnd => self.dec.reset(true),
                Status::Ok | Status::BufError if step.consumed == 0 && step.produced == 0 => {
                    // Room for output and no progress: the input ended mid-stream.
                    return Err(GzipError::Invalid("unexpected EOF"));
                }
                Status::Ok | Status::BufError => {}
            }
        }
    }

    /// Inflates straight into the output's spare capacity (never reallocates).
    fn step_into_out(&mut self) -> Result<Step, GzipError> {
        let (in0, out0) = (self.dec.total_in(), self.dec.total_out());
        let status = self
            .dec
            .decompress_vec(self.rest, &mut self.out, FlushDecompress::None)
            .map_err(|_| GzipError::Invalid("invalid compressed data"))?;
        Ok(self.step_since(status, in0, out0))
    }

    /// The output is full: inflate into a one-byte scratch to learn whether more output
    /// exists (or just the trailer is left) before committing to a larger buffer.
    fn step_probe(&mut self) -> Result<Step, GzipError> {
        let mut probe = [0u8; 1];
        let (in0, out0) = (self.dec.total_in(), self.dec.total_out());
        let status = self
            .dec
            .decompress(self.rest, &mut probe, FlushDecompress::None)
            .map_err(|_| GzipError::Invalid("invalid compressed data"))?;
        let step = self.step_since(status, in0, out0);
        if step.produced > 0 {
            self.grow()?;
            self.out.push(probe[0]);
        }
        Ok(step)
    }

    /// `declared` is filled in by [`inflate_bounded`], which still has the whole input.
    fn too_large(&self) -> GzipError {
        GzipError::TooLarge {
            max: self.max_out,
            declared: 0,
        }
    }

    fn step_since(&self, status: Status, in0: u64, out0: u64) -> Step {
        let delta = |now: u64, then: u64| usize::try_from(now - then).unwrap_or(usize::MAX);
        Step {
            status,
            consumed: delta(self.dec.total_in(), in0),
            produced: delta(self.dec.total_out(), out0),
        }
    }

    /// Makes room for at least one more byte, doubling but never past `max_out`.
    fn grow(&mut self) -> Result<(), GzipError> {
        let len = self.out.len();
        if len >= self.max_out {
            return Err(self.too_large());
        }
        let target = len.saturating_mul(2).max(MIN_GROWTH).min(self.max_out);
        self.out.reserve_exact(target - len);
        Ok(())
    }
}

/// Helpers shared by the tests of the modules that inflate.
#[cfg(test)]
pub(crate) mod test_support {
    use flate2::{Compress, Compression, Crc, FlushCompress, write::GzEncoder};
    use std::io::Write;

    /// Gzips `data` as one member.
    pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(data).expect("write to Vec");
        enc.finish().expect("finish to Vec")
    }

    /// A valid single-member gzip of `mib` MiB of zeros, built from one compressed MiB
    /// repeated (compressing 100 MiB in a debug build takes tens of seconds).
    pub(crate) fn zero_bomb(mib: u32) -> Vec<u8> {
        let zeros = vec![0u8; 1 << 20];
        // A full flush ends the chunk byte-aligned with no BFINAL, and a fresh compressor has
        // no history, so the chunk can be repeated verbatim.
        let mut c = Compress::new(Compression::fast(), false);
        let mut chunk = Vec::with_capacity(64 << 10);
        while c.total_in() < zeros.len() as u64 {
            let done = usize::try_from(c.total_in()).expect("fits");
            chunk.reserve(16 << 10);
            c.compress_vec(&zeros[done..], &mut chunk, FlushCompress::Full)
                .expect("compress");
        }
        let mut crc_mib = Crc::new();
        crc_mib.update(&zeros);
        let mut crc = Crc::new();
        let mut out = vec![0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 0xff];
        for _ in 0..mib {
            out.extend_from_slice(&chunk);
            crc.combine(&crc_mib);
        }
        out.extend_from_slice(&[0x03, 0x00]); // final empty fixed-Huffman block
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&(mib << 20).to_le_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{gzip, zero_bomb};
    use super::*;

    #[test]
    fn sniffs_gzip_magic() {
        assert!(is_gzip(&[0x1f, 0x8b, 0x08, 0x00]));
        assert!(!is_gzip(&[0x1f, 0x8b]));
        assert!(!is_gzip(&[0x1f, 0x8b, 0x07]));
        assert!(!is_gzip(&[0x0a, 0x04, 0x08, 0x01]));
        assert!(!is_gzip(&[]));
    }

    #[test]
    fn round_trips_and_presizes_exactly() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let out = inflate_bounded(&gzip(&data), 1 << 20).expect("valid");
        assert_eq!(&out[..], &data[..]);
    }

    #[test]
    fn exact_limit_is_allowed_one_more_is_not() {
        let data = vec![7u8; 10_000];
        let gz = gzip(&data);
        assert_eq!(inflate_bounded(&gz, 10_000).map(|b| b.len()), Ok(10_000));
        assert_eq!(
            inflate_bounded(&gz, 9_999),
            Err(GzipError::TooLarge {
                max: 9_999,
                declared: 10_000
            })
        );
    }

    #[test]
    fn empty_payload_inflates_to_nothing() {
        assert_eq!(inflate_bounded(&gzip(b""), 0).map(|b| b.len()), Ok(0));
    }

    #[test]
    fn multi_member_is_concatenated() {
        let mut gz = gzip(b"hello ");
        gz.extend_from_slice(&gzip(b"world"));
        assert_eq!(
            inflate_bounded(&gz, 100).as_deref(),
            Ok(&b"hello world"[..])
        );
        // The limit spans members.
        assert!(matches!(
            inflate_bounded(&gz, 8),
            Err(GzipError::TooLarge { max: 8, .. })
        ));
    }

    #[test]
    fn lying_isize_only_affects_the_initial_capacity() {
        let data = vec![1u8; 50_000];
        let mut low = gzip(&data);
        let n = low.len();
        low[n - 4..].copy_from_slice(&10u32.to_le_bytes());
        // zlib checks ISIZE, so a wrong trailer is an error, but nothing panics or overgrows.
        assert!(matches!(
            inflate_bounded(&low, 1 << 20),
            Err(GzipError::Invalid(_))
        ));
        let mut high = gzip(b"x");
        let n = high.len();
        high[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            initial_capacity(&high, usize::MAX),
            high.len() * MAX_DEFLATE_RATIO
        );
    }

    #[test]
    fn bomb_is_stopped_at_the_cap() {
        let small = zero_bomb(3);
        assert_eq!(
            inflate_bounded(&small, 3 << 20).map(|b| b.len()),
            Ok(3 << 20)
        );
        let bomb = zero_bomb(100);
        assert!(bomb.len() < 1 << 20, "{}", bomb.len());
        assert_eq!(
            inflate_bounded(&bomb, 1 << 20),
            Err(GzipError::TooLarge {
                max: 1 << 20,
                declared: 100 << 20
            })
        );
    }

    #[test]
    fn invalid_inputs_are_rejected() {
        let gz = gzip(b"some data that is long enough");
        for bad in [
            &b""[..],
            &gz[..10],
            &gz[..gz.len() - 1],
            &b"not gzip at all, definitely not gzip"[..],
        ] {
            assert!(matches!(
                inflate_bounded(bad, 1 << 20),
                Err(GzipError::Invalid(_))
            ));
        }
        let mut corrupt = gz.clone();
        corrupt[12] ^= 0xff;
        assert!(matches!(
            inflate_bounded(&corrupt, 1 << 20),
            Err(GzipError::Invalid(_))
        ));
        let mut trailing = gz.clone();
        trailing.extend_from_slice(b"garbage after the member");
        assert!(matches!(
            inflate_bounded(&trailing, 1 << 20),
            Err(GzipError::Invalid(_))
        ));
    }

    /// Generated gzip'd profiles and bodies of every kind inflate to exactly what was
    /// compressed, whatever the compression level (the Java agent uses level 1).
    #[test]
    fn generated_bodies_inflate_exactly() {
        use pyrogate_testdata::{formats, gz, pprof, sdk};
        let mut plains: Vec<Vec<u8>> = pprof::Kind::ALL
            .iter()
            .map(|k| pprof::Spec::new(1, *k).plain())
            .collect();
        plains.push(formats::labels_snapshot(4, 1));
        plains.push(formats::jfr(300_000, 1));
        for plain in &plains {
            for level in [1, 6, 9] {
                let gzd = gz::gzip_level(plain, level);
                assert!(is_gzip(&gzd));
                assert_eq!(inflate_bounded(&gzd, 1 << 20).as_deref(), Ok(&plain[..]));
            }
        }
        let push = sdk::python_push(1);
        let raw = inflate_bounded(&push.body, 1 << 20).expect("push body inflates");
        assert_eq!(raw.to_vec(), pyrogate_testdata::push::encode(&push.series));
    }

    /// The captured corpus, when present: sizes documented with the captures.
    #[test]
    fn captured_corpus_inflates_to_documented_sizes() {
        for (name, raw) in [
            ("clients/pyroscope-io-1.4.0-push.bin", 1012),
            ("clients/pyroscope-nodejs-0.6.4-ingest-wall.bin", 21772),
            ("pprof/heap.pb.gz", 99509),
            ("jfr/dump1.labels.pb.gz", 149),
        ] {
            let Some(gz) = pyrogate_testdata::corpus::fixture(name, "gzip captured-size check")
            else {
                return;
            };
            assert!(is_gzip(&gz), "{name}");
            assert_eq!(
                inflate_bounded(&gz, 1 << 20).map(|b| b.len()),
                Ok(raw),
                "{name}"
            );
        }
    }
}
