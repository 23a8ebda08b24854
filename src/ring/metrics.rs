//! Ring mode's metrics (docs/ring.md §5): members by state, requests per member, quorum
//! failures, replicas finishing after the client was answered, and the store's health.

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

pub struct RingMetrics {
    pub members: IntGaugeVec,
    pub member_requests: IntCounterVec,
    pub quorum_failures: IntCounter,
    pub background: IntCounter,
    pub store_up: IntGauge,
    pub updates: IntCounter,
    pub last_update: IntGauge,
}

impl RingMetrics {
    /// # Errors
    /// A metric of the same name is already registered.
    pub fn register(r: &Registry) -> Result<Self, prometheus::Error> {
        let m = Self {
            members: IntGaugeVec::new(
                Opts::new("pyrogate_ring_members", "Ring members by state."),
                &["state"],
            )?,
            member_requests: IntCounterVec::new(
                Opts::new(
                    "pyrogate_ring_member_requests_total",
                    "Requests sent to each ring member, by result (sent, failed).",
                ),
                &["member", "result"],
            )?,
            quorum_failures: IntCounter::new(
                "pyrogate_ring_quorum_failures_total",
                "Requests answered with an error because a series could not reach its quorum.",
            )?,
            background: IntCounter::new(
                "pyrogate_ring_background_deliveries_total",
                "Replica deliveries that finished after the client had been answered.",
            )?,
            store_up: IntGauge::new(
                "pyrogate_ring_store_up",
                "1 while the ring's store (etcd) answers; 0 while the last ring read is kept.",
            )?,
            updates: IntCounter::new(
                "pyrogate_ring_updates_total",
                "Rings published to the workers.",
            )?,
            last_update: IntGauge::new(
                "pyrogate_ring_last_update_timestamp_seconds",
                "When the ring in use was published (Unix seconds).",
            )?,
        };
        r.register(Box::new(m.members.clone()))?;
        r.register(Box::new(m.member_requests.clone()))?;
        r.register(Box::new(m.quorum_failures.clone()))?;
        r.register(Box::new(m.background.clone()))?;
        r.register(Box::new(m.store_up.clone()))?;
        r.register(Box::new(m.updates.clone()))?;
        r.register(Box::new(m.last_update.clone()))?;
        Ok(m)
    }
}
