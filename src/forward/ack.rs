//! Ack tracking: destinations report their delivery result (from writer threads); the worker
//! that holds the client's request waits for the decision its ack policy asks for.
//!
//! The decision is made as soon as it is known: under `all` the first permanent failure
//! answers the client at once (the other deliveries go on in the background), under
//! `quorum` the client is answered at `floor(n/2)+1` successes.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use super::envelope::Outcome;
use crate::protocol::otlp::PartialSuccess;

/// What one destination's delivery ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Ok,
    Failed(Outcome),
}

struct State {
    need: usize,
    max_failures: usize,
    ok: usize,
    failed: usize,
    first_failure: Option<Outcome>,
    decided: Option<Outcome>,
    waker: Option<Waker>,
    /// OTLP: the `partial_success` destinations answered, merged.
    partial: Option<PartialSuccess>,
}

pub struct Ack {
    state: Mutex<State>,
}

/// Where a delivery reports its result: an [`Ack`] for fan-out, or a routing stage's own
/// tracker (ring mode's per-series quorum).
pub trait AckSink: Send + Sync {
    fn report(&self, d: Delivery);

    /// An OTLP destination accepted the request but refused some of its profiles
    /// (`partial_success`); called before that destination's [`AckSink::report`].
    fn partial(&self, _endpoint: &str, _p: PartialSuccess) {}
}

impl AckSink for Ack {
    fn report(&self, d: Delivery) {
        Ack::report(self, d);
    }

    fn partial(&self, endpoint: &str, mut p: PartialSuccess) {
        if !p.error_message.is_empty() {
            p.error_message = format!("{endpoint}: {}", p.error_message);
        }
        if let Ok(mut s) = self.state.lock() {
            match &mut s.partial {
                Some(have) => have.merge(p),
                None => s.partial = Some(p),
            }
        }
    }
}

impl Ack {
    /// `need` successes out of `n` destinations decide success.
    pub fn new(n: usize, need: usize) -> Arc<Self> {
        let need = need.clamp(1, n.max(1));
        Arc::new(Self {
            state: Mutex::new(State {
                need,
                max_failures: n.saturating_sub(need),
                ok: 0,
                failed: 0,
                first_failure: None,
                decided: None,
                waker: None,
                partial: None,
            }),
        })
    }

    /// Records one destination's result; wakes the waiter when this decides the outcome.
    pub fn report(&self, d: Delivery) {
        let waker = {
            let Ok(mut s) = self.state.lock() else { return };
            match d {
                Delivery::Ok => s.ok += 1,
                Delivery::Failed(o) => {
                    s.failed += 1;
                    if s.first_failure.is_none() {
                        s.first_failure = Some(o);
                    }
                }
            }
            if s.decided.is_some() {
                return;
            }
            if s.ok >= s.need {
                s.decided = Some(Outcome::Accepted);
            } else if s.failed > s.max_failures {
                s.decided = s.first_failure.clone();
            } else {
                return;
            }
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub fn wait(self: &Arc<Self>) -> AckWait {
        AckWait { ack: self.clone() }
    }

    /// The merged `partial_success` of the destinations that answered so far.
    pub fn partial_success(&self) -> Option<PartialSuccess> {
        self.state.lock().ok().and_then(|s| s.partial.clone())
    }

    /// The decision, if already made.
    pub fn decided(&self) -> Option<Outcome> {
        self.state.lock().ok().and_then(|s| s.decided.clone())
    }
}

pub struct AckWait {
    ack: Arc<Ack>,
}

impl Future for AckWait {
    type Output = Outcome;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let Ok(mut s) = self.ack.state.lock() else {
            return Poll::Ready(Outcome::Unavailable {
                last_status: None,
                message: "internal error: ack state poisoned".into(),
            });
        };
        if let Some(o) = &s.decided {
            return Poll::Ready(o.clone());
        }
        match &s.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => s.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(status: u16) -> Delivery {
        Delivery::Failed(Outcome::Rejected {
            status,
            code: None,
            message: String::new(),
        })
    }

    #[test]
    fn all_needs_every_destination() {
        let a = Ack::new(3, 3);
        a.report(Delivery::Ok);
        a.report(Delivery::Ok);
        assert_eq!(a.decided(), None);
        a.report(Delivery::Ok);
        assert_eq!(a.decided(), Some(Outcome::Accepted));
    }

    #[test]
    fn all_fails_fast_with_the_first_failure() {
        let a = Ack::new(3, 3);
        a.report(fail(400));
        assert!(matches!(
            a.decided(),
            Some(Outcome::Rejected { status: 400, .. })
        ));
        a.report(fail(500));
        assert!(matches!(
            a.decided(),
            Some(Outcome::Rejected { status: 400, .. })
        ));
    }

    #[test]
    fn partial_successes_are_merged_with_their_endpoint() {
        let a = Ack::new(2, 2);
        assert_eq!(a.partial_success(), None);
        AckSink::partial(
            &*a,
            "http://a",
            PartialSuccess {
                rejected_profiles: 1,
                error_message: "old".into(),
            },
        );
        AckSink::partial(
            &*a,
            "http://b",
            PartialSuccess {
                rejected_profiles: 2,
                error_message: String::new(),
            },
        );
        let p = a.partial_success().expect("set");
        assert_eq!(p.rejected_profiles, 2);
        assert_eq!(p.error_message, "http://a: old");
    }

    #[test]
    fn quorum_tolerates_a_minority() {
        let a = Ack::new(3, 2);
        a.report(fail(503));
        assert_eq!(a.decided(), None);
        a.report(Delivery::Ok);
        assert_eq!(a.decided(), None);
        a.report(Delivery::Ok);
        assert_eq!(a.decided(), Some(Outcome::Accepted));
        let b = Ack::new(3, 2);
        b.report(fail(503));
        b.report(fail(400));
        assert!(matches!(
            b.decided(),
            Some(Outcome::Rejected { status: 503, .. })
        ));
    }
}
