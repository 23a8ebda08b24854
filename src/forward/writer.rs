//! Deliveries: one task per job, with attempts on pooled keep-alive connections, per-attempt
//! budgets, jittered backoff, `Retry-After`, and the deadline rules that let a caller still
//! retry (the timeout-chain fix).
//!
//! A delivery runs either on the receiving worker's own runtime (`dispatch = "worker"`, the
//! default: no thread hand-off, the worker's own connection pools) or on an outbound writer
//! thread that drains the destination queues (`dispatch = "writer"`, and always for the
//! overflow beyond a worker's in-flight share). Both use the same per-thread [`Local`]
//! state.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::Core;
use super::ack::Delivery;
use super::destination::{Destination, Job};
use super::envelope::{Envelope, Kind, Outcome};
use super::retry::{Attempt, Backoff, classify_error, sleep_for};
use crate::http::client::{ClientConn, ClientError};
use crate::http::response::push_u64;
use crate::util::notify::LocalNotify;

/// An attempt shorter than this is not worth starting.
const MIN_ATTEMPT: Duration = Duration::from_millis(20);
/// Bound on establishing a connection (the attempt budget bounds it further).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often an idle writer re-checks for shutdown and prunes idle connections.
const TICK: Duration = Duration::from_millis(500);

/// Idle keep-alive connections to one destination, owned by one writer thread.
struct Pool {
    idle: RefCell<Vec<ClientConn>>,
}

/// Per-thread delivery state: connection pools and in-flight counts per destination.
pub struct Local {
    pools: RefCell<HashMap<usize, Rc<Pool>>>,
    inflight: RefCell<HashMap<usize, usize>>,
    done: LocalNotify,
    active: Cell<usize>,
    last_prune: Cell<Option<Instant>>,
}

thread_local! {
    static LOCAL: Rc<Local> = Rc::new(Local::new());
}

impl Local {
    fn new() -> Self {
        Self {
            pools: RefCell::new(HashMap::new()),
            inflight: RefCell::new(HashMap::new()),
            done: LocalNotify::new(),
            active: Cell::new(0),
            last_prune: Cell::new(None),
        }
    }

    /// This thread's state.
    pub fn current() -> Rc<Local> {
        LOCAL.with(Rc::clone)
    }

    /// Deliveries running on this thread.
    pub fn active(&self) -> usize {
        self.active.get()
    }

    pub fn inflight(&self, d: &Arc<Destination>) -> usize {
        self.inflight
            .borrow()
            .get(&dest_key(d))
            .copied()
            .unwrap_or(0)
    }

    /// Starts a delivery on this thread's runtime.
    pub fn spawn(self: &Rc<Self>, job: Job, d: Arc<Destination>, core: Arc<Core>) {
        *self.inflight.borrow_mut().entry(dest_key(&d)).or_insert(0) += 1;
        self.active.set(self.active.get() + 1);
        monoio::spawn(deliver(job, d, self.clone(), core));
    }
}

fn dest_key(d: &Arc<Destination>) -> usize {
    Arc::as_ptr(d) as usize
}

pub fn run(index: usize, core: Arc<Core>) {
    let kind = core.driver;
    let entries = 256;
    let res = crate::runtime::driver::block_on(kind, entries, move || writer_main(index, core));
    if let Err(e) = res {
        tracing::error!(writer = index, error = %e, "writer thread could not start its runtime");
    }
}

async fn writer_main(index: usize, core: Arc<Core>) {
    let state = Local::current();
    let slot = core.writer_slots[index].clone();
    let mut tick = monoio::time::interval(TICK);
    loop {
        let snap = core.snapshot();
        let max_inflight = snap.max_inflight_per_writer;
        let mut dispatched = false;
        for d in snap.dests.iter().chain(snap.retired.iter()) {
            while state.inflight(d) < max_inflight {
                let Ok(job) = d.rx.try_recv() else { break };
                dispatched = true;
                state.spawn(job, d.clone(), core.clone());
            }
        }
        if dispatched {
            continue;
        }
        if core.shutdown.load(Ordering::Acquire) {
            let empty = snap
                .dests
                .iter()
                .chain(snap.retired.iter())
                .all(|d| d.rx.is_empty());
            if (empty && state.active.get() == 0) || Instant::now() >= core.shutdown_deadline() {
                break;
            }
        }
        prune_idle(&state, snap.idle_conn_timeout);
        // Work this thread can start now: a queued job for a destination under its
        // in-flight share. (Counting a full destination's queue as work would spin this
        // loop without ever yielding to the deliveries that free the share.)
        let has_work = || {
            let s = core.snapshot();
            s.dests
                .iter()
                .chain(s.retired.iter())
                .any(|d| !d.rx.is_empty() && state.inflight(d) < s.max_inflight_per_writer)
        };
        monoio::select! {
            _ = slot.wait_until(has_work) => {},
            _ = state.done.notified() => {},
            _ = tick.tick() => {},
        }
    }
}

/// Closes pooled connections idle longer than `idle_timeout`; at most once per [`TICK`].
fn prune_idle(state: &Local, idle_timeout: Duration) {
    let now = Instant::now();
    if state
        .last_prune
        .get()
        .is_some_and(|t| now.duration_since(t) < TICK)
    {
        return;
    }
    state.last_prune.set(Some(now));
    for pool in state.pools.borrow().values() {
        pool.idle
            .borrow_mut()
            .retain(|c| now.duration_since(c.last_used) < idle_timeout);
    }
}

async fn deliver(job: Job, d: Arc<Destination>, state: Rc<Local>, core: Arc<Core>) {
    d.m.inflight.inc();
    let started = Instant::now();
    let result = attempts(&job, &d, &state, &core).await;
    let elapsed = started.elapsed().as_secs_f64();
    match job.env.kind {
        Kind::Push => d.m.latency_endpoint.observe(elapsed),
        Kind::Ingest => d.m.ingest_endpoint.observe(elapsed),
    }
    match &result {
        Delivery::Ok => {
            d.m.sent_bytes.inc_by(job.env.profile_bytes);
            d.m.sent_profiles.inc_by(job.env.profiles);
        }
        Delivery::Failed(o) => {
            d.m.dropped_bytes.inc_by(job.env.profile_bytes);
            d.m.dropped_profiles.inc_by(job.env.profiles);
            log_failure(&d, o);
        }
    }
    d.release(job.reserved);
    if let Some(ack) = &job.ack {
        ack.report(result);
    }
    d.m.inflight.dec();
    let key = dest_key(&d);
    if let Some(n) = state.inflight.borrow_mut().get_mut(&key) {
        *n = n.saturating_sub(1);
    }
    state.active.set(state.active.get() - 1);
    state.done.notify();
}

fn log_failure(d: &Destination, o: &Outcome) {
    let msg = match o {
        Outcome::Rejected { message, .. } | Outcome::Unavailable { message, .. } => {
            message.as_str()
        }
        _ => "",
    };
    crate::util::lograte::warn_limited(&d.cfg.url_string, |suppressed| {
        tracing::warn!(endpoint = %d.cfg.url_string, suppressed, error = msg, "failed to forward profile");
    });
}

/// The retry loop of one delivery (docs/alloy-compat.md §9), bounded by the job's deadline.
async fn attempts(job: &Job, d: &Destination, state: &Local, core: &Core) -> Delivery {
    let cfg = &d.cfg;
    let reserve = core.snapshot().deadline_reserve;
    let mut backoff = Backoff::new(cfg.min_backoff, cfg.max_backoff);
    let mut attempt: u32 = 0;
    let mut last_status: Option<u16> = None;
    let mut last_message = String::from("deadline exceeded before the first attempt");
    let verb = job.env.kind.verb();
    loop {
        let now = Instant::now();
        let remaining = job
            .deadline
            .saturating_duration_since(now)
            .saturating_sub(reserve);
        if remaining < MIN_ATTEMPT {
            break;
        }
        attempt += 1;
        let more_allowed = cfg.max_attempts == 0 || attempt < cfg.max_attempts;
        let mut budget = cfg.remote_timeout.min(remaining);
        if job.caller_waiting && more_allowed {
            // Leave half of the caller's remaining budget for a retry: a first attempt that
            // hangs must not eat the whole budget (the timeout chain of docs/timeout-chain.md §2, §6).
            budget = budget.min((remaining / 2).max(MIN_ATTEMPT));
        }
        let t0 = Instant::now();
        let result = send(job, d, state, budget, core).await;
        let took = t0.elapsed().as_secs_f64();
        match job.env.kind {
            Kind::Push => d.m.latency_downstream.observe(took),
            Kind::Ingest => d.m.ingest_downstream.observe(took),
        }
        match result {
            Attempt::Delivered => return Delivery::Ok,
            Attempt::Permanent {
                status,
                code,
                message,
            } => {
                return Delivery::Failed(Outcome::Rejected {
                    status,
                    code,
                    message: format!(
                        "failed to {verb} to endpoint {} ({attempt} retries): {message}",
                        cfg.url_string
                    ),
                });
            }
            Attempt::Retryable {
                status,
                retry_after,
                message,
            } => {
                if status.is_some() {
                    last_status = status;
                }
                last_message = message;
                if !more_allowed {
                    break;
                }
                let sleep = sleep_for(
                    backoff.next_sleep(),
                    retry_after,
                    cfg.min_backoff,
                    cfg.max_backoff,
                );
                let next_start = Instant::now() + sleep + MIN_ATTEMPT + reserve;
                if next_start >= job.deadline || core.shutdown_deadline_passed() {
                    break;
                }
                d.m.retries.inc();
                monoio::time::sleep(sleep).await;
            }
        }
    }
    Delivery::Failed(Outcome::Unavailable {
        last_status,
        message: format!(
            "failed to {verb} to endpoint {} ({attempt} retries): {last_message}",
            cfg.url_string
        ),
    })
}

/// One attempt: a pooled connection (or a new one), one request. A reused connection that
/// turns out to be dead is replaced once, at no cost to the attempt count.
async fn send(job: &Job, d: &Destination, state: &Local, budget: Duration, core: &Core) -> Attempt {
    let deadline = Instant::now() + budget;
    let key = d as *const Destination as usize;
    let pool = state
        .pools
        .borrow_mut()
        .entry(key)
        .or_insert_with(|| {
            Rc::new(Pool {
                idle: RefCell::new(Vec::new()),
            })
        })
        .clone();
    let head = build_head(&job.env, d, budget, core);
    for fresh_try in 0..2 {
        let pooled = if fresh_try == 0 {
            take_pooled(&pool, core.snapshot().idle_conn_timeout)
        } else {
            None
        };
        let reused = pooled.is_some();
        let mut conn = match pooled {
            Some(c) => c,
            None => match connect(d, deadline, core).await {
                Ok(c) => c,
                Err(e) => return classify_error(&e),
            },
        };
        match conn.request(head.clone(), &job.env.body, deadline).await {
            Ok(resp) => {
                let verdict = job.env.kind.classify(&resp, d.cfg.retry_on_http_429);
                if resp.reusable && pool.idle.borrow().len() < core.snapshot().max_idle_conns {
                    pool.idle.borrow_mut().push(conn);
                }
                return verdict;
            }
            Err(e) if reused && e.is_stale_connection() => continue,
            Err(e) => return classify_error(&e),
        }
    }
    classify_error(&ClientError::Closed("connection closed twice".into()))
}

/// The most recently used pooled connection that has not been idle too long (workers do
/// not run the writer's pruning loop, so staleness is also checked here).
fn take_pooled(pool: &Pool, idle_timeout: Duration) -> Option<ClientConn> {
    let mut idle = pool.idle.borrow_mut();
    while let Some(c) = idle.pop() {
        if c.last_used.elapsed() < idle_timeout {
            return Some(c);
        }
    }
    None
}

async fn connect(
    d: &Destination,
    deadline: Instant,
    core: &Core,
) -> Result<ClientConn, ClientError> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    // The lookup runs on the resolver thread; this task only waits (bounded by the attempt).
    let lookup = core.resolver.resolve(&d.cfg.url.host, d.cfg.url.port);
    let addrs = match monoio::time::timeout(remaining, lookup).await {
        Err(_) => return Err(ClientError::Timeout),
        Ok(Err(m)) => {
            return Err(ClientError::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                m,
            )));
        }
        Ok(Ok(a)) => a,
    };
    let mut last = None;
    for addr in addrs {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let tls = d.tls.as_ref().map(|t| (&t.connector, &t.server_name));
        match ClientConn::connect(addr, remaining.min(CONNECT_TIMEOUT), tls).await {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(ClientError::Timeout))
}

/// The request head for one attempt. Alloy's header order on `/ingest`: endpoint headers,
/// then the caller's `Content-Type` values (the first replacing a configured one).
fn build_head(env: &Envelope, d: &Destination, budget: Duration, core: &Core) -> Bytes {
    let mut h: Vec<u8> = Vec::with_capacity(512 + env.path_and_query.len());
    h.extend_from_slice(b"POST ");
    h.extend_from_slice(d.cfg.url.base_path.as_bytes());
    h.extend_from_slice(env.path_and_query.as_bytes());
    h.extend_from_slice(b" HTTP/1.1\r\n");
    h.extend_from_slice(&d.static_headers);
    h.extend_from_slice(b"Content-Length: ");
    push_u64(&mut h, env.body_len as u64);
    h.extend_from_slice(b"\r\n");
    let mut has_ct = false;
    for (name, value) in &env.headers {
        has_ct |= name.eq_ignore_ascii_case("content-type");
        h.extend_from_slice(name.as_bytes());
        h.extend_from_slice(b": ");
        h.extend_from_slice(value);
        h.extend_from_slice(b"\r\n");
    }
    if !has_ct && let Some(ct) = &d.custom_content_type {
        h.extend_from_slice(b"Content-Type: ");
        h.extend_from_slice(ct.as_bytes());
        h.extend_from_slice(b"\r\n");
    }
    env.kind.write_attempt_headers(&mut h, budget);
    if d.cfg.tenant_id.is_none()
        && core.snapshot().forward_tenant
        && let Some(t) = &env.tenant
    {
        h.extend_from_slice(b"X-Scope-OrgID: ");
        h.extend_from_slice(t);
        h.extend_from_slice(b"\r\n");
    }
    h.extend_from_slice(b"\r\n");
    Bytes::from(h)
}
