//! protojson decoding of `PushRequest` over simd-json's tape (no intermediate value tree).
//!
//! Rules follow Go's `protojson.Unmarshal` with `DiscardUnknown` (what connect-go uses):
//! proto and JSON field names both accepted, unknown fields ignored, `null` means "default",
//! a field given twice (even under its two names) is an error, `bytes` are base64 in the
//! standard or URL-safe alphabet, padded or not.
//!
//! Memory: simd-json builds a tape of about 24 bytes per JSON token plus padded copies of
//! the input, so a hostile body costs a small constant multiple of its (already bounded)
//! size. No real SDK sends JSON; this path exists for curl users and tests.

use crate::protocol::proto::{
    LabelPair, ProfileAnnotation, PushRequest, RawProfileSeries, RawSample,
};
use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use bytes::Bytes;
use simd_json::prelude::*;
use simd_json::tape::Value;

type Result<T> = std::result::Result<T, String>;

/// A message field: its accepted JSON keys (JSON name first, then the proto name).
type Fields = &'static [&'static [&'static str]];

pub(super) fn decode_push_request(body: &[u8]) -> Result<PushRequest> {
    if body.is_empty() {
        return Err("zero-length payload is not a valid JSON object".to_owned());
    }
    let mut buf = body.to_vec(); // simd-json unescapes in place
    let tape = simd_json::to_tape(&mut buf).map_err(|e| format!("proto: syntax error: {e}"))?;
    push_request(tape.as_value())
}

fn push_request(v: Value<'_, '_>) -> Result<PushRequest> {
    let mut req = PushRequest::default();
    fields(v, &[&["series"]], |_, val| {
        req.series = list(val, "series", raw_profile_series)?;
        Ok(())
    })?;
    Ok(req)
}

fn raw_profile_series(v: Value<'_, '_>) -> Result<RawProfileSeries> {
    const F: Fields = &[&["labels"], &["samples"], &["annotations"]];
    let mut s = RawProfileSeries::default();
    fields(v, F, |idx, val| {
        match idx {
            0 => s.labels = list(val, "labels", label_pair)?,
            1 => s.samples = list(val, "samples", raw_sample)?,
            _ => s.annotations = list(val, "annotations", annotation)?,
        }
        Ok(())
    })?;
    Ok(s)
}

fn raw_sample(v: Value<'_, '_>) -> Result<RawSample> {
    const F: Fields = &[&["rawProfile", "raw_profile"], &["ID"]];
    let mut s = RawSample::default();
    fields(v, F, |idx, val| {
        match idx {
            0 => s.raw_profile = Bytes::from(base64_field(val, "raw_profile")?),
            _ => s.id = string(val, "ID")?,
        }
        Ok(())
    })?;
    Ok(s)
}

fn label_pair(v: Value<'_, '_>) -> Result<LabelPair> {
    let mut l = LabelPair::default();
    fields(v, &[&["name"], &["value"]], |idx, val| {
        match idx {
            0 => l.name = string(val, "name")?,
            _ => l.value = string(val, "value")?,
        }
        Ok(())
    })?;
    Ok(l)
}

fn annotation(v: Value<'_, '_>) -> Result<ProfileAnnotation> {
    let mut a = ProfileAnnotation::default();
    fields(v, &[&["key"], &["value"]], |idx, val| {
        match idx {
            0 => a.key = string(val, "key")?,
            _ => a.value = string(val, "value")?,
        }
        Ok(())
    })?;
    Ok(a)
}

/// Calls `set(field_index, value)` for each known, non-null member of the object `v`.
fn fields<'t, 'i>(
    v: Value<'t, 'i>,
    known: Fields,
    mut set: impl FnMut(usize, Value<'t, 'i>) -> Result<()>,
) -> Result<()> {
    let obj = v
        .as_object()
        .ok_or_else(|| format!("proto: unexpected token {}, want object", kind(v)))?;
    let mut seen = 0u32; // messages here have at most 3 fields
    for (key, val) in obj.iter() {
        let Some(idx) = known.iter().position(|names| names.contains(&key)) else {
            continue; // DiscardUnknown
        };
        let bit = 1u32 << idx;
        if seen & bit != 0 {
            return Err(format!("proto: duplicate field {key:?}"));
        }
        seen |= bit;
        if !val.is_null() {
            set(idx, val)?;
        }
    }
    Ok(())
}

/// A repeated message field: an array whose elements are all objects (`null` elements
/// are rejected, as protojson does).
fn list<'t, 'i, T>(
    v: Value<'t, 'i>,
    field: &str,
    item: impl Fn(Value<'t, 'i>) -> Result<T>,
) -> Result<Vec<T>> {
    let arr = v
        .as_array()
        .ok_or_else(|| format!("proto: invalid value for list field {field}: {}", kind(v)))?;
    arr.iter().map(item).collect()
}

fn string(v: Value<'_, '_>, field: &str) -> Result<String> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("proto: invalid value for string field {field}: {}", kind(v)))
}

fn base64_field(v: Value<'_, '_>, field: &str) -> Result<Vec<u8>> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("proto: invalid value for bytes field {field}: {}", kind(v)))?;
    decode_base64(s).map_err(|e| format!("proto: invalid value for bytes field {field}: {e}"))
}

const fn engine(alphabet: &alphabet::Alphabet, padded: bool) -> GeneralPurpose {
    let mode = if padded {
        DecodePaddingMode::RequireCanonical
    } else {
        DecodePaddingMode::RequireNone
    };
    // Go's non-strict decoder ignores non-zero trailing bits; so do we.
    let config = GeneralPurposeConfig::new()
        .with_decode_padding_mode(mode)
        .with_decode_allow_trailing_bits(true);
    GeneralPurpose::new(alphabet, config)
}

const STD: GeneralPurpose = engine(&alphabet::STANDARD, true);
const STD_RAW: GeneralPurpose = engine(&alphabet::STANDARD, false);
const URL: GeneralPurpose = engine(&alphabet::URL_SAFE, true);
const URL_RAW: GeneralPurpose = engine(&alphabet::URL_SAFE, false);

/// protojson's choice: URL alphabet if `-` or `_` occurs, unpadded if the length is not a
/// multiple of 4. Go's decoder skips `\r` and `\n`, so they are removed first.
pub(super) fn decode_base64(s: &str) -> std::result::Result<Vec<u8>, base64::DecodeError> {
    let cleaned;
    let s = if s.contains(['\r', '\n']) {
        cleaned = s.replace(['\r', '\n'], "");
        cleaned.as_str()
    } else {
        s
    };
    let url = s.contains(['-', '_']);
    let padded = s.len().is_multiple_of(4);
    let engine = match (url, padded) {
        (false, true) => &STD,
        (false, false) => &STD_RAW,
        (true, true) => &URL,
        (true, false) => &URL_RAW,
    };
    engine.decode(s)
}

fn kind(v: Value<'_, '_>) -> &'static str {
    if v.is_null() {
        "null"
    } else if v.is_array() {
        "array"
    } else if v.is_object() {
        "object"
    } else if v.as_str().is_some() {
        "string"
    } else if v.as_bool().is_some() {
        "bool"
    } else {
        "number"
    }
}
