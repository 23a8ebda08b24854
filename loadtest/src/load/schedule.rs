//! When requests are sent and what their latency is: the open-loop schedule and the
//! coordinated-omission correction, as pure arithmetic on nanosecond offsets from the start
//! of the run.
//!
//! Open loop (`--rate`): connection *c* of *C* sends its *k*-th request at the intended time
//! `offset_c + k·C/R`, so the connections together send one request every `1/R` seconds. A
//! connection that is still waiting for an earlier response sends late, as soon as it can
//! ([`send_time`]). A load generator that measured latency from the actual send would record
//! one slow request during a server stall and then a run of fast ones, hiding the wait that
//! every request scheduled during the stall really had (coordinated omission).
//!
//! The [`Corrector`] therefore measures each request from its *intended* time on a virtual
//! timeline in which the generator is never late: request *k* starts at
//! `max(intended_k, virtual end of request k-1)` and takes the service time the server
//! really took (`done − sent`). The wait behind a slow earlier request, which is the
//! server's doing, is counted in full; the generator's own lateness (the runtime's timer
//! ticks in milliseconds; a busy generator thread wakes late) is not, and is reported
//! separately as schedule lag, so an overloaded generator is visible instead of being blamed
//! on the target. Without generator lateness the virtual and the real timeline coincide.
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
pub fn send_time(intended_ns: u64, free_ns: u64) -> u64 {
    intended_ns.max(free_ns)
}

/// The timeline of one request (ns since the start of the run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// When the schedule wanted it sent.
    pub intended: u64,
    /// When its connection became free (the previous response arrived).
    pub free: u64,
    pub sent: u64,
    pub done: u64,
}

/// What one request contributes to the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    pub latency_ns: u64,
    /// Open loop: how much later than it could have the generator sent the request
    /// (`sent − max(intended, free)`).
    pub lag_ns: Option<u64>,
}

/// Per-connection latency measurement (see the module documentation).
#[derive(Debug, Clone)]
pub struct Corrector {
    schedule: Schedule,
    /// End of the previous request on the lateness-free timeline.
    virtual_free: u64,
}

impl Corrector {
    pub fn new(schedule: Schedule) -> Self {
        Self {
            schedule,
            virtual_free: 0,
        }
    }

    /// Measures one request. Call it for every request in order, failed ones included (a
    /// failed request occupies its connection too).
    pub fn measure(&mut self, t: &Timing) -> Measured {
        let service = t.done.saturating_sub(t.sent);
        match self.schedule {
            Schedule::Closed => Measured {
                latency_ns: service,
                lag_ns: None,
            },
            Schedule::Open { .. } => {
                let start = t.intended.max(self.virtual_free);
                let end = start.saturating_add(service);
                self.virtual_free = end;
                Measured {
                    latency_ns: end - t.intended,
                    lag_ns: Some(t.sent.saturating_sub(t.intended.max(t.free))),
                }
            }
        }
    }

    /// The connection was unusable until `now` (failed connect and back-off).
    pub fn unavailable_until(&mut self, now: u64) {
        self.virtual_free = self.virtual_free.max(now);
    }
}

/// Replays one connection against a server whose response to request *k* takes
/// `service_ns(k)`, with the generator sending `lag_ns(k)` later than it could: the timelines
/// the run loop would see. Used to test the correction with synthetic stalls.
pub fn replay(
    schedule: &Schedule,
    requests: u64,
    service_ns: impl Fn(u64) -> u64,
    lag_ns: impl Fn(u64) -> u64,
) -> Vec<Timing> {
    let mut free = 0u64;
    let mut out = Vec::with_capacity(requests as usize);
    for k in 0..requests {
        let intended = schedule.intended(k, free);
        let sent = send_time(intended, free) + lag_ns(k);
        let done = sent + service_ns(k);
        out.push(Timing {
            intended,
            free,
            sent,
            done,
        });
        free = done;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::report::{Latencies, LatencySummary};

    const MS: u64 = 1_000_000;
    const US: u64 = 1_000;

    fn summarize(schedule: Schedule, timeline: &[Timing]) -> (LatencySummary, LatencySummary) {
        let mut c = Corrector::new(schedule);
        let mut lat = Latencies::new();
        let mut lag = Latencies::new();
        for t in timeline {
            let m = c.measure(t);
            lat.record_ns(m.latency_ns);
            if let Some(l) = m.lag_ns {
                lag.record_ns(l);
            }
        }
        (lat.summary(), lag.summary())
    }

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
        assert_eq!(send_time(10, 5), 10);
        assert_eq!(send_time(10, 25), 25);
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
            |_| 0,
        );
        let (naive, _) = summarize(Schedule::Closed, &timeline);
        let (corrected, lag) = summarize(schedule, &timeline);
        assert!(naive.p99_ms < 1.1, "naive p99 {}", naive.p99_ms);
        assert!(
            (naive.max_ms - 1000.0).abs() < 5.0,
            "naive max {}",
            naive.max_ms
        );
        // 100 requests were due during the 1 s stall; their waits run from ~1 s down to ~0.
        assert!(
            corrected.p99_ms > 800.0,
            "corrected p99 {}",
            corrected.p99_ms
        );
        assert!(
            corrected.p90_ms > 5.0 && corrected.p90_ms < 1000.0,
            "corrected p90 {}",
            corrected.p90_ms
        );
        assert!(
            (corrected.max_ms - 1000.0).abs() < 5.0,
            "{}",
            corrected.max_ms
        );
        assert!(corrected.p50_ms < 1.1, "corrected p50 {}", corrected.p50_ms);
        // The generator itself was never late.
        assert_eq!(lag.max_ms, 0.001);
        // The ~110 requests due during the stall and the catch-up were sent late.
        let late = timeline.iter().filter(|t| t.free > t.intended).count();
        assert!((100..=115).contains(&late), "{late} late requests");
        // Measuring from the intended time on the real timeline gives the same answer here.
        let from_intended: Vec<u64> = timeline.iter().map(|t| t.done - t.intended).collect();
        let mut c = Corrector::new(schedule);
        let virt: Vec<u64> = timeline.iter().map(|t| c.measure(t).latency_ns).collect();
        assert_eq!(from_intended, virt);
    }

    /// A generator that wakes 0.9 ms late for every request (millisecond timer, 0.8 ms
    /// between requests of a connection) against a server that answers in 0.1 ms: the server
    /// is fast, so latency must stay at 0.1 ms, and the lateness shows up as schedule lag.
    /// Measured from the intended time on the real timeline, the lateness would pile up.
    #[test]
    fn generator_lateness_is_not_blamed_on_the_server() {
        let schedule = Schedule::open(1250.0, 1, 0);
        let timeline = replay(&schedule, 1000, |_| 100 * US, |_| 900 * US);
        let (lat, lag) = summarize(schedule, &timeline);
        assert!(lat.max_ms < 0.11, "latency {lat:?}");
        assert!(lag.p50_ms > 0.85, "lag {lag:?}");
        let naive_max = timeline
            .iter()
            .map(|t| t.done - t.intended)
            .max()
            .unwrap_or(0);
        assert!(naive_max > 100 * MS, "real-timeline lateness {naive_max}");
        // A stall still shows through the lateness.
        let stalled = replay(
            &schedule,
            1000,
            |k| if k == 500 { 200 * MS } else { 100 * US },
            |_| 900 * US,
        );
        let (lat, _) = summarize(schedule, &stalled);
        assert!(lat.max_ms > 199.0, "{lat:?}");
        assert!(lat.p90_ms > 10.0, "{lat:?}");
    }

    #[test]
    fn closed_loop_back_to_back_and_unavailability() {
        let t = replay(&Schedule::Closed, 3, |_| 2 * MS, |_| 0);
        let sends: Vec<(u64, u64)> = t.iter().map(|t| (t.sent, t.done)).collect();
        assert_eq!(sends, vec![(0, 2 * MS), (2 * MS, 4 * MS), (4 * MS, 6 * MS)]);
        let mut c = Corrector::new(Schedule::Closed);
        assert!(t.iter().all(|t| c.measure(t).latency_ns == 2 * MS));
        // A connection that could not connect until 50 ms: the request due at 10 ms counts
        // the outage.
        let open = Schedule::open(100.0, 1, 0);
        let mut c = Corrector::new(open);
        c.unavailable_until(50 * MS);
        let m = c.measure(&Timing {
            intended: 10 * MS,
            free: 50 * MS,
            sent: 50 * MS,
            done: 51 * MS,
        });
        assert_eq!(m.latency_ns, 41 * MS);
        assert_eq!(m.lag_ns, Some(0));
    }
}
