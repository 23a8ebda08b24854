//! A request through the ring (docs/ring.md §3): its series, each series' token and
//! replicas, one request per destination carrying all of that destination's series, sent
//! in parallel, and the answer once every series reached its quorum (or the first could not).
//!
//! Push: a series is a `RawProfileSeries`' labels (with Pyroscope's `service_name`
//! default) and, when a profile's samples carry string labels that split series, one series
//! per distinct set of them, merged into the series labels (the series' own labels win),
//! with a profile holding only that set's samples. A profile with no such labels keeps its
//! original bytes. `/ingest`: the series is the `name` label set; the request goes to each
//! owner unchanged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;

use super::membership::{Membership, RingState};
use super::model::Ring;
use super::quorum::{DestSink, Quorum, Tracker};
use super::token;
use crate::forward::{Envelope, Kind, Outcome};
use crate::protocol::connect::Code;
use crate::protocol::gzip;
use crate::protocol::pprof::{self, NON_SPLITTING_LABELS, Profile, Sample};
use crate::protocol::proto::{LabelPair, PushRequest, RawProfileSeries, RawSample};
use crate::protocol::push::encode as push_encode;
use crate::util::deadline::Deadline;

/// The value Pyroscope gives `service_name` when a series has none.
const UNKNOWN_SERVICE: &str = "unknown_service";

/// Most strings and samples decoded to find sample labels.
const SPLIT_DECODE_CAP: usize = 1 << 20;

/// Shorter input is not a profile: Go's gzip sniffing reads a 10-byte header first and
/// fails on it, and so does the decoder (`pprof::decode_bytes`).
const MIN_PROFILE_LEN: usize = 10;

/// One series as the ring sees it: its labels sorted by name, its profiles, no annotations
/// (the series as it is sent to its owners).
#[derive(Debug, Clone, PartialEq)]
pub struct RingSeries {
    pub series: RawProfileSeries,
}

impl RingSeries {
    fn new(labels: Vec<LabelPair>, samples: Vec<RawSample>) -> Self {
        Self {
            series: RawProfileSeries {
                labels,
                samples,
                annotations: Vec::new(),
            },
        }
    }

    /// The labels as `(name, value)` pairs, sorted by name.
    pub fn labels(&self) -> impl Iterator<Item = (&str, &str)> + Clone {
        self.series
            .labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
    }
}

/// The series of a Push, split by sample labels as Pyroscope splits them (profiles that do
/// not decode within `max_decoded` are kept whole).
pub fn push_series(req: PushRequest, max_decoded: usize) -> Vec<RingSeries> {
    push_series_as_sent(req, max_decoded).0
}

/// [`push_series`], and whether the series are the request's own: none split, none given
/// the `service_name` default (label order aside). A destination that carries every series
/// of such a request can then get the client's bytes ([`Verbatim`]).
pub fn push_series_as_sent(req: PushRequest, max_decoded: usize) -> (Vec<RingSeries>, bool) {
    let mut as_sent = true;
    let mut out = Vec::with_capacity(req.series.len());
    for s in req.series {
        let mut labels = s.labels;
        if !labels
            .iter()
            .any(|l| l.name == "service_name" && !l.value.is_empty())
        {
            as_sent = false;
            labels.retain(|l| l.name != "service_name");
            labels.push(LabelPair {
                name: "service_name".into(),
                value: UNKNOWN_SERVICE.into(),
            });
        }
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        // Profiles that split leave the series (each part becomes a series of its own);
        // the rest stay, in order, in the series' own vector.
        let mut whole = s.samples;
        let mut i = 0;
        while i < whole.len() {
            let Some(parts) = split(&whole[i], max_decoded) else {
                i += 1;
                continue;
            };
            as_sent = false;
            let sample = whole.remove(i);
            for (extra, raw) in parts {
                let mut merged = labels.clone();
                for (name, value) in extra {
                    if !merged.iter().any(|l| l.name == name) {
                        merged.push(LabelPair { name, value });
                    }
                }
                merged.sort_by(|a, b| a.name.cmp(&b.name));
                out.push(RingSeries::new(
                    merged,
                    vec![RawSample {
                        raw_profile: raw,
                        id: sample.id.clone(),
                    }],
                ));
            }
        }
        if !whole.is_empty() {
            out.push(RingSeries::new(labels, whole));
        }
    }
    (out, as_sent)
}

/// One part of a split profile: the labels it adds and its profile bytes.
type Part = (Vec<(String, String)>, Bytes);

/// The parts of a profile whose samples carry splitting labels: each distinct label set with
/// the profile of its samples (the original bytes when there is one set). `None` when no
/// sample has such labels, or the profile does not decode.
///
/// The profile is inflated (when gzip'd) once, then scanned for string sample labels
/// without decoding ([`pprof::has_string_sample_labels`]); only a profile that has some is
/// decoded, from the same inflated bytes.
fn split(sample: &RawSample, max_decoded: usize) -> Option<Vec<Part>> {
    let raw = &sample.raw_profile;
    let gzipped = gzip::is_gzip(raw);
    let plain = if gzipped {
        gzip::inflate_bounded(raw, max_decoded).ok()?
    } else if raw.len() < MIN_PROFILE_LEN || raw.len() > max_decoded {
        // The decoder refuses both.
        return None;
    } else {
        raw.clone()
    };
    // A scan error falls through to the decoder, which has the last word.
    if pprof::has_string_sample_labels(&plain, &NON_SPLITTING_LABELS) == Ok(false) {
        return None;
    }
    let limits = pprof::Limits {
        max_size: max_decoded,
        max_strings: SPLIT_DECODE_CAP,
        max_samples: SPLIT_DECODE_CAP,
    };
    let p = pprof::decode(plain, limits).ok()?;
    let key_of = |s: &Sample| -> Vec<(i64, i64)> {
        let mut k: Vec<(i64, i64)> = p
            .sample_labels(s)
            .iter()
            .filter(|l| {
                l.str != 0 && !NON_SPLITTING_LABELS.contains(&p.string(l.key).unwrap_or_default())
            })
            .map(|l| (l.key, l.str))
            .collect();
        k.sort_unstable();
        k.dedup_by_key(|x| x.0);
        k
    };
    let mut groups: BTreeMap<Vec<(i64, i64)>, Vec<Sample>> = BTreeMap::new();
    for s in &p.samples {
        groups.entry(key_of(s)).or_default().push(s.clone());
    }
    if groups.keys().all(Vec::is_empty) {
        return None;
    }
    let single = groups.len() == 1;
    let parts = (!single).then(|| pprof::PartEncoder::new(&p));
    Some(
        groups
            .into_iter()
            .map(|(key, samples)| {
                let labels = names(&p, &key);
                let raw = match &parts {
                    None => sample.raw_profile.clone(),
                    Some(parts) => {
                        let plain = parts.encode(&p, &samples);
                        Bytes::from(if gzipped {
                            gzip::compress(&plain)
                        } else {
                            plain
                        })
                    }
                };
                (labels, raw)
            })
            .collect(),
    )
}

fn names(p: &Profile, key: &[(i64, i64)]) -> Vec<(String, String)> {
    key.iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(p.string(*k).unwrap_or_default()).into_owned(),
                String::from_utf8_lossy(p.string(*v).unwrap_or_default()).into_owned(),
            )
        })
        .collect()
}

/// What a request becomes: per series its owners, per destination the series it carries.
pub struct Plan {
    pub quorums: Vec<Quorum>,
    /// (member index, series indices), one entry per destination, by member index.
    pub destinations: Vec<(u32, Vec<u32>)>,
}

/// Places each series, given by its token, on `ring`.
///
/// # Errors
/// Pyroscope's message for the first series whose healthy replicas cannot make a quorum.
pub fn plan(
    m: &Membership,
    ring: &Ring,
    tokens: impl ExactSizeIterator<Item = u32>,
) -> Result<Plan, String> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut quorums = Vec::with_capacity(tokens.len());
    let mut by_member: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (i, key) in tokens.enumerate() {
        let set = ring.replicas(key, &m.placement, now)?;
        quorums.push(Quorum {
            replicas: set.members.len() as u32,
            max_failures: set.max_failures as u32,
        });
        for member in set.members {
            by_member.entry(member).or_default().push(i as u32);
        }
    }
    Ok(Plan {
        quorums,
        destinations: by_member.into_iter().collect(),
    })
}

/// The client's Push as it came, ready to forward (headers, body chunks): what a
/// destination carrying every series gets when the series are the request's own
/// ([`push_series_as_sent`]), instead of a re-encoded request. The body stays as small as
/// the client made it (gzip'd), and nothing is encoded.
pub type Verbatim = (Vec<(&'static str, Bytes)>, Vec<Bytes>);

/// What every destination request of one client request shares.
pub struct Common {
    pub tenant: Option<Bytes>,
    pub deadline: Instant,
    pub received_at: Instant,
}

/// Sends a Push's series on the ring and waits for the answer.
///
/// Destinations that carry the same series share one encoded request (one `Arc`): with one
/// series per request (the SDKs' case), or every series on the same owners, the request is
/// encoded once whatever the replication factor, or not at all: destinations that carry every
/// series get `verbatim`, the client's own request, when there is one.
pub async fn push(
    m: &Membership,
    tenant: &str,
    series: Vec<RingSeries>,
    c: Common,
    verbatim: Option<Verbatim>,
) -> Outcome {
    let state = m.current();
    // Split parts follow their series: each token resumes after the labels it shares
    // with the previous series.
    let mut hasher = token::Hasher::new(tenant);
    let mut prev: &[LabelPair] = &[];
    let tokens = series.iter().map(|s| {
        let labels = &s.series.labels;
        let shared = prev.iter().zip(labels).take_while(|(a, b)| a == b).count();
        prev = labels;
        hasher.token(
            shared,
            labels
                .iter()
                .map(|l| (l.name.as_bytes(), l.value.as_bytes())),
        )
    });
    let plan = match plan(m, &state.ring, tokens) {
        Ok(p) => p,
        Err(message) => return no_quorum(m, message),
    };
    let Some(snap) = m.forwarder.snapshot() else {
        return Outcome::Accepted;
    };
    let background_deadline = Instant::now() + snap.delivery_timeout;
    let mut envelopes: Vec<(u32, Arc<Envelope>)> = Vec::with_capacity(plan.destinations.len());
    for (d, (member, carried)) in plan.destinations.iter().enumerate() {
        let same = plan.destinations[..d]
            .iter()
            .position(|(_, earlier)| earlier == carried);
        let env = match same.and_then(|j| envelopes.get(j)) {
            Some((_, env)) => env.clone(),
            None => {
                let whole = verbatim.as_ref().filter(|_| carried.len() == series.len());
                Arc::new(envelope(
                    m,
                    &series,
                    carried,
                    &c,
                    background_deadline,
                    whole,
                ))
            }
        };
        envelopes.push((*member, env));
    }
    execute(m, &state, &snap, plan, envelopes, c.deadline).await
}

/// The Push request carrying `carried` of `series`: `verbatim` when given (it carries them
/// all), else encoded from them.
fn envelope(
    m: &Membership,
    series: &[RingSeries],
    carried: &[u32],
    c: &Common,
    deadline: Instant,
    verbatim: Option<&Verbatim>,
) -> Envelope {
    let chosen = carried
        .iter()
        .filter_map(|i| series.get(*i as usize))
        .map(|s| &s.series);
    let (profiles, profile_bytes) = chosen
        .clone()
        .flat_map(|s| &s.samples)
        .fold((0u64, 0u64), |(n, b), s| {
            (n + 1, b + s.raw_profile.len() as u64)
        });
    let (headers, body) = match verbatim {
        Some((headers, body)) => (headers.clone(), body.clone()),
        None => (
            vec![("Content-Type", Bytes::from_static(b"application/proto"))],
            push_encode::encode_series_chunks(chosen),
        ),
    };
    Envelope {
        kind: Kind::Push,
        path_and_query: m.push_path.clone(),
        headers,
        body_len: push_encode::encoded_len(&body),
        body,
        tenant: c.tenant.clone(),
        deadline,
        received_at: c.received_at,
        profiles,
        profile_bytes,
    }
}

/// Sends an `/ingest` request (its series: the `name` labels) to its owners.
pub async fn ingest(
    m: &Membership,
    tenant: &str,
    labels: &[(String, String)],
    mut env: Envelope,
) -> Outcome {
    let state = m.current();
    let plan = match plan(
        m,
        &state.ring,
        std::iter::once(token::token(tenant, labels)),
    ) {
        Ok(p) => p,
        Err(message) => return no_quorum(m, message),
    };
    let Some(snap) = m.forwarder.snapshot() else {
        return Outcome::Accepted;
    };
    let caller_deadline = env.deadline;
    env.deadline = Instant::now() + snap.delivery_timeout;
    // Every owner gets the same request.
    let env = Arc::new(env);
    let envelopes = plan
        .destinations
        .iter()
        .map(|(member, _)| (*member, env.clone()))
        .collect();
    execute(m, &state, &snap, plan, envelopes, caller_deadline).await
}

fn no_quorum(m: &Membership, message: String) -> Outcome {
    m.metrics.quorum_failures.inc();
    Outcome::Rejected {
        status: Code::Unavailable.http_status(),
        code: Some(Code::Unavailable),
        message,
    }
}

/// Sends every destination's envelope (their deadline: the background delivery deadline)
/// and waits for the per-series quorum decision (or answers just before the caller's
/// deadline). Replicas beyond the quorum go on in the background, bounded by the
/// destinations' queue budgets and the delivery timeout.
async fn execute(
    m: &Membership,
    state: &RingState,
    snap: &crate::forward::Snapshot,
    plan: Plan,
    envelopes: Vec<(u32, Arc<Envelope>)>,
    caller_deadline: Instant,
) -> Outcome {
    let carries: Vec<Vec<u32>> = plan.destinations.into_iter().map(|(_, c)| c).collect();
    let tracker = Tracker::new(
        &plan.quorums,
        carries,
        m.metrics.background.clone(),
        m.metrics.quorum_failures.clone(),
    );
    for (dest, (member, env)) in envelopes.into_iter().enumerate() {
        let id = state
            .ring
            .members
            .get(member as usize)
            .map_or("", |mm| mm.id.as_str());
        let (sent, failed) = state.member_counters(member as usize, &m.metrics);
        let sink = Arc::new(DestSink {
            tracker: tracker.clone(),
            dest,
            sent,
            failed,
        });
        let Some(d) = snap.member(id) else {
            crate::forward::ack::AckSink::report(
                &*sink,
                crate::forward::ack::Delivery::Failed(Outcome::Unavailable {
                    last_status: None,
                    message: format!("ring member {id} has no destination yet"),
                }),
            );
            continue;
        };
        let deadline = env.deadline;
        if let Err(o) = m.forwarder.send(d, env, sink.clone(), deadline, false) {
            crate::forward::ack::AckSink::report(&*sink, crate::forward::ack::Delivery::Failed(o));
        }
    }
    let answer_by = caller_deadline
        .checked_sub(snap.deadline_reserve / 2)
        .unwrap_or(caller_deadline);
    match Deadline::new(answer_by).run(tracker.wait()).await {
        Some(o) => o,
        None => Outcome::Unavailable {
            last_status: None,
            message: "ring members did not answer before the deadline".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use prost::Message as _;
    use pyrogate_testdata::pprof::{Kind, Spec};

    use super::*;

    fn sample(raw: Vec<u8>) -> RawSample {
        RawSample {
            raw_profile: Bytes::from(raw),
            id: "x".into(),
        }
    }

    fn req(labels: &[(&str, &str)], raw: Vec<u8>) -> PushRequest {
        PushRequest {
            series: vec![RawProfileSeries {
                labels: labels
                    .iter()
                    .map(|(n, v)| LabelPair {
                        name: (*n).into(),
                        value: (*v).into(),
                    })
                    .collect(),
                samples: vec![sample(raw)],
                annotations: Vec::new(),
            }],
        }
    }

    #[test]
    fn unsplit_profiles_keep_their_bytes_and_get_service_name() {
        let raw = Spec::new(1, Kind::Cpu)
            .labels(false, true)
            .samples(20)
            .plain();
        let out = push_series(req(&[("__name__", "process_cpu")], raw.clone()), 1 << 20);
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].labels().collect::<Vec<_>>(),
            [
                ("__name__", "process_cpu"),
                ("service_name", "unknown_service")
            ]
        );
        assert_eq!(&out[0].series.samples[0].raw_profile[..], &raw[..]);
    }

    #[test]
    fn profiles_without_splitting_labels_are_not_decoded_apart() {
        // gzip'd, without string labels: kept as sent (gzip'd).
        let spec = Spec::new(3, Kind::Cpu).labels(false, true).samples(30);
        let gz = spec.gzip();
        let out = push_series(req(&[("service_name", "svc")], gz.clone()), 1 << 20);
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0].series.samples[0].raw_profile[..], &gz[..]);
        // String labels under trace_id / span_id / profile_id only: not split either.
        let mut p = Spec::new(4, Kind::Cpu)
            .labels(true, false)
            .samples(30)
            .profile();
        let keys: std::collections::BTreeSet<i64> = p
            .sample
            .iter()
            .flat_map(|s| &s.label)
            .filter(|l| l.str != 0)
            .map(|l| l.key)
            .collect();
        assert!(!keys.is_empty());
        for (k, name) in keys.iter().zip(["span_id", "trace_id", "profile_id"]) {
            p.string_table[*k as usize] = name.into();
        }
        let raw = p.encode_to_vec();
        let out = push_series(req(&[("service_name", "svc")], raw.clone()), 1 << 20);
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0].series.samples[0].raw_profile[..], &raw[..]);
        // Over the size limit, or not a profile: routed whole.
        let labelled = Spec::new(5, Kind::Cpu).labels(true, false).samples(30);
        for (raw, max) in [
            (labelled.plain(), 100),
            (labelled.gzip(), 100),
            (b"short".to_vec(), 1 << 20),
            (vec![0x10, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0], 1 << 20),
        ] {
            let out = push_series(req(&[("service_name", "svc")], raw.clone()), max);
            assert_eq!(out.len(), 1);
            assert_eq!(&out[0].series.samples[0].raw_profile[..], &raw[..]);
        }
    }

    #[test]
    fn string_sample_labels_split_series() {
        // The generator's string labels: a few thread names; numeric labels do not split.
        let spec = Spec::new(2, Kind::Cpu)
            .labels(true, true)
            .samples(60)
            .zeros(0);
        let model = spec.profile();
        let out = push_series(
            req(
                &[("__name__", "process_cpu"), ("service_name", "svc")],
                spec.gzip(),
            ),
            1 << 20,
        );
        // Independently: the distinct (key, value) sets of string labels among the samples.
        let mut sets = std::collections::BTreeSet::new();
        for s in &model.sample {
            let mut k: Vec<(String, String)> = s
                .label
                .iter()
                .filter(|l| l.str != 0)
                .map(|l| {
                    (
                        model.string_table[l.key as usize].clone(),
                        model.string_table[l.str as usize].clone(),
                    )
                })
                .collect();
            k.sort();
            sets.insert(k);
        }
        assert!(sets.len() > 1, "the generator makes several label sets");
        assert_eq!(out.len(), sets.len());
        let mut total = 0;
        for s in &out {
            let labels: Vec<(&str, &str)> = s.labels().collect();
            assert!(labels.contains(&("service_name", "svc")));
            assert!(labels.windows(2).all(|w| w[0].0 <= w[1].0), "sorted");
            let raw = &s.series.samples[0].raw_profile;
            assert!(gzip::is_gzip(raw), "gzip'd as sent");
            let plain = gzip::inflate_bounded(raw, 1 << 20).expect("inflates");
            let p = pyrogate_testdata::wire::Profile::decode(&plain[..]).expect("decodes");
            total += p.sample.len();
        }
        assert_eq!(
            total,
            model.sample.len(),
            "every sample in exactly one part"
        );
    }
}
