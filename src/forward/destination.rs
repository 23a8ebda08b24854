//! One downstream endpoint at run time: its bounded queue, its pre-rendered static headers
//! and its metric handles.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use crossbeam_channel::{Receiver, Sender};
use prometheus::{IntCounter, IntGauge};

use super::ack::AckSink;
use super::envelope::Envelope;
use super::metrics::ForwardMetrics;
use crate::config::EndpointConfig;

/// One envelope on its way to one destination.
pub struct Job {
    pub env: Arc<Envelope>,
    pub ack: Option<Arc<dyn AckSink>>,
    /// Last moment an attempt may end.
    pub deadline: Instant,
    /// Whether a caller waits on this delivery with its own budget (then attempts leave room
    /// for a retry inside that budget).
    pub caller_waiting: bool,
    /// Bytes reserved in the destination's queue budget, released when the job ends.
    pub reserved: u64,
    /// A record of the spool (`ack = "durable"`): retried until delivered or expired.
    pub spooled: Option<Spooled>,
}

/// What a spooled delivery needs beyond a job.
pub struct Spooled {
    /// When the record becomes older than `spool.max_age`.
    pub expires: Instant,
}

pub struct DestMetrics {
    pub sent_bytes: IntCounter,
    pub dropped_bytes: IntCounter,
    pub sent_profiles: IntCounter,
    pub dropped_profiles: IntCounter,
    pub retries: IntCounter,
    pub shed: IntCounter,
    pub queue_bytes: IntGauge,
    pub inflight: IntGauge,
    pub latency_endpoint: prometheus::Histogram,
    pub latency_downstream: prometheus::Histogram,
    pub ingest_endpoint: prometheus::Histogram,
    pub ingest_downstream: prometheus::Histogram,
    pub otlp_endpoint: prometheus::Histogram,
    pub otlp_downstream: prometheus::Histogram,
}

/// Source of [`Destination::id`].
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

pub struct Destination {
    /// Unique for the process's lifetime: per-thread pools and counts are keyed by it (an
    /// address could be reused by a later destination after a reload).
    pub id: u64,
    pub cfg: EndpointConfig,
    tx: Sender<Job>,
    pub rx: Receiver<Job>,
    bytes: AtomicU64,
    pub max_bytes: u64,
    /// `Host`, `User-Agent`, auth, tenant and custom headers, rendered once.
    pub static_headers: Bytes,
    /// Whether the endpoint's own headers set a `Content-Type` (replaced by the caller's on
    /// `/ingest`, as Alloy does).
    pub custom_content_type: Option<String>,
    pub m: DestMetrics,
    /// TLS client of an `https://` endpoint.
    pub tls: Option<super::tls::TlsClient>,
}

impl Destination {
    pub fn new(
        cfg: EndpointConfig,
        max_bytes: u64,
        metrics: &ForwardMetrics,
    ) -> Result<Arc<Self>, String> {
        let tls = super::tls::client_for(&cfg)?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let label = cfg.url_string.as_str();
        let m = DestMetrics {
            sent_bytes: metrics.sent_bytes.with_label_values(&[label]),
            dropped_bytes: metrics.dropped_bytes.with_label_values(&[label]),
            sent_profiles: metrics.sent_profiles.with_label_values(&[label]),
            dropped_profiles: metrics.dropped_profiles.with_label_values(&[label]),
            retries: metrics.retries.with_label_values(&[label]),
            shed: metrics.shed.with_label_values(&[label]),
            queue_bytes: metrics.queue_bytes.with_label_values(&[label]),
            inflight: metrics.inflight.with_label_values(&[label]),
            latency_endpoint: metrics.latency.with_label_values(&[label, "push_endpoint"]),
            latency_downstream: metrics
                .latency
                .with_label_values(&[label, "push_downstream"]),
            ingest_endpoint: metrics
                .latency
                .with_label_values(&[label, "ingest_endpoint"]),
            ingest_downstream: metrics
                .latency
                .with_label_values(&[label, "ingest_downstream"]),
            otlp_endpoint: metrics.latency.with_label_values(&[label, "otlp_endpoint"]),
            otlp_downstream: metrics
                .latency
                .with_label_values(&[label, "otlp_downstream"]),
        };
        metrics
            .queue_limit
            .with_label_values(&[label])
            .set(max_bytes as f64);
        let (static_headers, custom_content_type) = render_static_headers(&cfg);
        Ok(Arc::new(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            cfg,
            tx,
            rx,
            bytes: AtomicU64::new(0),
            max_bytes,
            static_headers,
            custom_content_type,
            m,
            tls,
        }))
    }

    /// Reserves room for `n` bytes; false when the destination's budget is exhausted. A
    /// single envelope larger than the whole budget is still admitted into an empty queue,
    /// so an oversized profile is not refused forever.
    pub fn try_reserve(&self, n: u64) -> bool {
        let mut cur = self.bytes.load(Ordering::Relaxed);
        loop {
            let next = cur + n;
            if next > self.max_bytes && cur > 0 {
                return false;
            }
            match self
                .bytes
                .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.m.queue_bytes.add(n as i64);
                    return true;
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// Counts `n` bytes against the budget unconditionally (records read back from the
    /// spool, sized to the room there was).
    pub fn reserve_force(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::AcqRel);
        self.m.queue_bytes.add(n as i64);
    }

    pub fn release(&self, n: u64) {
        self.bytes.fetch_sub(n, Ordering::AcqRel);
        self.m.queue_bytes.sub(n as i64);
    }

    pub fn queued_bytes(&self) -> u64 {
        self.bytes.load(Ordering::Acquire)
    }

    pub fn push(&self, job: Job) {
        // The receiver lives as long as this Destination, so send cannot fail.
        let _ = self.tx.send(job);
    }
}

fn render_static_headers(cfg: &EndpointConfig) -> (Bytes, Option<String>) {
    let mut h = String::with_capacity(256);
    h.push_str("Host: ");
    h.push_str(&cfg.url.authority);
    h.push_str("\r\n");
    let custom_ua = cfg
        .headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("user-agent"));
    if !custom_ua {
        h.push_str(concat!(
            "User-Agent: pyrogate/",
            env!("CARGO_PKG_VERSION"),
            "\r\n"
        ));
    }
    if let Some(auth) = &cfg.auth {
        h.push_str("Authorization: ");
        h.push_str(&auth.header_value());
        h.push_str("\r\n");
    }
    if let Some(t) = &cfg.tenant_id {
        h.push_str("X-Scope-OrgID: ");
        h.push_str(t);
        h.push_str("\r\n");
    }
    let mut custom_ct = None;
    for (k, v) in &cfg.headers {
        if k.eq_ignore_ascii_case("content-type") {
            custom_ct = Some(v.clone());
            continue;
        }
        if cfg.tenant_id.is_some() && k.eq_ignore_ascii_case("x-scope-orgid") {
            continue;
        }
        h.push_str(k);
        h.push_str(": ");
        h.push_str(v);
        h.push_str("\r\n");
    }
    (Bytes::from(h), custom_ct)
}
