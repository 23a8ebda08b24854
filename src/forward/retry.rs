//! Retry classification and backoff, as Alloy's `pyroscope.write` does them
//! (docs/alloy-compat.md §9–§11), with two fixes for its known weaknesses: `Retry-After` is honoured
//! (bounded by the backoff window) and a plain 400/429 from a Push downstream keeps its
//! meaning instead of being inferred as a retryable `internal`/`unavailable`.
//!
//! The classification is made where the response is read, once, and carried as a value: the
//! retry loop never parses messages.

use std::time::Duration;

use crate::http::client::ClientError;
use crate::protocol::connect::Code;

/// One attempt's result, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Delivered,
    /// A failure that retrying cannot fix (e.g. 400): report it at once.
    Permanent {
        status: u16,
        code: Option<Code>,
        message: String,
    },
    /// A failure worth retrying; `status` is absent for transport errors and timeouts.
    Retryable {
        status: Option<u16>,
        retry_after: Option<Duration>,
        message: String,
    },
}

/// Transport errors and timeouts are always retried (Alloy retries any non-Connect error).
pub fn classify_error(e: &ClientError) -> Attempt {
    let message = match e {
        ClientError::Timeout => "context deadline exceeded".to_string(),
        other => format!("do request: {other}"),
    };
    Attempt::Retryable {
        status: None,
        retry_after: None,
        message,
    }
}

/// dskit's backoff: each sleep is uniform in `[lower, upper)`; after each sleep both bounds
/// double (capped at `max`) while the upper bound is below `max`; once `lower >= upper` the
/// sleep is exactly `lower`.
#[derive(Debug, Clone)]
pub struct Backoff {
    lower: Duration,
    upper: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            lower: min,
            upper: (min * 2).min(max),
            max,
        }
    }

    /// The next sleep, with `unit` a uniform random number in `[0, 1)`.
    pub fn next_with(&mut self, unit: f64) -> Duration {
        let d = if self.lower >= self.upper {
            self.lower
        } else {
            self.lower + (self.upper - self.lower).mul_f64(unit)
        };
        if self.upper < self.max {
            self.lower = (self.lower * 2).min(self.max);
            self.upper = (self.upper * 2).min(self.max);
        }
        d
    }

    pub fn next_sleep(&mut self) -> Duration {
        self.next_with(crate::util::rand::unit())
    }
}

/// `Retry-After` is honoured, clamped to the endpoint's backoff window so that a hostile or
/// buggy value can neither spin nor park a delivery for hours.
pub fn sleep_for(
    backoff: Duration,
    retry_after: Option<Duration>,
    min: Duration,
    max: Duration,
) -> Duration {
    match retry_after {
        Some(ra) => ra.clamp(min, max),
        None => backoff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dskit_backoff_windows() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(300));
        assert_eq!(b.next_with(0.0), Duration::from_millis(500));
        assert_eq!(b.next_with(0.0), Duration::from_secs(1));
        let d = b.next_with(0.999_999);
        assert!(
            d > Duration::from_millis(3999) && d < Duration::from_secs(4),
            "{d:?}"
        );
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(200));
        assert_eq!(b.next_with(0.5), Duration::from_millis(150));
        // The upper bound already is the max: the window stays [100, 200).
        assert_eq!(b.next_with(0.9), Duration::from_millis(190));
        let mut b = Backoff::new(Duration::from_millis(200), Duration::from_millis(200));
        // min == max: exactly that, every time.
        assert_eq!(b.next_with(0.9), Duration::from_millis(200));
        assert_eq!(b.next_with(0.1), Duration::from_millis(200));
    }

    #[test]
    fn retry_after_is_clamped() {
        let (min, max) = (Duration::from_millis(500), Duration::from_secs(5));
        assert_eq!(
            sleep_for(Duration::from_secs(1), None, min, max),
            Duration::from_secs(1)
        );
        assert_eq!(
            sleep_for(
                Duration::from_secs(1),
                Some(Duration::from_secs(3)),
                min,
                max
            ),
            Duration::from_secs(3)
        );
        assert_eq!(
            sleep_for(
                Duration::from_secs(1),
                Some(Duration::from_secs(600)),
                min,
                max
            ),
            max
        );
        assert_eq!(
            sleep_for(Duration::from_secs(1), Some(Duration::ZERO), min, max),
            min
        );
    }
}
