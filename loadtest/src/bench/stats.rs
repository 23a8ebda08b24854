//! The arithmetic of the benchmark tables: medians of repeated runs, ratios taken within
//! one round of interleaved runs, CPU time per request, bytes per connection.
//!
//! Why ratios per round: on a VM with bursty steal, two variants measured a minute apart can
//! differ by 2× for reasons that have nothing to do with them. Runs are interleaved
//! (A B C, A B C, …), so the runs of one round saw nearly the same machine; the ratio of a
//! round is therefore trustworthy even when its absolutes are not, and the median over the
//! rounds discards a round that a steal burst hit unevenly.

/// Median of the finite values (mean of the two middle ones for an even count); `None` when
/// there is none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Median of optional values, ignoring the missing ones.
pub fn median_opt(values: &[Option<f64>]) -> Option<f64> {
    let v: Vec<f64> = values.iter().flatten().copied().collect();
    median(&v)
}

/// Largest finite value.
pub fn max(values: &[f64]) -> Option<f64> {
    values
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .max_by(f64::total_cmp)
}

/// The median over rounds of `num[i] / den[i]`, using only rounds where both values exist
/// and the denominator is positive.
pub fn round_ratio(num: &[Option<f64>], den: &[Option<f64>]) -> Option<f64> {
    let r: Vec<f64> = num
        .iter()
        .zip(den)
        .filter_map(|(a, b)| match (a, b) {
            (Some(a), Some(b)) if *b > 0.0 => Some(a / b),
            _ => None,
        })
        .collect();
    median(&r)
}

/// CPU milliseconds per 1000 requests: `cpu_s` seconds spent on `requests` requests.
pub fn cpu_ms_per_1k(cpu_s: f64, requests: u64) -> Option<f64> {
    (requests > 0 && cpu_s.is_finite() && cpu_s >= 0.0)
        .then(|| cpu_s * 1000.0 * 1000.0 / requests as f64)
}

/// Requests per CPU-second from CPU ms per 1000 requests.
pub fn requests_per_cpu_s(cpu_ms_per_1k: f64) -> Option<f64> {
    (cpu_ms_per_1k > 0.0).then(|| 1_000_000.0 / cpu_ms_per_1k)
}

/// `(with − before) / conns` in bytes (negative when memory was returned).
pub fn bytes_per_conn(before: u64, with: u64, conns: usize) -> Option<f64> {
    (conns > 0).then(|| (with as f64 - before as f64) / conns as f64)
}

/// Order of the runs: `rounds` rounds, each running every cell once in the given order
/// (A B C, A B C, …). Returns `(round, cell index)` pairs.
pub fn interleave(cells: usize, rounds: usize) -> Vec<(usize, usize)> {
    (0..rounds)
        .flat_map(|r| (0..cells).map(move |c| (r, c)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 2.0, f64::INFINITY]), Some(2.0));
        assert_eq!(median_opt(&[None, Some(1.0), Some(9.0), None]), Some(5.0));
        assert_eq!(median_opt(&[None]), None);
        assert_eq!(max(&[1.0, f64::NAN, 7.5, 2.0]), Some(7.5));
        assert_eq!(max(&[]), None);
    }

    #[test]
    fn ratios_are_taken_per_round_then_the_median() {
        // Round 2 was hit by steal for both variants: its absolutes are low but its
        // ratio is as good as the others.
        let a = [Some(100.0), Some(40.0), Some(110.0)];
        let b = [Some(50.0), Some(20.0), Some(50.0)];
        assert_eq!(round_ratio(&a, &b), Some(2.0));
        // The median of the absolutes would give 100/50 = 2 here too, but not when the
        // burst hits only one variant of a round:
        let a = [Some(100.0), Some(30.0), Some(100.0)];
        let b = [Some(50.0), Some(50.0), Some(50.0)];
        assert_eq!(round_ratio(&a, &b), Some(2.0));
        // Missing or zero denominators are skipped.
        assert_eq!(
            round_ratio(&[Some(1.0), Some(3.0)], &[None, Some(0.0)]),
            None
        );
        assert_eq!(
            round_ratio(&[Some(1.0), Some(3.0)], &[Some(2.0), None]),
            Some(0.5)
        );
    }

    #[test]
    fn per_request_and_per_connection_figures() {
        assert_eq!(cpu_ms_per_1k(2.5, 50_000), Some(50.0));
        assert_eq!(cpu_ms_per_1k(1.0, 0), None);
        assert_eq!(requests_per_cpu_s(50.0), Some(20_000.0));
        assert_eq!(requests_per_cpu_s(0.0), None);
        assert_eq!(
            bytes_per_conn(10 << 20, (10 << 20) + 20_480_000, 10_000),
            Some(2048.0)
        );
        assert_eq!(bytes_per_conn(2000, 1000, 10), Some(-100.0));
        assert_eq!(bytes_per_conn(1, 2, 0), None);
    }

    #[test]
    fn interleaving_runs_every_cell_once_per_round() {
        assert_eq!(
            interleave(3, 2),
            vec![(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
        );
        assert!(interleave(0, 3).is_empty());
    }
}
