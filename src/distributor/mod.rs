//! The edge distributor: what Pyroscope's distributor does before it stores a profile,
//! applied at the gateway when configured (`[distributor]`): tenant checks, per-tenant
//! limits, validation with Pyroscope's exact answers, and normalisation
//! (docs/distributor.md).
//!
//! The stage sits between a handler's decode and its envelope: [`push::check`] takes a
//! decoded Push, [`ingest::check`] an `/ingest` request, and each returns either what to
//! forward (the profiles as received, or rewritten ones) or Pyroscope's answer. A request
//! is accepted or refused whole: nothing of a refused request is forwarded.
//!
//! Per worker ([`Stage`]): the rate limiter's local credit. Shared ([`Shared`]): the
//! tenants' token buckets and the metrics.

pub mod gofmt;
pub mod ingest;
pub mod labels;
pub mod metrics;
pub mod normalize;
pub mod profile;
pub mod push;
pub mod rate;
pub mod reason;
pub mod series;
pub mod tenant;
pub mod validate;

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::config::distributor::{DistributorConfig, LimitsConfig};
use crate::protocol::connect::Code;
use crate::util::lograte;

pub use self::metrics::DistributorMetrics;
pub use self::reason::{Invalid, Reason};

/// What every worker shares.
pub struct Shared {
    pub buckets: Arc<rate::Buckets>,
    pub metrics: DistributorMetrics,
}

impl Shared {
    /// # Errors
    /// The metrics could not be registered (a name clash).
    pub fn new(registry: &prometheus::Registry) -> Result<Arc<Self>, prometheus::Error> {
        Ok(Arc::new(Self {
            buckets: Arc::default(),
            metrics: DistributorMetrics::register(registry)?,
        }))
    }
}

/// One worker's stage.
pub struct Stage {
    pub shared: Arc<Shared>,
    limiter: RefCell<rate::Limiter>,
}

/// The configuration a request is checked under (swapped whole on reload).
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub config: DistributorConfig,
    pub limits: LimitsConfig,
    /// The most a profile may decompress to when `max_profile_size_bytes` is 0.
    pub hard_max_decoded: usize,
}

/// The time a request is checked at, read once per request.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Unix milliseconds (Pyroscope's `model.Now()`).
    pub millis: i64,
    pub instant: Instant,
}

impl Now {
    pub fn read() -> Self {
        let millis = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Self {
            millis,
            instant: Instant::now(),
        }
    }
}

/// A refused Push profile: the Connect code and Pyroscope's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub code: Code,
    pub message: String,
    /// For rate limits that can pass later: seconds until they could (our addition).
    pub retry_after_secs: Option<u64>,
}

impl Rejection {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }
}

impl Stage {
    pub fn new(shared: Arc<Shared>) -> Self {
        let limiter = RefCell::new(rate::Limiter::new(shared.buckets.clone()));
        Self { shared, limiter }
    }

    fn allow(
        &self,
        tenant: &str,
        n: u64,
        rate: f64,
        burst: f64,
        now: Instant,
    ) -> Result<(), rate::Limited> {
        self.limiter.borrow_mut().allow(tenant, n, rate, burst, now)
    }

    /// Counts a refused profile of `bytes` bytes, logs it (rate-limited) and makes the
    /// rejection.
    fn reject(
        &self,
        tenant: &str,
        invalid: Invalid,
        bytes: u64,
        code: Code,
        retry_after_secs: Option<u64>,
    ) -> Rejection {
        self.discarded(tenant, invalid.reason, 1, bytes);
        log_rejection(tenant, invalid.reason, &invalid.message);
        Rejection {
            code,
            message: invalid.message,
            retry_after_secs,
        }
    }

    fn discarded(&self, tenant: &str, reason: Reason, profiles: u64, bytes: u64) {
        self.shared
            .metrics
            .discarded(reason, tenant, profiles, bytes);
    }
}

/// One debug line per rejection reason per interval (a misbehaving agent must not flood
/// the log).
fn log_rejection(tenant: &str, reason: Reason, message: &str) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    lograte::warn_limited(&format!("distributor:{}", reason.label()), |suppressed| {
        tracing::debug!(
            tenant,
            reason = reason.label(),
            suppressed,
            message,
            "profile rejected"
        );
    });
}
