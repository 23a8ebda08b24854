//! A coarse, single-threaded timer for long waits that do not need precision (keep-alive
//! idle timeouts).
//!
//! monoio's `Sleep` is ~640 bytes and lives inside the future that awaits it; with 10,000
//! idle keep-alive connections that alone is 6 MB. Here a waiter is a 32-byte future and a
//! slot in a shared table; one ticker task per thread scans the table every [`TICK`] and
//! wakes the expired waiters. The ticker runs only while there are waiters.

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
}

impl CoarseTimer {
    pub fn new() -> Rc<Self> {
        Rc::new(Self::default())
    }

    /// Resolves once `deadline` has passed (up to one [`TICK`] late).
    pub fn sleep_until(self: &Rc<Self>, deadline: Instant) -> CoarseSleep {
        CoarseSleep {
            timer: self.clone(),
            deadline,
            slot: None,
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
    deadline: Instant,
    slot: Option<usize>,
}

impl Future for CoarseSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        let deadline = self.deadline;
        let timer = self.timer.clone();
        {
            let mut t = timer.table.borrow_mut();
            match self.slot {
                Some(i) => {
                    if let Some((_, w)) = &mut t.entries[i]
                        && !w.will_wake(cx.waker())
                    {
                        *w = cx.waker().clone();
                    }
                }
                None => {
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
                    self.slot = Some(i);
                }
            }
        }
        timer.ensure_ticker();
        Poll::Pending
    }
}

impl Drop for CoarseSleep {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
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
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let t = CoarseTimer::new();
            let start = Instant::now();
            let short = t.sleep_until(start + Duration::from_millis(100));
            let long = t.sleep_until(start + Duration::from_secs(60));
            assert!(std::mem::size_of_val(&short) <= 40);
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
}
