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
/// How much a reader asks the file for at a time.
const READ_CHUNK: usize = 256 << 10;

/// The name of the segment whose first record has sequence number `first_seq`.
pub fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SUFFIX}")
}

/// The segments in `dir`, ordered by first sequence number (from their names).
///
/// # Errors
/// `dir` cannot be listed.
pub fn list(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
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
        }
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
        let f = File::open(path).expect("open");
        let len = f.metadata().expect("meta").len();
        let mut r = Reader::new(f, 0, len, 1 << 20);
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
}
