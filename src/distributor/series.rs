//! The series one profile becomes in Pyroscope, whose label sets `ValidateLabels` checks
//! (docs/distributor.md §4.1): the series labels, with `__session_id__` reduced, merged
//! with each distinct set of the profile's string sample labels (the series' own labels win
//! a conflict; `trace_id`, `span_id` and `profile_id` stay on the samples and do not split
//! series), empty values dropped, then Pyroscope's default relabeling.

use std::collections::HashSet;

use crate::config::distributor::Limits;
use crate::protocol::pprof::{Label, Profile};
use crate::util::fxhash::FxBuild;

use super::labels::{self, Pair};
use super::reason::Invalid;

use crate::protocol::pprof::NON_SPLITTING_LABELS as NOT_SPLIT;

/// The session label `max_sessions_per_series` acts on.
const SESSION_ID: &[u8] = b"__session_id__";

/// Validates every label set `p` is split into, in the order the sets first appear among the
/// samples; the first failure is the answer. The series labels alone are checked once
/// when no sample has a label that splits.
pub fn validate(limits: &Limits, series: &[Pair], p: &Profile) -> Result<(), Invalid> {
    let mut base = series.to_vec();
    reduce_sessions(limits, &mut base);
    let splits =
        |l: &Label| l.str != 0 && !NOT_SPLIT.contains(&p.string(l.key).unwrap_or_default());
    if !p
        .samples
        .iter()
        .any(|s| p.sample_labels(s).iter().any(splits))
    {
        return check(limits, base);
    }
    let mut seen: HashSet<Vec<(i64, i64)>, FxBuild> = HashSet::default();
    let mut key: Vec<(i64, i64)> = Vec::new();
    for s in &p.samples {
        key.clear();
        key.extend(
            p.sample_labels(s)
                .iter()
                .filter(|l| splits(l))
                .map(|l| (l.key, l.str)),
        );
        key.sort_unstable();
        if seen.contains(&key) {
            continue;
        }
        seen.insert(key.clone());
        let mut set = base.clone();
        for &(k, v) in &key {
            let name = p.string(k).unwrap_or_default();
            if !base.iter().any(|(n, _)| n == name) {
                set.push((name.to_vec(), p.string(v).unwrap_or_default().to_vec()));
            }
        }
        check(limits, set)?;
    }
    Ok(())
}

fn check(limits: &Limits, mut set: Vec<Pair>) -> Result<(), Invalid> {
    labels::drop_empty(&mut set);
    labels::default_relabel(&mut set);
    labels::validate(limits, &mut set)
}

/// `limitMaxSessionsPerSeries`: with 0 the session label goes; otherwise it stays when it
/// is a valid session id (16 hex digits) and goes when it is not.
fn reduce_sessions(limits: &Limits, ls: &mut Vec<Pair>) {
    ls.retain(|(n, v)| {
        n != SESSION_ID
            || (limits.max_sessions_per_series > 0
                && v.len() == 16
                && v.iter().all(u8::is_ascii_hexdigit))
    });
}
