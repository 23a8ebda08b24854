//! Report math: latency percentiles from `hdrhistogram` (per thread, merged at the end),
//! status and error counts, rates, and the final text/JSON report.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are kept in microseconds from 1 µs to 1 hour with 3 significant digits (0.1%
/// relative error), ~200 KB per histogram.
const LOWEST_US: u64 = 1;
const HIGHEST_US: u64 = 3_600_000_000;
const SIGFIG: u8 = 3;

/// A latency histogram.
#[derive(Debug, Clone)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latencies {
    pub fn new() -> Self {
        // The bounds are constants known to be valid; `new_with_bounds` only fails for
        // lowest < 1, highest < 2·lowest or sigfig > 5.
        match Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, SIGFIG) {
            Ok(h) => Self(h),
            Err(_) => unreachable!("constant histogram bounds are valid"),
        }
    }

    /// Records a latency in nanoseconds (rounded to µs; below 1 µs counts as 1 µs, above the
    /// range as the maximum).
    pub fn record_ns(&mut self, ns: u64) {
        let us = (ns / 1000).max(LOWEST_US);
        self.0.saturating_record(us);
    }

    pub fn merge(&mut self, other: &Latencies) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    pub fn reset(&mut self) {
        self.0.reset();
    }

    /// Percentile in ms (`q` in 0..=1); 0 when empty.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn summary(&self) -> LatencySummary {
        if self.0.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: self.0.len(),
            mean_ms: self.0.mean() / 1000.0,
            p50_ms: self.quantile_ms(0.50),
            p90_ms: self.quantile_ms(0.90),
            p99_ms: self.quantile_ms(0.99),
            p999_ms: self.quantile_ms(0.999),
            max_ms: self.0.max() as f64 / 1000.0,
        }
    }
}

/// Everything one thread (or the whole run, after merging) counted.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub latencies: Latencies,
    /// Open loop: how late the generator sent requests whose connection was free on time.
    pub schedule_lag: Latencies,
    /// Requests attempted (responses + errors).
    pub attempted: u64,
    /// Responses with a 2xx status.
    pub ok: u64,
    pub status: BTreeMap<u16, u64>,
    /// Requests without a usable response, by kind.
    pub errors: BTreeMap<String, u64>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// When the last request finished (ns since the start of the run).
    pub end_ns: u64,
    /// Connections opened (TCP connects; with TLS, each a completed handshake).
    pub connects: u64,
    /// TLS connections whose handshake resumed an earlier session (counted when closed).
    pub tls_resumed: u64,
}

/// Distinct error kinds kept; more are counted under `other`.
const MAX_ERROR_KINDS: usize = 64;

impl Tally {
    pub fn response(&mut self, latency_ns: u64, status: u16, sent: u64, received: u64) {
        self.attempted += 1;
        self.latencies.record_ns(latency_ns);
        *self.status.entry(status).or_default() += 1;
        if (200..300).contains(&status) {
            self.ok += 1;
        }
        self.bytes_sent += sent;
        self.bytes_received += received;
    }

    pub fn error(&mut self, kind: String, sent: u64) {
        self.attempted += 1;
        self.bytes_sent += sent;
        let key = if self.errors.contains_key(&kind) || self.errors.len() < MAX_ERROR_KINDS {
            kind
        } else {
            "other".to_owned()
        };
        *self.errors.entry(key).or_default() += 1;
    }

    pub fn failed(&self) -> u64 {
        self.attempted - self.ok
    }

    pub fn merge(&mut self, o: &Tally) {
        self.latencies.merge(&o.latencies);
        self.schedule_lag.merge(&o.schedule_lag);
        self.attempted += o.attempted;
        self.ok += o.ok;
        for (k, v) in &o.status {
            *self.status.entry(*k).or_default() += v;
        }
        for (k, v) in &o.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.end_ns = self.end_ns.max(o.end_ns);
        self.connects += o.connects;
        self.tls_resumed += o.tls_resumed;
    }
}

/// The TLS side of a run against an `https://` target.
#[derive(Debug, Clone, Serialize)]
pub struct TlsReport {
    /// Name sent (SNI) and verified.
    pub server_name: String,
    /// `CA <file>` or `insecure`.
    pub trust: String,
    /// Session resumption offered (not `--tls-no-resume`).
    pub resumption: bool,
    /// Connections whose handshake resumed a session (the rest were full handshakes).
    pub resumed: u64,
}

/// The final report; `--json` writes exactly this.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub target: String,
    pub protocol: String,
    /// `open` (with `--rate`) or `closed`.
    pub mode: &'static str,
    pub connections: usize,
    pub threads: usize,
    pub driver: String,
    /// `generated`, `synthetic` or `captured`.
    pub payload: String,
    pub profile_size: Option<u64>,
    pub seed: u64,
    /// From the start of the schedule to the last response, seconds.
    pub duration_s: f64,
    pub target_rate: Option<f64>,
    /// Completed requests (responses and errors) per second.
    pub achieved_rate: f64,
    pub requests: u64,
    pub ok: u64,
    pub failed: u64,
    /// `ok / requests` (1.0 for an empty run).
    pub success_ratio: f64,
    pub status: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
    pub latency: LatencySummary,
    /// Open loop only: lateness of the generator's own sends (requests that did not wait
    /// behind an earlier one). A high p99 here means the generator, not the target, was
    /// short of CPU or timer precision (the runtime's timer ticks in milliseconds).
    pub schedule_lag: Option<LatencySummary>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Connections opened, including those opened before the start (`None`: not counted by
    /// this load).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connects: Option<u64>,
    /// `--reconnect-every`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reconnect_every: Option<u64>,
    /// `https://` targets only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsReport>,
}

/// Requests per second over `secs` (0 for an empty interval).
pub fn rate(count: u64, secs: f64) -> f64 {
    if secs > 0.0 { count as f64 / secs } else { 0.0 }
}

/// `ok / attempted`, 1.0 when nothing was attempted.
pub fn success_ratio(ok: u64, attempted: u64) -> f64 {
    if attempted == 0 {
        1.0
    } else {
        ok as f64 / attempted as f64
    }
}

impl Report {
    pub fn render_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let target_rate = self
            .target_rate
            .map_or("closed loop".to_owned(), |r| format!("{r:.1} req/s"));
        let _ = writeln!(
            s,
            "target     {} ({}, {})",
            self.target, self.protocol, self.payload
        );
        let _ = writeln!(
            s,
            "load       {} connections on {} threads ({} driver), {}",
            self.connections, self.threads, self.driver, target_rate
        );
        let _ = writeln!(
            s,
            "result     {} requests in {:.2} s = {:.1} req/s; ok {} ({:.4}), failed {}",
            self.requests,
            self.duration_s,
            self.achieved_rate,
            self.ok,
            self.success_ratio,
            self.failed
        );
        let statuses: Vec<String> = self
            .status
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let _ = writeln!(
            s,
            "status     {}",
            if statuses.is_empty() {
                "-".into()
            } else {
                statuses.join(", ")
            }
        );
        let errors: Vec<String> = self
            .errors
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let _ = writeln!(
            s,
            "errors     {}",
            if errors.is_empty() {
                "none".into()
            } else {
                errors.join(", ")
            }
        );
        let l = &self.latency;
        let _ = writeln!(
            s,
            "latency    p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms  (mean {:.3} ms{})",
            l.p50_ms,
            l.p90_ms,
            l.p99_ms,
            l.p999_ms,
            l.max_ms,
            l.mean_ms,
            if self.mode == "open" {
                ", corrected for coordinated omission"
            } else {
                ""
            }
        );
        if let Some(lag) = &self.schedule_lag {
            let _ = writeln!(
                s,
                "send lag   p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms  (generator lateness, not in latency)",
                lag.p50_ms, lag.p99_ms, lag.max_ms
            );
        }
        if let Some(n) = self.connects {
            let mut line = format!("connects   {n} connections opened");
            if let Some(every) = self.reconnect_every {
                line.push_str(&format!(" (a new one every {every} request(s))"));
            }
            if let Some(t) = &self.tls {
                line.push_str(&format!(
                    "; TLS to {} ({}), {} resumed, {} full handshake(s){}",
                    t.server_name,
                    t.trust,
                    t.resumed,
                    n.saturating_sub(t.resumed),
                    if t.resumption { "" } else { ", resumption off" }
                ));
            }
            let _ = writeln!(s, "{line}");
        }
        let _ = writeln!(
            s,
            "bytes      sent {} ({:.1} MB/s), received {}",
            self.bytes_sent,
            rate(self.bytes_sent, self.duration_s) / 1e6,
            self.bytes_received
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let mut l = Latencies::new();
        for i in 1..=1000 {
            l.record_ns(i * MS);
        }
        let s = l.summary();
        assert_eq!(s.count, 1000);
        let close = |got: f64, want: f64| (got - want).abs() <= want * 0.002;
        assert!(close(s.p50_ms, 500.0), "{}", s.p50_ms);
        assert!(close(s.p90_ms, 900.0), "{}", s.p90_ms);
        assert!(close(s.p99_ms, 990.0), "{}", s.p99_ms);
        assert!(close(s.p999_ms, 999.0), "{}", s.p999_ms);
        assert!(close(s.max_ms, 1000.0), "{}", s.max_ms);
        assert!(close(s.mean_ms, 500.5), "{}", s.mean_ms);
    }

    #[test]
    fn extremes_and_empty() {
        let mut l = Latencies::new();
        assert_eq!(l.summary(), LatencySummary::default());
        l.record_ns(10); // below 1 µs
        l.record_ns(u64::MAX); // above 1 h
        let s = l.summary();
        assert_eq!(s.count, 2);
        assert!((s.p50_ms - 0.001).abs() < 1e-9, "{}", s.p50_ms);
        assert!(s.max_ms >= 3_600_000.0 * 0.999, "{}", s.max_ms);
    }

    #[test]
    fn merge_equals_single_recording() {
        let mut a = Tally::default();
        let mut b = Tally::default();
        let mut all = Tally::default();
        for i in 0..500u64 {
            let (t, status) = if i % 2 == 0 {
                (&mut a, 200)
            } else {
                (&mut b, 503)
            };
            t.response(i * 1000 + 1000, status, 100, 10);
            all.response(i * 1000 + 1000, status, 100, 10);
        }
        a.error("timeout".into(), 100);
        all.error("timeout".into(), 100);
        let mut merged = Tally::default();
        merged.merge(&a);
        merged.merge(&b);
        assert_eq!(merged.attempted, 501);
        assert_eq!(merged.ok, 250);
        assert_eq!(merged.failed(), 251);
        assert_eq!(merged.status.get(&503), Some(&250));
        assert_eq!(merged.errors.get("timeout"), Some(&1));
        assert_eq!(merged.bytes_sent, 50_100);
        assert_eq!(merged.latencies.summary(), all.latencies.summary());
        assert!((success_ratio(merged.ok, merged.attempted) - 250.0 / 501.0).abs() < 1e-12);
        assert_eq!(success_ratio(0, 0), 1.0);
        assert_eq!(rate(10, 0.0), 0.0);
        assert_eq!(rate(10, 2.0), 5.0);
    }

    #[test]
    fn error_kinds_are_bounded() {
        let mut t = Tally::default();
        for i in 0..100 {
            t.error(format!("kind {i}"), 0);
        }
        assert_eq!(t.errors.len(), MAX_ERROR_KINDS + 1);
        assert_eq!(t.errors.get("other"), Some(&36));
    }
}
