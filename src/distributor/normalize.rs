//! Normalisation, as Pyroscope's distributor does it before storing a profile
//! (docs/distributor.md §5): set a missing timestamp, drop numeric and empty sample labels,
//! drop samples with a negative value or only zeros, merge samples with the same stack and
//! labels by summing their values, remove what no sample references any more, and repair
//! references (string 0 empty, dense ids, a stub mapping for locations without one).
//!
//! Every step reports whether it changed anything, so a profile that was already normal is
//! forwarded as the bytes it arrived in. Merging keeps the first occurrence's position
//! (Pyroscope sorts by hash; the order of samples carries no meaning).

use std::collections::HashMap;
use std::hash::Hasher;
use std::ops::Range;

use crate::protocol::pprof::{Label, Location, Profile, Sample};
use crate::util::fxhash::{FxBuild, FxHasher};

/// What normalisation did to a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Normalized {
    pub changed: bool,
    /// Samples dropped for a negative value or only zeros.
    pub dropped_samples: usize,
    /// Samples merged into an earlier one with the same stack and labels.
    pub merged_samples: usize,
}

/// Normalises `p` in place; `now_nanos` replaces a zero (or negative) timestamp.
pub fn normalize(p: &mut Profile, now_nanos: i64) -> Normalized {
    let mut n = Normalized::default();
    if p.time_nanos <= 0 {
        p.time_nanos = now_nanos;
        n.changed = true;
    }
    n.changed |= drop_non_string_labels(p);
    let before = p.samples.len();
    n.changed |= drop_negative_and_zero(p);
    n.dropped_samples = before - p.samples.len();
    let before = p.samples.len();
    n.changed |= merge_duplicates(p);
    n.merged_samples = before - p.samples.len();
    n.changed |= sanitize(p);
    n.changed |= remove_unreferenced(p);
    n
}

/// Step 2: sample labels whose `str` is 0 (numeric labels, empty strings) are dropped.
fn drop_non_string_labels(p: &mut Profile) -> bool {
    if p.labels.iter().all(|l| l.str != 0) {
        return false;
    }
    let mut labels = Vec::with_capacity(p.labels.len());
    for s in &mut p.samples {
        let start = labels.len();
        labels.extend(
            p.labels[s.labels.start as usize..s.labels.end as usize]
                .iter()
                .filter(|l| l.str != 0),
        );
        s.labels = start as u32..labels.len() as u32;
    }
    p.labels = labels;
    true
}

/// Step 3: samples with any negative value, or only zeros, are dropped.
fn drop_negative_and_zero(p: &mut Profile) -> bool {
    let values = &p.values;
    let keep = |s: &Sample| {
        let v = &values[s.values.start as usize..s.values.end as usize];
        v.iter().all(|x| *x >= 0) && v.iter().any(|x| *x != 0)
    };
    if p.samples.iter().all(keep) {
        return false;
    }
    p.samples.retain(keep);
    true
}

/// The identity of a sample for merging: its stack and its labels, sorted by (key, str).
fn sample_key(p: &Profile, s: &Sample, scratch: &mut Vec<(i64, i64)>) -> u64 {
    let mut h = FxHasher::seeded();
    let locs = p.sample_locations(s);
    h.write_u64(locs.len() as u64);
    for l in locs {
        h.write_u64(*l);
    }
    for (key, str) in sorted_labels(p.sample_labels(s), scratch) {
        h.write_u64(((*key as u64) << 32) ^ (*str as u64));
    }
    h.finish()
}

/// The (key, str) pairs of `labels` in sorted order; no copy for the common zero or one.
fn sorted_labels<'a>(labels: &[Label], scratch: &'a mut Vec<(i64, i64)>) -> &'a [(i64, i64)] {
    scratch.clear();
    scratch.extend(labels.iter().map(|l| (l.key, l.str)));
    if scratch.len() > 1 {
        scratch.sort_unstable();
    }
    scratch
}

/// Two scratch buffers for comparing label sets.
type Scratch = (Vec<(i64, i64)>, Vec<(i64, i64)>);

fn same_identity(p: &Profile, a: &Sample, b: &Sample, scratch: &mut Scratch) -> bool {
    if p.sample_locations(a) != p.sample_locations(b) {
        return false;
    }
    let (la, lb) = (p.sample_labels(a), p.sample_labels(b));
    if la.len() != lb.len() {
        return false;
    }
    match la.len() {
        0 => true,
        1 => (la[0].key, la[0].str) == (lb[0].key, lb[0].str),
        _ => sorted_labels(la, &mut scratch.0) == sorted_labels(lb, &mut scratch.1),
    }
}

/// No sample (in [`merge_duplicates`]' chains).
const NONE: u32 = u32::MAX;

/// Samples compared per hash before giving up on merging a sample: identical stacks share a
/// hash and are found at once, so a long chain only happens when many different stacks
/// collide, which the seeded hash makes an attacker's work; the cap keeps that linear.
const MAX_CHAIN: usize = 64;

/// Step 4: samples with the same stack and labels become one, values summed.
///
/// Each distinct hash points at its first sample; samples whose hash collides but whose
/// identity differs are chained through `next`, so nothing is allocated per sample.
fn merge_duplicates(p: &mut Profile) -> bool {
    let n = p.samples.len();
    let mut head: HashMap<u64, u32, FxBuild> =
        HashMap::with_capacity_and_hasher(n, FxBuild::default());
    let mut next = vec![NONE; n];
    let mut into = vec![NONE; n];
    let mut key_scratch = Vec::new();
    let mut cmp_scratch = (Vec::new(), Vec::new());
    let mut any = false;
    for (i, target) in into.iter_mut().enumerate() {
        let k = sample_key(p, &p.samples[i], &mut key_scratch);
        let mut j = match head.entry(k) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(i as u32);
                continue;
            }
            std::collections::hash_map::Entry::Occupied(e) => *e.get(),
        };
        for _ in 0..MAX_CHAIN {
            if same_identity(p, &p.samples[j as usize], &p.samples[i], &mut cmp_scratch) {
                *target = j;
                any = true;
                break;
            }
            if next[j as usize] == NONE {
                next[j as usize] = i as u32;
                break;
            }
            j = next[j as usize];
        }
    }
    if !any {
        return false;
    }
    for (i, &j) in into.iter().enumerate() {
        if j == NONE {
            continue;
        }
        let (src, dst) = (
            p.samples[i].values.clone(),
            p.samples[j as usize].values.clone(),
        );
        let len = (src.end - src.start).min(dst.end - dst.start) as usize;
        for k in 0..len {
            let v = p.values[src.start as usize + k];
            let d = &mut p.values[dst.start as usize + k];
            *d = d.saturating_add(v);
        }
    }
    let mut i = 0;
    p.samples.retain(|_| {
        let keep = into[i] == NONE;
        i += 1;
        keep
    });
    true
}

/// Where each id of a table (locations, functions, mappings) sits: by arithmetic when the
/// ids are 1..=n in order, as Go's encoder and this one write them, else by hash.
enum IdIndex {
    Dense(u64),
    Sparse(HashMap<u64, usize, FxBuild>),
}

impl IdIndex {
    fn new(ids: impl Iterator<Item = u64> + Clone) -> Self {
        let mut n = 0u64;
        let dense = ids.clone().all(|id| {
            n += 1;
            id == n
        });
        if dense {
            IdIndex::Dense(n)
        } else {
            IdIndex::Sparse(ids.enumerate().map(|(i, id)| (id, i)).collect())
        }
    }

    #[inline]
    fn get(&self, id: u64) -> Option<usize> {
        match self {
            IdIndex::Dense(n) => (id >= 1 && id <= *n).then(|| (id - 1) as usize),
            IdIndex::Sparse(m) => m.get(&id).copied(),
        }
    }

    fn is_dense(&self) -> bool {
        matches!(self, IdIndex::Dense(_))
    }
}

/// Step 6: references repaired — string 0 empty, out-of-range string indices zeroed, a stub
/// mapping for locations without one, locations with neither lines nor address (or with
/// unknown functions or mappings) dropped, with the samples that point at them or whose
/// value count is wrong; mappings with function information lose their addresses.
fn sanitize(p: &mut Profile) -> bool {
    let mut changed = false;
    // String 0 must be the empty string.
    let empty_first = p.strings.first().is_some_and(|r| r.start == r.end);
    if !empty_first {
        changed = true;
        match p.strings.iter().position(|r| r.start == r.end) {
            Some(i) => {
                p.strings.swap(0, i);
                swap_string_refs(p, 0, i as i64);
            }
            None => {
                p.strings.push(0..0);
                let last = p.strings.len() - 1;
                p.strings.swap(0, last);
                swap_string_refs(p, 0, last as i64);
            }
        }
    }
    let n = p.strings.len() as i64;
    changed |= for_each_string_ref(p, |i| {
        if *i < 0 || *i >= n {
            *i = 0;
            true
        } else {
            false
        }
    });
    // Mappings: a stub for locations without one.
    if p.locations.iter().any(|l| l.mapping_id == 0) {
        let stub = p.mappings.iter().map(|m| m.id).max().unwrap_or(0) + 1;
        p.mappings.push(crate::protocol::pprof::Mapping {
            id: stub,
            ..Default::default()
        });
        for l in &mut p.locations {
            if l.mapping_id == 0 {
                l.mapping_id = stub;
            }
        }
        changed = true;
    }
    let mapping_index = IdIndex::new(p.mappings.iter().map(|m| m.id));
    let function_index = IdIndex::new(p.functions.iter().map(|f| f.id));
    let lines = &p.lines;
    let valid_location = |l: &Location| {
        let ls = &lines[l.lines.start as usize..l.lines.end as usize];
        (!ls.is_empty() || l.address != 0)
            && mapping_index.get(l.mapping_id).is_some()
            && ls
                .iter()
                .all(|x| function_index.get(x.function_id).is_some())
    };
    let before = p.locations.len();
    let kept: Vec<Location> = p
        .locations
        .iter()
        .filter(|l| valid_location(l))
        .cloned()
        .collect();
    if kept.len() != before {
        p.locations = kept;
        changed = true;
    }
    // Samples that point at a dropped location, or whose value count is wrong.
    let location_index = IdIndex::new(p.locations.iter().map(|l| l.id));
    let types = p.sample_type.len() as u32;
    let (ids, before) = (&p.location_ids, p.samples.len());
    p.samples.retain(|s| {
        s.values.end - s.values.start == types
            && ids[s.locations.start as usize..s.locations.end as usize]
                .iter()
                .all(|id| location_index.get(*id).is_some())
    });
    changed |= p.samples.len() != before;
    // Mappings that know their functions need no addresses.
    let with_functions: Vec<bool> = p.mappings.iter().map(|m| m.has_functions).collect();
    // Cosmetic: Pyroscope clears these again when it stores the profile, so clearing them
    // alone is no reason to forward a rewritten profile (it does not set `changed`).
    for m in p.mappings.iter_mut().filter(|m| m.has_functions) {
        m.memory_start = 0;
        m.memory_limit = 0;
        m.file_offset = 0;
    }
    // A location without lines keeps its address: zeroed, it would be dropped by the next
    // normalisation (Pyroscope's, downstream), which the original profile's would not do.
    for l in &mut p.locations {
        if !l.lines.is_empty()
            && mapping_index
                .get(l.mapping_id)
                .is_some_and(|i| with_functions[i])
        {
            l.address = 0;
        }
    }
    changed
}

/// Applies `f` to every string index of the profile; true when any call returned true.
fn for_each_string_ref(p: &mut Profile, mut f: impl FnMut(&mut i64) -> bool) -> bool {
    let mut any = false;
    for vt in p.sample_type.iter_mut().chain(p.period_type.iter_mut()) {
        any |= f(&mut vt.r#type);
        any |= f(&mut vt.unit);
    }
    for l in &mut p.labels {
        any |= f(&mut l.key);
        any |= f(&mut l.str);
        any |= f(&mut l.num_unit);
    }
    for m in &mut p.mappings {
        any |= f(&mut m.filename);
        any |= f(&mut m.build_id);
    }
    for fun in &mut p.functions {
        any |= f(&mut fun.name);
        any |= f(&mut fun.system_name);
        any |= f(&mut fun.filename);
    }
    for c in &mut p.comments {
        any |= f(c);
    }
    any |= f(&mut p.drop_frames);
    any |= f(&mut p.keep_frames);
    any |= f(&mut p.default_sample_type);
    any
}

fn swap_string_refs(p: &mut Profile, a: i64, b: i64) {
    for_each_string_ref(p, |i| {
        if *i == a {
            *i = b;
        } else if *i == b {
            *i = a;
        }
        false
    });
}

/// Step 5: locations no sample uses, then functions no location uses, then strings nothing
/// uses, are removed; ids are renumbered densely from 1 and string indices shifted.
fn remove_unreferenced(p: &mut Profile) -> bool {
    let mut changed = false;
    let loc_index = IdIndex::new(p.locations.iter().map(|l| l.id));
    let mut used_loc = vec![false; p.locations.len()];
    for s in &p.samples {
        for id in &p.location_ids[s.locations.start as usize..s.locations.end as usize] {
            if let Some(i) = loc_index.get(*id) {
                used_loc[i] = true;
            }
        }
    }
    if used_loc.iter().any(|u| !u) || !loc_index.is_dense() {
        changed = true;
        // The new id of each location, by its old position (0: dropped).
        let mut new_id = vec![0u64; p.locations.len()];
        let mut kept = Vec::with_capacity(p.locations.len());
        for (i, l) in p.locations.iter().enumerate() {
            if used_loc[i] {
                let mut l = l.clone();
                l.id = kept.len() as u64 + 1;
                new_id[i] = l.id;
                kept.push(l);
            }
        }
        p.locations = kept;
        // Every remaining sample's stack refers to kept locations only: rewrite in place.
        for s in &p.samples {
            for id in &mut p.location_ids[s.locations.start as usize..s.locations.end as usize] {
                *id = loc_index.get(*id).map_or(0, |i| new_id[i]);
            }
        }
    }
    let fn_index = IdIndex::new(p.functions.iter().map(|f| f.id));
    let mut used_fn = vec![false; p.functions.len()];
    for l in &p.locations {
        for line in &p.lines[l.lines.start as usize..l.lines.end as usize] {
            if let Some(i) = fn_index.get(line.function_id) {
                used_fn[i] = true;
            }
        }
    }
    if used_fn.iter().any(|u| !u) || !fn_index.is_dense() {
        changed = true;
        let mut new_id = vec![0u64; p.functions.len()];
        let mut kept = Vec::with_capacity(p.functions.len());
        for (i, f) in p.functions.iter().enumerate() {
            if used_fn[i] {
                let mut f = *f;
                f.id = kept.len() as u64 + 1;
                new_id[i] = f.id;
                kept.push(f);
            }
        }
        p.functions = kept;
        for line in &mut p.lines {
            line.function_id = fn_index.get(line.function_id).map_or(0, |i| new_id[i]);
        }
    }
    // Lines of dropped locations stay in the flat array but are never written; strings.
    changed |= remove_unreferenced_strings(p);
    changed
}

fn remove_unreferenced_strings(p: &mut Profile) -> bool {
    let n = p.strings.len();
    let mut used = vec![false; n];
    if n > 0 {
        used[0] = true;
    }
    let mut mark = |i: i64| {
        if let Some(u) = usize::try_from(i).ok().and_then(|i| used.get_mut(i)) {
            *u = true;
        }
    };
    for vt in p.sample_type.iter().chain(p.period_type.iter()) {
        mark(vt.r#type);
        mark(vt.unit);
    }
    for s in &p.samples {
        for l in &p.labels[s.labels.start as usize..s.labels.end as usize] {
            mark(l.key);
            mark(l.str);
            mark(l.num_unit);
        }
    }
    for m in &p.mappings {
        mark(m.filename);
        mark(m.build_id);
    }
    for f in &p.functions {
        mark(f.name);
        mark(f.system_name);
        mark(f.filename);
    }
    for c in &p.comments {
        mark(*c);
    }
    mark(p.drop_frames);
    mark(p.keep_frames);
    mark(p.default_sample_type);
    if used.iter().all(|u| *u) {
        return false;
    }
    let mut new_index = vec![0i64; n];
    let mut kept: Vec<Range<u32>> = Vec::with_capacity(n);
    for (i, r) in p.strings.iter().enumerate() {
        if used[i] {
            new_index[i] = kept.len() as i64;
            kept.push(r.clone());
        }
    }
    p.strings = kept;
    for_each_string_ref(p, |i| {
        *i = usize::try_from(*i)
            .ok()
            .and_then(|x| new_index.get(x).copied())
            .unwrap_or(0);
        false
    });
    true
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use bytes::Bytes;
    use prost::Message as _;
    use pyrogate_testdata::pprof::{Kind, Spec};
    use pyrogate_testdata::wire;

    use super::*;
    use crate::protocol::pprof::{self, Limits};

    use pyrogate_testdata::pprof::{Identity, expected_after_normalise as expected};

    /// A sample's identity by names: function names of the stack, label (key, value) strings.
    type NamedIdentity = (Vec<String>, Vec<(String, String)>);

    /// The same grouping read back from a normalised profile decoded by the generator's
    /// own (prost) definitions, with stacks and labels translated to names so that the
    /// renumbering does not matter.
    fn by_names(p: &wire::Profile) -> BTreeMap<NamedIdentity, Vec<i64>> {
        let s = |i: i64| p.string_table.get(i as usize).cloned().unwrap_or_default();
        let fn_name = |loc: u64| {
            let l = p
                .location
                .iter()
                .find(|l| l.id == loc)
                .expect("location exists");
            l.line
                .iter()
                .map(|line| {
                    let f = p
                        .function
                        .iter()
                        .find(|f| f.id == line.function_id)
                        .expect("function exists");
                    s(f.name)
                })
                .collect::<Vec<_>>()
                .join("|")
        };
        let mut out = BTreeMap::new();
        for x in &p.sample {
            let stack = x.location_id.iter().map(|l| fn_name(*l)).collect();
            let mut labels: Vec<(String, String)> =
                x.label.iter().map(|l| (s(l.key), s(l.str))).collect();
            labels.sort();
            let prev = out.insert((stack, labels), x.value.clone());
            assert!(prev.is_none(), "a duplicate survived normalisation");
        }
        out
    }

    fn translate(
        m: &wire::Profile,
        e: BTreeMap<Identity, Vec<i64>>,
    ) -> BTreeMap<NamedIdentity, Vec<i64>> {
        by_names(&wire::Profile {
            sample: e
                .into_iter()
                .map(|((locs, labels), value)| wire::Sample {
                    location_id: locs,
                    value,
                    label: labels
                        .into_iter()
                        .map(|(key, str)| wire::Label {
                            key,
                            str,
                            num: 0,
                            num_unit: 0,
                        })
                        .collect(),
                })
                .collect(),
            ..m.clone()
        })
    }

    #[test]
    fn merges_and_drops_exactly_what_an_independent_count_says() {
        for (seed, kind) in [
            (1, Kind::Cpu),
            (2, Kind::Heap),
            (3, Kind::Wall),
            (4, Kind::Goroutine),
        ] {
            let spec = Spec::new(seed, kind)
                .samples(800)
                .zeros(10)
                .duplicates(35)
                .negatives(3);
            let model = spec.profile();
            let want = expected(&model);
            let mut p =
                pprof::decode(Bytes::from(spec.plain()), Limits::default()).expect("decodes");
            let n = normalize(&mut p, 1);
            assert!(n.changed);
            assert!(n.dropped_samples > 0 && n.merged_samples > 0, "{n:?}");
            assert_eq!(
                p.samples.len(),
                want.len(),
                "{kind:?}: sample count after merging"
            );
            // A second, independent decoder reads the result.
            let out =
                wire::Profile::decode(&pprof::encode(&p)[..]).expect("prost decodes the output");
            assert_eq!(out.sample.len(), want.len());
            assert_eq!(by_names(&out), translate(&model, want.clone()), "{kind:?}");
            // Sums over non-negative samples are preserved exactly.
            let mut sums = vec![0i64; model.sample_type.len()];
            for v in want.values() {
                for (a, x) in sums.iter_mut().zip(v) {
                    *a += x;
                }
            }
            assert_eq!(p.value_sums(), sums);
            // Nothing unreferenced, dense ids, string 0 empty.
            assert_eq!(out.string_table[0], "");
            let used_locs: HashSet<u64> = out
                .sample
                .iter()
                .flat_map(|s| s.location_id.clone())
                .collect();
            assert_eq!(used_locs.len(), out.location.len());
            assert!(
                out.location
                    .iter()
                    .enumerate()
                    .all(|(i, l)| l.id == i as u64 + 1)
            );
            assert!(
                out.function
                    .iter()
                    .enumerate()
                    .all(|(i, f)| f.id == i as u64 + 1)
            );
            assert!(
                out.sample
                    .iter()
                    .all(|s| s.label.iter().all(|l| l.str != 0))
            );
            assert_eq!(out.time_nanos, model.time_nanos);
        }
    }

    #[test]
    fn a_normal_profile_is_left_alone() {
        let spec = Spec::new(5, Kind::Cpu)
            .samples(100)
            .zeros(0)
            .duplicates(0)
            .labels(true, false);
        let bytes = Bytes::from(spec.plain());
        let mut p = pprof::decode(bytes.clone(), Limits::default()).expect("decodes");
        // The generator numbers densely and references every string, location and function
        // only if the sample set happens to; normalise once, then once more.
        normalize(&mut p, 1);
        let once = Bytes::from(pprof::encode(&p));
        let mut q = pprof::decode(once.clone(), Limits::default()).expect("decodes");
        let n = normalize(&mut q, 1);
        assert_eq!(
            n,
            Normalized::default(),
            "normalising a normal profile changes nothing"
        );
        assert_eq!(pprof::encode(&q), once.to_vec());
    }

    /// Found by the `pprof` fuzz target: a location with an address but no lines, in a
    /// mapping with function information, must keep its address, or a second
    /// normalisation (Pyroscope's, downstream) drops it and every sample through it.
    #[test]
    fn normalising_twice_changes_nothing_for_line_less_locations() {
        let mut m = Spec::new(9, Kind::Cpu)
            .samples(30)
            .zeros(0)
            .duplicates(0)
            .profile();
        let used = m.sample[0].location_id[0];
        let loc = m
            .location
            .iter_mut()
            .find(|l| l.id == used)
            .expect("a used location");
        loc.line.clear();
        loc.address = 0x4010;
        let mut p =
            pprof::decode(Bytes::from(m.encode_to_vec()), Limits::default()).expect("decodes");
        normalize(&mut p, 1);
        let samples = p.samples.len();
        let mut q =
            pprof::decode(Bytes::from(pprof::encode(&p)), Limits::default()).expect("decodes");
        assert_eq!(normalize(&mut q, 1), Normalized::default());
        assert_eq!(q.samples.len(), samples);
    }

    #[test]
    fn timestamps_and_references_are_repaired() {
        let spec = Spec::new(6, Kind::Cpu).samples(20).time(0);
        let mut p = pprof::decode(Bytes::from(spec.plain()), Limits::default()).expect("decodes");
        // A location without a mapping, an out-of-range string index, string 0 not empty.
        p.locations[0].mapping_id = 0;
        p.functions[0].name = 1 << 40;
        p.strings.swap(0, 1);
        let n = normalize(&mut p, 42);
        assert!(n.changed);
        assert_eq!(p.time_nanos, 42);
        assert_eq!(p.string(0), Some(&b""[..]));
        let out = wire::Profile::decode(&pprof::encode(&p)[..]).expect("decodes");
        let ids: HashSet<u64> = out.mapping.iter().map(|m| m.id).collect();
        assert!(out.location.iter().all(|l| ids.contains(&l.mapping_id)));
        assert!(
            out.function
                .iter()
                .all(|f| (f.name as usize) < out.string_table.len())
        );
    }
}
