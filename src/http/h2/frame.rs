//! HTTP/2 frames (RFC 9113 §4, §6): the 9-byte frame header, the frame types and flags the
//! server reads and writes, error codes, and writers for the frames it sends. Writers
//! append to the connection's output buffer; nothing here allocates per frame.

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Length of a frame header.
pub const HEADER_LEN: usize = 9;
/// SETTINGS_MAX_FRAME_SIZE and the flow-control window before any SETTINGS (RFC 9113
/// §6.5.2): what a peer may assume until it has ours, and what we assume until we have its.
pub const DEFAULT_MAX_FRAME: u32 = 16_384;
pub const DEFAULT_WINDOW: u32 = 65_535;
/// The largest window RFC 9113 §6.9.1 allows.
pub const MAX_WINDOW: i64 = (1 << 31) - 1;
/// The largest SETTINGS_MAX_FRAME_SIZE a peer may announce (RFC 9113 §6.5.2).
pub const MAX_FRAME_LIMIT: u32 = (1 << 24) - 1;

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PUSH_PROMISE: u8 = 0x5;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const ACK: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const PADDED: u8 = 0x8;
pub const PRIORITY_FLAG: u8 = 0x20;

pub const SETTINGS_HEADER_TABLE_SIZE: u16 = 0x1;
pub const SETTINGS_ENABLE_PUSH: u16 = 0x2;
pub const SETTINGS_MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const SETTINGS_INITIAL_WINDOW_SIZE: u16 = 0x4;
pub const SETTINGS_MAX_FRAME_SIZE: u16 = 0x5;
pub const SETTINGS_MAX_HEADER_LIST_SIZE: u16 = 0x6;

/// An HTTP/2 error code (RFC 9113 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reason(pub u32);

impl Reason {
    pub const NO_ERROR: Self = Self(0x0);
    pub const PROTOCOL_ERROR: Self = Self(0x1);
    pub const INTERNAL_ERROR: Self = Self(0x2);
    pub const FLOW_CONTROL_ERROR: Self = Self(0x3);
    pub const SETTINGS_TIMEOUT: Self = Self(0x4);
    pub const STREAM_CLOSED: Self = Self(0x5);
    pub const FRAME_SIZE_ERROR: Self = Self(0x6);
    pub const REFUSED_STREAM: Self = Self(0x7);
    pub const CANCEL: Self = Self(0x8);
    pub const COMPRESSION_ERROR: Self = Self(0x9);
    pub const CONNECT_ERROR: Self = Self(0xa);
    pub const ENHANCE_YOUR_CALM: Self = Self(0xb);
    pub const INADEQUATE_SECURITY: Self = Self(0xc);
    pub const HTTP_1_1_REQUIRED: Self = Self(0xd);

    /// The `pyrogate_http2_goaways_total{code}` label.
    pub fn label(self) -> &'static str {
        match self.0 {
            0x0 => "no_error",
            0x1 => "protocol_error",
            0x2 => "internal_error",
            0x3 => "flow_control_error",
            0x4 => "settings_timeout",
            0x5 => "stream_closed",
            0x6 => "frame_size_error",
            0x7 => "refused_stream",
            0x8 => "cancel",
            0x9 => "compression_error",
            0xa => "connect_error",
            0xb => "enhance_your_calm",
            0xc => "inadequate_security",
            0xd => "http_1_1_required",
            _ => "unknown",
        }
    }
}

/// A frame header as read from the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub len: u32,
    pub kind: u8,
    pub flags: u8,
    /// The stream identifier, reserved bit cleared.
    pub stream: u32,
}

impl Head {
    /// Reads the header at the start of `b` (at least [`HEADER_LEN`] bytes).
    pub fn parse(b: &[u8]) -> Option<Self> {
        let h: &[u8; HEADER_LEN] = b.get(..HEADER_LEN)?.try_into().ok()?;
        Some(Self {
            len: u32::from_be_bytes([0, h[0], h[1], h[2]]),
            kind: h[3],
            flags: h[4],
            stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff,
        })
    }

    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Appends a frame header.
pub fn put_head(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    let l = (len as u32).to_be_bytes();
    out.extend_from_slice(&[l[1], l[2], l[3], kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
}

/// Appends a SETTINGS frame with `values`.
pub fn put_settings(out: &mut Vec<u8>, values: &[(u16, u32)]) {
    put_head(out, values.len() * 6, SETTINGS, 0, 0);
    for (id, v) in values {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&v.to_be_bytes());
    }
}

pub fn put_settings_ack(out: &mut Vec<u8>) {
    put_head(out, 0, SETTINGS, ACK, 0);
}

pub fn put_window_update(out: &mut Vec<u8>, stream: u32, increment: u32) {
    put_head(out, 4, WINDOW_UPDATE, 0, stream);
    out.extend_from_slice(&increment.to_be_bytes());
}

pub fn put_rst(out: &mut Vec<u8>, stream: u32, reason: Reason) {
    put_head(out, 4, RST_STREAM, 0, stream);
    out.extend_from_slice(&reason.0.to_be_bytes());
}

pub fn put_goaway(out: &mut Vec<u8>, last_stream: u32, reason: Reason) {
    put_head(out, 8, GOAWAY, 0, 0);
    out.extend_from_slice(&last_stream.to_be_bytes());
    out.extend_from_slice(&reason.0.to_be_bytes());
}

pub fn put_ping_ack(out: &mut Vec<u8>, payload: &[u8; 8]) {
    put_head(out, 8, PING, ACK, 0);
    out.extend_from_slice(payload);
}

/// Appends a header block as HEADERS (flags `END_STREAM` when `end_stream`) and, when it
/// is longer than `max_frame`, CONTINUATION frames.
pub fn put_header_block(
    out: &mut Vec<u8>,
    stream: u32,
    block: &[u8],
    end_stream: bool,
    max_frame: usize,
) {
    let mut chunks = block.chunks(max_frame.max(1));
    let first = chunks.next().unwrap_or(&[]);
    let rest = chunks.len();
    let mut flags = if end_stream { END_STREAM } else { 0 };
    if rest == 0 {
        flags |= END_HEADERS;
    }
    put_head(out, first.len(), HEADERS, flags, stream);
    out.extend_from_slice(first);
    for (i, c) in chunks.enumerate() {
        let flags = if i + 1 == rest { END_HEADERS } else { 0 };
        put_head(out, c.len(), CONTINUATION, flags, stream);
        out.extend_from_slice(c);
    }
}

/// A frame payload without its padding (RFC 9113 §6.1, §6.2): `None` when the pad length
/// is not shorter than the payload.
pub fn unpad(head: &Head, payload: &[u8]) -> Option<(usize, usize)> {
    if !head.has(PADDED) {
        return Some((0, payload.len()));
    }
    let pad = usize::from(*payload.first()?);
    let end = payload.len().checked_sub(pad)?;
    (end >= 1).then_some((1, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let mut out = Vec::new();
        put_head(&mut out, 0x01_0203, HEADERS, END_HEADERS, 0x8000_0005);
        assert_eq!(out, [1, 2, 3, 1, 4, 0x80, 0, 0, 5]);
        let h = Head::parse(&out).expect("header");
        assert_eq!(
            h,
            Head {
                len: 0x01_0203,
                kind: HEADERS,
                flags: END_HEADERS,
                stream: 5
            }
        );
        assert!(Head::parse(&out[..8]).is_none());
    }

    #[test]
    fn long_header_blocks_continue() {
        let block: Vec<u8> = (0..40u8).collect();
        let mut out = Vec::new();
        put_header_block(&mut out, 3, &block, true, 16);
        let mut at = 0;
        let mut seen = Vec::new();
        let mut kinds = Vec::new();
        while at < out.len() {
            let h = Head::parse(&out[at..]).expect("header");
            kinds.push((h.kind, h.flags));
            seen.extend_from_slice(&out[at + HEADER_LEN..at + HEADER_LEN + h.len as usize]);
            at += HEADER_LEN + h.len as usize;
        }
        assert_eq!(seen, block);
        assert_eq!(
            kinds,
            [
                (HEADERS, END_STREAM),
                (CONTINUATION, 0),
                (CONTINUATION, END_HEADERS)
            ]
        );
        let mut one = Vec::new();
        put_header_block(&mut one, 1, &block[..3], false, 16);
        assert_eq!(
            &one[..HEADER_LEN],
            &[0, 0, 3, HEADERS, END_HEADERS, 0, 0, 0, 1]
        );
    }

    #[test]
    fn padding() {
        let plain = Head::parse(&[0, 0, 4, DATA, 0, 0, 0, 0, 1]).expect("h");
        assert_eq!(unpad(&plain, &[9, 9, 9, 9]), Some((0, 4)));
        let padded = Head::parse(&[0, 0, 4, DATA, PADDED, 0, 0, 0, 1]).expect("h");
        assert_eq!(unpad(&padded, &[2, 7, 0, 0]), Some((1, 2)));
        assert_eq!(unpad(&padded, &[3, 7, 0, 0]), Some((1, 1)));
        assert_eq!(unpad(&padded, &[4, 7, 0, 0]), None);
        assert_eq!(unpad(&padded, &[]), None);
    }
}
