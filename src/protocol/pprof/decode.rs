//! The bounded decoder: a hand-written protobuf reader over the message bytes.

use std::ops::Range;

use bytes::Bytes;

use super::model::{Function, Label, Line, Location, Mapping, Profile, Sample, ValueType};
use crate::protocol::gzip::{self, GzipError};

/// Bounds of one decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest decoded (decompressed) message.
    pub max_size: usize,
    /// Most string-table entries.
    pub max_strings: usize,
    /// Most samples.
    pub max_samples: usize,
}

impl Default for Limits {
    /// Pyroscope's `max_profile_size_bytes` default (4 MiB) and caps well above what a
    /// message of that size can legitimately hold, so they bind only on hostile input.
    fn default() -> Self {
        Self {
            max_size: 4 << 20,
            max_strings: 1 << 20,
            max_samples: 1 << 20,
        }
    }
}

/// Why a profile could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Larger than [`Limits::max_size`] once decompressed.
    #[error("decompressed size exceeds the limit of {max} bytes")]
    TooLarge { max: usize },
    #[error("gzip: {0}")]
    Gzip(&'static str),
    /// Input shorter than a gzip header; Go's reader fails with EOF on it.
    #[error("unexpected EOF")]
    Eof,
    #[error("proto: {what}: unexpected end of data at offset {offset}")]
    Truncated { what: &'static str, offset: usize },
    #[error("proto: {what}: field {field} has invalid wire type {wire_type}")]
    WireType {
        what: &'static str,
        field: u64,
        wire_type: u8,
    },
    #[error("proto: {what}: invalid varint at offset {offset}")]
    Varint { what: &'static str, offset: usize },
    #[error("proto: field number 0 at offset {offset}")]
    FieldZero { offset: usize },
    #[error("profile has more than {max} strings")]
    TooManyStrings { max: usize },
    #[error("profile has more than {max} samples")]
    TooManySamples { max: usize },
}

/// Decodes `raw` (gzip'd when it starts `1f 8b 08`, else a plain message, the rule
/// Pyroscope applies) within `limits`.
///
/// # Errors
/// [`DecodeError`] for input over the limits or not a valid profile.
pub fn decode_bytes(raw: &Bytes, limits: Limits) -> Result<Profile, DecodeError> {
    if gzip::is_gzip(raw) {
        let plain = gzip::inflate_bounded(raw, limits.max_size).map_err(|e| match e {
            GzipError::TooLarge { max, .. } => DecodeError::TooLarge { max },
            GzipError::Invalid(why) => DecodeError::Gzip(why),
        })?;
        decode(plain, limits)
    } else if raw.len() < 10 {
        // Go's gzip sniffing reads a 10-byte header first and fails on shorter input.
        Err(DecodeError::Eof)
    } else {
        decode(raw.clone(), limits)
    }
}

/// Decodes a plain (uncompressed) serialized profile.
///
/// # Errors
/// [`DecodeError`] for input over the limits or not a valid profile.
pub fn decode(buf: Bytes, limits: Limits) -> Result<Profile, DecodeError> {
    if buf.len() > limits.max_size || buf.len() > u32::MAX as usize {
        return Err(DecodeError::TooLarge {
            max: limits.max_size,
        });
    }
    let mut p = Profile {
        buf: buf.clone(),
        ..Profile::default()
    };
    let mut r = Reader::new(&buf, 0, "Profile");
    while let Some((field, wt)) = r.key()? {
        match (field, wt) {
            (1, 2) => {
                let m = r.message()?;
                p.sample_type.push(value_type(m)?);
            }
            (2, 2) => {
                if p.samples.len() >= limits.max_samples {
                    return Err(DecodeError::TooManySamples {
                        max: limits.max_samples,
                    });
                }
                let m = r.message()?;
                let s = sample(m, &mut p)?;
                p.samples.push(s);
            }
            (3, 2) => {
                let m = r.message()?;
                p.mappings.push(mapping(m)?);
            }
            (4, 2) => {
                let m = r.message()?;
                let l = location(m, &mut p.lines)?;
                p.locations.push(l);
            }
            (5, 2) => {
                let m = r.message()?;
                p.functions.push(function(m)?);
            }
            (6, 2) => {
                if p.strings.len() >= limits.max_strings {
                    return Err(DecodeError::TooManyStrings {
                        max: limits.max_strings,
                    });
                }
                let range = r.bytes_range()?;
                p.strings.push(range);
            }
            (7, 0) => p.drop_frames = r.int()?,
            (8, 0) => p.keep_frames = r.int()?,
            (9, 0) => p.time_nanos = r.int()?,
            (10, 0) => p.duration_nanos = r.int()?,
            (11, 2) => {
                let m = r.message()?;
                p.period_type = Some(value_type(m)?);
            }
            (12, 0) => p.period = r.int()?,
            (13, 0) => p.comments.push(r.int()?),
            (13, 2) => {
                let mut m = r.message()?;
                while !m.done() {
                    p.comments.push(m.int()?);
                }
            }
            (14, 0) => p.default_sample_type = r.int()?,
            (1..=14, _) => return Err(r.wire_type_error(field, wt)),
            _ => r.skip(field, wt)?,
        }
    }
    Ok(p)
}

fn value_type(mut r: Reader<'_>) -> Result<ValueType, DecodeError> {
    let mut v = ValueType::default();
    while let Some((field, wt)) = r.key()? {
        match (field, wt) {
            (1, 0) => v.r#type = r.int()?,
            (2, 0) => v.unit = r.int()?,
            (1 | 2, _) => return Err(r.wire_type_error(field, wt)),
            _ => r.skip(field, wt)?,
        }
    }
    Ok(v)
}

fn range(start: usize, end: usize) -> Range<u32> {
    // Element counts are bounded by the input length, itself below u32::MAX.
    start as u32..end as u32
}

fn sample(mut r: Reader<'_>, p: &mut Profile) -> Result<Sample, DecodeError> {
    // A sample's fields may come in any order and repeat; they are appended to the flat
    // arrays as they come. One sample is decoded at a time, so its run in each array is
    // contiguous.
    let (l0, v0, b0) = (p.location_ids.len(), p.values.len(), p.labels.len());
    while let Some((field, wt)) = r.key()? {
        match (field, wt) {
            (1, 0) => p.location_ids.push(r.varint()?),
            (1, 2) => {
                let mut m = r.message()?;
                // At most one id per byte: the reservation is bounded by the input.
                p.location_ids.reserve(m.remaining());
                while !m.done() {
                    p.location_ids.push(m.varint()?);
                }
            }
            (2, 0) => p.values.push(r.int()?),
            (2, 2) => {
                let mut m = r.message()?;
                p.values.reserve(m.remaining());
                while !m.done() {
                    p.values.push(m.int()?);
                }
            }
            (3, 2) => {
                let m = r.message()?;
                p.labels.push(label(m)?);
            }
            (1..=3, _) => return Err(r.wire_type_error(field, wt)),
            _ => r.skip(field, wt)?,
        }
    }
    Ok(Sample {
        locations: range(l0, p.location_ids.len()),
        values: range(v0, p.values.len()),
        labels: range(b0, p.labels.len()),
    })
}

fn label(mut r: Reader<'_>) -> Result<Label, DecodeError> {
    let mut l = Label::default();
    while let Some((field, wt)) = r.key()? {
        match (field, wt) {
            (1, 0) => l.key = r.int()?,
            (2, 0) => l.str = r.int()?,
            (3, 0) => l.num = r.int()?,
            (4, 0) => l.num_unit = r.int()?,
            (1..=4, _) => return Err(r.wire_type_error(field, wt)),
            _ => r.skip(field, wt)?,
        }
    }
    Ok(l)
}

fn mapping(mut r: Reader<'_>) -> Result<Mapping, DecodeError> {
    let mut m = Mapping::default();
    while let Some((field, wt)) = r.key()? {
        match (field, wt) {
            (1, 0) => m.id = r.varint()?,
            (2, 0) => m.memory_start = r.varint()?,
            (3, 0) => m.memory_limit = r.varint()?,
            (4, 0) => m.file_offset = r.varint()?,
            (5, 0) => m.filename = r.int()?,
            (6, 0) => m.build_id = r.int()?,
            (7, 0) => m.has_functions = r.varint()? != 0,
            (8, 0) => m.has_filenames = r.varint()? != 0,
            (9, 0) => m.has_line_numbers = r.varint()? != 0,
            (10, 0) => m.has_inline_frames = r.varint()? != 0,
            (1..=10, _) => return Err(r.wire_type_error(field, wt)),
            _ => r.skip(field, wt)?,
        }
    }
    Ok(m)
}

fn location(mut r: Reader<'_>, lines: &mut Vec<Line>) -> Result<Location, DecodeError> {
    let mut l = Location::default();
    let first = lines.len();
    while let Some((field, wt)) = r.key()? {
        match (field, wt) {
            (1, 0) => l.id = r.varint()?,
            (2, 0) => l.mapping_id = r.varint()?,
            (3, 0) => l.address = r.varint()?,
            (4, 2) => {
                let m = r.message()?;
                lines.push(line(m)?);
            }
            (5, 0) => l.is_folded = r.varint()? != 0,
            (1..=5, _) => return Err(r.wire_type_error(field, wt)),
            _ => r.skip(field, wt)?,
        }
    }
    l.lines = range(first, lines.len());
    Ok(l)
}

fn line(mut r: Reader<'_>) -> Result<Line, DecodeError> {
    let mut l = Line::default();
    while let Some((field, wt)) = r.key()? {
        match (field, wt) {
            (1, 0) => l.function_id = r.varint()?,
            (2, 0) => l.line = r.int()?,
            (1 | 2, _) => return Err(r.wire_type_error(field, wt)),
            // `column` (3) of newer pprof, and anything else: skipped.
            _ => r.skip(field, wt)?,
        }
    }
    Ok(l)
}

fn function(mut r: Reader<'_>) -> Result<Function, DecodeError> {
    let mut f = Function::default();
    while let Some((field, wt)) = r.key()? {
        match (field, wt) {
            (1, 0) => f.id = r.varint()?,
            (2, 0) => f.name = r.int()?,
            (3, 0) => f.system_name = r.int()?,
            (4, 0) => f.filename = r.int()?,
            (5, 0) => f.start_line = r.int()?,
            (1..=5, _) => return Err(r.wire_type_error(field, wt)),
            _ => r.skip(field, wt)?,
        }
    }
    Ok(f)
}

/// A cursor over one message: `buf[pos..]`, with `base` the offset of `buf` in the whole
/// input (for error messages).
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], base: usize, what: &'static str) -> Self {
        Self {
            buf,
            pos: 0,
            base,
            what,
        }
    }

    fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Bytes left in this message.
    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn truncated(&self) -> DecodeError {
        DecodeError::Truncated {
            what: self.what,
            offset: self.base + self.pos,
        }
    }

    fn wire_type_error(&self, field: u64, wire_type: u8) -> DecodeError {
        DecodeError::WireType {
            what: self.what,
            field,
            wire_type,
        }
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, DecodeError> {
        // One- and two-byte values are by far the most common (indices, ids below 16384,
        // small counts).
        if let Some(&b) = self.buf.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        if let Some(&[b0, b1]) = self.buf.get(self.pos..self.pos + 2)
            && b1 < 0x80
        {
            self.pos += 2;
            return Ok(u64::from(b0 & 0x7f) | u64::from(b1) << 7);
        }
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.truncated());
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(DecodeError::Varint {
                    what: self.what,
                    offset: self.base + self.pos - 1,
                });
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(DecodeError::Varint {
            what: self.what,
            offset: self.base + self.pos,
        })
    }

    /// An `int64`/`uint64` field as a signed value (two's complement, as protobuf does).
    #[inline]
    fn int(&mut self) -> Result<i64, DecodeError> {
        self.varint().map(|v| v as i64)
    }

    /// The next field's number and wire type; `None` at the end of the message.
    #[inline]
    fn key(&mut self) -> Result<Option<(u64, u8)>, DecodeError> {
        if self.done() {
            return Ok(None);
        }
        let at = self.pos;
        let k = self.varint()?;
        let field = k >> 3;
        if field == 0 {
            return Err(DecodeError::FieldZero {
                offset: self.base + at,
            });
        }
        Ok(Some((field, (k & 7) as u8)))
    }

    /// A length-delimited field's bytes as a range of `buf`, its length checked against
    /// what remains.
    fn len_delimited(&mut self) -> Result<Range<usize>, DecodeError> {
        let len = self.varint()?;
        let left = (self.buf.len() - self.pos) as u64;
        if len > left {
            return Err(self.truncated());
        }
        let start = self.pos;
        self.pos += len as usize;
        Ok(start..self.pos)
    }

    /// A string/bytes field as a range of the whole input.
    fn bytes_range(&mut self) -> Result<Range<u32>, DecodeError> {
        let r = self.len_delimited()?;
        Ok(range(self.base + r.start, self.base + r.end))
    }

    /// An embedded message (or packed repeated field) as its own reader.
    fn message(&mut self) -> Result<Reader<'a>, DecodeError> {
        let r = self.len_delimited()?;
        let base = self.base + r.start;
        Ok(Reader::new(&self.buf[r], base, self.what))
    }

    /// Skips an unknown field.
    fn skip(&mut self, field: u64, wt: u8) -> Result<(), DecodeError> {
        let n = match wt {
            0 => return self.varint().map(drop),
            1 => 8,
            2 => return self.len_delimited().map(drop),
            5 => 4,
            // Groups (3, 4) are not used by pprof and not supported.
            _ => return Err(self.wire_type_error(field, wt)),
        };
        if self.buf.len() - self.pos < n {
            return Err(self.truncated());
        }
        self.pos += n;
        Ok(())
    }
}
