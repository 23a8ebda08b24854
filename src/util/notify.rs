//! Single-threaded wake-up primitives for one worker's tasks (`Rc`/`Cell`, no atomics).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// A one-shot broadcast: once fired, every current and future waiter completes. Used for
/// "drain has started" so that idle keep-alive connections wake up and close.
#[derive(Default)]
pub struct LocalSignal {
    fired: Cell<bool>,
    waiters: RefCell<Slots>,
}

#[derive(Default)]
struct Slots {
    wakers: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl LocalSignal {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_fired(&self) -> bool {
        self.fired.get()
    }

    pub fn fire(&self) {
        if self.fired.replace(true) {
            return;
        }
        let wakers: Vec<Waker> = {
            let mut w = self.waiters.borrow_mut();
            w.wakers.iter_mut().filter_map(Option::take).collect()
        };
        for w in wakers {
            w.wake();
        }
    }

    /// Waits until [`fire`](Self::fire) has been called.
    pub fn wait(&self) -> SignalWait<'_> {
        SignalWait {
            signal: self,
            slot: None,
        }
    }

    /// Number of registered waiters (for tests).
    pub fn waiter_count(&self) -> usize {
        self.waiters
            .borrow()
            .wakers
            .iter()
            .filter(|w| w.is_some())
            .count()
    }
}

pub struct SignalWait<'a> {
    signal: &'a LocalSignal,
    slot: Option<usize>,
}

impl Future for SignalWait<'_> {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.fired.get() {
            return Poll::Ready(());
        }
        let mut slots = self.signal.waiters.borrow_mut();
        match self.slot {
            Some(i) => match &mut slots.wakers[i] {
                Some(w) if w.will_wake(cx.waker()) => {}
                other => *other = Some(cx.waker().clone()),
            },
            None => {
                let waker = Some(cx.waker().clone());
                let i = match slots.free.pop() {
                    Some(i) => {
                        slots.wakers[i] = waker;
                        i
                    }
                    None => {
                        slots.wakers.push(waker);
                        slots.wakers.len() - 1
                    }
                };
                drop(slots);
                self.slot = Some(i);
            }
        }
        Poll::Pending
    }
}

impl Drop for SignalWait<'_> {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            let mut slots = self.signal.waiters.borrow_mut();
            slots.wakers[i] = None;
            slots.free.push(i);
        }
    }
}

/// Wakes one waiting task; a notification sent with no waiter is remembered (like a binary
/// semaphore), so a release that races with the waiter's registration is never lost.
#[derive(Default)]
pub struct LocalNotify {
    pending: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl LocalNotify {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn notify(&self) {
        self.pending.set(true);
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    pub fn notified(&self) -> Notified<'_> {
        Notified { n: self }
    }
}

pub struct Notified<'a> {
    n: &'a LocalNotify,
}

impl Future for Notified<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.n.pending.replace(false) {
            return Poll::Ready(());
        }
        *self.n.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Lets every other ready task of this thread run once before resuming.
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn signal_wakes_all_and_cleans_up() {
        let s = LocalSignal::new();
        let c = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(c.clone());
        let mut cx = Context::from_waker(&waker);
        let mut a = Box::pin(s.wait());
        let mut b = Box::pin(s.wait());
        assert!(a.as_mut().poll(&mut cx).is_pending());
        assert!(b.as_mut().poll(&mut cx).is_pending());
        assert_eq!(s.waiter_count(), 2);
        drop(b);
        assert_eq!(s.waiter_count(), 1);
        s.fire();
        assert_eq!(c.0.load(Ordering::SeqCst), 1);
        assert!(a.as_mut().poll(&mut cx).is_ready());
        assert!(Box::pin(s.wait()).as_mut().poll(&mut cx).is_ready());
    }

    #[test]
    fn notify_is_remembered() {
        let n = LocalNotify::new();
        let c = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(c.clone());
        let mut cx = Context::from_waker(&waker);
        n.notify();
        assert!(Box::pin(n.notified()).as_mut().poll(&mut cx).is_ready());
        let mut f = Box::pin(n.notified());
        assert!(f.as_mut().poll(&mut cx).is_pending());
        n.notify();
        assert_eq!(c.0.load(Ordering::SeqCst), 1);
        assert!(f.as_mut().poll(&mut cx).is_ready());
    }
}
