//! `ack = "durable"`: the forwarding stage on top of the spool (docs/spool.md §3).
//!
//! A request is appended to its worker's log and answered once its group commit is on
//! disk. Committed records go straight to the destinations that are caught up (in memory,
//! within their queue budget); a destination that fell behind (down, slow, budget spent)
//! reads its backlog from disk on the writer threads, in log order. A delivery of a
//! spooled record retries until it is delivered, refused for good, older than
//! `spool.max_age`, or the gateway shuts down (then it stays in the spool).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::ack::{AckSink, Delivery};
use super::destination::{Destination, Job, Spooled};
use super::envelope::{Envelope, Kind, Outcome};
use super::local::Local;
use super::{Core, Snapshot, delivery};
use crate::config::Dispatch;
use crate::spool::commit::Committer;
use crate::spool::log::Log;
use crate::spool::{Place, Spool, record};

/// Seconds a client refused by a full spool is asked to wait (`Retry-After`): long enough
/// for a recovering destination to drain a little.
const FULL_RETRY_AFTER_SECS: u32 = 5;
/// Most bytes read from disk per destination and refill, so one backlog cannot keep a
/// writer thread from the others.
const REFILL_BYTES: u64 = 4 << 20;

type Commit = Committer<Arc<Envelope>>;

thread_local! {
    /// This worker's group commit, per forwarding core (tests run several in a process).
    static COMMITTER: RefCell<Option<(usize, Rc<Commit>)>> = const { RefCell::new(None) };
}

fn kind_number(k: Kind) -> u8 {
    match k {
        Kind::Push => 0,
        Kind::Ingest => 1,
        Kind::Otlp => 2,
    }
}

fn kind_of(n: u8) -> Option<Kind> {
    match n {
        0 => Some(Kind::Push),
        1 => Some(Kind::Ingest),
        2 => Some(Kind::Otlp),
        _ => None,
    }
}

/// This thread's committer, created on first use.
fn committer(core: &Arc<Core>, spool: &Arc<Spool>) -> Result<Rc<Commit>, String> {
    let me = Arc::as_ptr(core) as usize;
    if let Some(c) = COMMITTER.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|(owner, _)| *owner == me)
            .map(|(_, c)| c.clone())
    }) {
        return Ok(c);
    }
    let log = spool.claim_log().map_err(|e| e.to_string())?;
    let on_uring = core.driver == crate::runtime::DriverKind::IoUring;
    let uring = match spool.cfg.io {
        crate::config::spool::SpoolIo::Thread => false,
        crate::config::spool::SpoolIo::Auto => on_uring,
        crate::config::spool::SpoolIo::Uring => {
            if !on_uring {
                crate::util::lograte::warn_limited("spool-io", |_| {
                    tracing::warn!(
                        "spool.io = \"uring\" needs the io_uring driver; the epoll driver uses a spool thread"
                    );
                });
            }
            on_uring
        }
    };
    let c2 = core.clone();
    let c = Committer::new(
        log,
        spool.cfg.segment_bytes,
        spool.cfg.fsync,
        spool.cfg.fsync_interval,
        uring,
        spool.metrics.clone(),
        Box::new(move |log, items| dispatch(&c2, log, items)),
    )
    .map_err(|e| e.to_string())?;
    COMMITTER.with(|slot| *slot.borrow_mut() = Some((me, c.clone())));
    Ok(c)
}

/// Appends `env` to this worker's log and answers once it is on disk.
pub async fn forward(core: &Arc<Core>, spool: &Arc<Spool>, env: Envelope) -> Outcome {
    let len = record::encoded_len(
        &env.path_and_query,
        &env.headers,
        env.tenant.as_ref(),
        env.body_len,
    ) as u64;
    if spool.would_overflow(len) {
        spool.metrics.rejected.with_label_values(&["full"]).inc();
        return Outcome::Overloaded {
            retry_after_secs: FULL_RETRY_AFTER_SECS,
            spool: true,
        };
    }
    let c = match committer(core, spool) {
        Ok(c) => c,
        Err(e) => return write_failed(spool, &e),
    };
    let env = Arc::new(env);
    let e2 = env.clone();
    let done = c.append(env, move |buf, seq, ms| {
        record::encode(
            buf,
            seq,
            ms,
            kind_number(e2.kind),
            &e2.path_and_query,
            &e2.headers,
            e2.tenant.as_ref(),
            e2.profiles,
            e2.profile_bytes,
            &e2.body,
        )
    });
    let done = match done {
        Ok(d) => d,
        Err(e) => return write_failed(spool, &e.to_string()),
    };
    match done.wait().await {
        Ok(()) => Outcome::Accepted,
        Err(e) => write_failed(spool, &e),
    }
}

fn write_failed(spool: &Spool, e: &str) -> Outcome {
    spool
        .metrics
        .rejected
        .with_label_values(&["write_error"])
        .inc();
    Outcome::Unavailable {
        last_status: None,
        message: format!("pyrogate: spool write failed: {e}"),
    }
}

/// Reports a spooled delivery's end to its destination's cursor.
struct SpoolAck {
    expires: Instant,
    log: Arc<Log>,
    dest: usize,
    seq: u64,
    spool: Arc<Spool>,
    url: String,
}

impl AckSink for SpoolAck {
    fn report(&self, d: Delivery) {
        match d {
            Delivery::Ok | Delivery::Failed(Outcome::Rejected { .. }) => {}
            // A spooled delivery gives up only when the record expired or at shutdown,
            // where the record stays in the spool for the next run.
            Delivery::Failed(_) if Instant::now() >= self.expires => {
                self.spool
                    .metrics
                    .expired
                    .with_label_values(&[&self.url])
                    .inc();
            }
            Delivery::Failed(_) => return,
        }
        if let Some(c) = self.log.dests.get(self.dest) {
            c.complete(self.seq);
        }
    }
}

fn job(
    spool: &Arc<Spool>,
    log: &Arc<Log>,
    i: usize,
    d: &Destination,
    p: &Place,
    env: Arc<Envelope>,
    snap: &Snapshot,
) -> Job {
    let reserved = env.body_len as u64;
    let created = std::time::UNIX_EPOCH + std::time::Duration::from_millis(p.unix_ms);
    let age = std::time::SystemTime::now()
        .duration_since(created)
        .unwrap_or_default();
    let expires = Instant::now() + spool.cfg.max_age.saturating_sub(age);
    Job {
        env,
        ack: Some(Arc::new(SpoolAck {
            expires,
            log: log.clone(),
            dest: i,
            seq: p.seq,
            spool: spool.clone(),
            url: d.cfg.url_string.clone(),
        })),
        deadline: (Instant::now() + snap.delivery_timeout).min(expires),
        caller_waiting: false,
        reserved,
        spooled: Some(Spooled { expires }),
    }
}

fn start(
    core: &Arc<Core>,
    snap: &Snapshot,
    local: Option<&Rc<Local>>,
    d: &Arc<Destination>,
    job: Job,
) {
    match local {
        Some(l) if l.inflight(d) < snap.max_inflight_per_writer => {
            delivery::spawn(l, job, d.clone(), core.clone());
        }
        _ => {
            d.push(job);
            core.wake_writer();
        }
    }
}

/// After a group commit: each record goes to every destination that is caught up and
/// has queue budget; the others will read it from disk.
fn dispatch(core: &Arc<Core>, log: &Arc<Log>, items: Vec<(Place, Arc<Envelope>)>) {
    let Some(spool) = core.spool.clone() else {
        return;
    };
    let snap = core.snapshot();
    let local = (snap.dispatch == Dispatch::Worker).then(Local::current);
    let mut behind = false;
    for (p, env) in items {
        for (i, d) in snap.dests.iter().enumerate() {
            let Some(cursor) = log.dests.get(i) else {
                continue;
            };
            let bytes = env.body_len as u64;
            if !d.try_reserve(bytes) {
                behind = true;
                continue;
            }
            if !cursor.claim_if_next(&p) {
                d.release(bytes);
                behind = true;
                continue;
            }
            let j = job(&spool, log, i, d, &p, env.clone(), &snap);
            start(core, &snap, local.as_ref(), d, j);
        }
    }
    if behind {
        for s in &core.writer_slots {
            s.wake();
        }
    }
}

/// Whether some destination has a backlog on disk and room in its queue to take it.
pub fn has_backlog(spool: &Spool, snap: &Snapshot) -> bool {
    let logs = spool.logs();
    snap.dests
        .iter()
        .enumerate()
        .any(|(i, d)| d.queued_bytes() < d.max_bytes / 2 && logs.iter().any(|l| l.has_backlog(i)))
}

/// On a writer thread: reads the backlog of each destination with room in its queue from
/// disk and queues it, in log order.
pub fn refill(spool: &Arc<Spool>, snap: &Snapshot) {
    for (i, d) in snap.dests.iter().enumerate() {
        for log in spool.logs() {
            let room = d.max_bytes.saturating_sub(d.queued_bytes());
            if room < d.max_bytes / 2 || !log.has_backlog(i) {
                continue;
            }
            let (from, recs, next) = match log.read_backlog(
                i,
                room.min(REFILL_BYTES),
                spool.max_record,
            ) {
                Ok(r) => r,
                Err(e) => {
                    crate::util::lograte::warn_limited("spool-read", |suppressed| {
                        tracing::error!(suppressed, error = %e, "spool: cannot read the backlog");
                    });
                    continue;
                }
            };
            let places: Vec<Place> = recs.iter().map(|(p, _)| *p).collect();
            let Some(cursor) = log.dests.get(i) else {
                continue;
            };
            if !cursor.claim_read(from, &places, next) {
                continue;
            }
            for (p, bytes) in recs {
                let env = match record::decode(&bytes).ok().and_then(|e| envelope(e, snap)) {
                    Some(env) => env,
                    None => {
                        // Checksummed but unreadable: counted and skipped.
                        spool.metrics.corrupt.inc();
                        cursor.complete(p.seq);
                        continue;
                    }
                };
                d.reserve_force(env.body_len as u64);
                let j = job(spool, &log, i, d, &p, Arc::new(env), snap);
                d.push(j);
            }
        }
    }
}

/// The envelope of a spooled record.
fn envelope(e: record::Entry, snap: &Snapshot) -> Option<Envelope> {
    let now = Instant::now();
    Some(Envelope {
        kind: kind_of(e.kind)?,
        path_and_query: e.path_and_query,
        headers: e.headers,
        body_len: e.body.len(),
        body: vec![e.body],
        tenant: e.tenant.filter(|t: &Bytes| !t.is_empty()),
        deadline: now + snap.delivery_timeout,
        received_at: now,
        profiles: e.profiles,
        profile_bytes: e.profile_bytes,
    })
}
