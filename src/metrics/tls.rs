//! TLS listener metrics: handshakes by protocol version, failures by reason, and how long a
//! handshake takes.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts, Registry};

/// Handshake durations: loopback full handshakes take ~1 ms, resumptions less; a client
/// across the internet adds round trips.
const HANDSHAKE_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.0,
];

pub struct TlsMetrics {
    pub handshakes: IntCounterVec,
    pub failures: IntCounterVec,
    pub duration: Histogram,
}

impl TlsMetrics {
    /// Creates and registers the metrics in `r`.
    ///
    /// # Errors
    /// A name already registered.
    pub fn register(r: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            handshakes: IntCounterVec::new(
                Opts::new(
                    "pyrogate_tls_handshakes_total",
                    "TLS handshakes completed on the listener, by protocol version.",
                ),
                &["version"],
            )?,
            failures: IntCounterVec::new(
                Opts::new(
                    "pyrogate_tls_handshake_failures_total",
                    "TLS handshakes that failed on the listener, by reason.",
                ),
                &["reason"],
            )?,
            duration: Histogram::with_opts(
                HistogramOpts::new(
                    "pyrogate_tls_handshake_duration_seconds",
                    "Time from accept to a completed TLS handshake.",
                )
                .buckets(HANDSHAKE_BUCKETS.to_vec()),
            )?,
        };
        r.register(Box::new(m.handshakes.clone()))?;
        r.register(Box::new(m.failures.clone()))?;
        r.register(Box::new(m.duration.clone()))?;
        Ok(m)
    }
}
