//! Forwarding: envelopes, per-destination fan-out queues bounded in bytes, outbound writer
//! threads, retries, deadlines and ack policies.
//!
//! ```text
//!  worker ── Arc<Envelope> ──▶ queue(dest A) ─┐            ┌─▶ pooled conns ─▶ A
//!         (reserve bytes on every queue,      ├─ writer(s) ┤
//!          all or nothing)  ─▶ queue(dest B) ─┘  retries    └─▶ pooled conns ─▶ B
//!         ◀──────────────── Ack (all / quorum) ◀── delivery results
//! ```

pub mod ack;
pub mod delivery;
pub mod destination;
pub mod durable;
pub mod envelope;
pub mod head;
pub mod kind;
pub mod local;
pub mod metrics;
pub mod resolver;
pub mod retry;
pub mod tls;
pub mod writer;

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ack::Ack;
use destination::{Destination, Job};
pub use envelope::{Envelope, Kind, Outcome};
use metrics::ForwardMetrics;

use crate::config::{AckPolicy, Config, Dispatch};
use crate::runtime::DriverKind;
use crate::util::deadline::Deadline;
use crate::util::mailbox::WakeSlot;

/// Bytes of a spool record beyond the body: the path, headers and tenant (bounded by the
/// server's header limit, far below this).
const SPOOL_RECORD_OVERHEAD: u64 = 1 << 20;
/// Seconds a shed caller is asked to wait (`Retry-After`).
const SHED_RETRY_AFTER_SECS: u32 = 1;

/// Everything a writer or a worker needs to route an envelope; replaced as a whole on
/// reload and cached per thread by generation, so the request path takes no lock.
pub struct Snapshot {
    pub generation: u64,
    pub dests: Vec<Arc<Destination>>,
    /// Ring mode: one destination per ring member, by member ID (its `cfg.name`).
    pub members: Vec<Arc<Destination>>,
    /// Destinations removed by a reload that may still hold queued jobs.
    pub retired: Vec<Arc<Destination>>,
    pub ack: AckPolicy,
    pub deadline_reserve: Duration,
    pub forward_tenant: bool,
    pub delivery_timeout: Duration,
    /// In-flight deliveries per destination on one thread (worker or writer): the
    /// endpoint's `max_inflight_per_endpoint` shared by every thread that delivers.
    pub max_inflight_per_writer: usize,
    pub dispatch: Dispatch,
    pub max_idle_conns: usize,
    pub idle_conn_timeout: Duration,
}

impl Snapshot {
    /// Every destination a writer serves: endpoints, ring members, and retired ones still
    /// holding jobs.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Destination>> {
        self.dests
            .iter()
            .chain(self.members.iter())
            .chain(self.retired.iter())
    }

    /// The destination of ring member `id`.
    pub fn member(&self, id: &str) -> Option<&Arc<Destination>> {
        self.members.iter().find(|d| d.cfg.name == id)
    }
}

pub struct Core {
    snapshot: RwLock<Arc<Snapshot>>,
    /// Queue budget of each ring member (`forward.queue_max_bytes`).
    member_queue_bytes: u64,
    /// Endpoint host names, resolved off the delivering threads.
    pub resolver: resolver::Resolver,
    generation: AtomicU64,
    pub writer_slots: Vec<Arc<WakeSlot>>,
    next_writer: AtomicUsize,
    pub metrics: ForwardMetrics,
    pub driver: DriverKind,
    pub shutdown: AtomicBool,
    shutdown_at: Mutex<Option<Instant>>,
    /// The spool of `ack = "durable"`.
    pub spool: Option<Arc<crate::spool::Spool>>,
    /// Set when the gateway starts draining: spooled records stop being retried (they
    /// are safe on disk and go out after the restart), so they do not hold the drain up.
    pub draining: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

thread_local! {
    static CACHED: RefCell<Option<(usize, Arc<Snapshot>)>> = const { RefCell::new(None) };
}

impl Core {
    /// The current snapshot; a thread re-reads the shared one only after a reload.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        let generation = self.generation.load(Ordering::Acquire);
        let me = self as *const Core as usize;
        CACHED.with(|c| {
            let mut c = c.borrow_mut();
            if let Some((owner, snap)) = c.as_ref()
                && *owner == me
                && snap.generation == generation
            {
                return snap.clone();
            }
            let snap = match self.snapshot.read() {
                Ok(g) => g.clone(),
                Err(p) => p.into_inner().clone(),
            };
            *c = Some((me, snap.clone()));
            snap
        })
    }

    fn wake_writer(&self) {
        let i = self.next_writer.fetch_add(1, Ordering::Relaxed) % self.writer_slots.len();
        self.writer_slots[i].wake();
    }

    pub fn shutdown_deadline(&self) -> Instant {
        self.shutdown_at
            .lock()
            .ok()
            .and_then(|g| *g)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    /// Whether spooled deliveries should stop (draining or shut down).
    pub fn spool_stopping(&self) -> bool {
        self.draining.load(Ordering::Acquire) || self.shutdown.load(Ordering::Acquire)
    }

    pub fn shutdown_deadline_passed(&self) -> bool {
        self.shutdown.load(Ordering::Acquire) && Instant::now() >= self.shutdown_deadline()
    }
}

/// The hand-off point between receive workers and the forwarding stage. Cheap to clone;
/// every worker holds one.
#[derive(Clone, Default)]
pub struct Forwarder {
    core: Option<Arc<Core>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("config error: {key}: {msg}")]
    Config { key: String, msg: String },
    #[error("cannot start writer thread: {0}")]
    Thread(String),
    #[error("cannot register metrics: {0}")]
    Metrics(String),
    #[error("{0}")]
    Spool(String),
}

impl Forwarder {
    /// A forwarder with no destination: every profile is accepted and discarded, exactly as
    /// Alloy does with an empty `forward_to`.
    pub fn discard() -> Self {
        Self { core: None }
    }

    pub fn has_endpoints(&self) -> bool {
        self.core
            .as_ref()
            .is_some_and(|c| !c.snapshot().dests.is_empty())
    }

    /// Hands the envelope to every destination and resolves when the ack policy is
    /// satisfied, or just before the envelope's deadline with a retryable outcome.
    pub async fn forward(&self, env: Envelope) -> Outcome {
        self.forward_detailed(env).await.0
    }

    /// [`Forwarder::forward`], with what the destinations that answered before the decision
    /// reported besides their status: OTLP's `partial_success` (docs/otlp.md §7). Nothing
    /// when the caller is answered before any destination (`enqueue`, `durable`).
    pub async fn forward_detailed(
        &self,
        mut env: Envelope,
    ) -> (Outcome, Option<crate::protocol::otlp::PartialSuccess>) {
        let Some(core) = &self.core else {
            return (Outcome::Accepted, None);
        };
        let snap = core.snapshot();
        let n = snap.dests.len();
        if n == 0 {
            return (Outcome::Accepted, None);
        }
        if snap.ack == AckPolicy::Durable
            && let Some(spool) = &core.spool
        {
            return (durable::forward(core, spool, env).await, None);
        }
        let started = Instant::now();
        let bytes = env.body_len as u64;
        for (i, d) in snap.dests.iter().enumerate() {
            if !d.try_reserve(bytes) {
                for prev in &snap.dests[..i] {
                    prev.release(bytes);
                }
                d.m.shed.inc();
                return (
                    Outcome::Overloaded {
                        retry_after_secs: SHED_RETRY_AFTER_SECS,
                        spool: false,
                    },
                    None,
                );
            }
        }
        let caller_deadline = env.deadline;
        let background_deadline = env.received_at + snap.delivery_timeout;
        let (ack, job_deadline, caller_waiting) = match snap.ack {
            AckPolicy::All => (Some(Ack::new(n, n)), caller_deadline, true),
            AckPolicy::Quorum => (Some(Ack::new(n, n / 2 + 1)), background_deadline, false),
            AckPolicy::Enqueue | AckPolicy::Durable => (None, background_deadline, false),
        };
        if snap.ack != AckPolicy::All {
            env.deadline = background_deadline;
        }
        let kind = env.kind;
        let env = Arc::new(env);
        let local = (snap.dispatch == Dispatch::Worker).then(local::Local::current);
        for d in &snap.dests {
            let job = Job {
                env: env.clone(),
                ack: ack.clone().map(|a| a as Arc<dyn ack::AckSink>),
                deadline: job_deadline,
                caller_waiting,
                reserved: bytes,
                spooled: None,
            };
            match &local {
                // On this worker, while it is under its share of the destination's
                // in-flight bound; beyond it the writer threads take the overflow.
                Some(l) if l.inflight(d) < snap.max_inflight_per_writer => {
                    delivery::spawn(l, job, d.clone(), core.clone());
                }
                _ => {
                    d.push(job);
                    core.wake_writer();
                }
            }
        }
        let Some(ack) = ack else {
            return (Outcome::Accepted, None);
        };
        // Answer a little before the caller's deadline: deliveries stop attempting at
        // `deadline - reserve`, so this only fires if a writer is stuck or overloaded.
        let answer_by = caller_deadline
            .checked_sub(snap.deadline_reserve / 2)
            .unwrap_or(caller_deadline);
        // A boxed timer (util/deadline.rs), not monoio's 128-byte-aligned one inline in
        // every request's future.
        let outcome = match Deadline::new(answer_by).run(ack.wait()).await {
            Some(o) => o,
            None => Outcome::Unavailable {
                last_status: None,
                message: "destinations did not answer before the deadline".into(),
            },
        };
        core.metrics
            .latency
            .with_label_values(&["-", kind.latency_total()])
            .observe(started.elapsed().as_secs_f64());
        (outcome, ack.partial_success())
    }

    /// Validates and applies a reloaded configuration: unchanged endpoints keep their queues
    /// and connections; removed ones drain in the background.
    pub fn reload(&self, cfg: &Config) -> Result<(), ForwardError> {
        validate(cfg)?;
        let Some(core) = &self.core else {
            if !cfg.endpoints.is_empty() {
                return Err(ForwardError::Config {
                    key: "endpoint".into(),
                    msg: "endpoints cannot be added to a gateway started without any; restart \
                          it"
                    .into(),
                });
            }
            return Ok(());
        };
        let old = core.snapshot();
        if let Some(spool) = &core.spool {
            let same = cfg.forward.ack == AckPolicy::Durable
                && spool.dests.len() == cfg.endpoints.len()
                && spool
                    .dests
                    .iter()
                    .zip(&cfg.endpoints)
                    .all(|(s, e)| s.name == e.name && s.url == e.url_string);
            if !same {
                return Err(ForwardError::Config {
                    key: "endpoint".into(),
                    msg: "with ack = \"durable\" the endpoints and the ack policy cannot change \
                          on reload (the spool's cursors belong to them); restart"
                        .into(),
                });
            }
        }
        let mut dests = Vec::with_capacity(cfg.endpoints.len());
        let mut kept = Vec::new();
        for e in &cfg.endpoints {
            match old
                .dests
                .iter()
                .find(|d| d.cfg == *e && d.max_bytes == cfg.forward.queue_max_bytes)
            {
                Some(d) => {
                    kept.push(Arc::as_ptr(d));
                    dests.push(d.clone());
                }
                None => dests.push(
                    Destination::new(e.clone(), cfg.forward.queue_max_bytes, &core.metrics)
                        .map_err(|msg| ForwardError::Config {
                            key: format!("endpoint {}", e.name),
                            msg,
                        })?,
                ),
            }
        }
        let mut retired: Vec<Arc<Destination>> = old
            .retired
            .iter()
            .filter(|d| d.queued_bytes() > 0 || !d.rx.is_empty())
            .cloned()
            .collect();
        retired.extend(
            old.dests
                .iter()
                .filter(|d| !kept.contains(&Arc::as_ptr(d)))
                .cloned(),
        );
        let generation = old.generation + 1;
        let mut snap = snapshot_from(cfg, generation, dests, retired);
        snap.members = old.members.clone();
        let snap = Arc::new(snap);
        if let Ok(mut g) = core.snapshot.write() {
            *g = snap;
        }
        core.generation.store(generation, Ordering::Release);
        for s in &core.writer_slots {
            s.wake();
        }
        Ok(())
    }

    /// The routing snapshot in force (ring mode looks its members up here).
    pub fn snapshot(&self) -> Option<Arc<Snapshot>> {
        self.core.as_ref().map(|c| c.snapshot())
    }

    /// Ring mode: the members' destinations become `members` (one per member, `name` =
    /// member ID). A member whose configuration is unchanged keeps its destination (queue,
    /// connections, metrics); a removed one drains in the background.
    ///
    /// # Errors
    /// A member whose endpoint cannot be built (its TLS settings).
    pub fn set_members(
        &self,
        members: &[crate::config::EndpointConfig],
    ) -> Result<(), ForwardError> {
        let Some(core) = &self.core else {
            return Ok(());
        };
        let old = core.snapshot();
        let mut next = Vec::with_capacity(members.len());
        let mut kept = Vec::new();
        for e in members {
            match old.members.iter().find(|d| d.cfg == *e) {
                Some(d) => {
                    kept.push(Arc::as_ptr(d));
                    next.push(d.clone());
                }
                None => next.push(
                    Destination::new(e.clone(), core.member_queue_bytes, &core.metrics).map_err(
                        |msg| ForwardError::Config {
                            key: format!("ring member {}", e.name),
                            msg,
                        },
                    )?,
                ),
            }
        }
        let mut retired: Vec<Arc<Destination>> = old
            .retired
            .iter()
            .filter(|d| d.queued_bytes() > 0 || !d.rx.is_empty())
            .cloned()
            .collect();
        retired.extend(
            old.members
                .iter()
                .filter(|d| !kept.contains(&Arc::as_ptr(d)))
                .cloned(),
        );
        let generation = old.generation + 1;
        let snap = Arc::new(Snapshot {
            generation,
            dests: old.dests.clone(),
            members: next,
            retired,
            ack: old.ack,
            deadline_reserve: old.deadline_reserve,
            forward_tenant: old.forward_tenant,
            delivery_timeout: old.delivery_timeout,
            max_inflight_per_writer: old.max_inflight_per_writer,
            dispatch: old.dispatch,
            max_idle_conns: old.max_idle_conns,
            idle_conn_timeout: old.idle_conn_timeout,
        });
        if let Ok(mut g) = core.snapshot.write() {
            *g = snap;
        }
        core.generation.store(generation, Ordering::Release);
        for s in &core.writer_slots {
            s.wake();
        }
        Ok(())
    }

    /// Ring mode: hands `env` to one destination, its result reported to `ack`.
    ///
    /// # Errors
    /// The destination's queue budget is spent: the caller sheds the request.
    pub fn send(
        &self,
        d: &Arc<Destination>,
        env: Arc<Envelope>,
        ack: Arc<dyn ack::AckSink>,
        deadline: Instant,
        caller_waiting: bool,
    ) -> Result<(), Outcome> {
        let Some(core) = &self.core else {
            ack.report(ack::Delivery::Ok);
            return Ok(());
        };
        let bytes = env.body_len as u64;
        if !d.try_reserve(bytes) {
            d.m.shed.inc();
            return Err(Outcome::Overloaded {
                retry_after_secs: SHED_RETRY_AFTER_SECS,
                spool: false,
            });
        }
        let snap = core.snapshot();
        let job = Job {
            env,
            ack: Some(ack),
            deadline,
            caller_waiting,
            reserved: bytes,
            spooled: None,
        };
        let local = (snap.dispatch == Dispatch::Worker).then(local::Local::current);
        match &local {
            Some(l) if l.inflight(d) < snap.max_inflight_per_writer => {
                delivery::spawn(l, job, d.clone(), core.clone());
            }
            _ => {
                d.push(job);
                core.wake_writer();
            }
        }
        Ok(())
    }

    /// The gateway starts draining (before the workers stop): spooled deliveries stop
    /// retrying and leave their records in the spool.
    pub fn begin_drain(&self) {
        if let Some(core) = &self.core {
            core.draining.store(true, Ordering::Release);
        }
    }

    /// Lets writers finish queued and in-flight deliveries until `deadline`, then stops them.
    pub fn shutdown(&self, deadline: Instant) {
        let Some(core) = &self.core else { return };
        if let Ok(mut g) = core.shutdown_at.lock() {
            *g = Some(deadline);
        }
        core.shutdown.store(true, Ordering::Release);
        for s in &core.writer_slots {
            s.wake();
        }
        let threads = core
            .threads
            .lock()
            .map(|mut g| std::mem::take(&mut *g))
            .unwrap_or_default();
        for t in threads {
            let _ = t.join();
        }
        if let Some(spool) = &core.spool {
            spool.close();
        }
    }
}

fn snapshot_from(
    cfg: &Config,
    generation: u64,
    dests: Vec<Arc<Destination>>,
    retired: Vec<Arc<Destination>>,
) -> Snapshot {
    let writers = cfg.forward.writer_threads.max(1);
    let threads = match cfg.forward.dispatch {
        Dispatch::Worker => writers + cfg.runtime.workers,
        Dispatch::Writer => writers,
    };
    Snapshot {
        generation,
        dests,
        members: Vec::new(),
        retired,
        ack: cfg.forward.ack,
        deadline_reserve: cfg.forward.deadline_reserve,
        forward_tenant: cfg.forward.forward_tenant,
        delivery_timeout: cfg.forward.delivery_timeout,
        max_inflight_per_writer: (cfg.forward.max_inflight_per_endpoint / threads).max(1),
        dispatch: cfg.forward.dispatch,
        max_idle_conns: cfg.forward.max_idle_conns_per_endpoint,
        idle_conn_timeout: cfg.forward.idle_conn_timeout,
    }
}

fn validate(cfg: &Config) -> Result<(), ForwardError> {
    for (i, e) in cfg.endpoints.iter().enumerate() {
        tls::client_for(e).map_err(|msg| ForwardError::Config {
            key: format!("endpoint[{i}].tls_config"),
            msg,
        })?;
    }
    Ok(())
}

/// Starts the forwarding stage (writer threads) for the configured endpoints.
pub fn start(
    cfg: &Config,
    registry: &prometheus::Registry,
    driver: DriverKind,
) -> Result<Forwarder, ForwardError> {
    validate(cfg)?;
    if cfg.endpoints.is_empty() && cfg.forward.mode != crate::config::ForwardMode::Ring {
        return Ok(Forwarder::discard());
    }
    let metrics =
        ForwardMetrics::register(registry).map_err(|e| ForwardError::Metrics(e.to_string()))?;
    let dests = cfg
        .endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| {
            Destination::new(e.clone(), cfg.forward.queue_max_bytes, &metrics).map_err(|msg| {
                ForwardError::Config {
                    key: format!("endpoint[{i}]"),
                    msg,
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    for e in cfg.endpoints.iter().filter(|e| e.tls.insecure_skip_verify) {
        tracing::warn!(endpoint = %e.url_string, "tls_config.insecure_skip_verify: the server certificate is not verified");
    }
    let spool = match (&cfg.spool, cfg.forward.ack) {
        (Some(s), AckPolicy::Durable) if !cfg.endpoints.is_empty() => {
            let ids = cfg
                .endpoints
                .iter()
                .map(|e| crate::spool::DestId {
                    name: e.name.clone(),
                    url: e.url_string.clone(),
                })
                .collect();
            // A record holds the body and a little of the head.
            let max_record = u32::try_from(cfg.server.max_request_body + SPOOL_RECORD_OVERHEAD)
                .unwrap_or(u32::MAX);
            Some(
                crate::spool::Spool::open(s, ids, max_record, registry)
                    .map_err(|e| ForwardError::Spool(e.to_string()))?,
            )
        }
        _ => None,
    };
    let writers = cfg.forward.writer_threads.max(1);
    let core = Arc::new(Core {
        snapshot: RwLock::new(Arc::new(snapshot_from(cfg, 0, dests, Vec::new()))),
        member_queue_bytes: cfg.forward.queue_max_bytes,
        resolver: resolver::Resolver::system(),
        generation: AtomicU64::new(0),
        writer_slots: (0..writers)
            .map(|_| Arc::new(WakeSlot::default()))
            .collect(),
        next_writer: AtomicUsize::new(0),
        metrics,
        driver,
        shutdown: AtomicBool::new(false),
        shutdown_at: Mutex::new(None),
        spool,
        draining: AtomicBool::new(false),
        threads: Mutex::new(Vec::new()),
    });
    let mut threads = Vec::with_capacity(writers);
    for i in 0..writers {
        let c = core.clone();
        let t = std::thread::Builder::new()
            .name(format!("pyrogate-fwd{i}"))
            .spawn(move || writer::run(i, c))
            .map_err(|e| ForwardError::Thread(e.to_string()))?;
        threads.push(t);
    }
    if let Ok(mut g) = core.threads.lock() {
        *g = threads;
    }
    Ok(Forwarder { core: Some(core) })
}

/// Deliveries still running on this thread (a draining worker waits for them).
pub fn local_deliveries() -> usize {
    local::Local::current().active()
}
