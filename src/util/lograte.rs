//! Rate-limited logging: an identical warning (same key) is logged at most once per
//! interval; the next one says how many were suppressed. A downstream outage must not turn
//! into thousands of log lines per second.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const INTERVAL: Duration = Duration::from_secs(10);
/// Keys remembered at most; beyond that the table is cleared (it only limits noise).
const MAX_KEYS: usize = 1024;

static STATE: Mutex<Option<HashMap<String, (Instant, u64)>>> = Mutex::new(None);

/// Calls `log(suppressed)` unless the same `key` was logged less than the interval ago.
pub fn warn_limited(key: &str, log: impl FnOnce(u64)) {
    let now = Instant::now();
    let emit = {
        let Ok(mut g) = STATE.lock() else { return };
        let map = g.get_or_insert_with(HashMap::new);
        if map.len() > MAX_KEYS {
            map.clear();
        }
        match map.get_mut(key) {
            Some((last, suppressed)) if now.duration_since(*last) < INTERVAL => {
                *suppressed += 1;
                None
            }
            Some((last, suppressed)) => {
                let n = *suppressed;
                *last = now;
                *suppressed = 0;
                Some(n)
            }
            None => {
                map.insert(key.to_string(), (now, 0));
                Some(0)
            }
        }
    };
    if let Some(n) = emit {
        log(n);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn repeats_are_suppressed() {
        let mut logged = 0;
        for _ in 0..100 {
            super::warn_limited("test-key-lograte", |_| logged += 1);
        }
        assert_eq!(logged, 1);
        let mut other = 0;
        super::warn_limited("another-key-lograte", |_| other += 1);
        assert_eq!(other, 1);
    }
}
