//! The bounds of an HTTP/2 connection, as the connection loops read them from
//! [`super::super::service::ConnLimits`].

use crate::config::http2::Http2Config;
use crate::metrics::http2::Http2Metrics;

/// The bounds of an HTTP/2 connection (`[server.http2]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Limits {
    pub max_concurrent_streams: u32,
    pub initial_stream_window: u32,
    pub initial_connection_window: u32,
    pub max_frame_size: u32,
    pub max_header_list_size: u32,
    pub header_table_size: u32,
    /// Burst of client resets of streams whose request was still arriving.
    pub max_pending_reset_streams: usize,
    /// Streams refused or reset for a client's protocol error before GOAWAY
    /// `ENHANCE_YOUR_CALM`.
    pub max_local_error_resets: usize,
    /// Burst of premature client resets and refused streams before GOAWAY
    /// `ENHANCE_YOUR_CALM`.
    pub max_rapid_resets: u32,
    /// Response DATA queued for the socket at once.
    pub max_send_buffer: u32,
}

impl Http2Limits {
    /// The bounds `[server.http2]` resolved to.
    pub fn from_config(h: &Http2Config) -> Self {
        Self {
            max_concurrent_streams: h.max_concurrent_streams,
            initial_stream_window: h.initial_stream_window_size,
            initial_connection_window: h.initial_connection_window_size,
            max_frame_size: h.max_frame_size,
            max_header_list_size: h.max_header_list_size,
            header_table_size: h.header_table_size,
            max_pending_reset_streams: h.max_pending_reset_streams,
            max_local_error_resets: h.max_local_error_resets,
            max_rapid_resets: h.max_rapid_resets,
            max_send_buffer: h.max_send_buffer_size,
        }
    }

    /// Shows the bounds in `pyrogate_http2_limit{name}`.
    pub fn publish(&self, m: &Http2Metrics) {
        for (name, v) in [
            (
                "max_concurrent_streams",
                i64::from(self.max_concurrent_streams),
            ),
            (
                "initial_stream_window_size",
                i64::from(self.initial_stream_window),
            ),
            (
                "initial_connection_window_size",
                i64::from(self.initial_connection_window),
            ),
            ("max_frame_size", i64::from(self.max_frame_size)),
            ("max_header_list_size", i64::from(self.max_header_list_size)),
            ("header_table_size", i64::from(self.header_table_size)),
            (
                "max_pending_reset_streams",
                self.max_pending_reset_streams as i64,
            ),
            ("max_local_error_resets", self.max_local_error_resets as i64),
            ("max_rapid_resets", i64::from(self.max_rapid_resets)),
            ("max_send_buffer_size", i64::from(self.max_send_buffer)),
        ] {
            m.limits.with_label_values(&[name]).set(v);
        }
    }
}
