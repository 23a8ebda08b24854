//! gzip with a timestamp-free header, so equal inputs give equal bytes.

use std::io::{Read as _, Write as _};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

/// gzip at the default level (what Go's and Node's agents use).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    gzip_level(data, Compression::default().level())
}

/// gzip at `level` (the Java agent uses level 1).
pub fn gzip_level(data: &[u8], level: u32) -> Vec<u8> {
    let mut enc = GzEncoder::new(
        Vec::with_capacity(data.len() / 3 + 64),
        Compression::new(level.min(9)),
    );
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// Inflates `data`; `None` when it is not a complete gzip stream. For tests' own checks.
pub fn gunzip(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    GzDecoder::new(data).read_to_end(&mut out).ok()?;
    Some(out)
}

/// Whether `data` starts like a gzip stream (`1f 8b 08`).
pub fn is_gzip(data: &[u8]) -> bool {
    data.starts_with(&[0x1f, 0x8b, 0x08])
}
