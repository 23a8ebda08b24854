//! Incremental decoder for `Transfer-Encoding: chunked` request bodies (the Java agent's
//! OkHttp multipart uploads use it).
//!
//! Every line it reads is bounded (size line with extensions, trailers) and the decoded
//! length is checked against the body limit before data is copied, so a hostile stream can
//! neither grow memory nor spin.

use bytes::BytesMut;

/// A chunk-size line (hex digits plus optional `;ext`) longer than this is refused.
const MAX_SIZE_LINE: usize = 1024;
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
    /// After the digits: optional whitespace and `;extension` up to CR.
    Ext,
    /// Expecting LF after the size line's CR.
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// Reading trailer lines after the last chunk; `line_len` tracks the current line.
    Trailer,
    TrailerLf,
    Done,
}

#[derive(Debug)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    digits: usize,
    line_len: usize,
    trailer_bytes: usize,
    total: u64,
    max_body: u64,
}

impl ChunkedDecoder {
    pub fn new(max_body: u64) -> Self {
        Self {
            state: State::Size,
            size: 0,
            digits: 0,
            line_len: 0,
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
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Size => {
                    if let Some(d) = hex_val(b) {
                        self.digits += 1;
                        if self.digits > 16 {
                            return Err(ChunkedError::Invalid);
                        }
                        self.size = (self.size << 4) | u64::from(d);
                        i += 1;
                    } else if self.digits == 0 {
                        return Err(ChunkedError::Invalid);
                    } else {
                        self.line_len = self.digits;
                        self.state = State::Ext;
                    }
                }
                State::Ext => {
                    i += 1;
                    self.line_len += 1;
                    if self.line_len > MAX_SIZE_LINE {
                        return Err(ChunkedError::Invalid);
                    }
                    match b {
                        b'\r' => self.state = State::SizeLf,
                        b'\n' => self.end_size_line()?,
                        _ => {}
                    }
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(ChunkedError::Invalid);
                    }
                    i += 1;
                    self.end_size_line()?;
                }
                State::Data => {
                    let avail = (input.len() - i) as u64;
                    let take = avail.min(self.size) as usize;
                    out.extend_from_slice(&input[i..i + take]);
                    i += take;
                    self.size -= take as u64;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                }
                State::DataCr => {
                    i += 1;
                    match b {
                        b'\r' => self.state = State::DataLf,
                        b'\n' => self.state = State::Size,
                        _ => return Err(ChunkedError::Invalid),
                    }
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkedError::Invalid);
                    }
                    i += 1;
                    self.state = State::Size;
                }
                State::Trailer => {
                    i += 1;
                    self.trailer_bytes += 1;
                    if self.trailer_bytes > MAX_TRAILER_BYTES {
                        return Err(ChunkedError::Invalid);
                    }
                    match b {
                        b'\r' => self.state = State::TrailerLf,
                        b'\n' => {
                            if self.end_trailer_line() {
                                return Ok((i, Progress::Done));
                            }
                        }
                        _ => self.line_len += 1,
                    }
                }
                State::TrailerLf => {
                    if b != b'\n' {
                        return Err(ChunkedError::Invalid);
                    }
                    i += 1;
                    if self.end_trailer_line() {
                        return Ok((i, Progress::Done));
                    }
                    self.state = State::Trailer;
                }
                State::Done => return Ok((i, Progress::Done)),
            }
        }
        let p = if self.state == State::Done {
            Progress::Done
        } else {
            Progress::NeedMore
        };
        Ok((i, p))
    }

    fn end_size_line(&mut self) -> Result<(), ChunkedError> {
        if self.size == 0 {
            self.state = State::Trailer;
            self.line_len = 0;
        } else {
            self.total = self
                .total
                .checked_add(self.size)
                .ok_or(ChunkedError::TooLarge)?;
            if self.total > self.max_body {
                return Err(ChunkedError::TooLarge);
            }
            self.state = State::Data;
        }
        self.digits = 0;
        Ok(())
    }

    /// An empty line ends the trailer section (and the body).
    fn end_trailer_line(&mut self) -> bool {
        let empty = self.line_len == 0;
        self.line_len = 0;
        if empty {
            self.state = State::Done;
        } else {
            self.state = State::Trailer;
        }
        empty
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
