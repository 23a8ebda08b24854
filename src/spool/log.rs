//! One log: the segments one receiving worker appends to, and one cursor per destination
//! (docs/spool.md §3). Positions are byte offsets in the concatenation of the log's
//! segment bodies (headers excluded), stable across restarts because each segment's header
//! records its first position.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use bytes::Bytes;

use super::metrics::SpoolMetrics;
use super::record::Header;
use super::segment::{self, Item, Reader};

/// A record's place in its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub seq: u64,
    pub pos: u64,
    /// Position just past the record.
    pub end: u64,
    pub unix_ms: u64,
}

/// One segment file of a log.
#[derive(Debug, Clone)]
pub struct SegmentMeta {
    pub first_seq: u64,
    pub first_pos: u64,
    /// Creation time of the first record (0 when it has none).
    pub first_ms: u64,
    pub path: PathBuf,
    /// Sequence number and position just past the last byte written.
    pub end_seq: u64,
    pub end_pos: u64,
}

impl SegmentMeta {
    /// File offset of log position `pos` (which must lie in this segment).
    pub fn offset_of(&self, pos: u64) -> u64 {
        segment::HEADER_LEN + pos.saturating_sub(self.first_pos)
    }
}

/// A destination's progress through one log.
#[derive(Debug, Default)]
pub struct DestState {
    /// The next record to hand to a delivery.
    pub next_seq: u64,
    pub next_pos: u64,
    /// Handed out, not yet acknowledged: seq → (pos, creation time).
    pub inflight: BTreeMap<u64, (u64, u64)>,
}

impl DestState {
    /// Everything before this is acknowledged: `(seq, pos)`.
    pub fn acked(&self) -> (u64, u64) {
        match self.inflight.iter().next() {
            Some((s, (p, _))) => (*s, *p),
            None => (self.next_seq, self.next_pos),
        }
    }
}

/// One destination's cursor in one log.
pub struct DestCursor {
    /// `name` and URL of the endpoint, written into the cursor file for `spool inspect`.
    pub name: String,
    pub url: String,
    pub file: PathBuf,
    state: Mutex<DestState>,
    /// Mirrors of the state for lock-free readers (budget checks, metrics).
    acked_seq: AtomicU64,
    acked_pos: AtomicU64,
    next_seq: AtomicU64,
    /// The acknowledged position last written to the cursor file.
    persisted: Mutex<(u64, u64)>,
}

impl DestCursor {
    fn new(name: &str, url: &str, file: PathBuf, seq: u64, pos: u64) -> Self {
        Self {
            name: name.to_owned(),
            url: url.to_owned(),
            file,
            state: Mutex::new(DestState {
                next_seq: seq,
                next_pos: pos,
                inflight: BTreeMap::new(),
            }),
            acked_seq: AtomicU64::new(seq),
            acked_pos: AtomicU64::new(pos),
            next_seq: AtomicU64::new(seq),
            persisted: Mutex::new((seq, pos)),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, DestState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn publish(&self, s: &DestState) {
        let (seq, pos) = s.acked();
        self.acked_seq.store(seq, Ordering::Release);
        self.acked_pos.store(pos, Ordering::Release);
        self.next_seq.store(s.next_seq, Ordering::Release);
    }

    pub fn acked_seq(&self) -> u64 {
        self.acked_seq.load(Ordering::Acquire)
    }

    pub fn acked_pos(&self) -> u64 {
        self.acked_pos.load(Ordering::Acquire)
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq.load(Ordering::Acquire)
    }

    /// Hands out `p` if this destination has nothing older waiting (it is caught up).
    pub fn claim_if_next(&self, p: &Place) -> bool {
        let mut s = self.lock();
        if s.next_seq != p.seq {
            return false;
        }
        s.next_seq = p.seq + 1;
        s.next_pos = p.end;
        s.inflight.insert(p.seq, (p.pos, p.unix_ms));
        self.publish(&s);
        true
    }

    /// Hands out records read from the backlog starting at `from`, moving the next
    /// position to `next`; false when someone else moved it meanwhile.
    pub fn claim_read(&self, from: (u64, u64), places: &[Place], next: (u64, u64)) -> bool {
        let mut s = self.lock();
        if (s.next_seq, s.next_pos) != from {
            return false;
        }
        for p in places {
            s.inflight.insert(p.seq, (p.pos, p.unix_ms));
        }
        s.next_seq = next.0;
        s.next_pos = next.1;
        self.publish(&s);
        true
    }

    /// The record `seq` is done with (delivered, refused for good, or expired).
    pub fn complete(&self, seq: u64) {
        let mut s = self.lock();
        s.inflight.remove(&seq);
        self.publish(&s);
    }

    /// Creation time of the oldest record handed out and not acknowledged.
    pub fn oldest_inflight_ms(&self) -> Option<u64> {
        self.lock().inflight.values().map(|(_, ms)| *ms).min()
    }

    /// Writes the acknowledged position to the cursor file when it moved (temporary
    /// file, fsync, rename): a crash loses at most the moves since, which are delivered
    /// again (duplicates, never losses).
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn persist(&self) -> io::Result<bool> {
        let now = (self.acked_seq(), self.acked_pos());
        let mut last = match self.persisted.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if *last == now {
            return Ok(false);
        }
        write_cursor(&self.file, &self.name, &self.url, now.0, now.1)?;
        *last = now;
        Ok(true)
    }
}

/// The file name of a destination's cursor: stable for a given endpoint name and URL.
pub fn cursor_file_name(name: &str, url: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes().chain([0]).chain(url.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("cursor-{h:016x}")
}

/// Writes a cursor file atomically.
///
/// # Errors
/// The file cannot be written or renamed.
pub fn write_cursor(path: &Path, name: &str, url: &str, seq: u64, pos: u64) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp)?;
    write!(
        f,
        "pyrogate-spool-cursor 1\nseq {seq}\npos {pos}\nname {name}\nurl {url}\n"
    )?;
    f.sync_data()?;
    std::fs::rename(&tmp, path)
}

/// A cursor file: `(seq, pos, name, url)`; `None` when it is missing or unreadable.
pub fn read_cursor(path: &Path) -> Option<(u64, u64, String, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    if lines.next()? != "pyrogate-spool-cursor 1" {
        return None;
    }
    let (mut seq, mut pos, mut name, mut url) = (None, None, String::new(), String::new());
    for l in lines {
        let (k, v) = l.split_once(' ')?;
        match k {
            "seq" => seq = v.parse().ok(),
            "pos" => pos = v.parse().ok(),
            "name" => name = v.to_owned(),
            "url" => url = v.to_owned(),
            _ => {}
        }
    }
    Some((seq?, pos?, name, url))
}

/// What [`scan`] found in a log directory.
#[derive(Debug, Default)]
pub struct Scan {
    pub segments: Vec<SegmentMeta>,
    /// Damaged records and torn tails skipped.
    pub corrupt: u64,
    /// Just past the last valid record.
    pub end_seq: u64,
    pub end_pos: u64,
    /// Segment files that were never written (all zero: created, or renamed from a
    /// spare, just before the process died): not segments, and not damage.
    pub unused: Vec<PathBuf>,
    /// Segments followed by a preallocated, never written tail: the file offset where
    /// their data ends.
    pub zero_tails: Vec<(PathBuf, u64)>,
}

/// Reads every segment of a log: their extent, and how many damaged records they hold.
/// A segment's data ends where zeros run to the end of its file (the preallocated tail).
///
/// # Errors
/// The directory cannot be listed.
pub fn scan(dir: &Path, max_record: u32) -> io::Result<Scan> {
    let mut out = Scan::default();
    for (name_seq, path) in segment::list(dir)? {
        let Ok(f) = File::open(&path) else {
            out.corrupt += 1;
            continue;
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let (first_seq, first_pos) = match segment::read_header(&f) {
            Some(h) => h,
            None if segment::zero_from(&f, 0, len).unwrap_or(false) => {
                out.unused.push(path);
                continue;
            }
            None => {
                // A damaged header: positions continue from the previous segment.
                out.corrupt += 1;
                (name_seq, out.end_pos)
            }
        };
        let mut meta = SegmentMeta {
            first_seq,
            first_pos,
            first_ms: 0,
            path: path.clone(),
            end_seq: first_seq,
            end_pos: first_pos + len.saturating_sub(segment::HEADER_LEN),
        };
        let mut r = Reader::new(f, 0, len, max_record).zero_tail();
        loop {
            match r.next_item() {
                Ok(Some(Item::Record { header, .. })) => {
                    if meta.first_ms == 0 {
                        meta.first_ms = header.unix_ms;
                    }
                    meta.end_seq = header.seq + 1;
                }
                Ok(Some(Item::Corrupt { .. } | Item::TornTail { .. })) => out.corrupt += 1,
                Ok(None) => {
                    let data_end = r.offset();
                    if data_end < len {
                        meta.end_pos = first_pos + data_end.saturating_sub(segment::HEADER_LEN);
                        out.zero_tails.push((path.clone(), data_end));
                    }
                    break;
                }
                Err(_) => {
                    out.corrupt += 1;
                    break;
                }
            }
        }
        out.end_seq = out.end_seq.max(meta.end_seq);
        out.end_pos = out.end_pos.max(meta.end_pos);
        out.segments.push(meta);
    }
    Ok(out)
}

/// Before a log is scanned for use: a spare that became a segment gets its segment name
/// (the crash came before the rename was on disk), an unused one is removed.
fn settle_spares(dir: &Path) -> io::Result<()> {
    let spares = segment::list_spares(dir)?;
    if spares.is_empty() {
        return Ok(());
    }
    for p in spares {
        let header = File::open(&p).ok().and_then(|f| segment::read_header(&f));
        match header {
            Some((seq, _)) => std::fs::rename(&p, dir.join(segment::file_name(seq)))?,
            None => std::fs::remove_file(&p)?,
        }
    }
    File::open(dir)?.sync_all()
}

/// One log of the spool.
pub struct Log {
    pub id: u32,
    pub dir: PathBuf,
    pub segments: Mutex<Vec<SegmentMeta>>,
    /// Just past the last record on disk (written and, per the fsync policy, synced).
    committed_seq: AtomicU64,
    committed_pos: AtomicU64,
    /// Just past the last record accepted into a batch (committed or not).
    reserved_pos: AtomicU64,
    /// One per destination, in the order the spool was opened with.
    pub dests: Vec<DestCursor>,
}

/// One destination as the spool knows it.
#[derive(Debug, Clone)]
pub struct DestId {
    pub name: String,
    pub url: String,
}

impl Log {
    /// Opens (or creates) the log in `dir`: scans its segments and loads the cursors of
    /// `dests`. A destination without a cursor starts at the end of the log.
    ///
    /// # Errors
    /// The directory cannot be created or listed.
    pub fn open(id: u32, dir: &Path, dests: &[DestId], max_record: u32) -> io::Result<(Self, u64)> {
        std::fs::create_dir_all(dir)?;
        settle_spares(dir)?;
        let mut scan = scan(dir, max_record)?;
        for p in &scan.unused {
            std::fs::remove_file(p)?;
        }
        // The preallocated tails are given back (new records go to a new segment).
        for (p, data_end) in &scan.zero_tails {
            std::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .and_then(|f| f.set_len(*data_end))?;
        }
        let mut end = (scan.end_seq, scan.end_pos);
        let loaded: Vec<Option<(u64, u64)>> = dests
            .iter()
            .map(|d| {
                read_cursor(&dir.join(cursor_file_name(&d.name, &d.url))).map(|(s, p, _, _)| (s, p))
            })
            .collect();
        // Everything was acknowledged and deleted: numbering continues after the cursors.
        for (s, p) in loaded.iter().flatten() {
            if *s > end.0 {
                end = (*s, (*p).max(end.1));
            }
        }
        // A last segment without a single record (its first write was torn) would have
        // the name of the segment the next record starts: it holds nothing to deliver.
        if let Some(last) = scan.segments.last()
            && last.end_seq == last.first_seq
            && last.first_seq == end.0
        {
            let path = last.path.clone();
            scan.segments.pop();
            std::fs::remove_file(&path)?;
        }
        let first = scan
            .segments
            .first()
            .map_or(end, |s| (s.first_seq, s.first_pos));
        let cursors = dests
            .iter()
            .zip(&loaded)
            .map(|(d, c)| {
                let (seq, pos) = match c {
                    // A cursor before the first segment (deleted) starts at the first one.
                    Some((s, p)) if *s < first.0 => first,
                    Some((s, p)) if *s <= end.0 => (*s, *p),
                    _ => end,
                };
                let file = dir.join(cursor_file_name(&d.name, &d.url));
                DestCursor::new(&d.name, &d.url, file, seq, pos)
            })
            .collect::<Vec<_>>();
        // A destination's cursor exists from its first record on, so that after a crash
        // it is not mistaken for one added since (which starts at the end of the log).
        for (c, loaded) in cursors.iter().zip(&loaded) {
            if loaded.is_none() {
                let (seq, pos) = (c.acked_seq(), c.acked_pos());
                write_cursor(&c.file, &c.name, &c.url, seq, pos)?;
            }
        }
        Ok((
            Self {
                id,
                dir: dir.to_owned(),
                segments: Mutex::new(scan.segments),
                committed_seq: AtomicU64::new(end.0),
                committed_pos: AtomicU64::new(end.1),
                reserved_pos: AtomicU64::new(end.1),
                dests: cursors,
            },
            scan.corrupt,
        ))
    }

    pub fn committed(&self) -> (u64, u64) {
        (
            self.committed_seq.load(Ordering::Acquire),
            self.committed_pos.load(Ordering::Acquire),
        )
    }

    pub fn reserved_pos(&self) -> u64 {
        self.reserved_pos.load(Ordering::Acquire)
    }

    pub fn reserve(&self, bytes: u64) {
        self.reserved_pos.fetch_add(bytes, Ordering::AcqRel);
    }

    /// Records a segment started by the appender.
    pub fn segment_started(&self, meta: SegmentMeta) {
        lock(&self.segments).push(meta);
    }

    /// Records that a batch ending at `(seq, pos)` is on disk.
    pub fn committed_to(&self, first_ms: u64, seq: u64, pos: u64) {
        {
            let mut segs = lock(&self.segments);
            if let Some(last) = segs.last_mut() {
                if last.first_ms == 0 {
                    last.first_ms = first_ms;
                }
                last.end_seq = seq;
                last.end_pos = pos;
            }
        }
        self.committed_pos.store(pos, Ordering::Release);
        self.committed_seq.store(seq, Ordering::Release);
    }

    /// Bytes of this log destination `i` has not had acknowledged (including the batch
    /// being written).
    pub fn pending_bytes(&self, i: usize) -> u64 {
        self.dests
            .get(i)
            .map_or(0, |d| self.reserved_pos().saturating_sub(d.acked_pos()))
    }

    /// Records this log holds for destination `i` that it has not acknowledged.
    pub fn pending_records(&self, i: usize) -> u64 {
        self.dests
            .get(i)
            .map_or(0, |d| self.committed().0.saturating_sub(d.acked_seq()))
    }

    /// Whether destination `i` has committed records not yet handed out.
    pub fn has_backlog(&self, i: usize) -> bool {
        self.dests
            .get(i)
            .is_some_and(|d| d.next_seq() < self.committed().0)
    }

    /// Creation time of the first record of the segment holding destination `i`'s next
    /// record (an upper bound on the age of its oldest undelivered record).
    pub fn backlog_first_ms(&self, i: usize) -> Option<u64> {
        let d = self.dests.get(i)?;
        let seq = d.next_seq();
        if seq >= self.committed().0 {
            return None;
        }
        let segs = lock(&self.segments);
        segs.iter()
            .rev()
            .find(|s| s.first_seq <= seq)
            .or(segs.first())
            .map(|s| s.first_ms)
            .filter(|ms| *ms > 0)
    }

    /// Reads destination `i`'s backlog from its next position: up to `max_bytes` of
    /// records (at least one). Damaged records are skipped. Returns the position it read
    /// from, the records, and the position after them.
    ///
    /// # Errors
    /// A segment cannot be read (other than having been deleted).
    #[allow(clippy::type_complexity)]
    pub fn read_backlog(
        &self,
        i: usize,
        max_bytes: u64,
        max_record: u32,
    ) -> io::Result<((u64, u64), Vec<(Place, Bytes)>, (u64, u64))> {
        let Some(d) = self.dests.get(i) else {
            return Ok(((0, 0), Vec::new(), (0, 0)));
        };
        let from = {
            let s = d.lock();
            (s.next_seq, s.next_pos)
        };
        let (committed_seq, committed_pos) = self.committed();
        let segs: Vec<SegmentMeta> = lock(&self.segments).clone();
        let mut out = Vec::new();
        let mut next = from;
        let mut bytes = 0u64;
        // The segment holding `next`, then the ones after it.
        let start = segs
            .iter()
            .rposition(|s| s.first_pos <= next.1 && s.first_seq <= next.0)
            .unwrap_or(0);
        for (k, seg) in segs.iter().enumerate().skip(start) {
            if next.1 < seg.first_pos || next.0 < seg.first_seq {
                next = (next.0.max(seg.first_seq), seg.first_pos);
            }
            let is_last = k + 1 == segs.len();
            let limit_pos = if is_last { committed_pos } else { seg.end_pos };
            if next.1 >= limit_pos {
                continue;
            }
            let f = match File::open(&seg.path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let mut r = Reader::new(
                f,
                seg.offset_of(next.1),
                seg.offset_of(limit_pos),
                max_record,
            );
            while let Some(item) = r.next_item()? {
                let after = seg.first_pos + (r.offset() - segment::HEADER_LEN);
                match item {
                    Item::Record {
                        header, bytes: b, ..
                    } => {
                        let Header { seq, unix_ms, .. } = header;
                        let pos = next.1;
                        next = (seq + 1, after);
                        if seq >= committed_seq {
                            break;
                        }
                        bytes += b.len() as u64;
                        out.push((
                            Place {
                                seq,
                                pos,
                                end: after,
                                unix_ms,
                            },
                            b,
                        ));
                        if bytes >= max_bytes {
                            return Ok((from, out, next));
                        }
                    }
                    Item::Corrupt { .. } | Item::TornTail { .. } => next.1 = after,
                }
            }
            if !is_last {
                next = (next.0.max(seg.end_seq), next.1.max(seg.end_pos));
            }
        }
        Ok((from, out, next))
    }

    /// Deletes the segments every destination has acknowledged entirely (never the one
    /// being written). Returns how many.
    pub fn delete_acknowledged(&self) -> usize {
        let min_acked = self.dests.iter().map(DestCursor::acked_seq).min();
        let Some(min_acked) = min_acked else { return 0 };
        let mut segs = lock(&self.segments);
        let mut n = 0;
        while segs.len() > 1 && segs[0].end_seq <= min_acked && segs[1].first_seq <= min_acked {
            let s = segs.remove(0);
            if std::fs::remove_file(&s.path).is_ok() {
                n += 1;
            }
        }
        n
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// How a new segment came to be (`pyrogate_spool_segments_created_total{how}`).
pub const PREPARED: &str = "prepared";
pub const INLINE: &str = "inline";

/// A spare segment file, created, preallocated and synced (file and directory) ahead of
/// need by a log's preparing thread, so that starting a segment on the appending thread
/// is a rename.
struct Spare {
    file: File,
    path: PathBuf,
}

/// What the preparing thread is asked to do.
enum PrepJob {
    /// Prepare the next spare.
    Spare,
    /// Give back the preallocated tail of a segment no longer written: its length.
    Trim(File, u64),
}

/// The appending side's handle on its preparing thread.
struct Spares {
    jobs: crossbeam_channel::Sender<PrepJob>,
    /// A prepared spare, or `None` when preparing one failed.
    ready: crossbeam_channel::Receiver<Option<Spare>>,
    /// A spare was asked for and not yet received.
    asked: bool,
}

/// The appending side of a log: the active segment file. Owned by one thread.
pub struct Appender {
    pub log: Arc<Log>,
    segment_bytes: u64,
    /// The active segment: file and write offset.
    pub file: Option<File>,
    pub offset: u64,
    /// Set after a failed write: the next batch starts a new segment.
    broken: bool,
    /// The next record's sequence number and position.
    pub next_seq: u64,
    pub next_pos: u64,
    /// The header of the segment just started: written with (and synced by) its first
    /// batch, at file offset 0.
    header: Option<[u8; segment::HEADER_LEN as usize]>,
    spares: Option<Spares>,
    metrics: Option<Arc<SpoolMetrics>>,
}

impl Appender {
    pub fn new(log: Arc<Log>, segment_bytes: u64) -> Self {
        let (seq, pos) = log.committed();
        Self {
            log,
            segment_bytes,
            file: None,
            offset: 0,
            broken: false,
            next_seq: seq,
            next_pos: pos,
            header: None,
            spares: None,
            metrics: None,
        }
    }

    /// Starts this log's preparing thread: from now on the next segment is prepared in
    /// the background while the active one fills, and syncs are counted in `metrics`.
    ///
    /// # Errors
    /// The thread cannot be started.
    pub fn with_spares(mut self, metrics: Arc<SpoolMetrics>) -> io::Result<Self> {
        let (jobs, job_rx) = crossbeam_channel::unbounded();
        let (ready_tx, ready) = crossbeam_channel::unbounded();
        let dir = self.log.dir.clone();
        let size = self.segment_bytes;
        let m = metrics.clone();
        std::thread::Builder::new()
            .name(format!("pyrogate-spool-prep{}", self.log.id))
            .spawn(move || prep_thread(&dir, size, &job_rx, &ready_tx, &m))?;
        self.spares = Some(Spares {
            jobs,
            ready,
            asked: false,
        });
        self.metrics = Some(metrics);
        self.ask_spare();
        Ok(self)
    }

    fn ask_spare(&mut self) {
        if let Some(s) = &mut self.spares
            && !s.asked
        {
            s.asked = s.jobs.send(PrepJob::Spare).is_ok();
        }
    }

    /// The prepared spare, if it is ready.
    fn take_spare(&mut self) -> Option<Spare> {
        let s = self.spares.as_mut()?;
        match s.ready.try_recv() {
            Ok(spare) => {
                s.asked = false;
                spare
            }
            Err(_) => None,
        }
    }

    /// Makes sure the active segment can take a batch of `len` bytes whose first record
    /// is `(first_seq, first_pos)`: starts a new segment when there is none yet, after a
    /// failure, or when the active one would grow past the segment size. The new
    /// segment is the prepared spare, renamed (no sync needed here: the file and its
    /// directory entry were synced when it was prepared, and a crash before the rename
    /// is on disk leaves a spare with a valid header, which the start-up scan takes for
    /// a segment); only when no spare is ready is it created here (file, preallocation,
    /// fsync of file and directory). Its header goes out with its first batch
    /// ([`Appender::take_header`]). Returns whether it started one.
    ///
    /// # Errors
    /// The segment cannot be created.
    pub fn place(&mut self, len: u64, first_seq: u64, first_pos: u64) -> io::Result<bool> {
        let full = self.offset > segment::HEADER_LEN && self.offset + len > self.segment_bytes;
        if self.file.is_some() && !self.broken && !full {
            return Ok(false);
        }
        let path = self.log.dir.join(segment::file_name(first_seq));
        let spare = self.take_spare();
        let f = match spare {
            Some(s) => match std::fs::rename(&s.path, &path) {
                Ok(()) => {
                    self.count_created(PREPARED);
                    s.file
                }
                Err(e) => {
                    tracing::warn!(spare = %s.path.display(), error = %e, "spool: cannot use a prepared segment; creating one");
                    let _ = std::fs::remove_file(&s.path);
                    self.create_inline(&path)?
                }
            },
            None => self.create_inline(&path)?,
        };
        if let Some(old) = self.file.take() {
            self.trim(old, self.offset);
        }
        self.ask_spare();
        self.log.segment_started(SegmentMeta {
            first_seq,
            first_pos,
            first_ms: 0,
            path,
            end_seq: first_seq,
            end_pos: first_pos,
        });
        self.file = Some(f);
        self.offset = segment::HEADER_LEN;
        self.header = Some(segment::header(first_seq, first_pos));
        self.broken = false;
        Ok(true)
    }

    fn count_created(&self, how: &str) {
        if let Some(m) = &self.metrics {
            m.segments_created.with_label_values(&[how]).inc();
        }
    }

    /// A new segment made on the appending thread (no spare was ready).
    fn create_inline(&self, path: &Path) -> io::Result<File> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(path)?;
        preallocate_or_not(&f, self.segment_bytes);
        let t = Instant::now();
        f.sync_all()?;
        File::open(&self.log.dir)?.sync_all()?;
        if let Some(m) = &self.metrics {
            m.observe_sync(SYNC_SEGMENT, t.elapsed());
        }
        self.count_created(INLINE);
        Ok(f)
    }

    /// The preallocated tail of a segment no longer written goes back to the disk, in
    /// the background when there is a preparing thread.
    fn trim(&self, f: File, data_end: u64) {
        match &self.spares {
            Some(s) => {
                let _ = s.jobs.send(PrepJob::Trim(f, data_end));
            }
            None => {
                let _ = f.set_len(data_end);
            }
        }
    }

    /// The header of the segment just started, once: the first batch writes it at file
    /// offset 0, just before itself (the batch goes at [`segment::HEADER_LEN`]).
    pub fn take_header(&mut self) -> Option<[u8; segment::HEADER_LEN as usize]> {
        self.header.take()
    }

    /// After a batch was written at the current offset.
    pub fn advance(&mut self, len: u64) {
        self.offset += len;
    }

    /// After a failed write: the next batch goes to a new segment.
    pub fn failed(&mut self) {
        self.broken = true;
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        // Stop the preparing thread; a spare it made and nobody took is removed (a
        // leftover one would be at the next start).
        if let Some(s) = self.spares.take() {
            drop(s.jobs);
            while let Ok(Some(spare)) = s.ready.try_recv() {
                let _ = std::fs::remove_file(&spare.path);
            }
        }
    }
}

/// `pyrogate_spool_metadata_sync_duration_seconds{kind}`.
pub const SYNC_SEGMENT: &str = "segment";
pub const SYNC_CURSOR: &str = "cursor";

/// Preallocates a segment file; when the disk cannot (full, or beyond what is free) the
/// segment grows as written instead, as it would without preallocation.
fn preallocate_or_not(f: &File, len: u64) {
    if let Err(e) = segment::preallocate(f, len) {
        // A partial allocation past the end is given back.
        let _ = f.set_len(0);
        crate::util::lograte::warn_limited("spool-prealloc", |suppressed| {
            tracing::warn!(suppressed, error = %e, "spool: cannot preallocate a segment; it grows as written");
        });
    }
}

/// The preparing thread of one log: spares on request, trims of finished segments.
fn prep_thread(
    dir: &Path,
    size: u64,
    jobs: &crossbeam_channel::Receiver<PrepJob>,
    ready: &crossbeam_channel::Sender<Option<Spare>>,
    m: &SpoolMetrics,
) {
    let mut n = 0u64;
    while let Ok(job) = jobs.recv() {
        match job {
            PrepJob::Trim(f, len) => {
                if let Err(e) = f.set_len(len) {
                    tracing::debug!(error = %e, "spool: cannot trim a finished segment");
                }
            }
            PrepJob::Spare => {
                let spare = match prepare_spare(dir, &mut n, size, m) {
                    Ok(s) => Some(s),
                    Err(e) => {
                        crate::util::lograte::warn_limited("spool-spare", |suppressed| {
                            tracing::warn!(suppressed, error = %e, "spool: cannot prepare the next segment; it will be created when needed");
                        });
                        None
                    }
                };
                if let Err(crossbeam_channel::SendError(Some(s))) = ready.send(spare) {
                    let _ = std::fs::remove_file(&s.path);
                    return;
                }
            }
        }
    }
}

/// Creates, preallocates and syncs (file, then directory) the next spare in `dir`.
fn prepare_spare(dir: &Path, n: &mut u64, size: u64, m: &SpoolMetrics) -> io::Result<Spare> {
    let (file, path) = loop {
        let path = dir.join(segment::spare_name(*n));
        *n += 1;
        match std::fs::OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(&path)
        {
            Ok(f) => break (f, path),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    };
    let r = (|| {
        preallocate_or_not(&file, size);
        let t = Instant::now();
        file.sync_all()?;
        File::open(dir)?.sync_all()?;
        m.observe_sync(SYNC_SEGMENT, t.elapsed());
        Ok(())
    })();
    match r {
        Ok(()) => Ok(Spare { file, path }),
        Err(e) => {
            let _ = std::fs::remove_file(&path);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;
    use crate::spool::record;
    use proptest::prelude::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("pyrogate-log-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn dests() -> Vec<DestId> {
        vec![
            DestId {
                name: "a".into(),
                url: "http://a".into(),
            },
            DestId {
                name: "b".into(),
                url: "http://b".into(),
            },
        ]
    }

    /// Appends `n` records of `body` bytes each in batches of 3, as the committer does.
    fn append(log: &Arc<Log>, a: &mut Appender, n: u64, body: usize) -> Vec<Place> {
        let mut places = Vec::new();
        let mut left = n;
        while left > 0 {
            let k = left.min(3);
            left -= k;
            let mut buf = Vec::new();
            let (first_seq, first_pos) = (a.next_seq, a.next_pos);
            for _ in 0..k {
                let start = buf.len();
                record::encode(
                    &mut buf,
                    a.next_seq,
                    1000 + a.next_seq,
                    1,
                    "/ingest?name=x",
                    &[],
                    None,
                    1,
                    body as u64,
                    &[Bytes::from(vec![a.next_seq as u8; body])],
                )
                .expect("encode");
                let len = (buf.len() - start) as u64;
                places.push(Place {
                    seq: a.next_seq,
                    pos: a.next_pos,
                    end: a.next_pos + len,
                    unix_ms: 1000 + a.next_seq,
                });
                a.next_seq += 1;
                a.next_pos += len;
                log.reserve(len);
            }
            a.place(buf.len() as u64, first_seq, first_pos)
                .expect("segment");
            let header = a.take_header();
            let f = a.file.as_ref().expect("file");
            if let Some(h) = header {
                f.write_all_at(&h, 0).expect("header");
            }
            f.write_all_at(&buf, a.offset).expect("write");
            a.advance(buf.len() as u64);
            log.committed_to(1000 + first_seq, a.next_seq, a.next_pos);
        }
        places
    }

    proptest! {
        /// Whatever order deliveries finish in, the acknowledged cursor is exactly the
        /// first record not finished.
        #[test]
        fn acked_is_the_first_unfinished_record(order in Just((0u64..40).collect::<Vec<_>>()).prop_shuffle()) {
            let c = DestCursor::new("a", "u", PathBuf::from("/nonexistent"), 0, 0);
            for s in 0..40u64 {
                let p = Place { seq: s, pos: s * 10, end: s * 10 + 10, unix_ms: s };
                prop_assert!(c.claim_if_next(&p), "claim {}", s);
            }
            let gap = Place { seq: 41, pos: 410, end: 420, unix_ms: 0 };
            prop_assert!(!c.claim_if_next(&gap), "out of order");
            let mut done = std::collections::BTreeSet::new();
            for s in order {
                c.complete(s);
                done.insert(s);
                let first = (0..40u64).find(|x| !done.contains(x)).unwrap_or(40);
                prop_assert_eq!(c.acked_seq(), first);
                prop_assert_eq!(c.acked_pos(), first * 10);
            }
        }
    }

    #[test]
    fn backlog_reads_in_order_across_segments_and_cursors_survive_reopening() {
        let dir = tmp("backlog");
        let (log, corrupt) = Log::open(0, &dir, &dests(), 1 << 20).expect("open");
        assert_eq!(corrupt, 0);
        let log = Arc::new(log);
        let mut a = Appender::new(log.clone(), 64 << 10);
        let places = append(&log, &mut a, 30, 9000);
        assert!(lock(&log.segments).len() >= 4, "segments rotate at 64 KiB");
        assert_eq!(log.pending_records(0), 30);
        assert!(log.has_backlog(0) && log.has_backlog(1));
        // Destination 0 reads everything in chunks, claims and acknowledges it.
        let mut seen = Vec::new();
        while log.has_backlog(0) {
            let (from, recs, next) = log.read_backlog(0, 50_000, 1 << 20).expect("read");
            assert!(!recs.is_empty());
            let ps: Vec<Place> = recs.iter().map(|(p, _)| *p).collect();
            assert!(log.dests[0].claim_read(from, &ps, next));
            for p in &ps {
                log.dests[0].complete(p.seq);
            }
            seen.extend(ps);
        }
        assert_eq!(seen, places);
        assert_eq!(log.pending_bytes(0), 0);
        // Destination 1 has acknowledged nothing: no segment may go.
        assert_eq!(log.delete_acknowledged(), 0);
        // Destination 1 acknowledges the first 20.
        let (from, recs, next) = log.read_backlog(1, 20 * 9200, 1 << 20).expect("read");
        let ps: Vec<Place> = recs.iter().map(|(p, _)| *p).collect();
        assert!(log.dests[1].claim_read(from, &ps, next));
        for p in ps.iter().take(20) {
            log.dests[1].complete(p.seq);
        }
        let acked1 = log.dests[1].acked_seq();
        assert_eq!(acked1, 20);
        assert!(log.delete_acknowledged() >= 1);
        for d in &log.dests {
            d.persist().expect("persist");
        }
        drop(a);
        let (again, _) = Log::open(0, &dir, &dests(), 1 << 20).expect("reopen");
        assert_eq!(again.dests[0].acked_seq(), 30);
        assert_eq!(again.dests[1].acked_seq(), 20);
        assert_eq!(again.committed().0, 30);
        assert_eq!(again.pending_records(1), 10);
        let again = Arc::new(again);
        let (_, recs, _) = again.read_backlog(1, u64::MAX, 1 << 20).expect("read");
        let seqs: Vec<u64> = recs.iter().map(|(p, _)| p.seq).collect();
        assert_eq!(seqs, (20..30).collect::<Vec<_>>());
        // A destination added later starts at the end of the log.
        let mut more = dests();
        more.push(DestId {
            name: "c".into(),
            url: "http://c".into(),
        });
        drop(again);
        let (third, _) = Log::open(0, &dir, &more, 1 << 20).expect("reopen");
        assert_eq!(third.dests[2].acked_seq(), 30);
        assert!(!third.has_backlog(2));
    }

    fn metrics() -> Arc<SpoolMetrics> {
        Arc::new(SpoolMetrics::register(&prometheus::Registry::new()).expect("metrics"))
    }

    fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("dir")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.to_str().is_some_and(|n| n.ends_with(suffix)))
            .collect();
        v.sort();
        v
    }

    /// Waits (bounded) for the preparing thread's spare.
    fn wait_spare(a: &Appender) {
        let ready = &a.spares.as_ref().expect("spares").ready;
        for _ in 0..1000 {
            if !ready.is_empty() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        panic!("no spare prepared");
    }

    /// Segments prepared in the background and preallocated: the appending thread renames
    /// them, finished ones are trimmed, and a reopening (as after `kill -9`, with the
    /// active segment's zero tail and an unused spare) replays every record and counts no
    /// damage.
    #[test]
    fn prepared_preallocated_segments_replay_without_damage() {
        let dir = tmp("spares");
        let (log, _) = Log::open(0, &dir, &dests(), 1 << 20).expect("open");
        let log = Arc::new(log);
        let m = metrics();
        let mut a = Appender::new(log.clone(), 64 << 10)
            .with_spares(m.clone())
            .expect("spares");
        let mut places = Vec::new();
        for _ in 0..6 {
            wait_spare(&a);
            places.extend(append(&log, &mut a, 5, 9000));
        }
        let prepared = m.segments_created.with_label_values(&[PREPARED]).get();
        assert!(prepared >= 4, "prepared {prepared}");
        assert!(
            m.metadata_sync
                .with_label_values(&[SYNC_SEGMENT])
                .get_sample_count()
                >= 4
        );
        wait_spare(&a);
        let segs = files(&dir, ".seg");
        assert!(segs.len() >= 4, "{segs:?}");
        // The active one is preallocated (when the filesystem can), the finished ones
        // trimmed to their data.
        let probe = std::fs::File::create(dir.join("probe")).expect("probe");
        let can = segment::preallocate(&probe, 1 << 16).expect("fallocate");
        if can {
            let active = std::fs::metadata(segs.last().expect("active"))
                .expect("meta")
                .len();
            assert_eq!(active, 64 << 10);
        }
        for s in &segs[..segs.len() - 1] {
            let f = File::open(s).expect("open");
            let len = f.metadata().expect("meta").len();
            assert!(len < 64 << 10, "{} {len}", s.display());
            let mut r = Reader::new(f, 0, len, 1 << 20);
            while let Some(item) = r.next_item().expect("read") {
                assert!(matches!(item, Item::Record { .. }), "{item:?}");
            }
        }
        // "kill -9": the appender and its thread vanish without cleaning up.
        std::mem::forget(a);
        assert_eq!(files(&dir, ".spare").len(), 1);
        // A segment renamed from a spare just before the crash, never written.
        let unused = dir.join(segment::file_name(1_000_000));
        let f = File::create(&unused).expect("unused");
        let _ = segment::preallocate(&f, 1 << 16);
        drop(f);
        drop(log);
        let (again, corrupt) = Log::open(0, &dir, &dests(), 1 << 20).expect("reopen");
        assert_eq!(corrupt, 0, "a zero tail and unused files are not damage");
        assert_eq!(again.committed().0, 30);
        assert!(files(&dir, ".spare").is_empty());
        assert!(!unused.exists());
        let again = Arc::new(again);
        let (_, recs, _) = again.read_backlog(0, u64::MAX, 1 << 20).expect("read");
        let got: Vec<Place> = recs.iter().map(|(p, _)| *p).collect();
        assert_eq!(got, places);
        // The zero tail was given back.
        for s in files(&dir, ".seg") {
            assert!(std::fs::metadata(&s).expect("meta").len() < 64 << 10);
        }
        // New records continue the log in a new segment.
        let mut b = Appender::new(again.clone(), 64 << 10);
        let more = append(&again, &mut b, 2, 100);
        assert_eq!(more[0].seq, 30);
        assert_eq!(more[0].pos, places.last().expect("last").end);
    }

    /// A spare that became a segment but whose rename did not reach the disk before a
    /// crash is replayed (and renamed); a torn first write of the last segment leaves a
    /// segment without records, which is removed rather than clobbered by the next one.
    #[test]
    fn a_used_spare_is_a_segment_and_an_empty_last_segment_goes() {
        let dir = tmp("used-spare");
        let (log, _) = Log::open(0, &dir, &dests(), 1 << 20).expect("open");
        let log = Arc::new(log);
        let mut a = Appender::new(log.clone(), 1 << 20);
        let places = append(&log, &mut a, 4, 1000);
        drop(a);
        drop(log);
        let seg = files(&dir, ".seg").pop().expect("segment");
        std::fs::rename(&seg, dir.join(segment::spare_name(3))).expect("rename");
        // The torn first write of a later segment: a header, then half a record.
        let mut torn = segment::header(4, places[3].end).to_vec();
        torn.extend_from_slice(&[0x50, 0x47, 0x50, 0x52, 0xff, 0x0f]);
        std::fs::write(dir.join(segment::file_name(4)), &torn).expect("torn");
        let (again, corrupt) = Log::open(0, &dir, &dests(), 1 << 20).expect("reopen");
        assert_eq!(corrupt, 1, "the torn record");
        assert_eq!(again.committed().0, 4);
        assert_eq!(files(&dir, ".seg"), vec![seg]);
        assert!(files(&dir, ".spare").is_empty());
        let again = Arc::new(again);
        let (_, recs, _) = again.read_backlog(1, u64::MAX, 1 << 20).expect("read");
        let got: Vec<Place> = recs.iter().map(|(p, _)| *p).collect();
        assert_eq!(got, places);
    }
}
