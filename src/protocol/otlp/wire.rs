//! The protobuf wire format as far as OTLP needs it: a bounded field reader over a byte slice
//! (every length checked against what remains, no allocation) and the few writers the
//! re-encode and the replies use.

use thiserror::Error;

/// Wire types of the protobuf encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    Varint,
    I64,
    Len,
    I32,
}

/// One field as read: its number, wire type, and payload (the varint or fixed value, or the
/// length-delimited bytes), with where it sat in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub number: u32,
    pub wire: WireType,
    /// The varint (or the fixed-width value) of a non-`Len` field.
    pub value: u64,
    /// The payload of a `Len` field.
    pub bytes: &'a [u8],
    /// Byte range of the whole field (tag included) in the message it was read from.
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WireError {
    #[error("truncated varint")]
    Varint,
    #[error("field {0}: length beyond the end of the message")]
    Length(u32),
    #[error("invalid field number 0")]
    FieldZero,
    #[error("field {0}: unsupported wire type {1} (groups are not used by OTLP)")]
    WireType(u32, u8),
    #[error("field {0}: truncated fixed-width value")]
    Fixed(u32),
}

/// Reads the fields of one message in order.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = *self.buf.get(self.pos).ok_or(WireError::Varint)?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(WireError::Varint)
    }

    fn fixed<const N: usize>(&mut self, number: u32) -> Result<u64, WireError> {
        let end = self.pos.checked_add(N).ok_or(WireError::Fixed(number))?;
        let raw = self
            .buf
            .get(self.pos..end)
            .ok_or(WireError::Fixed(number))?;
        self.pos = end;
        let mut le = [0u8; 8];
        le[..N].copy_from_slice(raw);
        Ok(u64::from_le_bytes(le))
    }

    /// The next field, `None` at the end of the message.
    ///
    /// # Errors
    /// A malformed tag, varint or length.
    pub fn next_field(&mut self) -> Result<Option<Field<'a>>, WireError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let start = self.pos;
        let tag = self.varint()?;
        let number = u32::try_from(tag >> 3).map_err(|_| WireError::FieldZero)?;
        if number == 0 {
            return Err(WireError::FieldZero);
        }
        let (wire, value, bytes) = match tag & 7 {
            0 => (WireType::Varint, self.varint()?, &[][..]),
            1 => (WireType::I64, self.fixed::<8>(number)?, &[][..]),
            2 => {
                let len = usize::try_from(self.varint()?).map_err(|_| WireError::Length(number))?;
                let end = self
                    .pos
                    .checked_add(len)
                    .filter(|e| *e <= self.buf.len())
                    .ok_or(WireError::Length(number))?;
                let b = &self.buf[self.pos..end];
                self.pos = end;
                (WireType::Len, len as u64, b)
            }
            5 => (WireType::I32, self.fixed::<4>(number)?, &[][..]),
            w => return Err(WireError::WireType(number, w as u8)),
        };
        Ok(Some(Field {
            number,
            wire,
            value,
            bytes,
            start,
            end: self.pos,
        }))
    }
}

/// Appends a varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends the tag of field `number` with wire type `wire` (0 varint, 2 length-delimited).
pub fn put_tag(out: &mut Vec<u8>, number: u32, wire: u8) {
    put_varint(out, (u64::from(number) << 3) | u64::from(wire));
}

/// Appends a length-delimited field.
pub fn put_len(out: &mut Vec<u8>, number: u32, payload: &[u8]) {
    put_tag(out, number, 2);
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

/// Appends a varint field (proto3: callers skip zero values themselves).
pub fn put_uint(out: &mut Vec<u8>, number: u32, v: u64) {
    put_tag(out, number, 0);
    put_varint(out, v);
}

/// The length of `v` as a varint.
pub fn varint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_wire_type_and_stops_at_bad_lengths() {
        // 1: varint 300, 2: "hi", 3: fixed64 1, 4: fixed32 2.
        let msg = [
            0x08, 0xac, 0x02, 0x12, 0x02, b'h', b'i', 0x19, 1, 0, 0, 0, 0, 0, 0, 0, 0x25, 2, 0, 0,
            0,
        ];
        let mut r = Reader::new(&msg);
        let f = r.next_field().unwrap().unwrap();
        assert_eq!((f.number, f.wire, f.value), (1, WireType::Varint, 300));
        let f = r.next_field().unwrap().unwrap();
        assert_eq!((f.number, f.wire, f.bytes), (2, WireType::Len, &b"hi"[..]));
        assert_eq!((f.start, f.end), (3, 7));
        let f = r.next_field().unwrap().unwrap();
        assert_eq!((f.number, f.wire, f.value), (3, WireType::I64, 1));
        let f = r.next_field().unwrap().unwrap();
        assert_eq!((f.number, f.wire, f.value), (4, WireType::I32, 2));
        assert_eq!(r.next_field().unwrap(), None);
        assert_eq!(
            Reader::new(&[0x12, 0x05, b'x']).next_field(),
            Err(WireError::Length(2))
        );
        assert_eq!(
            Reader::new(&[0x08, 0x80]).next_field(),
            Err(WireError::Varint)
        );
        assert_eq!(Reader::new(&[0x00]).next_field(), Err(WireError::FieldZero));
        assert_eq!(
            Reader::new(&[0x0b]).next_field(),
            Err(WireError::WireType(1, 3))
        );
        // A length that would overflow usize arithmetic.
        let huge = [
            0x12, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        assert_eq!(Reader::new(&huge).next_field(), Err(WireError::Length(2)));
    }

    #[test]
    fn writers() {
        let mut out = Vec::new();
        put_uint(&mut out, 1, 300);
        put_len(&mut out, 2, b"hi");
        assert_eq!(out, [0x08, 0xac, 0x02, 0x12, 0x02, b'h', b'i']);
        assert_eq!(varint_len(0), 1);
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
        assert_eq!(varint_len(u64::MAX), 10);
    }
}
