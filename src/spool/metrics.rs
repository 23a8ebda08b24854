//! The spool's metrics (docs/spool.md §6).

use std::time::Duration;

use prometheus::{
    GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Opts,
    Registry,
};

/// fdatasync takes ~0.1 ms on NVMe and tens of ms on spinning or network disks.
const FSYNC_BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

pub struct SpoolMetrics {
    pub bytes: IntGaugeVec,
    pub records: IntGaugeVec,
    pub oldest_age: GaugeVec,
    pub fsync: Histogram,
    /// The other syncs: a new segment (file and directory), a cursor file.
    pub metadata_sync: HistogramVec,
    pub segments_created: IntCounterVec,
    pub corrupt: IntCounter,
    pub expired: IntCounterVec,
    pub rejected: IntCounterVec,
    pub write_errors: IntCounter,
    pub replayed: IntCounter,
}

impl SpoolMetrics {
    /// Registers the spool's metrics in `r`.
    ///
    /// # Errors
    /// A metric of the same name is already registered.
    pub fn register(r: &Registry) -> prometheus::Result<Self> {
        let m = Self {
            bytes: IntGaugeVec::new(
                Opts::new(
                    "pyrogate_spool_bytes",
                    "Bytes in the spool not yet acknowledged by the endpoint.",
                ),
                &["endpoint"],
            )?,
            records: IntGaugeVec::new(
                Opts::new(
                    "pyrogate_spool_records",
                    "Records (requests) in the spool not yet acknowledged by the endpoint.",
                ),
                &["endpoint"],
            )?,
            oldest_age: GaugeVec::new(
                Opts::new(
                    "pyrogate_spool_oldest_record_age_seconds",
                    "Age of the oldest record the endpoint has not acknowledged (0 when none).",
                ),
                &["endpoint"],
            )?,
            fsync: Histogram::with_opts(
                HistogramOpts::new(
                    "pyrogate_spool_fsync_duration_seconds",
                    "Duration of the spool's fdatasync calls.",
                )
                .buckets(FSYNC_BUCKETS.to_vec()),
            )?,
            metadata_sync: HistogramVec::new(
                HistogramOpts::new(
                    "pyrogate_spool_metadata_sync_duration_seconds",
                    "Duration of the spool's syncs other than the log's fdatasync: a new segment file and its directory (kind=segment), a cursor file (kind=cursor).",
                )
                .buckets(FSYNC_BUCKETS.to_vec()),
                &["kind"],
            )?,
            segments_created: IntCounterVec::new(
                Opts::new(
                    "pyrogate_spool_segments_created_total",
                    "Segments started: prepared in the background (how=prepared) or created by the appending thread because none was ready (how=inline).",
                ),
                &["how"],
            )?,
            corrupt: IntCounter::new(
                "pyrogate_spool_corrupt_records_total",
                "Damaged records and torn tails found in the spool and skipped.",
            )?,
            expired: IntCounterVec::new(
                Opts::new(
                    "pyrogate_spool_expired_records_total",
                    "Spooled records dropped undelivered because they were older than spool.max_age.",
                ),
                &["endpoint"],
            )?,
            rejected: IntCounterVec::new(
                Opts::new(
                    "pyrogate_spool_rejected_requests_total",
                    "Requests refused because the spool was full (429) or could not be written (503).",
                ),
                &["reason"],
            )?,
            write_errors: IntCounter::new(
                "pyrogate_spool_write_errors_total",
                "Failed writes or syncs of the spool's log.",
            )?,
            replayed: IntCounter::new(
                "pyrogate_spool_replayed_records_total",
                "Records found undelivered in the spool at start-up.",
            )?,
        };
        r.register(Box::new(m.bytes.clone()))?;
        r.register(Box::new(m.records.clone()))?;
        r.register(Box::new(m.oldest_age.clone()))?;
        r.register(Box::new(m.fsync.clone()))?;
        r.register(Box::new(m.metadata_sync.clone()))?;
        r.register(Box::new(m.segments_created.clone()))?;
        r.register(Box::new(m.corrupt.clone()))?;
        r.register(Box::new(m.expired.clone()))?;
        r.register(Box::new(m.rejected.clone()))?;
        r.register(Box::new(m.write_errors.clone()))?;
        r.register(Box::new(m.replayed.clone()))?;
        Ok(m)
    }

    /// One sync other than the log's `fdatasync`.
    pub fn observe_sync(&self, kind: &str, took: Duration) {
        self.metadata_sync
            .with_label_values(&[kind])
            .observe(took.as_secs_f64());
    }
}
