//! The layout of an OTLP/JSON request, read from its field names (docs/otlp.md §4).
//!
//! JSON names fields, not numbers: the renumbering of `Sample` between v1.9.0 and v1.10.0
//! does not show in JSON, and both readers read such a request the same way (both layouts
//! stay candidates). What does show is the v1.7 → v1.9 redesign (`sample` → `samples`,
//! `locationsStartIndex`/`value` → `stackIndex`/`values`, …) and v1.10's new `common` fields
//! (`keyStrindex`, `stringValueStrindex`). Proto and JSON names are both accepted, as
//! protojson does.
//!
//! Memory: simd-json's tape costs a small constant multiple of the (already bounded) body.

use simd_json::prelude::*;
use simd_json::tape::Value;

use super::error::OtlpError;
use super::schema::{Candidates, Detected, MAX_SAMPLES_INSPECTED, Scan};

struct Walk {
    candidates: Candidates,
    samples: usize,
    profiles: u64,
}

/// Scans an OTLP/JSON `ExportProfilesServiceRequest`: counts its profiles and infers what
/// its field names allow.
///
/// # Errors
/// [`OtlpError::Unmarshal`] for an empty body or text that is not JSON, or a member of the
/// wrong JSON kind along the path read.
pub fn scan(body: &[u8]) -> Result<Scan, OtlpError> {
    if body.is_empty() {
        return Err(OtlpError::Unmarshal(
            "zero-length payload is not a valid JSON object".into(),
        ));
    }
    let mut buf = body.to_vec(); // simd-json unescapes in place
    let tape = simd_json::to_tape(&mut buf)
        .map_err(|e| OtlpError::Unmarshal(format!("syntax error: {e}")))?;
    let mut w = Walk {
        candidates: Candidates::ALL,
        samples: 0,
        profiles: 0,
    };
    for (key, val) in object(tape.as_value())? {
        match key {
            "resourceProfiles" | "resource_profiles" => {
                for rp in array(val)? {
                    resource_profiles(rp, &mut w)?;
                }
            }
            "dictionary" => dictionary(val, &mut w)?,
            _ => {}
        }
    }
    let detected = if w.samples == 0 {
        Detected::Empty
    } else if w.candidates.is_empty() {
        Detected::Inconsistent
    } else {
        Detected::Layout(w.candidates)
    };
    Ok(Scan {
        profiles: w.profiles,
        detected,
    })
}

type Members<'t, 'i> = Vec<(&'t str, Value<'t, 'i>)>;

fn object<'t, 'i>(v: Value<'t, 'i>) -> Result<Members<'t, 'i>, OtlpError> {
    if v.is_null() {
        return Ok(Vec::new());
    }
    let obj = v
        .as_object()
        .ok_or_else(|| OtlpError::Unmarshal("unexpected JSON value, want object".into()))?;
    Ok(obj.iter().collect())
}

fn array<'t, 'i>(v: Value<'t, 'i>) -> Result<Vec<Value<'t, 'i>>, OtlpError> {
    if v.is_null() {
        return Ok(Vec::new());
    }
    let arr = v
        .as_array()
        .ok_or_else(|| OtlpError::Unmarshal("unexpected JSON value, want array".into()))?;
    Ok(arr.iter().collect())
}

fn resource_profiles(v: Value<'_, '_>, w: &mut Walk) -> Result<(), OtlpError> {
    for (key, val) in object(v)? {
        match key {
            "resource" | "scope" => attributes_of(val, w)?,
            "scopeProfiles" | "scope_profiles" => {
                for sp in array(val)? {
                    for (k, v) in object(sp)? {
                        match k {
                            "scope" => attributes_of(v, w)?,
                            "profiles" => {
                                for p in array(v)? {
                                    w.profiles += 1;
                                    profile(p, w)?;
                                }
                            }
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// `attributes` of a resource or scope: v1.10's string-table references are evidence.
fn attributes_of(v: Value<'_, '_>, w: &mut Walk) -> Result<(), OtlpError> {
    for (key, val) in object(v)? {
        if key != "attributes" {
            continue;
        }
        for kv in array(val)? {
            for (k, v) in object(kv)? {
                match k {
                    "keyStrindex" | "key_strindex" => w.candidates.narrow(Candidates::V10),
                    "value" => {
                        for (vk, _) in object(v)? {
                            if vk == "stringValueStrindex" || vk == "string_value_strindex" {
                                w.candidates.narrow(Candidates::V10);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

fn profile(v: Value<'_, '_>, w: &mut Walk) -> Result<(), OtlpError> {
    for (key, val) in object(v)? {
        let c = match key {
            "samples" => {
                for s in array(val)? {
                    if w.samples >= MAX_SAMPLES_INSPECTED {
                        break;
                    }
                    w.samples += 1;
                    sample(s, w)?;
                }
                Candidates::V9_V10
            }
            "sample" => {
                w.samples += array(val)?.len().min(MAX_SAMPLES_INSPECTED);
                Candidates::V7
            }
            "locationIndices"
            | "location_indices"
            | "timeNanos"
            | "time_nanos"
            | "durationNanos"
            | "duration_nanos"
            | "commentStrindices"
            | "comment_strindices"
            | "defaultSampleTypeIndex"
            | "default_sample_type_index" => Candidates::V7,
            "timeUnixNano" | "time_unix_nano" | "durationNano" | "duration_nano" => {
                Candidates::V9_V10
            }
            _ => continue,
        };
        w.candidates.narrow(c);
    }
    Ok(())
}

fn sample(v: Value<'_, '_>, w: &mut Walk) -> Result<(), OtlpError> {
    for (key, _) in object(v)? {
        let c = match key {
            "locationsStartIndex"
            | "locations_start_index"
            | "locationsLength"
            | "locations_length"
            | "value" => Candidates::V7,
            "stackIndex" | "stack_index" | "values" => Candidates::V9_V10,
            _ => continue,
        };
        w.candidates.narrow(c);
    }
    Ok(())
}

fn dictionary(v: Value<'_, '_>, w: &mut Walk) -> Result<(), OtlpError> {
    for (key, _) in object(v)? {
        match key {
            "stackTable" | "stack_table" => w.candidates.narrow(Candidates::V9_V10),
            "attributeUnits" | "attribute_units" => w.candidates.narrow(Candidates::V7),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::otlp::schema::{DEFAULT_ACCEPT, Schema};

    #[test]
    fn v1_9_and_v1_10_json_read_alike() {
        let body = br#"{"resourceProfiles":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"svc"}}]},
            "scopeProfiles":[{"profiles":[{"samples":[{"stackIndex":1,"values":["3"],"attributeIndices":[1]}],"timeUnixNano":"1"}]}]}],
            "dictionary":{"stringTable":[""],"stackTable":[{}]}}"#;
        let s = scan(body).expect("valid");
        assert_eq!(s.profiles, 1);
        assert_eq!(s.detected, Detected::Layout(Candidates::V9_V10));
        assert!(DEFAULT_ACCEPT.check(s.detected).is_ok());
    }

    #[test]
    fn v1_7_json_is_recognised() {
        let body = br#"{"resource_profiles":[{"scope_profiles":[{"profiles":[{"sample":[{"locationsStartIndex":0,"locationsLength":2,"value":["1"]}],"locationIndices":[0,1]}]}]}]}"#;
        let s = scan(body).expect("valid");
        assert_eq!(s.detected.schema(), Some(Schema::V1_7));
        assert!(DEFAULT_ACCEPT.check(s.detected).is_err());
    }

    #[test]
    fn v1_10_only_fields() {
        let body = br#"{"resourceProfiles":[{"resource":{"attributes":[{"keyStrindex":3,"value":{"stringValueStrindex":4}}]},"scopeProfiles":[{"profiles":[{"samples":[{"values":["1"]}]}]}]}]}"#;
        let s = scan(body).expect("valid");
        assert_eq!(s.detected.schema(), Some(Schema::V1_10));
    }

    #[test]
    fn empty_and_broken() {
        assert_eq!(scan(b"{}").unwrap().detected, Detected::Empty);
        assert_eq!(
            scan(br#"{"resourceProfiles":null}"#).unwrap().detected,
            Detected::Empty
        );
        assert!(scan(b"").is_err());
        assert!(scan(b"{").is_err());
        assert!(scan(br#"{"resourceProfiles":{}}"#).is_err());
        assert!(scan(b"[]").is_err());
    }
}
