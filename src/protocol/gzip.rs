//! Gzip sniffing and bounded inflation.
//!
//! Every inflate in pyrogate goes through [`inflate_bounded`] so a gzip bomb can never make
//! the gateway allocate more than the configured limit (docs/architecture.md §2.3): the output
//! buffer is grown by hand, never past `max_out`, and the limit is checked while inflating,
//! not after.
//!
//! The gzip framing (RFC 1952 header, CRC-32 and ISIZE trailer) is read here and only the
//! deflate data goes through zlib-rs, as a raw stream, with one inflater per thread that is
//! reset between streams: its state and 32 KiB window are allocated once per worker instead
//! of once per request (docs/performance.md). flate2 cannot reset a gzip-mode inflater
//! without allocating a new one, a raw one it can.

use std::cell::RefCell;

use bytes::Bytes;
use flate2::{Crc, Decompress, FlushDecompress, Status};

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

/// The fixed part of a member header: magic (2), method, flags, mtime (4), xfl, os.
const HEADER_LEN: usize = 10;

/// The member trailer: CRC-32 and ISIZE, both little-endian `u32`.
const TRAILER_LEN: usize = 8;

/// Header flag bits (RFC 1952 §2.3.1); FTEXT (bit 0) is only a hint.
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
/// Bits 5–7 are reserved; zlib and Go refuse a header that sets them.
const FRESERVED: u8 = 0xe0;

/// What a malformed stream is reported as (zlib's data errors, as flate2 reported them when
/// zlib read the gzip framing itself).
const INVALID: GzipError = GzipError::Invalid("invalid compressed data");
/// What a stream that ends too early is reported as.
const EOF: GzipError = GzipError::Invalid("unexpected EOF");

thread_local! {
    /// This thread's raw-deflate inflater (window of zlib's default 2^15 bytes, the only
    /// size flate2 resets in place), taken out while in use so a panic mid-inflate leaves
    /// no half-used state behind: the next call simply makes a new one.
    static INFLATER: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

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
/// ratio bound) so the common single-member case allocates exactly once. The inflater is
/// this thread's, reset before every member, so one failed stream never affects the next.
///
/// # Errors
/// [`GzipError::TooLarge`] as soon as the output would exceed `max_out` (nothing beyond
/// `max_out` is ever allocated); [`GzipError::Invalid`] for anything that is not a complete,
/// valid gzip stream, including empty input.
pub fn inflate_bounded(input: &[u8], max_out: usize) -> Result<Bytes, GzipError> {
    if input.len() < MIN_GZIP_LEN {
        return Err(EOF);
    }
    let out = with_inflater(|dec| {
        let mut inflater = Inflater {
            dec,
            rest: input,
            out: Vec::with_capacity(initial_capacity(input, max_out)),
            max_out,
            member_start: 0,
        };
        inflater.run().map(|()| inflater.out)
    })
    .map_err(|e| match e {
        GzipError::TooLarge { max, .. } => GzipError::TooLarge {
            max,
            declared: u64::from(declared_size(input)),
        },
        other => other,
    })?;
    Ok(Bytes::from(out))
}

/// Runs `f` with this thread's inflater (made on first use), then keeps it for the next
/// call. During thread teardown, when the slot is gone, a fresh one is used and dropped.
fn with_inflater<R>(f: impl FnOnce(&mut Decompress) -> R) -> R {
    let kept = INFLATER.try_with(|c| c.borrow_mut().take()).ok().flatten();
    let mut dec = kept.unwrap_or_else(|| Decompress::new(false));
    let r = f(&mut dec);
    let _ = INFLATER.try_with(|c| *c.borrow_mut() = Some(dec));
    r
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

/// The length of the member header at the start of `b` (RFC 1952 §2.3), checked as zlib
/// checks it: magic, method 8 (deflate), no reserved flag, and the header CRC when FHCRC
/// is set.
///
/// # Errors
/// `unexpected EOF` when `b` ends inside the header, `invalid compressed data` otherwise.
fn header_len(b: &[u8]) -> Result<usize, GzipError> {
    for (i, want) in GZIP_MAGIC.iter().enumerate() {
        match b.get(i) {
            None => return Err(EOF),
            Some(got) if got != want => return Err(INVALID),
            Some(_) => {}
        }
    }
    let fixed = b.first_chunk::<HEADER_LEN>().ok_or(EOF)?;
    let flags = fixed[3];
    if flags & FRESERVED != 0 {
        return Err(INVALID);
    }
    let mut at = HEADER_LEN;
    if flags & FEXTRA != 0 {
        let xlen = b.get(at..at + 2).ok_or(EOF)?;
        at += 2 + usize::from(u16::from_le_bytes([xlen[0], xlen[1]]));
        if at > b.len() {
            return Err(EOF);
        }
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let nul = b.get(at..).and_then(|s| s.iter().position(|&c| c == 0));
            at += nul.ok_or(EOF)? + 1;
        }
    }
    if flags & FHCRC != 0 {
        let stored = b.get(at..at + 2).ok_or(EOF)?;
        let mut crc = Crc::new();
        crc.update(&b[..at]);
        // The header CRC is the low 16 bits of the CRC-32 of the header bytes before it.
        if crc.sum().to_le_bytes()[..2] != *stored {
            return Err(INVALID);
        }
        at += 2;
    }
    Ok(at)
}

/// Outcome of one inflate step.
struct Step {
    status: Status,
    consumed: usize,
    produced: usize,
}

/// State of one bounded inflate: the (borrowed, reused) decoder, the unread input and the
/// output.
struct Inflater<'a> {
    dec: &'a mut Decompress,
    rest: &'a [u8],
    out: Vec<u8>,
    max_out: usize,
    /// Where the current member's output starts in `out` (its CRC and ISIZE cover it).
    member_start: usize,
}

// === impl Inflater ===

impl Inflater<'_> {
    fn run(&mut self) -> Result<(), GzipError> {
        loop {
            let header = header_len(self.rest)?;
            self.rest = &self.rest[header..];
            self.dec.reset(false);
            self.member_start = self.out.len();
            self.inflate_member()?;
            self.check_trailer()?;
            // Another member may follow; like Go, anything that is not a valid gzip header
            // here is an error (reported by `header_len`).
            if self.rest.is_empty() {
                return Ok(());
            }
        }
    }

    /// Inflates one member's deflate data, up to the end of its final block.
    fn inflate_member(&mut self) -> Result<(), GzipError> {
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
                Status::StreamEnd => return Ok(()),
                Status::Ok | Status::BufError if step.consumed == 0 && step.produced == 0 => {
                    // Room for output and no progress: the input ended mid-stream.
                    return Err(EOF);
                }
                Status::Ok | Status::BufError => {}
            }
        }
    }

    /// The member trailer: the CRC-32 and the length (mod 2^32) of what the member inflated
    /// to, as zlib checks them.
    fn check_trailer(&mut self) -> Result<(), GzipError> {
        let (trailer, rest) = self.rest.split_first_chunk::<TRAILER_LEN>().ok_or(EOF)?;
        let member = &self.out[self.member_start..];
        let mut crc = Crc::new();
        crc.update(member);
        let [c0, c1, c2, c3, s0, s1, s2, s3] = *trailer;
        // ISIZE is the length modulo 2^32: compare the low 32 bits only.
        let isize_ok = (member.len() as u64 & u64::from(u32::MAX))
            == u64::from(u32::from_le_bytes([s0, s1, s2, s3]));
        if crc.sum() != u32::from_le_bytes([c0, c1, c2, c3]) || !isize_ok {
            return Err(INVALID);
        }
        self.rest = rest;
        Ok(())
    }

    /// Inflates straight into the output's spare capacity (never reallocates).
    fn step_into_out(&mut self) -> Result<Step, GzipError> {
        let (in0, out0) = (self.dec.total_in(), self.dec.total_out());
        let status = self
            .dec
            .decompress_vec(self.rest, &mut self.out, FlushDecompress::None)
            .map_err(|_| INVALID)?;
        Ok(self.step_since(status, in0, out0))
    }

    /// The output is full: inflate into a one-byte scratch to learn whether more output
    /// exists (or just the end of the final block is left) before committing to a larger
    /// buffer.
    fn step_probe(&mut self) -> Result<Step, GzipError> {
        let mut probe = [0u8; 1];
        let (in0, out0) = (self.dec.total_in(), self.dec.total_out());
        let status = self
            .dec
            .decompress(self.rest, &mut probe, FlushDecompress::None)
            .map_err(|_| INVALID)?;
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

    /// A member built by hand: `flags` with the optional header fields they announce (extra
    /// field, name, comment, header CRC), raw deflate data, then CRC-32 and ISIZE.
    fn member_with(flags: u8, data: &[u8], header_crc_ok: bool) -> Vec<u8> {
        use std::io::Write as _;
        let mut out = vec![0x1f, 0x8b, 0x08, flags, 1, 2, 3, 4, 0, 3];
        if flags & FEXTRA != 0 {
            out.extend_from_slice(&[4, 0, b'A', b'P', 0, 0]);
        }
        if flags & FNAME != 0 {
            out.extend_from_slice(b"profile.pb\0");
        }
        if flags & FCOMMENT != 0 {
            out.extend_from_slice(b"a comment\0");
        }
        if flags & FHCRC != 0 {
            let mut crc = Crc::new();
            crc.update(&out);
            let mut hcrc = [crc.sum().to_le_bytes()[0], crc.sum().to_le_bytes()[1]];
            if !header_crc_ok {
                hcrc[0] ^= 0xff;
            }
            out.extend_from_slice(&hcrc);
        }
        let mut enc = flate2::write::DeflateEncoder::new(out, flate2::Compression::default());
        enc.write_all(data).expect("write to Vec");
        let mut out = enc.finish().expect("finish to Vec");
        let mut crc = Crc::new();
        crc.update(data);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }

    #[test]
    fn optional_header_fields_are_skipped_and_checked() {
        let data = b"pprof bytes, pprof bytes, pprof bytes".repeat(20);
        for flags in 0..0x20u8 {
            let gz = member_with(flags, &data, true);
            assert_eq!(
                inflate_bounded(&gz, 1 << 20).as_deref(),
                Ok(&data[..]),
                "flags {flags:#x}"
            );
        }
        // A wrong header CRC, a reserved flag, another method: refused as zlib refuses them.
        let bad_hcrc = member_with(FHCRC | FNAME, &data, false);
        assert_eq!(inflate_bounded(&bad_hcrc, 1 << 20), Err(INVALID));
        let mut reserved = member_with(0, &data, true);
        reserved[3] = 0x20;
        assert_eq!(inflate_bounded(&reserved, 1 << 20), Err(INVALID));
        let mut method = member_with(0, &data, true);
        method[2] = 7;
        assert_eq!(inflate_bounded(&method, 1 << 20), Err(INVALID));
        // A header cut inside its name: the stream ended too early.
        let named = member_with(FNAME, &data, true);
        assert_eq!(header_len(&named[..14]), Err(EOF));
        assert_eq!(header_len(&named), Ok(HEADER_LEN + b"profile.pb\0".len()));
        // A wrong CRC-32 in the trailer.
        let mut crc = gzip(&data);
        let n = crc.len();
        crc[n - 8] ^= 1;
        assert_eq!(inflate_bounded(&crc, 1 << 20), Err(INVALID));
    }

    /// The thread's inflater is reused across calls; a stream that failed half-way
    /// (corrupt, truncated, over the limit, trailing garbage) leaves nothing behind that
    /// changes how the next one decodes.
    #[test]
    fn reused_inflater_recovers_after_errors() {
        let a: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 253) as u8).collect();
        let b = b"the next body, the next body".repeat(100);
        let (gz_a, gz_b) = (gzip(&a), gzip(&b));
        assert_eq!(inflate_bounded(&gz_a, 1 << 20).as_deref(), Ok(&a[..]));
        let kept = INFLATER.with(|c| c.borrow().is_some());
        assert!(kept, "the inflater is kept for the next call");
        let mut corrupt = gz_a.clone();
        corrupt[gz_a.len() / 2] ^= 0x55;
        let mut trailing = gz_b.clone();
        trailing.extend_from_slice(&gz_a[..gz_a.len() / 3]);
        let failing: [(&[u8], usize); 5] = [
            (&gz_a[..gz_a.len() / 2], 1 << 20),
            (&corrupt, 1 << 20),
            (&gz_a, 1000),
            (&trailing, 1 << 20),
            (&gz_a[..gz_a.len() - 3], 1 << 20),
        ];
        for (bad, max) in failing {
            assert!(inflate_bounded(bad, max).is_err());
            // The very next stream decodes exactly, whatever state the failure left.
            assert_eq!(inflate_bounded(&gz_b, 1 << 20).as_deref(), Ok(&b[..]));
            assert_eq!(inflate_bounded(&gz_a, 1 << 20).as_deref(), Ok(&a[..]));
        }
    }

    proptest::proptest! {
        /// Any sequence of valid, truncated and corrupted streams through the same (reused)
        /// inflater gives what a fresh reference decoder (flate2's `MultiGzDecoder`) gives
        /// for the valid ones, and an error, never a wrong output, otherwise.
        #[test]
        fn reused_inflater_matches_a_fresh_reference(
            bodies in proptest::collection::vec(
                (proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
                 0u8..0x20, 0u8..4, proptest::prelude::any::<usize>()),
                1..6,
            )
        ) {
            use std::io::Read as _;
            for (data, flags, damage, at) in bodies {
                let mut gz = member_with(flags, &data, true);
                match damage {
                    1 => gz.truncate(at % gz.len()),
                    2 => {
                        let i = at % gz.len();
                        gz[i] ^= 0x5a;
                    }
                    3 => gz.extend_from_slice(&member_with(0, &data, true)),
                    _ => {}
                }
                let got = inflate_bounded(&gz, 1 << 20);
                let mut want = Vec::new();
                let reference = flate2::read::MultiGzDecoder::new(&gz[..]).read_to_end(&mut want);
                match (damage, got) {
                    (0, got) => proptest::prop_assert_eq!(got.as_deref(), Ok(&data[..])),
                    (3, got) => proptest::prop_assert_eq!(
                        got.as_deref(), Ok(&[&data[..], &data[..]].concat()[..])
                    ),
                    (_, Ok(out)) => {
                        // Damage that no check can see (mtime, OS byte, …) decodes as the
                        // reference does.
                        proptest::prop_assert!(reference.is_ok());
                        proptest::prop_assert_eq!(&out[..], &want[..]);
                    }
                    (_, Err(_)) => {}
                }
            }
        }
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
