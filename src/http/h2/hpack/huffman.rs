//! The HPACK Huffman code (RFC 7541 Appendix B), decoded a whole code at a time.
//!
//! The code is canonical: codes are handed out in order of length, and within a length in
//! order of symbol. So the table below holds only each symbol's code length; the codes,
//! each length's first code and the symbols in code order are derived from it at compile
//! time. Decoding peeks 32 bits from a 64-bit accumulator and finds the code's length by
//! comparing them, left-aligned, with each length's upper limit, shortest first: header
//! text is mostly 5- to 8-bit codes, so that is one to four comparisons per decoded byte.

/// Code length in bits of each symbol: the 256 byte values, then EOS (RFC 7541 Appendix B).
const CODE_LENGTHS: [u8; 257] = [
    13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5,
    5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6,
    6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22,
    23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22,
    21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20,
    22, 22, 22, 23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19,
    21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22,
    22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
    30, // EOS
];

/// The end-of-string symbol: a decoder must reject it inside a string (§5.2).
const EOS: u16 = 256;
/// The shortest and longest code lengths in the table.
const MIN_LEN: usize = 5;
const MAX_LEN: usize = 30;

/// The canonical code, derived from `CODE_LENGTHS`.
pub(super) struct Canonical {
    /// Each length's first code.
    first: [u32; MAX_LEN + 1],
    /// Each length's end (first code + count), left-aligned in 32 bits: a peeked 32-bit
    /// window below `limit[len]` (and not below `limit[len - 1]`) starts with a code of `len` bits.
    limit: [u64; MAX_LEN + 1],
    /// Where each length's symbols start in `symbols`.
    offset: [u16; MAX_LEN + 1],
    /// The symbols in code order.
    symbols: [u16; 257],
    /// Each symbol's code, right-aligned (tests encode with it).
    pub(super) codes: [u32; 257],
}

pub(super) const CODE: Canonical = canonical();

const fn canonical() -> Canonical {
    let mut count = [0u32; MAX_LEN + 1];
    let mut s = 0;
    while s < 257 {
        count[CODE_LENGTHS[s] as usize] += 1;
        s += 1;
    }
    let mut c = Canonical {
        first: [0; MAX_LEN + 1],
        limit: [0; MAX_LEN + 1],
        offset: [0; MAX_LEN + 1],
        symbols: [0; 257],
        codes: [0; 257],
    };
    let (mut code, mut off, mut len) = (0u32, 0u16, 1);
    while len <= MAX_LEN {
        c.first[len] = code;
        c.offset[len] = off;
        c.limit[len] = ((code + count[len]) as u64) << (32 - len);
        code = (code + count[len]) << 1;
        off += count[len] as u16;
        len += 1;
    }
    let mut next = c.offset;
    s = 0;
    while s < 257 {
        let len = CODE_LENGTHS[s] as usize;
        c.symbols[next[len] as usize] = s as u16;
        c.codes[s] = c.first[len] + (next[len] - c.offset[len]) as u32;
        next[len] += 1;
        s += 1;
    }
    c
}

/// The code length of `sym` (tests encode with it).
#[cfg(test)]
pub(super) fn code_len(sym: usize) -> u32 {
    u32::from(CODE_LENGTHS[sym])
}

/// Decodes `src`, appending the bytes to `dst` while `dst` is shorter than `cap` (the rest
/// are decoded and checked but not stored). Returns the decoded length, or None for an
/// invalid string: EOS inside it, or padding longer than 7 bits or not all 1s (§5.2).
pub(super) fn decode(src: &[u8], dst: &mut Vec<u8>, cap: usize) -> Option<usize> {
    // Every code is at least 5 bits, so the decoded length is at most 8/5 of `src`.
    dst.reserve((src.len() / 5 * 8 + 8).min(cap.saturating_sub(dst.len())));
    let (mut acc, mut bits, mut n) = (0u64, 0u32, 0usize);
    let mut input = src.iter();
    loop {
        while bits <= 56 {
            let Some(&b) = input.next() else { break };
            acc = (acc << 8) | u64::from(b);
            bits += 8;
        }
        if bits == 0 {
            return Some(n);
        }
        // The next 32 bits; past the end of the input, filled with 1s as padding would be.
        let peek = if bits >= 32 {
            (acc >> (bits - 32)) as u32
        } else {
            ((acc << (32 - bits)) as u32) | (u32::MAX >> bits)
        };
        let mut len = MIN_LEN;
        while len < MAX_LEN && u64::from(peek) >= CODE.limit[len] {
            len += 1;
        }
        if len as u32 > bits {
            // Too few bits left for a code (so the input is used up): they must be padding,
            // at most 7 bits and all 1s (a prefix of EOS).
            let mask = (1u64 << bits) - 1;
            return (bits <= 7 && acc & mask == mask).then_some(n);
        }
        let i = usize::from(CODE.offset[len])
            + (peek >> (32 - len)).wrapping_sub(CODE.first[len]) as usize;
        let sym = *CODE.symbols.get(i)?;
        if sym == EOS {
            return None;
        }
        if dst.len() < cap {
            dst.push(sym as u8);
        }
        n += 1;
        bits -= len as u32;
    }
}
