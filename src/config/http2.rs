//! `[server.http2]`: cleartext HTTP/2 (h2c) on the listener, by prior knowledge or
//! `Upgrade: h2c`. Alloy's `http.http2` block sets `max_concurrent_streams = 100` and leaves
//! the rest to Go's HTTP/2 server, whose defaults are the ones here (docs/http2.md §2).

use serde::Deserialize;

use super::ConfigError;
use super::units::Size;

/// Alloy's `http2.max_concurrent_streams` default.
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 100;
/// Go's `MaxUploadBufferPerStream` and `MaxUploadBufferPerConnection` default (1 MiB): a
/// profile of up to 1 MiB arrives without waiting for a window update.
pub const DEFAULT_STREAM_WINDOW: u32 = 1 << 20;
pub const DEFAULT_CONNECTION_WINDOW: u32 = 1 << 20;
/// Go's `MaxReadFrameSize` default.
pub const DEFAULT_MAX_FRAME_SIZE: u32 = 1 << 20;
/// Go's (and RFC 7541's) HPACK table size.
pub const DEFAULT_HEADER_TABLE_SIZE: u32 = 4096;
/// Client resets of streams whose request is still arriving, as a burst (then 10 per
/// second): the `h2` crate's default for its equivalent guard. An SDK resets such a stream
/// only when it gives up on an upload.
pub const DEFAULT_MAX_PENDING_RESET_STREAMS: usize = 20;
/// Streams refused or reset because the client broke the protocol on them (oversized header
/// lists, malformed requests) before GOAWAY `ENHANCE_YOUR_CALM`: the `h2` crate's default.
pub const DEFAULT_MAX_LOCAL_ERROR_RESETS: usize = 1024;
/// Premature resets and refused streams a connection may burst before GOAWAY
/// `ENHANCE_YOUR_CALM` (then 10 per second): an SDK cancels at most a request at a time.
pub const DEFAULT_MAX_RAPID_RESETS: u32 = 200;
/// Response DATA queued for the socket at once (the rest of an answer waits in its stream):
/// our responses are small; only `/metrics` is larger.
pub const DEFAULT_MAX_SEND_BUFFER: u32 = 256 << 10;
/// Go pads `MaxHeaderBytes` by ten 32-byte HPACK entry overheads to get
/// `SETTINGS_MAX_HEADER_LIST_SIZE`.
pub const HEADER_LIST_PADDING: u64 = 10 * 32;
/// RFC 9113 §6.5.2 bounds of `SETTINGS_MAX_FRAME_SIZE` and window sizes.
const MIN_FRAME_SIZE: u64 = 16_384;
const MAX_FRAME_SIZE: u64 = (1 << 24) - 1;
const MAX_WINDOW: u64 = (1 << 31) - 1;
const MIN_WINDOW: u64 = 65_535;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http2Section {
    pub enabled: Option<bool>,
    pub max_concurrent_streams: Option<u32>,
    pub initial_stream_window_size: Option<Size>,
    pub initial_connection_window_size: Option<Size>,
    pub max_frame_size: Option<Size>,
    pub max_header_list_size: Option<Size>,
    pub header_table_size: Option<Size>,
    pub max_pending_reset_streams: Option<usize>,
    pub max_local_error_resets: Option<usize>,
    pub max_rapid_resets: Option<u32>,
    pub max_send_buffer_size: Option<Size>,
}

/// The resolved `[server.http2]` (present when HTTP/2 is enabled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Config {
    pub max_concurrent_streams: u32,
    pub initial_stream_window_size: u32,
    pub initial_connection_window_size: u32,
    pub max_frame_size: u32,
    pub max_header_list_size: u32,
    pub header_table_size: u32,
    pub max_pending_reset_streams: usize,
    pub max_local_error_resets: usize,
    pub max_rapid_resets: u32,
    pub max_send_buffer_size: u32,
}

fn within(key: &str, v: u64, lo: u64, hi: u64) -> Result<u32, ConfigError> {
    if (lo..=hi).contains(&v) {
        Ok(v as u32)
    } else {
        Err(ConfigError::new(
            format!("server.http2.{key}"),
            format!("must be between {lo} and {hi}, got {v}"),
        ))
    }
}

/// Resolves the section; `max_header_bytes` is the HTTP/1.1 head limit the header list
/// limit derives from when not set. HTTP/2 is on unless `enabled = false`.
pub fn resolve(
    s: Option<&Http2Section>,
    max_header_bytes: u64,
) -> Result<Option<Http2Config>, ConfigError> {
    let default = Http2Section::default();
    let s = s.unwrap_or(&default);
    if s.enabled == Some(false) {
        return Ok(None);
    }
    let size = |v: &Option<Size>, d: u64| v.as_ref().map_or(d, |x| x.0);
    Ok(Some(Http2Config {
        max_concurrent_streams: within(
            "max_concurrent_streams",
            u64::from(
                s.max_concurrent_streams
                    .unwrap_or(DEFAULT_MAX_CONCURRENT_STREAMS),
            ),
            1,
            u64::from(u32::MAX),
        )?,
        initial_stream_window_size: within(
            "initial_stream_window_size",
            size(&s.initial_stream_window_size, DEFAULT_STREAM_WINDOW.into()),
            1,
            MAX_WINDOW,
        )?,
        initial_connection_window_size: within(
            "initial_connection_window_size",
            size(
                &s.initial_connection_window_size,
                DEFAULT_CONNECTION_WINDOW.into(),
            ),
            MIN_WINDOW,
            MAX_WINDOW,
        )?,
        max_frame_size: within(
            "max_frame_size",
            size(&s.max_frame_size, DEFAULT_MAX_FRAME_SIZE.into()),
            MIN_FRAME_SIZE,
            MAX_FRAME_SIZE,
        )?,
        max_header_list_size: within(
            "max_header_list_size",
            size(
                &s.max_header_list_size,
                max_header_bytes + HEADER_LIST_PADDING,
            ),
            1024,
            u64::from(u32::MAX),
        )?,
        header_table_size: within(
            "header_table_size",
            size(&s.header_table_size, DEFAULT_HEADER_TABLE_SIZE.into()),
            0,
            1 << 20,
        )?,
        max_pending_reset_streams: s
            .max_pending_reset_streams
            .unwrap_or(DEFAULT_MAX_PENDING_RESET_STREAMS),
        max_local_error_resets: s
            .max_local_error_resets
            .unwrap_or(DEFAULT_MAX_LOCAL_ERROR_RESETS)
            .max(1),
        max_rapid_resets: s
            .max_rapid_resets
            .unwrap_or(DEFAULT_MAX_RAPID_RESETS)
            .max(1),
        max_send_buffer_size: within(
            "max_send_buffer_size",
            size(&s.max_send_buffer_size, DEFAULT_MAX_SEND_BUFFER.into()),
            1024,
            u64::from(u32::MAX),
        )?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Http2Section {
        toml::from_str(t).expect("toml")
    }

    #[test]
    fn defaults_are_alloys_and_gos() {
        let c = resolve(None, 64 << 10).expect("ok").expect("enabled");
        assert_eq!(c.max_concurrent_streams, 100);
        assert_eq!(c.initial_stream_window_size, 1 << 20);
        assert_eq!(c.initial_connection_window_size, 1 << 20);
        assert_eq!(c.max_frame_size, 1 << 20);
        assert_eq!(c.max_header_list_size, (64 << 10) + 320);
        assert_eq!(c.header_table_size, 4096);
    }

    #[test]
    fn disabled_and_bounds() {
        assert_eq!(
            resolve(Some(&parse("enabled = false")), 1024).expect("ok"),
            None
        );
        let e = resolve(Some(&parse("max_frame_size = \"1KiB\"")), 1024).expect_err("too small");
        assert!(e.to_string().contains("server.http2.max_frame_size"), "{e}");
        let e = resolve(Some(&parse("max_concurrent_streams = 0")), 1024).expect_err("zero");
        assert!(e.to_string().contains("max_concurrent_streams"), "{e}");
        let c = resolve(
            Some(&parse(
                "max_concurrent_streams = 7\nmax_header_list_size = \"8KiB\"",
            )),
            1024,
        )
        .expect("ok")
        .expect("enabled");
        assert_eq!(
            (c.max_concurrent_streams, c.max_header_list_size),
            (7, 8192)
        );
    }
}
