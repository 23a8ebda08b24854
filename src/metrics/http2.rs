//! HTTP/2 listener metrics: connections by how they started, streams, what the peer or we
//! ended, and the limits in force (one gauge per `[server.http2]` bound, so a dashboard can
//! put what was hit next to what is allowed).

use prometheus::{IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};

pub struct Http2Metrics {
    /// `setup`: `prior_knowledge` | `upgrade`.
    pub connections: IntCounterVec,
    pub streams: IntCounter,
    /// Streams we reset, by `reason` (`refused`, `write_timeout`, `read_timeout`, ...), and
    /// streams the client reset before we answered (`reason = "client_cancel"`).
    pub stream_resets: IntCounterVec,
    /// Connections ended with a GOAWAY we sent or an error, by HTTP/2 error `code`
    /// (`no_error` for drain, age and idle; `enhance_your_calm` for floods; the RFC 9113
    /// code of a peer's protocol violation).
    pub goaways: IntCounterVec,
    /// The configured bounds, by `[server.http2]` key.
    pub limits: IntGaugeVec,
}

impl Http2Metrics {
    /// Creates and registers the metrics in `r`.
    ///
    /// # Errors
    /// A name already registered.
    pub fn register(r: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            connections: IntCounterVec::new(
                Opts::new(
                    "pyrogate_http2_connections_total",
                    "HTTP/2 connections served, by how they started (prior_knowledge, upgrade).",
                ),
                &["setup"],
            )?,
            streams: IntCounter::new(
                "pyrogate_http2_streams_total",
                "HTTP/2 streams (requests) accepted.",
            )?,
            stream_resets: IntCounterVec::new(
                Opts::new(
                    "pyrogate_http2_stream_resets_total",
                    "HTTP/2 streams reset before they completed, by reason.",
                ),
                &["reason"],
            )?,
            goaways: IntCounterVec::new(
                Opts::new(
                    "pyrogate_http2_goaways_total",
                    "HTTP/2 connections ended by a GOAWAY we sent or an error, by HTTP/2 error code.",
                ),
                &["code"],
            )?,
            limits: IntGaugeVec::new(
                Opts::new(
                    "pyrogate_http2_limit",
                    "The configured HTTP/2 bounds, by [server.http2] key.",
                ),
                &["name"],
            )?,
        };
        r.register(Box::new(m.connections.clone()))?;
        r.register(Box::new(m.streams.clone()))?;
        r.register(Box::new(m.stream_resets.clone()))?;
        r.register(Box::new(m.goaways.clone()))?;
        r.register(Box::new(m.limits.clone()))?;
        Ok(m)
    }
}
