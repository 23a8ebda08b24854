//! The static table (RFC 7541 Appendix A) and the dynamic table (§4).

use std::collections::VecDeque;

/// The static table: entry `i` is index `i + 1`.
pub(super) const STATIC: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// What the RFC adds to an entry's name and value length for its size (§4.1).
pub(super) const ENTRY_OVERHEAD: usize = 32;

/// The dynamic table: entries' bytes back to back in one buffer, oldest first, so an insert
/// appends and an eviction only moves a marker. The evicted bytes at the front are dropped
/// once they outnumber the live ones, which keeps the buffer under twice the table size
/// plus one entry, at an amortized O(1) per byte.
pub(super) struct DynamicTable {
    buf: Vec<u8>,
    /// The absolute offset (bytes ever appended before it) of `buf[0]`.
    base: u64,
    /// Each entry's absolute offset, name length and value length, newest first.
    entries: VecDeque<(u64, usize, usize)>,
    /// The RFC size of the entries.
    size: usize,
    max_size: usize,
}

impl DynamicTable {
    pub(super) fn new(max_size: usize) -> Self {
        Self {
            buf: Vec::new(),
            base: 0,
            entries: VecDeque::new(),
            size: 0,
            max_size,
        }
    }

    #[cfg(test)]
    pub(super) fn size(&self) -> usize {
        self.size
    }

    pub(super) fn max_size(&self) -> usize {
        self.max_size
    }

    /// A size update (§6.3): evicts entries until the table fits.
    pub(super) fn set_max_size(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.evict_to(max_size);
    }

    /// Entry `i`, 0 being the newest (index 62).
    pub(super) fn get(&self, i: usize) -> Option<(&[u8], &[u8])> {
        let &(abs, name_len, value_len) = self.entries.get(i)?;
        let start = usize::try_from(abs.checked_sub(self.base)?).ok()?;
        let entry = self
            .buf
            .get(start..start.checked_add(name_len + value_len)?)?;
        Some(entry.split_at(name_len))
    }

    /// Adds a field as the newest entry, evicting the oldest ones to make room; a field
    /// larger than the table empties it (§4.4).
    pub(super) fn insert(&mut self, name: &[u8], value: &[u8]) {
        let size = name.len() + value.len() + ENTRY_OVERHEAD;
        if size > self.max_size {
            self.clear();
            return;
        }
        self.evict_to(self.max_size - size);
        let live_from = match self.entries.back() {
            Some(&(abs, _, _)) => {
                usize::try_from(abs.saturating_sub(self.base)).unwrap_or(usize::MAX)
            }
            None => usize::MAX,
        }
        .min(self.buf.len());
        if live_from > self.buf.len() - live_from {
            self.buf.drain(..live_from);
            self.base += live_from as u64;
        }
        let abs = self.base + self.buf.len() as u64;
        self.buf.extend_from_slice(name);
        self.buf.extend_from_slice(value);
        self.entries.push_front((abs, name.len(), value.len()));
        self.size += size;
    }

    /// Evicts every entry.
    pub(super) fn clear(&mut self) {
        self.base += self.buf.len() as u64;
        self.buf.clear();
        self.entries.clear();
        self.size = 0;
    }

    fn evict_to(&mut self, max_size: usize) {
        while self.size > max_size {
            let Some((_, name_len, value_len)) = self.entries.pop_back() else {
                break;
            };
            self.size -= name_len + value_len + ENTRY_OVERHEAD;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_eviction_and_compaction() {
        let mut t = DynamicTable::new(4096);
        let mut model: VecDeque<(Vec<u8>, Vec<u8>)> = VecDeque::new();
        for i in 0..5000usize {
            let name = format!("n{i}").into_bytes();
            let value = vec![b'a' + (i % 26) as u8; (i * 7919) % 700];
            t.insert(&name, &value);
            model.push_front((name, value));
            let mut size = model
                .iter()
                .map(|(n, v)| n.len() + v.len() + 32)
                .sum::<usize>();
            while size > 4096 {
                let (n, v) = model.pop_back().unwrap();
                size -= n.len() + v.len() + 32;
            }
            assert_eq!(t.size(), size);
            for (j, (n, v)) in model.iter().enumerate() {
                assert_eq!(t.get(j), Some((&n[..], &v[..])));
            }
            assert_eq!(t.get(model.len()), None);
            assert!(t.buf.len() <= 2 * 4096 + 800, "{}", t.buf.len());
        }
    }
}
