//! When requests are sent and what their latency is: the open-loop schedule and the
//! coordinated-omission correction, as pure arithmetic on nanosecond offsets from the start
//! of the run.
//!
//! Open loop (`--rate`): connection *c* of *C* sends its *k*-th request at the intended time
//! `offset_c + k·C/R`, so the connections together send one request every `1/R` seconds. A
//! connection that is still waiting for an earlier response sends late, as soon as it can
//! ([`send_time`]), and the latency of that request is measured from its *intended* time
//! ([`latency`]). A load generator that measured from the actual send time would record one
//! slow request during a server stall and then a run of fast ones, hiding the wait every
//! request scheduled during the stall really had (coordinated omission).
//!
//! Closed loop (no `--rate`): each connection sends the next request as soon as the previous
//! response arrives and latency is measured from the send.

/// A connection's send schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Send when ready; latency from the actual send.
    Closed,
    /// Send request *k* at `offset + k·interval` (ns since the run started).
    Open { offset_ns: u64, interval_ns: u64 },
}

impl Schedule {
    /// The schedule of connection `index` of `connections` sharing a total `rate` (req/s).
    /// `rate` must be positive and finite; connection *c* starts `c/R` seconds in, so the
    /// combined stream is evenly spaced.
    pub fn open(rate: f64, connections: usize, index: usize) -> Self {
        let connections = connections.max(1) as f64;
        let interval = (connections / rate * 1e9).max(1.0);
        let offset = index as f64 / rate * 1e9;
        Schedule::Open {
            offset_ns: offset as u64,
            interval_ns: interval as u64,
        }
    }

    /// The intended start of request `k`; for a closed loop, `ready_ns` (now).
    pub fn intended(&self, k: u64, ready_ns: u64) -> u64 {
        match *self {
            Schedule::Closed => ready_ns,
            Schedule::Open {
                offset_ns,
                interval_ns,
            } => offset_ns.saturating_add(k.saturating_mul(interval_ns)),
        }
    }
}

/// When a request is actually sent: at its intended time, or as soon as the connection is
/// free if it is already late.
pub fn send_time(intended_ns: u64, ready_ns: u64) -> u64 {
    intended_ns.max(ready_ns)
}

/// The latency recorded for a request: from its intended start in an open loop (which
/// includes the time it waited behind a slow earlier request), from its send in a closed loop.
pub fn latency(schedule: &Schedule, intended_ns: u64, sent_ns: u64, done_ns: u64) -> u64 {
    let from = match schedule {
        Schedule::Closed => sent_ns,
        Schedule::Open { .. } => intended_ns,
    };
    done_ns.saturating_sub(from)
}

/// Replays one connection against a server whose response to request *k* takes
/// `service_ns(k)`: returns `(intended, sent, done)` for each request, exactly as the run loop
/// computes them. Used to test the correction with synthetic stalls.
pub fn replay(
    schedule: &Schedule,
    requests: u64,
    service_ns: impl Fn(u64) -> u64,
) -> Vec<(u64, u64, u64)> {
    let mut ready = 0u64;
    let mut out = Vec::with_capacity(requests as usize);
    for k in 0..requests {
        let intended = schedule.intended(k, ready);
        let sent = send_time(intended, ready);
        let done = sent + service_ns(k);
        out.push((intended, sent, done));
        ready = done;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::report::Latencies;

    const MS: u64 = 1_000_000;

    #[test]
    fn open_schedule_spreads_connections() {
        // 1000 req/s over 4 connections: each sends every 4 ms, staggered by 1 ms.
        let s: Vec<Schedule> = (0..4).map(|c| Schedule::open(1000.0, 4, c)).collect();
        assert_eq!(
            s[1],
            Schedule::Open {
                offset_ns: MS,
                interval_ns: 4 * MS
            }
        );
        let mut all: Vec<u64> = s
            .iter()
            .flat_map(|x| (0..3).map(move |k| x.intended(k, 0)))
            .collect();
        all.sort_unstable();
        let expect: Vec<u64> = (0..12).map(|i| i * MS).collect();
        assert_eq!(all, expect);
        assert_eq!(Schedule::Closed.intended(5, 42), 42);
    }

    #[test]
    fn late_requests_are_sent_when_ready_and_measured_from_intent() {
        assert_eq!(send_time(10, 5), 10);
        assert_eq!(send_time(10, 25), 25);
        let open = Schedule::open(100.0, 1, 0);
        assert_eq!(latency(&open, 10, 25, 30), 20);
        assert_eq!(latency(&Schedule::Closed, 10, 25, 30), 5);
    }

    /// The acceptance test for the correction: 100 req/s on one connection for 10 s, every
    /// response takes 1 ms except one that stalls for 1 s. Measured naively (from the actual
    /// send) the stall is a single slow sample and p99 stays at 1 ms; measured from the
    /// intended start, the ~100 requests scheduled during the stall all waited, and p99 shows
    /// it.
    #[test]
    fn stall_is_visible_only_with_the_correction() {
        let schedule = Schedule::open(100.0, 1, 0);
        let stall_at = 500;
        let timeline = replay(
            &schedule,
            1000,
            |k| if k == stall_at { 1000 * MS } else { MS },
        );
        let mut naive = Latencies::new();
        let mut corrected = Latencies::new();
        for &(intended, sent, done) in &timeline {
            naive.record_ns(latency(&Schedule::Closed, intended, sent, done));
            corrected.record_ns(latency(&schedule, intended, sent, done));
        }
        let n = naive.summary();
        let c = corrected.summary();
        assert!(n.p99_ms < 1.1, "naive p99 {}", n.p99_ms);
        assert!((n.max_ms - 1000.0).abs() < 5.0, "naive max {}", n.max_ms);
        // 100 requests were due during the 1 s stall; their waits run from ~1 s down to ~0.
        assert!(c.p99_ms > 800.0, "corrected p99 {}", c.p99_ms);
        assert!(
            c.p90_ms > 5.0 && c.p90_ms < 1000.0,
            "corrected p90 {}",
            c.p90_ms
        );
        assert!(
            (c.max_ms - 1000.0).abs() < 5.0,
            "corrected max {}",
            c.max_ms
        );
        assert!(c.p50_ms < 1.1, "corrected p50 {}", c.p50_ms);
        // The ~110 requests due during the stall and the catch-up were sent late.
        let late = timeline.iter().filter(|(i, s, _)| s > i).count();
        assert!((100..=115).contains(&late), "{late} late requests");
    }

    #[test]
    fn closed_loop_back_to_back() {
        let t = replay(&Schedule::Closed, 3, |_| 2 * MS);
        assert_eq!(
            t,
            vec![
                (0, 0, 2 * MS),
                (2 * MS, 2 * MS, 4 * MS),
                (4 * MS, 4 * MS, 6 * MS)
            ]
        );
    }
}
