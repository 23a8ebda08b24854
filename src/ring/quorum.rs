//! Per-series quorum over per-destination requests (docs/ring.md §3.3): each destination's
//! result counts for every series it carries; a series succeeds at `min_success` acks and
//! fails once more than `max_failures` of its replicas failed; the request is decided when
//! every series succeeded or the first series failed. Later results only count as
//! background deliveries.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use prometheus::IntCounter;

use crate::forward::Outcome;
use crate::forward::ack::{AckSink, Delivery};
use crate::protocol::connect::Code;

struct SeriesState {
    need: u32,
    max_failures: u32,
    replicas: u32,
    ok: u32,
    failed: u32,
    done: bool,
}

struct State {
    series: Vec<SeriesState>,
    /// The series each destination carries.
    carries: Vec<Vec<u32>>,
    pending: usize,
    decided: Option<Outcome>,
    waker: Option<Waker>,
}

pub struct Tracker {
    state: Mutex<State>,
    background: IntCounter,
    quorum_failures: IntCounter,
}

/// One series' replicas: how many there are and how many may fail.
#[derive(Debug, Clone, Copy)]
pub struct Quorum {
    pub replicas: u32,
    pub max_failures: u32,
}

impl Tracker {
    /// A tracker for `series` quorums, destination `d` carrying `carries[d]`.
    pub fn new(
        series: &[Quorum],
        carries: Vec<Vec<u32>>,
        background: IntCounter,
        quorum_failures: IntCounter,
    ) -> Arc<Self> {
        let series: Vec<SeriesState> = series
            .iter()
            .map(|q| SeriesState {
                need: q.replicas.saturating_sub(q.max_failures).max(1),
                max_failures: q.max_failures,
                replicas: q.replicas,
                ok: 0,
                failed: 0,
                done: false,
            })
            .collect();
        let pending = series.len();
        Arc::new(Self {
            state: Mutex::new(State {
                decided: (pending == 0).then_some(Outcome::Accepted),
                series,
                carries,
                pending,
                waker: None,
            }),
            background,
            quorum_failures,
        })
    }

    /// Records destination `dest`'s result.
    pub fn report(&self, dest: usize, d: &Delivery) {
        let waker = {
            let Ok(mut s) = self.state.lock() else { return };
            if s.decided.is_some() {
                self.background.inc();
                return;
            }
            let State {
                series,
                carries,
                pending,
                ..
            } = &mut *s;
            let mut failure: Option<Outcome> = None;
            for i in carries.get(dest).map_or(&[][..], Vec::as_slice) {
                let Some(st) = series.get_mut(*i as usize) else {
                    continue;
                };
                if st.done {
                    continue;
                }
                match d {
                    Delivery::Ok => {
                        st.ok += 1;
                        if st.ok >= st.need {
                            st.done = true;
                            *pending -= 1;
                        }
                    }
                    Delivery::Failed(o) => {
                        st.failed += 1;
                        if st.failed > st.max_failures && failure.is_none() {
                            failure = Some(quorum_failure(st.need, st.replicas - st.failed, o));
                        }
                    }
                }
            }
            if let Some(f) = failure {
                self.quorum_failures.inc();
                s.decided = Some(f);
            } else if s.pending == 0 {
                s.decided = Some(Outcome::Accepted);
            } else {
                return;
            }
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// Resolves with the decision.
    pub fn wait(self: &Arc<Self>) -> TrackerWait {
        TrackerWait {
            tracker: self.clone(),
        }
    }

    pub fn decided(&self) -> Option<Outcome> {
        self.state.lock().ok().and_then(|s| s.decided.clone())
    }
}

/// Pyroscope's quorum message with the failing destination's code.
fn quorum_failure(need: u32, left: u32, o: &Outcome) -> Outcome {
    let code = match o {
        Outcome::Rejected { status, code, .. } => {
            code.unwrap_or_else(|| Code::for_downstream_status(*status))
        }
        Outcome::Overloaded { .. } => Code::ResourceExhausted,
        Outcome::Unavailable { .. } | Outcome::Accepted => Code::Unavailable,
    };
    Outcome::Rejected {
        status: code.http_status(),
        code: Some(code),
        message: format!("at least {need} live replicas required, could only find {left}"),
    }
}

/// A destination's view of a tracker (what its delivery reports to).
pub struct DestSink {
    pub tracker: Arc<Tracker>,
    pub dest: usize,
    pub sent: IntCounter,
    pub failed: IntCounter,
}

impl AckSink for DestSink {
    fn report(&self, d: Delivery) {
        match d {
            Delivery::Ok => self.sent.inc(),
            Delivery::Failed(_) => self.failed.inc(),
        }
        self.tracker.report(self.dest, &d);
    }
}

pub struct TrackerWait {
    tracker: Arc<Tracker>,
}

impl Future for TrackerWait {
    type Output = Outcome;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let Ok(mut s) = self.tracker.state.lock() else {
            return Poll::Ready(Outcome::Unavailable {
                last_status: None,
                message: "internal error: quorum state poisoned".into(),
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

    fn counter() -> IntCounter {
        IntCounter::new("c", "c").expect("counter")
    }

    fn down() -> Delivery {
        Delivery::Failed(Outcome::Unavailable {
            last_status: None,
            message: "connection refused".into(),
        })
    }

    #[test]
    fn every_series_needs_its_quorum() {
        // Two series on three destinations, RF 3 each (need 2): series 0 on d0,d1,d2;
        // series 1 on d1,d2,d0.
        let q = Quorum {
            replicas: 3,
            max_failures: 1,
        };
        let t = Tracker::new(
            &[q, q],
            vec![vec![0, 1], vec![0, 1], vec![0, 1]],
            counter(),
            counter(),
        );
        t.report(0, &Delivery::Ok);
        assert_eq!(t.decided(), None);
        t.report(1, &down());
        assert_eq!(t.decided(), None, "one failure of three is allowed");
        t.report(2, &Delivery::Ok);
        assert_eq!(t.decided(), Some(Outcome::Accepted));
    }

    #[test]
    fn a_series_past_its_failures_fails_the_request() {
        let q = Quorum {
            replicas: 3,
            max_failures: 1,
        };
        let bg = counter();
        let t = Tracker::new(&[q], vec![vec![0], vec![0], vec![0]], bg.clone(), counter());
        t.report(0, &down());
        t.report(1, &down());
        assert_eq!(
            t.decided(),
            Some(Outcome::Rejected {
                status: 503,
                code: Some(Code::Unavailable),
                message: "at least 2 live replicas required, could only find 1".into()
            })
        );
        t.report(2, &Delivery::Ok);
        assert_eq!(
            bg.get(),
            1,
            "the late replica counts as a background delivery"
        );
        // A destination's own code is kept.
        let t = Tracker::new(
            &[Quorum {
                replicas: 1,
                max_failures: 0,
            }],
            vec![vec![0]],
            counter(),
            counter(),
        );
        t.report(
            0,
            &Delivery::Failed(Outcome::Rejected {
                status: 429,
                code: None,
                message: "slow down".into(),
            }),
        );
        assert!(matches!(
            t.decided(),
            Some(Outcome::Rejected {
                code: Some(Code::ResourceExhausted),
                ..
            })
        ));
    }
}
