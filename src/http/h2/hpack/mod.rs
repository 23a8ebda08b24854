//! HPACK (RFC 7541): the header block decoder for requests and the encoder helpers for
//! responses of our own HTTP/2 server.
//!
//! What a hostile header block can make the decoder do is bounded:
//! - memory: the dynamic table holds at most the `SETTINGS_HEADER_TABLE_SIZE` we advertise
//!   (its bytes in one buffer of at most twice that plus one entry), and the decoded list at most
//!   `max_list_size` (RFC 9113 §6.5.2 size) plus one table's worth while a field is checked;
//! - work: linear in the block. An indexed field (one byte that may name a 4 KiB entry, the
//!   "HPACK bomb") is copied only while the list is within `max_list_size`; past it, the rest
//!   of the block is still decoded, since the table must stay in sync with the peer's, but
//!   not stored. A literal that names a table entry and is itself indexed copies that name
//!   into the table, at most the table size per field;
//! - integers: at most 5 continuation bytes and no more than `u32::MAX`; string lengths no
//!   more than what is left of the block.
//!
//! Any error leaves the table out of sync with the peer's, so it is a connection error.
//! The encoder never indexes and never Huffman-encodes: a response's few fields are not
//! worth the table state, and the static table already covers `:status 200`.

mod huffman;
mod table;

use self::table::{DynamicTable, ENTRY_OVERHEAD, STATIC};

/// One decoded header block: names and values stored back to back in one buffer.
#[derive(Debug, Default)]
pub struct HeaderList {
    buf: Vec<u8>,
    /// Each field's name start, value start and value end in `buf`.
    fields: Vec<(usize, usize, usize)>,
}

impl HeaderList {
    pub fn clear(&mut self) {
        self.buf.clear();
        self.fields.clear();
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Fields in the order they were decoded.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.fields.iter().map(|&(name, value, end)| {
            (
                self.buf.get(name..value).unwrap_or_default(),
                self.buf.get(value..end).unwrap_or_default(),
            )
        })
    }
}

/// Why a header block could not be decoded: each is a COMPRESSION_ERROR.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HpackError {
    #[error("HPACK: header table index {0} does not exist")]
    BadIndex(u64),
    #[error("HPACK: integer longer than 5 bytes or above u32::MAX")]
    IntegerOverflow,
    #[error("HPACK: header block ends inside a field")]
    Truncated,
    #[error("HPACK: invalid Huffman string (EOS, or bad padding)")]
    BadHuffman,
    #[error("HPACK: table size update to {requested} above the {max} we advertised")]
    SizeUpdateTooLarge { requested: u64, max: usize },
    #[error("HPACK: table size update after a header field")]
    SizeUpdateNotFirst,
}

/// What `Decoder::decode` found besides the fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListSize {
    Within,
    /// The decoded list passed `max_list_size`: the fields after that point were decoded
    /// (so the dynamic table stays in sync) but not stored.
    TooLarge,
}

/// Continuation bytes an integer may have: 5 carry 35 bits, more than any `u32` needs.
const MAX_INT_BYTES: u32 = 5;

/// A connection's HPACK decoder: the dynamic table the peer's encoder writes to.
pub struct Decoder {
    table: DynamicTable,
    max_table_size: usize,
}

impl Decoder {
    /// `max_table_size`: the SETTINGS_HEADER_TABLE_SIZE we advertise (the most a size
    /// update may ask for; the table starts at this size).
    pub fn new(max_table_size: usize) -> Self {
        Self {
            table: DynamicTable::new(max_table_size),
            max_table_size,
        }
    }

    /// Decodes one complete header block into `out` (which the caller has cleared).
    /// The header list size is counted as RFC 9113 §6.5.2 does (name + value + 32 per
    /// field); once it passes `max_list_size` no more bytes are copied into `out`.
    /// Any Err is a connection error (COMPRESSION_ERROR) for the caller.
    pub fn decode(
        &mut self,
        block: &[u8],
        max_list_size: usize,
        out: &mut HeaderList,
    ) -> Result<ListSize, HpackError> {
        let mut src = block;
        let mut list_size = 0usize;
        let mut too_large = false;
        let mut seen_field = false;
        while let Some(&first) = src.first() {
            let start = out.buf.len();
            let (name_len, value_len) = if first & 0x80 != 0 {
                // Indexed field (§6.1): copied only if the list stays within its bound.
                let (name, value) = self.entry(int(&mut src, 7)?)?;
                let size = name.len() + value.len();
                if !too_large && list_size.saturating_add(size + ENTRY_OVERHEAD) <= max_list_size {
                    out.buf.extend_from_slice(name);
                    out.buf.extend_from_slice(value);
                }
                (name.len(), value.len())
            } else if first & 0xe0 == 0x20 {
                // Dynamic table size update (§6.3).
                if seen_field {
                    return Err(HpackError::SizeUpdateNotFirst);
                }
                let size = int(&mut src, 5)?;
                if size as usize > self.max_table_size {
                    return Err(HpackError::SizeUpdateTooLarge {
                        requested: u64::from(size),
                        max: self.max_table_size,
                    });
                }
                self.table.set_max_size(size as usize);
                continue;
            } else {
                // Literal (§6.2): with incremental indexing (01), without (0000) or never
                // indexed (0001). Bytes are stored while the list is within its bound, or
                // the entry may fit in the table.
                let indexing = first & 0x40 != 0;
                let index = int(&mut src, if indexing { 6 } else { 4 })?;
                let budget = if too_large {
                    0
                } else {
                    max_list_size - list_size
                };
                let room = if indexing {
                    budget.max(self.table.max_size())
                } else {
                    budget
                };
                let cap = start.saturating_add(room);
                let name_len = if index == 0 {
                    string(&mut src, &mut out.buf, cap)?
                } else {
                    let (name, _) = self.entry(index)?;
                    if start.saturating_add(name.len()) <= cap {
                        out.buf.extend_from_slice(name);
                    }
                    name.len()
                };
                let value_len = string(&mut src, &mut out.buf, cap)?;
                if indexing {
                    // All the bytes are there when the entry fits in the table.
                    match out.buf.get(start..) {
                        Some(f) if f.len() == name_len + value_len => {
                            let (name, value) = f.split_at(name_len);
                            self.table.insert(name, value);
                        }
                        _ => self.table.clear(),
                    }
                }
                (name_len, value_len)
            };
            seen_field = true;
            list_size = list_size.saturating_add(name_len + value_len + ENTRY_OVERHEAD);
            let end = start + name_len + value_len;
            if !too_large && list_size <= max_list_size && out.buf.len() == end {
                out.fields.push((start, start + name_len, end));
            } else {
                too_large = true;
                out.buf.truncate(start);
            }
        }
        Ok(if too_large {
            ListSize::TooLarge
        } else {
            ListSize::Within
        })
    }

    /// The static or dynamic table entry at `index` (§2.3.3).
    fn entry(&self, index: u32) -> Result<(&[u8], &[u8]), HpackError> {
        let i = index as usize;
        match i.checked_sub(1).map(|i| (i, STATIC.get(i))) {
            Some((_, Some(&entry))) => Some(entry),
            Some((i, None)) => self.table.get(i - STATIC.len()),
            None => None,
        }
        .ok_or(HpackError::BadIndex(u64::from(index)))
    }
}

/// Reads an integer with an `n`-bit prefix (§5.1).
fn int(src: &mut &[u8], n: u32) -> Result<u32, HpackError> {
    let (&first, rest) = src.split_first().ok_or(HpackError::Truncated)?;
    *src = rest;
    let max = (1u8 << n) - 1;
    let mut v = u64::from(first & max);
    if v < u64::from(max) {
        return Ok(v as u32);
    }
    for i in 0..MAX_INT_BYTES {
        let (&b, rest) = src.split_first().ok_or(HpackError::Truncated)?;
        *src = rest;
        v += u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return u32::try_from(v).map_err(|_| HpackError::IntegerOverflow);
        }
    }
    Err(HpackError::IntegerOverflow)
}

/// Reads a string (§5.2), appending it to `dst` while `dst` is shorter than `cap` (a raw
/// string that does not fit is not stored at all). Returns its decoded length.
fn string(src: &mut &[u8], dst: &mut Vec<u8>, cap: usize) -> Result<usize, HpackError> {
    let huffman = src.first().is_some_and(|&b| b & 0x80 != 0);
    let len = int(src, 7)? as usize;
    if len > src.len() {
        return Err(HpackError::Truncated);
    }
    let (s, rest) = src.split_at(len);
    *src = rest;
    if huffman {
        return huffman::decode(s, dst, cap).ok_or(HpackError::BadHuffman);
    }
    if dst.len().saturating_add(len) <= cap {
        dst.extend_from_slice(s);
    }
    Ok(len)
}

/// The static table's name index of `:status`, for a status it has no entry for.
const STATUS_NAME_INDEX: usize = 8;

/// `:status` (indexed when the static table has it, e.g. 200 → 0x88; else literal without
/// indexing with name index 8).
pub fn encode_status(out: &mut Vec<u8>, status: u16) {
    let mut buf = [0u8; 20];
    let digits = crate::http::response::decimal(u64::from(status), &mut buf);
    match STATIC
        .iter()
        .position(|&(n, v)| n == b":status" && v == digits)
    {
        Some(i) => encode_int(out, 0x80, 7, i + 1),
        None => {
            encode_int(out, 0x00, 4, STATUS_NAME_INDEX);
            encode_raw(out, digits);
        }
    }
}

/// A literal header field without indexing (RFC 7541 §6.2.2): name by static-table index
/// when the static table has that name, else a literal name; raw (non-Huffman) strings.
/// `name` is lower-case.
pub fn encode_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    match STATIC.iter().position(|&(n, _)| n == name) {
        Some(i) => encode_int(out, 0x00, 4, i + 1),
        None => return encode_literal(out, name, value),
    }
    encode_raw(out, value);
}

/// A literal header field without indexing, with a literal name (RFC 7541 §6.2.2): no
/// table, static or dynamic, is involved.
pub fn encode_literal(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.push(0x00);
    encode_raw(out, name);
    encode_raw(out, value);
}

/// An integer with an `n`-bit prefix after the bits in `flags` (§5.1).
fn encode_int(out: &mut Vec<u8>, flags: u8, n: u32, v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(flags | v as u8);
        return;
    }
    out.push(flags | max as u8);
    let mut v = v - max;
    while v >= 0x80 {
        out.push(0x80 | (v & 0x7f) as u8);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A string literal without Huffman coding (§5.2).
fn encode_raw(out: &mut Vec<u8>, s: &[u8]) {
    encode_int(out, 0x00, 7, s.len());
    out.extend_from_slice(s);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        s.chunks(2)
            .map(|c| u8::from_str_radix(std::str::from_utf8(c).unwrap(), 16).unwrap())
            .collect()
    }

    fn decode(d: &mut Decoder, block: &[u8]) -> Vec<(String, String)> {
        let mut out = HeaderList::default();
        assert_eq!(d.decode(block, 1 << 20, &mut out), Ok(ListSize::Within));
        let s = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        out.iter().map(|(n, v)| (s(n), s(v))).collect()
    }

    fn fields(f: &[(&str, &str)]) -> Vec<(String, String)> {
        f.iter().map(|&(n, v)| (n.into(), v.into())).collect()
    }

    /// The test-only Huffman encoder, from the same table.
    fn huffman_encode(s: &[u8]) -> Vec<u8> {
        let (mut acc, mut bits, mut out) = (0u64, 0u32, Vec::new());
        for &b in s {
            let len = huffman::code_len(usize::from(b));
            acc = (acc << len) | u64::from(huffman::CODE.codes[usize::from(b)]);
            bits += len;
            while bits >= 8 {
                bits -= 8;
                out.push((acc >> bits) as u8);
            }
        }
        if bits > 0 {
            out.push(((acc << (8 - bits)) as u8) | (0xff >> bits));
        }
        out
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    const C3: [&str; 3] = [
        "828684410f7777772e6578616d706c652e636f6d",
        "828684be58086e6f2d6361636865",
        "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
    ];
    const C4: [&str; 3] = [
        "828684418cf1e3c2e5f23a6ba0ab90f4ff",
        "828684be5886a8eb10649cbf",
        "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
    ];
    const C5: [&str; 3] = [
        "4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a32\
         3120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d",
        "4803333037c1c0bf",
        "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a6970\
         7738666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d61\
         67653d333630303b2076657273696f6e3d31",
    ];
    const C6: [&str; 3] = [
        "488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad\
         171863c78f0b97c8e9ae82ae43d3",
        "4883640effc1c0bf",
        "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2\
         e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
    ];

    /// RFC 7541 C.1.1 and C.1.2 (moved here from the h2c upgrade's own encoder).
    #[test]
    fn integers_with_a_5_bit_prefix() {
        let mut b = Vec::new();
        encode_int(&mut b, 0, 5, 10);
        assert_eq!(b, [10]);
        let mut b = Vec::new();
        encode_int(&mut b, 0, 5, 1337);
        assert_eq!(b, [31, 154, 10]);
    }

    #[test]
    fn rfc7541_c2_single_fields() {
        let cases = [
            (
                "400a637573746f6d2d6b65790d637573746f6d2d686561646572",
                "custom-key",
                "custom-header",
                55,
            ),
            ("040c2f73616d706c652f70617468", ":path", "/sample/path", 0),
            (
                "100870617373776f726406736563726574",
                "password",
                "secret",
                0,
            ),
            ("82", ":method", "GET", 0),
        ];
        for (block, name, value, size) in cases {
            let mut d = Decoder::new(4096);
            assert_eq!(decode(&mut d, &hex(block)), fields(&[(name, value)]));
            assert_eq!(d.table.size(), size);
        }
    }

    #[test]
    fn rfc7541_c3_c4_requests() {
        let expect = [
            fields(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
            ]),
            fields(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com"),
                ("cache-control", "no-cache"),
            ]),
            fields(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value"),
            ]),
        ];
        for blocks in [C3, C4] {
            let mut d = Decoder::new(4096);
            for ((block, want), size) in blocks.iter().zip(&expect).zip([57, 110, 164]) {
                assert_eq!(&decode(&mut d, &hex(block)), want);
                assert_eq!(d.table.size(), size);
            }
            let newest = d.table.get(0).unwrap();
            assert_eq!(newest, (&b"custom-key"[..], &b"custom-value"[..]));
            assert_eq!(d.table.get(2).unwrap().0, b":authority");
            assert!(d.table.get(3).is_none());
        }
    }

    #[test]
    fn rfc7541_c5_c6_responses_with_eviction() {
        let date1 = "Mon, 21 Oct 2013 20:13:21 GMT";
        let date2 = "Mon, 21 Oct 2013 20:13:22 GMT";
        let loc = "https://www.example.com";
        let cookie = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
        let expect = [
            fields(&[
                (":status", "302"),
                ("cache-control", "private"),
                ("date", date1),
                ("location", loc),
            ]),
            fields(&[
                (":status", "307"),
                ("cache-control", "private"),
                ("date", date1),
                ("location", loc),
            ]),
            fields(&[
                (":status", "200"),
                ("cache-control", "private"),
                ("date", date2),
                ("location", loc),
                ("content-encoding", "gzip"),
                ("set-cookie", cookie),
            ]),
        ];
        for blocks in [C5, C6] {
            let mut d = Decoder::new(256);
            for ((block, want), size) in blocks.iter().zip(&expect).zip([222, 222, 215]) {
                assert_eq!(&decode(&mut d, &hex(block)), want);
                assert_eq!(d.table.size(), size);
            }
            assert_eq!(d.table.get(0).unwrap().1, cookie.as_bytes());
            assert_eq!(d.table.get(2).unwrap().1, date2.as_bytes());
            assert!(d.table.get(3).is_none());
        }
    }

    #[test]
    fn huffman_known_strings_and_round_trips() {
        for (s, h) in [
            ("www.example.com", "f1e3c2e5f23a6ba0ab90f4ff"),
            ("no-cache", "a8eb10649cbf"),
            ("custom-key", "25a849e95ba97d7f"),
            ("custom-value", "25a849e95bb8e8b4bf"),
        ] {
            assert_eq!(huffman_encode(s.as_bytes()), hex(h), "{s}");
        }
        // RFC 7541 Appendix B codes at both ends of the table; EOS is 30 1s.
        assert_eq!((huffman::CODE.codes[0], huffman::code_len(0)), (0x1ff8, 13));
        assert_eq!(
            (huffman::CODE.codes[255], huffman::code_len(255)),
            (0x3ffffee, 26)
        );
        assert_eq!(
            (huffman::CODE.codes[256], huffman::code_len(256)),
            (0x3fffffff, 30)
        );
        let all: Vec<u8> = (0..=255).collect();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut inputs = vec![all.clone(), all.iter().rev().copied().collect()];
        for _ in 0..2000 {
            let len = (rng.next() % 64) as usize;
            let text = rng.next() & 1 == 0;
            inputs.push(
                (0..len)
                    .map(|_| {
                        if text {
                            b'a' + (rng.next() % 26) as u8
                        } else {
                            rng.next() as u8
                        }
                    })
                    .collect(),
            );
        }
        for s in inputs {
            let mut out = b"x".to_vec();
            assert_eq!(
                huffman::decode(&huffman_encode(&s), &mut out, usize::MAX),
                Some(s.len())
            );
            assert_eq!(out[1..], s[..]);
            // A cap stores a prefix but still checks and counts the whole string.
            let mut short = Vec::new();
            assert_eq!(
                huffman::decode(&huffman_encode(&s), &mut short, 3),
                Some(s.len())
            );
            assert_eq!(short[..], s[..s.len().min(3)]);
        }
    }

    #[test]
    fn huffman_padding_and_eos() {
        let d = |b: &[u8]| huffman::decode(b, &mut Vec::new(), usize::MAX);
        assert_eq!(d(&[0; 5]), Some(8)); // eight '0's: 40 bits, no padding
        assert_eq!(d(&[0x07]), Some(1)); // '0' and 3 bits of 1s
        assert_eq!(d(&[0x1f, 0xff]), None); // 'a' and 11 bits of 1s
        assert_eq!(d(&[0xff]), None); // 8 bits of 1s
        assert_eq!(d(&[0x1e]), None); // 'a' then padding 110
        assert_eq!(d(&[0xff, 0xff, 0xff, 0xff]), None); // EOS
        assert_eq!(d(&[0x00, 0x3f, 0xff, 0xff, 0xff]), None); // '0', then EOS
    }

    #[test]
    fn malformed_blocks_are_errors() {
        use HpackError::*;
        let cases: [(&[u8], HpackError); 12] = [
            (&[0x80], BadIndex(0)),
            (&[0xbe], BadIndex(62)),
            (&[0x7e, 0x00], BadIndex(62)),
            (
                &[0x3f, 0xe2, 0x1f],
                SizeUpdateTooLarge {
                    requested: 4097,
                    max: 4096,
                },
            ),
            (&[0x82, 0x20], SizeUpdateNotFirst),
            (&[0xff], Truncated),
            (&[0xff, 0x80], Truncated),
            (&[0x00, 0x05, b'a'], Truncated),
            (&[0x00, 0x01, b'a'], Truncated),
            (&[0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], IntegerOverflow),
            (&[0xff, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00], IntegerOverflow),
            (
                &[0x00, 0x01, b'a', 0x84, 0xff, 0xff, 0xff, 0xff],
                BadHuffman,
            ),
        ];
        for (block, err) in cases {
            let r = Decoder::new(4096).decode(block, 1 << 20, &mut HeaderList::default());
            assert_eq!(r, Err(err), "{block:02x?}");
        }
        // The largest allowed update, then two in a row, are fine.
        let mut d = Decoder::new(4096);
        assert_eq!(
            decode(&mut d, &[0x3f, 0xe1, 0x1f, 0x20, 0x82]),
            fields(&[(":method", "GET")])
        );
        assert_eq!(d.table.max_size(), 0);
    }

    #[test]
    fn hpack_bomb_is_bounded_and_keeps_the_table_in_sync() {
        let mut block = vec![0x40, 0x01, b'x', 0x7f, 0xa1, 0x1e]; // 4000 = 127 + 0x21 + 30 << 7
        block.extend_from_slice(&[b'a'; 4000]);
        block.extend_from_slice(&[0xbe; 2000]);
        // Past the limit: one entry larger than the table (it empties it), then one that fits.
        block.extend_from_slice(&[0x40, 0x02, b'x', b'2', 0x7f, 0x89, 0x26]); // 5000
        block.extend_from_slice(&[b'b'; 5000]);
        block.extend_from_slice(&[0x40, 0x01, b'k', 0x01, b'v']);
        let mut d = Decoder::new(4096);
        let mut out = HeaderList::default();
        assert_eq!(d.decode(&block, 16 << 10, &mut out), Ok(ListSize::TooLarge));
        assert_eq!(out.len(), 4); // 4 x 4033 fits in 16 KiB, 5 do not
        assert!(out.buf.len() <= 16 << 10);
        assert!(out.iter().all(|(n, v)| n == b"x" && v.len() == 4000));
        out.clear();
        assert_eq!(d.decode(&[0xbe], 16 << 10, &mut out), Ok(ListSize::Within));
        let got: Vec<_> = out.iter().map(|(n, v)| (n.to_vec(), v.len())).collect();
        assert_eq!(got, [(b"k".to_vec(), 1)]);
        assert_eq!(d.table.size(), 34);
        assert_eq!(
            d.decode(&[0xbf], 16 << 10, &mut out),
            Err(HpackError::BadIndex(63))
        );
    }

    #[test]
    fn encoded_responses_decode_back() {
        let mut out = Vec::new();
        encode_status(&mut out, 200);
        assert_eq!(out, [0x88]);
        let mut want = Vec::new();
        let mut block = Vec::new();
        for status in [200u16, 204, 404, 431, 503, 999, 100] {
            encode_status(&mut block, status);
            want.push((":status".to_string(), status.to_string()));
        }
        let long = "v".repeat(300);
        for (n, v) in [
            ("content-type", "application/json"),
            ("grpc-status", "0"),
            ("content-length", "12345"),
            ("retry-after", "1"),
            ("x-long-value", long.as_str()),
            ("www-authenticate", ""),
        ] {
            encode_field(&mut block, n.as_bytes(), v.as_bytes());
            want.push((n.into(), v.into()));
        }
        let mut d = Decoder::new(4096);
        assert_eq!(decode(&mut d, &block), want);
        assert_eq!(d.table.size(), 0);
    }

    #[test]
    fn random_input_never_panics() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut d = Decoder::new(256);
        let mut out = HeaderList::default();
        for _ in 0..10_000 {
            let len = (rng.next() % 48) as usize;
            let block: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            out.clear();
            if d.decode(&block, 512, &mut out).is_err() {
                d = Decoder::new(256);
            }
            assert!(out.buf.len() <= 512 + 256);
        }
    }
}
