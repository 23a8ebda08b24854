//! Snappy's block format (not the framed stream): how dskit stores a ring in its key-value
//! store (`codec.ProtoCodec`: protobuf, then `snappy.Encode`; docs/ring.md §4).
//!
//! A block is the uncompressed length as a varint, then elements: literals (tag `00`) and
//! back-references with 1-, 2- or 4-byte offsets (tags `01`, `10`, `11`). The decoder is
//! bounded: the declared length is checked against a cap before anything is allocated, every
//! element against what remains of the input and of the output, and offsets against what
//! was already written. The encoder writes literals only — a valid block every decoder reads,
//! which is all the gateway needs (it writes rings only in tests and tools).

/// Why a block did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnappyError {
    #[error("snappy: corrupt input")]
    Corrupt,
    #[error("snappy: decoded length {len} exceeds the limit of {max} bytes")]
    TooLarge { len: u64, max: usize },
}

/// Decodes one block of at most `max` decoded bytes.
///
/// # Errors
/// [`SnappyError`] for corrupt input or a block larger than `max`.
pub fn decode(input: &[u8], max: usize) -> Result<Vec<u8>, SnappyError> {
    let (len, mut pos) = varint(input).ok_or(SnappyError::Corrupt)?;
    if len > max as u64 {
        return Err(SnappyError::TooLarge { len, max });
    }
    let len = len as usize;
    let mut out: Vec<u8> = Vec::with_capacity(len);
    while pos < input.len() {
        let tag = input[pos];
        pos += 1;
        match tag & 0b11 {
            0 => {
                // Literal: length-1 in the upper 6 bits, or in 1–4 following bytes.
                let mut n = (tag >> 2) as usize;
                if n >= 60 {
                    let extra = n - 59;
                    let bytes = input.get(pos..pos + extra).ok_or(SnappyError::Corrupt)?;
                    n = bytes
                        .iter()
                        .rev()
                        .fold(0usize, |acc, b| (acc << 8) | *b as usize);
                    pos += extra;
                }
                let n = n + 1;
                let lit = input.get(pos..pos + n).ok_or(SnappyError::Corrupt)?;
                if out.len() + n > len {
                    return Err(SnappyError::Corrupt);
                }
                out.extend_from_slice(lit);
                pos += n;
            }
            kind => {
                let (n, offset) = match kind {
                    1 => {
                        let b = *input.get(pos).ok_or(SnappyError::Corrupt)?;
                        pos += 1;
                        (
                            4 + ((tag >> 2) & 0b111) as usize,
                            ((tag as usize >> 5) << 8) | b as usize,
                        )
                    }
                    2 => {
                        let b = input.get(pos..pos + 2).ok_or(SnappyError::Corrupt)?;
                        pos += 2;
                        (
                            1 + (tag >> 2) as usize,
                            u16::from_le_bytes([b[0], b[1]]) as usize,
                        )
                    }
                    _ => {
                        let b = input.get(pos..pos + 4).ok_or(SnappyError::Corrupt)?;
                        pos += 4;
                        (
                            1 + (tag >> 2) as usize,
                            u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize,
                        )
                    }
                };
                if offset == 0 || offset > out.len() || out.len() + n > len {
                    return Err(SnappyError::Corrupt);
                }
                // Byte by byte: a copy may overlap what it produces (run-length style).
                let start = out.len() - offset;
                for i in 0..n {
                    let b = out[start + i];
                    out.push(b);
                }
            }
        }
    }
    if out.len() != len {
        return Err(SnappyError::Corrupt);
    }
    Ok(out)
}

/// Encodes `data` as one block of literals (no compression, valid for every reader).
pub fn encode_literal(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + data.len() / 60_000 * 5 + 10);
    let mut v = data.len() as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    for chunk in data.chunks(65_536) {
        let n = chunk.len() - 1;
        if n < 60 {
            out.push((n as u8) << 2);
        } else if n < 256 {
            out.extend_from_slice(&[60 << 2, n as u8]);
        } else {
            out.extend_from_slice(&[61 << 2, n as u8, (n >> 8) as u8]);
        }
        out.extend_from_slice(chunk);
    }
    out
}

fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_blocks() {
        // Blocks from the format description, built by hand: "abcabcabcabc" as the literal
        // "abc" and a copy of 9 bytes at offset 3 (1-byte offset form), and a 2-byte offset
        // copy.
        let block = [12, 0b0000_1000, b'a', b'b', b'c', 0b0001_0101, 3];
        assert_eq!(decode(&block, 100).expect("valid"), b"abcabcabcabc");
        let block = [8, 0b0000_0100, b'x', b'y', 0b0001_0110, 2, 0];
        assert_eq!(decode(&block, 100).expect("valid"), b"xyxyxyxy");
        assert_eq!(decode(&[0], 10).expect("empty"), b"");
    }

    #[test]
    fn literal_blocks_round_trip() {
        for len in [
            0usize, 1, 59, 60, 61, 255, 256, 257, 65_536, 65_537, 200_000,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let enc = encode_literal(&data);
            assert_eq!(decode(&enc, len).expect("round trip"), data, "{len}");
        }
    }

    #[test]
    fn hostile_blocks_are_refused() {
        assert_eq!(
            decode(&[0xff, 0xff, 0xff, 0xff, 0x0f], 1 << 20),
            Err(SnappyError::TooLarge {
                len: 0xffff_ffff,
                max: 1 << 20
            })
        );
        // Offset before the start, literal past the end, length mismatch, bad varint.
        for bad in [
            &[4u8, 0b0000_0101, 1][..],
            &[4, 0b0000_1100, b'a'][..],
            &[5, 0b0000_0100, b'a', b'b'][..],
            &[0x80, 0x80][..],
        ] {
            assert_eq!(decode(bad, 100), Err(SnappyError::Corrupt), "{bad:?}");
        }
    }
}
