//! Per-thread delivery state, the same on a worker (`dispatch = "worker"`) and on a writer
//! thread: pooled keep-alive connections and in-flight counts per destination.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::destination::Destination;
use crate::http::client::ClientConn;
use crate::http::h2::client::H2Client;
use crate::util::notify::LocalNotify;

/// Pooled connections are pruned at most this often.
pub const PRUNE_EVERY: Duration = Duration::from_millis(500);

/// Idle keep-alive connections to one destination, owned by one thread.
pub struct Pool {
    idle: RefCell<Vec<ClientConn>>,
}

impl Pool {
    /// The most recently used connection that has not been idle too long (workers do not
    /// run the writer's pruning loop, so staleness is also checked here).
    pub fn take(&self, idle_timeout: Duration) -> Option<ClientConn> {
        let mut idle = self.idle.borrow_mut();
        while let Some(c) = idle.pop() {
            if c.last_used.elapsed() < idle_timeout {
                return Some(c);
            }
        }
        None
    }

    /// Keeps `conn` for the next request, unless `max` are already idle.
    pub fn put(&self, conn: ClientConn, max: usize) {
        let mut idle = self.idle.borrow_mut();
        if idle.len() < max {
            idle.push(conn);
        }
    }
}

/// Per-thread delivery state: connection pools and in-flight counts per destination.
pub struct Local {
    pools: RefCell<HashMap<u64, Rc<Pool>>>,
    /// The HTTP/2 connection to each `http2 = true` destination (one carries every
    /// concurrent request of this thread).
    h2: RefCell<HashMap<u64, Rc<H2Client>>>,
    inflight: RefCell<HashMap<u64, usize>>,
    /// Notified whenever a delivery ends on this thread.
    pub done: LocalNotify,
    active: Cell<usize>,
    last_prune: Cell<Option<Instant>>,
}

thread_local! {
    static LOCAL: Rc<Local> = Rc::new(Local::new());
}

fn dest_key(d: &Destination) -> u64 {
    d.id
}

impl Local {
    fn new() -> Self {
        Self {
            pools: RefCell::new(HashMap::new()),
            h2: RefCell::new(HashMap::new()),
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

    /// Deliveries of destination `d` running on this thread.
    pub fn inflight(&self, d: &Destination) -> usize {
        self.inflight
            .borrow()
            .get(&dest_key(d))
            .copied()
            .unwrap_or(0)
    }

    /// Bookkeeping when a delivery of destination `d` starts on this thread.
    pub fn started(&self, d: &Destination) {
        *self.inflight.borrow_mut().entry(dest_key(d)).or_insert(0) += 1;
        self.active.set(self.active.get() + 1);
    }

    /// Bookkeeping when a delivery of destination `d` ends on this thread.
    pub fn finished(&self, d: &Destination) {
        if let Some(n) = self.inflight.borrow_mut().get_mut(&dest_key(d)) {
            *n = n.saturating_sub(1);
        }
        self.active.set(self.active.get() - 1);
        self.done.notify();
    }

    /// The pool of destination `d` on this thread.
    pub fn pool(&self, d: &Destination) -> Rc<Pool> {
        self.pools
            .borrow_mut()
            .entry(dest_key(d))
            .or_insert_with(|| {
                Rc::new(Pool {
                    idle: RefCell::new(Vec::new()),
                })
            })
            .clone()
    }

    /// The open HTTP/2 connection to `d`, if this thread has one.
    pub fn h2(&self, d: &Destination, idle_timeout: Duration) -> Option<Rc<H2Client>> {
        let mut map = self.h2.borrow_mut();
        match map.get(&dest_key(d)) {
            Some(c) if c.is_open() && c.last_used.get().elapsed() < idle_timeout => Some(c.clone()),
            Some(_) => {
                map.remove(&dest_key(d));
                None
            }
            None => None,
        }
    }

    /// Keeps `conn` as the HTTP/2 connection to `d` (replacing a closed one).
    pub fn set_h2(&self, d: &Destination, conn: Rc<H2Client>) {
        self.h2.borrow_mut().insert(dest_key(d), conn);
    }

    /// Forgets the HTTP/2 connection to `d` (it failed).
    pub fn drop_h2(&self, d: &Destination) {
        self.h2.borrow_mut().remove(&dest_key(d));
    }

    /// Closes pooled connections idle longer than `idle_timeout`, and drops the pools of
    /// destinations no longer `live` (removed by a reload); at most once per
    /// [`PRUNE_EVERY`].
    pub fn prune_idle(&self, idle_timeout: Duration, live: impl FnOnce() -> Vec<u64>) {
        let now = Instant::now();
        if self
            .last_prune
            .get()
            .is_some_and(|t| now.duration_since(t) < PRUNE_EVERY)
        {
            return;
        }
        self.last_prune.set(Some(now));
        let live = live();
        self.pools.borrow_mut().retain(|id, _| live.contains(id));
        self.h2.borrow_mut().retain(|id, c| {
            live.contains(id) && c.is_open() && now.duration_since(c.last_used.get()) < idle_timeout
        });
        for pool in self.pools.borrow().values() {
            pool.idle
                .borrow_mut()
                .retain(|c| now.duration_since(c.last_used) < idle_timeout);
        }
    }
}
