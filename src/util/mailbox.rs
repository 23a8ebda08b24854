//! A crossbeam channel whose receiver is an async task on a monoio runtime.
//!
//! Threads meet only at such queues (docs/architecture.md §2.1). The sender wakes the receiving runtime only
//! when its task is actually parked, so a busy receiver costs no cross-thread wake-ups.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};

#[derive(Default)]
pub struct WakeSlot {
    parked: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl WakeSlot {
    /// Wakes the parked receiver, if any.
    pub fn wake(&self) {
        // SeqCst on both sides: the sender's "publish the message, then read `parked`" and
        // the receiver's "set `parked`, then look for a message" form the store-buffer
        // pattern, where release/acquire allows both to read the old value (a lost wake-up
        // that x86's store buffer really produces).
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.parked.swap(false, Ordering::SeqCst) {
            let w = self.waker.lock().ok().and_then(|mut g| g.take());
            if let Some(w) = w {
                w.wake();
            }
        }
    }

    /// Registers the current task; the caller must re-check its condition afterwards.
    pub fn park(&self, cx: &Context<'_>) {
        if let Ok(mut g) = self.waker.lock() {
            match g.as_ref() {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => *g = Some(cx.waker().clone()),
            }
        }
        self.parked.store(true, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
    }

    pub fn unpark(&self) {
        self.parked.store(false, Ordering::Release);
    }

    /// Resolves once `ready()` is true, parking between checks; `ready` is re-checked after
    /// registering so a wake between the check and the park is never lost.
    pub fn wait_until<F: Fn() -> bool>(&self, ready: F) -> WaitUntil<'_, F> {
        WaitUntil { slot: self, ready }
    }
}

pub struct WaitUntil<'a, F> {
    slot: &'a WakeSlot,
    ready: F,
}

impl<F: Fn() -> bool> Future for WaitUntil<'_, F> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if (self.ready)() {
            return Poll::Ready(());
        }
        self.slot.park(cx);
        if (self.ready)() {
            self.slot.unpark();
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

pub struct MailSender<T> {
    /// `None` only while being dropped.
    tx: Option<Sender<T>>,
    slot: Arc<WakeSlot>,
}

impl<T> Clone for MailSender<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            slot: self.slot.clone(),
        }
    }
}

impl<T> Drop for MailSender<T> {
    /// The last sender going away is news too: a parked receiver must wake to see the
    /// channel disconnected, so the sender is dropped first and the receiver then woken.
    fn drop(&mut self) {
        drop(self.tx.take());
        self.slot.wake();
    }
}

impl<T> MailSender<T> {
    /// Sends and wakes the receiver. Fails only when the receiver is gone.
    pub fn send(&self, v: T) -> Result<(), T> {
        let Some(tx) = &self.tx else { return Err(v) };
        tx.send(v).map_err(|e| e.into_inner())?;
        self.slot.wake();
        Ok(())
    }

    /// Sends without blocking (bounded channels); the value comes back when full or closed.
    pub fn try_send(&self, v: T) -> Result<(), T> {
        let Some(tx) = &self.tx else { return Err(v) };
        match tx.try_send(v) {
            Ok(()) => {
                self.slot.wake();
                Ok(())
            }
            Err(TrySendError::Full(v) | TrySendError::Disconnected(v)) => Err(v),
        }
    }

    pub fn len(&self) -> usize {
        self.tx.as_ref().map_or(0, Sender::len)
    }

    pub fn is_empty(&self) -> bool {
        self.tx.as_ref().is_none_or(Sender::is_empty)
    }
}

pub struct Mailbox<T> {
    rx: Receiver<T>,
    slot: Arc<WakeSlot>,
}

/// An unbounded mailbox.
pub fn mailbox<T>() -> (MailSender<T>, Mailbox<T>) {
    wrap(crossbeam_channel::unbounded())
}

/// A mailbox bounded in messages.
pub fn bounded_mailbox<T>(cap: usize) -> (MailSender<T>, Mailbox<T>) {
    wrap(crossbeam_channel::bounded(cap))
}

fn wrap<T>((tx, rx): (Sender<T>, Receiver<T>)) -> (MailSender<T>, Mailbox<T>) {
    let slot = Arc::new(WakeSlot::default());
    (
        MailSender {
            tx: Some(tx),
            slot: slot.clone(),
        },
        Mailbox { rx, slot },
    )
}

impl<T> Mailbox<T> {
    pub fn try_recv(&self) -> Option<T> {
        self.rx.try_recv().ok()
    }

    /// Resolves to the next message, or `None` once every sender is gone.
    pub fn recv(&self) -> Recv<'_, T> {
        Recv { mb: self }
    }
}

pub struct Recv<'a, T> {
    mb: &'a Mailbox<T>,
}

impl<T> Future for Recv<'_, T> {
    type Output = Option<T>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        match self.mb.rx.try_recv() {
            Ok(v) => return Poll::Ready(Some(v)),
            Err(TryRecvError::Disconnected) => return Poll::Ready(None),
            Err(TryRecvError::Empty) => {}
        }
        self.mb.slot.park(cx);
        // Re-check: a message sent between try_recv and park saw no parked flag.
        match self.mb.rx.try_recv() {
            Ok(v) => {
                self.mb.slot.unpark();
                Poll::Ready(Some(v))
            }
            Err(TryRecvError::Disconnected) => {
                self.mb.slot.unpark();
                Poll::Ready(None)
            }
            Err(TryRecvError::Empty) => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cross_thread_delivery_on_monoio() {
        let (tx, mb) = mailbox::<u32>();
        let t = std::thread::spawn(move || {
            let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                .enable_timer()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut got = Vec::new();
                while let Some(v) = mb.recv().await {
                    got.push(v);
                }
                got
            })
        });
        for i in 0..1000 {
            tx.send(i).unwrap();
            if i % 100 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        drop(tx);
        let got = t.join().unwrap();
        assert_eq!(got, (0..1000).collect::<Vec<_>>());
    }

    /// Many short rounds where the receiver parks as often as possible: every message and
    /// the disconnect must wake it (a lost wake-up hangs a round; the round's deadline
    /// turns that into a failure).
    #[test]
    fn no_lost_wakeups_under_contention() {
        for round in 0..200u32 {
            let (tx, mb) = mailbox::<u32>();
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
                    .build()
                    .expect("runtime");
                let n = rt.block_on(async move {
                    let mut n = 0u32;
                    while mb.recv().await.is_some() {
                        n += 1;
                    }
                    n
                });
                let _ = done_tx.send(n);
            });
            for i in 0..50 {
                tx.send(i).expect("receiver alive");
                if (i + round) % 7 == 0 {
                    std::thread::yield_now();
                }
            }
            drop(tx);
            let got = done_rx
                .recv_timeout(std::time::Duration::from_secs(10))
                .unwrap_or_else(|_| panic!("round {round}: receiver never woke"));
            assert_eq!(got, 50);
        }
    }
}
