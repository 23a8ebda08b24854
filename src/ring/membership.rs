//! The ring in use, published to every worker as an immutable snapshot (docs/ring.md §4):
//! the membership source (a static list, or the etcd watcher thread) builds a new [`Ring`],
//! gives the forwarding stage one destination per member, then swaps the snapshot. A worker
//! reads the shared pointer only when the generation changed, so the request path takes
//! no lock.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use prometheus::IntCounter;

use super::desc::InstanceState;
use super::metrics::RingMetrics;
use super::model::{Member, Placement, Ring};
use crate::config::ring::{RingConfig, RingStoreConfig};
use crate::forward::Forwarder;

/// One published ring.
#[derive(Debug)]
pub struct RingState {
    pub ring: Ring,
    pub generation: u64,
    /// `static` or `etcd`.
    pub source: &'static str,
    pub updated_at: SystemTime,
    /// Each member's `pyrogate_ring_member_requests_total` counters (`sent`, `failed`),
    /// looked up at its first request instead of at every one.
    counters: Vec<OnceLock<(IntCounter, IntCounter)>>,
}

impl RingState {
    fn new(ring: Ring, generation: u64, source: &'static str, updated_at: SystemTime) -> Self {
        Self {
            counters: (0..ring.members.len()).map(|_| OnceLock::new()).collect(),
            ring,
            generation,
            source,
            updated_at,
        }
    }

    /// Member `i`'s request counters (`sent`, `failed`).
    pub fn member_counters(&self, i: usize, metrics: &RingMetrics) -> (IntCounter, IntCounter) {
        let lookup = || {
            let id = self.ring.members.get(i).map_or("", |m| m.id.as_str());
            (
                metrics.member_requests.with_label_values(&[id, "sent"]),
                metrics.member_requests.with_label_values(&[id, "failed"]),
            )
        };
        match self.counters.get(i) {
            Some(c) => c.get_or_init(lookup).clone(),
            None => lookup(),
        }
    }
}

pub struct Membership {
    state: RwLock<Arc<RingState>>,
    generation: AtomicU64,
    pub placement: Placement,
    pub push_path: String,
    pub config: RingConfig,
    pub forwarder: Forwarder,
    pub metrics: RingMetrics,
    /// The store's last error while the last good ring is kept.
    pub store_error: Mutex<Option<String>>,
}

thread_local! {
    static CACHED: RefCell<Option<(usize, Arc<RingState>)>> = const { RefCell::new(None) };
}

impl Membership {
    /// Membership for `cfg`; a static ring is published at once.
    ///
    /// # Errors
    /// The metrics could not be registered, or a static member's endpoint is invalid.
    pub fn new(
        cfg: &RingConfig,
        forwarder: Forwarder,
        registry: &prometheus::Registry,
    ) -> Result<Arc<Self>, String> {
        let metrics = RingMetrics::register(registry).map_err(|e| e.to_string())?;
        let m = Arc::new(Self {
            state: RwLock::new(Arc::new(RingState::new(
                Ring::default(),
                0,
                "none",
                SystemTime::UNIX_EPOCH,
            ))),
            generation: AtomicU64::new(0),
            placement: Placement {
                replication_factor: cfg.replication_factor,
                zone_awareness: cfg.zone_awareness,
                heartbeat_timeout: cfg.heartbeat_timeout,
            },
            push_path: cfg.push_path.clone(),
            config: cfg.clone(),
            forwarder,
            metrics,
            store_error: Mutex::new(None),
        });
        if let RingStoreConfig::Static(members) = &cfg.store {
            let ring = Ring::new(
                members
                    .iter()
                    .map(|s| Member {
                        id: s.id.clone(),
                        url: s.url.clone(),
                        addr: s.url.clone(),
                        zone: s.zone.clone(),
                        state: InstanceState::Active,
                        heartbeat: 0,
                        tokens: s.tokens.clone(),
                    })
                    .collect(),
            );
            m.publish(ring, "static")?;
            m.metrics.store_up.set(1);
        }
        Ok(m)
    }

    /// Makes `ring` the ring in use: its members get destinations first, then every worker
    /// sees the new snapshot at its next request.
    ///
    /// # Errors
    /// A member's endpoint cannot be built (its URL, TLS settings).
    pub fn publish(&self, ring: Ring, source: &'static str) -> Result<(), String> {
        let endpoints = ring
            .members
            .iter()
            .map(|m| self.config.member_endpoint(&m.id, &m.url))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        self.forwarder
            .set_members(&endpoints)
            .map_err(|e| e.to_string())?;
        for st in ["ACTIVE", "LEAVING", "PENDING", "JOINING", "LEFT"] {
            self.metrics.members.with_label_values(&[st]).set(0);
        }
        for m in &ring.members {
            self.metrics
                .members
                .with_label_values(&[m.state.name()])
                .inc();
        }
        let now = SystemTime::now();
        let generation = self.generation.load(Ordering::Acquire) + 1;
        let state = Arc::new(RingState::new(ring, generation, source, now));
        if let Ok(mut g) = self.state.write() {
            *g = state;
        }
        self.generation.store(generation, Ordering::Release);
        self.metrics.updates.inc();
        self.metrics.last_update.set(
            now.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_secs() as i64,
        );
        Ok(())
    }

    /// The ring in use; the shared pointer is read only after a publish.
    pub fn current(&self) -> Arc<RingState> {
        let generation = self.generation.load(Ordering::Acquire);
        let me = self as *const Membership as usize;
        CACHED.with(|c| {
            let mut c = c.borrow_mut();
            if let Some((owner, s)) = c.as_ref()
                && *owner == me
                && s.generation == generation
            {
                return s.clone();
            }
            let s = match self.state.read() {
                Ok(g) => g.clone(),
                Err(p) => p.into_inner().clone(),
            };
            *c = Some((me, s.clone()));
            s
        })
    }

    /// Records the store's state (etcd reachable or not, and why).
    pub fn store_status(&self, error: Option<String>) {
        self.metrics.store_up.set(i64::from(error.is_none()));
        if let Ok(mut g) = self.store_error.lock() {
            *g = error;
        }
    }
}
