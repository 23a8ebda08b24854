//! One timer for every step of an operation that has a single deadline (send a request,
//! read its response), instead of a `monoio::time::timeout` around each step.
//!
//! monoio's timer entry is 512 bytes with 128-byte alignment (it pads its fields to cache
//! lines for a multi-threaded runtime it never shares). Each `timeout` puts one inline in
//! the awaiting future, and each nesting level rounds up to 128 bytes: the outbound request
//! future was 1.6 KiB, and the delivery task holding it is copied whole into its task cell
//! on every spawn. Here the operation boxes one `Sleep` for all its steps (one allocation
//! and one timer-wheel registration, instead of one registration per step), and each step
//! is its own future plus a pointer. Dropping the `Deadline` removes the timer entry, so it
//! holds no waker once the operation ends.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use monoio::time::Sleep;

/// The deadline of one operation, shared by its steps.
pub struct Deadline {
    at: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    /// A deadline at `at`. The timer is armed on the first step that has to wait.
    pub fn new(at: Instant) -> Self {
        Self { at, sleep: None }
    }

    /// Runs `step` until it completes (`Some`) or the deadline passes (`None`). A step that
    /// is ready when first polled completes even past the deadline, as with
    /// `monoio::time::timeout`.
    pub fn run<F: Future>(&mut self, step: F) -> Run<'_, F> {
        Run {
            deadline: self,
            step,
        }
    }
}

/// A step of an operation under its [`Deadline`]. A named future rather than an `async fn`:
/// an `async fn` would keep its `step` argument twice, as an argument and as the pinned local
/// it was moved into.
pub struct Run<'a, F> {
    deadline: &'a mut Deadline,
    step: F,
}

impl<F: Future> Future for Run<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `step` is pinned structurally: it is never moved out of `self`, and `Run`
        // implements neither `Drop` nor `Unpin` by hand. `deadline` is a plain `&mut`, which
        // is not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        let step = unsafe { Pin::new_unchecked(&mut this.step) };
        if let Poll::Ready(v) = step.poll(cx) {
            return Poll::Ready(Some(v));
        }
        let at = this.deadline.at;
        let sleep = this
            .deadline
            .sleep
            .get_or_insert_with(|| Box::pin(monoio::time::sleep_until(at.into())));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn steps_share_one_deadline() {
        crate::util::test_runtime().block_on(async {
            let start = Instant::now();
            let mut d = Deadline::new(start + Duration::from_millis(150));
            // A quick step completes and leaves the rest of the budget to the next one.
            let quick = d.run(monoio::time::sleep(Duration::from_millis(50))).await;
            assert_eq!(quick, Some(()));
            // This one would take 200 ms: it is cut at the shared deadline (~100 ms left).
            let slow = d.run(monoio::time::sleep(Duration::from_millis(200))).await;
            assert_eq!(slow, None);
            let took = start.elapsed();
            assert!(took >= Duration::from_millis(150), "{took:?}");
            assert!(took < Duration::from_millis(240), "{took:?}");
        });
    }

    #[test]
    fn a_ready_step_completes_past_the_deadline() {
        crate::util::test_runtime().block_on(async {
            let mut d = Deadline::new(Instant::now());
            assert_eq!(d.run(async { 7 }).await, Some(7));
            assert_eq!(d.run(std::future::pending::<()>()).await, None);
        });
    }

    #[test]
    fn a_step_is_its_own_size_plus_a_little() {
        let mut d = Deadline::new(Instant::now());
        let step = d.run(async {});
        assert!(
            std::mem::size_of_val(&step) <= 64,
            "{}",
            std::mem::size_of_val(&step)
        );
        assert!(std::mem::align_of_val(&step) <= 16);
    }
}
