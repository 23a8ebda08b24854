//! Connect Push bodies: `push.v1.PushRequest` as protobuf, protojson, gzip and gRPC-Web
//! frames, with one or many series (`docs/push.md`).

use base64::Engine as _;
use prost::Message as _;

use crate::pprof::{Kind, Spec};
use crate::rng::Rng;
use crate::wire::{LabelPair, ProfileAnnotation, PushRequest, RawProfileSeries, RawSample};

/// One series of a Push: its labels in the order the client sends them, and its profiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub labels: Vec<(String, String)>,
    pub samples: Vec<Profile>,
    pub annotations: Vec<(String, String)>,
}

/// One `RawSample`: a serialized pprof (gzip'd or plain) and its `ID`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub raw_profile: Vec<u8>,
    pub id: String,
}

impl Series {
    pub fn new(labels: &[(&str, &str)]) -> Self {
        Self {
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            samples: Vec::new(),
            annotations: Vec::new(),
        }
    }

    pub fn sample(mut self, raw_profile: Vec<u8>, id: impl Into<String>) -> Self {
        self.samples.push(Profile {
            raw_profile,
            id: id.into(),
        });
        self
    }

    /// The value of label `name`, if present.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sum of the `raw_profile` sizes (Alloy's byte count for a Push).
    pub fn profile_bytes(&self) -> usize {
        self.samples.iter().map(|s| s.raw_profile.len()).sum()
    }
}

fn message(series: &[Series]) -> PushRequest {
    PushRequest {
        series: series
            .iter()
            .map(|s| RawProfileSeries {
                labels: s
                    .labels
                    .iter()
                    .map(|(name, value)| LabelPair {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect(),
                samples: s
                    .samples
                    .iter()
                    .map(|p| RawSample {
                        raw_profile: p.raw_profile.clone(),
                        id: p.id.clone(),
                    })
                    .collect(),
                annotations: s
                    .annotations
                    .iter()
                    .map(|(key, value)| ProfileAnnotation {
                        key: key.clone(),
                        value: value.clone(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The binary `PushRequest`.
pub fn encode(series: &[Series]) -> Vec<u8> {
    message(series).encode_to_vec()
}

/// Decodes a binary `PushRequest` with this crate's own definitions (for tests that check
/// what reached a sink).
pub fn decode(bytes: &[u8]) -> Option<Vec<Series>> {
    let req = PushRequest::decode(bytes).ok()?;
    Some(
        req.series
            .into_iter()
            .map(|s| Series {
                labels: s.labels.into_iter().map(|l| (l.name, l.value)).collect(),
                samples: s
                    .samples
                    .into_iter()
                    .map(|p| Profile {
                        raw_profile: p.raw_profile,
                        id: p.id,
                    })
                    .collect(),
                annotations: s
                    .annotations
                    .into_iter()
                    .map(|a| (a.key, a.value))
                    .collect(),
            })
            .collect(),
    )
}

/// protojson with JSON field names (`rawProfile`, `ID`) and standard base64, as
/// connect-go's clients write it.
pub fn json(series: &[Series]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let doc = serde_json::json!({
        "series": series.iter().map(|s| {
            let mut v = serde_json::json!({
                "labels": s.labels.iter()
                    .map(|(n, v)| serde_json::json!({"name": n, "value": v}))
                    .collect::<Vec<_>>(),
                "samples": s.samples.iter()
                    .map(|p| serde_json::json!({"ID": p.id, "rawProfile": b64.encode(&p.raw_profile)}))
                    .collect::<Vec<_>>(),
            });
            if !s.annotations.is_empty() {
                v["annotations"] = s.annotations.iter()
                    .map(|(k, val)| serde_json::json!({"key": k, "value": val}))
                    .collect();
            }
            v
        }).collect::<Vec<_>>()
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// One gRPC / gRPC-Web length-prefixed message: flag byte, big-endian length, message.
pub fn grpc_frame(flags: u8, message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 5);
    out.push(flags);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

/// The labels pyroscope-io 1.4.0 (Python) sends, in its (unsorted) order.
pub fn python_labels(service: &str) -> Vec<(String, String)> {
    [
        ("__name__", "process_cpu"),
        ("env", "feas"),
        ("region", "local"),
        ("service_name", service),
        ("otel.scope.name", "com.grafana.pyroscope/python"),
        ("otel.scope.version", "1.4.0"),
        ("process.runtime.name", "cpython"),
        ("process.runtime.version", "3.11.7"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// A pyroscope-io style series: the labels above and one small plain `cpu/nanoseconds`
/// pprof (20 samples over a handful of Python functions, a string sample label, under 1 KiB
/// like the agent's), `ID` a UUIDv4.
pub fn python_series(seed: u64, service: &str) -> Series {
    let mut rng = Rng::stream(seed, 0x9e1);
    let raw = Spec::new(seed, Kind::CpuNanos)
        .samples(20)
        .functions(6)
        .depth(2, 6)
        .zeros(0)
        .duplicates(0)
        .labels(true, false)
        .plain();
    Series {
        labels: python_labels(service),
        samples: vec![Profile {
            raw_profile: raw,
            id: rng.uuid(),
        }],
        annotations: Vec::new(),
    }
}

/// `n` series of distinct services and profile kinds, each with one or two samples (a mix
/// of plain and gzip'd `raw_profile`), for multi-series requests.
pub fn many_series(seed: u64, n: usize) -> Vec<Series> {
    let mut rng = Rng::stream(seed, 0x5e7);
    (0..n)
        .map(|i| {
            let kind = Kind::ALL[i % Kind::ALL.len()];
            let service = format!("svc-{i}");
            let mut s = Series::new(&[
                ("service_name", service.as_str()),
                ("__name__", kind.metric()),
                ("env", if i % 2 == 0 { "prod" } else { "staging" }),
            ]);
            for k in 0..(1 + i % 2) {
                let spec = Spec::new(seed ^ ((i * 7 + k) as u64), kind)
                    .samples(30)
                    .functions(60);
                let raw = if (i + k) % 2 == 0 {
                    spec.plain()
                } else {
                    spec.gzip()
                };
                s = s.sample(raw, rng.uuid());
            }
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_round_trip() {
        let mut series = many_series(3, 4);
        series[0].annotations.push(("k".into(), "v".into()));
        let bytes = encode(&series);
        assert_eq!(bytes[0], 0x0a);
        assert_eq!(decode(&bytes), Some(series));
    }

    #[test]
    fn python_shape() {
        let s = python_series(1, "feas.python.app");
        assert_eq!(s.labels.len(), 8);
        assert_eq!(s.label("service_name"), Some("feas.python.app"));
        assert!(s.samples[0].raw_profile.starts_with(&[0x0a]));
        assert_eq!(s.samples[0].id.len(), 36);
    }

    #[test]
    fn json_shape() {
        let s = vec![Series::new(&[("a", "b")]).sample(vec![1, 2, 3], "id-1")];
        let v: serde_json::Value = serde_json::from_slice(&json(&s)).expect("json");
        assert_eq!(v["series"][0]["samples"][0]["rawProfile"], "AQID");
        assert_eq!(v["series"][0]["samples"][0]["ID"], "id-1");
        assert_eq!(v["series"][0]["labels"][0]["name"], "a");
    }
}
