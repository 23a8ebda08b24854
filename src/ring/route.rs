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

use super::membership::Membership;
use super::model::Ring;
use super::quorum::{DestSink, Quorum, Tracker};
use super::token;
use crate::forward::{Envelope, Kind, Outcome};
use crate::protocol::connect::Code;
use crate::protocol::gzip;
use crate::protocol::pprof::{self, NON_SPLITTING_LABELS, Profile, Sample};
use crate::protocol::proto::{LabelPair, PushRequest, RawProfileSeries, RawSample};
use crate::protocol::push::encode as push_encode;

/// The value Pyroscope gives `service_name` when a series has none.
const UNKNOWN_SERVICE: &str = "unknown_service";

/// Most strings and samples decoded to find sample labels.
const SPLIT_DECODE_CAP: usize = 1 << 20;

/// One series as the ring sees it: sorted labels and its profiles.
#[derive(Debug, Clone, PartialEq)]
pub struct RingSeries {
    pub labels: Vec<(String, String)>,
    pub samples: Vec<RawSample>,
}

/// The series of a Push, split by sample labels as Pyroscope splits them (profiles that do
/// not decode within `max_decoded` are kept whole).
pub fn push_series(req: PushRequest, max_decoded: usize) -> Vec<RingSeries> {
    let mut out = Vec::with_capacity(req.series.len());
    for s in req.series {
        let mut labels: Vec<(String, String)> =
            s.labels.into_iter().map(|l| (l.name, l.value)).collect();
        if !labels
            .iter()
            .any(|(n, v)| n == "service_name" && !v.is_empty())
        {
            labels.retain(|(n, _)| n != "service_name");
            labels.push(("service_name".into(), UNKNOWN_SERVICE.into()));
        }
        labels.sort_by(|a, b| a.0.cmp(&b.0));
        let mut whole = Vec::new();
        for sample in s.samples {
            match split(&sample, max_decoded) {
                None => whole.push(sample),
                Some(parts) => {
                    for (extra, raw) in parts {
                        let mut merged = labels.clone();
                        for (k, v) in extra {
                            if !merged.iter().any(|(n, _)| *n == k) {
                                merged.push((k, v));
                            }
                        }
                        merged.sort_by(|a, b| a.0.cmp(&b.0));
                        out.push(RingSeries {
                            labels: merged,
                            samples: vec![RawSample {
                                raw_profile: raw,
                                id: sample.id.clone(),
                            }],
                        });
                    }
                }
            }
        }
        if !whole.is_empty() {
            out.push(RingSeries {
                labels,
                samples: whole,
            });
        }
    }
    out
}

/// One part of a split profile: the labels it adds and its profile bytes.
type Part = (Vec<(String, String)>, Bytes);

/// The parts of a profile whose samples carry splitting labels: each distinct label set with
/// the profile of its samples (the original bytes when there is one set). `None` when no
/// sample has such labels, or the profile does not decode.
fn split(sample: &RawSample, max_decoded: usize) -> Option<Vec<Part>> {
    let limits = pprof::Limits {
        max_size: max_decoded,
        max_strings: SPLIT_DECODE_CAP,
        max_samples: SPLIT_DECODE_CAP,
    };
    let p = pprof::decode_bytes(&sample.raw_profile, limits).ok()?;
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
    let gzipped = gzip::is_gzip(&sample.raw_profile);
    let single = groups.len() == 1;
    Some(
        groups
            .into_iter()
            .map(|(key, samples)| {
                let labels = names(&p, &key);
                let raw = if single {
                    sample.raw_profile.clone()
                } else {
                    let plain = pprof::encode_with_samples(&p, &samples);
                    Bytes::from(if gzipped {
                        gzip::compress(&plain)
                    } else {
                        plain
                    })
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
    /// (member index, series indices), one entry per destination.
    pub destinations: Vec<(u32, Vec<u32>)>,
}

/// Places each series (by its labels) on `ring`.
///
/// # Errors
/// Pyroscope's message for the first series whose healthy replicas cannot make a quorum.
pub fn plan(
    m: &Membership,
    ring: &Ring,
    tenant: &str,
    series_labels: &[&[(String, String)]],
) -> Result<Plan, String> {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let mut quorums = Vec::with_capacity(series_labels.len());
    let mut by_member: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (i, labels) in series_labels.iter().enumerate() {
        let key = token::token(tenant, labels);
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

/// What every destination request of one client request shares.
pub struct Common {
    pub tenant: Option<Bytes>,
    pub deadline: Instant,
    pub received_at: Instant,
}

/// Sends a Push's series on the ring and waits for the answer.
pub async fn push(m: &Membership, tenant: &str, series: Vec<RingSeries>, c: Common) -> Outcome {
    let state = m.current();
    let labels: Vec<&[(String, String)]> = series.iter().map(|s| s.labels.as_slice()).collect();
    let plan = match plan(m, &state.ring, tenant, &labels) {
        Ok(p) => p,
        Err(message) => return no_quorum(m, message),
    };
    let mut envelopes = Vec::with_capacity(plan.destinations.len());
    for (member, carried) in &plan.destinations {
        let req = PushRequest {
            series: carried
                .iter()
                .map(|i| {
                    let s = &series[*i as usize];
                    RawProfileSeries {
                        labels: s
                            .labels
                            .iter()
                            .map(|(n, v)| LabelPair {
                                name: n.clone(),
                                value: v.clone(),
                            })
                            .collect(),
                        samples: s.samples.clone(),
                        annotations: Vec::new(),
                    }
                })
                .collect(),
        };
        let (profiles, profile_bytes) = req
            .series
            .iter()
            .flat_map(|s| &s.samples)
            .fold((0u64, 0u64), |(n, b), s| {
                (n + 1, b + s.raw_profile.len() as u64)
            });
        let body = push_encode::encode_chunks(&req);
        envelopes.push((
            *member,
            Envelope {
                kind: Kind::Push,
                path_and_query: m.push_path.clone(),
                headers: vec![("Content-Type", Bytes::from_static(b"application/proto"))],
                body_len: push_encode::encoded_len(&body),
                body,
                tenant: c.tenant.clone(),
                deadline: c.deadline,
                received_at: c.received_at,
                profiles,
                profile_bytes,
            },
        ));
    }
    execute(m, &state.ring, plan, envelopes, c.deadline).await
}

/// Sends an `/ingest` request (its series: the `name` labels) to its owners.
pub async fn ingest(
    m: &Membership,
    tenant: &str,
    labels: &[(String, String)],
    env: Envelope,
) -> Outcome {
    let state = m.current();
    let plan = match plan(m, &state.ring, tenant, &[labels]) {
        Ok(p) => p,
        Err(message) => return no_quorum(m, message),
    };
    let deadline = env.deadline;
    let envelopes = plan
        .destinations
        .iter()
        .map(|(member, _)| {
            (
                *member,
                Envelope {
                    kind: env.kind,
                    path_and_query: env.path_and_query.clone(),
                    headers: env.headers.clone(),
                    body: env.body.clone(),
                    body_len: env.body_len,
                    tenant: env.tenant.clone(),
                    deadline: env.deadline,
                    received_at: env.received_at,
                    profiles: env.profiles,
                    profile_bytes: env.profile_bytes,
                },
            )
        })
        .collect();
    execute(m, &state.ring, plan, envelopes, deadline).await
}

fn no_quorum(m: &Membership, message: String) -> Outcome {
    m.metrics.quorum_failures.inc();
    Outcome::Rejected {
        status: Code::Unavailable.http_status(),
        code: Some(Code::Unavailable),
        message,
    }
}

/// Sends every destination's envelope and waits for the per-series quorum decision (or
/// answers just before the caller's deadline). Replicas beyond the quorum go on in the
/// background, bounded by the destinations' queue budgets and the delivery timeout.
async fn execute(
    m: &Membership,
    ring: &Ring,
    plan: Plan,
    envelopes: Vec<(u32, Envelope)>,
    caller_deadline: Instant,
) -> Outcome {
    let carries: Vec<Vec<u32>> = plan.destinations.iter().map(|(_, c)| c.clone()).collect();
    let tracker = Tracker::new(
        &plan.quorums,
        carries,
        m.metrics.background.clone(),
        m.metrics.quorum_failures.clone(),
    );
    let Some(snap) = m.forwarder.snapshot() else {
        return Outcome::Accepted;
    };
    let background_deadline = Instant::now() + snap.delivery_timeout;
    for (dest, (member, mut env)) in envelopes.into_iter().enumerate() {
        let id = ring
            .members
            .get(member as usize)
            .map_or("", |mm| mm.id.as_str());
        let sink = Arc::new(DestSink {
            tracker: tracker.clone(),
            dest,
            sent: m.metrics.member_requests.with_label_values(&[id, "sent"]),
            failed: m.metrics.member_requests.with_label_values(&[id, "failed"]),
        });
        env.deadline = background_deadline;
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
        if let Err(o) = m
            .forwarder
            .send(d, Arc::new(env), sink.clone(), background_deadline, false)
        {
            crate::forward::ack::AckSink::report(&*sink, crate::forward::ack::Delivery::Failed(o));
        }
    }
    let answer_by = caller_deadline
        .checked_sub(snap.deadline_reserve / 2)
        .unwrap_or(caller_deadline);
    match monoio::time::timeout_at(answer_by.into(), tracker.wait()).await {
        Ok(o) => o,
        Err(_) => Outcome::Unavailable {
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
            out[0].labels,
            [
                ("__name__".to_string(), "process_cpu".to_string()),
                ("service_name".to_string(), "unknown_service".to_string())
            ]
        );
        assert_eq!(&out[0].samples[0].raw_profile[..], &raw[..]);
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
            assert!(
                s.labels
                    .iter()
                    .any(|(n, v)| n == "service_name" && v == "svc")
            );
            assert!(s.labels.windows(2).all(|w| w[0].0 <= w[1].0), "sorted");
            let raw = &s.samples[0].raw_profile;
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
