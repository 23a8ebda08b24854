//! External labels as resource attributes (docs/otlp.md §6).
//!
//! Pyroscope turns every string resource attribute of an OTLP request into a series label,
//! so `external_labels` are applied as resource attributes: set (replacing an attribute of
//! the same key) when the value is non-empty, removed when it is empty (Alloy's rule for
//! labels). A request in which every resource already says exactly that is forwarded byte
//! for byte; otherwise the protobuf message is re-encoded: each `ResourceProfiles.resource`
//! is rebuilt (a few dozen bytes) and everything else, the profiles and the dictionary
//! included, is shared as slices of the request, never copied.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::error::OtlpError;
use super::wire::{Field, Reader, WireType, put_len, put_tag, put_varint};

/// `ExportProfilesServiceRequest.resource_profiles`.
const REQUEST_RESOURCE_PROFILES: u32 = 1;
/// `ResourceProfiles.resource`.
const RESOURCE_PROFILES_RESOURCE: u32 = 1;
/// `Resource.attributes`.
const RESOURCE_ATTRIBUTES: u32 = 1;
/// `KeyValue.key` / `KeyValue.value`, `AnyValue.string_value`.
const KEY_VALUE_KEY: u32 = 1;
const KEY_VALUE_VALUE: u32 = 2;
const ANY_VALUE_STRING: u32 = 1;

fn fields(msg: &[u8]) -> Result<Vec<Field<'_>>, OtlpError> {
    let mut r = Reader::new(msg);
    let mut out = Vec::new();
    while let Some(f) = r.next_field().map_err(OtlpError::unmarshal)? {
        out.push(f);
    }
    Ok(out)
}

/// A resource attribute's key and, when it is a plain string, its value.
fn key_value(kv: &[u8]) -> Result<(&[u8], Option<&[u8]>), OtlpError> {
    let mut key: &[u8] = b"";
    let mut value = None;
    for f in fields(kv)? {
        match (f.number, f.wire) {
            (KEY_VALUE_KEY, WireType::Len) => key = f.bytes,
            (KEY_VALUE_VALUE, WireType::Len) => {
                value = None;
                for a in fields(f.bytes)? {
                    if a.number == ANY_VALUE_STRING && a.wire == WireType::Len {
                        value = Some(a.bytes);
                    }
                }
            }
            _ => {}
        }
    }
    Ok((key, value))
}

/// Whether the resource (`None`: the field is absent) already carries every external label
/// as Pyroscope would read it.
fn resource_ok(
    resource: Option<&[u8]>,
    external: &BTreeMap<String, String>,
) -> Result<bool, OtlpError> {
    let mut have: BTreeMap<&[u8], Option<&[u8]>> = BTreeMap::new();
    if let Some(r) = resource {
        for f in fields(r)? {
            if f.number == RESOURCE_ATTRIBUTES && f.wire == WireType::Len {
                let (k, v) = key_value(f.bytes)?;
                if have.insert(k, v).is_some() {
                    // A repeated key: which one wins is the reader's business; rewrite.
                    if external.contains_key(&*String::from_utf8_lossy(k)) {
                        return Ok(false);
                    }
                }
            }
        }
    }
    Ok(external.iter().all(|(k, v)| match have.get(k.as_bytes()) {
        None => v.is_empty(),
        Some(got) => !v.is_empty() && *got == Some(v.as_bytes()),
    }))
}

/// The `resource` fields of each `ResourceProfiles`, in order.
fn each_resource_profiles<'a>(
    msg: &'a [u8],
    mut f: impl FnMut(&'a [u8]) -> Result<(), OtlpError>,
) -> Result<(), OtlpError> {
    for field in fields(msg)? {
        if field.number == REQUEST_RESOURCE_PROFILES && field.wire == WireType::Len {
            f(field.bytes)?;
        }
    }
    Ok(())
}

/// Whether `external_labels` require the message to be re-encoded.
///
/// # Errors
/// A malformed message along the path read.
pub fn needs_rewrite(msg: &[u8], external: &BTreeMap<String, String>) -> Result<bool, OtlpError> {
    if external.is_empty() {
        return Ok(false);
    }
    let mut rewrite = false;
    each_resource_profiles(msg, |rp| {
        let resource = fields(rp)?
            .into_iter()
            .filter(|f| f.number == RESOURCE_PROFILES_RESOURCE && f.wire == WireType::Len)
            .map(|f| f.bytes)
            .next_back();
        if !resource_ok(resource, external)? {
            rewrite = true;
        }
        Ok(())
    })?;
    Ok(rewrite)
}

fn string_attribute(out: &mut Vec<u8>, key: &str, value: &str) {
    let mut any = Vec::with_capacity(value.len() + 2);
    put_len(&mut any, ANY_VALUE_STRING, value.as_bytes());
    let mut kv = Vec::with_capacity(key.len() + any.len() + 4);
    put_len(&mut kv, KEY_VALUE_KEY, key.as_bytes());
    put_len(&mut kv, KEY_VALUE_VALUE, &any);
    put_len(out, RESOURCE_ATTRIBUTES, &kv);
}

/// The rebuilt `Resource`: its other fields and attributes kept, external labels applied.
fn rebuild_resource(
    resource: Option<&[u8]>,
    external: &BTreeMap<String, String>,
) -> Result<Vec<u8>, OtlpError> {
    let mut out = Vec::new();
    if let Some(r) = resource {
        for f in fields(r)? {
            if f.number == RESOURCE_ATTRIBUTES && f.wire == WireType::Len {
                let (k, _) = key_value(f.bytes)?;
                if external.contains_key(&*String::from_utf8_lossy(k)) {
                    continue;
                }
            }
            out.extend_from_slice(&r[f.start..f.end]);
        }
    }
    for (k, v) in external.iter().filter(|(_, v)| !v.is_empty()) {
        string_attribute(&mut out, k, v);
    }
    Ok(out)
}

/// Re-encodes `msg` with `external` applied to every resource. The result is a list of
/// chunks whose concatenation is the new message; all but the rebuilt resources are
/// slices of `msg`.
///
/// # Errors
/// A malformed message along the path read.
pub fn rewrite(msg: &Bytes, external: &BTreeMap<String, String>) -> Result<Vec<Bytes>, OtlpError> {
    let mut chunks = Vec::new();
    for field in fields(msg)? {
        if !(field.number == REQUEST_RESOURCE_PROFILES && field.wire == WireType::Len) {
            chunks.push(msg.slice(field.start..field.end));
            continue;
        }
        let rp = field.bytes;
        let rp_fields = fields(rp)?;
        let resource = rp_fields
            .iter()
            .filter(|f| f.number == RESOURCE_PROFILES_RESOURCE && f.wire == WireType::Len)
            .map(|f| f.bytes)
            .next_back();
        let new_resource = rebuild_resource(resource, external)?;
        let mut head = Vec::with_capacity(new_resource.len() + 16);
        let mut resource_field = Vec::with_capacity(new_resource.len() + 6);
        put_len(
            &mut resource_field,
            RESOURCE_PROFILES_RESOURCE,
            &new_resource,
        );
        let kept: Vec<&Field<'_>> = rp_fields
            .iter()
            .filter(|f| f.number != RESOURCE_PROFILES_RESOURCE)
            .collect();
        let rp_len = resource_field.len() + kept.iter().map(|f| f.end - f.start).sum::<usize>();
        put_tag(&mut head, REQUEST_RESOURCE_PROFILES, 2);
        put_varint(&mut head, rp_len as u64);
        head.extend_from_slice(&resource_field);
        chunks.push(Bytes::from(head));
        for f in kept {
            chunks.push(msg.slice_ref(&rp[f.start..f.end]));
        }
    }
    Ok(chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(key: &str, value: &str) -> Vec<u8> {
        let mut out = Vec::new();
        string_attribute(&mut out, key, value);
        out
    }

    /// `ExportProfilesServiceRequest` with one `ResourceProfiles` whose resource has
    /// `attrs`, and an opaque scope_profiles payload.
    fn request(attrs: &[(&str, &str)]) -> Bytes {
        let mut resource = Vec::new();
        for (k, v) in attrs {
            resource.extend_from_slice(&attr(k, v));
        }
        let mut rp = Vec::new();
        put_len(&mut rp, 1, &resource);
        put_len(&mut rp, 2, b"\x12\x00SCOPE"); // not parsed by the rewrite
        let mut req = Vec::new();
        put_len(&mut req, 1, &rp);
        put_len(&mut req, 2, b"DICT");
        Bytes::from(req)
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn verbatim_when_nothing_changes() {
        let req = request(&[("service.name", "a"), ("env", "prod")]);
        assert!(!needs_rewrite(&req, &labels(&[])).unwrap());
        assert!(!needs_rewrite(&req, &labels(&[("env", "prod")])).unwrap());
        assert!(!needs_rewrite(&req, &labels(&[("gone", "")])).unwrap());
        assert!(needs_rewrite(&req, &labels(&[("env", "dev")])).unwrap());
        assert!(needs_rewrite(&req, &labels(&[("region", "eu")])).unwrap());
        assert!(needs_rewrite(&req, &labels(&[("env", "")])).unwrap());
    }

    #[test]
    fn rewrite_sets_replaces_and_deletes() {
        let req = request(&[("service.name", "a"), ("env", "dev"), ("drop", "x")]);
        let ext = labels(&[("env", "prod"), ("region", "eu"), ("drop", "")]);
        let chunks = rewrite(&req, &ext).unwrap();
        let out: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        // Built independently: the expected message, attributes in the rewrite's order.
        assert_eq!(
            out,
            request(&[("service.name", "a"), ("env", "prod"), ("region", "eu")])
        );
        assert!(!needs_rewrite(&out, &ext).unwrap());
        // The scope profiles and the dictionary are shared with the request, not copied.
        let base = req.as_ptr() as usize..req.as_ptr() as usize + req.len();
        let shared = chunks
            .iter()
            .filter(|c| base.contains(&(c.as_ptr() as usize)))
            .count();
        assert_eq!(shared, 2);
    }

    #[test]
    fn a_resource_is_added_where_there_is_none() {
        let mut rp = Vec::new();
        put_len(&mut rp, 2, b"S");
        let mut req = Vec::new();
        put_len(&mut req, 1, &rp);
        let req = Bytes::from(req);
        let ext = labels(&[("env", "prod")]);
        assert!(needs_rewrite(&req, &ext).unwrap());
        let out: Vec<u8> = rewrite(&req, &ext).unwrap().concat();
        let mut want_rp = Vec::new();
        put_len(&mut want_rp, 1, &attr("env", "prod"));
        put_len(&mut want_rp, 2, b"S");
        let mut want = Vec::new();
        put_len(&mut want, 1, &want_rp);
        assert_eq!(out, want);
        assert!(rewrite(&Bytes::from_static(&[0x0a, 0x09]), &ext).is_err());
    }
}
