//! A coarse, single-threaded timer for long waits that do not need precision (keep-alive
//! idle timeouts).
//!
//! monoio's `Sleep` is ~640 bytes and lives inside the future that awaits it; with 10,000
//! idle keep-alive connections that alone is 6 MB. Here a waiter is a 24-byte future and a
//! slot in a shared table; one ticker task per thread scans the table every [`TICK`] and
//! wakes the expired waiters. The ticker runs only while there are waiters.
//!
//! [`CoarseTimer::cut_all`] ends every wait at once, now and later: a draining worker closes
//! its idle connections through it, so an idle wait needs no drain signal of its own.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Resolution of the timer: a wait ends between its deadline and one tick later.
pub const TICK: Duration = Duration::from_millis(250);

#[derive(Default)]
struct Table {
    entries: Vec<Option<(Instant, Waker)>>,
    free: Vec<usize>,
    live: usize,
}

#[derive(Default)]
pub struct CoarseTimer {
    table: RefCell<Table>,
    ticking: Cell<bool>,
    /// Set by [`CoarseTimer::cut_all`]: every wait is over.
    cut: Cell<bool>,
}

impl CoarseTimer {
    pub fn new() -> Rc<Self> {
        Rc::new(Self::default())
    }

    /// Resolves once `deadline` has passed (up to one [`TICK`] late).
    pub fn sleep_until(self: &Rc<Self>, deadline: Instant) -> CoarseSleep {
        CoarseSleep {
            timer: self.clone(),
            state: SleepState::New(deadline),
        }
    }

    /// Ends every wait, those registered and those to come (a worker that drains).
    pub fn cut_all(&self) {
        self.cut.set(true);
        let wakers: Vec<Waker> = self
            .table
            .borrow()
            .entries
            .iter()
            .flatten()
            .map(|(_, w)| w.clone())
            .collect();
        for w in wakers {
            w.wake();
        }
    }

    /// Number of registered waiters (for tests).
    pub fn waiters(&self) -> usize {
        self.table.borrow().live
    }

    fn ensure_ticker(self: &Rc<Self>) {
        if self.ticking.replace(true) {
            return;
        }
        let me = self.clone();
        monoio::spawn(async move {
            loop {
                monoio::time::sleep(TICK).await;
                let now = Instant::now();
                let expired: Vec<Waker> = {
                    let mut t = me.table.borrow_mut();
                    let mut v = Vec::new();
                    for e in t.entries.iter_mut() {
                        if let Some((d, w)) = e
                            && *d <= now
                        {
                            v.push(w.clone());
                        }
                    }
                    v
                };
                for w in expired {
                    w.wake();
                }
                if me.table.borrow().live == 0 {
                    me.ticking.set(false);
                    return;
                }
            }
        });
    }
}

pub struct CoarseSleep {
    timer: Rc<CoarseTimer>,
    state: SleepState,
}

/// Before the first poll the deadline is here; once registered it is in the table and only
/// the slot is kept. 16 B either way, where a deadline and an `Option<usize>` took 32: every
/// idle keep-alive connection holds one (docs/performance.md §6).
#[derive(Clone, Copy)]
enum SleepState {
    New(Instant),
    Waiting(u32),
}

impl Future for CoarseSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.timer.cut.get() {
            return Poll::Ready(());
        }
        let timer = self.timer.clone();
        {
            let mut t = timer.table.borrow_mut();
            match self.state {
                SleepState::Waiting(i) => match &mut t.entries[i as usize] {
                    Some((deadline, w)) => {
                        if Instant::now() >= *deadline {
                            return Poll::Ready(());
                        }
                        if !w.will_wake(cx.waker()) {
                            *w = cx.waker().clone();
                        }
                    }
                    // Not reachable: the slot is ours until we drop.
                    None => return Poll::Ready(()),
                },
                SleepState::New(deadline) => {
                    if Instant::now() >= deadline {
                        return Poll::Ready(());
                    }
                    let entry = Some((deadline, cx.waker().clone()));
                    let i = match t.free.pop() {
                        Some(i) => {
                            t.entries[i] = entry;
                            i
                        }
                        None => {
                            t.entries.push(entry);
                            t.entries.len() - 1
                        }
                    };
                    t.live += 1;
                    // Fewer than 2^32 waiters: each is a task of at least a few hundred bytes.
                    self.state = SleepState::Waiting(i as u32);
                }
            }
        }
        timer.ensure_ticker();
        Poll::Pending
    }
}

impl Drop for CoarseSleep {
    fn drop(&mut self) {
        if let SleepState::Waiting(i) = self.state {
            let i = i as usize;
            let mut t = self.timer.table.borrow_mut();
            t.entries[i] = None;
            t.free.push(i);
            t.live -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_after_the_deadline_and_cleans_up() {
        crate::util::test_runtime().block_on(async {
            let t = CoarseTimer::new();
            let start = Instant::now();
            let short = t.sleep_until(start + Duration::from_millis(100));
            let long = t.sleep_until(start + Duration::from_secs(60));
            assert!(std::mem::size_of_val(&short) <= 24);
            let r = monoio::select! {
                _ = short => "short",
                _ = long => "long",
            };
            let took = start.elapsed();
            assert_eq!(r, "short");
            assert!(took >= Duration::from_millis(100), "{took:?}");
            assert!(took < Duration::from_millis(100) + TICK * 2, "{took:?}");
            assert_eq!(t.waiters(), 0, "dropped waiters leave the table");
            // The ticker stops when nobody waits, and restarts for a new waiter.
            monoio::time::sleep(TICK * 2).await;
            assert!(!t.ticking.get());
            t.sleep_until(Instant::now() + Duration::from_millis(10))
                .await;
        });
    }

    #[test]
    fn cut_all_ends_every_wait_now_and_later() {
        crate::util::test_runtime().block_on(async {
            let t = CoarseTimer::new();
            let far = Instant::now() + Duration::from_secs(60);
            let waiting = t.sleep_until(far);
            let cutter = t.clone();
            let start = Instant::now();
            monoio::spawn(async move {
                monoio::time::sleep(Duration::from_millis(50)).await;
                cutter.cut_all();
            });
            waiting.await;
            assert!(start.elapsed() < Duration::from_secs(5));
            assert_eq!(t.waiters(), 0);
            // A wait that starts after the cut ends at once.
            t.sleep_until(far).await;
        });
    }
}
