//! Per-tenant ingestion rate limits (docs/distributor.md §3.3): Pyroscope's token bucket on
//! uncompressed bytes, `ingestion_rate_mb` per second with room for
//! `ingestion_burst_size_mb`, enforced across all workers without a lock on the hot path.
//!
//! One bucket per tenant is shared by the workers. It is a GCRA (generic cell rate
//! algorithm) cell: a single atomic "theoretical arrival time", which is exactly a token
//! bucket that starts full, so tokens are only ever created at the configured rate. A
//! worker does not touch it per request: it borrows tokens in batches into a local credit
//! and spends that credit with plain arithmetic. The global admitted amount therefore never
//! exceeds `rate × t + burst` plus the credit the workers hold (at most one batch each,
//! [`BORROW_FRACTION`] of the burst), which over seconds is within a few percent of the
//! configured rate. As in Pyroscope, a single profile larger than the burst is always
//! refused, and tokens are taken before the profile is validated.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A worker borrows this share of the burst at a time: small enough that the credit held by
/// all workers stays a small part of the burst, large enough that a stream of small profiles
/// touches the shared cell once per many requests.
pub const BORROW_FRACTION: f64 = 1.0 / 32.0;

/// Tenants remembered; past this, buckets that are full again (idle tenants) are forgotten.
/// A forgotten bucket is recreated full, which is what it was.
pub const MAX_TENANTS: usize = 10_000;

/// The cells of every tenant, shared by the workers.
pub struct Buckets {
    epoch: Instant,
    cells: Mutex<HashMap<String, Arc<Cell>>>,
}

/// One tenant's GCRA cell: the theoretical arrival time, in nanoseconds since the epoch.
#[derive(Default)]
struct Cell {
    tat: AtomicU64,
}

/// A refusal: how long until the same request could pass, when it ever can.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// `None` when the request is larger than the burst and can never pass.
    pub retry_after_secs: Option<u64>,
}

impl Default for Buckets {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            cells: Mutex::new(HashMap::new()),
        }
    }
}

impl Buckets {
    fn cell(&self, tenant: &str, now_ns: u64) -> Arc<Cell> {
        // A poisoned map only means another worker panicked mid-insert; the map is still
        // a valid map.
        let mut cells = self.cells.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cells.get(tenant) {
            return c.clone();
        }
        if cells.len() >= MAX_TENANTS {
            cells.retain(|_, c| c.tat.load(Ordering::Relaxed) > now_ns);
        }
        let c = Arc::new(Cell::default());
        cells.insert(tenant.to_string(), c.clone());
        c
    }

    fn now_ns(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_nanos() as u64
    }
}

impl Cell {
    /// Takes `n` bytes if the bucket holds them: `tat' = max(tat, now) + n·T` must stay
    /// within `τ = burst·T` of now, with `T = 1/rate`. On refusal, the nanoseconds until it
    /// would hold them.
    fn take(&self, n: f64, rate: f64, burst: f64, now: u64) -> Result<(), u64> {
        let per_byte = 1e9 / rate;
        let tau = (burst * per_byte) as u64;
        let cost = (n * per_byte) as u64;
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let new = tat.max(now).saturating_add(cost);
            let ahead = new - now;
            if ahead > tau {
                return Err(ahead - tau);
            }
            match self
                .tat
                .compare_exchange_weak(tat, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(current) => tat = current,
            }
        }
    }
}

/// One worker's view: its credit per tenant, borrowed from the shared cells.
pub struct Limiter {
    buckets: Arc<Buckets>,
    local: HashMap<String, Local>,
}

struct Local {
    cell: Arc<Cell>,
    credit: f64,
}

impl Limiter {
    pub fn new(buckets: Arc<Buckets>) -> Self {
        Self {
            buckets,
            local: HashMap::new(),
        }
    }

    /// Admits `n` bytes for `tenant` under `rate` bytes/s and `burst` bytes (a rate of 0
    /// or less is no limit).
    pub fn allow(
        &mut self,
        tenant: &str,
        n: u64,
        rate: f64,
        burst: f64,
        now: Instant,
    ) -> Result<(), Limited> {
        if rate <= 0.0 || !rate.is_finite() {
            return Ok(());
        }
        let n = n as f64;
        if n > burst {
            return Err(Limited {
                retry_after_secs: None,
            });
        }
        let now_ns = self.buckets.now_ns(now);
        if !self.local.contains_key(tenant) {
            if self.local.len() >= MAX_TENANTS {
                self.local.clear();
            }
            let cell = self.buckets.cell(tenant, now_ns);
            self.local
                .insert(tenant.to_string(), Local { cell, credit: 0.0 });
        }
        let Some(local) = self.local.get_mut(tenant) else {
            return Ok(());
        };
        if local.credit >= n {
            local.credit -= n;
            return Ok(());
        }
        let need = n - local.credit;
        let batch = burst * BORROW_FRACTION;
        if local.cell.take(need + batch, rate, burst, now_ns).is_ok() {
            local.credit = batch;
            return Ok(());
        }
        match local.cell.take(need, rate, burst, now_ns) {
            Ok(()) => {
                local.credit = 0.0;
                Ok(())
            }
            Err(wait_ns) => Err(Limited {
                retry_after_secs: Some(wait_ns.div_ceil(1_000_000_000).max(1)),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MIB: f64 = 1024.0 * 1024.0;

    #[test]
    fn starts_full_then_refills_at_the_rate() {
        let mut l = Limiter::new(Arc::default());
        let t0 = Instant::now();
        // 1 MiB/s, burst 256 KiB: 256 KiB pass at once, the next byte does not.
        let (rate, burst) = (MIB, MIB / 4.0);
        let mut admitted = 0u64;
        while l.allow("a", 1024, rate, burst, t0).is_ok() {
            admitted += 1024;
            assert!(admitted <= 512 * 1024, "no limit");
        }
        assert_eq!(admitted as f64, burst);
        let refused = l.allow("a", 1024, rate, burst, t0).unwrap_err();
        assert_eq!(refused.retry_after_secs, Some(1));
        // Another tenant has its own bucket.
        assert!(l.allow("b", 1024, rate, burst, t0).is_ok());
        // A second later, 1 MiB more has been allowed for, but the bucket holds a burst.
        let t1 = t0 + Duration::from_secs(1);
        let mut later = 0u64;
        while l.allow("a", 1024, rate, burst, t1).is_ok() {
            later += 1024;
        }
        assert_eq!(later as f64, burst);
    }

    #[test]
    fn larger_than_the_burst_never_passes() {
        let mut l = Limiter::new(Arc::default());
        let r = l.allow("a", 3 << 20, 4.0 * MIB, 2.0 * MIB, Instant::now());
        assert_eq!(
            r,
            Err(Limited {
                retry_after_secs: None
            })
        );
        assert!(
            l.allow("a", 1, 0.0, 0.0, Instant::now()).is_ok(),
            "rate 0 is off"
        );
    }

    /// Two workers, each with its own limiter on the same buckets, admit together what one
    /// bucket would: the rate over time plus one burst, plus at most one borrowed batch
    /// each.
    #[test]
    fn workers_share_one_budget() {
        let buckets: Arc<Buckets> = Arc::default();
        let mut workers = [Limiter::new(buckets.clone()), Limiter::new(buckets)];
        let (rate, burst) = (MIB, MIB / 4.0);
        let t0 = Instant::now();
        let mut admitted = 0.0;
        // 10 simulated seconds in 1 ms steps, each worker offering 4 KiB per step (8 MiB/s).
        for ms in 0..10_000u64 {
            let now = t0 + Duration::from_millis(ms);
            for w in &mut workers {
                if w.allow("t", 4096, rate, burst, now).is_ok() {
                    admitted += 4096.0;
                }
            }
        }
        let ideal = rate * 10.0 + burst;
        let slack = 2.0 * burst * BORROW_FRACTION + 2.0 * 4096.0;
        assert!(
            admitted <= ideal + slack && admitted >= ideal - 2.0 * 4096.0 - rate * 0.001,
            "admitted {admitted}, ideal {ideal}"
        );
    }
}
