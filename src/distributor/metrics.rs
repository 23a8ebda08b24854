//! The distributor's metrics, under Pyroscope's names where Pyroscope has them
//! (docs/distributor.md §7): what was discarded, by reason and tenant, and how many
//! profiles normalisation changed. Updated only when a profile is refused or rewritten,
//! never per accepted request, so shared atomics cost nothing on the hot path.

use prometheus::{CounterVec, IntCounter, Opts, Registry};

use super::reason::Reason;

pub struct DistributorMetrics {
    /// Pyroscope counts profiles here despite the name.
    discarded_samples: CounterVec,
    discarded_bytes: CounterVec,
    normalized: IntCounter,
}

impl DistributorMetrics {
    /// Registers the metrics in `registry`.
    ///
    /// # Errors
    /// A metric of the same name is already registered.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let discarded_samples = CounterVec::new(
            Opts::new(
                "pyroscope_discarded_samples_total",
                "The total number of samples that were discarded.",
            ),
            &["reason", "tenant"],
        )?;
        let discarded_bytes = CounterVec::new(
            Opts::new(
                "pyroscope_discarded_bytes_total",
                "The total number of bytes that were discarded.",
            ),
            &["reason", "tenant"],
        )?;
        let normalized = IntCounter::new(
            "pyrogate_normalized_profiles_total",
            "Profiles forwarded in normalised form because normalisation changed them.",
        )?;
        registry.register(Box::new(discarded_samples.clone()))?;
        registry.register(Box::new(discarded_bytes.clone()))?;
        registry.register(Box::new(normalized.clone()))?;
        Ok(Self {
            discarded_samples,
            discarded_bytes,
            normalized,
        })
    }

    /// `profiles` profiles of `bytes` bytes discarded for `reason`.
    pub fn discarded(&self, reason: Reason, tenant: &str, profiles: u64, bytes: u64) {
        self.discarded_samples
            .with_label_values(&[reason.label(), tenant])
            .inc_by(profiles as f64);
        self.discarded_bytes
            .with_label_values(&[reason.label(), tenant])
            .inc_by(bytes as f64);
    }

    pub fn normalized(&self) {
        self.normalized.inc();
    }
}
