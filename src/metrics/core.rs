//! Per-core receive-side counters.
//!
//! Each worker owns one [`CoreMetrics`] and is its only writer, so updates are a plain load
//! and store (no locked read-modify-write, no cache-line ping-pong); the scraper sums all
//! cores when `/metrics` is read. Label sets are fixed tables indexed by small integers so
//! recording never hashes or allocates.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Routes as they appear in the `route` label (Alloy/dskit names where they exist).
pub const ROUTES: [&str; 6] = [
    "ingest",
    "push_v1_pusherservice",
    "metrics",
    "ready",
    "healthy",
    "other",
];
pub const ROUTE_INGEST: u8 = 0;
pub const ROUTE_PUSH: u8 = 1;
pub const ROUTE_METRICS: u8 = 2;
pub const ROUTE_READY: u8 = 3;
pub const ROUTE_HEALTHY: u8 = 4;
pub const ROUTE_OTHER: u8 = 5;

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

/// Reasons the server itself refused a connection or request.
pub const REJECT_REASONS: [&str; 9] = [
    "conn_limit",
    "header_too_large",
    "body_too_large",
    "read_timeout",
    "write_timeout",
    "bad_request",
    "unsupported_transfer_encoding",
    "unsupported_expect",
    "queue_full",
];

pub fn reject_index(reason: &str) -> usize {
    REJECT_REASONS
        .iter()
        .position(|r| *r == reason)
        .unwrap_or(REJECT_REASONS.len() - 1)
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
    pub requests: [[AtomicU64; N_STATUS]; ROUTES.len()],
    /// The status code of the "other" slot, remembered per route for its label.
    pub durations: Box<[[Hist; N_STATUS]; ROUTES.len()]>,
    pub received_bytes: [AtomicU64; ROUTES.len()],
    pub inflight: [AtomicI64; ROUTES.len()],
    pub rejected: [AtomicU64; REJECT_REASONS.len()],
}

impl Default for CoreMetrics {
    fn default() -> Self {
        Self {
            connections: AtomicI64::new(0),
            connections_limit: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            requests: Default::default(),
            durations: Box::default(),
            received_bytes: Default::default(),
            inflight: Default::default(),
            rejected: Default::default(),
        }
    }
}

impl CoreMetrics {
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

    pub fn request_done(&self, route: u8, status: u16, elapsed: Duration, body_bytes: u64) {
        let r = (route as usize).min(ROUTES.len() - 1);
        let s = status_index(status);
        add(&self.requests[r][s], 1);
        self.durations[r][s].observe(elapsed);
        add(&self.received_bytes[r], body_bytes);
    }

    pub fn inflight_delta(&self, route: u8, delta: i64) {
        let r = (route as usize).min(ROUTES.len() - 1);
        self.inflight[r].store(self.inflight[r].load(Relaxed) + delta, Relaxed);
    }

    pub fn rejected(&self, reason: &str) {
        add(&self.rejected[reject_index(reason)], 1);
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
        let m = CoreMetrics::default();
        m.request_done(ROUTE_INGEST, 200, Duration::from_millis(3), 100);
        m.request_done(ROUTE_INGEST, 200, Duration::from_millis(30), 50);
        m.request_done(ROUTE_PUSH, 418, Duration::from_secs(60), 0);
        assert_eq!(m.requests[0][status_index(200)].load(Relaxed), 2);
        assert_eq!(m.requests[1][STATUSES.len()].load(Relaxed), 1);
        assert_eq!(m.received_bytes[0].load(Relaxed), 150);
        let h = &m.durations[0][status_index(200)];
        assert_eq!(h.count.load(Relaxed), 2);
        assert_eq!(h.buckets[2].load(Relaxed), 1); // 3ms <= 5ms
        assert_eq!(h.sum_us.load(Relaxed), 33_000);
        // 60s is above every bucket: counted, but in no finite bucket.
        assert_eq!(m.durations[1][STATUSES.len()].count.load(Relaxed), 1);
    }
}
