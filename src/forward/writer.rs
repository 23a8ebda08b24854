//! Outbound writer threads: each drains the destination queues into deliveries on its own
//! monoio runtime (`dispatch = "writer"`, and always the overflow beyond a worker's
//! in-flight share), up to its share of each destination's in-flight bound, and stops once
//! the queues are empty after shutdown (or at the shutdown deadline).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Core;
use super::delivery;
use super::local::Local;

/// How often an idle writer re-checks for shutdown and prunes idle connections.
const TICK: Duration = Duration::from_millis(500);
/// Submission queue entries of a writer's ring (it carries outbound connections only).
const WRITER_RING_ENTRIES: u32 = 256;

pub fn run(index: usize, core: Arc<Core>) {
    let kind = core.driver;
    let res = crate::runtime::driver::block_on(kind, WRITER_RING_ENTRIES, move || {
        writer_main(index, core)
    });
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
        if let Some(spool) = &core.spool
            && !core.spool_stopping()
            && super::durable::has_backlog(spool, &snap)
        {
            super::durable::refill(spool, &snap);
        }
        let max_inflight = snap.max_inflight_per_writer;
        let mut dispatched = false;
        for d in snap.all() {
            while state.inflight(d) < max_inflight {
                let Ok(job) = d.rx.try_recv() else { break };
                dispatched = true;
                delivery::spawn(&state, job, d.clone(), core.clone());
            }
        }
        if dispatched {
            continue;
        }
        if core.shutdown.load(Ordering::Acquire) {
            let empty = snap.all().all(|d| d.rx.is_empty());
            if (empty && state.active() == 0) || Instant::now() >= core.shutdown_deadline() {
                break;
            }
        }
        state.prune_idle(snap.idle_conn_timeout, || {
            snap.all().map(|d| d.id).collect()
        });
        // Work this thread can start now: a queued job for a destination under its
        // in-flight share. (Counting a full destination's queue as work would spin this
        // loop without ever yielding to the deliveries that free the share.)
        let has_work = || {
            let s = core.snapshot();
            s.all()
                .any(|d| !d.rx.is_empty() && state.inflight(d) < s.max_inflight_per_writer)
                || (!core.spool_stopping()
                    && core
                        .spool
                        .as_ref()
                        .is_some_and(|sp| super::durable::has_backlog(sp, &s)))
        };
        monoio::select! {
            _ = slot.wait_until(has_work) => {},
            _ = state.done.notified() => {},
            _ = tick.tick() => {},
        }
    }
}
