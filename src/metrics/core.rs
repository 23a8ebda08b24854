//! Per-core receive-side counters.
//!
//! Each worker owns one [`CoreMetrics`] and is its only writer, so updates are a plain load
//! and store (no locked read-modify-write, no cache-line ping-pong); the scraper sums all
//! cores when `/metrics` is read. Label sets are fixed tables indexed by small integers so
//! recording never hashes or allocates.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// How a route appears in the metrics. The service that owns the routes (the gateway)
/// publishes one per route, in the order of its route indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteLabel {
    /// The `route` label (Alloy/dskit names where they exist).
    pub name: &'static str,
    /// The `method` label of the duration histogram.
    pub method: &'static str,
    /// Whether `pyroscope_receive_http_inflight_requests` is reported for it.
    pub inflight: bool,
}

/// Status codes tracked individually; anything else lands in the last slot with its class.
pub const STATUSES: [u16; 20] = [
    200, 400, 401, 403, 404, 405, 408, 409, 413, 415, 417, 422, 429, 431, 499, 500, 501, 502, 503,
    504,
];
const N_STATUS: usize = STATUSES.len() + 1;

/// Classic buckets covering 1 ms .. 30 s (a forwarded request can wait for retries).
pub const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const N_BUCKETS: usize = DURATION_BUCKETS.len();

/// Why the server itself refused a connection or request: the `reason` label of
/// `pyrogate_rejected_total`, and what the connection does after answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    ConnLimit,
    HeaderTooLarge,
    BodyTooLarge,
    ReadTimeout,
    WriteTimeout,
    BadRequest,
    UnsupportedTransferEncoding,
    UnsupportedExpect,
    QueueFull,
}

impl RejectReason {
    pub const ALL: [RejectReason; 9] = [
        RejectReason::ConnLimit,
        RejectReason::HeaderTooLarge,
        RejectReason::BodyTooLarge,
        RejectReason::ReadTimeout,
        RejectReason::WriteTimeout,
        RejectReason::BadRequest,
        RejectReason::UnsupportedTransferEncoding,
        RejectReason::UnsupportedExpect,
        RejectReason::QueueFull,
    ];

    pub const fn label(self) -> &'static str {
        match self {
            RejectReason::ConnLimit => "conn_limit",
            RejectReason::HeaderTooLarge => "header_too_large",
            RejectReason::BodyTooLarge => "body_too_large",
            RejectReason::ReadTimeout => "read_timeout",
            RejectReason::WriteTimeout => "write_timeout",
            RejectReason::BadRequest => "bad_request",
            RejectReason::UnsupportedTransferEncoding => "unsupported_transfer_encoding",
            RejectReason::UnsupportedExpect => "unsupported_expect",
            RejectReason::QueueFull => "queue_full",
        }
    }

    /// Whether request bytes may still be on their way after the answer, so the connection
    /// should read and discard them for a moment before closing (a client that stopped
    /// sending, as on a read timeout, gets a plain close).
    pub const fn lingers(self) -> bool {
        !matches!(self, RejectReason::ReadTimeout)
    }

    const fn index(self) -> usize {
        self as usize
    }
}

pub fn status_index(status: u16) -> usize {
    STATUSES
        .iter()
        .position(|s| *s == status)
        .unwrap_or(STATUSES.len())
}

#[inline]
fn add(c: &AtomicU64, v: u64) {
    // Single writer: a plain load/store is enough and avoids a locked instruction.
    c.store(c.load(Relaxed).wrapping_add(v), Relaxed);
}

#[derive(Default)]
pub struct Hist {
    pub buckets: [AtomicU64; N_BUCKETS],
    pub count: AtomicU64,
    /// Sum in microseconds.
    pub sum_us: AtomicU64,
}

impl Hist {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = DURATION_BUCKETS.iter().position(|b| secs <= *b) {
            add(&self.buckets[i], 1);
        }
        add(&self.count, 1);
        add(&self.sum_us, d.as_micros() as u64);
    }
}

pub struct CoreMetrics {
    pub connections: AtomicI64,
    pub connections_limit: AtomicU64,
    pub accepted: AtomicU64,
    /// Per route (index into the route labels), per status slot.
    pub requests: Box<[[AtomicU64; N_STATUS]]>,
    pub durations: Box<[[Hist; N_STATUS]]>,
    pub received_bytes: Box<[AtomicU64]>,
    pub inflight: Box<[AtomicI64]>,
    pub rejected: [AtomicU64; RejectReason::ALL.len()],
}

impl CoreMetrics {
    /// Counters for `routes` routes.
    pub fn new(routes: usize) -> Self {
        let routes = routes.max(1);
        Self {
            connections: AtomicI64::new(0),
            connections_limit: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            requests: (0..routes).map(|_| Default::default()).collect(),
            durations: (0..routes).map(|_| Default::default()).collect(),
            received_bytes: (0..routes).map(|_| AtomicU64::new(0)).collect(),
            inflight: (0..routes).map(|_| AtomicI64::new(0)).collect(),
            rejected: Default::default(),
        }
    }

    fn slot(&self, route: usize) -> usize {
        route.min(self.requests.len() - 1)
    }

    pub fn conn_opened(&self) {
        self.connections
            .store(self.connections.load(Relaxed) + 1, Relaxed);
        add(&self.accepted, 1);
    }

    pub fn conn_closed(&self) {
        self.connections
            .store(self.connections.load(Relaxed) - 1, Relaxed);
    }

    pub fn set_limit(&self, quota: u64) {
        self.connections_limit.store(quota, Relaxed);
    }

    /// One answered request on route index `route` (an index past the last route counts
    /// for the last one, the catch-all).
    pub fn request_done(&self, route: usize, status: u16, elapsed: Duration, body_bytes: u64) {
        let r = self.slot(route);
        let s = status_index(status);
        add(&self.requests[r][s], 1);
        self.durations[r][s].observe(elapsed);
        add(&self.received_bytes[r], body_bytes);
    }

    pub fn inflight_delta(&self, route: usize, delta: i64) {
        let r = self.slot(route);
        self.inflight[r].store(self.inflight[r].load(Relaxed) + delta, Relaxed);
    }

    pub fn rejected(&self, reason: RejectReason) {
        add(&self.rejected[reason.index()], 1);
    }
}

/// Status label for a slot; the overflow slot is reported as `other`.
pub fn status_label(i: usize) -> String {
    STATUSES
        .get(i)
        .map_or_else(|| "other".to_string(), |s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_by_route_and_status() {
        let m = CoreMetrics::new(2);
        m.request_done(0, 200, Duration::from_millis(3), 100);
        m.request_done(0, 200, Duration::from_millis(30), 50);
        m.request_done(1, 418, Duration::from_secs(60), 0);
        // Past the last route: the catch-all (last) slot.
        m.request_done(9, 200, Duration::from_millis(1), 0);
        assert_eq!(m.requests[0][status_index(200)].load(Relaxed), 2);
        assert_eq!(m.requests[1][STATUSES.len()].load(Relaxed), 1);
        assert_eq!(m.requests[1][status_index(200)].load(Relaxed), 1);
        assert_eq!(m.received_bytes[0].load(Relaxed), 150);
        let h = &m.durations[0][status_index(200)];
        assert_eq!(h.count.load(Relaxed), 2);
        assert_eq!(h.buckets[2].load(Relaxed), 1); // 3ms <= 5ms
        assert_eq!(h.sum_us.load(Relaxed), 33_000);
        // 60s is above every bucket: counted, but in no finite bucket.
        assert_eq!(m.durations[1][STATUSES.len()].count.load(Relaxed), 1);
    }

    #[test]
    fn every_reject_reason_has_its_own_slot() {
        let m = CoreMetrics::new(1);
        for (i, r) in RejectReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            for _ in 0..=i {
                m.rejected(*r);
            }
        }
        for (i, r) in RejectReason::ALL.iter().enumerate() {
            assert_eq!(
                m.rejected[r.index()].load(Relaxed),
                i as u64 + 1,
                "{}",
                r.label()
            );
        }
        assert!(!RejectReason::ReadTimeout.lingers());
        assert!(RejectReason::BodyTooLarge.lingers());
    }
}
