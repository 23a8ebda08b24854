//! Incremental decoder for `Transfer-Encoding: chunked` request bodies (the Java agent's
//! OkHttp multipart uploads use it).
//!
//! Every line it reads is bounded (size line with extensions, trailers), extensions are
//! bounded per body, and the decoded length is checked against the body limit before data
//! is copied, so a hostile stream can neither grow memory nor spin.
//!
//! The grammar is RFC 9112 §7.1 exactly: `chunk-size [ chunk-ext ] CRLF`, chunk data, CRLF,
//! and trailer field lines after the last chunk. Lines end in CRLF; a bare LF, or anything
//! but CRLF after chunk data, is refused: lenient chunk parsing is a request-smuggling vector
//! when a proxy in front reads the same bytes differently.

use bytes::BytesMut;

/// A chunk-size line (hex digits plus optional `;ext`) longer than this is refused.
const MAX_SIZE_LINE: usize = 1024;
/// Chunk-extension bytes accepted over a whole body (they are parsed and ignored); many
/// small chunks with large extensions would otherwise cost far more than the body.
const MAX_EXT_BYTES: usize = 16 * 1024;
/// Total bytes of trailer fields accepted (they are read and discarded).
const MAX_TRAILER_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedError {
    #[error("chunked body exceeds the body limit")]
    TooLarge,
    #[error("malformed chunked encoding")]
    Invalid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    NeedMore,
    Done,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of the size.
    Size,
    /// Whitespace after the size or after an extension value: only more whitespace or `;`.
    ExtBws,
    /// After `;`: optional whitespace, then an extension name.
    ExtPreName,
    ExtName,
    /// Whitespace after an extension name: `=` or `;` follows.
    ExtAfterName,
    /// After `=`: optional whitespace, then a token or a quoted string.
    ExtPreValue,
    ExtToken,
    ExtQuoted,
    ExtQuotedPair,
    ExtAfterQuoted,
    /// Expecting LF after the size line's CR.
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    /// Expecting the LF of the final empty line.
    EndLf,
    Done,
}

#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    line_len: usize,
    ext_bytes: usize,
    trailer_bytes: usize,
    total: u64,
    max_body: u64,
}

impl ChunkedDecoder {
    pub fn new(max_body: u64) -> Self {
        Self {
            state: State::Size,
            size: 0,
            line_len: 0,
            ext_bytes: 0,
            trailer_bytes: 0,
            total: 0,
            max_body,
        }
    }

    /// Decoded body bytes so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Consumes as much of `input` as possible, appending chunk data to `out`. Returns the
    /// number of input bytes consumed; on `Done` the bytes after the body (a pipelined next
    /// request) are left unconsumed.
    pub fn decode(
        &mut self,
        input: &[u8],
        out: &mut BytesMut,
    ) -> Result<(usize, Progress), ChunkedError> {
        use State::*;
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                Data => {
                    let avail = (input.len() - i) as u64;
                    let take = avail.min(self.size) as usize;
                    out.extend_from_slice(&input[i..i + take]);
                    i += take;
                    self.size -= take as u64;
                    if self.size == 0 {
                        self.state = DataCr;
                    }
                    continue;
                }
                Done => return Ok((i, Progress::Done)),
                _ => {}
            }
            i += 1;
            self.state = match self.state {
                Size => {
                    self.size_line_byte()?;
                    if let Some(d) = hex_val(b) {
                        // chunk-size overflowing 64 bits is invalid, not merely too large.
                        if self.size >> 60 != 0 {
                            return Err(ChunkedError::Invalid);
                        }
                        self.size = (self.size << 4) | u64::from(d);
                        Size
                    } else if self.line_len == 1 {
                        return Err(ChunkedError::Invalid);
                    } else {
                        match b {
                            b'\r' => SizeLf,
                            b';' => self.ext_byte(ExtPreName)?,
                            b' ' | b'\t' => self.ext_byte(ExtBws)?,
                            _ => return Err(ChunkedError::Invalid),
                        }
                    }
                }
                ExtBws => match b {
                    b' ' | b'\t' => self.ext_byte(ExtBws)?,
                    b';' => self.ext_byte(ExtPreName)?,
                    _ => return Err(ChunkedError::Invalid),
                },
                ExtPreName => match b {
                    b' ' | b'\t' => self.ext_byte(ExtPreName)?,
                    b if is_tchar(b) => self.ext_byte(ExtName)?,
                    _ => return Err(ChunkedError::Invalid),
                },
                ExtName => match b {
                    b if is_tchar(b) => self.ext_byte(ExtName)?,
                    b'=' => self.ext_byte(ExtPreValue)?,
                    b';' => self.ext_byte(ExtPreName)?,
                    b' ' | b'\t' => self.ext_byte(ExtAfterName)?,
                    b'\r' => SizeLf,
                    _ => return Err(ChunkedError::Invalid),
                },
                ExtAfterName => match b {
                    b' ' | b'\t' => self.ext_byte(ExtAfterName)?,
                    b'=' => self.ext_byte(ExtPreValue)?,
                    b';' => self.ext_byte(ExtPreName)?,
                    _ => return Err(ChunkedError::Invalid),
                },
                ExtPreValue => match b {
                    b' ' | b'\t' => self.ext_byte(ExtPreValue)?,
                    b'"' => self.ext_byte(ExtQuoted)?,
                    b if is_tchar(b) => self.ext_byte(ExtToken)?,
                    // An empty value (`;a=`) is tolerated: not in the grammar, but harmless
                    // and sent by some encoders.
                    b';' => self.ext_byte(ExtPreName)?,
                    b'\r' => SizeLf,
                    _ => return Err(ChunkedError::Invalid),
                },
                ExtToken => match b {
                    b if is_tchar(b) => self.ext_byte(ExtToken)?,
                    b';' => self.ext_byte(ExtPreName)?,
                    b' ' | b'\t' => self.ext_byte(ExtBws)?,
                    b'\r' => SizeLf,
                    _ => return Err(ChunkedError::Invalid),
                },
                ExtQuoted => match b {
                    b'"' => self.ext_byte(ExtAfterQuoted)?,
                    b'\\' => self.ext_byte(ExtQuotedPair)?,
                    // qdtext
                    b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff => {
                        self.ext_byte(ExtQuoted)?
                    }
                    _ => return Err(ChunkedError::Invalid),
                },
                ExtQuotedPair => match b {
                    b'\t' | b' '..=0x7e | 0x80..=0xff => self.ext_byte(ExtQuoted)?,
                    _ => return Err(ChunkedError::Invalid),
                },
                ExtAfterQuoted => match b {
                    b';' => self.ext_byte(ExtPreName)?,
                    b' ' | b'\t' => self.ext_byte(ExtBws)?,
                    b'\r' => SizeLf,
                    _ => return Err(ChunkedError::Invalid),
                },
                SizeLf => {
                    if b != b'\n' {
                        return Err(ChunkedError::Invalid);
                    }
                    self.end_size_line()?
                }
                DataCr => {
                    if b != b'\r' {
                        return Err(ChunkedError::Invalid);
                    }
                    DataLf
                }
                DataLf => {
                    if b != b'\n' {
                        return Err(ChunkedError::Invalid);
                    }
                    Size
                }
                TrailerStart => {
                    self.trailer_byte()?;
                    match b {
                        b'\r' => EndLf,
                        b if is_tchar(b) => TrailerName,
                        _ => return Err(ChunkedError::Invalid),
                    }
                }
                TrailerName => {
                    self.trailer_byte()?;
                    match b {
                        b if is_tchar(b) => TrailerName,
                        b':' => TrailerValue,
                        _ => return Err(ChunkedError::Invalid),
                    }
                }
                TrailerValue => {
                    self.trailer_byte()?;
                    match b {
                        b'\r' => TrailerLf,
                        b'\t' | b' '..=0x7e | 0x80..=0xff => TrailerValue,
                        _ => return Err(ChunkedError::Invalid),
                    }
                }
                TrailerLf => {
                    if b != b'\n' {
                        return Err(ChunkedError::Invalid);
                    }
                    TrailerStart
                }
                EndLf => {
                    if b != b'\n' {
                        return Err(ChunkedError::Invalid);
                    }
                    self.state = Done;
                    return Ok((i, Progress::Done));
                }
                Data | Done => unreachable!("handled above"),
            };
        }
        let p = if self.state == Done {
            Progress::Done
        } else {
            Progress::NeedMore
        };
        Ok((i, p))
    }

    /// Counts a byte of the size line (digits and extensions) against its bound.
    fn size_line_byte(&mut self) -> Result<(), ChunkedError> {
        self.line_len += 1;
        if self.line_len > MAX_SIZE_LINE {
            return Err(ChunkedError::Invalid);
        }
        Ok(())
    }

    /// Counts an extension byte against the line and per-body bounds; returns `next`.
    fn ext_byte(&mut self, next: State) -> Result<State, ChunkedError> {
        if self.state != State::Size {
            self.size_line_byte()?;
        }
        self.ext_bytes += 1;
        if self.ext_bytes > MAX_EXT_BYTES {
            return Err(ChunkedError::Invalid);
        }
        Ok(next)
    }

    fn trailer_byte(&mut self) -> Result<(), ChunkedError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > MAX_TRAILER_BYTES {
            return Err(ChunkedError::Invalid);
        }
        Ok(())
    }

    fn end_size_line(&mut self) -> Result<State, ChunkedError> {
        self.line_len = 0;
        if self.size == 0 {
            return Ok(State::TrailerStart);
        }
        self.total = self
            .total
            .checked_add(self.size)
            .ok_or(ChunkedError::TooLarge)?;
        if self.total > self.max_body {
            return Err(ChunkedError::TooLarge);
        }
        Ok(State::Data)
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 9110 §5.6.2 tchar.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(input: &[u8], max: u64) -> Result<(Vec<u8>, usize), ChunkedError> {
        let mut d = ChunkedDecoder::new(max);
        let mut out = BytesMut::new();
        let (n, p) = d.decode(input, &mut out)?;
        assert_eq!(p, Progress::Done, "input should be complete");
        Ok((out.to_vec(), n))
    }

    fn encode(data: &[u8], chunk: usize) -> Vec<u8> {
        let mut v = Vec::new();
        for c in data.chunks(chunk.max(1)) {
            v.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
            v.extend_from_slice(c);
            v.extend_from_slice(b"\r\n");
        }
        v.extend_from_slice(b"0\r\n\r\n");
        v
    }

    #[test]
    fn simple() {
        let (out, n) =
            decode_all(b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\nNEXT", 100).unwrap();
        assert_eq!(out, b"hello world");
        assert_eq!(n, 32);
    }

    #[test]
    fn trailers_are_skipped() {
        let (out, _) = decode_all(b"3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n", 100).unwrap();
        assert_eq!(out, b"abc");
    }

    #[test]
    fn limit_is_checked_before_copying() {
        let mut d = ChunkedDecoder::new(10);
        let mut out = BytesMut::new();
        assert_eq!(
            d.decode(b"ffffffff\r\n", &mut out).unwrap_err(),
            ChunkedError::TooLarge
        );
        assert!(out.is_empty());
    }

    #[test]
    fn invalid_inputs() {
        for bad in [
            &b"zz\r\n"[..],
            b"5\r\nhelloXX",
            b"5\rX",
            b"11111111111111111\r\n",
            b"\r\n",
        ] {
            let mut d = ChunkedDecoder::new(1 << 20);
            let mut out = BytesMut::new();
            assert!(d.decode(bad, &mut out).is_err(), "{bad:?}");
        }
        let mut long_ext = b"1;".to_vec();
        long_ext.extend(std::iter::repeat_n(b'a', 2000));
        let mut d = ChunkedDecoder::new(1 << 20);
        assert!(d.decode(&long_ext, &mut BytesMut::new()).is_err());
    }

    #[test]
    fn extensions_follow_the_grammar() {
        for ok in [
            &b"5;a\r\nhello\r\n0\r\n\r\n"[..],
            b"5 ; a = b ;c\r\nhello\r\n0;z=\"q\\\"\"\r\n\r\n",
            b"5;a=\"x y\" ;b\r\nhello\r\n0\r\n\r\n",
            b"00000000000000000000000005\r\nhello\r\n0\r\n\r\n",
            b"5;a=;b=\r\nhello\r\n0\r\n\r\n",
        ] {
            let (out, _) = decode_all(ok, 100).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
            assert_eq!(out, b"hello", "{ok:?}");
        }
        for bad in [
            &b"5;\r\n"[..],
            b"5 \r\n",
            b"5;a b\r\n",
            b"5;a=\"x\r\n",
            b"5;a=b c\r\n",
            b"5;a\x00\r\n",
            b"5;a\n",
            b"5\n",
            b"5x\r\n",
            b"5\r\nhello\n",
            b"5\r\nhello\r\n0\n",
            b"0\r\n\n",
            b"0\r\nno colon\r\n",
            b"0\r\n X: folded\r\n",
            b"0\r\nX: a\x01\r\n",
            b"0\r\nX: a\rb\r\n",
            b"fffffffffffffffff\r\n",
        ] {
            let mut d = ChunkedDecoder::new(1 << 20);
            assert_eq!(
                d.decode(bad, &mut BytesMut::new()).unwrap_err(),
                ChunkedError::Invalid,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn extensions_are_bounded_per_body() {
        let mut enc = Vec::new();
        for _ in 0..40 {
            enc.extend_from_slice(b"1;e=");
            enc.extend(std::iter::repeat_n(b'y', 500));
            enc.extend_from_slice(b"\r\nx\r\n");
        }
        let mut d = ChunkedDecoder::new(1 << 20);
        assert_eq!(
            d.decode(&enc, &mut BytesMut::new()).unwrap_err(),
            ChunkedError::Invalid
        );
        // 30 of them (15 KiB) are fine.
        enc.truncate(enc.len() / 40 * 30);
        enc.extend_from_slice(b"0\r\n\r\n");
        assert_eq!(decode_all(&enc, 1 << 20).unwrap().0, vec![b'x'; 30]);
    }

    proptest! {
        #[test]
        fn round_trip_any_split(data in proptest::collection::vec(any::<u8>(), 0..2000),
                                chunk in 1usize..300, split in 1usize..50) {
            let enc = encode(&data, chunk);
            let mut d = ChunkedDecoder::new(1 << 20);
            let mut out = BytesMut::new();
            let mut done = false;
            for piece in enc.chunks(split) {
                let (n, p) = d.decode(piece, &mut out).unwrap();
                if p == Progress::Done {
                    prop_assert_eq!(n, piece.len());
                    done = true;
                } else {
                    prop_assert_eq!(n, piece.len());
                }
            }
            prop_assert!(done);
            prop_assert_eq!(&out[..], &data[..]);
        }

        #[test]
        fn never_panics(input in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut d = ChunkedDecoder::new(4096);
            let mut out = BytesMut::new();
            let _ = d.decode(&input, &mut out);
            prop_assert!(out.len() <= 4096);
        }
    }
}
