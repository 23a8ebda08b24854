//! Prometheus metrics: per-core receive counters summed at scrape time, plus the registry
//! the forwarding stage registers its own (Alloy-named) metrics in.

pub mod core;
pub mod http2;
pub mod tls;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, Registry, TextEncoder};

pub use self::core::{CoreMetrics, RejectReason, RouteLabel};
use self::core::{DURATION_BUCKETS, STATUSES, status_label};

pub struct Metrics {
    pub cores: Vec<Arc<CoreMetrics>>,
    /// The routes the per-core counters are kept for, by index.
    pub routes: &'static [RouteLabel],
    /// The global `conn_limit` (0 = unlimited), for Alloy's `..._tcp_connections_limit`.
    pub conn_limit: AtomicU64,
    pub registry: Registry,
    /// The TLS listener's handshakes (registered in `registry`).
    pub tls: tls::TlsMetrics,
    /// The HTTP/2 listener (registered in `registry`).
    pub http2: Arc<http2::Http2Metrics>,
}

impl Metrics {
    /// Per-core counters for `workers` workers and the routes of the serving service.
    pub fn new(workers: usize, conn_limit: u64, routes: &'static [RouteLabel]) -> Arc<Self> {
        let registry = Registry::new();
        // Fixed names in a fresh registry: registration cannot collide.
        let tls = tls::TlsMetrics::register(&registry).expect("fresh registry");
        let http2 = Arc::new(http2::Http2Metrics::register(&registry).expect("fresh registry"));
        Arc::new(Self {
            cores: (0..workers)
                .map(|_| Arc::new(CoreMetrics::new(routes.len())))
                .collect(),
            routes,
            conn_limit: AtomicU64::new(conn_limit),
            registry,
            tls,
            http2,
        })
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> Vec<u8> {
        let mut families = self.core_families();
        families.extend(self.registry.gather());
        let mut out = Vec::with_capacity(16 * 1024);
        // Encoding into a Vec cannot fail for I/O reasons; a malformed family would be our
        // bug, and the scrape then returns what was written so far.
        let _ = TextEncoder::new().encode(&families, &mut out);
        out
    }

    fn core_families(&self) -> Vec<MetricFamily> {
        let mut fams = Vec::new();
        let total_conns: i64 = self.cores.iter().map(|c| c.connections.load(Relaxed)).sum();
        fams.push(family(
            "pyroscope_receive_http_tcp_connections",
            "Current number of accepted TCP connections.",
            MetricType::GAUGE,
            vec![gauge(&[("protocol", "http")], total_conns as f64)],
        ));
        fams.push(family(
            "pyroscope_receive_http_tcp_connections_limit",
            "The max number of TCP connections that can be accepted (0 means no limit).",
            MetricType::GAUGE,
            vec![gauge(
                &[("protocol", "http")],
                self.conn_limit.load(Relaxed) as f64,
            )],
        ));
        let per_core = |f: &dyn Fn(&CoreMetrics) -> f64| -> Vec<Metric> {
            self.cores
                .iter()
                .enumerate()
                .map(|(i, c)| gauge(&[("core", &i.to_string())], f(c)))
                .collect()
        };
        fams.push(family(
            "pyrogate_core_connections",
            "Current accepted connections per worker core.",
            MetricType::GAUGE,
            per_core(&|c| c.connections.load(Relaxed) as f64),
        ));
        fams.push(family(
            "pyrogate_core_connections_limit",
            "Connection quota per worker core (0 means no limit).",
            MetricType::GAUGE,
            per_core(&|c| c.connections_limit.load(Relaxed) as f64),
        ));
        fams.push(family(
            "pyrogate_connections_accepted_total",
            "Connections accepted per worker core.",
            MetricType::COUNTER,
            self.cores
                .iter()
                .enumerate()
                .map(|(i, c)| counter(&[("core", &i.to_string())], c.accepted.load(Relaxed) as f64))
                .collect(),
        ));
        self.request_families(&mut fams);
        let rejected: Vec<Metric> = RejectReason::ALL
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let v: u64 = self.cores.iter().map(|c| c.rejected[i].load(Relaxed)).sum();
                counter(&[("reason", r.label())], v as f64)
            })
            .collect();
        fams.push(family(
            "pyrogate_rejected_total",
            "Connections and requests refused by the server itself, by reason.",
            MetricType::COUNTER,
            rejected,
        ));
        fams
    }

    fn request_families(&self, fams: &mut Vec<MetricFamily>) {
        let mut requests = Vec::new();
        let mut hists = Vec::new();
        for (r, route) in self.routes.iter().enumerate() {
            for s in 0..=STATUSES.len() {
                let count: u64 = self
                    .cores
                    .iter()
                    .map(|c| c.requests[r][s].load(Relaxed))
                    .sum();
                if count == 0 {
                    continue;
                }
                let status = status_label(s);
                let labels = [
                    ("method", route.method),
                    ("route", route.name),
                    ("status_code", status.as_str()),
                    ("ws", "false"),
                ];
                requests.push(counter(&labels[1..3], count as f64));
                let mut h = Histogram::default();
                let mut cumulative = 0;
                let mut buckets = Vec::with_capacity(DURATION_BUCKETS.len());
                for (b, bound) in DURATION_BUCKETS.iter().enumerate() {
                    cumulative += self
                        .cores
                        .iter()
                        .map(|c| c.durations[r][s].buckets[b].load(Relaxed))
                        .sum::<u64>();
                    let mut bk = Bucket::default();
                    bk.set_upper_bound(*bound);
                    bk.set_cumulative_count(cumulative);
                    buckets.push(bk);
                }
                h.set_bucket(buckets);
                h.set_sample_count(
                    self.cores
                        .iter()
                        .map(|c| c.durations[r][s].count.load(Relaxed))
                        .sum(),
                );
                h.set_sample_sum(
                    self.cores
                        .iter()
                        .map(|c| c.durations[r][s].sum_us.load(Relaxed))
                        .sum::<u64>() as f64
                        / 1e6,
                );
                let mut m = Metric::from_label(label_pairs(&labels));
                m.set_histogram(h);
                hists.push(m);
            }
        }
        fams.push(family(
            "pyrogate_requests_total",
            "HTTP requests answered, by route and status code.",
            MetricType::COUNTER,
            requests,
        ));
        fams.push(family(
            "pyroscope_receive_http_request_duration_seconds",
            "Time (in seconds) spent serving HTTP requests.",
            MetricType::HISTOGRAM,
            hists,
        ));
        let bytes: Vec<Metric> = self
            .routes
            .iter()
            .enumerate()
            .map(|(r, route)| {
                let v: u64 = self
                    .cores
                    .iter()
                    .map(|c| c.received_bytes[r].load(Relaxed))
                    .sum();
                counter(&[("route", route.name)], v as f64)
            })
            .collect();
        fams.push(family(
            "pyrogate_received_bytes_total",
            "Request body bytes received, by route.",
            MetricType::COUNTER,
            bytes,
        ));
        let inflight: Vec<Metric> = self
            .routes
            .iter()
            .enumerate()
            .filter(|(_, route)| route.inflight)
            .map(|(r, route)| {
                let v: i64 = self.cores.iter().map(|c| c.inflight[r].load(Relaxed)).sum();
                gauge(&[("method", route.method), ("route", route.name)], v as f64)
            })
            .collect();
        fams.push(family(
            "pyroscope_receive_http_inflight_requests",
            "Current number of inflight requests.",
            MetricType::GAUGE,
            inflight,
        ));
    }
}

fn label_pairs(labels: &[(&str, &str)]) -> Vec<LabelPair> {
    labels
        .iter()
        .map(|(k, v)| {
            let mut l = LabelPair::default();
            l.set_name(k.to_string());
            l.set_value(v.to_string());
            l
        })
        .collect()
}

fn gauge(labels: &[(&str, &str)], v: f64) -> Metric {
    let mut g = Gauge::default();
    g.set_value(v);
    let mut m = Metric::from_label(label_pairs(labels));
    m.set_gauge(g);
    m
}

fn counter(labels: &[(&str, &str)], v: f64) -> Metric {
    let mut c = Counter::default();
    c.set_value(v);
    let mut m = Metric::from_label(label_pairs(labels));
    m.set_counter(c);
    m
}

fn family(name: &str, help: &str, t: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut f = MetricFamily::default();
    f.set_name(name.to_string());
    f.set_help(help.to_string());
    f.set_field_type(t);
    f.set_metric(metrics);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const ROUTES: [RouteLabel; 2] = [
        RouteLabel {
            name: "ingest",
            method: "POST",
            inflight: true,
        },
        RouteLabel {
            name: "other",
            method: "GET",
            inflight: false,
        },
    ];

    #[test]
    fn sums_cores_in_text_format() {
        let m = Metrics::new(2, 100, &ROUTES);
        m.cores[0].conn_opened();
        m.cores[1].conn_opened();
        m.cores[1].conn_opened();
        m.cores[0].set_limit(50);
        m.cores[1].set_limit(50);
        m.cores[0].request_done(0, 200, Duration::from_millis(2), 10);
        m.cores[1].request_done(0, 200, Duration::from_millis(2), 10);
        m.cores[1].rejected(RejectReason::ConnLimit);
        let text = String::from_utf8(m.render()).unwrap();
        assert!(
            text.contains("pyroscope_receive_http_tcp_connections{protocol=\"http\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("pyroscope_receive_http_tcp_connections_limit{protocol=\"http\"} 100")
        );
        assert!(text.contains("pyrogate_core_connections{core=\"1\"} 2"));
        assert!(text.contains("pyrogate_core_connections_limit{core=\"0\"} 50"));
        assert!(
            text.contains("pyrogate_requests_total{route=\"ingest\",status_code=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains(
            "pyroscope_receive_http_request_duration_seconds_count{method=\"POST\",route=\"ingest\",status_code=\"200\",ws=\"false\"} 2"
        ));
        assert!(text.contains("pyrogate_rejected_total{reason=\"conn_limit\"} 1"));
        assert!(text.contains("pyrogate_received_bytes_total{route=\"ingest\"} 20"));
        assert!(text.contains(
            "pyroscope_receive_http_inflight_requests{method=\"POST\",route=\"ingest\"} 0"
        ));
        assert!(!text.contains("pyroscope_receive_http_inflight_requests{method=\"GET\""));
    }
}
