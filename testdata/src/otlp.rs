//! OpenTelemetry profiles requests (`ExportProfilesServiceRequest`), deterministic from a
//! seed, in the layout of opentelemetry-proto v1.10.0 (what Pyroscope 2.1 reads) or v1.9.0
//! (whose `Sample` numbers differ: values 2, attribute_indices 3, link_index 4).
//!
//! The messages are this crate's own prost definitions, written from the descriptors of the
//! `opentelemetry-proto` Python packages 1.42.1 (v1.9.0) and 1.43.0 (v1.10.0), so the
//! gateway's hand-written scanner is checked against an independent encoder.

use bytes::Bytes;
use prost::Message;

use crate::rng::Rng;

/// Which layout to encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    V1_9,
    V1_10,
}

#[derive(Clone, PartialEq, Message)]
pub struct ExportProfilesServiceRequest {
    #[prost(message, repeated, tag = "1")]
    pub resource_profiles: Vec<ResourceProfiles>,
    #[prost(message, optional, tag = "2")]
    pub dictionary: Option<ProfilesDictionary>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ResourceProfiles {
    #[prost(message, optional, tag = "1")]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    pub scope_profiles: Vec<ScopeProfiles>,
    #[prost(string, tag = "3")]
    pub schema_url: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    pub attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct AnyValue {
    #[prost(string, tag = "1")]
    pub string_value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct ScopeProfiles {
    #[prost(message, optional, tag = "1")]
    pub scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    pub profiles: Vec<Profile>,
}

#[derive(Clone, PartialEq, Message)]
pub struct InstrumentationScope {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub version: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct ValueType {
    #[prost(int32, tag = "1")]
    pub type_strindex: i32,
    #[prost(int32, tag = "2")]
    pub unit_strindex: i32,
}

/// `Profile` (identical in v1.9.0 and v1.10.0); samples are kept encoded so either
/// `Sample` layout can be put in.
#[derive(Clone, PartialEq, Message)]
pub struct Profile {
    #[prost(message, optional, tag = "1")]
    pub sample_type: Option<ValueType>,
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub samples: Vec<Vec<u8>>,
    #[prost(fixed64, tag = "3")]
    pub time_unix_nano: u64,
    #[prost(uint64, tag = "4")]
    pub duration_nano: u64,
    #[prost(message, optional, tag = "5")]
    pub period_type: Option<ValueType>,
    #[prost(int64, tag = "6")]
    pub period: i64,
    #[prost(bytes = "vec", tag = "7")]
    pub profile_id: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct SampleV1_10 {
    #[prost(int32, tag = "1")]
    pub stack_index: i32,
    #[prost(int32, repeated, tag = "2")]
    pub attribute_indices: Vec<i32>,
    #[prost(int32, tag = "3")]
    pub link_index: i32,
    #[prost(int64, repeated, tag = "4")]
    pub values: Vec<i64>,
}

#[derive(Clone, PartialEq, Message)]
pub struct SampleV1_9 {
    #[prost(int32, tag = "1")]
    pub stack_index: i32,
    #[prost(int64, repeated, tag = "2")]
    pub values: Vec<i64>,
    #[prost(int32, repeated, tag = "3")]
    pub attribute_indices: Vec<i32>,
    #[prost(int32, tag = "4")]
    pub link_index: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct ProfilesDictionary {
    #[prost(message, repeated, tag = "1")]
    pub mapping_table: Vec<Mapping>,
    #[prost(message, repeated, tag = "2")]
    pub location_table: Vec<Location>,
    #[prost(message, repeated, tag = "3")]
    pub function_table: Vec<Function>,
    #[prost(string, repeated, tag = "5")]
    pub string_table: Vec<String>,
    #[prost(message, repeated, tag = "6")]
    pub attribute_table: Vec<KeyValueAndUnit>,
    #[prost(message, repeated, tag = "7")]
    pub stack_table: Vec<Stack>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Mapping {
    #[prost(uint64, tag = "1")]
    pub memory_start: u64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Location {
    #[prost(int32, tag = "1")]
    pub mapping_index: i32,
    #[prost(uint64, tag = "2")]
    pub address: u64,
    #[prost(message, repeated, tag = "3")]
    pub lines: Vec<Line>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Line {
    #[prost(int32, tag = "1")]
    pub function_index: i32,
    #[prost(int64, tag = "2")]
    pub line: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Function {
    #[prost(int32, tag = "1")]
    pub name_strindex: i32,
    #[prost(int32, tag = "3")]
    pub filename_strindex: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct KeyValueAndUnit {
    #[prost(int32, tag = "1")]
    pub key_strindex: i32,
    #[prost(message, optional, tag = "2")]
    pub value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Stack {
    #[prost(int32, repeated, tag = "1")]
    pub location_indices: Vec<i32>,
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    pub seed: u64,
    pub layout: Layout,
    pub service: String,
    /// Distinct functions (stack frames draw from them).
    pub functions: usize,
    pub samples: usize,
    /// Resource attributes besides `service.name`.
    pub attributes: Vec<(String, String)>,
}

impl Spec {
    pub fn new(seed: u64, layout: Layout) -> Self {
        Self {
            seed,
            layout,
            service: format!("otlp-svc-{}", seed % 8),
            functions: 24,
            samples: 40,
            attributes: Vec::new(),
        }
    }

    pub fn samples(mut self, n: usize) -> Self {
        self.samples = n;
        self
    }

    pub fn attribute(mut self, k: &str, v: &str) -> Self {
        self.attributes.push((k.into(), v.into()));
        self
    }
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            string_value: v.into(),
        }),
    }
}

/// The request message as a struct (samples already encoded in the chosen layout).
pub fn message(spec: &Spec) -> ExportProfilesServiceRequest {
    let mut rng = Rng::new(spec.seed);
    let mut strings = vec![String::new(), "cpu".into(), "nanoseconds".into()];
    strings.push("thread.name".into());
    let thread_key = 3;
    let mut functions = vec![Function::default()];
    let mut locations = vec![Location::default()];
    for f in 0..spec.functions {
        strings.push(format!("pkg{}.func{f}", f % 5));
        let name = (strings.len() - 1) as i32;
        strings.push(format!("src/pkg{}/file{}.go", f % 5, f % 7));
        functions.push(Function {
            name_strindex: name,
            filename_strindex: (strings.len() - 1) as i32,
        });
        locations.push(Location {
            mapping_index: 0,
            address: 0x40_0000 + 16 * f as u64,
            lines: vec![Line {
                function_index: (f + 1) as i32,
                line: 10 + (f as i64) * 3,
            }],
        });
    }
    let attribute_table = vec![
        KeyValueAndUnit::default(),
        KeyValueAndUnit {
            key_strindex: thread_key,
            value: Some(AnyValue {
                string_value: "main".into(),
            }),
        },
        KeyValueAndUnit {
            key_strindex: thread_key,
            value: Some(AnyValue {
                string_value: "worker".into(),
            }),
        },
    ];
    let mut stacks = vec![Stack::default()];
    let mut samples = Vec::with_capacity(spec.samples);
    for _ in 0..spec.samples {
        let depth = 2 + rng.below(8) as usize;
        let frames: Vec<i32> = (0..depth)
            .map(|_| 1 + rng.below(spec.functions.max(1) as u64) as i32)
            .collect();
        stacks.push(Stack {
            location_indices: frames,
        });
        let stack_index = (stacks.len() - 1) as i32;
        let value = 10_000_000 * (1 + rng.below(20) as i64);
        let attrs = vec![1 + rng.below(2) as i32];
        let bytes = match spec.layout {
            Layout::V1_10 => SampleV1_10 {
                stack_index,
                attribute_indices: attrs,
                link_index: 0,
                values: vec![value],
            }
            .encode_to_vec(),
            Layout::V1_9 => SampleV1_9 {
                stack_index,
                values: vec![value],
                attribute_indices: attrs,
                link_index: 0,
            }
            .encode_to_vec(),
        };
        samples.push(bytes);
    }
    let mut attributes = vec![kv("service.name", &spec.service)];
    attributes.extend(spec.attributes.iter().map(|(k, v)| kv(k, v)));
    ExportProfilesServiceRequest {
        resource_profiles: vec![ResourceProfiles {
            resource: Some(Resource { attributes }),
            scope_profiles: vec![ScopeProfiles {
                scope: Some(InstrumentationScope {
                    name: "pyrogate-testdata".into(),
                    version: "1".into(),
                }),
                profiles: vec![Profile {
                    sample_type: Some(ValueType {
                        type_strindex: 1,
                        unit_strindex: 2,
                    }),
                    samples,
                    time_unix_nano: 1_700_000_000_000_000_000 + spec.seed * 1_000_000_000,
                    duration_nano: 10_000_000_000,
                    period_type: Some(ValueType {
                        type_strindex: 1,
                        unit_strindex: 2,
                    }),
                    period: 10_000_000,
                    profile_id: (0..16).map(|i| (spec.seed as u8).wrapping_add(i)).collect(),
                }],
            }],
            schema_url: String::new(),
        }],
        dictionary: Some(ProfilesDictionary {
            mapping_table: vec![Mapping::default()],
            location_table: locations,
            function_table: functions,
            string_table: strings,
            attribute_table,
            stack_table: stacks,
        }),
    }
}

/// The encoded request.
pub fn request(spec: &Spec) -> Bytes {
    Bytes::from(message(spec).encode_to_vec())
}

/// A minimal OTLP/JSON request (field names are the same in v1.9.0 and v1.10.0).
pub fn json_request(seed: u64) -> Bytes {
    let doc = serde_json::json!({
        "resourceProfiles": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": format!("otlp-json-{seed}")}}]},
            "scopeProfiles": [{"profiles": [{
                "sampleType": {"typeStrindex": 1, "unitStrindex": 2},
                "samples": [{"stackIndex": 1, "values": [format!("{}", 1000 + seed)]}],
                "timeUnixNano": format!("{}", 1_700_000_000_000_000_000u64 + seed),
                "periodType": {"typeStrindex": 1, "unitStrindex": 2},
                "period": "10000000"
            }]}]
        }],
        "dictionary": {
            "stringTable": ["", "cpu", "nanoseconds", "main"],
            "functionTable": [{}, {"nameStrindex": 3}],
            "locationTable": [{}, {"lines": [{"functionIndex": 1}]}],
            "stackTable": [{}, {"locationIndices": [1]}],
            "mappingTable": [{}]
        }
    });
    Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_layouts_differ_only_in_samples() {
        let a = request(&Spec::new(7, Layout::V1_10));
        assert_eq!(a, request(&Spec::new(7, Layout::V1_10)));
        assert_ne!(a, request(&Spec::new(8, Layout::V1_10)));
        let b = request(&Spec::new(7, Layout::V1_9));
        assert_eq!(a.len(), b.len());
        assert_ne!(a, b);
        let m = ExportProfilesServiceRequest::decode(a).expect("decodes");
        let s = &m.resource_profiles[0].scope_profiles[0].profiles[0].samples[0];
        let s = SampleV1_10::decode(&s[..]).expect("v1.10 sample");
        assert_eq!(s.values.len(), 1);
        assert_eq!(s.attribute_indices.len(), 1);
    }
}
