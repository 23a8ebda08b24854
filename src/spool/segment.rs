//! Segment files: naming, the file header, and a bounded reader that walks the records of
//! one segment, skipping corrupt ones and reporting a torn tail (docs/spool.md §2).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::record::{self, Header, RecordError};

/// `PGSPOOL1` | first_seq u64 | first_pos u64 | CRC32C of the 24 bytes before.
pub const HEADER_LEN: u64 = 28;
const FILE_MAGIC: &[u8; 8] = b"PGSPOOL1";
const SUFFIX: &str = ".seg";
/// A segment file prepared ahead of need (created, preallocated and synced on a
/// background thread), not yet in use: it has no header until it becomes a segment.
const SPARE_SUFFIX: &str = ".spare";
/// How much a reader asks the file for at a time.
const READ_CHUNK: usize = 256 << 10;

/// The name of the segment whose first record has sequence number `first_seq`.
pub fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SUFFIX}")
}

/// The name of the `n`th spare segment file.
pub fn spare_name(n: u64) -> String {
    format!("{n:020}{SPARE_SUFFIX}")
}

/// The segments in `dir`, ordered by first sequence number (from their names). A spare
/// whose header is valid became a segment and holds records (the crash came before its
/// rename was on disk): it is listed under the header's sequence number.
///
/// # Errors
/// `dir` cannot be listed.
pub fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(SPARE_SUFFIX) {
            if let Some((seq, _)) = File::open(e.path()).ok().and_then(|f| read_header(&f)) {
                out.push((seq, e.path()));
            }
            continue;
        }
        let Some(stem) = name.strip_suffix(SUFFIX) else {
            continue;
        };
        if let Ok(seq) = stem.parse::<u64>() {
            out.push((seq, e.path()));
        }
    }
    out.sort_by_key(|(s, _)| *s);
    Ok(out)
}

/// The spare files in `dir` (used or not).
///
/// # Errors
/// `dir` cannot be listed.
pub fn list_spares(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        if e.file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(SPARE_SUFFIX))
        {
            out.push(e.path());
        }
    }
    Ok(out)
}

/// Whether the bytes of `f` from `from` up to `to` (or its end) are all zero: the
/// preallocated, never written tail of a segment.
///
/// # Errors
/// The file cannot be read.
pub fn zero_from(f: &File, from: u64, to: u64) -> io::Result<bool> {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut at = from;
    while at < to {
        let want = ((to - at) as usize).min(buf.len());
        let n = match f.read_at(&mut buf[..want], at) {
            Ok(0) => return Ok(true),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf[..n].iter().any(|b| *b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

/// Reserves `len` bytes of disk for `f` (`fallocate`), so that appending within them
/// changes neither the file's size nor its block map. Returns false when the filesystem
/// cannot preallocate (the file then grows as it is written, as without it).
///
/// # Errors
/// Anything but "not supported" (e.g. the disk is full).
pub fn preallocate(f: &File, len: u64) -> io::Result<bool> {
    use std::os::fd::AsRawFd as _;
    let Ok(len) = libc::off_t::try_from(len) else {
        return Ok(false);
    };
    // SAFETY: fallocate on a file descriptor we own; no memory is involved.
    let r = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, len) };
    if r == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EOPNOTSUPP | libc::ENOSYS) => Ok(false),
        _ => Err(e),
    }
}

/// The 28-byte file header.
pub fn header(first_seq: u64, first_pos: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(FILE_MAGIC);
    h[8..16].copy_from_slice(&first_seq.to_le_bytes());
    h[16..24].copy_from_slice(&first_pos.to_le_bytes());
    let crc = crc32c::crc32c(&h[..24]);
    h[24..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Reads a file header: `(first_seq, first_pos)`, or `None` when it is damaged.
pub fn read_header(f: &File) -> Option<(u64, u64)> {
    let mut h = [0u8; HEADER_LEN as usize];
    f.read_exact_at(&mut h, 0).ok()?;
    if &h[..8] != FILE_MAGIC {
        return None;
    }
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&h[24..]);
    if crc32c::crc32c(&h[..24]) != u32::from_le_bytes(crc) {
        return None;
    }
    let mut a = [0u8; 8];
    a.copy_from_slice(&h[8..16]);
    let seq = u64::from_le_bytes(a);
    a.copy_from_slice(&h[16..24]);
    Some((seq, u64::from_le_bytes(a)))
}

/// What a [`Reader`] finds.
#[derive(Debug)]
pub enum Item {
    /// A whole, checksummed record at file offset `offset`; `bytes` is the record.
    Record {
        header: Header,
        offset: u64,
        bytes: Bytes,
    },
    /// `len` bytes at `offset` that are not a valid record (skipped to the next one).
    Corrupt { offset: u64, len: u64 },
    /// The segment ends inside a record (a write the process did not finish).
    TornTail { offset: u64, len: u64 },
}

/// Walks the records of one segment from a file offset up to a limit.
pub struct Reader {
    file: File,
    /// File offset of `buf[0]`.
    buf_off: u64,
    buf: Vec<u8>,
    /// Consumed bytes of `buf`.
    at: usize,
    limit: u64,
    max_record: u32,
    /// Whether zeros up to the limit end the segment quietly (see [`Reader::zero_tail`]).
    zero_tail: bool,
}

impl Reader {
    /// A reader of `file` from `from` (at least the header) to `limit` (the file's length,
    /// or the committed end of the segment being written).
    pub fn new(file: File, from: u64, limit: u64, max_record: u32) -> Self {
        let from = from.max(HEADER_LEN);
        Self {
            file,
            buf_off: from,
            buf: Vec::new(),
            at: 0,
            limit: limit.max(from),
            max_record,
            zero_tail: false,
        }
    }

    /// Zeros from a record boundary up to the limit (the file's end) are the end of the
    /// data, not a damaged record: a preallocated segment is zero beyond what was
    /// written. Zeros followed by anything else are still reported as damage. For
    /// readers of whole files (start-up scan); a reader bounded by the committed end
    /// never reaches the tail.
    pub fn zero_tail(mut self) -> Self {
        self.zero_tail = true;
        self
    }

    /// The file offset of the next item.
    pub fn offset(&self) -> u64 {
        self.buf_off + self.at as u64
    }

    /// Makes at least `need` unconsumed bytes available if the file has them; false at the
    /// limit.
    fn fill(&mut self, need: usize) -> io::Result<bool> {
        if self.buf.len() - self.at >= need {
            return Ok(true);
        }
        let end = self.buf_off + self.buf.len() as u64;
        if end >= self.limit {
            return Ok(false);
        }
        self.buf.drain(..self.at);
        self.buf_off += self.at as u64;
        self.at = 0;
        let want = need
            .max(READ_CHUNK)
            .min((self.limit - end) as usize + self.buf.len());
        let have = self.buf.len();
        let grow = want.saturating_sub(have);
        self.buf.resize(have + grow, 0);
        let mut got = 0;
        while got < grow {
            match self
                .file
                .read_at(&mut self.buf[have + got..], end + got as u64)
            {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.buf.truncate(have + got);
                    return Err(e);
                }
            }
        }
        self.buf.truncate(have + got);
        if got == 0 {
            // The file is shorter than the limit said: nothing more will come.
            self.limit = end;
        }
        Ok(self.buf.len() - self.at >= need)
    }

    /// The next item, `None` at the limit.
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn next_item(&mut self) -> io::Result<Option<Item>> {
        if !self.fill(1)? {
            return Ok(None);
        }
        let offset = self.offset();
        if self.zero_tail && self.at_zero_tail()? {
            // The data ends here: the reader stops, `offset()` tells where.
            self.buf.truncate(self.at);
            self.limit = offset;
            return Ok(None);
        }
        loop {
            match record::check(&self.buf[self.at..], self.max_record) {
                Ok(h) => {
                    let n = h.record_len();
                    let bytes = Bytes::copy_from_slice(&self.buf[self.at..self.at + n]);
                    self.at += n;
                    return Ok(Some(Item::Record {
                        header: h,
                        offset,
                        bytes,
                    }));
                }
                Err(RecordError::Short { need, .. }) => {
                    if self.fill(need)? {
                        continue;
                    }
                    let len = (self.buf.len() - self.at) as u64;
                    self.at = self.buf.len();
                    return Ok(Some(Item::TornTail { offset, len }));
                }
                Err(_) => return self.skip_corrupt(offset).map(Some),
            }
        }
    }

    /// Whether the next bytes start with a zero record magic and everything from here to
    /// the limit is zero.
    fn at_zero_tail(&mut self) -> io::Result<bool> {
        let head = &self.buf[self.at..];
        if head.iter().take(4).any(|b| *b != 0) {
            return Ok(false);
        }
        if head.iter().any(|b| *b != 0) {
            return Ok(false);
        }
        let end = self.buf_off + self.buf.len() as u64;
        zero_from(&self.file, end, self.limit)
    }

    /// Skips the damaged bytes at `offset`: the record's own length when a valid record
    /// follows it, else up to the next magic (or the end).
    fn skip_corrupt(&mut self, offset: u64) -> io::Result<Item> {
        let start = self.at;
        let stated = {
            let b = &self.buf[start..];
            (b.len() >= 8).then(|| {
                let mut a = [0u8; 4];
                a.copy_from_slice(&b[4..8]);
                u32::from_le_bytes(a)
            })
        };
        if let Some(len) = stated.filter(|l| *l <= self.max_record) {
            let next = record::HEADER_LEN + len as usize;
            if self.fill(next + record::HEADER_LEN)? {
                let b = &self.buf[self.at..];
                if matches!(
                    record::check(&b[next..], self.max_record),
                    Ok(_) | Err(RecordError::Short { .. })
                ) {
                    self.at += next;
                    return Ok(Item::Corrupt {
                        offset,
                        len: next as u64,
                    });
                }
            }
        }
        // Search from the byte after `offset`, by absolute file offset: `fill` moves the
        // buffer.
        let mut from_abs = offset + 1;
        loop {
            let from = (from_abs - self.buf_off) as usize;
            if let Some(i) = record::find_magic(&self.buf, from) {
                let len = self.buf_off + i as u64 - offset;
                self.at = i;
                return Ok(Item::Corrupt { offset, len });
            }
            // Keep the last 3 bytes in the search: a magic may straddle the boundary.
            from_abs = (self.buf_off + self.buf.len().saturating_sub(3) as u64).max(from_abs);
            let before = self.buf.len() - self.at;
            if !self.fill(before + READ_CHUNK)? && self.buf.len() - self.at == before {
                let len = (self.buf.len() - self.at) as u64;
                self.at = self.buf.len();
                return Ok(Item::Corrupt { offset, len });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::record::{Entry, decode, encode};

    fn rec(seq: u64, body: usize) -> Vec<u8> {
        let mut out = Vec::new();
        encode(
            &mut out,
            seq,
            1000 + seq,
            1,
            "/ingest?name=a",
            &[],
            None,
            1,
            body as u64,
            &[Bytes::from(vec![seq as u8; body])],
        )
        .expect("encode");
        out
    }

    fn write_segment(path: &Path, recs: &[Vec<u8>]) {
        let mut b = header(1, 0).to_vec();
        for r in recs {
            b.extend_from_slice(r);
        }
        std::fs::write(path, b).expect("write");
    }

    fn read_all(path: &Path) -> Vec<Item> {
        read_items(path, false)
    }

    /// Every item of the file, with `zero_tail` as asked.
    fn read_items(path: &Path, zero_tail: bool) -> Vec<Item> {
        let f = File::open(path).expect("open");
        let len = f.metadata().expect("meta").len();
        let mut r = Reader::new(f, 0, len, 1 << 20);
        if zero_tail {
            r = r.zero_tail();
        }
        let mut out = Vec::new();
        while let Some(i) = r.next_item().expect("read") {
            out.push(i);
        }
        out
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pyrogate-seg-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("mkdir");
        d.join(file_name(1))
    }

    #[test]
    fn reads_every_record_across_read_chunks() {
        let p = tmp("all");
        let recs: Vec<Vec<u8>> = (1..=40).map(|i| rec(i, 20_000)).collect();
        write_segment(&p, &recs);
        let f = File::open(&p).expect("open");
        assert_eq!(read_header(&f), Some((1, 0)));
        let items = read_all(&p);
        assert_eq!(items.len(), 40);
        for (i, it) in items.iter().enumerate() {
            let Item::Record { header, bytes, .. } = it else {
                panic!("{it:?}")
            };
            assert_eq!(header.seq, i as u64 + 1);
            let e: Entry = decode(bytes).expect("decode");
            assert_eq!(e.body.len(), 20_000);
        }
    }

    #[test]
    fn a_bad_crc_skips_one_record_and_a_torn_tail_is_reported() {
        let p = tmp("bad");
        let recs: Vec<Vec<u8>> = (1..=5).map(|i| rec(i, 300)).collect();
        let mut bytes = header(1, 0).to_vec();
        for r in &recs {
            bytes.extend_from_slice(r);
        }
        // Corrupt record 3's CRC; cut record 5 in half.
        let at3 = HEADER_LEN as usize + recs[0].len() + recs[1].len();
        bytes[at3 + 9] ^= 0xff;
        bytes.truncate(bytes.len() - recs[4].len() / 2);
        std::fs::write(&p, &bytes).expect("write");
        let items = read_all(&p);
        let seqs: Vec<u64> = items
            .iter()
            .filter_map(|i| match i {
                Item::Record { header, .. } => Some(header.seq),
                _ => None,
            })
            .collect();
        assert_eq!(seqs, vec![1, 2, 4]);
        assert!(matches!(items[2], Item::Corrupt { len, .. } if len == recs[2].len() as u64));
        assert!(matches!(items.last(), Some(Item::TornTail { .. })));
    }

    #[test]
    fn garbage_in_the_middle_resyncs_at_the_next_magic() {
        let p = tmp("garbage");
        let mut bytes = header(1, 0).to_vec();
        bytes.extend_from_slice(&rec(1, 100));
        bytes.extend_from_slice(&[0xAB; 1000]);
        bytes.extend_from_slice(&rec(2, 100));
        std::fs::write(&p, &bytes).expect("write");
        let items = read_all(&p);
        assert_eq!(items.len(), 3, "{items:?}");
        assert!(matches!(items[1], Item::Corrupt { len: 1000, .. }));
        assert!(matches!(&items[2], Item::Record { header, .. } if header.seq == 2));
    }

    /// Zeros running to the end of the file end the data quietly; zeros followed by a
    /// record are damage, as any other garbage.
    #[test]
    fn a_zero_tail_ends_the_data_and_zeros_in_the_middle_are_damage() {
        let p = tmp("zero-tail");
        let recs: Vec<Vec<u8>> = (1..=3).map(|i| rec(i, 500)).collect();
        let mut bytes = header(1, 0).to_vec();
        for r in &recs {
            bytes.extend_from_slice(r);
        }
        let data_end = bytes.len() as u64;
        bytes.resize(bytes.len() + 3 * READ_CHUNK + 17, 0);
        std::fs::write(&p, &bytes).expect("write");
        let f = File::open(&p).expect("open");
        let len = f.metadata().expect("meta").len();
        let mut r = Reader::new(f, 0, len, 1 << 20).zero_tail();
        let mut n = 0;
        while let Some(item) = r.next_item().expect("read") {
            assert!(matches!(item, Item::Record { .. }), "{item:?}");
            n += 1;
        }
        assert_eq!(n, 3);
        assert_eq!(r.offset(), data_end);
        // Without the flag (a reader bounded by the committed end never gets there) the
        // zeros are one damaged stretch.
        let items = read_all(&p);
        assert_eq!(items.len(), 4);
        assert!(matches!(items[3], Item::Corrupt { .. }));

        // A torn write inside a preallocated file: the last record's second half is
        // zeros. It is damage (counted), and the data ends after it.
        let mut torn = header(1, 0).to_vec();
        for r in &recs {
            torn.extend_from_slice(r);
        }
        let cut = torn.len() - recs[2].len() / 2;
        torn[cut..].fill(0);
        torn.resize(torn.len() + READ_CHUNK, 0);
        std::fs::write(&p, &torn).expect("write");
        let items = read_items(&p, true);
        assert_eq!(items.len(), 3, "{items:?}");
        assert!(matches!(items[2], Item::Corrupt { .. }));

        // Zeros, then a valid record: the zeros are damage, the record is read.
        let mut mid = header(1, 0).to_vec();
        mid.extend_from_slice(&recs[0]);
        mid.extend_from_slice(&[0u8; 700]);
        mid.extend_from_slice(&recs[1]);
        std::fs::write(&p, &mid).expect("write");
        let items = read_items(&p, true);
        assert_eq!(items.len(), 3, "{items:?}");
        assert!(matches!(items[1], Item::Corrupt { len: 700, .. }));
        assert!(matches!(&items[2], Item::Record { header, .. } if header.seq == 2));
    }

    #[test]
    fn preallocation_keeps_the_size_and_reads_as_zeros() {
        let p = tmp("prealloc");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&p)
            .expect("create");
        let done = preallocate(&f, 1 << 20).expect("fallocate or unsupported");
        let len = f.metadata().expect("meta").len();
        if done {
            assert_eq!(len, 1 << 20);
        } else {
            assert_eq!(len, 0);
        }
        assert!(zero_from(&f, 0, len).expect("read"));
        f.write_all_at(b"x", 4096).expect("write");
        assert!(!zero_from(&f, 0, len.max(4097)).expect("read"));
        assert!(zero_from(&f, 4097, len).expect("read"));
    }
}
