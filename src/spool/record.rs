//! The record codec of the spool's segments (docs/spool.md §2).
//!
//! ```text
//! record  = magic u32 | len u32 | crc u32 | seq u64 | unix_ms u64 | payload[len]
//! crc     = CRC32C over len, seq, unix_ms and payload (little-endian, as written)
//! payload = version u8 | kind u8 | path u16-len | n_headers u8 | (name u8-len, value u32-len)*
//!           | tenant flag u8 + u16-len | profiles u64 | profile_bytes u64 | body (the rest)
//! ```
//!
//! Every field is length-prefixed and bounded, so a torn or corrupted record is detected
//! (short read, bad magic, bad CRC or a length past the bound) and never trusted.

use bytes::Bytes;

/// Marks the start of a record; a reader that lost its place searches for it.
pub const MAGIC: u32 = 0x5250_4750; // "PGPR" little-endian
/// Bytes before the payload.
pub const HEADER_LEN: usize = 28;
const PAYLOAD_VERSION: u8 = 1;

/// Header names an envelope carries (docs/spool.md §2): a record naming any other is
/// corrupt. Kept as `'static` so a decoded record needs no allocation per name.
pub const HEADER_NAMES: [&str; 3] = [
    "Content-Type",
    "Content-Encoding",
    "Connect-Protocol-Version",
];

/// One spooled request: what the forwarding stage needs to rebuild its envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The envelope's kind (`forward::Kind` as a number: 0 Push, 1 `/ingest`, 2 OTLP).
    pub kind: u8,
    pub path_and_query: String,
    pub headers: Vec<(&'static str, Bytes)>,
    pub tenant: Option<Bytes>,
    pub profiles: u64,
    pub profile_bytes: u64,
    pub body: Bytes,
}

/// A record's header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub len: u32,
    pub seq: u64,
    pub unix_ms: u64,
}

impl Header {
    /// Bytes of the whole record.
    pub fn record_len(&self) -> usize {
        HEADER_LEN + self.len as usize
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Fewer bytes than the record needs: a torn tail, or read more.
    #[error("record truncated: {need} bytes needed, {have} available")]
    Short { need: usize, have: usize },
    #[error("bad record magic")]
    BadMagic,
    #[error("record length {0} exceeds the bound")]
    TooLong(u32),
    #[error("record checksum mismatch")]
    BadCrc,
    #[error("record payload malformed: {0}")]
    Payload(&'static str),
}

/// Bytes `encode` appends for `entry` (header included).
pub fn encoded_len(
    path: &str,
    headers: &[(&'static str, Bytes)],
    tenant: Option<&Bytes>,
    body_len: usize,
) -> usize {
    let hdrs: usize = headers.iter().map(|(n, v)| 1 + n.len() + 4 + v.len()).sum();
    HEADER_LEN
        + 2
        + 2
        + path.len()
        + 1
        + hdrs
        + 1
        + 2
        + tenant.map_or(0, Bytes::len)
        + 16
        + body_len
}

/// Appends one record to `out`. `body` is the concatenation of the chunks.
///
/// # Errors
/// A field longer than its length prefix allows (a path over 64 KiB, a header value over
/// 4 GiB, a tenant over 64 KiB, more than 255 headers): the caller refuses the request.
#[allow(clippy::too_many_arguments)]
pub fn encode(
    out: &mut Vec<u8>,
    seq: u64,
    unix_ms: u64,
    kind: u8,
    path: &str,
    headers: &[(&'static str, Bytes)],
    tenant: Option<&Bytes>,
    profiles: u64,
    profile_bytes: u64,
    body: &[Bytes],
) -> Result<(), RecordError> {
    let start = out.len();
    let body_len: usize = body.iter().map(Bytes::len).sum();
    let path_len = u16::try_from(path.len()).map_err(|_| RecordError::Payload("path too long"))?;
    let n_headers =
        u8::try_from(headers.len()).map_err(|_| RecordError::Payload("too many headers"))?;
    let tenant_len = match tenant {
        Some(t) => u16::try_from(t.len()).map_err(|_| RecordError::Payload("tenant too long"))?,
        None => 0,
    };
    let total = encoded_len(path, headers, tenant, body_len);
    let len = u32::try_from(total - HEADER_LEN).map_err(|_| RecordError::TooLong(u32::MAX))?;
    out.reserve(total);
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // the CRC, filled below
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&unix_ms.to_le_bytes());
    out.push(PAYLOAD_VERSION);
    out.push(kind);
    out.extend_from_slice(&path_len.to_le_bytes());
    out.extend_from_slice(path.as_bytes());
    out.push(n_headers);
    for (name, value) in headers {
        let n =
            u8::try_from(name.len()).map_err(|_| RecordError::Payload("header name too long"))?;
        let v = u32::try_from(value.len()).map_err(|_| RecordError::Payload("header too long"))?;
        out.push(n);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&v.to_le_bytes());
        out.extend_from_slice(value);
    }
    out.push(u8::from(tenant.is_some()));
    out.extend_from_slice(&tenant_len.to_le_bytes());
    if let Some(t) = tenant {
        out.extend_from_slice(t);
    }
    out.extend_from_slice(&profiles.to_le_bytes());
    out.extend_from_slice(&profile_bytes.to_le_bytes());
    for chunk in body {
        out.extend_from_slice(chunk);
    }
    debug_assert_eq!(out.len() - start, total);
    let crc = checksum(&out[start..]);
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// CRC32C of a whole record as laid out in `rec` (its own CRC field excluded).
fn checksum(rec: &[u8]) -> u32 {
    let c = crc32c::crc32c(&rec[4..8]);
    crc32c::crc32c_append(c, &rec[12..])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Checks the record at the start of `buf` (magic, bound, CRC) and returns its header.
///
/// # Errors
/// [`RecordError::Short`] when `buf` holds less than the record; the others when the bytes
/// are not a valid record.
pub fn check(buf: &[u8], max_len: u32) -> Result<Header, RecordError> {
    if buf.len() < HEADER_LEN {
        return Err(RecordError::Short {
            need: HEADER_LEN,
            have: buf.len(),
        });
    }
    if u32_at(buf, 0) != MAGIC {
        return Err(RecordError::BadMagic);
    }
    let len = u32_at(buf, 4);
    if len > max_len {
        return Err(RecordError::TooLong(len));
    }
    let total = HEADER_LEN + len as usize;
    if buf.len() < total {
        return Err(RecordError::Short {
            need: total,
            have: buf.len(),
        });
    }
    if checksum(&buf[..total]) != u32_at(buf, 8) {
        return Err(RecordError::BadCrc);
    }
    Ok(Header {
        len,
        seq: u64_at(buf, 12),
        unix_ms: u64_at(buf, 20),
    })
}

/// A bounded cursor over a payload.
struct Take<'a> {
    b: &'a [u8],
}

impl<'a> Take<'a> {
    fn bytes(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.b.len() < n {
            return Err(RecordError::Payload("field past the end"));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8, RecordError> {
        Ok(self.bytes(1)?[0])
    }
    fn u16(&mut self) -> Result<usize, RecordError> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]) as usize)
    }
    fn u32(&mut self) -> Result<usize, RecordError> {
        Ok(u32_at(self.bytes(4)?, 0) as usize)
    }
    fn u64(&mut self) -> Result<u64, RecordError> {
        Ok(u64_at(self.bytes(8)?, 0))
    }
}

/// Decodes the payload of a record already [`check`]ed; `record` holds exactly the record.
/// The body shares `record`'s allocation.
///
/// # Errors
/// A payload that does not follow the layout (only possible with a CRC collision or a
/// record written by a different version).
pub fn decode(record: &Bytes) -> Result<Entry, RecordError> {
    let payload = record
        .get(HEADER_LEN..)
        .ok_or(RecordError::Payload("no payload"))?;
    let mut t = Take { b: payload };
    if t.u8()? != PAYLOAD_VERSION {
        return Err(RecordError::Payload("unknown payload version"));
    }
    let kind = t.u8()?;
    let n = t.u16()?;
    let path_and_query = std::str::from_utf8(t.bytes(n)?)
        .map_err(|_| RecordError::Payload("path is not UTF-8"))?
        .to_owned();
    let n_headers = t.u8()?;
    let mut headers = Vec::with_capacity(n_headers as usize);
    for _ in 0..n_headers {
        let n = t.u8()? as usize;
        let name = t.bytes(n)?;
        let name = HEADER_NAMES
            .iter()
            .find(|h| h.as_bytes() == name)
            .ok_or(RecordError::Payload("unknown header name"))?;
        let n = t.u32()?;
        let value = t.bytes(n)?;
        headers.push((*name, Bytes::copy_from_slice(value)));
    }
    let has_tenant = t.u8()? != 0;
    let n = t.u16()?;
    let tenant = t.bytes(n)?;
    let tenant = has_tenant.then(|| Bytes::copy_from_slice(tenant));
    let profiles = t.u64()?;
    let profile_bytes = t.u64()?;
    let body_at = record.len() - t.b.len();
    Ok(Entry {
        kind,
        path_and_query,
        headers,
        tenant,
        profiles,
        profile_bytes,
        body: record.slice(body_at..),
    })
}

/// The offset of the next [`MAGIC`] in `buf` at or after `from`.
pub fn find_magic(buf: &[u8], from: usize) -> Option<usize> {
    let m = MAGIC.to_le_bytes();
    buf.get(from..)?
        .windows(4)
        .position(|w| w == m)
        .map(|i| from + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(seq: u64, e: &Entry) -> Vec<u8> {
        let mut out = Vec::new();
        encode(
            &mut out,
            seq,
            1_700_000_000_000 + seq,
            e.kind,
            &e.path_and_query,
            &e.headers,
            e.tenant.as_ref(),
            e.profiles,
            e.profile_bytes,
            &[
                e.body.slice(..e.body.len() / 2),
                e.body.slice(e.body.len() / 2..),
            ],
        )
        .expect("encodable");
        out
    }

    fn entry() -> impl Strategy<Value = Entry> {
        (
            0u8..2,
            "[ -~]{0,80}",
            proptest::collection::vec(
                (0usize..3, proptest::collection::vec(any::<u8>(), 0..40)),
                0..4,
            ),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..30)),
            any::<u64>(),
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..2000),
        )
            .prop_map(
                |(kind, path, hs, tenant, profiles, profile_bytes, body)| Entry {
                    kind,
                    path_and_query: path,
                    headers: hs
                        .into_iter()
                        .map(|(i, v)| (HEADER_NAMES[i], Bytes::from(v)))
                        .collect(),
                    tenant: tenant.map(Bytes::from),
                    profiles,
                    profile_bytes,
                    body: Bytes::from(body),
                },
            )
    }

    proptest! {
        /// Every entry survives the round trip, and `encoded_len` is exact.
        #[test]
        fn round_trip(e in entry(), seq in any::<u64>()) {
            let b = enc(seq, &e);
            prop_assert_eq!(b.len(), encoded_len(&e.path_and_query, &e.headers, e.tenant.as_ref(), e.body.len()));
            let h = check(&b, u32::MAX).expect("valid");
            prop_assert_eq!(h.seq, seq);
            prop_assert_eq!(h.record_len(), b.len());
            prop_assert_eq!(decode(&Bytes::from(b)).expect("decodes"), e);
        }

        /// Any single flipped bit is caught (CRC32C detects every 1-bit error), and any
        /// truncation is `Short`, never a wrong record.
        #[test]
        fn damage_is_detected(e in entry(), bit in any::<usize>(), cut in any::<usize>()) {
            let b = enc(7, &e);
            let mut flipped = b.clone();
            let i = bit % (b.len() * 8);
            flipped[i / 8] ^= 1 << (i % 8);
            prop_assert!(check(&flipped, u32::MAX).is_err());
            let cut = cut % b.len();
            let is_short = matches!(check(&b[..cut], u32::MAX), Err(RecordError::Short { .. }));
            prop_assert!(is_short);
        }

        /// Arbitrary bytes never panic the checker or the decoder.
        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = check(&b, 1 << 20);
            let _ = decode(&Bytes::from(b));
        }
    }

    #[test]
    fn length_bound_is_enforced_before_reading() {
        let e = Entry {
            kind: 0,
            path_and_query: "/ingest?name=x".into(),
            headers: vec![],
            tenant: None,
            profiles: 1,
            profile_bytes: 3,
            body: Bytes::from_static(b"abc"),
        };
        let b = enc(1, &e);
        assert!(matches!(check(&b, 10), Err(RecordError::TooLong(_))));
        assert_eq!(find_magic(&b, 1), None);
        let mut two = b.clone();
        two.extend_from_slice(&b);
        assert_eq!(find_magic(&two, 1), Some(b.len()));
    }
}
