//! `pyrogate spool inspect DIR`: what the spool holds per destination, read from the files
//! alone (it works on a stopped gateway's directory, or a copy of it).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::path::Path;

use super::log::{read_cursor, scan};
use super::record;
use super::segment::{Item, Reader};

/// Pending traffic of one destination.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pending {
    pub name: String,
    pub url: String,
    pub bytes: u64,
    pub records: u64,
    pub profiles: u64,
    /// Creation time of the oldest pending record (ms since the epoch).
    pub oldest_ms: Option<u64>,
}

/// The summary of a spool directory.
#[derive(Debug, Default)]
pub struct Summary {
    pub logs: usize,
    pub segments: usize,
    pub disk_bytes: u64,
    pub corrupt: u64,
    pub dests: Vec<Pending>,
}

/// Reads `dir`: every log, its segments and the cursors in it.
///
/// # Errors
/// The directory cannot be read.
pub fn summarize(dir: &Path) -> Result<Summary, String> {
    let mut out = Summary::default();
    let mut by_dest: BTreeMap<(String, String), Pending> = BTreeMap::new();
    let dirs = super::log_dirs(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for (_, path) in dirs {
        out.logs += 1;
        let s = scan(&path, u32::MAX).map_err(|e| format!("{}: {e}", path.display()))?;
        out.corrupt += s.corrupt;
        out.segments += s.segments.len();
        for seg in &s.segments {
            out.disk_bytes += std::fs::metadata(&seg.path).map_or(0, |m| m.len());
        }
        let mut cursors = Vec::new();
        for e in std::fs::read_dir(&path).map_err(|e| format!("{}: {e}", path.display()))? {
            let Ok(e) = e else { continue };
            let is_cursor = e
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with("cursor-") && !n.ends_with(".tmp"));
            if let Some(c) = is_cursor.then(|| read_cursor(&e.path())).flatten() {
                cursors.push(c);
            }
        }
        for (seq, pos, name, url) in cursors {
            let p = by_dest
                .entry((name.clone(), url.clone()))
                .or_insert_with(|| Pending {
                    name,
                    url,
                    ..Pending::default()
                });
            p.bytes += s.end_pos.saturating_sub(pos);
            for seg in s.segments.iter().filter(|g| g.end_seq > seq) {
                let Ok(f) = File::open(&seg.path) else {
                    continue;
                };
                // Up to the end of the data (a preallocated tail is not read).
                let mut r = Reader::new(f, 0, seg.offset_of(seg.end_pos), u32::MAX);
                while let Ok(Some(item)) = r.next_item() {
                    let Item::Record { header, bytes, .. } = item else {
                        continue;
                    };
                    if header.seq < seq {
                        continue;
                    }
                    p.records += 1;
                    p.profiles += record::decode(&bytes).map_or(0, |e| e.profiles);
                    p.oldest_ms = Some(
                        p.oldest_ms
                            .map_or(header.unix_ms, |o| o.min(header.unix_ms)),
                    );
                }
            }
        }
    }
    out.dests = by_dest.into_values().collect();
    Ok(out)
}

/// The text `spool inspect` prints.
pub fn render(dir: &Path, s: &Summary, now_ms: u64) -> String {
    let mut out = format!(
        "spool {}: {} log(s), {} segment(s), {} bytes on disk, {} damaged record(s) skipped\n",
        dir.display(),
        s.logs,
        s.segments,
        s.disk_bytes,
        s.corrupt
    );
    let _ = writeln!(
        out,
        "{:<20} {:<40} {:>14} {:>10} {:>10} {:>12}",
        "endpoint", "url", "pending bytes", "records", "profiles", "oldest age"
    );
    for p in &s.dests {
        let age = p.oldest_ms.map_or_else(
            || "-".to_string(),
            |ms| format!("{:.1}s", now_ms.saturating_sub(ms) as f64 / 1000.0),
        );
        let _ = writeln!(
            out,
            "{:<20} {:<40} {:>14} {:>10} {:>10} {:>12}",
            p.name, p.url, p.bytes, p.records, p.profiles, age
        );
    }
    if s.dests.is_empty() {
        out.push_str("(no destination cursors: nothing was ever spooled here)\n");
    }
    out
}
