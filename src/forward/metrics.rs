//! Forwarding metrics under Alloy's `pyroscope.write` names (docs/alloy-compat.md §14.2), so
//! dashboards built for Alloy keep working, plus queue and in-flight gauges of our own.
//!
//! These are written by writer threads (a handful of updates per delivery), not by the
//! receive workers, so the prometheus crate's atomic vectors are fine here.

use prometheus::{
    GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// Alloy's default buckets for `pyroscope_write_latency` (prometheus.DefBuckets).
const LATENCY_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone)]
pub struct ForwardMetrics {
    pub sent_bytes: IntCounterVec,
    pub dropped_bytes: IntCounterVec,
    pub sent_profiles: IntCounterVec,
    pub dropped_profiles: IntCounterVec,
    pub retries: IntCounterVec,
    pub latency: HistogramVec,
    pub queue_bytes: IntGaugeVec,
    pub inflight: IntGaugeVec,
    pub shed: IntCounterVec,
    pub queue_limit: GaugeVec,
}

fn counter(reg: &Registry, name: &str, help: &str) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), &["endpoint"])?;
    reg.register(Box::new(c.clone()))?;
    Ok(c)
}

impl ForwardMetrics {
    pub fn register(reg: &Registry) -> prometheus::Result<Self> {
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "pyroscope_write_latency",
                "Write latency for sending profiles to Pyroscope",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["endpoint", "type"],
        )?;
        reg.register(Box::new(latency.clone()))?;
        let queue_bytes = IntGaugeVec::new(
            Opts::new(
                "pyrogate_forward_queue_bytes",
                "Bytes of profiles queued or in flight per destination.",
            ),
            &["endpoint"],
        )?;
        reg.register(Box::new(queue_bytes.clone()))?;
        let queue_limit = GaugeVec::new(
            Opts::new(
                "pyrogate_forward_queue_limit_bytes",
                "queue_max_bytes per destination.",
            ),
            &["endpoint"],
        )?;
        reg.register(Box::new(queue_limit.clone()))?;
        let inflight = IntGaugeVec::new(
            Opts::new(
                "pyrogate_forward_inflight_requests",
                "Requests being sent to a destination (including retry sleeps).",
            ),
            &["endpoint"],
        )?;
        reg.register(Box::new(inflight.clone()))?;
        Ok(Self {
            sent_bytes: counter(
                reg,
                "pyroscope_write_sent_bytes_total",
                "Total number of compressed bytes sent to Pyroscope.",
            )?,
            dropped_bytes: counter(
                reg,
                "pyroscope_write_dropped_bytes_total",
                "Total number of compressed bytes dropped by Pyroscope.",
            )?,
            sent_profiles: counter(
                reg,
                "pyroscope_write_sent_profiles_total",
                "Total number of profiles sent to Pyroscope.",
            )?,
            dropped_profiles: counter(
                reg,
                "pyroscope_write_dropped_profiles_total",
                "Total number of profiles dropped by Pyroscope.",
            )?,
            retries: counter(
                reg,
                "pyroscope_write_retries_total",
                "Total number of retries to Pyroscope.",
            )?,
            shed: counter(
                reg,
                "pyrogate_forward_shed_total",
                "Requests refused because a destination queue was full.",
            )?,
            latency,
            queue_bytes,
            inflight,
            queue_limit,
        })
    }
}
